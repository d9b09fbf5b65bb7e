package audit

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/medfleet/medfleet/audit/chain"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// chainOf builds a valid chain of n records in memory, as Append would.
func chainOf(n int) []*pb.AuditRecord {
	recs := make([]*pb.AuditRecord, n)
	base := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	for i := range recs {
		recs[i] = &pb.AuditRecord{
			Time:    timestamppb.New(base.Add(time.Duration(i) * time.Second)),
			Actor:   fmt.Sprintf("users/u%d", i%3),
			Role:    "admin",
			Action:  "/medfleet.v1.DeviceService/UpdateDevice",
			Target:  fmt.Sprintf("devices/pump-%d", i),
			Outcome: "OK",
		}
	}
	if _, err := chainBatch(&head{hash: chain.ZeroHash}, recs); err != nil {
		panic(err)
	}
	return recs
}

// rehash makes r consistent with its contents again, as a forger would.
func rehash(r *pb.AuditRecord) { r.Hash = chain.Hash(r) }

func TestVerifier(t *testing.T) {
	tests := []struct {
		name    string
		tamper  func(recs []*pb.AuditRecord) []*pb.AuditRecord
		headSeq uint64 // 0: the last record's
		want    *chain.BrokenError
	}{
		{name: "intact", tamper: func(r []*pb.AuditRecord) []*pb.AuditRecord { return r }},
		{
			name:   "field changed",
			tamper: func(r []*pb.AuditRecord) []*pb.AuditRecord { r[3].Actor = "users/mallory"; return r },
			want:   &chain.BrokenError{Sequence: 4, Reason: "hash does not match its contents"},
		},
		{
			name: "field changed and hash recomputed",
			tamper: func(r []*pb.AuditRecord) []*pb.AuditRecord {
				r[3].Actor = "users/mallory"
				rehash(r[3])
				return r
			},
			want: &chain.BrokenError{Sequence: 5, Reason: "prev_hash does not match the hash of record 4 (one of them was changed, or records were removed)"},
		},
		{
			name: "newest record changed and hash recomputed",
			tamper: func(r []*pb.AuditRecord) []*pb.AuditRecord {
				r[9].Outcome = "OK"
				r[9].Detail = "nothing to see"
				rehash(r[9])
				return r
			},
			want: &chain.BrokenError{Sequence: 10, Reason: "hash differs from the head's (the newest record was changed)"},
		},
		{
			name:   "record removed",
			tamper: func(r []*pb.AuditRecord) []*pb.AuditRecord { return slices.Delete(r, 4, 5) },
			want:   &chain.BrokenError{Sequence: 5, Reason: "missing (the next record is 6)"},
		},
		{
			name: "record removed and the rest renumbered",
			tamper: func(r []*pb.AuditRecord) []*pb.AuditRecord {
				r = slices.Delete(r, 4, 5)
				for i := 4; i < len(r); i++ {
					r[i].Sequence--
					r[i].Name = chain.Name(r[i].Sequence)
					rehash(r[i])
				}
				return r
			},
			headSeq: 10,
			want:    &chain.BrokenError{Sequence: 5, Reason: "prev_hash does not match the hash of record 4 (one of them was changed, or records were removed)"},
		},
		{
			name:   "records swapped",
			tamper: func(r []*pb.AuditRecord) []*pb.AuditRecord { r[2], r[3] = r[3], r[2]; return r },
			want:   &chain.BrokenError{Sequence: 3, Reason: "missing (the next record is 4)"},
		},
		{
			name:   "first record missing",
			tamper: func(r []*pb.AuditRecord) []*pb.AuditRecord { return r[1:] },
			want:   &chain.BrokenError{Sequence: 1, Reason: "missing (the next record is 2)"},
		},
		{
			name:   "first prev_hash not zero",
			tamper: func(r []*pb.AuditRecord) []*pb.AuditRecord { r[0].PrevHash = []byte{1}; rehash(r[0]); return r },
			want:   &chain.BrokenError{Sequence: 1, Reason: "prev_hash is not 32 zero bytes"},
		},
		{
			name:   "name does not match",
			tamper: func(r []*pb.AuditRecord) []*pb.AuditRecord { r[6].Name = chain.Name(8); return r },
			want:   &chain.BrokenError{Sequence: 7, Reason: `name "auditRecords/00000000000000000008" does not match its sequence`},
		},
		{
			name:   "repeated record",
			tamper: func(r []*pb.AuditRecord) []*pb.AuditRecord { return slices.Insert(r, 5, r[4]) },
			want:   &chain.BrokenError{Sequence: 6, Reason: "out of order (a record numbered 5 follows 5)"},
		},
		{
			name:   "time out of range",
			tamper: func(r []*pb.AuditRecord) []*pb.AuditRecord { r[1].Time.Seconds = 1 << 40; rehash(r[1]); return r },
			want:   &chain.BrokenError{Sequence: 2, Reason: "time is outside 1677-2262 or malformed"},
		},
		{
			name:   "cut short",
			tamper: func(r []*pb.AuditRecord) []*pb.AuditRecord { return r[:9] },
			// The head still says 10.
			headSeq: 10,
			want:    &chain.BrokenError{Sequence: 10, Reason: "missing (the chain ends at 9 but the head is 10)"},
		},
		{
			name:    "extended past the head",
			tamper:  func(r []*pb.AuditRecord) []*pb.AuditRecord { return r },
			headSeq: 9,
			want:    &chain.BrokenError{Sequence: 10, Reason: "beyond the head (9): not written by the log"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			intact := chainOf(10)
			headHash := intact[9].Hash
			headSeq := tc.headSeq
			if headSeq == 0 {
				headSeq = 10
			}
			if headSeq == 9 {
				headHash = intact[8].Hash
			}
			v := chain.NewVerifier()
			var err error
			for _, r := range tc.tamper(intact) {
				if err = v.Add(r); err != nil {
					break
				}
			}
			if err == nil {
				err = v.Done(headSeq, headHash)
			}
			if tc.want == nil {
				if err != nil {
					t.Fatalf("verify = %v, want nil", err)
				}
				if v.Count() != 10 {
					t.Errorf("Count() = %d, want 10", v.Count())
				}
				return
			}
			var be *chain.BrokenError
			if !errors.As(err, &be) {
				t.Fatalf("verify = %v, want a *chain.BrokenError", err)
			}
			if diff := cmp.Diff(tc.want, be); diff != "" {
				t.Errorf("verify: BrokenError mismatch (-want +got):\n%s", diff)
			}
			// The first failure sticks.
			if again := v.Done(headSeq, headHash); again != err {
				t.Errorf("Done after a failure = %v, want the first error %v", again, err)
			}
		})
	}
}

func TestVerifierEmptyLog(t *testing.T) {
	if err := chain.NewVerifier().Done(0, nil); err != nil {
		t.Errorf("Done(0, nil) on no records = %v, want nil", err)
	}
	err := chain.NewVerifier().Done(3, []byte("x"))
	var be *chain.BrokenError
	if !errors.As(err, &be) || be.Sequence != 1 {
		t.Errorf("Done(3, ...) on no records = %v, want a BrokenError at 1", err)
	}
}

func TestBrokenErrorMessage(t *testing.T) {
	err := &chain.BrokenError{Sequence: 17, Reason: "hash does not match its contents"}
	if got, want := err.Error(), "audit record 17: hash does not match its contents"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}
