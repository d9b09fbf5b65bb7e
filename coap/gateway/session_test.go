package gateway

import (
	"context"
	"crypto/x509"
	"errors"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"time"

	piondtls "github.com/pion/dtls/v3"
	dtlsnet "github.com/pion/dtls/v3/pkg/net"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/medfleet/medfleet/coap"
	"github.com/medfleet/medfleet/internal/pki"
	"github.com/medfleet/medfleet/internal/telemetry"
)

// onePSK knows one device, with a PSK that can be revoked.
type onePSK struct {
	device  string
	key     []byte
	revoked atomic.Bool
}

func (c *onePSK) PSK(id string) ([]byte, error) {
	if id != c.device || c.revoked.Load() {
		return nil, errors.New("no such device")
	}
	return c.key, nil
}
func (c *onePSK) VerifyCertificate(*x509.Certificate) (string, uint64, error) {
	return "", 0, errors.New("no certificates")
}
func (c *onePSK) Generation(id string) (uint64, bool) { return 1, id == c.device && !c.revoked.Load() }
func (c *onePSK) Current(id string, gen uint64) bool {
	g, ok := c.Generation(id)
	return ok && g == gen
}

// startDTLSGateway serves DTLS on a loopback port with a fresh CA and
// creds until the test ends, and returns its address and metrics reader.
func startDTLSGateway(t *testing.T, cfg Config, backend Backend, creds Credentials, handshakeTimeout time.Duration) (*net.UDPAddr, *sdkmetric.ManualReader) {
	t.Helper()
	dir := t.TempDir()
	now := time.Now()
	ca, err := pki.LoadOrCreateCA(dir, "ca", "test CA", now)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := pki.LoadOrCreateServerCert(ca, dir, "medfleetd", []string{coap.ServerName}, now)
	if err != nil {
		t.Fatal(err)
	}
	reader := sdkmetric.NewManualReader()
	tel := telemetry.Providers{Tracer: tracenoop.NewTracerProvider(), Meter: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)), Propagator: telemetry.Propagator()}
	g, err := New(cfg, backend, slog.New(slog.DiscardHandler), tel)
	if err != nil {
		t.Fatal(err)
	}
	dcfg := DTLSConfig{Certificate: cert, DeviceCAs: ca.Pool(), Credentials: creds, HandshakeTimeout: handshakeTimeout}
	l, err := g.ListenDTLS("127.0.0.1:0", dcfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- g.ServeDTLS(ctx, l, dcfg) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("ServeDTLS: %v", err)
		}
	})
	return l.Addr().(*net.UDPAddr), reader
}

// dtlsPeer is a device's DTLS session with the gateway, speaking raw CoAP
// messages over it.
type dtlsPeer struct {
	t    *testing.T
	conn *piondtls.Conn
}

func dialPSK(t *testing.T, addr *net.UDPAddr, id string, key []byte) *dtlsPeer {
	t.Helper()
	return dialDTLS(t, addr,
		piondtls.WithPSK(func([]byte) ([]byte, error) { return key, nil }),
		piondtls.WithPSKIdentityHint([]byte(id)))
}

// dialDTLS opens a session with the gateway's suites and the credential
// opts give (none: one that authenticates only the server, to enrol).
func dialDTLS(t *testing.T, addr *net.UDPAddr, opts ...piondtls.ClientOption) *dtlsPeer {
	t.Helper()
	c, err := net.DialUDP("udp", nil, addr)
	if err != nil {
		t.Fatal(err)
	}
	dc, err := piondtls.ClientWithOptions(dtlsnet.PacketConnFromConn(c), c.RemoteAddr(), append(opts,
		piondtls.WithCipherSuites(coap.CipherSuites...),
		piondtls.WithExtendedMasterSecret(piondtls.RequireExtendedMasterSecret))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dc.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := dc.HandshakeContext(ctx); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	return &dtlsPeer{t: t, conn: dc}
}

func (p *dtlsPeer) send(m message.Message) {
	p.t.Helper()
	if _, err := p.conn.Write(encodeMessage(p.t, m)); err != nil {
		p.t.Fatal(err)
	}
}

// recv returns the next message, or the read's error after wait.
func (p *dtlsPeer) recv(wait time.Duration) (message.Message, error) {
	p.t.Helper()
	b := make([]byte, 2048)
	p.conn.SetReadDeadline(time.Now().Add(wait))
	n, err := p.conn.Read(b)
	if err != nil {
		return message.Message{}, err
	}
	m, err := decode(b[:n])
	if err != nil {
		p.t.Fatalf("undecodable answer: %v", err)
	}
	return m, nil
}

// TestDTLSSession: the gateway's own DTLS sessions answer a report once,
// answer its retransmission from the session's last exchange, read a
// request too large for the first read on its retransmission, hold a
// session to its rate, and close a session whose credential was revoked
// and one that stays idle.
func TestDTLSSession(t *testing.T) {
	creds := &onePSK{device: "pump-1", key: []byte("0123456789abcdef")}
	backend := &counting{}
	cfg := DefaultConfig()
	cfg.IdleTimeout = 2 * time.Second
	cfg.MaxPeerRate, cfg.MaxPeerBurst = 1, 3
	addr, _ := startDTLSGateway(t, cfg, backend, creds, 5*time.Second)
	p := dialPSK(t, addr, "pump-1", creds.key)

	p.send(report(1, message.Confirmable))
	first, err := p.recv(2 * time.Second)
	if err != nil || first.Code != codes.Changed || first.Type != message.Acknowledgement || first.MessageID != 1 {
		t.Fatalf("report: %v %v (mid %d), %v; want 2.04 piggy-backed on the ACK of mid 1", first.Type, first.Code, first.MessageID, err)
	}
	p.send(report(1, message.Confirmable)) // the device missed the ACK
	again, err := p.recv(2 * time.Second)
	if err != nil || again.Code != codes.Changed || again.MessageID != 1 || backend.reports.Load() != 1 {
		t.Fatalf("retransmission: %v (mid %d), %v, %d reports handled; want the same 2.04 and the report handled once",
			again.Code, again.MessageID, err, backend.reports.Load())
	}

	// Over 2 KiB: the first transmission is lost, the retransmission read
	// (and refused: it is no SenML).
	big := report(2, message.Confirmable)
	big.Payload = make([]byte, 4<<10)
	p.send(big)
	if m, err := p.recv(500 * time.Millisecond); err == nil {
		t.Fatalf("a record over the small buffer was answered %v on its first transmission; want it lost", m.Code)
	}
	p.send(big)
	m, err := p.recv(2 * time.Second)
	if err != nil || m.Code != codes.BadRequest || m.MessageID != 2 {
		t.Fatalf("retransmission of a 4 KiB payload: %v (mid %d), %v; want 4.00", m.Code, m.MessageID, err)
	}

	// The bucket (burst 3, 1 a second) is empty after three requests.
	p.send(report(3, message.Confirmable))
	if m, err = p.recv(2 * time.Second); err != nil || m.Code != codes.TooManyRequests {
		t.Fatalf("fourth request in a second: %v, %v; want 4.29", m.Code, err)
	}
	if _, err := message.Options(m.Options).GetUint32(message.MaxAge); err != nil {
		t.Errorf("4.29 without Max-Age: %v", err)
	}

	time.Sleep(1100 * time.Millisecond) // a token back
	creds.revoked.Store(true)
	p.send(report(4, message.Confirmable))
	if m, err := p.recv(2 * time.Second); err != nil || m.Code != codes.Forbidden {
		t.Fatalf("report after revocation: %v, %v; want 4.03", m.Code, err)
	}
	if _, err := p.recv(2 * time.Second); err == nil || isTimeout(err) {
		t.Fatalf("after the 4.03 the session reads %v; want it closed by the server", err)
	}

	creds.revoked.Store(false)
	idle := dialPSK(t, addr, "pump-1", creds.key)
	start := time.Now()
	if _, err := idle.recv(5 * time.Second); err == nil || isTimeout(err) {
		t.Fatalf("an idle session reads %v after %v; want it closed after coap.idle_timeout (2s)", err, time.Since(start))
	}
}

// TestDTLSEnrolSessionIdle: a session that authenticated only the server
// is closed after enrolIdleTimeout without a request; a device's session
// is not.
func TestDTLSEnrolSessionIdle(t *testing.T) {
	// Restored after the gateway below has stopped (cleanups run last
	// first), when no session reads it any more.
	t.Cleanup(func(d time.Duration) func() { return func() { enrolIdleTimeout = d } }(enrolIdleTimeout))
	enrolIdleTimeout = 500 * time.Millisecond
	creds := &onePSK{device: "pump-1", key: []byte("0123456789abcdef")}
	addr, _ := startDTLSGateway(t, DefaultConfig(), &counting{}, creds, 5*time.Second)

	p := dialDTLS(t, addr, piondtls.WithInsecureSkipVerify(true)) // the server's side is under test
	device := dialPSK(t, addr, "pump-1", creds.key)

	if _, err := p.recv(3 * time.Second); err == nil || isTimeout(err) {
		t.Errorf("an idle enrolment session reads %v; want it closed after %v", err, enrolIdleTimeout)
	}
	if _, err := device.recv(500 * time.Millisecond); !isTimeout(err) {
		t.Errorf("an idle device session reads %v; want it open (coap.idle_timeout is %v)", err, DefaultConfig().IdleTimeout)
	}
}
