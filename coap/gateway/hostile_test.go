package gateway

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	"github.com/plgd-dev/go-coap/v3/udp/coder"

	"github.com/medfleet/medfleet/coap"
	"github.com/medfleet/medfleet/internal/telemetry"
)

var (
	update    = flag.Bool("update", false, "rewrite the fuzz seed corpus under testdata/fuzz")
	floodRate = flag.Int("flood.rate", 20_000, "datagrams a second of TestGarbageFloodKeepsDevicesServed's flood")
)

// accepting is a Backend that registers every device, accepts every report
// and serves one firmware image: a control plane that never says no, so
// that what the tests see is the gateway's doing.
type accepting struct{ images }

func newAccepting() (accepting, string) {
	img, sha := testImage(3000)
	return accepting{images{byHash: map[string][]byte{sha: img}}}, sha
}

func (accepting) Register(context.Context, string, *coap.Registration, time.Duration) (*coap.Desired, error) {
	return &coap.Desired{Interval: 10}, nil
}
func (accepting) UpdateRegistration(context.Context, string, *coap.Registration) (*coap.Desired, error) {
	return &coap.Desired{Interval: 10}, nil
}
func (accepting) Deregister(context.Context, string) error { return nil }
func (accepting) Enrol(context.Context, string, *coap.EnrolRequest) (*coap.EnrolResponse, error) {
	return nil, ErrForbidden
}

// capture is a packetWriter that keeps what the gateway sends.
type capture struct {
	mu   sync.Mutex
	sent [][]byte
}

func (c *capture) WriteToUDPAddrPort(b []byte, _ netip.AddrPort) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sent = append(c.sent, bytes.Clone(b))
	return len(b), nil
}

// encodeMessage encodes m with its options sorted, as the wire wants them.
func encodeMessage(t testing.TB, m message.Message) []byte {
	t.Helper()
	slices.SortStableFunc(m.Options, func(a, b message.Option) int { return int(a.ID) - int(b.ID) })
	b := make([]byte, 64<<10)
	n, err := coder.DefaultCoder.Encode(m, b)
	if err != nil {
		t.Fatalf("encode %v: %v", m, err)
	}
	return b[:n]
}

func pathOptions(segments ...string) []message.Option {
	var o []message.Option
	for _, s := range segments {
		o = append(o, message.Option{ID: message.URIPath, Value: []byte(s)})
	}
	return o
}

// manyQueries returns n Uri-Query options, more than go-coap's default
// room for options.
func manyQueries(n int) []message.Option {
	var o []message.Option
	for i := range n {
		o = append(o, message.Option{ID: message.URIQuery, Value: fmt.Appendf(nil, "k%d=v", i)})
	}
	return o
}

// datagramSeeds are the seed corpus of FuzzDatagram: each kind of datagram
// the read loop must take apart, well-formed or not. sha names the image
// of newAccepting.
func datagramSeeds(t testing.TB, sha string) map[string][]byte {
	t.Helper()
	tok := []byte{0xa1, 0xb2, 0xc3, 0xd4}
	body, err := coap.EncodePack(coap.FormatSenMLCBOR, (&coap.Report{Seq: 7, State: coap.StateIdle}).Pack())
	if err != nil {
		t.Fatal(err)
	}
	reg, err := (&coap.Registration{Profile: "infusion-pump", Model: "Alaris 8100", Firmware: "12.1.1"}).Encode(coap.FormatCBOR)
	if err != nil {
		t.Fatal(err)
	}
	report := func(typ message.Type, payload []byte, extra ...message.Option) []byte {
		opts := append(pathOptions("dp"),
			message.Option{ID: message.URIQuery, Value: []byte("ep=pump-1")},
			message.Option{ID: message.ContentFormat, Value: uint32Bytes(uint32(coap.FormatSenMLCBOR))})
		return encodeMessage(t, message.Message{Code: codes.POST, Type: typ, MessageID: 0x1234, Token: tok,
			Options: append(opts, extra...), Payload: payload})
	}
	return map[string][]byte{
		"report":              report(message.Confirmable, body),
		"report-non":          report(message.NonConfirmable, body),
		"oversized":           report(message.Confirmable, bytes.Repeat([]byte{0x80}, coap.MaxPayload+1024)),
		"critical":            report(message.Confirmable, body, message.Option{ID: 9, Value: []byte{1}}),
		"block1":              report(message.Confirmable, body, message.Option{ID: message.Block1, Value: []byte{0x0e}}),
		"ping":                {0x40, 0x00, 0x12, 0x35},
		"truncated":           {0x40, 0x02, 0x12},
		"token-len-9":         append([]byte{0x49, 0x02, 0x12, 0x36}, bytes.Repeat([]byte{0xee}, 9)...),
		"payload-marker-only": {0x40, 0x02, 0x12, 0x37, 0xff},
		"registration": encodeMessage(t, message.Message{Code: codes.POST, Type: message.Confirmable, MessageID: 0x1238, Token: tok,
			Options: append(pathOptions("rd"),
				message.Option{ID: message.URIQuery, Value: []byte("ep=pump-1")},
				message.Option{ID: message.URIQuery, Value: []byte("lt=300")},
				message.Option{ID: message.ContentFormat, Value: uint32Bytes(uint32(coap.FormatCBOR))}),
			Payload: reg}),
		// Size1 (60) takes a one-byte extended delta, the elective
		// option 65000 a two-byte one and a two-byte extended length (300
		// bytes), and 65020 a one-byte delta after it.
		"extended-deltas": encodeMessage(t, message.Message{Code: codes.GET, Type: message.Confirmable, MessageID: 0x1239, Token: tok,
			Options: append(pathOptions(".well-known", "core"),
				message.Option{ID: message.Size1, Value: []byte{0x40, 0x00}},
				message.Option{ID: 65000, Value: bytes.Repeat([]byte("e"), 300)},
				message.Option{ID: coap.OptionTraceparent, Value: []byte("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")})}),
		"block2": encodeMessage(t, message.Message{Code: codes.GET, Type: message.NonConfirmable, MessageID: 0x123a, Token: tok,
			Options: append(pathOptions("fw", sha), block2(blockwise.SZX1024, 2))}),
		"many-options": encodeMessage(t, message.Message{Code: codes.GET, Type: message.Confirmable, MessageID: 0x123d, Token: tok,
			Options: append(pathOptions(".well-known", "core"), manyQueries(40)...)}),
		"response-con": encodeMessage(t, message.Message{Code: codes.Content, Type: message.Confirmable, MessageID: 0x123b, Token: tok}),
		"ack":          {0x60, 0x00, 0x12, 0x3c},
	}
}

// TestDatagramSeeds checks that testdata/fuzz/FuzzDatagram holds the seeds
// datagramSeeds builds; -update writes them.
func TestDatagramSeeds(t *testing.T) {
	_, sha := newAccepting()
	dir := filepath.Join("testdata", "fuzz", "FuzzDatagram")
	for name, b := range datagramSeeds(t, sha) {
		want := "go test fuzz v1\n[]byte(" + strconv.Quote(string(b)) + ")\n"
		path := filepath.Join(dir, name)
		if *update {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != want {
			t.Errorf("seed %s differs from what datagramSeeds builds (%v); run go test -run TestDatagramSeeds -update", path, err)
		}
	}
}

// TestDatagramSeedAnswers: each seed reaches the path it is there for, so
// that the fuzzer starts from every branch of the read loop.
func TestDatagramSeedAnswers(t *testing.T) {
	backend, sha := newAccepting()
	g, err := New(DefaultConfig(), backend, slog.New(slog.DiscardHandler), telemetry.Noop())
	if err != nil {
		t.Fatal(err)
	}
	seeds := datagramSeeds(t, sha)
	for _, tc := range []struct {
		seed string
		typ  message.Type // of the answer; Unset: no answer
		code codes.Code
	}{
		{seed: "report", typ: message.Acknowledgement, code: codes.Changed},
		{seed: "report-non", typ: message.NonConfirmable, code: codes.Changed},
		{seed: "registration", typ: message.Acknowledgement, code: codes.Created},
		{seed: "oversized", typ: message.Acknowledgement, code: codes.RequestEntityTooLarge},
		{seed: "block1", typ: message.Acknowledgement, code: codes.RequestEntityTooLarge},
		{seed: "critical", typ: message.Acknowledgement, code: codes.BadOption},
		{seed: "extended-deltas", typ: message.Acknowledgement, code: codes.Content},
		{seed: "many-options", typ: message.Acknowledgement, code: codes.Content},
		{seed: "block2", typ: message.NonConfirmable, code: codes.Content},
		{seed: "ping", typ: message.Reset},
		{seed: "token-len-9", typ: message.Reset},
		{seed: "payload-marker-only", typ: message.Reset},
		{seed: "response-con", typ: message.Reset},
		{seed: "truncated", typ: message.Unset},
		{seed: "ack", typ: message.Unset},
	} {
		t.Run(tc.seed, func(t *testing.T) {
			out := &capture{}
			s := newUDPServer(g, nil, out, newPeerTable(16, 1000, 2000))
			peer := netip.MustParseAddrPort("192.0.2.1:5683")
			if s.receive(seeds[tc.seed], peer, time.Now()) {
				s.datagram(context.Background(), seeds[tc.seed], peer)
			}
			if tc.typ == message.Unset {
				if len(out.sent) != 0 {
					t.Errorf("answered %x, want nothing", out.sent[0])
				}
				return
			}
			if len(out.sent) != 1 {
				t.Fatalf("%d answers, want 1", len(out.sent))
			}
			if m, err := decode(out.sent[0]); err != nil || m.Type != tc.typ || m.Code != tc.code {
				t.Errorf("answer %v %v %q (%v), want %v %v", m.Type, m.Code, m.Payload, err, tc.typ, tc.code)
			}
		})
	}
}

// FuzzDatagram feeds one datagram to what the read loop does with it
// (receive, then datagram) and checks the answer against RFC 7252: at most
// one datagram, which parses; a confirmable message of version 1 gets an
// ACK or a reset with its message id; a non-confirmable one never gets an
// ACK; ACKs and resets get nothing.
func FuzzDatagram(f *testing.F) {
	backend, _ := newAccepting()
	g, err := New(DefaultConfig(), backend, slog.New(slog.DiscardHandler), telemetry.Noop())
	if err != nil {
		f.Fatal(err)
	}
	peer := netip.MustParseAddrPort("192.0.2.1:5683")
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, data []byte) {
		out := &capture{}
		// A table of its own per input, so that one input's exchange is not
		// the answer to the next.
		s := newUDPServer(g, nil, out, newPeerTable(16, 1000, 2000))
		if s.receive(data, peer, time.Now()) {
			s.datagram(ctx, bytes.Clone(data), peer)
		}
		checkAnswer(t, data, out.sent)
	})
}

// decode parses a datagram with room for as many options as it has.
func decode(b []byte) (message.Message, error) {
	for n := 16; ; n *= 2 {
		m := message.Message{Options: make(message.Options, 0, n)}
		_, err := coder.DefaultCoder.Decode(b, &m)
		if !errors.Is(err, message.ErrOptionsTooSmall) {
			return m, err
		}
	}
}

func checkAnswer(t *testing.T, data []byte, sent [][]byte) {
	t.Helper()
	if len(sent) > 1 {
		t.Fatalf("%d datagrams answer one", len(sent))
	}
	var resp message.Message
	if len(sent) == 1 {
		var err error
		if resp, err = decode(sent[0]); err != nil {
			t.Fatalf("the answer %x does not parse: %v", sent[0], err)
		}
	}
	if len(data) < 4 || data[0]>>6 != 1 {
		if len(sent) != 0 {
			t.Fatalf("a datagram that is not CoAP version 1 got an answer: %v", resp)
		}
		return
	}
	mid := int32(binary.BigEndian.Uint16(data[2:4]))
	req, perr := decode(data)
	switch message.Type(data[0] >> 4 & 3) {
	case message.Confirmable:
		if len(sent) == 0 {
			t.Fatal("a confirmable message got no answer")
		}
		if resp.MessageID != mid {
			t.Errorf("the answer's message id %d, want %d", resp.MessageID, mid)
		}
		switch resp.Type {
		case message.Reset:
			if resp.Code != codes.Empty || len(resp.Token) != 0 {
				t.Errorf("a reset with code %v and token %x, want an empty message", resp.Code, resp.Token)
			}
		case message.Acknowledgement:
			if perr != nil || req.Code == codes.Empty || req.Code >= 32 {
				t.Errorf("a piggy-backed %v answers %x (parse error %v); want a reset", resp.Code, data, perr)
			}
			if !bytes.Equal(resp.Token, req.Token) || resp.Code < 64 {
				t.Errorf("a piggy-backed answer %v with token %x to token %x; want an error or success code and the token", resp.Code, resp.Token, req.Token)
			}
		default:
			t.Errorf("a confirmable message answered with a %v, want an ACK or a reset", resp.Type)
		}
	case message.NonConfirmable:
		if len(sent) == 0 {
			return
		}
		if resp.Type != message.NonConfirmable || perr != nil || !bytes.Equal(resp.Token, req.Token) {
			t.Errorf("a non-confirmable message (parse error %v) answered with a %v, token %x for %x; want a NON answer", perr, resp.Type, resp.Token, req.Token)
		}
	default:
		if len(sent) != 0 {
			t.Errorf("an ACK or reset got an answer: %v", resp)
		}
	}
}

// TestGarbageFloodKeepsDevicesServed floods the read loop with garbage
// from 256 sockets: 8 heavy hitters on fixed ports (40 % of the flood,
// over the per-peer rate within a second) and 248 sockets at a few dozen
// datagrams a second each, half of which take a new port every 16
// datagrams, as spoofed sources would. Meanwhile five devices register and
// report ten times a second each. Every request of the devices must be
// answered, 99 % of them within 500 ms, and the peer table must stay
// within coap.max_peers while it evicts.
//
// The flood is open loop at -flood.rate datagrams a second, not as fast
// as the flooders can go: they share the process and its cores with the
// gateway, and at full speed they starve its read loop and overflow its
// socket, where the kernel drops the devices' datagrams with the garbage;
// that measures the machine, not the gateway. The default is a quarter of
// what a busy 2-core machine sustained with no datagram dropped.
func TestGarbageFloodKeepsDevicesServed(t *testing.T) {
	if testing.Short() {
		t.Skip("a flood of several seconds")
	}
	const (
		devices      = 5
		reports      = 40 // at 10 a second
		floodConns   = 256
		floodWorkers = 8
		floodTick    = 2 * time.Millisecond
		rotateEvery  = 16 // datagrams from one port of a spoofing socket
	)
	cfg := DefaultConfig()
	// Ten times what a device sends here: the heavy hitters go over it
	// within a second, the other flooders and the devices never do.
	cfg.MaxPeerRate, cfg.MaxPeerBurst = 100, 200
	// Under the 256 sockets and the ports the spoofing ones go through.
	cfg.MaxPeers = 256
	backend, _ := newAccepting()
	g, conn := startGateway(t, cfg, backend)
	raddr := conn.LocalAddr().(*net.UDPAddr)

	garbage := floodTemplates(t)
	floodStart := time.Now()
	stop := make(chan struct{})
	var sent atomic.Int64
	var flood sync.WaitGroup
	for w := range floodWorkers {
		flood.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			conns := make([]*net.UDPConn, floodConns/floodWorkers)
			counts := make([]int, len(conns))
			defer func() {
				for _, c := range conns {
					if c != nil {
						c.Close()
					}
				}
			}()
			tick := time.NewTicker(floodTick)
			defer tick.Stop()
			perTick := max(1, int(float64(*floodRate)*floodTick.Seconds())/floodWorkers)
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				for range perTick {
					// Socket 0 is a heavy hitter on a fixed port; of the
					// others, odd ones take a new port every rotateEvery
					// datagrams, as spoofed sources would.
					i := 0
					if rng.IntN(10) >= 4 {
						i = 1 + rng.IntN(len(conns)-1)
					}
					if conns[i] == nil || (i%2 == 1 && counts[i]%rotateEvery == 0) {
						if conns[i] != nil {
							conns[i].Close()
						}
						var err error
						if conns[i], err = net.DialUDP("udp", nil, raddr); err != nil {
							t.Errorf("flood socket: %v", err)
							return
						}
					}
					_, _ = conns[i].Write(garbage(rng)) // the answers are left unread
					counts[i]++
					sent.Add(1)
				}
			}
		})
	}

	var peak atomic.Int64
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if n := int64(g.peers.len()); n > peak.Load() {
					peak.Store(n)
				}
			}
		}
	}()

	time.Sleep(500 * time.Millisecond) // the flood is on before the devices start
	var (
		mu        sync.Mutex
		latencies []time.Duration
		failures  []string
	)
	var fleet sync.WaitGroup
	for d := range devices {
		cc := dial(t, raddr.String())
		fleet.Go(func() {
			ep := fmt.Sprintf("good-%d", d)
			request := func(what string, do func(context.Context) (codes.Code, error), want codes.Code) {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				start := time.Now()
				code, err := do(ctx)
				took := time.Since(start)
				mu.Lock()
				defer mu.Unlock()
				latencies = append(latencies, took)
				if err != nil || code != want {
					failures = append(failures, fmt.Sprintf("%s %s: %v %v after %v", ep, what, code, err, took))
				}
			}
			q := message.Option{ID: message.URIQuery, Value: []byte("ep=" + ep)}
			reg, _ := (&coap.Registration{Profile: "infusion-pump", Model: "M"}).Encode(coap.FormatCBOR)
			request("register", func(ctx context.Context) (codes.Code, error) {
				resp, err := cc.Post(ctx, "/rd", coap.FormatCBOR, bytes.NewReader(reg), q)
				if err != nil {
					return 0, err
				}
				return resp.Code(), nil
			}, codes.Created)
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			for seq := uint64(1); seq <= reports; seq++ {
				<-tick.C
				body, _ := coap.EncodePack(coap.FormatSenMLCBOR, (&coap.Report{Seq: seq, State: coap.StateIdle}).Pack())
				request(fmt.Sprintf("report %d", seq), func(ctx context.Context) (codes.Code, error) {
					resp, err := cc.Post(ctx, "/dp", coap.FormatSenMLCBOR, bytes.NewReader(body), q)
					if err != nil {
						return 0, err
					}
					return resp.Code(), nil
				}, codes.Changed)
			}
		})
	}
	fleet.Wait()
	close(stop)
	floodTime := time.Since(floodStart)
	flood.Wait()
	<-sampled

	drops := socketDrops(conn)

	for _, f := range failures {
		t.Error(f)
	}
	slices.Sort(latencies)
	pct := func(p float64) time.Duration { return latencies[min(len(latencies)-1, int(p*float64(len(latencies))))] }
	st := g.Stats()
	t.Logf("flood: %d datagrams in %v, %s dropped by the kernel at the gateway's socket; devices: %d requests, latency p50 %v, p99 %v, max %v; rate limited %d, peers evicted %d, peak peers %d of %d",
		sent.Load(), floodTime.Round(time.Millisecond), drops, len(latencies), pct(0.5), pct(0.99), latencies[len(latencies)-1],
		st.RateLimited, st.PeersEvicted, peak.Load(), g.peers.capacity())
	if want := devices * (reports + 1); len(latencies) != want {
		t.Errorf("%d requests timed, want %d", len(latencies), want)
	}
	if p99 := pct(0.99); p99 > 500*time.Millisecond {
		t.Errorf("p99 of the devices' requests %v, want at most 500ms", p99)
	}
	if n := peak.Load(); n > int64(g.peers.capacity()) {
		t.Errorf("the peer table held %d peers, over its capacity %d", n, g.peers.capacity())
	}
	if st.PeersEvicted == 0 || st.RateLimited == 0 {
		t.Errorf("evicted %d peers and rate-limited %d datagrams; want both above 0, or the flood did not test the bounds", st.PeersEvicted, st.RateLimited)
	}
	if st.Registrations < devices || st.Reports < devices*reports {
		t.Errorf("the backend saw %d registrations and %d reports, want %d and at least %d", st.Registrations, st.Reports, devices, devices*reports)
	}
}

// socketDrops reads the datagrams the kernel dropped at conn's socket
// for a full buffer from /proc/net/udp (Linux), or says it cannot.
func socketDrops(conn *net.UDPConn) string {
	b, err := os.ReadFile("/proc/net/udp")
	if err != nil {
		return "unknown (no /proc/net/udp)"
	}
	port := fmt.Sprintf(":%04X ", conn.LocalAddr().(*net.UDPAddr).Port)
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 13 && strings.Contains(f[1]+" ", port) {
			return f[12]
		}
	}
	return "unknown"
}

// floodTemplates returns a maker of garbage datagrams: random bytes,
// truncated requests, requests with bad options, and requests far over
// the payload limit, with random message ids and tokens.
func floodTemplates(t *testing.T) func(*rand.Rand) []byte {
	t.Helper()
	_, sha := newAccepting()
	seeds := datagramSeeds(t, sha)
	report := seeds["report"]
	badOptions := [][]byte{
		seeds["critical"],
		seeds["block1"],
		// An option delta nibble of 15 is a format error (RFC 7252 3.1).
		append(bytes.Clone(report[:8]), 0xf1, 0x00),
		// Uri-Path with a length running past the datagram.
		append(bytes.Clone(report[:8]), 0xbd, 0x40, 'x'),
	}
	// Just over coap.MaxPayload, and as large as a datagram gets.
	var huge [][]byte
	for _, n := range []int{coap.MaxPayload + 1000, 60_000} {
		huge = append(huge, encodeMessage(t, message.Message{Code: codes.POST, Type: message.Confirmable, MessageID: 1, Token: []byte{1, 2, 3, 4},
			Options: pathOptions("dp"), Payload: bytes.Repeat([]byte{0x5a}, n)}))
	}
	return func(rng *rand.Rand) []byte {
		var b []byte
		switch k := rng.IntN(20); {
		case k < 8:
			b = make([]byte, 1+rng.IntN(64))
			for i := range b {
				b[i] = byte(rng.Uint32())
			}
			return b
		case k < 12:
			b = bytes.Clone(report[:4+rng.IntN(len(report)-4)])
		case k < 19:
			b = bytes.Clone(badOptions[rng.IntN(len(badOptions))])
		default:
			return huge[rng.IntN(len(huge))] // shared: its header is left as it is
		}
		binary.BigEndian.PutUint16(b[2:4], uint16(rng.Uint32()))
		if len(b) >= 8 && b[0]&0xf == 4 {
			binary.BigEndian.PutUint32(b[4:8], rng.Uint32())
		}
		return b
	}
}

// TestPlainUDPRateLimit: over its rate, a peer's confirmable request is
// answered 4.29, piggy-backed with its message id and token, a Max-Age and
// a diagnostic; the next ones within the second and its NON requests get
// nothing; other peers are served.
func TestPlainUDPRateLimit(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxPeerRate, cfg.MaxPeerBurst = 1, 3
	backend, _ := newAccepting()
	addr := serveConfig(t, cfg, backend)
	p := dialRaw(t, addr)
	for mid := int32(1); mid <= 3; mid++ {
		p.send(report(mid, message.Confirmable))
		if m, ok := p.recv(); !ok || m.Code != codes.Changed {
			t.Fatalf("request %d of a burst of 3: %v (%v)", mid, m, ok)
		}
	}
	p.send(report(4, message.Confirmable))
	m, ok := p.recv()
	maxAge, _ := m.Options.GetUint32(message.MaxAge)
	if !ok || m.Type != message.Acknowledgement || m.Code != codes.TooManyRequests || m.MessageID != 4 ||
		string(m.Token) != "\x01\x02\x03\x04" || maxAge < 1 || maxAge > 5 || !strings.HasPrefix(string(m.Payload), "busy:") {
		t.Errorf("the fourth request: %v %q, Max-Age %d (%v); want a piggy-backed 4.29 with Max-Age 1-5 and a diagnostic", m, m.Payload, maxAge, ok)
	}
	p.send(report(5, message.Confirmable))
	p.send(report(6, message.NonConfirmable))
	if m, ok := p.recv(); ok {
		t.Errorf("within the second of the 4.29: answered %v, want nothing", m)
	}
	other := dialRaw(t, addr)
	other.send(report(7, message.Confirmable))
	if m, ok := other.recv(); !ok || m.Code != codes.Changed {
		t.Errorf("another peer meanwhile: %v (%v), want 2.04", m, ok)
	}
	time.Sleep(1100 * time.Millisecond)
	p.send(report(8, message.Confirmable))
	if m, ok := p.recv(); !ok || m.Code != codes.Changed || m.MessageID != 8 {
		t.Errorf("a second later: %v (%v), want 2.04", m, ok)
	}
}

// BenchmarkDatagram is the read loop's cost for one datagram of each kind,
// from receive to the encoded answer, without the socket.
func BenchmarkDatagram(b *testing.B) {
	backend, sha := newAccepting()
	g, err := New(DefaultConfig(), backend, slog.New(slog.DiscardHandler), telemetry.Noop())
	if err != nil {
		b.Fatal(err)
	}
	seeds := datagramSeeds(b, sha)
	random := make([]byte, 48)
	for i := range random {
		random[i] = byte(i*151 + 7)
	}
	for _, kind := range []string{"report", "report-non", "critical", "truncated", "oversized", "ping", "random", "over-limit"} {
		data := seeds[kind]
		if kind == "random" {
			data = random
		}
		b.Run(kind, func(b *testing.B) {
			peers := newPeerTable(1024, 1e9, 1e9)
			if kind == "over-limit" {
				data, peers = seeds["report"], newPeerTable(1024, 1, 1)
			}
			s := newUDPServer(g, nil, discard{}, peers)
			peer := netip.MustParseAddrPort("192.0.2.1:5683")
			ctx := context.Background()
			b.ReportAllocs()
			mid := uint16(0)
			for b.Loop() {
				mid++
				if len(data) >= 4 {
					binary.BigEndian.PutUint16(data[2:4], mid) // not a retransmission
				}
				if s.receive(data, peer, time.Now()) {
					s.datagram(ctx, bytes.Clone(data), peer)
				}
			}
		})
	}
}

type discard struct{}

func (discard) WriteToUDPAddrPort(b []byte, _ netip.AddrPort) (int, error) { return len(b), nil }
