package inventory

import (
	"context"
	"fmt"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"

	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// Key layout; see doc.go.
const (
	keyPrefix     = "/medfleet/v1/"
	devicesPrefix = keyPrefix + "devices/"
	statusPrefix  = keyPrefix + "status/"
	requestPrefix = keyPrefix + "requests/"

	// requestTTL is how long a CreateDevice request_id is remembered.
	requestTTL = 24 * time.Hour
	// loadPage is how many keys one range read fetches at start-up.
	loadPage = 5000
)

func deviceKey(id string) string  { return devicesPrefix + id }
func statusKey(id string) string  { return statusPrefix + id }
func requestKey(id string) string { return requestPrefix + id }

// store is the etcd side of the inventory. Every call takes a deadline from
// its caller's context.
type store struct {
	kv     clientv3.KV
	lease  clientv3.Lease
	maxOps int
	tel    *instruments
}

// loaded is one key read at start-up.
type loaded struct {
	id  string
	rev int64
	msg []byte
}

// revision returns etcd's current revision.
func (s *store) revision(ctx context.Context) (int64, error) {
	resp, err := s.kv.Get(ctx, devicesPrefix, clientv3.WithCountOnly())
	if err != nil {
		return 0, fmt.Errorf("inventory: revision: %w", err)
	}
	return resp.Header.Revision, nil
}

// loadPrefix reads every key under prefix, a page at a time, at revision
// rev (0: the current one), and returns the revision it read at.
func (s *store) loadPrefix(ctx context.Context, prefix string, rev int64, fn func(loaded) error) (int64, error) {
	end := clientv3.GetPrefixRangeEnd(prefix)
	key := prefix
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(loadPage)}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := s.kv.Get(ctx, key, opts...)
		if err != nil {
			return 0, fmt.Errorf("inventory: load %s: %w", prefix, err)
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		for _, kv := range resp.Kvs {
			if err := fn(loaded{id: strings.TrimPrefix(string(kv.Key), prefix), rev: kv.ModRevision, msg: kv.Value}); err != nil {
				return 0, err
			}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return rev, nil
		}
		key = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// createDevice writes a new device unless its key or the request id exists.
// It returns the new ModRevision, or, when requestID was seen before, the id
// of the device that request created (and rev 0).
func (s *store) createDevice(ctx context.Context, id string, d *pb.Device, requestID string) (rev int64, existingID string, err error) {
	b, err := proto.Marshal(d)
	if err != nil {
		return 0, "", err
	}
	cmps := []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(deviceKey(id)), "=", 0)}
	puts := []clientv3.Op{clientv3.OpPut(deviceKey(id), string(b))}
	var orElse []clientv3.Op
	if requestID != "" {
		lease, err := s.lease.Grant(ctx, int64(requestTTL/time.Second))
		if err != nil {
			return 0, "", fmt.Errorf("inventory: lease for request_id: %w", err)
		}
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(requestKey(requestID)), "=", 0))
		puts = append(puts, clientv3.OpPut(requestKey(requestID), id, clientv3.WithLease(lease.ID)))
		orElse = append(orElse, clientv3.OpGet(requestKey(requestID)))
	}
	var resp *clientv3.TxnResponse
	err = s.tel.txn(ctx, "create", len(puts), func(ctx context.Context) (err error) {
		resp, err = s.kv.Txn(ctx).If(cmps...).Then(puts...).Else(orElse...).Commit()
		return err
	})
	if err != nil {
		return 0, "", fmt.Errorf("inventory: create %s: %w", id, err)
	}
	if resp.Succeeded {
		return resp.Header.Revision, "", nil
	}
	if requestID != "" {
		if kvs := resp.Responses[0].GetResponseRange().GetKvs(); len(kvs) > 0 {
			return 0, string(kvs[0].Value), nil
		}
	}
	return 0, "", ErrAlreadyExists
}

// updateDevice replaces a device if its ModRevision is still rev.
func (s *store) updateDevice(ctx context.Context, id string, d *pb.Device, rev int64) (int64, error) {
	b, err := proto.Marshal(d)
	if err != nil {
		return 0, err
	}
	var resp *clientv3.TxnResponse
	err = s.tel.txn(ctx, "update", 1, func(ctx context.Context) (err error) {
		resp, err = s.kv.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(deviceKey(id)), "=", rev)).
			Then(clientv3.OpPut(deviceKey(id), string(b))).
			Commit()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("inventory: update %s: %w", id, err)
	}
	if !resp.Succeeded {
		return 0, ErrConflict
	}
	return resp.Header.Revision, nil
}

// statusPut is one status a checkpoint writes: only if its key's
// ModRevision is still rev (0: the key does not exist).
type statusPut struct {
	id  string
	rev int64
	msg []byte
	seq uint64
}

// statusBatch is what became of one transaction of a checkpoint.
type statusBatch struct {
	puts []statusPut
	// rev is the revision the batch was written at, 0 if it was not: then
	// current holds the keys as etcd has them.
	rev     int64
	current []*mvccpb.KeyValue
}

// putStatuses writes checkpointed statuses, at most maxOps keys per
// transaction, each compared with the revision its writer last saw, and
// calls done with every batch, written or not. It stops at the first
// error.
func (s *store) putStatuses(ctx context.Context, puts []statusPut, done func(statusBatch)) error {
	for start := 0; start < len(puts); start += s.maxOps {
		batch := puts[start:min(start+s.maxOps, len(puts))]
		cmps := make([]clientv3.Cmp, 0, len(batch))
		ops := make([]clientv3.Op, 0, len(batch))
		gets := make([]clientv3.Op, 0, len(batch))
		for _, p := range batch {
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(statusKey(p.id)), "=", p.rev))
			ops = append(ops, clientv3.OpPut(statusKey(p.id), string(p.msg)))
			gets = append(gets, clientv3.OpGet(statusKey(p.id)))
		}
		var resp *clientv3.TxnResponse
		err := s.tel.txn(ctx, "checkpoint", len(ops), func(ctx context.Context) (err error) {
			resp, err = s.kv.Txn(ctx).If(cmps...).Then(ops...).Else(gets...).Commit()
			return err
		})
		if err != nil {
			return fmt.Errorf("inventory: checkpoint %d statuses: %w", len(batch), err)
		}
		b := statusBatch{puts: batch}
		if resp.Succeeded {
			b.rev = resp.Header.Revision
		} else {
			for _, r := range resp.Responses {
				b.current = append(b.current, r.GetResponseRange().GetKvs()...)
			}
		}
		done(b)
	}
	return nil
}
