package inventory

import (
	"context"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"
)

// checkpointStats counts the checkpoints, for tests, logs and metrics.
type checkpointStats struct {
	batches  atomic.Uint64 // checkpoints that wrote something
	txns     atomic.Uint64 // etcd transactions
	statuses atomic.Uint64 // status keys written
	failures atomic.Uint64
}

// CheckpointStats is a snapshot of checkpointStats.
type CheckpointStats struct {
	Batches, Txns, Statuses, Failures uint64
}

// CheckpointStats returns counters of the checkpoints so far.
func (inv *Inventory) CheckpointStats() CheckpointStats {
	c := &inv.checkpoints
	return CheckpointStats{Batches: c.batches.Load(), Txns: c.txns.Load(), Statuses: c.statuses.Load(), Failures: c.failures.Load()}
}

// Run checkpoints changed statuses to etcd every CheckpointInterval (a group
// commit: one transaction per MaxTxnOps devices, however many reports they
// sent) until ctx ends, then writes a last checkpoint and returns.
func (inv *Inventory) Run(ctx context.Context) error {
	t := time.NewTicker(inv.cfg.CheckpointInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			final, cancel := context.WithTimeout(context.WithoutCancel(ctx), inv.cfg.RequestTimeout)
			defer cancel()
			return inv.Checkpoint(final)
		case <-t.C:
			if err := inv.Checkpoint(ctx); err != nil && ctx.Err() == nil {
				inv.log.Warn("checkpoint failed; will retry", "err", err)
			}
		}
	}
}

// Checkpoint writes every status changed since the last checkpoint. Statuses
// it could not write stay marked for the next one.
func (inv *Inventory) Checkpoint(ctx context.Context) error {
	inv.dirtyMu.Lock()
	dirty := inv.dirty
	if len(dirty) == 0 {
		inv.dirtyMu.Unlock()
		return nil
	}
	inv.dirty = make(map[string]struct{}, len(dirty))
	inv.dirtyMu.Unlock()

	ids := make([]string, 0, len(dirty))
	msgs := make([][]byte, 0, len(dirty))
	for id := range dirty {
		e, ok := inv.lookup(id)
		if !ok {
			continue
		}
		e.mu.Lock()
		b, err := proto.Marshal(e.status)
		e.mu.Unlock()
		if err != nil {
			return err
		}
		ids = append(ids, id)
		msgs = append(msgs, b)
	}
	ctx, cancel := inv.ctx(ctx)
	defer cancel()
	txns, err := inv.store.putStatuses(ctx, ids, msgs)
	inv.checkpoints.txns.Add(uint64(txns))
	written := min(txns*inv.cfg.MaxTxnOps, len(ids))
	inv.checkpoints.statuses.Add(uint64(written))
	inv.checkpoints.batches.Add(1)
	if err != nil {
		inv.checkpoints.failures.Add(1)
		for _, id := range ids[written:] {
			inv.markDirty(id)
		}
		return err
	}
	return nil
}
