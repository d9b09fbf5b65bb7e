package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/medfleet/medfleet/audit/chain"
	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

const (
	recordsPrefix = "/medfleet/v1/audit/records/"
	headKey       = "/medfleet/v1/audit/head"

	// etcdTimeout bounds every etcd call.
	etcdTimeout = 5 * time.Second
	// maxBatchBytes keeps a transaction well under etcd's default request
	// limit (1.5 MiB); maxRecordBytes keeps one record from crowding out a
	// batch. recordOverhead is what the log adds to the caller's fields:
	// key, name, sequence and two hashes.
	maxBatchBytes  = 1 << 20
	maxRecordBytes = 64 << 10
	recordOverhead = 256
	// maxConflicts bounds how often a batch is re-chained after other
	// replicas moved the head first.
	maxConflicts = 100
)

// Log attribute keys.
const (
	keyErr      = "err"
	keyRecords  = "records"
	keySequence = "sequence"
)

func recordKey(seq uint64) string { return fmt.Sprintf("%s%020d", recordsPrefix, seq) }

// Log appends records to the chain in etcd and lists them.
type Log struct {
	cfg    Config
	client *clientv3.Client
	log    *slog.Logger
	now    func() time.Time
	// timeout bounds every etcd call: etcdTimeout, shorter in tests.
	timeout time.Duration

	wake chan struct{} // 1-buffered: something is pending

	mu      sync.Mutex
	pending []*pending
	running bool
	closed  bool

	// head is the newest record as the committer last saw it; nil when
	// unknown (after an etcd error). Only the committer touches it.
	head *head
}

// pending is one Append waiting for its batch.
type pending struct {
	rec   *pb.AuditRecord // the caller's fields, copied; the committer's once taken
	size  int
	state atomic.Int32 // waiting, taken or abandoned
	done  chan error   // 1-buffered
}

// The states of a pending record. Whoever moves it out of waiting decides
// its fate: the committer (taken: it will be written) or its caller giving
// up (abandoned: it never will be).
const (
	waiting int32 = iota
	taken
	abandoned
)

// head is the newest record and the revision of the head key, which the
// next transaction requires unchanged.
type head struct {
	seq  uint64
	hash []byte
	rev  int64 // ModRevision; 0: no head key, the log is empty
}

func (h *head) cmp() clientv3.Cmp {
	if h.rev == 0 {
		return clientv3.Compare(clientv3.CreateRevision(headKey), "=", 0)
	}
	return clientv3.Compare(clientv3.ModRevision(headKey), "=", h.rev)
}

func parseHead(resp *clientv3.GetResponse) (*head, error) {
	if len(resp.Kvs) == 0 {
		return &head{hash: chain.ZeroHash}, nil
	}
	var r pb.AuditRecord
	if err := proto.Unmarshal(resp.Kvs[0].Value, &r); err != nil || r.GetSequence() == 0 || len(r.GetHash()) != 32 {
		return nil, fmt.Errorf("audit: head %s is malformed (%v)", headKey, err)
	}
	return &head{seq: r.Sequence, hash: r.Hash, rev: resp.Kvs[0].ModRevision}, nil
}

// New returns a log over an etcd client. It starts nothing: Run commits.
func New(cfg Config, client *clientv3.Client, log *slog.Logger, now func() time.Time) (*Log, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if client == nil {
		return nil, errors.New("audit: no etcd client")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if now == nil {
		now = time.Now
	}
	return &Log{cfg: cfg, client: client, log: log, now: now, timeout: etcdTimeout, wake: make(chan struct{}, 1)}, nil
}

// Run reads the head, then commits appended records until ctx ends. Then it
// refuses new appends (ErrClosed), commits those already pending within
// 5 seconds, and returns. Run is the committer: it starts no goroutine.
// Run may be called once.
func (l *Log) Run(ctx context.Context) error {
	l.mu.Lock()
	again := l.running || l.closed
	l.running = true
	l.mu.Unlock()
	if again {
		return errors.New("audit: Run called twice")
	}
	// Commits outlive ctx: a batch cut off half way would fail callers
	// whose records the shutdown below would have committed anyway.
	bg := context.WithoutCancel(ctx)
	if err := l.loadHead(bg); err != nil {
		l.close()
		for batch := l.take(l.cfg.MaxBatch); len(batch) > 0; batch = l.take(l.cfg.MaxBatch) {
			for _, p := range batch {
				p.done <- ErrClosed
			}
		}
		return err
	}
	l.log.Info("audit log ready", keySequence, l.head.seq)
	for {
		select {
		case <-ctx.Done():
			l.close()
			final, cancel := context.WithTimeout(bg, l.timeout)
			defer cancel()
			var errs []error
			for batch := l.take(l.cfg.MaxBatch); len(batch) > 0; batch = l.take(l.cfg.MaxBatch) {
				errs = append(errs, l.commit(final, batch))
			}
			return errors.Join(errs...)
		case <-l.wake:
		}
		if l.cfg.FlushInterval > 0 {
			select {
			case <-time.After(l.cfg.FlushInterval):
			case <-ctx.Done():
			}
		}
		// Between batches, ctx ending hands what is left to the final commit.
		for ctx.Err() == nil {
			batch := l.take(l.cfg.MaxBatch)
			if len(batch) == 0 {
				break
			}
			l.commit(bg, batch)
		}
	}
}

// Append adds r to the log and returns once it is in etcd. It fills r's
// sequence, name, prev_hash and hash, and its time from now() when unset.
// Many callers may append at once: their records share transactions.
//
// If ctx ends before the committer takes the record, Append returns ctx's
// error and the record is not in the log; if it ends while the record is
// being committed, the error says the record may be in the log. After Run
// has returned, Append returns ErrClosed. Before Run starts, it waits.
func (l *Log) Append(ctx context.Context, r *pb.AuditRecord) error {
	if r == nil {
		return errors.New("audit: nil record")
	}
	if t := r.GetTime(); t == nil || (t.Seconds == 0 && t.Nanos == 0) || t.AsTime().IsZero() {
		r.Time = timestamppb.New(l.now())
	}
	if !chain.InRange(r.Time) {
		return fmt.Errorf("audit: time %v is outside 1677-2262 or malformed", r.Time)
	}
	// A copy, so that a caller who gives up may reuse r while the committer
	// still writes it.
	rec := &pb.AuditRecord{
		Time:      &timestamppb.Timestamp{Seconds: r.Time.Seconds, Nanos: r.Time.Nanos},
		Actor:     r.Actor,
		Role:      r.Role,
		Action:    r.Action,
		Target:    r.Target,
		Source:    r.Source,
		RequestId: r.RequestId,
		Outcome:   r.Outcome,
		Detail:    r.Detail,
	}
	// proto.Marshal refuses invalid UTF-8, which would fail the whole batch.
	for _, s := range []string{rec.Actor, rec.Role, rec.Action, rec.Target, rec.Source, rec.RequestId, rec.Outcome, rec.Detail} {
		if !utf8.ValidString(s) {
			return fmt.Errorf("audit: record has invalid UTF-8 in %q", s)
		}
	}
	p := &pending{rec: rec, size: proto.Size(rec) + recordOverhead, done: make(chan error, 1)}
	if p.size > maxRecordBytes {
		return fmt.Errorf("%w: %d bytes, more than %d", ErrTooLarge, p.size, maxRecordBytes)
	}

	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	l.pending = append(l.pending, p)
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}

	var err error
	select {
	case err = <-p.done:
	case <-ctx.Done():
		if p.state.CompareAndSwap(waiting, abandoned) {
			return ctx.Err()
		}
		select {
		case err = <-p.done:
		default:
			return fmt.Errorf("audit: %w while the record was being committed; it may be in the log", ctx.Err())
		}
	}
	if err != nil {
		return err
	}
	r.Sequence, r.Name, r.PrevHash, r.Hash = rec.Sequence, rec.Name, rec.PrevHash, rec.Hash
	return nil
}

func (l *Log) close() {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
}

// take removes up to n pending records, and at most maxBatchBytes of them
// (but at least one), from the front of the queue, skipping those whose
// callers gave up.
func (l *Log) take(n int) []*pending {
	l.mu.Lock()
	defer l.mu.Unlock()
	var batch []*pending
	size, i := 0, 0
	for ; i < len(l.pending) && len(batch) < n; i++ {
		p := l.pending[i]
		if len(batch) > 0 && size+p.size > maxBatchBytes {
			break
		}
		if p.state.CompareAndSwap(waiting, taken) {
			batch = append(batch, p)
			size += p.size
		}
	}
	left := copy(l.pending, l.pending[i:])
	clear(l.pending[left:])
	l.pending = l.pending[:left]
	return batch
}

// commit writes a batch and answers each of its callers.
func (l *Log) commit(ctx context.Context, batch []*pending) error {
	recs := make([]*pb.AuditRecord, len(batch))
	for i, p := range batch {
		recs[i] = p.rec
	}
	err := l.write(ctx, recs)
	if err != nil {
		l.log.Warn("audit records not written", keyRecords, len(recs), keyErr, err)
	}
	for _, p := range batch {
		p.done <- err
	}
	return err
}

func (l *Log) loadHead(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	resp, err := l.client.Get(ctx, headKey)
	if err != nil {
		return fmt.Errorf("audit: read head: %w", err)
	}
	h, err := parseHead(resp)
	if err != nil {
		return err
	}
	l.head = h
	return nil
}

// write chains recs from the head and writes them and the new head in one
// transaction, re-chaining on the head another replica moved meanwhile.
// The transaction also requires the first new key to be absent, so that a
// lost or stale head can never make it overwrite a record.
func (l *Log) write(ctx context.Context, recs []*pb.AuditRecord) error {
	for range maxConflicts {
		if l.head == nil {
			if err := l.loadHead(ctx); err != nil {
				return err
			}
		}
		ops, err := chainBatch(l.head, recs)
		if err != nil {
			return err
		}
		first, last := recs[0], recs[len(recs)-1]
		tctx, cancel := context.WithTimeout(ctx, l.timeout)
		resp, err := l.client.Txn(tctx).
			If(l.head.cmp(), clientv3.Compare(clientv3.CreateRevision(recordKey(first.Sequence)), "=", 0)).
			Then(ops...).
			Else(clientv3.OpGet(headKey)).
			Commit()
		cancel()
		if err != nil {
			l.head = nil
			if l.landed(ctx, last) {
				return nil
			}
			return fmt.Errorf("audit: append %d records: %w", len(recs), err)
		}
		if resp.Succeeded {
			l.head = &head{seq: last.Sequence, hash: last.Hash, rev: resp.Header.Revision}
			return nil
		}
		h, err := parseHead((*clientv3.GetResponse)(resp.Responses[0].GetResponseRange()))
		if err != nil {
			l.head = nil
			return err
		}
		if h.rev == l.head.rev {
			err := fmt.Errorf("audit: record %d exists but the head says the log ends at %d: the head was changed outside Medfleet and the log needs repair", first.Sequence, h.seq)
			l.log.Error("audit log refuses to append", keyErr, err)
			return err
		}
		l.head = h
	}
	return fmt.Errorf("audit: append %d records: lost %d transactions in a row to other replicas", len(recs), maxConflicts)
}

// chain numbers and links recs after h and returns the puts that store them
// and the new head.
func chainBatch(h *head, recs []*pb.AuditRecord) ([]clientv3.Op, error) {
	ops := make([]clientv3.Op, 0, len(recs)+1)
	seq, prev := h.seq, h.hash
	for _, r := range recs {
		seq++
		r.Sequence, r.Name, r.PrevHash = seq, chain.Name(seq), prev
		r.Hash = chain.Hash(r)
		b, err := proto.Marshal(r)
		if err != nil {
			return nil, fmt.Errorf("audit: encode record: %w", err)
		}
		ops = append(ops, clientv3.OpPut(recordKey(seq), string(b)))
		prev = r.Hash
	}
	b, err := proto.Marshal(&pb.AuditRecord{Sequence: seq, Hash: prev})
	if err != nil {
		return nil, fmt.Errorf("audit: encode head: %w", err)
	}
	return append(ops, clientv3.OpPut(headKey, string(b))), nil
}

// landed settles a transaction that failed with an error, which leaves its
// outcome unknown (a timeout may still have committed it): the batch is in
// the log if its last record is, since it was written atomically.
func (l *Log) landed(ctx context.Context, last *pb.AuditRecord) bool {
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	resp, err := l.client.Get(ctx, recordKey(last.Sequence))
	if err != nil || len(resp.Kvs) == 0 {
		return false
	}
	var got pb.AuditRecord
	return proto.Unmarshal(resp.Kvs[0].Value, &got) == nil && bytes.Equal(got.GetHash(), last.GetHash())
}
