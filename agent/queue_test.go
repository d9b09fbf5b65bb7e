package agent

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// queueImpls are the two Queue implementations; tests that do not reopen
// run against both.
var queueImpls = []struct {
	name string
	open func(t *testing.T, limit int) Queue
}{
	{name: "memory", open: func(t *testing.T, limit int) Queue { return NewMemoryQueue(limit) }},
	{name: "file", open: func(t *testing.T, limit int) Queue { return mustOpenQueue(t, t.TempDir(), 0, limit) }},
}

func mustOpenQueue(t *testing.T, dir string, acked uint64, limit int) *fileQueue {
	t.Helper()
	q, err := openFileQueue(dir, acked, limit, false, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("openFileQueue(%s, %d) = %v", dir, acked, err)
	}
	t.Cleanup(func() { _ = q.Close() })
	return q
}

func pack(seq uint64) []byte { return fmt.Appendf(nil, "pack-%d", seq) }

func appendSeqs(t *testing.T, q Queue, seqs ...uint64) (dropped int) {
	t.Helper()
	for _, s := range seqs {
		n, err := q.Append(Entry{Seq: s, Pack: pack(s)})
		if err != nil {
			t.Fatalf("Append(%d) = %v", s, err)
		}
		dropped += n
	}
	return dropped
}

// pending drains a copy of q's pending seqs by reading Oldest and acking.
func pendingSeqs(t *testing.T, q Queue) []uint64 {
	t.Helper()
	var out []uint64
	for q.Len() > 0 {
		e, ok, err := q.Next(0)
		if err != nil || !ok {
			t.Fatalf("Next(0) = %v, %v, %v with Len %d", e, ok, err, q.Len())
		}
		if !bytes.Equal(e.Pack, pack(e.Seq)) && !bytes.HasPrefix(e.Pack, []byte("renumbered")) {
			t.Fatalf("Oldest() pack = %q, want %q", e.Pack, pack(e.Seq))
		}
		out = append(out, e.Seq)
		if err := q.Ack(e.Seq); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func seqRange(from, to uint64) []uint64 {
	var out []uint64
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}

func TestQueue(t *testing.T) {
	tests := []struct {
		name        string
		limit       int
		appendSeqs  []uint64
		ack         uint64
		wantDropped int
		wantPending []uint64
		wantAcked   uint64
	}{
		{name: "empty", limit: 10},
		{name: "all pending", limit: 10, appendSeqs: []uint64{1, 2, 3}, wantPending: []uint64{1, 2, 3}},
		{name: "ack a prefix", limit: 10, appendSeqs: []uint64{1, 2, 3, 4}, ack: 2, wantPending: []uint64{3, 4}, wantAcked: 2},
		{name: "ack everything", limit: 10, appendSeqs: []uint64{5, 9}, ack: 9, wantAcked: 9},
		{name: "ack between seqs", limit: 10, appendSeqs: []uint64{5, 9, 12}, ack: 10, wantPending: []uint64{12}, wantAcked: 10},
		{name: "over the limit", limit: 3, appendSeqs: seqRange(1, 8), wantDropped: 5, wantPending: []uint64{6, 7, 8}, wantAcked: 5},
	}
	for _, impl := range queueImpls {
		for _, tc := range tests {
			t.Run(impl.name+"/"+tc.name, func(t *testing.T) {
				q := impl.open(t, tc.limit)
				if got := appendSeqs(t, q, tc.appendSeqs...); got != tc.wantDropped {
					t.Errorf("dropped %d, want %d", got, tc.wantDropped)
				}
				if tc.ack > 0 {
					if err := q.Ack(tc.ack); err != nil {
						t.Fatal(err)
					}
				}
				if got := q.Acked(); got != tc.wantAcked {
					t.Errorf("Acked() = %d, want %d", got, tc.wantAcked)
				}
				if last, ok := q.Last(); len(tc.appendSeqs) > 0 && (!ok || last.Seq != tc.appendSeqs[len(tc.appendSeqs)-1]) {
					t.Errorf("Last() = %d, %v, want %d", last.Seq, ok, tc.appendSeqs[len(tc.appendSeqs)-1])
				}
				if got := pendingSeqs(t, q); !slices.Equal(got, tc.wantPending) {
					t.Errorf("pending = %v, want %v", got, tc.wantPending)
				}
			})
		}
	}
}

func TestQueueAppendOrder(t *testing.T) {
	for _, impl := range queueImpls {
		t.Run(impl.name, func(t *testing.T) {
			q := impl.open(t, 10)
			appendSeqs(t, q, 5)
			for _, seq := range []uint64{5, 4, 0} {
				if _, err := q.Append(Entry{Seq: seq, Pack: pack(seq)}); !errors.Is(err, ErrQueueOrder) {
					t.Errorf("Append(%d) after 5 = %v, want ErrQueueOrder", seq, err)
				}
			}
			if _, err := q.Append(Entry{Seq: 6, Pack: make([]byte, maxPack+1)}); err == nil {
				t.Error("Append of an oversized pack = nil, want an error")
			}
		})
	}
}

func TestQueueRenumber(t *testing.T) {
	for _, impl := range queueImpls {
		t.Run(impl.name, func(t *testing.T) {
			q := impl.open(t, 10)
			appendSeqs(t, q, 1, 2, 3, 4)
			if err := q.Ack(1); err != nil {
				t.Fatal(err)
			}
			var seen []uint64
			err := q.Renumber(100, func(seq uint64, p []byte) ([]byte, error) {
				seen = append(seen, seq)
				return fmt.Appendf(nil, "renumbered %d from %s", seq, p), nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if want := []uint64{101, 102, 103}; !slices.Equal(seen, want) {
				t.Errorf("Renumber rewrote %v, want %v", seen, want)
			}
			if q.Acked() != 100 {
				t.Errorf("Acked() = %d, want 100", q.Acked())
			}
			e, _, _ := q.Next(0)
			if want := "renumbered 101 from pack-2"; string(e.Pack) != want {
				t.Errorf("Next(0) = %q, want %q", e.Pack, want)
			}
			if last, _ := q.Last(); last.Seq != 103 {
				t.Errorf("Last() = %d, want 103", last.Seq)
			}
			if _, err := q.Append(Entry{Seq: 104, Pack: pack(104)}); err != nil {
				t.Errorf("Append(104) after Renumber = %v", err)
			}
			if got, want := pendingSeqs(t, q), []uint64{101, 102, 103, 104}; !slices.Equal(got, want) {
				t.Errorf("pending = %v, want %v", got, want)
			}
		})
	}
}

// TestQueueReopen covers the file queue across restarts: acknowledged
// prefix, crash with a stale acknowledged number, the bound on reopen.
func TestQueueReopen(t *testing.T) {
	tests := []struct {
		name        string
		appendSeqs  []uint64
		ack         uint64 // before closing
		reopenAcked uint64 // what device.json said
		limit       int
		wantPending []uint64
		wantLast    uint64
	}{
		{name: "nothing acked", appendSeqs: seqRange(1, 5), limit: 10, wantPending: seqRange(1, 5), wantLast: 5},
		{name: "acked prefix", appendSeqs: seqRange(1, 5), ack: 3, reopenAcked: 3, limit: 10, wantPending: []uint64{4, 5}, wantLast: 5},
		{name: "stale acked number resends", appendSeqs: seqRange(1, 5), ack: 4, reopenAcked: 2, limit: 10, wantPending: []uint64{3, 4, 5}, wantLast: 5},
		{name: "all acked keeps last", appendSeqs: seqRange(1, 5), ack: 5, reopenAcked: 5, limit: 10, wantLast: 5},
		{name: "bound on reopen", appendSeqs: seqRange(1, 8), limit: 10, wantPending: seqRange(6, 8), wantLast: 8},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			q := mustOpenQueue(t, dir, 0, 10)
			appendSeqs(t, q, tc.appendSeqs...)
			if tc.ack > 0 {
				if err := q.Ack(tc.ack); err != nil {
					t.Fatal(err)
				}
			}
			if err := q.Close(); err != nil {
				t.Fatal(err)
			}
			limit := tc.limit
			if tc.name == "bound on reopen" {
				limit = 3
			}
			q = mustOpenQueue(t, dir, tc.reopenAcked, limit)
			if last, ok := q.Last(); !ok || last.Seq != tc.wantLast || !bytes.Equal(last.Pack, pack(tc.wantLast)) {
				t.Errorf("Last() = %d %q, %v; want %d", last.Seq, last.Pack, ok, tc.wantLast)
			}
			if got := pendingSeqs(t, q); !slices.Equal(got, tc.wantPending) {
				t.Errorf("pending after reopen = %v, want %v", got, tc.wantPending)
			}
		})
	}
}

// TestQueueTornTail damages the end of the log as a crash (or a bad disk)
// would and checks that reopening keeps every intact frame before the
// damage, truncates the rest, and appends after it.
func TestQueueTornTail(t *testing.T) {
	frameLen := int64(frameHeader + seqLen + len(pack(5)))
	tests := []struct {
		name   string
		damage func(t *testing.T, path string, size int64)
		want   []uint64
	}{
		{name: "half a header", damage: truncateBy(frameLen - 3), want: seqRange(1, 4)},
		{name: "half a payload", damage: truncateBy(5), want: seqRange(1, 4)},
		{name: "flipped byte in the last frame", damage: flipAt(-2), want: seqRange(1, 4)},
		{name: "flipped byte in frame 3", damage: flipAt(int64(len(queueMagic)) + 2*frameLen + frameHeader + 3), want: seqRange(1, 2)},
		{name: "huge length", damage: writeAt(int64(len(queueMagic))+4*frameLen, []byte{0xff, 0xff, 0xff, 0xff}), want: seqRange(1, 4)},
		{name: "zeros after the log", damage: appendBytes(make([]byte, 100)), want: seqRange(1, 5)},
		{name: "sequence going back", damage: appendBytes(frame(2, pack(2))), want: seqRange(1, 5)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			q := mustOpenQueue(t, dir, 0, 10)
			appendSeqs(t, q, seqRange(1, 5)...)
			size := q.size
			if err := q.Close(); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, queueFile)
			tc.damage(t, path, size)

			q = mustOpenQueue(t, dir, 0, 10)
			appendSeqs(t, q, 10)
			if err := q.Close(); err != nil {
				t.Fatal(err)
			}
			q = mustOpenQueue(t, dir, 0, 10)
			if got, want := pendingSeqs(t, q), append(tc.want, 10); !slices.Equal(got, want) {
				t.Errorf("pending after the damage = %v, want %v", got, want)
			}
		})
	}
}

func truncateBy(n int64) func(*testing.T, string, int64) {
	return func(t *testing.T, path string, size int64) {
		if err := os.Truncate(path, size-n); err != nil {
			t.Fatal(err)
		}
	}
}

func flipAt(off int64) func(*testing.T, string, int64) {
	return func(t *testing.T, path string, size int64) {
		if off < 0 {
			off += size
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		b[off] ^= 0x40
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func writeAt(off int64, data []byte) func(*testing.T, string, int64) {
	return func(t *testing.T, path string, _ int64) {
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteAt(data, off); err != nil {
			t.Fatal(err)
		}
	}
}

func appendBytes(data []byte) func(*testing.T, string, int64) {
	return func(t *testing.T, path string, size int64) { writeAt(size, data)(t, path, size) }
}

func TestQueueNotALog(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, queueFile), []byte("something else entirely"), 0o600); err != nil {
		t.Fatal(err)
	}
	q := mustOpenQueue(t, dir, 0, 10)
	if q.Len() != 0 {
		t.Errorf("Len() = %d, want 0", q.Len())
	}
	appendSeqs(t, q, 1)
	aside, _ := filepath.Glob(filepath.Join(dir, queueFile+".corrupt-*"))
	if len(aside) != 1 {
		t.Errorf("files moved aside: %v, want 1", aside)
	}
}

func TestQueueCompaction(t *testing.T) {
	dir := t.TempDir()
	q := mustOpenQueue(t, dir, 0, 1000)
	q.compactAt = 512
	appendSeqs(t, q, seqRange(1, 100)...)
	full := q.size
	if err := q.Ack(90); err != nil {
		t.Fatal(err)
	}
	if q.size >= full/5 {
		t.Errorf("log of %d bytes after acking 90 of 100 frames (%d bytes), want it compacted", q.size, full)
	}
	info, err := os.Stat(filepath.Join(dir, queueFile))
	if err != nil {
		t.Fatal(err)
	}
	if info.Size() != q.size || info.Mode().Perm() != 0o600 {
		t.Errorf("log file: %d bytes, mode %v; want %d bytes, 0600", info.Size(), info.Mode().Perm(), q.size)
	}
	appendSeqs(t, q, 101)
	q.compactAt = 64
	if err := q.Ack(101); err != nil { // everything settled: only the newest frame stays
		t.Fatal(err)
	}
	if want := int64(len(queueMagic)) + int64(len(frame(101, pack(101)))); q.size != want {
		t.Errorf("log of %d bytes with everything acked, want %d (the newest frame)", q.size, want)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}

	q = mustOpenQueue(t, dir, 90, 1000) // a stale acked number from device.json
	if last, _ := q.Last(); last.Seq != 101 {
		t.Errorf("Last() after compaction and reopen = %d, want 101", last.Seq)
	}
	if got := pendingSeqs(t, q); !slices.Equal(got, []uint64{101}) {
		t.Errorf("pending after reopen = %v, want [101] (sent again, dropped by the server)", got)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*.tmp")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

func TestQueueDirMode(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	mustOpenQueue(t, dir, 0, 10)
	info, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o700 {
		t.Errorf("state dir mode = %v, want 0700", info.Mode().Perm())
	}
}

// FuzzQueueOpen opens arbitrary bytes as a queue log: it must never panic,
// and what it keeps must be a valid log that survives an append and a
// reopen.
func FuzzQueueOpen(f *testing.F) {
	var valid bytes.Buffer
	valid.WriteString(queueMagic)
	for s := uint64(1); s <= 3; s++ {
		valid.Write(frame(s, pack(s)))
	}
	f.Add(valid.Bytes(), uint64(1))
	f.Add(valid.Bytes()[:valid.Len()-4], uint64(0))
	f.Add([]byte(queueMagic), uint64(0))
	f.Add([]byte{}, uint64(0))
	f.Add([]byte("MFQLOG1\n\x00\x00\x00\x08\x00\x00\x00\x00"), uint64(0))
	huge := binary.BigEndian.AppendUint32([]byte(queueMagic), 1<<31)
	f.Add(huge, uint64(0))
	f.Fuzz(func(t *testing.T, data []byte, acked uint64) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, queueFile), data, 0o600); err != nil {
			t.Fatal(err)
		}
		log := slog.New(slog.DiscardHandler)
		q, err := openFileQueue(dir, acked, 5, false, log)
		if err != nil {
			t.Fatalf("openFileQueue = %v", err)
		}
		n := q.Len()
		if n > 5 {
			t.Fatalf("Len() = %d above the limit 5", n)
		}
		for q.Len() > 0 {
			e, ok, err := q.Next(0)
			if err != nil || !ok || e.Seq <= q.Acked() {
				t.Fatalf("Next(0) = %d, %v, %v; acked %d", e.Seq, ok, err, q.Acked())
			}
			if err := q.Ack(e.Seq); err != nil {
				t.Fatal(err)
			}
		}
		last, _ := q.Last()
		next := max(last.Seq, q.Acked()) + 1
		if next == 0 { // wrapped
			return
		}
		if _, err := q.Append(Entry{Seq: next, Pack: []byte("x")}); err != nil {
			t.Fatalf("Append(%d) = %v", next, err)
		}
		if err := q.Close(); err != nil {
			t.Fatal(err)
		}
		q, err = openFileQueue(dir, q.Acked(), 5, false, log)
		if err != nil {
			t.Fatalf("reopen = %v", err)
		}
		defer q.Close()
		if last, ok := q.Last(); !ok || last.Seq != next || string(last.Pack) != "x" {
			t.Fatalf("Last() after reopen = %d %q, want %d", last.Seq, last.Pack, next)
		}
	})
}
