package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	piondtls "github.com/pion/dtls/v3"
	"github.com/plgd-dev/go-coap/v3/dtls"
	"github.com/plgd-dev/go-coap/v3/udp"
	udpclient "github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/medfleet/medfleet/coap"
	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// benchPSKs issues a PSK to bench-00..bench-63 and returns them.
func benchPSKs(b *testing.B, ts *testServer) [][]byte {
	creds := pb.NewCredentialServiceClient(ts.conn)
	keys := make([][]byte, benchDevices)
	for i := range keys {
		r, err := creds.IssueDeviceCredential(b.Context(), &pb.IssueDeviceCredentialRequest{
			Device: fmt.Sprintf("devices/bench-%02d", i), Kind: pb.CredentialKind_CREDENTIAL_KIND_PSK})
		if err != nil {
			b.Fatal(err)
		}
		keys[i] = r.Psk
	}
	return keys
}

func dialPSK(addr, identity string, key []byte) (*udpclient.Conn, error) {
	return dtls.Dial(addr, dtls.NewDTLSClientOptions(
		piondtls.WithPSK(func([]byte) ([]byte, error) { return key, nil }),
		piondtls.WithPSKIdentityHint([]byte(identity)),
		piondtls.WithCipherSuites(coap.CipherSuites...),
		piondtls.WithExtendedMasterSecret(piondtls.RequireExtendedMasterSecret)))
}

// BenchmarkTransport compares the steady-state cost of a report over plain
// CoAP and over an established DTLS (PSK, AES-128-CCM-8) session, on one
// server serving both, 64 devices each with its own session:
//
//	go test ./server -run XXX -bench Transport -benchtime 20000x -count 6
func BenchmarkTransport(b *testing.B) {
	cfg := secureConfig(b)
	cfg.CoAP.Insecure = true // plain CoAP beside DTLS, for the comparison
	ts := startServer(b, cfg)
	keys := benchPSKs(b, ts)
	plain, secure := ts.srv.Addrs().CoAP.String(), ts.srv.Addrs().CoAPDTLS.String()
	b.Run("coap", func(b *testing.B) {
		benchmarkIngest(b, func(int) (*udpclient.Conn, error) { return udp.Dial(plain) })
	})
	b.Run("coaps-psk", func(b *testing.B) {
		benchmarkIngest(b, func(i int) (*udpclient.Conn, error) {
			return dialPSK(secure, fmt.Sprintf("bench-%02d", i), keys[i])
		})
	})
}

// BenchmarkDTLSHandshake measures full handshakes (each followed by one
// heartbeat, which completes it) from 8 concurrent devices, with a PSK
// and with a device certificate (ECDHE-ECDSA P-256):
//
//	go test ./server -run XXX -bench DTLSHandshake -benchtime 400x -count 6
func BenchmarkDTLSHandshake(b *testing.B) {
	cfg := secureConfig(b)
	ts := startServer(b, cfg)
	addr := ts.srv.Addrs().CoAPDTLS.String()
	keys := benchPSKs(b, ts)
	creds := pb.NewCredentialServiceClient(ts.conn)
	cert, err := creds.IssueDeviceCredential(b.Context(), &pb.IssueDeviceCredentialRequest{Device: "devices/bench-cert", Kind: pb.CredentialKind_CREDENTIAL_KIND_CERTIFICATE})
	if err != nil {
		b.Fatal(err)
	}
	pair, err := tls.X509KeyPair([]byte(cert.Certificate), []byte(cert.PrivateKey))
	if err != nil {
		b.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(cert.CaCertificate))
	reg, _ := (&coap.Registration{Profile: "infusion-pump", Model: "Alaris 8100"}).Encode(coap.FormatCBOR)

	handshakes := func(b *testing.B, dial func(i int) (*udpclient.Conn, string, error)) {
		var next atomic.Int64
		b.SetParallelism(4) // 8 goroutines on 2 cores
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				i := int(next.Add(1))
				cc, ep, err := dial(i)
				if err != nil {
					b.Error(err)
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				code, _, err := tryPostCtx(ctx, cc, "/rd", coap.FormatCBOR, reg, "ep="+ep, "lt=3600")
				cancel()
				cc.Close()
				if err != nil || code.String() != "Created" {
					b.Errorf("register %s: %v %v", ep, code, err)
					return
				}
			}
		})
		b.StopTimer()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "handshakes/s")
	}
	b.Run("psk", func(b *testing.B) {
		handshakes(b, func(i int) (*udpclient.Conn, string, error) {
			ep := fmt.Sprintf("bench-%02d", i%benchDevices)
			cc, err := dialPSK(addr, ep, keys[i%benchDevices])
			return cc, ep, err
		})
	})
	b.Run("cert", func(b *testing.B) {
		handshakes(b, func(int) (*udpclient.Conn, string, error) {
			cc, err := dtls.Dial(addr, dtls.NewDTLSClientOptions(
				piondtls.WithCertificates(pair), piondtls.WithRootCAs(pool), piondtls.WithServerName(coap.ServerName),
				piondtls.WithCipherSuites(coap.CipherSuites...),
				piondtls.WithExtendedMasterSecret(piondtls.RequireExtendedMasterSecret)))
			return cc, "bench-cert", err
		})
	})
}
