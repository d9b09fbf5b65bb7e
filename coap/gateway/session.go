package gateway

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"time"

	piondtls "github.com/pion/dtls/v3"
	coapnet "github.com/plgd-dev/go-coap/v3/net"
	"golang.org/x/time/rate"
)

// DTLS sessions are served by the gateway itself, as plain UDP is: pion/dtls
// does the handshake and the record layer, and each session has a
// goroutine that reads its requests one at a time and answers each through
// the same per-datagram path (Gateway.datagram) before reading the next.
// A device has one confirmable request outstanding at a time (NSTART 1),
// so the session's last exchange is all deduplication needs, and it lives
// with the session. go-coap's DTLS server, the alternative
// (coap.dtls_server: go-coap), keeps every answer of every session for
// 247 s and sweeps them all every few seconds (docs/benchmarks.md).

// Read buffers of a session: most requests fit the small one; a record that
// does not is lost (pion drops what does not fit), so the session moves to
// the large one, the largest datagram pion reads (8 KiB: over DTLS a
// request is limited by that, not by coap.MaxPayload), and the device's
// retransmission of that request is then read whole.
const (
	sessionBuffer      = 2 << 10
	sessionLargeBuffer = 8 << 10
)

// enrolIdleTimeout closes a session that authenticated only the server
// (to enrol) after this long without a request, whatever coap.idle_timeout
// says: anyone can open one, an enrolment takes one request, and the device
// then opens a session with its new credential. Sessions are bounded only
// by coap.max_handshakes_per_second times how long they last. A variable
// for the tests.
var enrolIdleTimeout = 30 * time.Second

// serveSessions accepts DTLS sessions on l until ctx ends, serving each in
// its own goroutine; then it closes l and every session and waits for
// them.
func (g *Gateway) serveSessions(ctx context.Context, l *coapnet.DTLSListener, cfg DTLSConfig) error {
	timeout := cfg.HandshakeTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	stop := context.AfterFunc(ctx, func() { _ = l.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := l.AcceptWithContext(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, coapnet.ErrListenerIsClosed) || errors.Is(err, net.ErrClosed) {
				_ = l.Close()
				return nil
			}
			g.log.Debug("coap dtls: accept", "err", err)
			continue
		}
		dc, ok := c.(*piondtls.Conn)
		if !ok {
			_ = c.Close()
			continue
		}
		wg.Go(func() { g.serveSession(ctx, dc, cfg.Credentials, timeout) })
	}
}

// dtlsSession is one DTLS session being served: the transport its
// requests are answered through.
type dtlsSession struct {
	g       *Gateway
	conn    *piondtls.Conn
	last    exchange
	mid     uint16
	limit   *rate.Limiter
	refused time.Time // its last 4.29 for going over its rate
	closing bool
}

// serveSession shakes hands, authenticates and then answers the session's
// requests until it goes idle for coap.idle_timeout (an enrolling one for
// enrolIdleTimeout), the device closes it, its credential ends it, or ctx
// ends.
func (g *Gateway) serveSession(ctx context.Context, c *piondtls.Conn, creds Credentials, timeout time.Duration) {
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { _ = c.Close() })
	defer stop()
	hctx, cancel := context.WithTimeout(ctx, timeout)
	err := c.HandshakeContext(hctx)
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			g.tel.handshake(ctx, false)
			g.log.Debug("dtls handshake failed", "peer", c.RemoteAddr().String(), "err", err)
		}
		return
	}
	sess, ok := g.authenticateDTLS(ctx, c, creds)
	if !ok {
		return
	}
	defer g.tel.sessionClosed(context.Background(), sess.method)
	ctx = context.WithValue(ctx, sessionKey{}, sess)

	s := &dtlsSession{g: g, conn: c, limit: rate.NewLimiter(rate.Limit(g.cfg.MaxPeerRate), g.cfg.MaxPeerBurst)}
	idle := g.cfg.IdleTimeout
	if sess.device == "" {
		idle = min(idle, enrolIdleTimeout)
	}
	buf := make([]byte, sessionBuffer)
	for !s.closing {
		if err := c.SetReadDeadline(time.Now().Add(idle)); err != nil {
			return
		}
		n, err := c.Read(buf)
		if err != nil {
			if tooLarge(err) { // the record is gone: see sessionBuffer
				if len(buf) < sessionLargeBuffer {
					buf = make([]byte, sessionLargeBuffer)
				}
				continue
			}
			if ctx.Err() == nil && !isTimeout(err) && !errors.Is(err, net.ErrClosed) {
				g.log.Debug("coap dtls: read", "device", sess.device, "err", err)
			}
			return // idle, closed by the device, or a fatal alert
		}
		peer := udpAddrPort(c.RemoteAddr()) // with a Connection ID it may change
		if s.admit(buf[:n], peer, time.Now()) {
			g.datagram(ctx, s, buf[:n], peer)
		}
	}
	// Ended by its credential: the close_notify waits a moment, or the
	// device's DTLS stack may see it before the answer that explains it.
	timer := time.NewTimer(time.Second)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-ctx.Done():
	}
}

// admit takes a token from the session's bucket, as the plain-UDP read
// loop does for a peer (udpServer.receive).
func (s *dtlsSession) admit(data []byte, peer netip.AddrPort, now time.Time) bool {
	if s.limit.AllowN(now, 1) {
		return true
	}
	if tkl, ok := confirmableRequest(data); ok && now.Sub(s.refused) >= refuseEvery {
		s.refused = now
		s.g.rateRefused.Add(1)
		s.g.tooMany(s, data, tkl, peer)
		return false
	}
	s.g.rateDropped.Add(1)
	return false
}

func (s *dtlsSession) write(b []byte, _ netip.AddrPort) {
	if _, err := s.conn.Write(b); err != nil {
		s.g.log.Debug("coap dtls: write", "err", err)
	}
}

// begin and end keep the session's last exchange; requests are handled
// one at a time, so none is ever in hand when another arrives.
func (s *dtlsSession) begin(_ netip.AddrPort, mid int32, now time.Time) ([]byte, bool) {
	if e := s.last; e.mid == mid && now.Sub(e.at) < exchangeLifetime {
		return e.resp, false
	}
	s.last = exchange{mid: mid, at: now}
	return nil, false
}

func (s *dtlsSession) end(_ netip.AddrPort, mid int32, resp []byte) {
	if s.last.mid == mid {
		s.last.resp = resp
	}
}

func (s *dtlsSession) nextMID() int32 { s.mid++; return int32(s.mid) }

// endSession closes the session after the answer just written: nothing
// more is read from it.
func (s *dtlsSession) endSession() { s.closing = true }

// udpAddrPort is a UDP address as the per-datagram path takes it.
func udpAddrPort(a net.Addr) netip.AddrPort {
	if u, ok := a.(*net.UDPAddr); ok {
		return u.AddrPort()
	}
	return netip.AddrPort{}
}

// tooLarge reports whether pion refused to read a record into a buffer too
// small for it: the one error of Read that is temporary and no timeout.
func tooLarge(err error) bool {
	var te interface{ Temporary() bool }
	return errors.As(err, &te) && te.Temporary() && !isTimeout(err)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
