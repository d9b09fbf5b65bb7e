package inventory

import (
	"context"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"
)

// maxCheckpointLinks bounds the links of one checkpoint span to the sampled
// reports it commits.
const maxCheckpointLinks = 32

// checkpointStats counts the checkpoints, for tests, logs and metrics.
type checkpointStats struct {
	batches  atomic.Uint64 // checkpoints that wrote something
	txns     atomic.Uint64 // etcd transactions
	statuses atomic.Uint64 // status keys written
	failures atomic.Uint64
	// lastSuccess is when a checkpoint last left nothing unwritten (Unix
	// nanoseconds; 0 before the first).
	lastSuccess atomic.Int64
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
	failing := 0 // consecutive failed checkpoints
	for {
		select {
		case <-ctx.Done():
			final, cancel := context.WithTimeout(context.WithoutCancel(ctx), inv.cfg.RequestTimeout)
			defer cancel()
			return inv.Checkpoint(final)
		case <-t.C:
			err := inv.Checkpoint(ctx)
			switch {
			case err == nil:
				failing = 0
			case ctx.Err() != nil:
			case failing < 3:
				failing++
				inv.log.Warn("checkpoint failed; will retry", "err", err, "consecutive", failing)
			default:
				failing++
				// Device status is not durable while this lasts: a crash now
				// loses it until the devices report again.
				inv.log.Error("checkpoints keep failing; device status is not being stored", "err", err, "consecutive", failing)
			}
		}
	}
}

// Checkpoint writes every status changed since the last checkpoint. Statuses
// it could not write stay marked for the next one.
func (inv *Inventory) Checkpoint(ctx context.Context) error {
	start := inv.now()
	inv.dirtyMu.Lock()
	dirty := inv.dirty
	if len(dirty) == 0 {
		inv.dirtyMu.Unlock()
		inv.checkpoints.lastSuccess.Store(start.UnixNano())
		return nil
	}
	inv.dirty = make(map[string]trace.SpanContext, len(dirty))
	inv.dirtyMu.Unlock()

	// The checkpoint joins the trace of the first sampled change it commits
	// and links the others: a report's trace shows the commit that made it
	// durable.
	var parent trace.SpanContext
	var links []trace.Link
	for _, sc := range dirty {
		switch {
		case !sc.IsSampled():
		case !parent.IsValid():
			parent = sc
		case len(links) < maxCheckpointLinks:
			links = append(links, trace.Link{SpanContext: sc})
		}
	}
	ctx, span := inv.tel.tracer.Start(trace.ContextWithRemoteSpanContext(ctx, parent), "inventory checkpoint",
		trace.WithLinks(links...), trace.WithAttributes(attribute.Int("medfleet.checkpoint.size", len(dirty))))
	defer span.End()

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
	inv.tel.batchSize.Record(ctx, int64(written))
	if err != nil {
		inv.checkpoints.failures.Add(1)
		inv.tel.failures.Add(ctx, 1)
		span.SetStatus(otelcodes.Error, err.Error())
		for _, id := range ids[written:] {
			inv.markDirty(trace.ContextWithSpanContext(ctx, dirty[id]), id)
		}
		return err
	}
	inv.checkpoints.lastSuccess.Store(start.UnixNano())
	return nil
}
