package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/udp/coder"

	"github.com/medfleet/medfleet/coap"
)

// request is what the fake responder saw, handed to a behaviour.
type request struct {
	ep    string
	path  string
	seq   uint64 // of a report
	nth   int    // 1 for the device's first request to this path (transmissions of one MID count once)
	first bool   // first transmission of this MID
	at    time.Time
}

// action is a behaviour's answer: drop it, or answer with code (and
// Max-Age when maxAge > 0); separate answers with an empty ACK, then a
// confirmable response.
type action struct {
	drop     bool
	code     codes.Code
	maxAge   uint32
	separate bool
}

// responder is a tiny CoAP server over one UDP socket: it decodes with the
// go-coap coder and answers every request as its behaviour says (2.01 to
// /rd and 2.04 to /dp by default).
type responder struct {
	t      *testing.T
	conn   *net.UDPConn
	behave func(request) action

	mu       sync.Mutex
	seen     map[string]int       // ep path -> distinct requests
	mids     map[string]bool      // ep mid -> seen
	log      map[string][]request // ep -> requests, in order
	acksFrom map[string]int       // peer -> empty ACKs received
}

func startResponder(t *testing.T, behave func(request) action) *responder {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	r := &responder{t: t, conn: c, behave: behave, seen: map[string]int{}, mids: map[string]bool{}, log: map[string][]request{}, acksFrom: map[string]int{}}
	done := make(chan struct{})
	go func() { defer close(done); r.serve() }()
	t.Cleanup(func() { c.Close(); <-done })
	return r
}

func (r *responder) addr() string { return r.conn.LocalAddr().String() }

func (r *responder) serve() {
	buf := make([]byte, 4096)
	var sepMID int32 = 40000
	for {
		n, peer, err := r.conn.ReadFromUDP(buf)
		if err != nil {
			return
		}
		m := message.Message{Options: make(message.Options, 0, 32)}
		if _, err := coder.DefaultCoder.Decode(buf[:n], &m); err != nil {
			r.t.Errorf("responder: undecodable datagram: %v", err)
			continue
		}
		if m.Type == message.Acknowledgement {
			r.mu.Lock()
			r.acksFrom[peer.String()]++
			r.mu.Unlock()
			continue
		}
		path, _ := m.Options.Path()
		queries, _ := m.Options.Queries()
		req := request{path: path, at: time.Now()}
		for _, q := range queries {
			if ep, ok := strings.CutPrefix(q, "ep="); ok {
				req.ep = ep
			}
		}
		if path == coap.PathData {
			pack, err := coap.DecodePack(coap.FormatSenMLCBOR, m.Payload)
			if err != nil {
				r.t.Errorf("responder: report of %s: %v", req.ep, err)
				continue
			}
			rep, err := coap.ParseReport(pack)
			if err != nil {
				r.t.Errorf("responder: report of %s: %v", req.ep, err)
				continue
			}
			req.seq = rep.Seq
		}
		r.mu.Lock()
		midKey := fmt.Sprint(req.ep, " ", m.MessageID)
		req.first = !r.mids[midKey]
		if req.first {
			r.mids[midKey] = true
			r.seen[req.ep+" "+path]++
			r.log[req.ep] = append(r.log[req.ep], req)
		}
		req.nth = r.seen[req.ep+" "+path]
		r.mu.Unlock()

		a := action{code: codes.Changed}
		if path == coap.PathRegistration {
			a.code = codes.Created
		}
		if r.behave != nil {
			if b := r.behave(req); b.drop || b.code != 0 || b.separate {
				a.drop, a.separate = b.drop, b.separate
				if b.code != 0 {
					a.code, a.maxAge = b.code, b.maxAge
				}
			}
		}
		if a.drop {
			continue
		}
		payload, _ := (&coap.Desired{Seq: 0, Interval: 10}).Encode(coap.FormatCBOR)
		resp := message.Message{Token: m.Token, Code: a.code, Payload: payload, MessageID: m.MessageID, Type: message.Acknowledgement}
		if a.maxAge > 0 {
			var b [4]byte
			n, _ := message.EncodeUint32(b[:], a.maxAge)
			resp.Options = resp.Options.Add(message.Option{ID: message.MaxAge, Value: b[:n]})
		}
		if a.separate {
			r.send(peer, message.Message{Code: codes.Empty, MessageID: m.MessageID, Type: message.Acknowledgement})
			sepMID++
			resp.Type, resp.MessageID = message.Confirmable, sepMID
		}
		r.send(peer, resp)
	}
}

func (r *responder) send(peer *net.UDPAddr, m message.Message) {
	out := make([]byte, 1024)
	n, err := coder.DefaultCoder.Encode(m, out)
	if err != nil {
		r.t.Errorf("responder: encode: %v", err)
		return
	}
	r.conn.WriteToUDP(out[:n], peer)
}

func (r *responder) requests(ep string) []request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]request(nil), r.log[ep]...)
}

// testConfig is a short run against addr with a 50 ms ACK timeout.
func testConfig(addr string, devices int, rate float64, d time.Duration) Config {
	cfg := DefaultConfig()
	cfg.Server, cfg.Devices, cfg.Rate, cfg.Duration = addr, devices, rate, d
	cfg.IDPrefix = "t"
	cfg.AckTimeout, cfg.AckRandomFactor = 50*time.Millisecond, 1.5
	cfg.Drain = 2 * time.Second
	return cfg
}

func mustRun(t *testing.T, cfg Config) *Result {
	t.Helper()
	res, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return res
}

func TestAllAnswered(t *testing.T) {
	r := startResponder(t, nil)
	res := mustRun(t, testConfig(r.addr(), 5, 10, time.Second))
	if res.Attempted != 50 || res.Sent != 50 || res.Acked != 50 || res.Responses["2.04"] != 50 {
		t.Errorf("attempted, sent, acked, 2.04 = %d, %d, %d, %d; want 50 each", res.Attempted, res.Sent, res.Acked, res.Responses["2.04"])
	}
	if res.Timeouts+res.Retransmissions+res.Skipped+res.Unfinished != 0 || res.Registrations != 5 {
		t.Errorf("timeouts %d, retransmissions %d, skipped %d, unfinished %d, registrations %d; want 0, 0, 0, 0, 5",
			res.Timeouts, res.Retransmissions, res.Skipped, res.Unfinished, res.Registrations)
	}
	for _, d := range res.Devices {
		reqs := r.requests(d.ID)
		if len(reqs) == 0 {
			t.Errorf("%s sent nothing", d.ID)
			continue
		}
		var seqs []uint64
		for _, q := range reqs[1:] {
			seqs = append(seqs, q.seq)
		}
		if reqs[0].path != coap.PathRegistration || len(seqs) != 10 || d.LastSeq != 10 || d.Reports != 10 {
			t.Errorf("%s: first %s, seqs %v, last acked %d, reports %d; want /rd, 1..10, 10, 10", d.ID, reqs[0].path, seqs, d.LastSeq, d.Reports)
			continue
		}
		for i, s := range seqs {
			if s != uint64(i+1) {
				t.Errorf("%s: seqs %v, want 1..10", d.ID, seqs)
				break
			}
		}
	}
}

func TestRetransmission(t *testing.T) {
	var mu sync.Mutex
	dropped := 0
	r := startResponder(t, func(q request) action {
		if q.path == coap.PathData && q.nth%3 == 0 && q.first {
			mu.Lock()
			dropped++
			mu.Unlock()
			return action{drop: true}
		}
		return action{}
	})
	cfg := testConfig(r.addr(), 4, 5, 1200*time.Millisecond)
	res := mustRun(t, cfg)
	mu.Lock()
	defer mu.Unlock()
	if dropped == 0 || res.Retransmissions != uint64(dropped) || res.Timeouts != 0 || res.Acked != res.Sent {
		t.Errorf("retransmissions %d, timeouts %d, acked %d of %d; want %d (dropped), 0, all", res.Retransmissions, res.Timeouts, res.Acked, res.Sent, dropped)
	}
	// a third of the requests waited at least one ACK timeout
	if p50, p90 := res.Latency.P50, res.Latency.P90; p50 >= 50 || p90 < 50 {
		t.Errorf("latency p50 %.1f ms, p90 %.1f ms; want p50 < 50 ms <= p90", p50, p90)
	}
}

func TestTimeouts(t *testing.T) {
	r := startResponder(t, func(q request) action {
		return action{drop: q.ep == "t-000001" && q.path == coap.PathData}
	})
	cfg := testConfig(r.addr(), 3, 5, 1500*time.Millisecond)
	cfg.MaxRetransmit = 2 // 50+100+200 ms (x1-1.5) per lost report
	res := mustRun(t, cfg)
	if res.Timeouts == 0 || res.Retransmissions != 2*res.Timeouts || res.Acked != res.Sent-res.Timeouts || res.Skipped == 0 {
		t.Errorf("timeouts %d, retransmissions %d, acked %d of %d, skipped %d; want > 0, 2x timeouts, all others, > 0",
			res.Timeouts, res.Retransmissions, res.Acked, res.Sent, res.Skipped)
	}
	// a report that timed out is resent unchanged
	reqs := r.requests("t-000001")
	for _, q := range reqs[1:] {
		if q.seq != 1 {
			t.Errorf("t-000001 sent seq %d after a timeout, want 1 resent unchanged", q.seq)
		}
	}
	if res.Devices[1].Reports != 0 {
		t.Errorf("t-000001 has %d reports acked, want 0", res.Devices[1].Reports)
	}
}

// TestRequestTimeout: with --request-timeout an unanswered exchange ends
// then, before its retransmissions run out.
func TestRequestTimeout(t *testing.T) {
	r := startResponder(t, func(q request) action {
		return action{drop: q.ep == "t-000001" && q.path == coap.PathData}
	})
	cfg := testConfig(r.addr(), 3, 5, 1500*time.Millisecond)
	cfg.MaxRetransmit = 4                       // 50+100+200+400+800 ms (x1-1.5): longer than the run
	cfg.RequestTimeout = 120 * time.Millisecond // one retransmission at most
	res := mustRun(t, cfg)
	if res.Timeouts < 3 || res.Retransmissions > res.Timeouts || res.Acked != res.Sent-res.Timeouts {
		t.Errorf("timeouts %d, retransmissions %d, acked %d of %d; want at least 3 timeouts of one retransmission at most, all others acked",
			res.Timeouts, res.Retransmissions, res.Acked, res.Sent)
	}
}

func TestReregistration(t *testing.T) {
	var once sync.Once
	r := startResponder(t, func(q request) action {
		var a action
		if q.ep == "t-000000" && q.path == coap.PathData && q.nth == 2 {
			once.Do(func() { a = action{code: codes.NotFound} })
		}
		return a
	})
	res := mustRun(t, testConfig(r.addr(), 2, 10, 500*time.Millisecond))
	if res.Reregistrations != 1 || res.Registrations != 3 || res.Responses["4.04"] != 1 || res.Acked != res.Attempted {
		t.Errorf("reregistrations %d, registrations %d, 4.04s %d, acked %d of %d; want 1, 3, 1, all",
			res.Reregistrations, res.Registrations, res.Responses["4.04"], res.Acked, res.Attempted)
	}
	var got []string
	for _, q := range r.requests("t-000000")[:5] {
		got = append(got, fmt.Sprint(q.path, " ", q.seq))
	}
	want := "/rd 0,/dp 1,/dp 2,/rd 0,/dp 2"
	if strings.Join(got, ",") != want {
		t.Errorf("t-000000 sent %q, want %q (register, resend the report unchanged)", strings.Join(got, ","), want)
	}
}

func TestMaxAge(t *testing.T) {
	r := startResponder(t, func(q request) action {
		if q.ep == "t-000000" && q.path == coap.PathData && q.nth == 2 {
			return action{code: codes.TooManyRequests, maxAge: 1}
		}
		return action{}
	})
	res := mustRun(t, testConfig(r.addr(), 1, 10, 2*time.Second))
	if res.Backoffs != 1 || res.Responses["4.29"] != 1 || res.Skipped < 8 {
		t.Errorf("max-age waits %d, 4.29s %d, skipped %d; want 1, 1, >= 8", res.Backoffs, res.Responses["4.29"], res.Skipped)
	}
	reqs := r.requests("t-000000")
	if len(reqs) < 4 {
		t.Fatalf("t-000000 sent %d requests, want at least 4", len(reqs))
	}
	if gap := reqs[3].at.Sub(reqs[2].at); gap < 950*time.Millisecond || reqs[3].seq != 2 {
		t.Errorf("after the 4.29: next request %v later with seq %d; want >= 1s (Max-Age) and seq 2 resent", gap, reqs[3].seq)
	}
}

func TestSeparateResponse(t *testing.T) {
	r := startResponder(t, func(q request) action {
		return action{separate: q.path == coap.PathData}
	})
	res := mustRun(t, testConfig(r.addr(), 2, 10, 500*time.Millisecond))
	if res.SeparateResponses != res.Sent || res.Acked != res.Sent || res.Timeouts != 0 || res.Retransmissions != 0 {
		t.Errorf("separate %d, acked %d of %d, timeouts %d, retransmissions %d; want all, all, 0, 0",
			res.SeparateResponses, res.Acked, res.Sent, res.Timeouts, res.Retransmissions)
	}
	acks := 0
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		r.mu.Lock()
		acks = 0
		for _, n := range r.acksFrom {
			acks += n
		}
		r.mu.Unlock()
		if acks >= int(res.Sent) {
			break // the last ACKs may still be in the responder's socket
		}
	}
	if acks != int(res.Sent) {
		t.Errorf("devices acknowledged %d separate responses, want %d", acks, res.Sent)
	}
}

func TestInterrupt(t *testing.T) {
	r := startResponder(t, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	res, err := Run(ctx, testConfig(r.addr(), 3, 10, time.Hour))
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if el := time.Since(start); el > 2*time.Second || !res.Interrupted || res.Acked == 0 {
		t.Errorf("interrupted run took %v, interrupted %v, acked %d; want < 2s, true, > 0", el, res.Interrupted, res.Acked)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Config)
		want string // a substring of the error, "" for none
	}{
		{"ok", func(c *Config) {}, ""},
		{"no duration", func(c *Config) { c.Duration = 0 }, "--duration"},
		{"over an hour", func(c *Config) { c.Duration = 61 * time.Minute }, "--duration"},
		{"no devices", func(c *Config) { c.Devices = 0 }, "--devices"},
		{"zero rate", func(c *Config) { c.Rate = 0 }, "--rate"},
		{"bad server", func(c *Config) { c.Server = "localhost" }, "--server"},
		{"bad prefix", func(c *Config) { c.IDPrefix = "a b" }, "--id-prefix"},
		{"bad profile", func(c *Config) { c.Profile = "Pump" }, "--profile"},
		{"dtls", func(c *Config) { c.DTLS, c.GRPC = true, "127.0.0.1:7443" }, ""},
		{"dtls without grpc", func(c *Config) { c.DTLS = true }, "--grpc: required with --dtls"},
		{"grpc without dtls", func(c *Config) { c.GRPC = "127.0.0.1:7443" }, "--grpc: only with --dtls"},
		{"bad grpc", func(c *Config) { c.DTLS, c.GRPC = true, "localhost" }, "--grpc"},
		{"dtls with baseline", func(c *Config) { c.DTLS, c.GRPC, c.Baseline = true, "127.0.0.1:7443", true }, "--dtls: not with --baseline"},
		{"dtls with downloads", func(c *Config) {
			c.DTLS, c.GRPC, c.Duration = true, "127.0.0.1:7443", 0
			c.Firmware.Devices, c.Firmware.SHA256 = 1, strings.Repeat("ab", 32)
		}, "--dtls: not with --fw-devices"},
		{"no handshake timeout", func(c *Config) { c.HandshakeTimeout = 0 }, "--handshake-timeout"},
		{"negative request timeout", func(c *Config) { c.RequestTimeout = -time.Second }, "--request-timeout"},
		{"long handshake timeout", func(c *Config) { c.HandshakeTimeout = 2 * time.Minute }, "--handshake-timeout"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Duration = time.Minute
			tc.edit(&cfg)
			err := cfg.Validate()
			if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("Validate() = %v, want an error naming %q", err, tc.want)
			}
		})
	}
	if _, err := Run(t.Context(), Config{}); err == nil || errors.Is(err, context.Canceled) {
		t.Errorf("Run(Config{}) = %v, want a validation error", err)
	}
}
