package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/mux"
	coapnet "github.com/plgd-dev/go-coap/v3/net"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/udp"
	udpclient "github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/medfleet/medfleet/coap"
)

// fwRequest is a block request the firmware server saw.
type fwRequest struct {
	peer  string
	typ   message.Type
	mid   int32
	token string
	num   int64
	size  int64 // block size asked for
	nth   int   // 1 for the peer's first request
}

// fwAction is what the server does with a request: serve the block (the
// zero action), drop it, or answer code with Max-Age.
type fwAction struct {
	drop   bool
	code   codes.Code
	maxAge uint32
}

// fwServer is a go-coap server that serves one image at /fw/{sha} as
// protocol 7.1 says: a stateless block per request, NON responses to NON
// requests (as medfleetd's gateway writes them), piggy-backed ones to CON
// requests. It also answers POST /rd with 2.01 and POST /dp with 2.04, for
// runs with reporting devices.
type fwServer struct {
	t      *testing.T
	img    []byte // what it serves
	sha    string // the name it serves it under
	etag   []byte
	behave func(fwRequest) fwAction
	addr   string

	mu     sync.Mutex
	byPeer map[string][]fwRequest
}

// startFWServer serves img as /fw/{sha}, with the first 8 bytes of sha as
// its ETag unless etag is given.
func startFWServer(t *testing.T, img []byte, sha string, etag []byte, behave func(fwRequest) fwAction) *fwServer {
	t.Helper()
	if etag == nil {
		digest, err := hex.DecodeString(sha)
		if err != nil {
			t.Fatal(err)
		}
		etag = digest[:coap.FirmwareETagLength]
	}
	srv := &fwServer{t: t, img: img, sha: sha, etag: etag, behave: behave, byPeer: map[string][]fwRequest{}}
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	srv.addr = conn.LocalAddr().String()
	// go-coap's own block-wise off, as in medfleetd's gateway: the handler
	// serves the blocks itself.
	s := udp.NewServer(options.WithMux(mux.HandlerFunc(srv.serve)), options.WithErrors(func(error) {}),
		options.WithBlockwise(false, blockwise.SZX1024, time.Minute))
	done := make(chan struct{})
	go func() { defer close(done); s.Serve(coapnet.NewUDPConn("udp", conn)) }()
	t.Cleanup(func() { s.Stop(); <-done })
	return srv
}

func (s *fwServer) serve(w mux.ResponseWriter, m *mux.Message) {
	path, _ := m.Path()
	switch path {
	case coap.PathRegistration:
		payload, _ := (&coap.Desired{Interval: 10}).Encode(coap.FormatCBOR)
		w.SetResponse(codes.Created, coap.FormatCBOR, bytes.NewReader(payload))
		return
	case coap.PathData:
		payload, _ := (&coap.Desired{Interval: 10}).Encode(coap.FormatCBOR)
		w.SetResponse(codes.Changed, coap.FormatCBOR, bytes.NewReader(payload))
		return
	}
	if path != coap.PathFirmware+"/"+s.sha {
		w.SetResponse(codes.NotFound, message.TextPlain, bytes.NewReader([]byte("no such image")))
		return
	}
	szx, num := blockwise.SZX1024, int64(0)
	if v, err := m.Options().GetUint32(message.Block2); err == nil {
		szx, num, _, _ = blockwise.DecodeBlockOption(v)
	}
	q := fwRequest{peer: w.Conn().RemoteAddr().String(), typ: m.Type(), mid: m.MessageID(), token: string(m.Token()), num: num, size: szx.Size()}
	s.mu.Lock()
	q.nth = len(s.byPeer[q.peer]) + 1
	s.byPeer[q.peer] = append(s.byPeer[q.peer], q)
	s.mu.Unlock()

	var a fwAction
	if s.behave != nil {
		a = s.behave(q)
	}
	var opts []message.Option
	var body []byte
	code, format := a.code, message.TextPlain
	switch {
	case a.drop:
		return
	case code == 0:
		off := num * szx.Size()
		end := min(off+szx.Size(), int64(len(s.img)))
		block, _ := blockwise.EncodeBlockOption(szx, num, end < int64(len(s.img)))
		code, format, body = codes.Content, message.AppOctets, s.img[off:end]
		opts = []message.Option{
			{ID: message.ETag, Value: s.etag},
			{ID: message.Block2, Value: uint32Bytes(block)},
			{ID: message.Size2, Value: uint32Bytes(uint32(len(s.img)))},
		}
	case a.maxAge > 0:
		opts = []message.Option{{ID: message.MaxAge, Value: uint32Bytes(a.maxAge)}}
		body = []byte("busy")
	}
	if m.Type() == message.NonConfirmable {
		uc := w.Conn().(*udpclient.Conn)
		resp := uc.AcquireMessage(m.Context())
		defer uc.ReleaseMessage(resp)
		resp.SetCode(code)
		resp.SetType(message.NonConfirmable)
		resp.SetMessageID(uc.GetMessageID())
		resp.SetToken(m.Token())
		for _, o := range opts {
			resp.SetOptionBytes(o.ID, o.Value)
		}
		resp.SetContentFormat(format)
		resp.SetBody(bytes.NewReader(body))
		if err := uc.Session().WriteMessage(resp); err != nil {
			s.t.Errorf("fw server: %v", err)
		}
		return
	}
	w.SetResponse(code, format, bytes.NewReader(body), opts...)
}

func uint32Bytes(v uint32) []byte {
	var b [4]byte
	n, _ := message.EncodeUint32(b[:], v)
	return b[:n]
}

// requests returns what each peer asked for, in order.
func (s *fwServer) requests() map[string][]fwRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string][]fwRequest{}
	for p, q := range s.byPeer {
		out[p] = append([]fwRequest(nil), q...)
	}
	return out
}

// testImage is n bytes that are not all alike, and their SHA-256.
func testImage(n int) ([]byte, string) {
	img := make([]byte, n)
	for i := range img {
		img[i] = byte(i*7 + i/251)
	}
	sum := sha256.Sum256(img)
	return img, hex.EncodeToString(sum[:])
}

// fwTestConfig downloads sha from addr with devices devices and short
// timeouts.
func fwTestConfig(addr, sha string, devices int) Config {
	cfg := testConfig(addr, 1, 10, 0)
	cfg.Devices = 0
	cfg.Firmware.SHA256, cfg.Firmware.Devices = sha, devices
	cfg.Firmware.BlockTimeout, cfg.Firmware.MaxResends = 60*time.Millisecond, 2
	cfg.Firmware.Timeout = 20 * time.Second
	return cfg
}

// download runs the download devices alone, as Run does, and returns
// their result.
func download(t *testing.T, cfg Config) *FirmwareResult {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	raddr, err := net.ResolveUDPAddr("udp", cfg.Server)
	if err != nil {
		t.Fatal(err)
	}
	fw, err := newFirmwareRun(&cfg, raddr, time.Now())
	if err != nil {
		t.Fatalf("newFirmwareRun: %v", err)
	}
	defer fw.close()
	marks := 0
	fw.run(t.Context(), func() { marks++ })
	if marks != 2 {
		t.Errorf("run called mark %d times, want 2 (start and end)", marks)
	}
	return fw.result()
}

func TestDownload(t *testing.T) {
	img, sha := testImage(10*1024 + 300) // 11 blocks of 1024, the last one short
	tests := []struct {
		name       string
		con        bool
		block      int
		wantType   message.Type
		wantBlocks int
	}{
		{"non 1024", false, 1024, message.NonConfirmable, 11},
		{"con 1024", true, 1024, message.Confirmable, 11},
		{"non 256", false, 256, message.NonConfirmable, 42},
		{"con 16", true, 16, message.Confirmable, 659},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := startFWServer(t, img, sha, nil, nil)
			cfg := fwTestConfig(srv.addr, sha, 3)
			cfg.Firmware.Confirmable, cfg.Firmware.BlockSize = tc.con, tc.block
			res := download(t, cfg)
			if res.Complete != 3 || res.Failed+res.HashMismatches+res.Unfinished != 0 || len(res.Errors) != 0 {
				t.Fatalf("complete %d, failed %d, mismatches %d, unfinished %d, errors %q; want 3 complete",
					res.Complete, res.Failed, res.HashMismatches, res.Unfinished, res.Errors)
			}
			if res.Blocks != uint64(3*tc.wantBlocks) || res.Bytes != uint64(3*len(img)) || res.ImageSize != int64(len(img)) ||
				res.Responses["2.05"] != res.Blocks || res.Retransmissions != 0 || res.Busy != 0 {
				t.Errorf("blocks %d, bytes %d, image size %d, 2.05s %d, retransmissions %d, busy %d; want %d, %d, %d, all, 0, 0",
					res.Blocks, res.Bytes, res.ImageSize, res.Responses["2.05"], res.Retransmissions, res.Busy, 3*tc.wantBlocks, 3*len(img), len(img))
			}
			if res.DeviceTime.Count != 3 || res.CompletionS <= 0 || res.BlocksPerSec <= 0 || res.BlockRTT.Count != res.Blocks {
				t.Errorf("device times %d, completion %v s, %v blocks/s, block rtts %d; want 3, > 0, > 0, one per block",
					res.DeviceTime.Count, res.CompletionS, res.BlocksPerSec, res.BlockRTT.Count)
			}
			reqs := srv.requests()
			if len(reqs) != 3 {
				t.Errorf("server saw %d peers, want 3 (a socket each)", len(reqs))
			}
			for peer, qs := range reqs {
				for i, q := range qs {
					if q.num != int64(i) || q.typ != tc.wantType || q.size != int64(tc.block) {
						t.Errorf("%s: request %d for block %d of %d B, %v; want block %d of %d B, %v", peer, i, q.num, q.size, q.typ, i, tc.block, tc.wantType)
						break
					}
				}
			}
		})
	}
}

// A lost NON request is sent again after the block timeout, with a new
// Message ID and the same token, and the download goes on.
func TestDownloadResend(t *testing.T) {
	img, sha := testImage(5000)
	srv := startFWServer(t, img, sha, nil, func(q fwRequest) fwAction {
		return fwAction{drop: q.num == 2 && q.nth == 3} // the first request for block 2
	})
	res := download(t, fwTestConfig(srv.addr, sha, 2))
	if res.Complete != 2 || res.Retransmissions != 2 || res.Timeouts != 0 {
		t.Errorf("complete %d, retransmissions %d, timeouts %d; want 2, 2, 0", res.Complete, res.Retransmissions, res.Timeouts)
	}
	if res.BlockRTT.Max < 60 {
		t.Errorf("slowest block %.1f ms, want at least the 60 ms block timeout", res.BlockRTT.Max)
	}
	for peer, qs := range srv.requests() {
		if len(qs) != 6 || qs[2].num != 2 || qs[3].num != 2 || qs[2].mid == qs[3].mid || qs[2].token != qs[3].token {
			t.Errorf("%s: requests %+v; want block 2 twice, with a new Message ID and the same token", peer, qs)
		}
	}
}

// A block never answered ends the download after the resends: the link is
// lost.
func TestDownloadLinkLost(t *testing.T) {
	img, sha := testImage(5000)
	srv := startFWServer(t, img, sha, nil, func(q fwRequest) fwAction { return fwAction{drop: q.num == 1} })
	res := download(t, fwTestConfig(srv.addr, sha, 2))
	if res.Failed != 2 || res.Complete != 0 || res.Timeouts != 2 || res.Retransmissions != 4 {
		t.Errorf("failed %d, complete %d, timeouts %d, retransmissions %d; want 2, 0, 2, 4 (2 resends each)",
			res.Failed, res.Complete, res.Timeouts, res.Retransmissions)
	}
	if len(res.Errors) != 2 || !strings.Contains(res.Errors[0], "link is lost") {
		t.Errorf("errors %q, want 2 saying the link is lost", res.Errors)
	}
}

// A 5.03 with Max-Age makes the device wait that long and ask for the same
// block again.
func TestDownloadBusy(t *testing.T) {
	img, sha := testImage(3000)
	srv := startFWServer(t, img, sha, nil, func(q fwRequest) fwAction {
		if q.nth == 1 {
			return fwAction{code: codes.ServiceUnavailable, maxAge: 1}
		}
		return fwAction{}
	})
	res := download(t, fwTestConfig(srv.addr, sha, 3))
	if res.Complete != 3 || res.Busy != 3 || res.Responses["5.03"] != 3 {
		t.Errorf("complete %d, max-age waits %d, 5.03s %d; want 3, 3, 3", res.Complete, res.Busy, res.Responses["5.03"])
	}
	if res.DeviceTime.P50 < 1 || res.TransferTime.Max >= 1 {
		t.Errorf("device time p50 %.2f s, transfer max %.2f s; want >= 1 s (Max-Age) and < 1 s", res.DeviceTime.P50, res.TransferTime.Max)
	}
	for peer, qs := range srv.requests() {
		if len(qs) != 4 || qs[1].num != 0 || qs[1].mid == qs[0].mid {
			t.Errorf("%s: requests %+v; want block 0 again after the 5.03, then blocks 1 and 2", peer, qs)
		}
	}
}

func TestDownloadRefused(t *testing.T) {
	img, sha := testImage(3000)
	other, otherSHA := testImage(3001)
	flipped := bytes.Clone(img)
	flipped[2500] ^= 1
	tests := []struct {
		name       string
		serve      []byte // the bytes served as /fw/{sha}
		etag       []byte // nil: the first 8 bytes of sha
		ask        string // the SHA-256 the devices ask for and check
		failed     uint64
		mismatches uint64
		errText    string
	}{
		{"a bit flipped", flipped, nil, sha, 0, 2, "SHA-256 of the 3000 bytes"},
		{"other size", other, nil, sha, 0, 2, "SHA-256 of the 3001 bytes"},
		{"other etag", img, []byte{1, 2, 3, 4, 5, 6, 7, 8}, sha, 0, 2, "block 0: ETag 0102030405060708"},
		{"no such image", img, nil, otherSHA, 2, 0, `block 0: 4.04 "no such image"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := startFWServer(t, tc.serve, sha, tc.etag, nil)
			res := download(t, fwTestConfig(srv.addr, tc.ask, 2))
			if res.Complete != 0 || res.Failed != tc.failed || res.HashMismatches != tc.mismatches {
				t.Errorf("complete %d, failed %d, hash mismatches %d; want 0, %d, %d", res.Complete, res.Failed, res.HashMismatches, tc.failed, tc.mismatches)
			}
			if len(res.Errors) == 0 || !strings.Contains(res.Errors[0], tc.errText) {
				t.Errorf("errors %q, want one containing %q", res.Errors, tc.errText)
			}
		})
	}
}

// A run with downloads: reports before, during and after them, and a
// measured window that ends --fw-after after the last download, not at
// the --fw-timeout it could have lasted.
func TestRunWithDownloads(t *testing.T) {
	img, sha := testImage(64 << 10)
	srv := startFWServer(t, img, sha, nil, nil)
	cfg := fwTestConfig(srv.addr, sha, 4)
	cfg.Devices, cfg.Rate = 3, 20
	cfg.Firmware.Before, cfg.Firmware.After, cfg.Firmware.Timeout = 400*time.Millisecond, 400*time.Millisecond, time.Hour
	cfg.PID = 0
	start := time.Now()
	res, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Errorf("Run took %v, want it to end soon after the downloads", el)
	}
	f := res.Firmware
	if f == nil || f.Complete != 4 || f.Blocks != 4*64 {
		t.Fatalf("firmware = %+v, want 4 complete downloads of 64 blocks", f)
	}
	var names []string
	for _, ph := range res.Phases {
		names = append(names, ph.Name)
		if ph.Acked == 0 || ph.Latency.Count != ph.Acked || ph.Timeouts != 0 {
			t.Errorf("phase %s: acked %d, latencies %d, timeouts %d; want reports acked, each timed", ph.Name, ph.Acked, ph.Latency.Count, ph.Timeouts)
		}
	}
	if strings.Join(names, ",") != "before,during,after" {
		t.Fatalf("phases %q, want before,during,after", names)
	}
	before, during, after := res.Phases[0], res.Phases[1], res.Phases[2]
	if abs(before.DurationS-0.4) > 0.05 || abs(after.DurationS-0.4) > 0.05 || abs(during.DurationS-f.CompletionS) > 0.05 {
		t.Errorf("phases last %.2f, %.2f, %.2f s; want 0.4, %.2f (the downloads), 0.4", before.DurationS, during.DurationS, after.DurationS, f.CompletionS)
	}
	if sum := before.Acked + during.Acked + after.Acked; sum != res.Acked || abs(res.DurationS-(before.DurationS+during.DurationS+after.DurationS)) > 0.01 {
		t.Errorf("phases acked %d in %.2f s; the window %d in %.2f s", sum, before.DurationS+during.DurationS+after.DurationS, res.Acked, res.DurationS)
	}
	if res.Bench == nil || res.Bench.Samples < 2 || during.Bench == nil {
		t.Errorf("bench usage %+v, during %+v; want the load generator sampled", res.Bench, during.Bench)
	}

	var text, js strings.Builder
	if err := res.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"fw outcome", "4 complete and verified (65536 B each)", "NON requests", "during"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("WriteText = %s\nwant it to contain %q", text.String(), want)
		}
	}
	if err := res.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back struct {
		Firmware struct {
			Complete uint64 `json:"complete"`
		} `json:"firmware"`
		Phases []struct {
			Name string `json:"name"`
		} `json:"phases"`
	}
	if err := json.Unmarshal([]byte(js.String()), &back); err != nil || back.Firmware.Complete != 4 || len(back.Phases) != 3 {
		t.Errorf("WriteJSON = %s (%v), want firmware.complete 4 and 3 phases", js.String(), err)
	}
}

func abs(x float64) float64 { return max(x, -x) }

func TestPhaseAt(t *testing.T) {
	t0 := time.Unix(1000, 0)
	p := &phaseClock{fwStart: t0}
	tests := []struct {
		name string
		at   time.Time
		end  bool // the downloads ended at t0+10s
		want int
	}{
		{"before", t0.Add(-time.Millisecond), false, 0},
		{"at the start", t0, false, 1},
		{"downloads running", t0.Add(time.Hour), false, 1},
		{"before the end", t0.Add(10*time.Second - 1), true, 1},
		{"at the end", t0.Add(10 * time.Second), true, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p.fwEnd.Store(0)
			if tc.end {
				p.end(t0.Add(10 * time.Second))
			}
			if got := p.at(tc.at); got != &p.stats[tc.want] {
				t.Errorf("at(%v) is not phase %s", tc.at, phaseNames[tc.want])
			}
		})
	}
	var none *phaseClock
	if none.at(t0) != &noPhase {
		t.Errorf("a run without downloads does not count in noPhase")
	}
}

func TestUsageOf(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	// 1 s samples; a boundary sample just after 2.5 s; 100 ticks/s used from 2.5 s on
	samples := []procSample{
		{at(0), 0, 10 << 20}, {at(1), 10, 10 << 20}, {at(2), 20, 12 << 20}, {at(2.501), 30, 11 << 20},
		{at(3), 80, 40 << 20}, {at(4), 180, 30 << 20}, {at(5), 280, 20 << 20},
	}
	tests := []struct {
		name     string
		from, to time.Time
		cpu      float64
		peak     float64
		n        int
	}{
		{"before", at(0), at(2.5), 100 * 30 / 100 / 2.501, 12, 4},
		{"during", at(2.5), at(5), 100 * 250 / 100 / 2.499, 40, 4},
		{"whole", at(0), at(5), 100 * 280 / 100 / 5.0, 40, 7},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u := usageOf(7, samples, tc.from, tc.to, "")
			if abs(u.CPUPercent-tc.cpu) > 0.01 || u.PeakRSSMiB != tc.peak || u.Samples != tc.n {
				t.Errorf("usageOf(%s) = CPU %.2f %%, peak %v MiB, %d samples; want %.2f, %v, %d", tc.name, u.CPUPercent, u.PeakRSSMiB, u.Samples, tc.cpu, tc.peak, tc.n)
			}
		})
	}
}

func TestParseArgs(t *testing.T) {
	sha := strings.Repeat("ab", 32)
	tests := []struct {
		name    string
		args    []string
		want    func(Config) bool
		wantErr string // a substring of the error, "" for none
	}{
		{"reports only", []string{"--duration", "1m"}, func(c Config) bool { return c.Firmware.Devices == 0 && c.Duration == time.Minute }, ""},
		{"downloads", []string{"--fw-sha", sha, "--fw-devices", "1000", "--fw-block", "512", "--fw-con", "--fw-timeout", "5m", "--fw-before", "0s", "--fw-after", "30s"},
			func(c Config) bool {
				f := c.Firmware
				return f.SHA256 == sha && f.Devices == 1000 && f.BlockSize == 512 && f.Confirmable && f.Timeout == 5*time.Minute &&
					f.Before == 0 && f.After == 30*time.Second && f.BlockTimeout == 3*time.Second && f.MaxResends == 4
			}, ""},
		{"downloads alone", []string{"--devices", "0", "--fw-sha", sha, "--fw-devices", "1"}, func(c Config) bool { return c.Devices == 0 && !c.Firmware.Confirmable && c.Firmware.BlockSize == 1024 }, ""},
		{"no devices at all", []string{"--devices", "0", "--duration", "1m"}, nil, "--devices"},
		{"duration with downloads", []string{"--duration", "1m", "--fw-sha", sha, "--fw-devices", "1"}, nil, "--duration"},
		{"no sha", []string{"--fw-devices", "1"}, nil, "--fw-sha"},
		{"upper-case sha", []string{"--fw-devices", "1", "--fw-sha", strings.ToUpper(sha)}, nil, "--fw-sha"},
		{"sha without devices", []string{"--duration", "1m", "--fw-sha", sha}, nil, "--fw-sha: needs --fw-devices"},
		{"block 1000", []string{"--fw-devices", "1", "--fw-sha", sha, "--fw-block", "1000"}, nil, "--fw-block"},
		{"block 2048", []string{"--fw-devices", "1", "--fw-sha", sha, "--fw-block", "2048"}, nil, "--fw-block"},
		{"block 8", []string{"--fw-devices", "1", "--fw-sha", sha, "--fw-block", "8"}, nil, "--fw-block"},
		{"baseline", []string{"--fw-devices", "1", "--fw-sha", sha, "--baseline"}, nil, "not with --baseline"},
		{"no timeout", []string{"--fw-devices", "1", "--fw-sha", sha, "--fw-timeout", "0s"}, nil, "--fw-timeout"},
		{"negative after", []string{"--fw-devices", "1", "--fw-sha", sha, "--fw-after", "-1s"}, nil, "--fw-after"},
		{"too many", []string{"--fw-devices", "100001", "--fw-sha", sha}, nil, "--fw-devices"},
		{"dtls", []string{"--duration", "1m", "--dtls", "--server", "127.0.0.1:5684", "--grpc", "127.0.0.1:7443", "--handshake-timeout", "3s"},
			func(c Config) bool {
				return c.DTLS && c.Server == "127.0.0.1:5684" && c.GRPC == "127.0.0.1:7443" && c.HandshakeTimeout == 3*time.Second
			}, ""},
		{"plain by default", []string{"--duration", "1m"}, func(c Config) bool { return !c.DTLS && c.GRPC == "" && c.HandshakeTimeout == 10*time.Second }, ""},
		{"dtls without grpc", []string{"--duration", "1m", "--dtls"}, nil, "--grpc: required with --dtls"},
		{"dtls with baseline", []string{"--duration", "1m", "--dtls", "--grpc", "127.0.0.1:7443", "--baseline"}, nil, "--dtls: not with --baseline"},
		{"dtls with downloads", []string{"--dtls", "--grpc", "127.0.0.1:7443", "--fw-devices", "1", "--fw-sha", sha}, nil, "--dtls: not with --fw-devices"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, _, err := parseArgs(tc.args, io.Discard)
			if (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("parseArgs(%q) = %v, want an error containing %q", tc.args, err, tc.wantErr)
			}
			if tc.want != nil && !tc.want(cfg) {
				t.Errorf("parseArgs(%q) = %+v", tc.args, cfg)
			}
		})
	}
}

// Run refuses a bad firmware configuration before it opens a socket.
func TestRunValidatesFirmware(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Firmware.Devices, cfg.Firmware.SHA256 = 1, "xyz"
	if _, err := Run(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "--fw-sha") {
		t.Errorf("Run = %v, want an error naming --fw-sha", err)
	}
	if got := fwDeviceID("b", 7); got != "b-fw-000007" {
		t.Errorf("fwDeviceID(b, 7) = %q, want b-fw-000007", got)
	}
}
