package agent

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	piondtls "github.com/pion/dtls/v3"
	"github.com/plgd-dev/go-coap/v3/dtls"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/mux"
	coapnet "github.com/plgd-dev/go-coap/v3/net"
	"github.com/plgd-dev/go-coap/v3/options"
	udpclient "github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/medfleet/medfleet/coap"
)

// testDTLS is the DTLS side of a testServer: the credentials it knows,
// the sessions it saw and the enrolments it served. Guarded by the
// server's mutex.
type testDTLS struct {
	pki        *testPKI
	psks       map[string][]byte // by device
	gen        map[string]int    // credential generation by device: sessions of an older one are refused
	attempts   map[string]int    // PSK handshakes begun, by identity
	sessions   []testSession     // handshakes completed, in order
	forbidden  int               // requests answered 4.03 for their identity
	tokens     map[string]string // enrolment token -> device
	used       map[string]bool   // tokens traded
	enrolments []string          // ep of every POST /bs, in order
	bsCode     codes.Code        // when set, the answer to every POST /bs
	bsFailures int               // POST /bs answered 5.03 before the real answer
}

// testSession is what a handshake authenticated: ID is "" for a session
// without a client credential (enrolment).
type testSession struct {
	ID   string
	Cert bool
	Gen  int
}

type peerKey struct{}

// startDTLSTestServer starts a DTLS server on a free loopback port, with a
// fresh test PKI; it stops at the end of the test.
func startDTLSTestServer(t *testing.T) *testServer {
	t.Helper()
	s := &testServer{
		t: t, known: map[string]bool{}, last: map[string]uint64{},
		accepted: map[string][]*coap.Report{}, refused: map[string][]uint64{}, refuseSeq: map[uint64]bool{},
		dtls: testDTLS{
			pki: newTestPKI(t), psks: map[string][]byte{}, gen: map[string]int{}, attempts: map[string]int{},
			tokens: map[string]string{}, used: map[string]bool{},
		},
	}
	s.start("127.0.0.1:0")
	t.Cleanup(s.stop)
	return s
}

func (s *testServer) startDTLS(addr string) {
	p := s.dtls.pki
	clientCAs := x509.NewCertPool()
	clientCAs.AddCert(p.deviceCA)
	opts := coapnet.NewDTLSServerOptions(
		piondtls.WithPSK(s.pskFor),
		piondtls.WithCertificates(p.server),
		piondtls.WithClientCAs(clientCAs),
		piondtls.WithClientAuth(piondtls.VerifyClientCertIfGiven),
		piondtls.WithCipherSuites(coap.CipherSuites...),
		piondtls.WithExtendedMasterSecret(piondtls.RequireExtendedMasterSecret),
		piondtls.WithConnectionIDGenerator(piondtls.RandomCIDGenerator(8)),
	)
	var l *coapnet.DTLSListener
	var err error
	for range 50 {
		if l, err = coapnet.NewDTLSListener("udp", addr, opts); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		s.t.Fatalf("listen %s: %v", addr, err)
	}
	s.addr = l.Addr().String()
	srv := dtls.NewServer(options.WithMux(s.router()), options.WithErrors(func(error) {}),
		options.WithDTLSHandshakeTimeout(2*time.Second),
		options.WithInactivityMonitor(time.Minute, func(cc *udpclient.Conn) { _ = cc.Close() }),
		options.WithOnNewConn(s.onNewConn))
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(l)
	}()
	s.mu.Lock()
	s.srv, s.l, s.done = srv, l, done
	s.mu.Unlock()
}

func (s *testServer) pskFor(identity []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dtls.attempts[string(identity)]++
	if psk, ok := s.dtls.psks[string(identity)]; ok {
		return psk, nil
	}
	return nil, fmt.Errorf("unknown PSK identity %q", identity)
}

// onNewConn reads what the handshake (which go-coap's server has run
// already) authenticated and keeps it on the connection.
func (s *testServer) onNewConn(cc *udpclient.Conn) {
	dc, ok := cc.NetConn().(*piondtls.Conn)
	if !ok {
		s.t.Errorf("connection is a %T, not a DTLS connection", cc.NetConn())
		_ = cc.Close()
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := dc.HandshakeContext(ctx); err != nil {
		_ = cc.Close()
		return
	}
	st, ok := dc.ConnectionState()
	if !ok {
		_ = cc.Close()
		return
	}
	p := testSession{ID: string(st.IdentityHint)}
	if len(st.PeerCertificates) > 0 {
		crt, err := x509.ParseCertificate(st.PeerCertificates[0])
		if err != nil {
			_ = cc.Close()
			return
		}
		p.ID, p.Cert = crt.Subject.CommonName, true
	}
	s.mu.Lock()
	p.Gen = s.dtls.gen[p.ID]
	s.dtls.sessions = append(s.dtls.sessions, p)
	s.mu.Unlock()
	cc.SetContextValue(peerKey{}, p)
}

// authorized checks, under the lock, that a request's ep is the identity
// its session authenticated with a current credential, and answers 4.03
// when it is not.
func (s *testServer) authorized(w mux.ResponseWriter, r *mux.Message, ep string) bool {
	if s.dtls.pki == nil {
		return true
	}
	p, _ := r.Context().Value(peerKey{}).(testSession)
	var diag string
	switch {
	case p.ID == "":
		diag = "no client credential: only POST /bs"
	case p.ID != ep:
		diag = "ep: not the authenticated identity"
	case p.Gen != s.dtls.gen[p.ID]:
		diag = "credential rotated or revoked"
	default:
		return true
	}
	s.dtls.forbidden++
	s.diagnose(w, codes.Forbidden, diag)
	return false
}

// handleBootstrap is POST /bs?ep={device}: a token for a credential.
func (s *testServer) handleBootstrap(w mux.ResponseWriter, r *mux.Message) {
	ep := query(r, coap.QueryEndpoint)
	body, _ := r.ReadBody()
	format, _ := r.ContentFormat()
	s.mu.Lock()
	defer s.mu.Unlock()
	d := &s.dtls
	if d.pki == nil {
		s.respond(w, codes.NotFound, nil)
		return
	}
	d.enrolments = append(d.enrolments, ep)
	if p, _ := r.Context().Value(peerKey{}).(testSession); p.ID != "" {
		s.diagnose(w, codes.Forbidden, "enrolment needs a session without a client credential")
		return
	}
	if d.bsFailures > 0 {
		d.bsFailures--
		s.diagnose(w, codes.ServiceUnavailable, "busy")
		return
	}
	if d.bsCode != 0 {
		s.diagnose(w, d.bsCode, "token: expired")
		return
	}
	req, err := coap.DecodeEnrolRequest(format, body)
	if err != nil {
		s.diagnose(w, codes.BadRequest, err.Error())
		return
	}
	switch {
	case d.tokens[req.Token] != ep:
		s.diagnose(w, codes.Forbidden, "token: invalid, or for another device")
		return
	case d.used[req.Token]:
		s.diagnose(w, codes.Forbidden, "token: used")
		return
	}
	d.used[req.Token] = true
	resp := coap.EnrolResponse{Kind: req.Kind, CA: d.pki.ca.Raw}
	switch req.Kind {
	case coap.KindPSK:
		resp.PSK = make([]byte, 32)
		_, _ = rand.Read(resp.PSK)
		d.psks[ep] = resp.PSK
	case coap.KindCertificate:
		if resp.Certificate, err = d.pki.signCSR(req.CSR, ep); err != nil {
			s.diagnose(w, codes.BadRequest, "csr: "+err.Error())
			return
		}
	}
	d.gen[ep]++
	out, err := resp.Encode()
	if err != nil {
		s.t.Errorf("encode enrolment response: %v", err)
	}
	_ = w.SetResponse(codes.Changed, coap.FormatCBOR, bytes.NewReader(out))
}

// withDTLS runs f under the server's lock.
func (s *testServer) withDTLS(f func(d *testDTLS)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(&s.dtls)
}

// testPKI is Medfleet's CA (which signs medfleetd's certificate) and the
// device CA (which signs device certificates), both ECDSA P-256.
type testPKI struct {
	ca        *x509.Certificate
	caPEM     []byte
	server    tls.Certificate // DNS name medfleetd
	deviceCA  *x509.Certificate
	deviceKey *ecdsa.PrivateKey
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	p := &testPKI{}
	var caKey *ecdsa.PrivateKey
	p.ca, caKey = testCA(t, "Medfleet test CA")
	p.caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.ca.Raw})
	p.deviceCA, p.deviceKey = testCA(t, "Medfleet test device CA")
	key := testKey(t)
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: testSerial(t),
		Subject:      pkix.Name{CommonName: coap.ServerName},
		DNSNames:     []string{coap.ServerName},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, p.ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	p.server = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	return p
}

func testKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func testSerial(t *testing.T) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func testCA(t *testing.T, name string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key := testKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          testSerial(t),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return ca, key
}

// signCSR issues a device certificate for a PKCS #10 request whose common
// name is id.
func (p *testPKI) signCSR(der []byte, id string) ([]byte, error) {
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, err
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, err
	}
	if csr.Subject.CommonName != id {
		return nil, fmt.Errorf("common name %q is not %q", csr.Subject.CommonName, id)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, err
	}
	return x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: id},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, p.deviceCA, csr.PublicKey, p.deviceKey)
}

// deviceCredentials issues a certificate credential for id, as medfleetctl
// would write it.
func (p *testPKI) deviceCredentials(t *testing.T, id string) Credentials {
	t.Helper()
	key := testKey(t)
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: id}}, key)
	if err != nil {
		t.Fatal(err)
	}
	der, err := p.signCSR(csr, id)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return Credentials{
		Device: id, Kind: coap.KindCertificate, Certificate: certificatePEM(der),
		PrivateKey: string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})),
		CA:         string(p.caPEM),
	}
}

// logBuffer collects log lines for a test to search, safe for concurrent
// writers.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// capturedLogger logs at DEBUG to the test's output and to the returned
// buffer.
func capturedLogger(t *testing.T) (*slog.Logger, *logBuffer) {
	b := &logBuffer{}
	h := slog.NewTextHandler(io.MultiWriter(t.Output(), b), &slog.HandlerOptions{Level: slog.LevelDebug})
	return slog.New(h), b
}

// checkNoSecrets fails the test when a secret shows in the logs, as it is
// or in base64 or hex.
func checkNoSecrets(t *testing.T, logs string, secrets ...[]byte) {
	t.Helper()
	for _, s := range secrets {
		if len(s) == 0 {
			continue
		}
		for _, form := range []string{string(s), base64.StdEncoding.EncodeToString(s), hex.EncodeToString(s)} {
			if strings.Contains(logs, form) {
				t.Errorf("a secret shows in the logs: %q", form)
			}
		}
	}
}

// dtlsConfig is testConfig for a DTLS server: Medfleet's CA given, the
// credentials file in a fresh state directory.
func dtlsConfig(t *testing.T, srv *testServer, id, profile string) Config {
	cfg := testConfig(srv.addr, id, profile)
	cfg.Insecure = false
	cfg.CA = srv.dtls.pki.caPEM
	cfg.StateDir = t.TempDir()
	cfg.HandshakeTimeout = 2 * time.Second
	return cfg
}

// testToken is an enrolment token of the shape the server issues.
func testToken(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "mfe_" + fmt.Sprintf("%016x", b[:8]) + "_" + base64.RawURLEncoding.EncodeToString(b)
}

func testPSK(t *testing.T) []byte {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// sessionsOf returns the sessions the server saw for id.
func (s *testServer) sessionsOf(id string) []testSession {
	var out []testSession
	s.withDTLS(func(d *testDTLS) {
		for _, p := range d.sessions {
			if p.ID == id {
				out = append(out, p)
			}
		}
	})
	return out
}

func TestAgentDTLS(t *testing.T) {
	tests := []struct {
		name string
		kind string
	}{
		{name: "psk", kind: coap.KindPSK},
		{name: "certificate", kind: coap.KindCertificate},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := startDTLSTestServer(t)
			cfg := dtlsConfig(t, srv, "pump-0101", coap.ProfileInfusionPump)
			var creds Credentials
			var secret []byte
			if tc.kind == coap.KindPSK {
				secret = testPSK(t)
				creds = Credentials{Device: cfg.DeviceID, Kind: coap.KindPSK, PSK: secret}
				srv.withDTLS(func(d *testDTLS) { d.psks[cfg.DeviceID] = secret })
			} else {
				creds = srv.dtls.pki.deviceCredentials(t, cfg.DeviceID)
				secret = []byte(creds.PrivateKey)
				cfg.CA = nil // the credentials file carries it
			}
			cfg.CredentialsFile = filepath.Join(t.TempDir(), "device.creds")
			if err := WriteCredentials(cfg.CredentialsFile, creds, false); err != nil {
				t.Fatal(err)
			}
			log, logs := capturedLogger(t)
			a, err := New(cfg, log)
			if err != nil {
				t.Fatal(err)
			}
			r := startAgent(t, a)
			waitFor(t, 5*time.Second, "3 reports", func() bool { return len(srv.reports(cfg.DeviceID)) >= 3 })
			if err := r.stop(); err != nil {
				t.Fatalf("Run() = %v, want nil", err)
			}

			sessions := srv.sessionsOf(cfg.DeviceID)
			if len(sessions) != 1 || sessions[0].Cert != (tc.kind == coap.KindCertificate) {
				t.Errorf("sessions of %s = %+v, want one, authenticated by %s", cfg.DeviceID, sessions, tc.kind)
			}
			srv.withDTLS(func(d *testDTLS) {
				if d.forbidden != 0 || len(d.enrolments) != 0 {
					t.Errorf("%d requests refused for their identity, %d enrolments; want 0, 0", d.forbidden, len(d.enrolments))
				}
			})
			if regs := srv.registrations(); len(regs) != 1 || regs[0].ID != cfg.DeviceID {
				t.Errorf("registrations = %+v, want one of %s", regs, cfg.DeviceID)
			}
			srv.with(func(s *testServer) {
				if s.deletes != 1 {
					t.Errorf("%d deregistrations, want 1", s.deletes)
				}
			})
			checkContiguous(t, srv.reports(cfg.DeviceID), 1)
			checkNoSecrets(t, logs.String(), secret)
			if !strings.Contains(logs.String(), "mode=dtls") {
				t.Errorf("logs do not say the agent speaks DTLS:\n%s", logs)
			}
		})
	}
}

func TestAgentEnrols(t *testing.T) {
	tests := []struct {
		name string
		kind string
	}{
		{name: "psk", kind: coap.KindPSK},
		{name: "certificate", kind: coap.KindCertificate},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := startDTLSTestServer(t)
			cfg := dtlsConfig(t, srv, "cpap-0101", coap.ProfileCPAP)
			cfg.EnrolToken, cfg.EnrolKind = testToken(t), tc.kind
			srv.withDTLS(func(d *testDTLS) { d.tokens[cfg.EnrolToken] = cfg.DeviceID })
			log, logs := capturedLogger(t)
			a, err := New(cfg, log)
			if err != nil {
				t.Fatal(err)
			}
			r := startAgent(t, a)
			waitFor(t, 5*time.Second, "3 reports", func() bool { return len(srv.reports(cfg.DeviceID)) >= 3 })
			if err := r.stop(); err != nil {
				t.Fatalf("Run() = %v, want nil", err)
			}

			path := filepath.Join(cfg.StateDir, CredentialsFile)
			info, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if info.Mode().Perm() != 0o600 {
				t.Errorf("%s mode = %v, want 0600", path, info.Mode().Perm())
			}
			creds, err := ReadCredentials(path)
			if err != nil {
				t.Fatal(err)
			}
			if creds.Device != cfg.DeviceID || creds.Kind != tc.kind || creds.CA != string(srv.dtls.pki.caPEM) {
				t.Errorf("credentials = %v with ca %q, want device %s, kind %s and the CA", creds, creds.CA, cfg.DeviceID, tc.kind)
			}
			var secret []byte
			srv.withDTLS(func(d *testDTLS) {
				if len(d.enrolments) != 1 || d.enrolments[0] != cfg.DeviceID {
					t.Errorf("enrolments = %q, want one of %s", d.enrolments, cfg.DeviceID)
				}
				if tc.kind == coap.KindPSK && !bytes.Equal(creds.PSK, d.psks[cfg.DeviceID]) {
					t.Error("the saved PSK is not the one the server issued")
				}
				secret = d.psks[cfg.DeviceID]
				// The enrolment session authenticated no device; the
				// operational one did.
				if len(d.sessions) < 2 || d.sessions[0].ID != "" {
					t.Errorf("sessions = %+v, want an enrolment session first", d.sessions)
				}
				if d.forbidden != 0 {
					t.Errorf("%d requests refused for their identity, want 0", d.forbidden)
				}
			})
			if tc.kind == coap.KindCertificate {
				if _, err := creds.check(cfg.DeviceID); err != nil {
					t.Errorf("saved certificate credential: %v", err)
				}
				secret = []byte(creds.PrivateKey)
			}
			if s := srv.sessionsOf(cfg.DeviceID); len(s) != 1 || s[0].Cert != (tc.kind == coap.KindCertificate) {
				t.Errorf("sessions of %s = %+v, want one, authenticated by %s", cfg.DeviceID, s, tc.kind)
			}

			// A restart uses the saved credential: no second enrolment.
			r = runAgent(t, cfg)
			before := len(srv.reports(cfg.DeviceID))
			waitFor(t, 5*time.Second, "2 more reports", func() bool { return len(srv.reports(cfg.DeviceID)) >= before+2 })
			if err := r.stop(); err != nil {
				t.Fatalf("second Run() = %v, want nil", err)
			}
			srv.withDTLS(func(d *testDTLS) {
				if len(d.enrolments) != 1 {
					t.Errorf("%d enrolments after a restart, want still 1", len(d.enrolments))
				}
			})
			checkContiguous(t, srv.reports(cfg.DeviceID), 1)
			checkNoSecrets(t, logs.String(), []byte(cfg.EnrolToken), secret)
		})
	}
}

// TestAgentEnrolsInMemory enrols a device with no state directory: the
// credential is kept in memory, and nothing is written.
func TestAgentEnrolsInMemory(t *testing.T) {
	srv := startDTLSTestServer(t)
	cfg := dtlsConfig(t, srv, "rfid-0101", coap.ProfileRFIDReader)
	cfg.StateDir = ""
	cfg.EnrolToken = testToken(t)
	srv.withDTLS(func(d *testDTLS) { d.tokens[cfg.EnrolToken] = cfg.DeviceID })
	r := runAgent(t, cfg)
	waitFor(t, 5*time.Second, "2 reports", func() bool { return len(srv.reports(cfg.DeviceID)) >= 2 })
	if err := r.stop(); err != nil {
		t.Fatalf("Run() = %v, want nil", err)
	}
	if s := srv.sessionsOf(cfg.DeviceID); len(s) != 1 {
		t.Errorf("sessions of %s = %+v, want one", cfg.DeviceID, s)
	}
}

func TestAgentEnrolRefused(t *testing.T) {
	tests := []struct {
		name string
		code codes.Code
	}{
		{name: "forbidden", code: codes.Forbidden},
		{name: "bad request", code: codes.BadRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := startDTLSTestServer(t)
			srv.withDTLS(func(d *testDTLS) { d.bsCode = tc.code })
			cfg := dtlsConfig(t, srv, "pump-0102", coap.ProfileInfusionPump)
			cfg.EnrolToken = testToken(t)
			log, logs := capturedLogger(t)
			a, err := New(cfg, log)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			err = a.Run(ctx)
			if !errors.Is(err, ErrEnrolRefused) {
				t.Fatalf("Run() = %v, want ErrEnrolRefused", err)
			}
			if ctx.Err() != nil {
				t.Error("Run returned only when its context ended, want at once")
			}
			srv.withDTLS(func(d *testDTLS) {
				if len(d.enrolments) != 1 {
					t.Errorf("%d enrolment attempts, want 1: the token is not tried again", len(d.enrolments))
				}
			})
			if _, err := os.Stat(filepath.Join(cfg.StateDir, CredentialsFile)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("credentials file after a refused enrolment: %v, want none", err)
			}
			if !strings.Contains(logs.String(), "token: expired") {
				t.Errorf("logs lack the server's diagnostic:\n%s", logs)
			}
			checkNoSecrets(t, logs.String(), []byte(cfg.EnrolToken))
		})
	}
}

// TestAgentEnrolRetries checks that an enrolment answered 5.03 is tried
// again, with the same token, after a backoff.
func TestAgentEnrolRetries(t *testing.T) {
	srv := startDTLSTestServer(t)
	cfg := dtlsConfig(t, srv, "pump-0103", coap.ProfileInfusionPump)
	cfg.EnrolToken = testToken(t)
	srv.withDTLS(func(d *testDTLS) {
		d.tokens[cfg.EnrolToken] = cfg.DeviceID
		d.bsFailures = 2
	})
	r := runAgent(t, cfg)
	waitFor(t, 5*time.Second, "2 reports", func() bool { return len(srv.reports(cfg.DeviceID)) >= 2 })
	if err := r.stop(); err != nil {
		t.Fatalf("Run() = %v, want nil", err)
	}
	srv.withDTLS(func(d *testDTLS) {
		if len(d.enrolments) != 3 {
			t.Errorf("%d enrolment attempts, want 3 (two answered 5.03)", len(d.enrolments))
		}
	})
}

// TestAgentWrongPSK runs a device whose PSK the server does not share: the
// handshake fails, the agent backs off and tries again, and says so once.
// Then a corrected credentials file is dropped in, which the next session
// uses.
func TestAgentWrongPSK(t *testing.T) {
	srv := startDTLSTestServer(t)
	cfg := dtlsConfig(t, srv, "pump-0104", coap.ProfileInfusionPump)
	// A server that cannot decrypt the client's Finished drops it (RFC 6347
	// section 4.1.2.7): the client learns of it by its handshake timeout.
	cfg.HandshakeTimeout = 150 * time.Millisecond
	good, wrong := testPSK(t), testPSK(t)
	srv.withDTLS(func(d *testDTLS) { d.psks[cfg.DeviceID] = good })
	path := filepath.Join(cfg.StateDir, CredentialsFile)
	if err := WriteCredentials(path, Credentials{Device: cfg.DeviceID, Kind: coap.KindPSK, PSK: wrong}, false); err != nil {
		t.Fatal(err)
	}
	log, logs := capturedLogger(t)
	a, err := New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	r := startAgent(t, a)
	attempts := func() (n int) {
		srv.withDTLS(func(d *testDTLS) { n = d.attempts[cfg.DeviceID] })
		return n
	}
	waitFor(t, 5*time.Second, "4 handshakes", func() bool { return attempts() >= 4 })
	elapsed := time.Since(start)
	if n := len(srv.registrations()); n != 0 {
		t.Errorf("%d registrations without a handshake, want 0", n)
	}
	// One attempt per handshake timeout and backoff, not more.
	if n := attempts(); n > 1+int(elapsed/cfg.HandshakeTimeout) {
		t.Errorf("%d handshakes in %v with a handshake timeout of %v", n, elapsed, cfg.HandshakeTimeout)
	}
	if got := strings.Count(logs.String(), "DTLS handshake failed"); got < 1 {
		t.Errorf("logs do not say that the DTLS handshake failed:\n%s", logs)
	}
	if got := strings.Count(logs.String(), "msg=\"DTLS handshake failed"); got != 1 {
		t.Errorf("%d log lines on failed handshakes, want 1 (not one per retry)", got)
	}

	if err := WriteCredentials(path, Credentials{Device: cfg.DeviceID, Kind: coap.KindPSK, PSK: good}, false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "2 reports with the corrected PSK", func() bool { return len(srv.reports(cfg.DeviceID)) >= 2 })
	if err := r.stop(); err != nil {
		t.Fatalf("Run() = %v, want nil", err)
	}
	checkNoSecrets(t, logs.String(), good, wrong)
}

// TestAgentCredentialRotated rotates a device's PSK while it runs: the
// server refuses (4.03) requests of the old session, and the agent, after
// its refused backoff, reads the rotated credentials file and goes on in a
// new session.
func TestAgentCredentialRotated(t *testing.T) {
	srv := startDTLSTestServer(t)
	cfg := dtlsConfig(t, srv, "pump-0105", coap.ProfileInfusionPump)
	cfg.RefusedBackoff = 50 * time.Millisecond
	old, rotated := testPSK(t), testPSK(t)
	srv.withDTLS(func(d *testDTLS) { d.psks[cfg.DeviceID] = old })
	path := filepath.Join(cfg.StateDir, CredentialsFile)
	if err := WriteCredentials(path, Credentials{Device: cfg.DeviceID, Kind: coap.KindPSK, PSK: old}, false); err != nil {
		t.Fatal(err)
	}
	log, logs := capturedLogger(t)
	a, err := New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	r := startAgent(t, a)
	waitFor(t, 5*time.Second, "2 reports", func() bool { return len(srv.reports(cfg.DeviceID)) >= 2 })

	if err := WriteCredentials(path, Credentials{Device: cfg.DeviceID, Kind: coap.KindPSK, PSK: rotated}, false); err != nil {
		t.Fatal(err)
	}
	var before int
	srv.withDTLS(func(d *testDTLS) {
		d.psks[cfg.DeviceID] = rotated
		d.gen[cfg.DeviceID]++
		before = len(srv.accepted[cfg.DeviceID])
	})
	waitFor(t, 5*time.Second, "2 reports after the rotation", func() bool { return len(srv.reports(cfg.DeviceID)) >= before+2 })
	if err := r.stop(); err != nil {
		t.Fatalf("Run() = %v, want nil", err)
	}
	srv.withDTLS(func(d *testDTLS) {
		if d.forbidden == 0 {
			t.Error("no request was refused after the rotation: the test did not rotate")
		}
	})
	sessions := srv.sessionsOf(cfg.DeviceID)
	if len(sessions) != 2 || sessions[1].Gen != 1 {
		t.Errorf("sessions = %+v, want a second one with the rotated credential", sessions)
	}
	if !strings.Contains(logs.String(), "server refused the device") || !strings.Contains(logs.String(), "credentials file changed") {
		t.Errorf("logs lack the refusal or the new credential:\n%s", logs)
	}
	checkContiguous(t, srv.reports(cfg.DeviceID), 1)
	checkNoSecrets(t, logs.String(), old, rotated)
}

// udpProxy forwards datagrams between clients and a server, each client
// through an upstream socket of its own, so that a test can change the
// address the server sees (rebind) or lose datagrams (drop).
type udpProxy struct {
	t      *testing.T
	addr   string
	target *net.UDPAddr
	pc     net.PacketConn
	wg     sync.WaitGroup

	mu      sync.Mutex
	up      map[string]*net.UDPConn // by client address
	retired []*net.UDPConn          // earlier upstream sockets, still forwarding back
	drop    bool
}

func startUDPProxy(t *testing.T, target string) *udpProxy {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ta, err := net.ResolveUDPAddr("udp", target)
	if err != nil {
		t.Fatal(err)
	}
	p := &udpProxy{t: t, addr: pc.LocalAddr().String(), target: ta, pc: pc, up: map[string]*net.UDPConn{}}
	p.wg.Go(p.run)
	t.Cleanup(func() {
		_ = pc.Close()
		p.rebind()
		p.mu.Lock()
		for _, up := range p.retired {
			_ = up.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *udpProxy) run() {
	buf := make([]byte, 64<<10)
	for {
		n, from, err := p.pc.ReadFrom(buf)
		if err != nil {
			return
		}
		p.mu.Lock()
		up, ok := p.up[from.String()]
		if !ok && !p.drop {
			if up, err = net.DialUDP("udp", nil, p.target); err != nil {
				p.mu.Unlock()
				p.t.Errorf("proxy: %v", err)
				return
			}
			p.up[from.String()] = up
			p.wg.Go(func() { p.back(up, from) })
		}
		drop := p.drop
		p.mu.Unlock()
		if !drop {
			_, _ = up.Write(buf[:n])
		}
	}
}

// back forwards the server's datagrams to the client.
func (p *udpProxy) back(up *net.UDPConn, client net.Addr) {
	buf := make([]byte, 64<<10)
	for {
		n, err := up.Read(buf)
		if err != nil {
			return
		}
		p.mu.Lock()
		drop := p.drop
		p.mu.Unlock()
		if !drop {
			_, _ = p.pc.WriteTo(buf[:n], client)
		}
	}
}

// rebind gives every client a new upstream socket for its next datagrams:
// the server sees them come from a new address, as after a NAT rebinding.
// The old sockets still forward what the server sends to them.
func (p *udpProxy) rebind() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, up := range p.up {
		p.retired = append(p.retired, up)
		delete(p.up, k)
	}
}

// setDrop loses every datagram, both ways, while on.
func (p *udpProxy) setDrop(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.drop = on
}

// pskDevice gives the server and a credentials file in cfg.StateDir the
// same new PSK for cfg.DeviceID.
func pskDevice(t *testing.T, srv *testServer, cfg Config) {
	t.Helper()
	psk := testPSK(t)
	srv.withDTLS(func(d *testDTLS) { d.psks[cfg.DeviceID] = psk })
	creds := Credentials{Device: cfg.DeviceID, Kind: coap.KindPSK, PSK: psk}
	if err := WriteCredentials(filepath.Join(cfg.StateDir, CredentialsFile), creds, false); err != nil {
		t.Fatal(err)
	}
}

// TestAgentDTLSAddressChange changes the device's address under a running
// session: with the Connection ID the server gave, the session goes on.
func TestAgentDTLSAddressChange(t *testing.T) {
	srv := startDTLSTestServer(t)
	proxy := startUDPProxy(t, srv.addr)
	cfg := dtlsConfig(t, srv, "rfid-0103", coap.ProfileRFIDReader)
	cfg.Server = proxy.addr
	pskDevice(t, srv, cfg)
	r := runAgent(t, cfg)
	waitFor(t, 5*time.Second, "2 reports", func() bool { return len(srv.reports(cfg.DeviceID)) >= 2 })
	proxy.rebind()
	before := len(srv.reports(cfg.DeviceID))
	waitFor(t, 5*time.Second, "2 reports from the new address", func() bool { return len(srv.reports(cfg.DeviceID)) >= before+2 })
	if err := r.stop(); err != nil {
		t.Fatalf("Run() = %v, want nil", err)
	}
	if s := srv.sessionsOf(cfg.DeviceID); len(s) != 1 {
		t.Errorf("sessions = %+v, want the first one only", s)
	}
	checkContiguous(t, srv.reports(cfg.DeviceID), 1)
}

// TestAgentDTLSServerLostSession restarts the server without the device
// hearing of it (no close_notify reaches it): the new server drops every
// record of the old session, so the agent's requests go unanswered until
// it shakes hands again.
func TestAgentDTLSServerLostSession(t *testing.T) {
	srv := startDTLSTestServer(t)
	proxy := startUDPProxy(t, srv.addr)
	cfg := dtlsConfig(t, srv, "rfid-0102", coap.ProfileRFIDReader)
	cfg.Server = proxy.addr
	cfg.RequestTimeout = 200 * time.Millisecond
	pskDevice(t, srv, cfg)
	r := runAgent(t, cfg)
	waitFor(t, 5*time.Second, "2 reports", func() bool { return len(srv.reports(cfg.DeviceID)) >= 2 })
	proxy.setDrop(true)
	srv.stop()
	srv.start(srv.addr)
	proxy.setDrop(false)
	before := len(srv.reports(cfg.DeviceID))
	waitFor(t, 5*time.Second, "2 reports after the restart", func() bool { return len(srv.reports(cfg.DeviceID)) >= before+2 })
	if err := r.stop(); err != nil {
		t.Fatalf("Run() = %v, want nil", err)
	}
	if s := srv.sessionsOf(cfg.DeviceID); len(s) != 2 {
		t.Errorf("sessions = %+v, want a second one after the restart", s)
	}
	checkContiguous(t, srv.reports(cfg.DeviceID), 1)
}

// TestClassifyHandshake checks that a failed handshake backs off
// exponentially, as a network error does.
func TestClassifyHandshake(t *testing.T) {
	a, err := New(testConfig("127.0.0.1:5684", "pump-0108", coap.ProfileInfusionPump), nil)
	if err != nil {
		t.Fatal(err)
	}
	a.rnd = mrand.New(mrand.NewPCG(1, 2))
	a.retry = backoff{min: 10 * time.Millisecond, max: 80 * time.Millisecond, rnd: a.rnd}
	a.link = &link{}
	err = fmt.Errorf("%w: 127.0.0.1:5684: handshake error: context deadline exceeded", ErrHandshake)
	for i, ceiling := range []time.Duration{10, 20, 40, 80, 80} {
		kind, wait := a.classify(err)
		if kind != troubleHandshake || wait <= 0 || wait > ceiling*time.Millisecond {
			t.Errorf("classify() #%d = %v, %v; want troubleHandshake, a wait in (0, %v]", i, kind, wait, ceiling*time.Millisecond)
		}
	}
}

func TestAgentNoCredential(t *testing.T) {
	tests := []struct {
		name     string
		stateDir bool
		want     string
	}{
		{name: "state dir", stateDir: true, want: "credentials_file /"},
		{name: "no state dir", want: "credentials_file is not set"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(freeAddr(t), "pump-0106", coap.ProfileInfusionPump)
			cfg.Insecure = false
			if tc.stateDir {
				cfg.StateDir = t.TempDir()
			}
			a, err := New(cfg, testLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			err = a.Run(t.Context())
			if !errors.Is(err, ErrNoCredential) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "enrol_token") {
				t.Errorf("Run() = %v, want ErrNoCredential naming %q and enrol_token", err, tc.want)
			}
		})
	}
}

func TestAgentRefusesOtherDevicesCredential(t *testing.T) {
	cfg := testConfig(freeAddr(t), "pump-0107", coap.ProfileInfusionPump)
	cfg.Insecure = false
	cfg.StateDir = t.TempDir()
	creds := Credentials{Device: "someone-else", Kind: coap.KindPSK, PSK: testPSK(t)}
	if err := WriteCredentials(filepath.Join(cfg.StateDir, CredentialsFile), creds, false); err != nil {
		t.Fatal(err)
	}
	a, err := New(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Run(t.Context()); err == nil || !strings.Contains(err.Error(), `device "someone-else"`) {
		t.Errorf("Run() = %v with the credential of another device, want an error naming it", err)
	}
}

func TestSimulatorEnrols(t *testing.T) {
	srv := startDTLSTestServer(t)
	dir := t.TempDir()
	var mu sync.Mutex
	asked := map[string]int{}
	enroll := func(_ context.Context, device string) (string, error) {
		token := testToken(t)
		mu.Lock()
		asked[device]++
		mu.Unlock()
		srv.withDTLS(func(d *testDTLS) { d.tokens[token] = device })
		return token, nil
	}
	s, err := NewSimulator(SimConfig{
		Server: srv.addr, Devices: 3, StateDir: dir, Interval: 30 * time.Millisecond, TimeScale: 600, Seed: 2,
		CA: srv.dtls.pki.caPEM, Enroll: enroll,
	}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	waitFor(t, 5*time.Second, "2 reports from each device", func() bool {
		for _, d := range s.Devices() {
			if len(srv.reports(d.DeviceID)) < 2 {
				return false
			}
		}
		return true
	})
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run() = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
	for _, d := range s.Devices() {
		if asked[d.DeviceID] != 1 {
			t.Errorf("%s asked for %d tokens, want 1", d.DeviceID, asked[d.DeviceID])
		}
		creds, err := ReadCredentials(filepath.Join(dir, d.DeviceID, CredentialsFile))
		if err != nil || creds.Device != d.DeviceID || creds.Kind != coap.KindPSK {
			t.Errorf("%s: credentials %v, %v; want its PSK", d.DeviceID, creds, err)
		}
		if s := srv.sessionsOf(d.DeviceID); len(s) != 1 {
			t.Errorf("sessions of %s = %+v, want one", d.DeviceID, s)
		}
	}
}
