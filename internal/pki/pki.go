// Package pki keeps medfleetd's certificate authorities and issues the
// certificates it needs: its own server certificate, users' client
// certificates and devices' DTLS certificates. Keys are ECDSA P-256, which
// every DTLS stack on a device supports; files are PEM, keys with mode 0600.
//
// It imports nothing from Medfleet.
package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Validity of what medfleetd creates for itself.
const (
	CAValidity     = 10 * 365 * 24 * time.Hour
	ServerValidity = 398 * 24 * time.Hour
)

// CA is a certificate authority whose key medfleetd holds.
type CA struct {
	Cert *x509.Certificate
	key  crypto.Signer
	pem  []byte
}

// LoadOrCreateCA reads dir/name.crt and dir/name.key, or creates them (a
// new self-signed CA named cn) when neither exists. One without the other is
// an error: a half-written CA must not be silently replaced.
func LoadOrCreateCA(dir, name, cn string, now time.Time) (*CA, error) {
	certPath, keyPath := filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	_, certErr := os.Stat(certPath)
	_, keyErr := os.Stat(keyPath)
	switch {
	case certErr == nil && keyErr == nil:
		return LoadCA(certPath, keyPath)
	case errors.Is(certErr, os.ErrNotExist) && errors.Is(keyErr, os.ErrNotExist):
	default:
		return nil, fmt.Errorf("pki: %s and %s must both exist or both be absent", certPath, keyPath)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          newSerial(),
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"Medfleet"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	if err := WriteKey(keyPath, key); err != nil {
		return nil, err
	}
	if err := writeFile(certPath, CertPEM(der), 0o644); err != nil {
		return nil, err
	}
	return LoadCA(certPath, keyPath)
}

// LoadCA reads a CA certificate and its key.
func LoadCA(certPath, keyPath string) (*CA, error) {
	pair, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("pki: %s: %w", certPath, err)
	}
	if !cert.IsCA {
		return nil, fmt.Errorf("pki: %s is not a CA certificate", certPath)
	}
	signer, ok := pair.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("pki: %s: key cannot sign", keyPath)
	}
	return &CA{Cert: cert, key: signer, pem: CertPEM(cert.Raw)}, nil
}

// PEM returns the CA certificate, PEM-encoded.
func (ca *CA) PEM() []byte { return bytes.Clone(ca.pem) }

// Pool returns a pool holding only this CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// Issue signs a leaf certificate for pub: a client certificate naming cn, and
// a server certificate too when hosts are given (DNS names and IPs).
func (ca *CA) Issue(pub crypto.PublicKey, cn string, hosts []string, now time.Time, validity time.Duration) (*x509.Certificate, error) {
	tmpl := &x509.Certificate{
		SerialNumber: newSerial(),
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"Medfleet"}},
		NotBefore:    now.Add(-time.Hour), // tolerate clocks a little behind
		NotAfter:     now.Add(validity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if tmpl.NotAfter.After(ca.Cert.NotAfter) {
		tmpl.NotAfter = ca.Cert.NotAfter
	}
	if len(hosts) > 0 {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
		for _, h := range hosts {
			if ip := net.ParseIP(h); ip != nil {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			} else {
				tmpl.DNSNames = append(tmpl.DNSNames, h)
			}
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.key)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	return x509.ParseCertificate(der)
}

// SignCSR checks a PKCS #10 request (PEM or DER) and issues a client
// certificate for its key naming cn; the request's own subject is ignored.
func (ca *CA) SignCSR(csr []byte, cn string, now time.Time, validity time.Duration) (*x509.Certificate, error) {
	if b, _ := pem.Decode(csr); b != nil {
		if b.Type != "CERTIFICATE REQUEST" {
			return nil, fmt.Errorf("a PEM %q block, want CERTIFICATE REQUEST", b.Type)
		}
		csr = b.Bytes
	}
	req, err := x509.ParseCertificateRequest(csr)
	if err != nil {
		return nil, fmt.Errorf("not a certificate request: %w", err)
	}
	if err := req.CheckSignature(); err != nil {
		return nil, fmt.Errorf("certificate request signature: %w", err)
	}
	switch k := req.PublicKey.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return nil, errors.New("ECDSA key: use P-256 or P-384")
		}
	default:
		return nil, fmt.Errorf("%T key: use ECDSA P-256", req.PublicKey)
	}
	return ca.Issue(req.PublicKey, cn, nil, now, validity)
}

// LoadOrCreateServerCert reads dir/name.crt and .key, or issues a server
// certificate from ca for hosts when they are absent or expire within 30
// days.
func LoadOrCreateServerCert(ca *CA, dir, name string, hosts []string, now time.Time) (tls.Certificate, error) {
	certPath, keyPath := filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	if pair, err := tls.LoadX509KeyPair(certPath, keyPath); err == nil {
		leaf, err := x509.ParseCertificate(pair.Certificate[0])
		if err == nil && now.Add(30*24*time.Hour).Before(leaf.NotAfter) && leaf.CheckSignatureFrom(ca.Cert) == nil {
			pair.Leaf = leaf
			return pair, nil
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	cert, err := ca.Issue(key.Public(), hosts[0], hosts, now, ServerValidity)
	if err != nil {
		return tls.Certificate{}, err
	}
	if err := WriteKey(keyPath, key); err != nil {
		return tls.Certificate{}, err
	}
	if err := writeFile(certPath, CertPEM(cert.Raw), 0o644); err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}, nil
}

// NewKey makes an ECDSA P-256 key.
func NewKey() (*ecdsa.PrivateKey, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) }

// CertPEM encodes a DER certificate as PEM.
func CertPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// KeyPEM encodes a private key as PKCS #8 PEM.
func KeyPEM(key crypto.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// WriteKey writes a private key as PEM with mode 0600.
func WriteKey(path string, key crypto.PrivateKey) error {
	b, err := KeyPEM(key)
	if err != nil {
		return err
	}
	return writeFile(path, b, 0o600)
}

// SerialHex formats a certificate serial number as the API shows it.
func SerialHex(c *x509.Certificate) string { return hex.EncodeToString(c.SerialNumber.Bytes()) }

// writeFile writes data to path through a temporary file and a rename, so
// that a crash never leaves half a key.
func writeFile(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("pki: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("pki: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("pki: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	return nil
}

// newSerial is a random 128-bit serial number (RFC 5280 allows up to 20
// octets; randomness makes serials unguessable).
func newSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return n.Add(n, big.NewInt(1))
}

// LoadOrCreateSecret reads a 32-byte secret kept in path as hex, or creates
// one with mode 0600.
func LoadOrCreateSecret(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		s, err := hex.DecodeString(string(bytes.TrimSpace(b)))
		if err != nil || len(s) != 32 {
			return nil, fmt.Errorf("pki: %s: not 32 bytes of hex", path)
		}
		return s, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("pki: %w", err)
	}
	s := make([]byte, 32)
	if _, err := rand.Read(s); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	return s, writeFile(path, []byte(hex.EncodeToString(s)+"\n"), 0o600)
}

// NewCSR makes a PKCS #10 request (DER) for key naming cn.
func NewCSR(key crypto.Signer, cn string) ([]byte, error) {
	return x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
}
