package gateway

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/udp"
	udpclient "github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/medfleet/medfleet/coap"
	"github.com/medfleet/medfleet/internal/telemetry"
)

// images is a Backend that serves firmware images from memory and accepts
// every report.
type images struct {
	failing
	byHash map[string][]byte
}

func (b images) Firmware(_ context.Context, sha string) (Image, error) {
	if img, ok := b.byHash[sha]; ok {
		return bytes.NewReader(img), nil
	}
	return nil, fmt.Errorf("%w: %s", ErrNoImage, sha)
}

func (b images) Report(_ context.Context, _ string, r *coap.Report) (*coap.Desired, bool, error) {
	return &coap.Desired{Seq: r.Seq, Interval: 10}, false, nil
}

// testImage returns n pseudo-random bytes and their SHA-256 in hex.
func testImage(n int) ([]byte, string) {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(uint64(n), 7))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	sum := sha256.Sum256(b)
	return b, hex.EncodeToString(sum[:])
}

// imageSize is odd: the last block of every size is short.
const imageSize = 5*1024 + 333

// fwServer serves one image of imageSize bytes with cfg.
func fwServer(t *testing.T, cfg Config) (addr string, img []byte, sha string) {
	t.Helper()
	img, sha = testImage(imageSize)
	return serveConfig(t, cfg, images{byHash: map[string][]byte{sha: img}}), img, sha
}

// dial opens a client with go-coap's block-wise off, so that the test sees
// every block as the device does.
func dial(t testing.TB, addr string) *udpclient.Conn {
	t.Helper()
	cc, err := udp.Dial(addr, options.WithBlockwise(false, blockwise.SZX1024, time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// block is a firmware response, decoded.
type block struct {
	code      codes.Code
	format    message.MediaType
	payload   []byte
	etag      []byte
	size2     uint32
	hasSize2  bool
	szx       blockwise.SZX
	num       int64
	more      bool
	hasBlock2 bool
	maxAge    uint32
}

func decodeBlock(t testing.TB, resp *pool.Message) block {
	t.Helper()
	b := block{code: resp.Code()}
	b.format, _ = resp.ContentFormat()
	if resp.Body() != nil {
		var err error
		if b.payload, err = resp.ReadBody(); err != nil {
			t.Fatal(err)
		}
	}
	b.etag, _ = resp.Options().GetBytes(message.ETag)
	var err error
	b.size2, err = resp.Options().GetUint32(message.Size2)
	b.hasSize2 = err == nil
	if v, err := resp.Options().GetUint32(message.Block2); err == nil {
		b.hasBlock2 = true
		if b.szx, b.num, b.more, err = blockwise.DecodeBlockOption(v); err != nil {
			t.Fatalf("the response's Block2 %#x: %v", v, err)
		}
	}
	b.maxAge, _ = resp.Options().GetUint32(message.MaxAge)
	return b
}

// block2 is a request's Block2 option (RFC 7959 section 2.2), encoded
// here rather than by go-coap, whose encoder refuses the block numbers
// 0xffff8-0xfffff that the RFC allows.
func block2(szx blockwise.SZX, num int64) message.Option {
	return message.Option{ID: message.Block2, Value: uint32Bytes(uint32(num)<<4 | uint32(szx))}
}

// get asks for block num of size szx of /fw/{sha}; num < 0 sends no Block2.
func get(t testing.TB, cc *udpclient.Conn, sha string, szx blockwise.SZX, num int64, opts ...message.Option) block {
	t.Helper()
	if num >= 0 {
		opts = append(opts, block2(szx, num))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := cc.Get(ctx, "/fw/"+sha, opts...)
	if err != nil {
		t.Fatalf("GET /fw/%s block %d: %v", sha, num, err)
	}
	return decodeBlock(t, resp)
}

// getNon is get with a NON request, as medfleet-agent asks for blocks.
func getNon(t testing.TB, cc *udpclient.Conn, sha string, szx blockwise.SZX, num int64) (block, message.Type) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := cc.NewGetRequest(ctx, "/fw/"+sha, block2(szx, num))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.ReleaseMessage(req)
	req.SetType(message.NonConfirmable)
	resp, err := cc.Do(req)
	if err != nil {
		t.Fatalf("NON GET /fw/%s block %d: %v", sha, num, err)
	}
	return decodeBlock(t, resp), resp.Type()
}

// TestFirmwareNonConfirmable: a block asked for with a NON request comes
// back as a NON response carrying the same block as a CON request gets.
func TestFirmwareNonConfirmable(t *testing.T) {
	addr, img, sha := fwServer(t, DefaultConfig())
	cc := dial(t, addr)
	var got []byte
	for num := int64(0); ; num++ {
		b, typ := getNon(t, cc, sha, blockwise.SZX1024, num)
		if b.code != codes.Content || typ != message.NonConfirmable || b.num != num || !b.hasSize2 || len(b.etag) != coap.FirmwareETagLength {
			t.Fatalf("block %d: %v, type %v, Block2 %d, Size2 %v, ETag %x", num, b.code, typ, b.num, b.hasSize2, b.etag)
		}
		got = append(got, b.payload...)
		if !b.more {
			break
		}
	}
	if !bytes.Equal(got, img) {
		t.Fatalf("fetched %d bytes with NON requests, not the image of %d", len(got), len(img))
	}
	// Refusals are answered as they always are.
	if b, _ := getNon(t, cc, sha, blockwise.SZX1024, 1000); b.code != codes.BadOption {
		t.Errorf("NON request past the end: %v, want 4.02", b.code)
	}
}

// fetch downloads the image block by block from block from with size szx,
// checking every block's options, and returns the bytes from
// from*size to the end.
func fetch(t testing.TB, cc *udpclient.Conn, img []byte, sha string, szx blockwise.SZX, wantSZX blockwise.SZX, from int64) []byte {
	t.Helper()
	etag, _ := hex.DecodeString(sha[:2*coap.FirmwareETagLength])
	size := wantSZX.Size()
	last := (int64(len(img)) - 1) / size
	var got []byte
	for num := from; ; num++ {
		if num > last {
			t.Fatalf("block %d has more set; the image has %d blocks of %d bytes", num-1, last+1, size)
		}
		b := get(t, cc, sha, szx, num)
		end := min((num+1)*size, int64(len(img)))
		switch {
		case b.code != codes.Content:
			t.Fatalf("block %d: %v %q, want 2.05", num, b.code, b.payload)
		case b.format != message.AppOctets:
			t.Errorf("block %d: Content-Format %v, want 42", num, b.format)
		case !bytes.Equal(b.etag, etag):
			t.Errorf("block %d: ETag %x, want %x", num, b.etag, etag)
		case !b.hasSize2 || b.size2 != uint32(len(img)):
			t.Errorf("block %d: Size2 %d (present %v), want %d", num, b.size2, b.hasSize2, len(img))
		case !b.hasBlock2 || b.num != num || b.szx != wantSZX || b.more != (num < last):
			t.Errorf("block %d: Block2 %d/%v/%d (present %v), want %d/%v/%d", num, b.num, b.more, b.szx.Size(), b.hasBlock2, num, num < last, size)
		case int64(len(b.payload)) != end-num*size:
			t.Errorf("block %d: %d bytes, want %d", num, len(b.payload), end-num*size)
		}
		got = append(got, b.payload...)
		if !b.more {
			return got
		}
	}
}

// TestFirmwareDownload fetches an image of odd size whole, in blocks of
// each size a device may ask for; the reassembled bytes must hash to the
// image's name, and every block carries the ETag, Size2 and its Block2.
func TestFirmwareDownload(t *testing.T) {
	addr, img, sha := fwServer(t, DefaultConfig())
	for _, tc := range []struct {
		name    string
		szx     blockwise.SZX // asked
		wantSZX blockwise.SZX // served
	}{
		{name: "1024", szx: blockwise.SZX1024, wantSZX: blockwise.SZX1024},
		{name: "256", szx: blockwise.SZX256, wantSZX: blockwise.SZX256},
		{name: "16", szx: blockwise.SZX16, wantSZX: blockwise.SZX16},
		{name: "BERT is served as 1024", szx: blockwise.SZXBERT, wantSZX: blockwise.SZX1024},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := fetch(t, dial(t, addr), img, sha, tc.szx, tc.wantSZX, 0)
			if sum := sha256.Sum256(got); hex.EncodeToString(sum[:]) != sha {
				t.Errorf("the %d bytes fetched hash to %x, want %s", len(got), sum, sha)
			}
		})
	}
}

// TestFirmwareNoBlock2: a GET without Block2 is answered with block 0 of
// 1024 bytes, so that a device learns the size (Size2) and the block-wise
// transfer from the first answer.
func TestFirmwareNoBlock2(t *testing.T) {
	addr, img, sha := fwServer(t, DefaultConfig())
	b := get(t, dial(t, addr), sha, 0, -1)
	if b.code != codes.Content || !b.hasBlock2 || b.num != 0 || !b.more || b.szx != blockwise.SZX1024 ||
		!bytes.Equal(b.payload, img[:1024]) || b.size2 != imageSize {
		t.Errorf("GET /fw/{sha} without Block2 = %v, Block2 %d/%v/%d, %d bytes, Size2 %d; want 2.05, 0/true/1024, the first 1024 bytes, %d",
			b.code, b.num, b.more, b.szx.Size(), len(b.payload), b.size2, imageSize)
	}
}

// TestFirmwareResume: a device that lost its connection resumes at the
// block it needs, with a new exchange (another token and Message ID), and
// an ETag of its own in the request changes nothing.
func TestFirmwareResume(t *testing.T) {
	addr, img, sha := fwServer(t, DefaultConfig())
	cc := dial(t, addr)
	first := get(t, cc, sha, blockwise.SZX256, 0)
	if first.code != codes.Content {
		t.Fatalf("block 0: %v", first.code)
	}
	cc.Close()

	got := fetch(t, dial(t, addr), img, sha, blockwise.SZX256, blockwise.SZX256, 7)
	if !bytes.Equal(got, img[7*256:]) {
		t.Errorf("resuming at block 7 fetched %d bytes, want the %d from offset %d", len(got), len(img)-7*256, 7*256)
	}
	stale := get(t, dial(t, addr), sha, blockwise.SZX256, 3, message.Option{ID: message.ETag, Value: []byte{1, 2, 3, 4, 5, 6, 7, 8}})
	if stale.code != codes.Content || !bytes.Equal(stale.payload, img[3*256:4*256]) || !bytes.Equal(stale.etag, first.etag) {
		t.Errorf("block 3 asked with another ETag = %v, ETag %x; want 2.05 with block 3 and ETag %x", stale.code, stale.etag, first.etag)
	}
}

// TestFirmwareRefusals: what a device gets for requests that cannot be
// served, each with a diagnostic that names the problem.
func TestFirmwareRefusals(t *testing.T) {
	img, sha := testImage(imageSize)
	unknown := strings.Repeat("0", 64)
	addr := serveConfig(t, DefaultConfig(), images{byHash: map[string][]byte{sha: img}})
	broken := serve(t, failing{err: errors.New("disk: secret internals")})
	for _, tc := range []struct {
		name     string
		addr     string
		method   codes.Code
		path     string
		block2   int64 // block number with SZX 6; -1: none
		opts     []message.Option
		want     codes.Code
		wantDiag string
	}{
		{name: "past the end", path: "/fw/" + sha, block2: 6, want: codes.BadOption, wantDiag: "block 6 is past the end of an image of 5453 bytes"},
		{name: "far past the end", path: "/fw/" + sha, block2: 1<<20 - 9, want: codes.BadOption, wantDiag: "block 1048567 is past the end"},
		{name: "the last block number", path: "/fw/" + sha, block2: 1<<20 - 1, want: codes.BadOption, wantDiag: "block2:"},
		{name: "unknown image", path: "/fw/" + unknown, block2: 0, want: codes.NotFound, wantDiag: "no such firmware image"},
		{name: "upper case", path: "/fw/" + strings.ToUpper(sha), block2: 0, want: codes.BadRequest, wantDiag: "sha256: \"" + strings.ToUpper(sha) + "\" is not 64 lower-case hex digits"},
		{name: "short", path: "/fw/abc", block2: 0, want: codes.BadRequest, wantDiag: `sha256: "abc" is not`},
		{name: "traversal", path: "/fw/../x", block2: 0, want: codes.NotFound, wantDiag: "no resource"},
		{name: "no sha", path: "/fw", block2: -1, want: codes.NotFound, wantDiag: "GET /fw/{sha256}"},
		{name: "POST", method: codes.POST, path: "/fw/" + sha, block2: -1, want: codes.MethodNotAllowed, wantDiag: "allowed: GET"},
		{name: "DELETE", method: codes.DELETE, path: "/fw/" + sha, block2: -1, want: codes.MethodNotAllowed, wantDiag: "allowed: GET"},
		{name: "accept CBOR", path: "/fw/" + sha, block2: 0, opts: []message.Option{{ID: message.Accept, Value: uint32Bytes(60)}}, want: codes.NotAcceptable, wantDiag: "accept: 60"},
		// go-coap itself refuses an option longer than its format allows.
		{name: "block2 over 3 bytes", path: "/fw/" + sha, block2: -1, opts: []message.Option{{ID: message.Block2, Value: []byte{1, 0, 0, 6}}}, want: codes.BadOption, wantDiag: "23"},
		{name: "backend fault", addr: broken, path: "/fw/" + sha, block2: 0, want: codes.InternalServerError, wantDiag: "internal error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target := addr
			if tc.addr != "" {
				target = tc.addr
			}
			cc := dial(t, target)
			opts := tc.opts
			if tc.block2 >= 0 {
				opts = append(opts, block2(blockwise.SZX1024, tc.block2))
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			method := tc.method
			if method == 0 {
				method = codes.GET
			}
			req, err := cc.NewGetRequest(ctx, tc.path, opts...)
			if err != nil {
				t.Fatal(err)
			}
			req.SetCode(method)
			resp, err := cc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b := decodeBlock(t, resp)
			if b.code != tc.want || !strings.Contains(string(b.payload), tc.wantDiag) {
				t.Errorf("%v %s = %v %q, want %v mentioning %q", method, tc.path, b.code, b.payload, tc.want, tc.wantDiag)
			}
			if strings.Contains(string(b.payload), "secret") {
				t.Errorf("diagnostic %q leaks the internal error", b.payload)
			}
		})
	}
}

// TestFirmwareDownloadCap: with max_downloads 1, a second device is
// answered 5.03 with a jittered Max-Age while the first one's blocks keep
// being served; once the first has its last block, the second is admitted.
func TestFirmwareDownloadCap(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxDownloads, cfg.RetryAfter = 1, 10*time.Second
	addr, img, sha := fwServer(t, cfg)
	first, second := dial(t, addr), dial(t, addr) // two sockets: two devices

	if b := get(t, first, sha, blockwise.SZX1024, 0); b.code != codes.Content {
		t.Fatalf("the first device's block 0 = %v, want 2.05", b.code)
	}
	b := get(t, second, sha, blockwise.SZX1024, 0)
	if b.code != codes.ServiceUnavailable || b.maxAge < 5 || b.maxAge > 15 || !strings.Contains(string(b.payload), "1 firmware downloads in progress") {
		t.Errorf("the second device's block 0 while one download runs = %v, Max-Age %d, %q; want 5.03 with Max-Age 5-15 and a diagnostic", b.code, b.maxAge, b.payload)
	}
	if b := get(t, second, sha, blockwise.SZX1024, 3); b.code != codes.ServiceUnavailable {
		t.Errorf("the second device resuming at block 3 = %v, want 5.03: it is a new download too", b.code)
	}
	got := fetch(t, first, img, sha, blockwise.SZX1024, blockwise.SZX1024, 1)
	if !bytes.Equal(got, img[1024:]) {
		t.Errorf("the first device fetched %d bytes after block 0, want %d", len(got), len(img)-1024)
	}
	if got := fetch(t, second, img, sha, blockwise.SZX1024, blockwise.SZX1024, 0); !bytes.Equal(got, img) {
		t.Errorf("the second device, admitted after the first finished, fetched %d bytes, want the image", len(got))
	}
}

// TestFirmwareDuringReports: reports of other devices are answered while a
// download runs; neither waits for the other.
func TestFirmwareDuringReports(t *testing.T) {
	addr, img, sha := fwServer(t, DefaultConfig())
	var wg sync.WaitGroup
	downloaded := make(chan []byte, 1)
	wg.Go(func() {
		downloaded <- fetch(t, dial(t, addr), img, sha, blockwise.SZX16, blockwise.SZX16, 0) // 341 blocks
	})
	reporter := dial(t, addr)
	for seq := 1; seq <= 50; seq++ {
		body, _ := coap.EncodePack(coap.FormatSenMLCBOR, coap.Pack{coap.Float("seq", "", float64(seq))})
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		resp, err := reporter.Post(ctx, "/dp", coap.FormatSenMLCBOR, bytes.NewReader(body), message.Option{ID: message.URIQuery, Value: []byte("ep=pump-2")})
		cancel()
		if err != nil || resp.Code() != codes.Changed {
			t.Fatalf("report %d during a download = %v, %v; want 2.04", seq, resp, err)
		}
	}
	wg.Wait()
	if got := <-downloaded; !bytes.Equal(got, img) {
		t.Errorf("the download beside the reports fetched %d bytes, want the image", len(got))
	}
}

// creds is a Credentials whose only current credential is current's.
type creds struct{ current string }

func (creds) PSK(string) ([]byte, error) { return nil, errors.New("none") }
func (creds) VerifyCertificate(*x509.Certificate) (string, uint64, error) {
	return "", 0, errors.New("none")
}
func (creds) Generation(string) (uint64, bool)       { return 1, true }
func (c creds) Current(device string, _ uint64) bool { return device == c.current }

// TestFirmwareSession: over DTLS only a session that authenticated a
// device with a current credential fetches images; the image need not be
// "its" image (images are not per device).
func TestFirmwareSession(t *testing.T) {
	img, sha := testImage(100)
	g, err := New(DefaultConfig(), images{byHash: map[string][]byte{sha: img}}, slog.New(slog.DiscardHandler), telemetry.Noop())
	if err != nil {
		t.Fatal(err)
	}
	req := request{method: codes.GET, path: []string{"fw", sha}, peer: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5000}}
	for _, tc := range []struct {
		name       string
		session    *session
		want       codes.Code
		wantDevice string
		wantDiag   string
	}{
		{name: "plain CoAP", want: codes.Content},
		{name: "device", session: &session{device: "pump-1", generation: 1, method: "psk", creds: creds{current: "pump-1"}}, want: codes.Content, wantDevice: "pump-1"},
		{name: "enrolment session", session: &session{method: "enrol", creds: creds{}}, want: codes.Forbidden, wantDiag: "no device credential"},
		{name: "revoked", session: &session{device: "pump-1", generation: 1, method: "cert", creds: creds{current: "pump-2"}}, want: codes.Forbidden, wantDevice: "pump-1", wantDiag: "revoked or replaced"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			if tc.session != nil {
				ctx = context.WithValue(ctx, sessionKey{}, tc.session)
			}
			device, a := g.route(ctx, req)
			if a.code != tc.want || device != tc.wantDevice || !strings.Contains(string(a.payload), tc.wantDiag) {
				t.Errorf("GET /fw/{sha} as %s = %v %q, device %q; want %v mentioning %q, device %q", tc.name, a.code, a.payload, device, tc.want, tc.wantDiag, tc.wantDevice)
			}
		})
	}
}

// TestDownloads checks the admission of downloads against a clock: a slot
// is held from the first block until the last or 30 s of silence.
func TestDownloads(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	ds := newDownloads(2, func() time.Time { return now })
	a, b, c := download{"10.0.0.1:5683", "aa"}, download{"10.0.0.2:5683", "aa"}, download{"10.0.0.3:5683", "aa"}
	step := func(what string, got, want bool) {
		t.Helper()
		if got != want {
			t.Errorf("%s = %v, want %v", what, got, want)
		}
	}
	step("admit(a)", ds.admit(a), true)
	step("admit(b)", ds.admit(b), true)
	step("admit(c) with two active", ds.admit(c), false)
	step("admit(a) again", ds.admit(a), true)
	step("admit(a, same address, another image)", ds.admit(download{a.peer, "bb"}), false)

	now = now.Add(20 * time.Second)
	step("admit(a) after 20 s", ds.admit(a), true) // b is now silent for 20 s
	now = now.Add(downloadIdle - 20*time.Second)
	step("admit(c) when b was silent for 30 s", ds.admit(c), true)
	if n := ds.count(); n != 2 {
		t.Errorf("count() = %d, want 2 (a and c)", n)
	}
	step("admit(b) after its slot was taken", ds.admit(b), false)

	ds.done(a)
	step("admit(b) after a finished", ds.admit(b), true)
	now = now.Add(downloadIdle)
	if n := ds.count(); n != 0 {
		t.Errorf("count() after 30 s of silence = %d, want 0", n)
	}
}

// BenchmarkFirmwareBlock is one block of 1024 bytes fetched over loopback
// by one device, request after request (NSTART 1, as a device does).
func BenchmarkFirmwareBlock(b *testing.B) {
	img, sha := testImage(1 << 20)
	cfg := DefaultConfig()
	// On loopback one client asks for blocks far faster than any device
	// across a network could: the per-peer rate must not be what is measured.
	cfg.MaxPeerRate, cfg.MaxPeerBurst = 1e9, 1e9
	g, err := New(cfg, images{byHash: map[string][]byte{sha: img}}, slog.New(slog.DiscardHandler), telemetry.Noop())
	if err != nil {
		b.Fatal(err)
	}
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Serve(ctx, conn) }()
	defer func() { cancel(); <-done }()
	blocks := int64(len(img) / 1024)
	for _, non := range []bool{false, true} {
		name := "con"
		if non {
			name = "non"
		}
		b.Run(name, func(b *testing.B) {
			cc := dial(b, conn.LocalAddr().String())
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			b.ReportAllocs()
			num := int64(0)
			for b.Loop() {
				var blk block
				if non {
					blk, _ = getNon(b, cc, sha, blockwise.SZX1024, num%blocks)
				} else {
					blk = get(b, cc, sha, blockwise.SZX1024, num%blocks)
				}
				if blk.code != codes.Content {
					b.Fatalf("block %d: %v", num%blocks, blk.code)
				}
				num++
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
			b.ReportMetric(float64(num)/b.Elapsed().Seconds(), "blocks/s")
			// What stays on the heap per block served: go-coap's response
			// cache keeps every piggy-backed answer for 247 s.
			b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/float64(num), "retained-B/block")
		})
	}
}

// BenchmarkFirmwareRoute is the handler's own cost for one block: the
// route, the admission and the read, without the network.
func BenchmarkFirmwareRoute(b *testing.B) {
	img, sha := testImage(1 << 20)
	g, err := New(DefaultConfig(), images{byHash: map[string][]byte{sha: img}}, slog.New(slog.DiscardHandler), telemetry.Noop())
	if err != nil {
		b.Fatal(err)
	}
	peer := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5000}
	ctx := context.Background()
	b.ReportAllocs()
	num := uint32(0)
	for b.Loop() {
		req := request{method: codes.GET, path: []string{"fw", sha}, peer: peer, block2: (num%1024)<<4 | 6, hasBlock2: true}
		if _, a := g.route(ctx, req); a.code != codes.Content {
			b.Fatalf("block %d: %v %s", num, a.code, a.payload)
		}
		num++
	}
}
