package audit

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/medfleet/medfleet/audit/chain"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/medfleet/medfleet/internal/etcdtest"
	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// listAll pages through List until the token runs out and returns every
// record and the number of pages.
func listAll(t *testing.T, l *Log, filter string, startSeq uint64, pageSize int) ([]*pb.AuditRecord, int) {
	t.Helper()
	var recs []*pb.AuditRecord
	pages := 0
	for token := ""; ; {
		res, err := l.List(context.Background(), filter, startSeq, pageSize, token)
		if err != nil {
			t.Fatalf("List(%q, %d, %d, %q): %v", filter, startSeq, pageSize, token, err)
		}
		pages++
		if pages > 1000 {
			t.Fatal("List keeps returning page tokens")
		}
		size := min(pageSize, maxPageSize)
		if pageSize == 0 {
			size = defaultPageSize
		}
		if len(res.Records) > size {
			t.Fatalf("List returned %d records with page size %d", len(res.Records), pageSize)
		}
		recs = append(recs, res.Records...)
		if res.NextPageToken == "" {
			return recs, pages
		}
		token = res.NextPageToken
	}
}

func TestList(t *testing.T) {
	e := etcdtest.Start(t, "")
	l := start(t, e.Client)
	// Appended one at a time, so that record i has time base+(i-1)s.
	const n = 300
	var all []*pb.AuditRecord
	for i := range n {
		r := &pb.AuditRecord{
			Actor:   []string{"users/alice", "users/bob", "devices/pump-1"}[i%3],
			Role:    []string{"admin", "biomed", "device"}[i%3],
			Action:  []string{"/medfleet.v1.DeviceService/UpdateDevice", "device.register"}[i%2],
			Target:  fmt.Sprintf("devices/pump-%d", i%10),
			Outcome: "OK",
		}
		if i%7 == 0 {
			r.Outcome = "PermissionDenied"
		}
		if err := l.Append(context.Background(), r); err != nil {
			t.Fatal(err)
		}
		all = append(all, r)
	}
	base := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	at := func(i int) time.Time { return base.Add(time.Duration(i-1) * time.Second) } // record i's time

	tests := []struct {
		name      string
		filter    string
		startSeq  uint64
		pageSize  int
		match     func(r *pb.AuditRecord) bool
		wantPages int // 0: do not check
	}{
		{name: "all, default page size", wantPages: 3},
		{name: "all, pages of 7", pageSize: 7, wantPages: 43},
		{name: "all, one exact page", pageSize: 300, wantPages: 1},
		{name: "all, page size above the limit", pageSize: 5000, wantPages: 1},
		{name: "start sequence", startSeq: 250, pageSize: 20, match: func(r *pb.AuditRecord) bool { return r.Sequence > 250 }, wantPages: 3},
		{
			name:     "actor",
			filter:   `actor = "users/alice"`,
			pageSize: 10,
			match:    func(r *pb.AuditRecord) bool { return r.Actor == "users/alice" },
		},
		{
			name:     "not actor and outcome",
			filter:   `actor != "users/alice" AND outcome = "OK"`,
			pageSize: 9,
			match:    func(r *pb.AuditRecord) bool { return r.Actor != "users/alice" && r.Outcome == "OK" },
		},
		{
			name:     "role, action and target",
			filter:   `role="device" AND action = "device.register" AND target = "devices/pump-5"`,
			pageSize: 2,
			match: func(r *pb.AuditRecord) bool {
				return r.Role == "device" && r.Action == "device.register" && r.Target == "devices/pump-5"
			},
		},
		{
			name:     "time window",
			filter:   fmt.Sprintf("time >= %q AND time < %q", at(100).Format(time.RFC3339), at(200).Format(time.RFC3339)),
			pageSize: 30,
			match:    func(r *pb.AuditRecord) bool { return r.Sequence >= 100 && r.Sequence < 200 },
		},
		{
			name:     "time exclusive and inclusive bounds, other zone",
			filter:   fmt.Sprintf("time > %q AND time <= %q", at(10).In(time.FixedZone("EST", -5*3600)).Format(time.RFC3339), at(20).Format(time.RFC3339)),
			match:    func(r *pb.AuditRecord) bool { return r.Sequence > 10 && r.Sequence <= 20 },
			pageSize: 4,
		},
		{
			name:     "filter after a start sequence",
			filter:   `outcome = "PermissionDenied"`,
			startSeq: 250,
			pageSize: 3,
			match:    func(r *pb.AuditRecord) bool { return r.Sequence > 250 && r.Outcome == "PermissionDenied" },
		},
		{name: "no match", filter: `actor = "users/nobody"`, match: func(*pb.AuditRecord) bool { return false }, wantPages: 1},
		{name: "start past the end", startSeq: 1 << 63, match: func(*pb.AuditRecord) bool { return false }, wantPages: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want := all
			if tc.match != nil {
				want = slices.DeleteFunc(slices.Clone(all), func(r *pb.AuditRecord) bool { return !tc.match(r) })
			}
			if len(want) == 0 && tc.wantPages == 0 {
				t.Fatal("test case matches nothing")
			}
			got, pages := listAll(t, l, tc.filter, tc.startSeq, tc.pageSize)
			if diff := cmp.Diff(want, got, protocmp.Transform(), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("List(%q) pages (-want +got):\n%s", tc.filter, diff)
			}
			if tc.wantPages != 0 && pages != tc.wantPages {
				t.Errorf("List(%q) took %d pages, want %d", tc.filter, pages, tc.wantPages)
			}
		})
	}

	res, err := l.List(context.Background(), "", 0, 1, "")
	if err != nil {
		t.Fatal(err)
	}
	if res.HeadSequence != n || string(res.HeadHash) != string(all[n-1].Hash) {
		t.Errorf("List head = %d %x, want %d %x", res.HeadSequence, res.HeadHash, n, all[n-1].Hash)
	}
}

func TestListEmpty(t *testing.T) {
	e := etcdtest.Start(t, "")
	l := start(t, e.Client)
	res, err := l.List(context.Background(), "", 0, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(ListResult{}, res); diff != "" {
		t.Errorf("List of an empty log (-want +got):\n%s", diff)
	}
	if err := verify(t, l); err != nil {
		t.Errorf("verify of an empty log = %v, want nil", err)
	}
}

func TestListErrors(t *testing.T) {
	e := etcdtest.Start(t, "")
	l := start(t, e.Client)
	for i := range 3 {
		if err := l.Append(context.Background(), record("users/alice", i)); err != nil {
			t.Fatal(err)
		}
	}
	first, err := l.List(context.Background(), `actor = "users/alice"`, 0, 1, "")
	if err != nil || first.NextPageToken == "" {
		t.Fatalf("List = %v, %v; want a page token", first, err)
	}
	tests := []struct {
		name       string
		filter     string
		pageSize   int
		token      string
		wantField  string
		wantReason string // "": any
	}{
		{name: "unknown field", filter: `who = "x"`, wantField: "filter", wantReason: `unknown field "who"; use actor, role, action, target, outcome or time`},
		{name: "OR", filter: `actor = "a" OR actor = "b"`, wantField: "filter", wantReason: `expected AND at offset 12, got "OR"`},
		{name: "bad time", filter: `time >= "yesterday"`, wantField: "filter"},
		{name: "garbage token", token: "garbage", wantField: "page_token", wantReason: "not a token from a previous ListAuditRecords response"},
		{name: "token for another filter", filter: `actor = "users/bob"`, token: first.NextPageToken, wantField: "page_token", wantReason: "issued for a different filter; start again without it"},
		{name: "token without its filter", token: first.NextPageToken, wantField: "page_token"},
		{name: "negative page size", pageSize: -1, wantField: "page_size", wantReason: "-1 is negative"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := l.List(context.Background(), tc.filter, 0, tc.pageSize, tc.token)
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tc.wantField || (tc.wantReason != "" && fe.Reason != tc.wantReason) {
				t.Errorf("List(%q, page size %d, token %q) = %v, want a FieldError on %s: %s", tc.filter, tc.pageSize, tc.token, err, tc.wantField, tc.wantReason)
			}
		})
	}
	// The same token with its own filter, written differently, is fine.
	res, err := l.List(context.Background(), `actor="users/alice"`, 0, 1, first.NextPageToken)
	if err != nil || len(res.Records) != 1 || res.Records[0].Sequence != 2 {
		t.Errorf("List with the token = %v, %v; want record 2", res, err)
	}
}

// writeChain writes n valid records and their head straight to etcd, in
// transactions of 128 keys: a long log without appending one by one.
// actor(i) names record i's actor.
func writeChain(t *testing.T, kv clientv3.KV, n int, actor func(seq int) string) {
	t.Helper()
	h := &head{hash: chain.ZeroHash}
	for first := 1; first <= n; first += 127 {
		var recs []*pb.AuditRecord
		for seq := first; seq < first+127 && seq <= n; seq++ {
			recs = append(recs, &pb.AuditRecord{Actor: actor(seq), Outcome: "OK"})
		}
		ops, err := chainBatch(h, recs)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kv.Txn(context.Background()).Then(ops...).Commit(); err != nil {
			t.Fatal(err)
		}
		last := recs[len(recs)-1]
		h = &head{seq: last.Sequence, hash: last.Hash}
	}
}

// TestListScanLimit: a filter that matches little stops after 10,000
// records examined, with a token past them, so that every call makes
// progress in bounded time.
func TestListScanLimit(t *testing.T) {
	e := etcdtest.Start(t, "")
	const n, needle = 12000, 11500
	writeChain(t, e.Client, n, func(seq int) string {
		if seq == needle {
			return "users/needle"
		}
		return "users/hay"
	})
	l := start(t, e.Client)
	if err := verify(t, l); err != nil {
		t.Fatalf("verify: %v", err)
	}

	filter := `actor = "users/needle"`
	res, err := l.List(context.Background(), filter, 0, 10, "")
	if err != nil {
		t.Fatal(err)
	}
	f, _ := parseFilter(filter)
	after, err := decodePageToken(res.NextPageToken, filterDigest(f))
	if len(res.Records) != 0 || err != nil || after != maxExamined {
		t.Fatalf("first List = %d records, token after %d (%v); want none, and a token after %d", len(res.Records), after, err, maxExamined)
	}
	res, err = l.List(context.Background(), filter, 0, 10, res.NextPageToken)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Records) != 1 || res.Records[0].Sequence != needle || res.NextPageToken != "" {
		t.Errorf("second List = %d records, token %q; want record %d and no token", len(res.Records), res.NextPageToken, needle)
	}
	if res.HeadSequence != n {
		t.Errorf("HeadSequence = %d, want %d", res.HeadSequence, n)
	}
}

// TestListWhileAppending: a page and the head come from one revision, so a
// last page always ends exactly at the head, however fast records arrive.
func TestListWhileAppending(t *testing.T) {
	e := etcdtest.Start(t, "")
	l := start(t, e.Client)
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				if err := l.Append(context.Background(), record(fmt.Sprintf("users/w%d", w), i)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	// Each listing starts a little before the last head seen, so that it is
	// usually a last page.
	var from uint64
	lastPages := 0
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); {
		res, err := l.List(context.Background(), "", from, 1000, "")
		if err != nil {
			t.Fatal(err)
		}
		if res.NextPageToken == "" && len(res.Records) > 0 {
			lastPages++
			last := res.Records[len(res.Records)-1]
			if last.Sequence != res.HeadSequence || string(last.Hash) != string(res.HeadHash) {
				t.Fatalf("last page ends at %d, but the head is %d", last.Sequence, res.HeadSequence)
			}
		}
		from = max(res.HeadSequence, 10) - 10
	}
	stop()
	wg.Wait()
	if lastPages < 10 {
		t.Fatalf("%d last pages listed while appending, want at least 10", lastPages)
	}
	if err := verify(t, l); err != nil {
		t.Fatal(err)
	}
}

func TestDecodeRecord(t *testing.T) {
	good, _ := proto.Marshal(&pb.AuditRecord{Sequence: 7, Actor: "users/alice"})
	tests := []struct {
		name    string
		key     string
		value   string
		want    *pb.AuditRecord
		wantErr bool
	}{
		{name: "record", key: recordKey(7), value: string(good), want: &pb.AuditRecord{Sequence: 7, Actor: "users/alice"}},
		{name: "undecodable value", key: recordKey(7), value: "\xff\xff", want: &pb.AuditRecord{Name: chain.Name(7), Sequence: 7}},
		{name: "foreign key", key: recordsPrefix + "x", wantErr: true},
		{name: "short key", key: recordsPrefix + "7", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, _, err := decodeRecord([]byte(tc.key), []byte(tc.value))
			if (err != nil) != tc.wantErr {
				t.Fatalf("decodeRecord(%q) error = %v, want error %v", tc.key, err, tc.wantErr)
			}
			if diff := cmp.Diff(tc.want, got, protocmp.Transform()); diff != "" {
				t.Errorf("decodeRecord(%q) (-want +got):\n%s", tc.key, diff)
			}
		})
	}
}
