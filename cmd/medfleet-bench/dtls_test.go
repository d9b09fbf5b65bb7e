package main

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"
)

// A device whose handshakes fail (nobody listens: "connection refused")
// counts them, backs off, and skips its ticks meanwhile; it sends nothing.
func TestHandshakeFailure(t *testing.T) {
	l, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	addr := l.LocalAddr().(*net.UDPAddr)
	l.Close() // nobody listens there now

	cfg := testConfig(addr.String(), 1, 10, time.Second)
	cfg.DTLS, cfg.GRPC, cfg.HandshakeTimeout = true, "127.0.0.1:1", 300*time.Millisecond
	st := &stats{}
	d := newDevice("t-000000", 0, nil, &cfg, st)
	d.raddr, d.psk = addr, []byte("not a key anyone knows")
	start := time.Now()
	end := start.Add(time.Second)
	ctx, cancel := context.WithDeadline(t.Context(), end)
	defer cancel()
	d.run(ctx, start, 100*time.Millisecond, newWindow(start, end))

	if n := st.handshakeFailures.Load(); n == 0 || st.handshakes.Load() != 0 || st.handshake.Count() != 0 {
		t.Errorf("handshakes %d, failures %d, timed %d; want 0, > 0, 0", st.handshakes.Load(), n, st.handshake.Count())
	}
	if e := st.handshakeErr.Load(); e == nil || !strings.HasPrefix(*e, "t-000000: ") {
		t.Errorf("first handshake error = %v, want one naming t-000000", e)
	}
	if st.attempted.Load() != 10 || st.skipped.Load() != 10 || st.sent.Load() != 0 || st.registrations.Load() != 0 {
		t.Errorf("attempted %d, skipped %d, sent %d, registrations %d; want 10, 10, 0, 0",
			st.attempted.Load(), st.skipped.Load(), st.sent.Load(), st.registrations.Load())
	}
	if d.conn != nil {
		t.Errorf("device has a session after failed handshakes")
	}
}
