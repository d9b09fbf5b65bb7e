package inventory

import (
	"context"
	"strings"
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
	// conflicts counts transactions refused because another replica had
	// written one of their statuses since this one saw it.
	conflicts atomic.Uint64
	// lastSuccess is when a checkpoint last left nothing unwritten (Unix
	// nanoseconds; 0 before the first).
	lastSuccess atomic.Int64
}

// CheckpointStats is a snapshot of checkpointStats.
type CheckpointStats struct {
	Batches, Txns, Statuses, Failures, Conflicts uint64
}

// CheckpointStats returns counters of the checkpoints so far.
func (inv *Inventory) CheckpointStats() CheckpointStats {
	c := &inv.checkpoints
	return CheckpointStats{Batches: c.batches.Load(), Txns: c.txns.Load(), Statuses: c.statuses.Load(), Failures: c.failures.Load(),
		Conflicts: c.conflicts.Load()}
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

// settle records what became of a batch of status writes and returns the
// number of its statuses that were not written. Written, they are stored
// up to the seq they carried; refused because another replica wrote one of
// them since this one saw it, etcd's copies are merged into memory and the
// statuses are marked for the next checkpoint (dirty holds their span
// contexts, nil when there are none).
func (inv *Inventory) settle(ctx context.Context, b statusBatch, dirty map[string]trace.SpanContext) int {
	inv.checkpoints.txns.Add(1)
	if b.rev == 0 {
		inv.checkpoints.conflicts.Add(1)
		for _, kv := range b.current {
			inv.applyStatus(strings.TrimPrefix(string(kv.Key), statusPrefix), kv.ModRevision, kv.Value)
		}
		if dirty != nil {
			for _, p := range b.puts {
				inv.markDirty(trace.ContextWithSpanContext(ctx, dirty[p.id]), p.id)
			}
		}
		return len(b.puts)
	}
	for _, p := range b.puts {
		if e, ok := inv.lookup(p.id); ok {
			e.mu.Lock()
			e.statusRev = max(e.statusRev, b.rev)
			e.storedSeq = max(e.storedSeq, p.seq)
			e.mu.Unlock()
		}
	}
	return 0
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

	puts := make([]statusPut, 0, len(dirty))
	for id := range dirty {
		e, ok := inv.lookup(id)
		if !ok {
			continue
		}
		e.mu.Lock()
		b, err := proto.Marshal(e.status)
		p := statusPut{id: id, rev: e.statusRev, msg: b, seq: e.status.GetLastSeq()}
		e.mu.Unlock()
		if err != nil {
			return err
		}
		puts = append(puts, p)
	}
	ctx, cancel := inv.ctx(ctx)
	defer cancel()
	handled, written := 0, 0
	err := inv.store.putStatuses(ctx, puts, func(b statusBatch) {
		handled += len(b.puts)
		if inv.settle(ctx, b, dirty) == 0 {
			written += len(b.puts)
		}
	})
	inv.checkpoints.statuses.Add(uint64(written))
	inv.checkpoints.batches.Add(1)
	inv.tel.batchSize.Record(ctx, int64(written))
	if err != nil {
		inv.checkpoints.failures.Add(1)
		inv.tel.failures.Add(ctx, 1)
		span.SetStatus(otelcodes.Error, err.Error())
		for _, p := range puts[handled:] {
			inv.markDirty(trace.ContextWithSpanContext(ctx, dirty[p.id]), p.id)
		}
		return err
	}
	inv.checkpoints.lastSuccess.Store(start.UnixNano())
	return nil
}
