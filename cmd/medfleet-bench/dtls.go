package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	piondtls "github.com/pion/dtls/v3"
	dtlsnet "github.com/pion/dtls/v3/pkg/net"
	"github.com/plgd-dev/go-coap/v3/message"

	"github.com/medfleet/medfleet/coap"
)

// With --dtls every device has its own DTLS session (PSK) to the server,
// over its own UDP socket, as medfleet-agent has: opened before the
// device's first exchange, and opened again, on a new socket, after an
// exchange got no answer. The CoAP exchanges over it are the same as over
// plain CoAP (exchange, readBefore): pion's Conn reads and writes one
// record, one CoAP message, at a time.

// doDTLS runs one exchange over the device's DTLS session, shaking hands
// first when it has none. As the agent does (agent/link.go, do), a session
// whose exchange got no answer is dropped: after a restart the server has
// no session and silently drops the old one's records, so the next
// exchange shakes hands again. A session the server closed (a close_notify,
// as a server that stops sends) loses no request: the exchange is tried
// once more on a new session, and when that one is closed too it counts as
// unanswered.
func (d *device) doDTLS(ctx context.Context, path string, query []string, format message.MediaType, payload []byte) (message.Message, time.Duration, int, error) {
	for attempt := 0; ; attempt++ {
		if d.conn == nil && !d.connect(ctx) {
			return message.Message{}, 0, 0, errStopped
		}
		resp, rtt, retrans, err := d.exchange(ctx, path, query, format, payload)
		switch {
		case errors.Is(err, errClosed):
			d.dropSession()
			if attempt == 0 {
				continue
			}
			err = errTimeout
		case errors.Is(err, errTimeout):
			d.dropSession()
		}
		return resp, rtt, retrans, err
	}
}

// connect opens the device's DTLS session. A failed handshake is counted and
// tried again after a jittered exponential backoff, as register does, until
// one succeeds or the run ends (false); the device is busy meanwhile, so
// its ticks are skipped.
func (d *device) connect(ctx context.Context) bool {
	backoff := time.Second
	for {
		start := time.Now()
		c, err := d.handshake(ctx)
		if err == nil {
			if !d.setConn(c) {
				return false // the run ended during the handshake
			}
			d.st.handshakes.Add(1)
			d.st.handshake.Record(time.Since(start))
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		d.st.handshakeFailures.Add(1)
		first := fmt.Sprintf("%s: %v", d.id, err)
		d.st.handshakeErr.CompareAndSwap(nil, &first)
		wait := backoff/2 + time.Duration(d.rng.Int64N(int64(backoff))) // jittered
		backoff = min(2*backoff, 30*time.Second)
		if !sleepUntil(ctx, time.Now().Add(wait)) {
			return false
		}
	}
}

// handshake dials a new socket and completes a DTLS handshake on it within
// --handshake-timeout, as the agent's dialDTLS does.
func (d *device) handshake(ctx context.Context) (*piondtls.Conn, error) {
	c, err := net.DialUDP("udp", nil, d.raddr)
	if err != nil {
		return nil, err
	}
	dc, err := piondtls.ClientWithOptions(dtlsnet.PacketConnFromConn(c), d.raddr, d.dtlsOptions()...)
	if err != nil {
		c.Close()
		return nil, err
	}
	hctx, cancel := context.WithTimeout(ctx, d.cfg.HandshakeTimeout)
	defer cancel()
	if err := dc.HandshakeContext(hctx); err != nil {
		dc.Close() // closes c
		return nil, err
	}
	return dc, nil
}

// dtlsOptions are the agent's options of a PSK session (agent/enrol.go,
// dtlsOptions and sessionOptions) with the device's key.
func (d *device) dtlsOptions() []piondtls.ClientOption {
	psk := d.psk
	return []piondtls.ClientOption{
		piondtls.WithCipherSuites(coap.CipherSuites...),
		piondtls.WithExtendedMasterSecret(piondtls.RequireExtendedMasterSecret),
		piondtls.WithConnectionIDGenerator(piondtls.OnlySendCIDGenerator()),
		piondtls.WithPSK(func([]byte) ([]byte, error) { return psk, nil }),
		// A pion client sends its "identity hint" as the PSK identity.
		piondtls.WithPSKIdentityHint([]byte(d.id)),
	}
}

// setConn makes c the device's session, unless the run has ended: then it
// closes c and returns false.
func (d *device) setConn(c packetConn) bool {
	d.connMu.Lock()
	defer d.connMu.Unlock()
	if d.stopped {
		c.Close()
		return false
	}
	d.conn = c
	return true
}

// dropSession closes the device's DTLS session (and its socket: pion's
// Close closes the conn beneath) and counts it.
func (d *device) dropSession() {
	d.connMu.Lock()
	defer d.connMu.Unlock()
	if d.conn != nil {
		d.conn.Close()
		d.conn = nil
		d.st.sessionsDropped.Add(1)
	}
}

// stopConn closes the device's connection, from any goroutine: when the run
// ends, to unblock a Read. It leaves d.conn set (the device's goroutine may
// be reading it), and no session is opened after it.
func (d *device) stopConn() {
	d.connMu.Lock()
	defer d.connMu.Unlock()
	d.stopped = true
	if d.conn != nil {
		d.conn.Close() // may be closed already; the error says nothing new
	}
}
