package agent

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/medfleet/medfleet/coap"
)

// Entry is one report: its sequence number and its SenML-CBOR pack.
type Entry struct {
	Seq  uint64
	Pack []byte
}

// Queue holds the reports the server has not acknowledged yet, oldest first,
// so that nothing is lost while the server is unreachable and nothing is
// counted twice after (the server drops sequence numbers it has seen).
//
// A report is settled when the server accepted it, refused it for good
// (4.00), or when it was dropped to keep the queue within its limit. Every
// report up to Acked is settled; the others are pending.
type Queue interface {
	// Append adds e after every other report; e.Seq must be above all of
	// them. When more than the limit are then pending, the oldest are
	// settled unsent and their number is returned.
	Append(e Entry) (dropped int, err error)
	// Next returns the oldest pending report whose sequence number is above
	// after; Next(0) is the oldest of all.
	Next(after uint64) (Entry, bool, error)
	// First is the sequence number of the oldest pending report.
	First() (uint64, bool)
	// Len is the number of pending reports.
	Len() int
	// Ack settles every report up to seq.
	Ack(seq uint64) error
	// Acked is the highest settled sequence number.
	Acked() uint64
	// Last is the newest report ever appended, pending or settled. It
	// survives acknowledgement, compaction and reopening, so that a restarted
	// agent continues its numbering and its counters from it.
	Last() (Entry, bool)
	// Renumber gives the pending reports the sequence numbers above+1,
	// above+2, ... in order, with packs rewritten by repack, and settles
	// everything up to above. It is for a server that has accepted higher
	// numbers than the agent remembers.
	Renumber(above uint64, repack func(seq uint64, pack []byte) ([]byte, error)) error
	// Close releases the queue's file; it is idempotent.
	Close() error
}

// ErrQueueOrder is returned by Append for a sequence number that is not
// above every other.
var ErrQueueOrder = errors.New("agent: queue: sequence number not increasing")

// ErrQueueClosed is returned by a closed queue.
var ErrQueueClosed = errors.New("agent: queue: closed")

// maxPack bounds a queued pack: the server refuses bigger ones (4.13).
const maxPack = coap.MaxPayload

// NewMemoryQueue returns a queue that keeps at most limit pending reports in
// memory.
func NewMemoryQueue(limit int) Queue {
	return &memQueue{limit: max(limit, 1)}
}

type memQueue struct {
	limit   int
	pending []Entry
	acked   uint64
	last    Entry
	hasLast bool
}

func (q *memQueue) Append(e Entry) (int, error) {
	if e.Seq == 0 || (q.hasLast && e.Seq <= q.last.Seq) {
		return 0, fmt.Errorf("%w: %d after %d", ErrQueueOrder, e.Seq, q.last.Seq)
	}
	if len(e.Pack) > maxPack {
		return 0, fmt.Errorf("agent: queue: pack of %d bytes, at most %d", len(e.Pack), maxPack)
	}
	e.Pack = append([]byte(nil), e.Pack...)
	q.pending = append(q.pending, e)
	q.last, q.hasLast = e, true
	dropped := len(q.pending) - q.limit
	if dropped <= 0 {
		return 0, nil
	}
	q.acked = q.pending[dropped-1].Seq
	q.forget(dropped)
	return dropped, nil
}

func (q *memQueue) Next(after uint64) (Entry, bool, error) {
	i := sort.Search(len(q.pending), func(i int) bool { return q.pending[i].Seq > after })
	if i == len(q.pending) {
		return Entry{}, false, nil
	}
	return q.pending[i], true, nil
}

func (q *memQueue) First() (uint64, bool) {
	if len(q.pending) == 0 {
		return 0, false
	}
	return q.pending[0].Seq, true
}

func (q *memQueue) Len() int { return len(q.pending) }

func (q *memQueue) Ack(seq uint64) error {
	if seq <= q.acked {
		return nil
	}
	q.acked = seq
	n := 0
	for n < len(q.pending) && q.pending[n].Seq <= seq {
		n++
	}
	q.forget(n)
	return nil
}

// forget removes the n oldest pending reports. Reslicing keeps appends
// amortised O(1); the next growth of the slice copies only what is left.
func (q *memQueue) forget(n int) {
	clear(q.pending[:n])
	q.pending = q.pending[n:]
	if len(q.pending) == 0 {
		q.pending = nil
	}
}

func (q *memQueue) Acked() uint64 { return q.acked }

func (q *memQueue) Last() (Entry, bool) { return q.last, q.hasLast }

func (q *memQueue) Renumber(above uint64, repack func(uint64, []byte) ([]byte, error)) error {
	out := make([]Entry, len(q.pending))
	for i, e := range q.pending {
		seq := above + uint64(i) + 1
		pack, err := repack(seq, e.Pack)
		if err != nil {
			return fmt.Errorf("agent: queue: renumber %d: %w", e.Seq, err)
		}
		out[i] = Entry{Seq: seq, Pack: pack}
	}
	q.pending = out
	q.acked = max(q.acked, above)
	if len(out) > 0 {
		q.last = out[len(out)-1]
	}
	return nil
}

func (q *memQueue) Close() error { return nil }

// The on-disk queue is one append-only log file, queue.log:
//
//	magic "MFQLOG1\n"
//	frame*   frame = length (uint32, big endian) | CRC-32C of payload (uint32) | payload
//	         payload = seq (uint64, big endian) | SenML-CBOR pack
//
// Sequence numbers increase along the file. Which frames are settled is not
// in the log: the agent keeps the acknowledged sequence number in device.json
// and passes it to OpenQueue. A stale number only makes the agent send some
// reports again, and the server drops those. Opening truncates a torn or
// corrupt tail (a crash during an append). When the settled prefix grows
// large the log is compacted: the pending frames, or else the newest one,
// are copied to a new file that replaces the old one by rename.
const (
	queueFile   = "queue.log"
	queueMagic  = "MFQLOG1\n"
	frameHeader = 8 // length, CRC
	seqLen      = 8
	// defaultCompactAt is the size of the settled prefix that triggers a
	// compaction (when it is also half the file).
	defaultCompactAt = 256 << 10
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// frameRef locates one frame of the log.
type frameRef struct {
	seq uint64
	off int64 // of the frame header
	n   int   // payload length
}

type fileQueue struct {
	dir       string
	path      string
	limit     int
	sync      bool
	log       *slog.Logger
	compactAt int64

	f       *os.File
	size    int64
	frames  []frameRef // every frame of the log, in order
	head    int        // frames[head:] are pending
	acked   uint64
	last    Entry
	hasLast bool
}

// OpenQueue opens (or creates) the queue in dir, with every report up to
// acked settled and at most limit pending. sync makes every append and
// compaction wait for fsync. A torn or corrupt tail is truncated and logged;
// a file that is not a queue at all is moved aside.
func OpenQueue(dir string, acked uint64, limit int, sync bool, log *slog.Logger) (Queue, error) {
	return openFileQueue(dir, acked, limit, sync, log)
}

func openFileQueue(dir string, acked uint64, limit int, sync bool, log *slog.Logger) (*fileQueue, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("agent: queue: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	q := &fileQueue{
		dir: dir, path: filepath.Join(dir, queueFile), limit: max(limit, 1), sync: sync,
		log: log, compactAt: defaultCompactAt, acked: acked,
	}
	f, err := os.OpenFile(q.path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("agent: queue: %w", err)
	}
	q.f = f
	if err := q.load(); err != nil {
		_ = f.Close()
		return nil, err
	}
	for q.head < len(q.frames) && q.frames[q.head].seq <= acked {
		q.head++
	}
	if n := q.Len() - q.limit; n > 0 {
		q.head += n
		q.acked = q.frames[q.head-1].seq
		q.log.Warn("queue over its limit: dropped the oldest reports", slog.Int(keyDropped, n), slog.Int(keyLimit, q.limit))
	}
	return q, nil
}

// load reads the log, keeps its valid prefix and truncates the rest.
func (q *fileQueue) load() error {
	info, err := q.f.Stat()
	if err != nil {
		return fmt.Errorf("agent: queue: %w", err)
	}
	if info.Size() == 0 {
		return q.writeMagic()
	}
	r := bufio.NewReaderSize(io.NewSectionReader(q.f, 0, info.Size()), 64<<10)
	magic := make([]byte, len(queueMagic))
	if _, err := io.ReadFull(r, magic); err != nil || string(magic) != queueMagic {
		return q.moveAside(info.Size())
	}
	off := int64(len(queueMagic))
	var (
		hdr     [frameHeader]byte
		payload []byte
		prev    uint64
		reason  string
	)
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if !errors.Is(err, io.EOF) {
				reason = "torn frame header"
			}
			break
		}
		n := int(binary.BigEndian.Uint32(hdr[0:4]))
		if n < seqLen || n > seqLen+maxPack {
			reason = fmt.Sprintf("frame length %d", n)
			break
		}
		if cap(payload) < n {
			payload = make([]byte, n)
		}
		payload = payload[:n]
		if _, err := io.ReadFull(r, payload); err != nil {
			reason = "torn frame"
			break
		}
		if crc32.Checksum(payload, crcTable) != binary.BigEndian.Uint32(hdr[4:8]) {
			reason = "checksum mismatch"
			break
		}
		seq := binary.BigEndian.Uint64(payload[:seqLen])
		if seq == 0 || (len(q.frames) > 0 && seq <= prev) {
			reason = fmt.Sprintf("sequence number %d after %d", seq, prev)
			break
		}
		q.frames = append(q.frames, frameRef{seq: seq, off: off, n: n})
		q.last = Entry{Seq: seq, Pack: append([]byte(nil), payload[seqLen:]...)}
		q.hasLast = true
		prev = seq
		off += frameHeader + int64(n)
	}
	q.size = off
	if off < info.Size() {
		q.log.Warn("queue: truncating a torn or corrupt tail", slog.String(keyReason, reason),
			slog.Int64(keyOffset, off), slog.Int64(keyBytes, info.Size()-off))
		if err := q.f.Truncate(off); err != nil {
			return fmt.Errorf("agent: queue: truncate: %w", err)
		}
		if err := q.syncFile(); err != nil {
			return err
		}
	}
	return nil
}

// moveAside keeps a file that is not a queue log for a person to look at,
// and starts an empty log.
func (q *fileQueue) moveAside(size int64) error {
	aside := fmt.Sprintf("%s.corrupt-%d", q.path, time.Now().UnixNano())
	q.log.Error("queue: not a queue log, moved aside; its reports are lost", slog.String(keyPath, aside), slog.Int64(keyBytes, size))
	if err := os.Rename(q.path, aside); err != nil {
		return fmt.Errorf("agent: queue: %w", err)
	}
	_ = q.f.Close()
	f, err := os.OpenFile(q.path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("agent: queue: %w", err)
	}
	q.f = f
	return q.writeMagic()
}

func (q *fileQueue) writeMagic() error {
	if _, err := q.f.WriteAt([]byte(queueMagic), 0); err != nil {
		return fmt.Errorf("agent: queue: %w", err)
	}
	q.size = int64(len(queueMagic))
	return q.syncFile()
}

func (q *fileQueue) syncFile() error {
	if !q.sync {
		return nil
	}
	if err := q.f.Sync(); err != nil {
		return fmt.Errorf("agent: queue: fsync: %w", err)
	}
	return nil
}

// frame encodes one log frame.
func frame(seq uint64, pack []byte) []byte {
	b := make([]byte, frameHeader+seqLen+len(pack))
	binary.BigEndian.PutUint32(b[0:4], uint32(seqLen+len(pack)))
	binary.BigEndian.PutUint64(b[frameHeader:], seq)
	copy(b[frameHeader+seqLen:], pack)
	binary.BigEndian.PutUint32(b[4:8], crc32.Checksum(b[frameHeader:], crcTable))
	return b
}

func (q *fileQueue) Append(e Entry) (int, error) {
	if q.f == nil {
		return 0, ErrQueueClosed
	}
	if e.Seq == 0 || (q.hasLast && e.Seq <= q.last.Seq) {
		return 0, fmt.Errorf("%w: %d after %d", ErrQueueOrder, e.Seq, q.last.Seq)
	}
	if len(e.Pack) > maxPack {
		return 0, fmt.Errorf("agent: queue: pack of %d bytes, at most %d", len(e.Pack), maxPack)
	}
	b := frame(e.Seq, e.Pack)
	if _, err := q.f.WriteAt(b, q.size); err != nil {
		_ = q.f.Truncate(q.size) // do not leave half a frame behind
		return 0, fmt.Errorf("agent: queue: append: %w", err)
	}
	if err := q.syncFile(); err != nil {
		return 0, err
	}
	q.frames = append(q.frames, frameRef{seq: e.Seq, off: q.size, n: len(b) - frameHeader})
	q.size += int64(len(b))
	q.last, q.hasLast = Entry{Seq: e.Seq, Pack: append([]byte(nil), e.Pack...)}, true
	dropped := q.Len() - q.limit
	if dropped <= 0 {
		return 0, nil
	}
	q.head += dropped
	q.acked = q.frames[q.head-1].seq
	return dropped, q.maybeCompact()
}

// read returns the entry of one frame.
func (q *fileQueue) read(ref frameRef) (Entry, error) {
	b := make([]byte, frameHeader+ref.n)
	if _, err := q.f.ReadAt(b, ref.off); err != nil {
		return Entry{}, fmt.Errorf("agent: queue: read %d: %w", ref.seq, err)
	}
	if crc32.Checksum(b[frameHeader:], crcTable) != binary.BigEndian.Uint32(b[4:8]) {
		return Entry{}, fmt.Errorf("agent: queue: read %d: checksum mismatch", ref.seq)
	}
	return Entry{Seq: ref.seq, Pack: b[frameHeader+seqLen:]}, nil
}

func (q *fileQueue) Next(after uint64) (Entry, bool, error) {
	if q.f == nil {
		return Entry{}, false, ErrQueueClosed
	}
	pending := q.frames[q.head:]
	i := sort.Search(len(pending), func(i int) bool { return pending[i].seq > after })
	if i == len(pending) {
		return Entry{}, false, nil
	}
	e, err := q.read(pending[i])
	return e, err == nil, err
}

func (q *fileQueue) First() (uint64, bool) {
	if q.head >= len(q.frames) {
		return 0, false
	}
	return q.frames[q.head].seq, true
}

func (q *fileQueue) Len() int { return len(q.frames) - q.head }

func (q *fileQueue) Acked() uint64 { return q.acked }

func (q *fileQueue) Last() (Entry, bool) { return q.last, q.hasLast }

func (q *fileQueue) Ack(seq uint64) error {
	if q.f == nil {
		return ErrQueueClosed
	}
	if seq <= q.acked {
		return nil
	}
	q.acked = seq
	for q.head < len(q.frames) && q.frames[q.head].seq <= seq {
		q.head++
	}
	return q.maybeCompact()
}

// maybeCompact rewrites the log when its settled prefix is large.
func (q *fileQueue) maybeCompact() error {
	keep := q.frames[q.head:]
	if len(keep) == 0 && len(q.frames) > 0 {
		keep = q.frames[len(q.frames)-1:] // the newest frame stays: see Last
	}
	settled := q.size - int64(len(queueMagic))
	if len(keep) > 0 {
		settled = keep[0].off - int64(len(queueMagic))
	}
	if settled < q.compactAt || 2*settled < q.size {
		return nil
	}
	return q.rewrite(keep, nil)
}

func (q *fileQueue) Renumber(above uint64, repack func(uint64, []byte) ([]byte, error)) error {
	if q.f == nil {
		return ErrQueueClosed
	}
	pending := q.frames[q.head:]
	if len(pending) == 0 {
		q.acked = max(q.acked, above)
		return nil
	}
	seq := above
	err := q.rewrite(pending, func(e Entry) (Entry, error) {
		seq++
		pack, err := repack(seq, e.Pack)
		if err != nil {
			return Entry{}, fmt.Errorf("agent: queue: renumber %d: %w", e.Seq, err)
		}
		if len(pack) > maxPack {
			return Entry{}, fmt.Errorf("agent: queue: renumber %d: pack of %d bytes", e.Seq, len(pack))
		}
		return Entry{Seq: seq, Pack: pack}, nil
	})
	if err != nil {
		return err
	}
	q.acked = max(q.acked, above)
	return nil
}

// rewrite replaces the log with one holding the frames keep, each passed
// through transform when it is not nil, and settles nothing: the pending
// frames are those above q.acked.
func (q *fileQueue) rewrite(keep []frameRef, transform func(Entry) (Entry, error)) (err error) {
	tmp := q.path + ".tmp"
	w, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("agent: queue: compact: %w", err)
	}
	defer func() {
		if err != nil {
			_ = w.Close()
			_ = os.Remove(tmp)
		}
	}()
	bw := bufio.NewWriterSize(w, 64<<10)
	if _, err := bw.WriteString(queueMagic); err != nil {
		return fmt.Errorf("agent: queue: compact: %w", err)
	}
	off := int64(len(queueMagic))
	frames := make([]frameRef, 0, len(keep))
	var last Entry
	for _, ref := range keep {
		e, err := q.read(ref)
		if err != nil {
			return err
		}
		if transform != nil {
			if e, err = transform(e); err != nil {
				return err
			}
		}
		b := frame(e.Seq, e.Pack)
		if _, err := bw.Write(b); err != nil {
			return fmt.Errorf("agent: queue: compact: %w", err)
		}
		frames = append(frames, frameRef{seq: e.Seq, off: off, n: len(b) - frameHeader})
		off += int64(len(b))
		last = e
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("agent: queue: compact: %w", err)
	}
	if q.sync {
		if err := w.Sync(); err != nil {
			return fmt.Errorf("agent: queue: compact: fsync: %w", err)
		}
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("agent: queue: compact: %w", err)
	}
	if err := os.Rename(tmp, q.path); err != nil {
		return fmt.Errorf("agent: queue: compact: %w", err)
	}
	if q.sync {
		if err := syncDir(q.dir); err != nil {
			return fmt.Errorf("agent: queue: compact: %w", err)
		}
	}
	f, err := os.OpenFile(q.path, os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("agent: queue: compact: %w", err)
	}
	_ = q.f.Close()
	q.f, q.size, q.frames = f, off, frames
	if len(frames) > 0 {
		q.last = Entry{Seq: last.Seq, Pack: append([]byte(nil), last.Pack...)}
	}
	q.head = 0
	for q.head < len(q.frames) && q.frames[q.head].seq <= q.acked {
		q.head++
	}
	return nil
}

func (q *fileQueue) Close() error {
	if q.f == nil {
		return nil
	}
	err := q.f.Close()
	q.f = nil
	if err != nil {
		return fmt.Errorf("agent: queue: %w", err)
	}
	return nil
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
