package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"time"

	piondtls "github.com/pion/dtls/v3"
	"github.com/plgd-dev/go-coap/v3/dtls"
	"github.com/plgd-dev/go-coap/v3/mux"
	coapnet "github.com/plgd-dev/go-coap/v3/net"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	"github.com/plgd-dev/go-coap/v3/options"
	udpclient "github.com/plgd-dev/go-coap/v3/udp/client"
	"golang.org/x/time/rate"

	"github.com/medfleet/medfleet/coap"
)

var errHandshakeThrottled = errors.New("gateway: handshake rate exceeded")

// Credentials is what the DTLS server needs to authenticate devices. Every
// method is called on the handshake or request path and must answer from
// memory.
type Credentials interface {
	// PSK returns the key for a PSK identity (a device id), or an error
	// when the device has no usable PSK.
	PSK(identity string) ([]byte, error)
	// VerifyCertificate accepts a device certificate, already chained to a
	// device CA, only if it is the device's current credential; it returns
	// the device id and the credential's generation.
	VerifyCertificate(cert *x509.Certificate) (device string, generation uint64, err error)
	// Generation is the generation of the device's usable credential.
	Generation(device string) (uint64, bool)
	// Current reports whether a session made with that generation may
	// still be used: false once the credential is rotated or revoked.
	Current(device string, generation uint64) bool
}

// DTLSConfig is the DTLS listener's identity and trust.
type DTLSConfig struct {
	// Certificate is medfleetd's own, shown to devices that enrol or use
	// certificates.
	Certificate tls.Certificate
	// DeviceCAs verify device certificates.
	DeviceCAs   *x509.CertPool
	Credentials Credentials
	// HandshakeTimeout bounds one handshake.
	HandshakeTimeout time.Duration
}

// session is who a DTLS connection authenticated as, kept on the
// connection. An empty device is a session that authenticated only the
// server: it may enrol and do nothing else.
type session struct {
	device     string
	generation uint64
	method     string // "psk", "cert" or "enrol"
	creds      Credentials
}

type sessionKey struct{}

// sessionOf returns the DTLS session of a request; nil over plain CoAP.
func sessionOf(ctx context.Context) *session {
	s, _ := ctx.Value(sessionKey{}).(*session)
	return s
}

// ListenDTLS opens the DTLS listener on addr (udp). Serve it with
// ServeDTLS.
func (g *Gateway) ListenDTLS(addr string, cfg DTLSConfig) (*coapnet.DTLSListener, error) {
	if cfg.Credentials == nil || cfg.DeviceCAs == nil || len(cfg.Certificate.Certificate) == 0 {
		return nil, errors.New("gateway: DTLS needs a certificate, device CAs and credentials")
	}
	creds := cfg.Credentials
	limit := rate.NewLimiter(rate.Limit(g.cfg.MaxHandshakeRate), int(max(1, g.cfg.MaxHandshakeRate)))
	var lc net.ListenConfig
	if n := g.cfg.ReadBuffer; n > 0 {
		lc.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, n) })
			if err != nil {
				return err
			}
			if serr != nil {
				g.log.Warn("cannot set the DTLS socket's read buffer", "bytes", n, "err", serr)
			}
			return nil
		}
	}
	l, err := coapnet.NewDTLSListener("udp", addr, coapnet.NewDTLSServerOptions(
		piondtls.WithPSK(func(identity []byte) ([]byte, error) { return creds.PSK(string(identity)) }),
		piondtls.WithCertificates(cfg.Certificate),
		piondtls.WithClientCAs(cfg.DeviceCAs),
		// A certificate is optional: PSK sessions have none, and an
		// enrolling device has no credential yet.
		piondtls.WithClientAuth(piondtls.VerifyClientCertIfGiven),
		piondtls.WithVerifyPeerCertificate(func(_ [][]byte, chains [][]*x509.Certificate) error {
			if len(chains) == 0 {
				return nil // no certificate given
			}
			_, _, err := creds.VerifyCertificate(chains[0][0])
			return err
		}),
		piondtls.WithCipherSuites(coap.CipherSuites...),
		piondtls.WithExtendedMasterSecret(piondtls.RequireExtendedMasterSecret),
		// Connection IDs (RFC 9146) keep a session when a device roams to
		// another access point and its address changes.
		piondtls.WithConnectionIDGenerator(piondtls.RandomCIDGenerator(8)),
		piondtls.WithListenConfig(lc),
		piondtls.WithOnConnectionAttempt(func(net.Addr) error {
			if !limit.Allow() {
				g.tel.handshakeThrottled(context.Background())
				return errHandshakeThrottled
			}
			return nil
		}),
	))
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	return l, nil
}

// ServeDTLS answers requests on l until ctx ends, then stops and returns;
// it closes l. cfg must be the one given to ListenDTLS.
func (g *Gateway) ServeDTLS(ctx context.Context, l *coapnet.DTLSListener, cfg DTLSConfig) error {
	if g.cfg.DTLSServer == ServerMedfleet {
		return g.serveSessions(ctx, l, cfg)
	}
	timeout := cfg.HandshakeTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	s := dtls.NewServer(
		options.WithMux(mux.HandlerFunc(g.serveCOAP)),
		options.WithContext(ctx),
		options.WithErrors(func(err error) {
			// go-coap reports a failed handshake only as an error of this
			// shape; it is how failures are counted.
			if strings.Contains(err.Error(), "handshake failed") {
				g.tel.handshake(ctx, false)
				g.log.Debug("dtls handshake failed", "err", err)
				return
			}
			g.log.Debug("coap dtls", "err", err)
		}),
		options.WithDTLSHandshakeTimeout(timeout),
		options.WithInactivityMonitor(g.cfg.IdleTimeout, func(cc *udpclient.Conn) { _ = cc.Close() }),
		options.WithBlockwise(false, blockwise.SZX1024, time.Minute),
		options.WithOnNewConn(func(cc *udpclient.Conn) { g.authenticate(ctx, cc, cfg.Credentials) }),
	)
	return serveUntil(ctx, func() error { return s.Serve(l) }, s.Stop, "gateway: dtls")
}

// authenticate runs after go-coap finished the handshake: it records who
// the session authenticated as on the connection.
func (g *Gateway) authenticate(ctx context.Context, cc *udpclient.Conn, creds Credentials) {
	dc, ok := cc.NetConn().(*piondtls.Conn)
	if !ok {
		_ = cc.Close()
		return
	}
	s, ok := g.authenticateDTLS(ctx, dc, creds)
	if !ok {
		_ = cc.Close()
		return
	}
	cc.SetContextValue(sessionKey{}, s)
	cc.AddOnClose(func() { g.tel.sessionClosed(context.Background(), s.method) })
}

// authenticateDTLS works out, after the handshake, who a session
// authenticated as, and counts the handshake and the open session. false:
// the credential is no longer usable, and the session must be closed.
func (g *Gateway) authenticateDTLS(ctx context.Context, dc *piondtls.Conn, creds Credentials) (*session, bool) {
	st, ok := dc.ConnectionState() // a copy: read once per session
	if !ok {
		return nil, false
	}
	s := &session{method: "enrol", creds: creds}
	switch {
	case len(st.PeerCertificates) > 0:
		cert, err := x509.ParseCertificate(st.PeerCertificates[0])
		if err == nil {
			s.device, s.generation, err = creds.VerifyCertificate(cert)
		}
		if err != nil { // revoked between the handshake and now
			g.tel.handshake(ctx, false)
			return nil, false
		}
		s.method = "cert"
	case len(st.IdentityHint) > 0: // the client's PSK identity
		gen, ok := creds.Generation(string(st.IdentityHint))
		if !ok {
			g.tel.handshake(ctx, false)
			return nil, false
		}
		s.device, s.generation, s.method = string(st.IdentityHint), gen, "psk"
	}
	g.tel.handshake(ctx, true)
	g.tel.sessionOpened(ctx, s.method)
	return s, true
}
