package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"math/bits"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	"github.com/plgd-dev/go-coap/v3/udp/coder"

	"github.com/medfleet/medfleet/coap"
)

// FirmwareConfig adds devices that download one image, block by block,
// while the reporting devices report (protocol section 7.1): each has its
// own socket, asks for one block at a time, waits Max-Age after a 5.03 and
// resumes, and checks the SHA-256 of what it fetched. They all start at
// once, --fw-before after the warm-up.
type FirmwareConfig struct {
	SHA256      string        // --fw-sha: the image, GET /fw/{SHA256}
	Devices     int           // --fw-devices: 0 for none
	BlockSize   int           // --fw-block: 16 to 1024, a power of two
	Confirmable bool          // --fw-con: CON requests, as generic clients send; NON otherwise, as agents do
	Before      time.Duration // --fw-before: reports alone, measured, before the downloads start
	After       time.Duration // --fw-after: reports alone, measured, after the last download ended
	Timeout     time.Duration // --fw-timeout: downloads still running then are unfinished

	// BlockTimeout is how long a NON block request waits for its answer
	// before it is sent again with a new Message ID, and MaxResends how
	// many times (protocol 7.1: ACK_TIMEOUT × ACK_RANDOM_FACTOR = 3 s,
	// MAX_RETRANSMIT = 4); tests shorten it. CON requests are retransmitted
	// as RFC 7252 says, with Config's parameters.
	BlockTimeout time.Duration
	MaxResends   int
}

// DefaultFirmwareConfig returns the flags' defaults and protocol 7.1's
// retransmission of NON block requests.
func DefaultFirmwareConfig() FirmwareConfig {
	return FirmwareConfig{
		BlockSize: coap.FirmwareMaxBlockSize, Before: 10 * time.Second, After: 10 * time.Second, Timeout: 10 * time.Minute,
		BlockTimeout: 3 * time.Second, MaxResends: 4,
	}
}

// validate returns the firmware flags' errors, each naming its flag.
func (f FirmwareConfig) validate(idPrefix string, baseline bool) []error {
	var errs []error
	bad := func(flag, format string, args ...any) {
		errs = append(errs, fmt.Errorf("--%s: %s", flag, fmt.Sprintf(format, args...)))
	}
	if f.Devices < 0 || f.Devices > 100_000 {
		bad("fw-devices", "%d is outside 0-100000", f.Devices)
	}
	if f.Devices <= 0 {
		if f.SHA256 != "" {
			bad("fw-sha", "needs --fw-devices")
		}
		return errs
	}
	if _, ok := decodeSHA256(f.SHA256); !ok {
		bad("fw-sha", "%q is not 64 lower-case hex digits", f.SHA256)
	}
	if f.BlockSize < 16 || f.BlockSize > coap.FirmwareMaxBlockSize || bits.OnesCount(uint(f.BlockSize)) != 1 {
		bad("fw-block", "%d is not a power of two from 16 to %d", f.BlockSize, coap.FirmwareMaxBlockSize)
	}
	if baseline {
		bad("fw-devices", "not with --baseline")
	}
	if f.Timeout <= 0 || f.Timeout > maxRun {
		bad("fw-timeout", "%v is outside (0, 1h]", f.Timeout)
	}
	if f.Before < 0 || f.Before > maxRun {
		bad("fw-before", "%v is outside [0, 1h]", f.Before)
	}
	if f.After < 0 || f.After > maxRun {
		bad("fw-after", "%v is outside [0, 1h]", f.After)
	}
	if err := coap.ValidateDeviceID(fwDeviceID(idPrefix, f.Devices-1)); err != nil {
		bad("id-prefix", "%v", err)
	}
	if f.BlockTimeout <= 0 || f.MaxResends < 0 || f.MaxResends > 10 {
		errs = append(errs, fmt.Errorf("firmware transmission parameters: block timeout %v, resends %d", f.BlockTimeout, f.MaxResends))
	}
	return errs
}

func fwDeviceID(prefix string, i int) string { return fmt.Sprintf("%s-fw-%06d", prefix, i) }

// decodeSHA256 decodes 64 lower-case hex digits, as the server names images.
func decodeSHA256(s string) ([32]byte, bool) {
	var sum [32]byte
	if len(s) != 64 {
		return sum, false
	}
	for i := range len(s) {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return sum, false
		}
	}
	_, err := hex.Decode(sum[:], []byte(s))
	return sum, err == nil
}

// Outcomes of one download.
var (
	// errIntegrity: what was fetched is not the image asked for (SHA-256,
	// length, ETag or Size2): a hash mismatch in the result.
	errIntegrity = errors.New("integrity")
	// errProtocol: an answer that breaks protocol 7.1 (a block not asked
	// for, a short block, no Block2): a failure.
	errProtocol = errors.New("protocol")
)

// fwStats are the downloads' counters, shared by all download devices.
type fwStats struct {
	blocks, bytes, retransmissions, timeouts, busy atomic.Uint64
	complete, failed, mismatches                   atomic.Uint64
	codes                                          [256]atomic.Uint64
	blockRTT                                       histogram // first transmission to the 2.05
	deviceTime                                     histogram // common start to the last block, complete downloads
	transferTime                                   histogram // first 2.05 to the last block, complete downloads
	size                                           atomic.Int64

	mu     sync.Mutex
	errors []string // the first few failures, for the reader
}

const keptErrors = 5

func (s *fwStats) noteError(id string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.errors) < keptErrors {
		s.errors = append(s.errors, id+": "+err.Error())
	}
}

// firmwareRun is the download devices of one run.
type firmwareRun struct {
	cfg   *Config
	start time.Time // when they all start
	devs  []*fwDevice
	st    fwStats
	end   time.Time // when the last one ended; set by run
}

func newFirmwareRun(cfg *Config, raddr *net.UDPAddr, start time.Time) (*firmwareRun, error) {
	r := &firmwareRun{cfg: cfg, start: start}
	for i := range cfg.Firmware.Devices {
		c, err := net.DialUDP("udp", nil, raddr)
		if err != nil {
			r.close()
			return nil, fmt.Errorf("download device %d: %w", i, err)
		}
		r.devs = append(r.devs, newFWDevice(fwDeviceID(cfg.IDPrefix, i), i, c, cfg, &r.st))
	}
	return r, nil
}

// close closes every socket; a nil run has none.
func (r *firmwareRun) close() {
	if r == nil {
		return
	}
	for _, d := range r.devs {
		d.conn.Close() // may be closed already
	}
}

// run starts every download at r.start, waits for all of them to end (at
// most --fw-timeout) and returns when the last one ended. mark is called
// just after the start and just after the end (the samplers' phase
// boundaries).
func (r *firmwareRun) run(ctx context.Context, mark func()) time.Time {
	if !sleepUntil(ctx, r.start) {
		r.end = time.Now()
		return r.end
	}
	mark()
	dctx, cancel := context.WithDeadline(ctx, r.start.Add(r.cfg.Firmware.Timeout))
	defer cancel()
	var wg sync.WaitGroup
	for _, d := range r.devs {
		wg.Go(func() { d.run(dctx, r.start) })
	}
	wg.Wait()
	r.end = time.Now()
	mark()
	return r.end
}

// fwDevice is one device downloading the image: its own socket, one block
// request at a time. Only its own goroutine touches it while it runs.
type fwDevice struct {
	id   string
	conn *net.UDPConn
	cfg  *Config
	st   *fwStats
	rng  *rand.Rand

	mid      uint16
	tokenSeq uint32
	tokenTag uint32
	out, in  []byte
	opts     message.Options // decoding space

	sum  [32]byte // the image's SHA-256
	szx  blockwise.SZX
	path []byte // the sha256 segment of /fw/{sha256}
}

func newFWDevice(id string, idx int, conn *net.UDPConn, cfg *Config, st *fwStats) *fwDevice {
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(idx)|1<<40))
	sum, _ := decodeSHA256(cfg.Firmware.SHA256) // validated
	return &fwDevice{
		id: id, conn: conn, cfg: cfg, st: st, rng: rng,
		mid: uint16(rng.Uint32()), tokenTag: rng.Uint32(),
		out: make([]byte, 256), in: make([]byte, 2048), opts: make(message.Options, 0, 16),
		sum: sum, szx: blockwise.SZX(bits.TrailingZeros(uint(cfg.Firmware.BlockSize)) - 4),
		path: []byte(cfg.Firmware.SHA256),
	}
}

// run downloads the image and counts the outcome.
func (d *fwDevice) run(ctx context.Context, start time.Time) {
	defer d.conn.Close()
	stop := context.AfterFunc(ctx, func() { d.conn.Close() }) // unblocks a Read
	defer stop()
	first, err := d.download(ctx)
	switch {
	case err == nil:
		d.st.complete.Add(1)
		d.st.deviceTime.Record(time.Since(start))
		d.st.transferTime.Record(time.Since(first))
	case errors.Is(err, errStopped):
		// unfinished: counted as what is left over
	case errors.Is(err, errIntegrity):
		d.st.mismatches.Add(1)
		d.st.noteError(d.id, err)
	default:
		d.st.failed.Add(1)
		d.st.noteError(d.id, err)
	}
}

// download fetches the image from block 0 to the block with M = 0, one
// request at a time, and checks it: every block is the block asked for,
// in the size asked for, with the image's ETag and Size2; the whole has
// Size2 bytes and the SHA-256 asked for. A 5.03 (or 4.29) makes it wait
// Max-Age and ask for the same block again. It returns when the first
// block came (a download admitted), and nil once the image checked out;
// errStopped when ctx ended first.
func (d *fwDevice) download(ctx context.Context) (first time.Time, err error) {
	h := sha256.New()
	size, got := int64(-1), int64(0)
	backoff := time.Second // after a 5.03 without Max-Age
	for num := int64(0); ; {
		sent := time.Now()
		resp, rtt, retrans, err := d.get(ctx, num)
		d.st.retransmissions.Add(uint64(retrans))
		switch {
		case errors.Is(err, errTimeout):
			d.st.timeouts.Add(1)
			return first, fmt.Errorf("block %d: no answer after %d resends: the link is lost", num, retrans)
		case errors.Is(err, errReset):
			return first, fmt.Errorf("block %d: the server answered with a Reset message", num)
		case err != nil: // errStopped
			return first, err
		}
		d.st.codes[resp.Code].Add(1)
		switch resp.Code {
		case codes.Content:
			d.st.blockRTT.Record(rtt)
			if first.IsZero() {
				first = sent
			}
			last, err := d.take(resp, num, h, &size, &got)
			if err != nil || last {
				return first, err
			}
			num++
			backoff = time.Second
		case codes.ServiceUnavailable, codes.TooManyRequests:
			d.st.busy.Add(1)
			wait := backoff
			if age, err := resp.Options.GetUint32(message.MaxAge); err == nil && age > 0 {
				wait = time.Duration(age) * time.Second
			} else {
				backoff = min(2*backoff, 30*time.Second)
			}
			if !sleepUntil(ctx, time.Now().Add(wait)) {
				return first, errStopped
			}
		default:
			return first, fmt.Errorf("block %d: %s %q", num, codeString(uint8(resp.Code)), truncate(resp.Payload))
		}
	}
}

// take checks a 2.05 to the request for block num and adds its payload to
// h; last reports the image complete and checked.
func (d *fwDevice) take(resp message.Message, num int64, h hash.Hash, size, got *int64) (last bool, err error) {
	v, err := resp.Options.GetUint32(message.Block2)
	if err != nil {
		return false, fmt.Errorf("%w: block %d: a 2.05 without Block2", errProtocol, num)
	}
	szx, n, more, err := blockwise.DecodeBlockOption(v)
	if err != nil || n != num || szx != d.szx {
		return false, fmt.Errorf("%w: asked for block %d of %d bytes, got Block2 %#x", errProtocol, num, d.szx.Size(), v)
	}
	if etag, err := resp.Options.GetBytes(message.ETag); err == nil && !bytes.Equal(etag, d.sum[:coap.FirmwareETagLength]) {
		return false, fmt.Errorf("%w: block %d: ETag %x, want %x", errIntegrity, num, etag, d.sum[:coap.FirmwareETagLength])
	}
	if s2, err := resp.Options.GetUint32(message.Size2); err == nil {
		if *size >= 0 && int64(s2) != *size {
			return false, fmt.Errorf("%w: block %d: Size2 %d, earlier blocks said %d", errIntegrity, num, s2, *size)
		}
		*size = int64(s2)
	}
	bs := szx.Size()
	if n := int64(len(resp.Payload)); (more && n != bs) || n > bs || (!more && n == 0 && num > 0) {
		return false, fmt.Errorf("%w: block %d: %d bytes with M=%v in blocks of %d", errProtocol, num, n, more, bs)
	}
	h.Write(resp.Payload)
	*got += int64(len(resp.Payload))
	d.st.blocks.Add(1)
	d.st.bytes.Add(uint64(len(resp.Payload)))
	if more {
		return false, nil
	}
	if *size >= 0 && *got != *size {
		return false, fmt.Errorf("%w: %d bytes, Size2 says %d", errIntegrity, *got, *size)
	}
	var sum [32]byte
	if h.Sum(sum[:0]); sum != d.sum {
		return false, fmt.Errorf("%w: SHA-256 of the %d bytes is %x", errIntegrity, *got, sum)
	}
	d.st.size.Store(*got)
	return true, nil
}

// get asks for block num and waits for the answer. NON (the default): no
// answer within BlockTimeout sends the request again with a new Message ID
// and the same token, at most MaxResends times (protocol 7.1). CON: RFC
// 7252 retransmission of the same message, as in exchange. rtt runs from
// the first transmission. The response points into d.in.
func (d *fwDevice) get(ctx context.Context, num int64) (resp message.Message, rtt time.Duration, retrans int, err error) {
	fc, cfg := &d.cfg.Firmware, d.cfg
	d.tokenSeq++
	var token [8]byte
	binary.BigEndian.PutUint32(token[:4], d.tokenTag)
	binary.BigEndian.PutUint32(token[4:], d.tokenSeq)
	block, err := blockwise.EncodeBlockOption(d.szx, num, false)
	if err != nil {
		return resp, 0, 0, fmt.Errorf("%w: block %d: %v", errProtocol, num, err)
	}
	var b2 [4]byte
	n, _ := message.EncodeUint32(b2[:], block)
	opts := message.Options{
		{ID: message.URIPath, Value: []byte("fw")},
		{ID: message.URIPath, Value: d.path},
		{ID: message.Block2, Value: b2[:n]},
	}
	typ, timeout, maxRetrans := message.NonConfirmable, fc.BlockTimeout, fc.MaxResends
	if fc.Confirmable {
		typ = message.Confirmable
		timeout = time.Duration(float64(cfg.AckTimeout) * (1 + d.rng.Float64()*(cfg.AckRandomFactor-1)))
		maxRetrans = cfg.MaxRetransmit
	}
	d.mid++
	mids := []int32{int32(d.mid)}
	encode := func() ([]byte, error) {
		req := message.Message{Token: token[:], Options: opts, Code: codes.GET, MessageID: int32(d.mid), Type: typ}
		size, err := coder.DefaultCoder.Encode(req, d.out)
		return d.out[:size], err
	}
	out, err := encode()
	if err != nil {
		return resp, 0, 0, fmt.Errorf("encoding: %w", err)
	}
	first := time.Now()
	deadline := first.Add(timeout)
	if _, err := d.conn.Write(out); err != nil && ctx.Err() != nil {
		return resp, 0, 0, errStopped
	}
	separate := false
	for {
		got, err := readBefore(ctx, d.conn, d.in, deadline)
		if errors.Is(err, errStopped) {
			return resp, 0, retrans, err
		}
		if errors.Is(err, errTimeout) {
			if separate || retrans == maxRetrans {
				return resp, 0, retrans, errTimeout
			}
			retrans++
			if fc.Confirmable {
				timeout *= 2 // the same message again
			} else {
				d.mid++ // a new request for the same block
				mids = append(mids, int32(d.mid))
				if out, err = encode(); err != nil {
					return resp, 0, retrans, fmt.Errorf("encoding: %w", err)
				}
			}
			deadline = time.Now().Add(timeout)
			if _, err := d.conn.Write(out); err != nil && ctx.Err() != nil {
				return resp, 0, retrans, errStopped
			}
			continue
		}
		m := message.Message{Options: d.opts[:0]}
		if _, err := coder.DefaultCoder.Decode(d.in[:got], &m); err != nil {
			continue // not CoAP: ignore
		}
		if m.Type == message.Confirmable {
			ackOn(d.conn, m.MessageID) // a separate response, or a retransmission of one
		}
		ours := slices.Contains(mids, m.MessageID)
		switch {
		case m.Type == message.Acknowledgement && m.Code == codes.Empty && ours:
			if !separate {
				separate = true
				deadline = first.Add(maxTransmitWait(cfg))
			}
		case m.Type == message.Reset && ours:
			return resp, time.Since(first), retrans, errReset
		case m.Code >= codes.Created && string(m.Token) == string(token[:]):
			return m, time.Since(first), retrans, nil
		}
		// anything else (a late answer to an earlier block) is ignored
	}
}

func truncate(b []byte) string {
	if len(b) > 80 {
		return string(b[:80]) + "..."
	}
	return string(b)
}

// phaseClock splits the measured window of a firmware run into before the
// downloads, during them and after them, and counts reports by the phase
// of their first transmission (a skipped report by its due time).
type phaseClock struct {
	fwStart time.Time
	fwEnd   atomic.Int64 // unix ns; 0 while downloads run
	stats   [3]phaseStats
}

var phaseNames = [3]string{"before", "during", "after"}

// phaseStats are the reports of one phase.
type phaseStats struct {
	sent, acked, timeouts, retransmissions, skipped atomic.Uint64
	latency                                         histogram
}

// noPhase takes the counts of a run without downloads; no one reads it.
var noPhase phaseStats

// at returns the counters of the phase t falls in.
func (p *phaseClock) at(t time.Time) *phaseStats {
	switch {
	case p == nil:
		return &noPhase
	case t.Before(p.fwStart):
		return &p.stats[0]
	case p.fwEnd.Load() == 0 || t.UnixNano() < p.fwEnd.Load():
		return &p.stats[1]
	}
	return &p.stats[2]
}

// end marks the end of the downloads.
func (p *phaseClock) end(t time.Time) { p.fwEnd.Store(t.UnixNano()) }

// bounds returns the phases' spans within the window; an empty span is
// left out.
func (p *phaseClock) bounds(win *window) (names []string, spans [][2]time.Time, idx []int) {
	fwEnd := time.Unix(0, p.fwEnd.Load())
	if p.fwEnd.Load() == 0 {
		fwEnd = win.End()
	}
	cut := [4]time.Time{win.start, p.fwStart, fwEnd, win.End()}
	for i := range 3 {
		if cut[i+1].After(cut[i]) {
			names = append(names, phaseNames[i])
			spans = append(spans, [2]time.Time{cut[i], cut[i+1]})
			idx = append(idx, i)
		}
	}
	return names, spans, idx
}

// results returns what the reporting devices saw in each phase, and what
// the server, the load generator and the whole machine used.
func (p *phaseClock) results(win *window, server, self, machine *procSampler) []PhaseResult {
	names, spans, idx := p.bounds(win)
	var out []PhaseResult
	for i, name := range names {
		st := &p.stats[idx[i]]
		from, to := spans[i][0], spans[i][1]
		d := to.Sub(from)
		r := PhaseResult{
			Name: name, DurationS: d.Seconds(),
			Sent: st.sent.Load(), Acked: st.acked.Load(), Timeouts: st.timeouts.Load(),
			Retransmissions: st.retransmissions.Load(), Skipped: st.skipped.Load(),
			Latency: latencyOf(&st.latency), Server: server.result(from, to), Bench: self.result(from, to),
			Machine: machine.result(from, to),
		}
		if d > 0 {
			r.AckedPerSec = float64(r.Acked) / d.Seconds()
		}
		out = append(out, r)
	}
	return out
}

// result returns what the downloads did.
func (r *firmwareRun) result() *FirmwareResult {
	st, f := &r.st, r.cfg.Firmware
	res := &FirmwareResult{
		SHA256: f.SHA256, Devices: f.Devices, BlockSize: f.BlockSize, Confirmable: f.Confirmable,
		ImageSize: st.size.Load(), StartedAfterS: f.Before.Seconds(),
		Complete: st.complete.Load(), Failed: st.failed.Load(), HashMismatches: st.mismatches.Load(),
		Blocks: st.blocks.Load(), Bytes: st.bytes.Load(), Busy: st.busy.Load(),
		Retransmissions: st.retransmissions.Load(), Timeouts: st.timeouts.Load(),
		BlockRTT: latencyOf(&st.blockRTT), DeviceTime: secondsOf(&st.deviceTime), TransferTime: secondsOf(&st.transferTime),
		Responses: map[string]uint64{},
	}
	res.Unfinished = uint64(f.Devices) - res.Complete - res.Failed - res.HashMismatches
	if !r.end.IsZero() {
		res.CompletionS = r.end.Sub(r.start).Seconds()
	}
	if res.CompletionS > 0 {
		res.BlocksPerSec = float64(res.Blocks) / res.CompletionS
		res.MBPerSec = float64(res.Bytes) / 1e6 / res.CompletionS
	}
	for code := range st.codes {
		if n := st.codes[code].Load(); n > 0 {
			res.Responses[codeString(uint8(code))] = n
		}
	}
	st.mu.Lock()
	res.Errors = append([]string(nil), st.errors...)
	st.mu.Unlock()
	return res
}
