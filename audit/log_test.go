package audit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/medfleet/medfleet/audit/chain"

	"github.com/google/go-cmp/cmp"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/medfleet/medfleet/internal/etcdtest"
	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// clock returns a now func that starts at 2026-11-01T00:00:00Z and moves one
// second per call.
func clock() func() time.Time {
	var n atomic.Int64
	base := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	return func() time.Time { return base.Add(time.Duration(n.Add(1)-1) * time.Second) }
}

// start runs a log on client until the test ends, and fails the test if Run
// does not return cleanly.
func start(t testing.TB, client *clientv3.Client) *Log {
	t.Helper()
	l, stop := startStop(t, client, DefaultConfig())
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return l
}

// startStop runs a log on client; stop ends Run and returns its error.
func startStop(t testing.TB, client *clientv3.Client, cfg Config) (*Log, func() error) {
	t.Helper()
	l, err := New(cfg, client, discard(), clock())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	var once sync.Once
	var runErr error
	return l, func() error {
		once.Do(func() { cancel(); runErr = <-done })
		return runErr
	}
}

// secondClient connects another client to e, as another medfleetd replica
// (or a client that can be broken without breaking the test's) would.
func secondClient(t testing.TB, e *etcdtest.Etcd) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{e.Endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// readAll lists the whole log, 100 records a page, and returns the records
// and the head of the last page.
func readAll(t testing.TB, l *Log) ([]*pb.AuditRecord, ListResult) {
	t.Helper()
	var recs []*pb.AuditRecord
	var res ListResult
	for token := ""; ; token = res.NextPageToken {
		var err error
		res, err = l.List(context.Background(), "", 0, 100, token)
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		recs = append(recs, res.Records...)
		if res.NextPageToken == "" {
			return recs, res
		}
	}
}

// verify runs the verifier over the whole log, as medfleetctl audit verify
// does.
func verify(t testing.TB, l *Log) error {
	t.Helper()
	recs, last := readAll(t, l)
	v := chain.NewVerifier()
	for _, r := range recs {
		if err := v.Add(r); err != nil {
			return err
		}
	}
	return v.Done(last.HeadSequence, last.HeadHash)
}

func record(actor string, i int) *pb.AuditRecord {
	return &pb.AuditRecord{
		Actor:     actor,
		Role:      "biomed",
		Action:    "/medfleet.v1.DeviceService/UpdateDevice",
		Target:    fmt.Sprintf("devices/pump-%d", i),
		Source:    "127.0.0.1:40000",
		RequestId: fmt.Sprintf("req-%d", i),
		Outcome:   "OK",
	}
}

// appendMany appends perWorker records from each of workers goroutines and
// returns them as Append filled them.
func appendMany(t testing.TB, l *Log, prefix string, workers, perWorker int) []*pb.AuditRecord {
	t.Helper()
	out := make([]*pb.AuditRecord, workers*perWorker)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				r := record(fmt.Sprintf("%s/w%d", prefix, w), i)
				if err := l.Append(context.Background(), r); err != nil {
					t.Errorf("Append: %v", err)
					return
				}
				out[w*perWorker+i] = r
			}
		})
	}
	wg.Wait()
	return out
}

// checkLog verifies the log and checks it holds exactly the appended
// records, numbered 1..N, each as its Append reported it.
func checkLog(t *testing.T, l *Log, appended []*pb.AuditRecord) {
	t.Helper()
	if err := verify(t, l); err != nil {
		t.Fatalf("verify: %v", err)
	}
	stored, _ := readAll(t, l)
	if len(stored) != len(appended) {
		t.Fatalf("log holds %d records, want %d", len(stored), len(appended))
	}
	for i, r := range stored {
		if r.GetSequence() != uint64(i+1) {
			t.Fatalf("record %d has sequence %d", i+1, r.GetSequence())
		}
	}
	for _, r := range appended {
		if r == nil {
			t.Fatal("an Append failed")
		}
		if diff := cmp.Diff(stored[r.GetSequence()-1], r, protocmp.Transform()); diff != "" {
			t.Fatalf("record %d differs from what Append returned (-stored +appended):\n%s", r.GetSequence(), diff)
		}
	}
}

func TestAppendConcurrent(t *testing.T) {
	e := etcdtest.Start(t, "")
	l := start(t, e.Client)
	before, err := e.Client.Get(context.Background(), "x")
	if err != nil {
		t.Fatal(err)
	}
	appended := appendMany(t, l, "users/u", 50, 20)
	checkLog(t, l, appended)

	// Each transaction adds one etcd revision: fewer revisions than
	// records means the appends were group-committed.
	after, err := e.Client.Get(context.Background(), "x")
	if err != nil {
		t.Fatal(err)
	}
	if txns := after.Header.Revision - before.Header.Revision; txns >= int64(len(appended)) {
		t.Errorf("%d records took %d transactions, want fewer: no group commit", len(appended), txns)
	}
}

// TestTwoReplicas runs two logs on one etcd, as two medfleetd replicas: they
// race for the head and must still build one chain.
func TestTwoReplicas(t *testing.T) {
	e := etcdtest.Start(t, "")
	a := start(t, e.Client)
	b := start(t, secondClient(t, e))
	var fromA, fromB []*pb.AuditRecord
	var wg sync.WaitGroup
	wg.Go(func() { fromA = appendMany(t, a, "replica-a", 25, 20) })
	wg.Go(func() { fromB = appendMany(t, b, "replica-b", 25, 20) })
	wg.Wait()
	checkLog(t, a, append(fromA, fromB...))
}

func TestAppendFillsRecord(t *testing.T) {
	e := etcdtest.Start(t, "")
	l := start(t, e.Client)
	given := time.Date(2026, 10, 31, 23, 0, 0, 5, time.UTC)
	tests := []struct {
		name     string
		time     *timestamppb.Timestamp
		wantSeq  uint64
		wantTime time.Time
	}{
		{name: "time from now", wantSeq: 1, wantTime: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)},
		{name: "time kept", time: timestamppb.New(given), wantSeq: 2, wantTime: given},
		{name: "zero time from now", time: &timestamppb.Timestamp{}, wantSeq: 3, wantTime: time.Date(2026, 11, 1, 0, 0, 1, 0, time.UTC)},
		{name: "Go's zero time from now", time: timestamppb.New(time.Time{}), wantSeq: 4, wantTime: time.Date(2026, 11, 1, 0, 0, 2, 0, time.UTC)},
	}
	prev := chain.ZeroHash
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := record("users/alice", 1)
			r.Time = tc.time
			r.Name, r.Sequence, r.Hash = "auditRecords/bogus", 99, []byte("bogus") // overwritten
			if err := l.Append(context.Background(), r); err != nil {
				t.Fatalf("Append: %v", err)
			}
			want := record("users/alice", 1)
			want.Time = timestamppb.New(tc.wantTime)
			want.Sequence = tc.wantSeq
			want.Name = fmt.Sprintf("auditRecords/%020d", tc.wantSeq)
			want.PrevHash = prev
			want.Hash = chain.Hash(want)
			if diff := cmp.Diff(want, r, protocmp.Transform()); diff != "" {
				t.Errorf("Append filled (-want +got):\n%s", diff)
			}
			prev = r.Hash
		})
	}
}

func TestAppendRefuses(t *testing.T) {
	e := etcdtest.Start(t, "")
	l := start(t, e.Client)
	tests := []struct {
		name    string
		rec     *pb.AuditRecord
		wantErr string
		is      error
	}{
		{name: "nil", rec: nil, wantErr: "nil record"},
		{name: "invalid UTF-8", rec: &pb.AuditRecord{Target: "devices/\xff"}, wantErr: "invalid UTF-8"},
		{name: "too large", rec: &pb.AuditRecord{Detail: strings.Repeat("x", 70000)}, is: ErrTooLarge},
		{name: "time out of range", rec: &pb.AuditRecord{Time: &timestamppb.Timestamp{Seconds: 1 << 40}}, wantErr: "outside 1677-2262"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := l.Append(context.Background(), tc.rec)
			if err == nil || (tc.is != nil && !errors.Is(err, tc.is)) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Append(%v) = %v, want an error containing %q (is %v)", tc.rec, err, tc.wantErr, tc.is)
			}
		})
	}
	// None of them reached the log, and the log still takes records.
	if err := l.Append(context.Background(), record("users/alice", 1)); err != nil {
		t.Fatal(err)
	}
	recs, _ := readAll(t, l)
	if len(recs) != 1 {
		t.Errorf("log holds %d records, want 1", len(recs))
	}
}

func TestAppendAfterRunReturned(t *testing.T) {
	e := etcdtest.Start(t, "")
	l, stop := startStop(t, e.Client, DefaultConfig())
	if err := l.Append(context.Background(), record("users/alice", 1)); err != nil {
		t.Fatal(err)
	}
	if err := stop(); err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
	if err := l.Append(context.Background(), record("users/alice", 2)); !errors.Is(err, ErrClosed) {
		t.Errorf("Append after Run returned = %v, want ErrClosed", err)
	}
	if err := l.Run(context.Background()); err == nil {
		t.Error("second Run = nil, want an error")
	}
}

// TestRunCommitsPending: records appended before shutdown are committed by
// it, even when ctx has already ended.
func TestRunCommitsPending(t *testing.T) {
	e := etcdtest.Start(t, "")
	l, err := New(DefaultConfig(), e.Client, discard(), clock())
	if err != nil {
		t.Fatal(err)
	}
	const n = 300 // more than one batch
	errs := make(chan error, n)
	for i := range n {
		go func() { errs <- l.Append(context.Background(), record("users/alice", i)) }()
	}
	waitPending(t, l, n)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.Run(ctx); err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("Append = %v, want nil", err)
		}
	}
	recs, _ := readAll(t, l)
	if len(recs) != n {
		t.Errorf("log holds %d records, want %d", len(recs), n)
	}
}

func waitPending(t *testing.T, l *Log, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		l.mu.Lock()
		got := len(l.pending)
		l.mu.Unlock()
		if got == n {
			return
		}
	}
	t.Fatalf("%d appends never became pending", n)
}

// TestAppendGivesUp: a caller whose ctx ends before its record is taken
// gets ctx's error, and the record never reaches the log.
func TestAppendGivesUp(t *testing.T) {
	e := etcdtest.Start(t, "")
	l, err := New(DefaultConfig(), e.Client, discard(), clock())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	// Run has not started: nothing takes the record.
	if err := l.Append(ctx, record("users/impatient", 1)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Append = %v, want context.DeadlineExceeded", err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(runCtx) }()
	defer func() { stop(); <-done }()
	if err := l.Append(context.Background(), record("users/patient", 1)); err != nil {
		t.Fatal(err)
	}
	recs, _ := readAll(t, l)
	if len(recs) != 1 || recs[0].GetActor() != "users/patient" {
		t.Errorf("log holds %v, want only users/patient's record", recs)
	}
}

// TestRestart: a new log on the same etcd continues the chain.
func TestRestart(t *testing.T) {
	e := etcdtest.Start(t, "")
	first, stop := startStop(t, e.Client, DefaultConfig())
	appended := appendMany(t, first, "users/before", 3, 4)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	second := start(t, e.Client)
	appended = append(appended, appendMany(t, second, "users/after", 3, 4)...)
	checkLog(t, second, appended)
}

// TestTamper changes etcd behind the log's back, as someone with access to
// etcd could, and checks that verification names the record.
func TestTamper(t *testing.T) {
	tests := []struct {
		name   string
		tamper func(t *testing.T, kv clientv3.KV)
		want   uint64 // the sequence the BrokenError names
	}{
		{
			name: "actor changed",
			tamper: func(t *testing.T, kv clientv3.KV) {
				rewrite(t, kv, 4, func(r *pb.AuditRecord) { r.Actor = "users/mallory" })
			},
			want: 4,
		},
		{
			name: "actor changed and rehashed",
			tamper: func(t *testing.T, kv clientv3.KV) {
				rewrite(t, kv, 4, func(r *pb.AuditRecord) { r.Actor = "users/mallory"; r.Hash = chain.Hash(r) })
			},
			want: 5,
		},
		{
			name: "last record changed and rehashed",
			tamper: func(t *testing.T, kv clientv3.KV) {
				rewrite(t, kv, 10, func(r *pb.AuditRecord) { r.Outcome = "OK"; r.Detail = "benign"; r.Hash = chain.Hash(r) })
			},
			want: 10,
		},
		{
			name:   "middle record deleted",
			tamper: func(t *testing.T, kv clientv3.KV) { del(t, kv, recordKey(6)) },
			want:   6,
		},
		{
			name:   "last record deleted",
			tamper: func(t *testing.T, kv clientv3.KV) { del(t, kv, recordKey(10)) },
			want:   10,
		},
		{
			name: "value unreadable",
			tamper: func(t *testing.T, kv clientv3.KV) {
				if _, err := kv.Put(context.Background(), recordKey(3), "\xff\xff not a record"); err != nil {
					t.Fatal(err)
				}
			},
			want: 3,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := etcdtest.Start(t, "")
			l := start(t, e.Client)
			for i := range 10 {
				if err := l.Append(context.Background(), record("users/alice", i)); err != nil {
					t.Fatal(err)
				}
			}
			if err := verify(t, l); err != nil {
				t.Fatalf("verify before tampering: %v", err)
			}
			tc.tamper(t, e.Client)
			err := verify(t, l)
			var be *chain.BrokenError
			if !errors.As(err, &be) || be.Sequence != tc.want {
				t.Errorf("verify after tampering = %v, want a BrokenError at %d", err, tc.want)
			}
		})
	}
}

func rewrite(t *testing.T, kv clientv3.KV, seq uint64, change func(*pb.AuditRecord)) {
	t.Helper()
	resp, err := kv.Get(context.Background(), recordKey(seq))
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("get record %d: %v", seq, err)
	}
	var r pb.AuditRecord
	if err := proto.Unmarshal(resp.Kvs[0].Value, &r); err != nil {
		t.Fatal(err)
	}
	change(&r)
	b, _ := proto.Marshal(&r)
	if _, err := kv.Put(context.Background(), recordKey(seq), string(b)); err != nil {
		t.Fatal(err)
	}
}

func del(t *testing.T, kv clientv3.KV, key string) {
	t.Helper()
	if resp, err := kv.Delete(context.Background(), key); err != nil || resp.Deleted != 1 {
		t.Fatalf("delete %s: %v", key, err)
	}
}

// TestHeadLost: with the head key gone, the log must refuse to append
// rather than number records from 1 again over the existing ones.
func TestHeadLost(t *testing.T) {
	e := etcdtest.Start(t, "")
	first, stop := startStop(t, e.Client, DefaultConfig())
	appendMany(t, first, "users/alice", 1, 3)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	before, err := e.Client.Get(context.Background(), recordKey(1))
	if err != nil {
		t.Fatal(err)
	}
	del(t, e.Client, headKey)

	l := start(t, e.Client)
	err = l.Append(context.Background(), record("users/mallory", 1))
	if err == nil || !strings.Contains(err.Error(), "record 1 exists") {
		t.Errorf("Append with the head deleted = %v, want an error saying record 1 exists", err)
	}
	after, err := e.Client.Get(context.Background(), recordKey(1))
	if err != nil {
		t.Fatal(err)
	}
	if string(after.Kvs[0].Value) != string(before.Kvs[0].Value) {
		t.Error("record 1 was overwritten")
	}
}

// TestEtcdFails: when etcd is down, callers get the error and their
// records are not in the log.
func TestEtcdFails(t *testing.T) {
	e := etcdtest.Start(t, "")
	l, err := New(DefaultConfig(), secondClient(t, e), discard(), clock())
	if err != nil {
		t.Fatal(err)
	}
	l.timeout = 300 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	if err := l.Append(context.Background(), record("users/alice", 1)); err != nil {
		t.Fatal(err)
	}

	e.Stop()
	err = l.Append(context.Background(), record("users/alice", 2))
	if err == nil || errors.Is(err, ErrClosed) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Append with etcd down = %v, want etcd's error, wrapped", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v, want nil: nothing was pending", err)
	}

	e = etcdtest.Start(t, e.Dir)
	again, err := New(DefaultConfig(), e.Client, discard(), clock())
	if err != nil {
		t.Fatal(err)
	}
	recs, _ := readAll(t, again)
	if len(recs) != 1 || recs[0].GetRequestId() != "req-1" {
		t.Errorf("log holds %v, want only the record appended before etcd stopped", recs)
	}
}

func TestFlushInterval(t *testing.T) {
	e := etcdtest.Start(t, "")
	cfg := DefaultConfig()
	cfg.FlushInterval = 50 * time.Millisecond
	l, stop := startStop(t, e.Client, cfg)
	defer stop()
	before, err := e.Client.Get(context.Background(), "x")
	if err != nil {
		t.Fatal(err)
	}
	appended := appendMany(t, l, "users/u", 40, 1)
	checkLog(t, l, appended)
	after, err := e.Client.Get(context.Background(), "x")
	if err != nil {
		t.Fatal(err)
	}
	// 40 callers arriving within the interval share one transaction, or a
	// few if the scheduler is slow to start them.
	if txns := after.Header.Revision - before.Header.Revision; txns > 5 {
		t.Errorf("40 records took %d transactions with a 50ms flush interval, want at most 5", txns)
	}
}
