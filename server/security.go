package server

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/medfleet/medfleet/internal/pki"
)

// keys is what medfleetd authenticates with and trusts. It creates what it
// is not given, on first start, in {data_dir}/tls.
type keys struct {
	// serverCA signs medfleetd's certificate (gRPC and DTLS) and, unless
	// grpc.client_ca is given, users' client certificates.
	serverCA *pki.CA
	// deviceCA signs device certificates.
	deviceCA *pki.CA
	// serverCert is shown to gRPC clients and DTLS devices.
	serverCert tls.Certificate
	// clientCAs verify gRPC client certificates; clientCA signs them, nil
	// when the operator brought a CA whose key medfleetd does not hold.
	clientCAs *x509.CertPool
	clientCA  *pki.CA
	// pskSecret derives device PSKs.
	pskSecret []byte
}

// tlsDir is where medfleetd keeps its CAs and keys.
func (c Config) tlsDir() string { return filepath.Join(c.DataDir, "tls") }

// AdminTokenPath is where medfleetd writes the first administrator's token.
func (c Config) AdminTokenPath() string { return filepath.Join(c.DataDir, "admin.token") }

// CAPath is the CA that signs medfleetd's certificate: what clients and
// devices trust.
func (c Config) CAPath() string { return filepath.Join(c.tlsDir(), "ca.crt") }

func loadKeys(cfg Config, now time.Time) (*keys, error) {
	dir := cfg.tlsDir()
	k := &keys{}
	var err error
	if k.serverCA, err = pki.LoadOrCreateCA(dir, "ca", "Medfleet CA", now); err != nil {
		return nil, err
	}
	if k.deviceCA, err = pki.LoadOrCreateCA(dir, "device-ca", "Medfleet device CA", now); err != nil {
		return nil, err
	}
	if cfg.GRPC.TLSCert != "" {
		if k.serverCert, err = tls.LoadX509KeyPair(cfg.GRPC.TLSCert, cfg.GRPC.TLSKey); err != nil {
			return nil, fmt.Errorf("grpc.tls_cert: %w", err)
		}
	} else if k.serverCert, err = pki.LoadOrCreateServerCert(k.serverCA, dir, "server", serverHosts(cfg), now); err != nil {
		return nil, err
	}
	if cfg.GRPC.ClientCA != "" {
		b, err := os.ReadFile(cfg.GRPC.ClientCA)
		if err != nil {
			return nil, fmt.Errorf("grpc.client_ca: %w", err)
		}
		k.clientCAs = x509.NewCertPool()
		if !k.clientCAs.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("grpc.client_ca: no PEM certificate in %s", cfg.GRPC.ClientCA)
		}
	} else {
		k.clientCA, k.clientCAs = k.serverCA, k.serverCA.Pool()
	}
	if k.pskSecret, err = pki.LoadOrCreateSecret(filepath.Join(dir, "psk.key")); err != nil {
		return nil, err
	}
	return k, nil
}

// serverHosts are the names in the certificate medfleetd issues itself:
// "medfleetd" (which agents check), loopback, the host name, and the
// listen addresses when they are specific.
func serverHosts(cfg Config) []string {
	hosts := []string{"medfleetd", "localhost", "127.0.0.1", "::1"}
	if h, err := os.Hostname(); err == nil && h != "" {
		hosts = append(hosts, h)
	}
	for _, a := range []string{cfg.GRPC.Listen, cfg.CoAP.DTLSListen} {
		if h, _, err := net.SplitHostPort(a); err == nil && h != "" {
			if ip := net.ParseIP(h); ip == nil || !ip.IsUnspecified() {
				hosts = append(hosts, h)
			}
		}
	}
	seen := map[string]bool{}
	out := hosts[:0]
	for _, h := range hosts {
		if !seen[h] {
			seen[h] = true
			out = append(out, h)
		}
	}
	return out
}

// grpcTLS is the API listener's TLS: a client certificate is optional
// (callers may send a token instead), but verified when given.
func (k *keys) grpcTLS() *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{k.serverCert},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    k.clientCAs,
		MinVersion:   tls.VersionTLS12,
	}
}
