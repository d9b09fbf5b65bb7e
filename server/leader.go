package server

import (
	"context"
	"log/slog"
	"os"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// leaderTTL is the lease of the elected leader's key: a replica that dies
// is replaced about this long after its last keep-alive.
const leaderTTL = 5 // seconds

// leaderKey is the election's prefix in etcd.
const leaderKey = "/medfleet/v1/leader/controllers"

// lead runs fn on this replica while it is the elected leader, and
// campaigns again whenever it loses the lead, until ctx ends. fn gets a
// context that ends with the leadership, and a fence: a comparison on the
// leader key's creation revision that every write of fn must carry, so
// that a deposed leader's late writes fail.
func lead(ctx context.Context, client *clientv3.Client, log *slog.Logger, fn func(ctx context.Context, fence []clientv3.Cmp)) {
	host, _ := os.Hostname()
	id := host + "/" + time.Now().UTC().Format(time.RFC3339Nano)
	for ctx.Err() == nil {
		sess, err := concurrency.NewSession(client, concurrency.WithTTL(leaderTTL), concurrency.WithContext(ctx))
		if err != nil {
			log.Warn("cannot open an etcd session for the leader election; retrying", "err", err)
			sleep(ctx, time.Second)
			continue
		}
		e := concurrency.NewElection(sess, leaderKey)
		if err := e.Campaign(ctx, id); err != nil {
			sess.Close()
			if ctx.Err() == nil {
				log.Warn("leader campaign failed; retrying", "err", err)
				sleep(ctx, time.Second)
			}
			continue
		}
		fence := []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(e.Key()), "=", e.Rev())}
		lctx, cancel := context.WithCancel(ctx)
		go func() {
			select {
			case <-sess.Done():
				cancel()
			case <-lctx.Done():
			}
		}()
		log.Info("leading the controllers", "id", id, "revision", e.Rev())
		fn(lctx, fence)
		cancel()
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		_ = e.Resign(rctx) // a successor need not wait for the lease to lapse
		rcancel()
		sess.Close()
		if ctx.Err() == nil {
			log.Warn("lost the lead of the controllers; campaigning again")
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
