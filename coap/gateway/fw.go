package gateway

import (
	"context"
	"encoding/hex"
	"errors"
	"io"
	"math"
	"sync"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"

	"github.com/medfleet/medfleet/coap"
)

// formatImage is the Content-Format of firmware blocks:
// application/octet-stream (42).
var formatImage = message.AppOctets

const (
	// downloadIdle ends a download that asked for no block for this long.
	downloadIdle = 30 * time.Second
	// sweepInterval spaces the sweeps of idle downloads, which run only
	// when every slot is taken.
	sweepInterval = time.Second
)

// isFirmware reports whether path is /fw/{sha256}.
func isFirmware(path []string) bool { return len(path) == 2 && path[0] == "fw" }

// firmware answers GET /fw/{sha256} with one block of the image (RFC 7959
// Block2). Each request is answered on its own, from its Block2 option
// (none: block 0 of 1024 bytes): the device drives the transfer and may
// start, resume or repeat any block, and the gateway keeps nothing per
// transfer but its slot among the downloads admitted. go-coap's own
// block-wise stays off, so no response body is held between requests.
func (g *Gateway) firmware(ctx context.Context, sha string, req request) (string, answer) {
	device := ""
	if s := sessionOf(ctx); s != nil { // images are not per device, but only devices fetch them
		device = s.device
		if a, ok := authorize(ctx, device); !ok {
			return device, a
		}
	}
	digest, ok := decodeSHA256(sha)
	if !ok {
		return device, diagnostic(codes.BadRequest, "sha256: %q is not 64 lower-case hex digits", truncate(sha))
	}
	szx, num := blockwise.SZX1024, int64(0)
	if req.hasBlock2 {
		var err error
		if szx, num, _, err = blockwise.DecodeBlockOption(req.block2); err != nil {
			return device, diagnostic(codes.BadOption, "block2: %v", err)
		}
		// Blocks are at most 1024 bytes (SZX 6). SZX 7 is BERT, for TCP
		// only; its blocks are numbered in units of 1024 bytes too.
		szx = min(szx, blockwise.SZX1024)
	}
	img, err := g.backend.Firmware(ctx, sha)
	if err != nil {
		return device, g.failure(device, err)
	}
	size, blockSize := img.Size(), szx.Size()
	off := num * blockSize
	if off >= size {
		return device, diagnostic(codes.BadOption, "block2: block %d is past the end of an image of %d bytes", num, size)
	}
	end := min(off+blockSize, size)
	dl := download{sha: sha}
	if req.peer != nil {
		dl.peer = req.peer.String()
	}
	if !g.downloads.admit(dl) {
		a := diagnostic(codes.ServiceUnavailable, "busy: %d firmware downloads in progress; retry after Max-Age", g.cfg.MaxDownloads)
		a.opts, a.throttled = []message.Option{g.retryAfter()}, true
		return device, a
	}
	buf := make([]byte, end-off)
	if err := g.readBlock(ctx, img, sha, buf, off); err != nil {
		return device, g.failure(device, err)
	}
	more := end < size
	if !more {
		g.downloads.done(dl)
	}
	block, err := blockwise.EncodeBlockOption(szx, num, more)
	if err != nil { // num came from a valid option: cannot happen
		return device, g.failure(device, err)
	}
	g.tel.firmwareBlock(ctx, len(buf))
	return device, answer{code: codes.Content, format: formatImage, payload: buf, opts: []message.Option{
		{ID: message.ETag, Value: digest[:coap.FirmwareETagLength]},
		{ID: message.Block2, Value: uint32Bytes(block)},
		{ID: message.Size2, Value: uint32Bytes(uint32(min(size, math.MaxUint32)))},
	}}
}

// readBlock fills buf from img at off. An image deleted or replaced since
// it was opened fails to read: it is opened once more, so that a replaced
// copy is read and a deleted one answers ErrNoImage.
func (g *Gateway) readBlock(ctx context.Context, img Image, sha string, buf []byte, off int64) error {
	if n, _ := img.ReadAt(buf, off); n == len(buf) {
		return nil // the error may be io.EOF for the last block
	}
	img, err := g.backend.Firmware(ctx, sha)
	if err != nil {
		return err
	}
	n, err := img.ReadAt(buf, off)
	switch {
	case n == len(buf):
		return nil
	case err == nil, errors.Is(err, io.EOF):
		err = io.ErrUnexpectedEOF
	}
	return err
}

// decodeSHA256 decodes 64 lower-case hex digits.
func decodeSHA256(s string) ([]byte, bool) {
	if len(s) != 64 {
		return nil, false
	}
	for i := range len(s) {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return nil, false
		}
	}
	b, err := hex.DecodeString(s)
	return b, err == nil
}

func truncate(s string) string {
	if len(s) > 72 {
		return s[:72] + "..."
	}
	return s
}

// download is one device fetching one image: its address and the image's
// SHA-256.
type download struct{ peer, sha string }

// downloads are the firmware downloads in progress, at most max of them.
// A download is active from its first block until its last block was
// served or it asked for no block for downloadIdle; idle ones are swept
// only when every slot is taken (and when the gauge is read), so that a
// block of an active download costs a map lookup under a mutex.
type downloads struct {
	max int
	now func() time.Time

	mu     sync.Mutex
	active map[download]time.Time // when each last asked for a block
	swept  time.Time
}

func newDownloads(max int, now func() time.Time) *downloads {
	return &downloads{max: max, now: now, active: make(map[download]time.Time)}
}

// admit reports whether a block of d may be served: d is active, or a slot
// is free for it.
func (ds *downloads) admit(d download) bool {
	now := ds.now()
	ds.mu.Lock()
	defer ds.mu.Unlock()
	if last, ok := ds.active[d]; ok && now.Sub(last) < downloadIdle {
		ds.active[d] = now
		return true
	}
	if len(ds.active) >= ds.max && now.Sub(ds.swept) >= sweepInterval {
		ds.sweep(now)
	}
	if _, ok := ds.active[d]; !ok && len(ds.active) >= ds.max {
		return false
	}
	ds.active[d] = now
	return true
}

// done ends d: its last block was served.
func (ds *downloads) done(d download) {
	ds.mu.Lock()
	delete(ds.active, d)
	ds.mu.Unlock()
}

// count sweeps idle downloads and returns how many are active.
func (ds *downloads) count() int {
	now := ds.now()
	ds.mu.Lock()
	defer ds.mu.Unlock()
	ds.sweep(now)
	return len(ds.active)
}

// sweep forgets idle downloads; ds.mu is held.
func (ds *downloads) sweep(now time.Time) {
	for d, last := range ds.active {
		if now.Sub(last) >= downloadIdle {
			delete(ds.active, d)
		}
	}
	ds.swept = now
}
