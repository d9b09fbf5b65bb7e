package inventory

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/medfleet/medfleet/internal/telemetry"
	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// instruments are the inventory's tracer and metrics.
type instruments struct {
	tracer      trace.Tracer
	txnDuration metric.Float64Histogram
	batchSize   metric.Int64Histogram
	failures    metric.Int64Counter
}

func newInstruments(p telemetry.Providers, inv *Inventory) (*instruments, error) {
	const scope = telemetry.ScopeName + "/inventory"
	m := p.Meter.Meter(scope)
	in := &instruments{tracer: p.Tracer.Tracer(scope)}
	var err error
	if in.txnDuration, err = m.Float64Histogram("medfleet.etcd.txn.duration", metric.WithUnit("s"),
		metric.WithDescription("etcd transactions by operation: create, update (registry writes) and checkpoint (one per batch of statuses)."),
		metric.WithExplicitBucketBoundaries(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)); err != nil {
		return nil, err
	}
	if in.batchSize, err = m.Int64Histogram("medfleet.checkpoint.size", metric.WithUnit("{device}"),
		metric.WithDescription("Device statuses written by one checkpoint."),
		metric.WithExplicitBucketBoundaries(1, 10, 100, 1000, 10000, 100000)); err != nil {
		return nil, err
	}
	if in.failures, err = m.Int64Counter("medfleet.checkpoint.failures", metric.WithUnit("{checkpoint}"),
		metric.WithDescription("Checkpoints that could not write every status; the rest is retried at the next one.")); err != nil {
		return nil, err
	}
	in.failures.Add(context.Background(), 0) // exported from the start, so that alerts see a series
	if _, err = m.Int64ObservableGauge("medfleet.checkpoint.pending", metric.WithUnit("{device}"),
		metric.WithDescription("Devices whose changed status waits for the next checkpoint."),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			inv.dirtyMu.Lock()
			n := len(inv.dirty)
			inv.dirtyMu.Unlock()
			o.Observe(int64(n))
			return nil
		})); err != nil {
		return nil, err
	}
	if _, err = m.Float64ObservableGauge("medfleet.checkpoint.age", metric.WithUnit("s"),
		metric.WithDescription("Seconds since the last checkpoint that wrote every changed status: the most status a crash now would lose."),
		metric.WithFloat64Callback(func(_ context.Context, o metric.Float64Observer) error {
			if last := inv.checkpoints.lastSuccess.Load(); last != 0 {
				o.Observe(inv.now().Sub(time.Unix(0, last)).Seconds())
			}
			return nil
		})); err != nil {
		return nil, err
	}
	if _, err = m.Int64ObservableGauge("medfleet.devices", metric.WithUnit("{device}"),
		metric.WithDescription("Devices by profile and connectivity (online, offline); decommissioned ones are not counted."),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			// Both connectivities of every profile, zeros included, so that a
			// profile whose devices all went offline shows 0 online rather
			// than no series at all.
			counts := inv.census()
			profiles := map[string]bool{}
			for k := range counts {
				profiles[k.profile] = true
			}
			for p := range profiles {
				for _, c := range []string{"online", "offline"} {
					o.Observe(int64(counts[censusKey{p, c}]), metric.WithAttributes(attribute.String("profile", p), attribute.String("connectivity", c)))
				}
			}
			return nil
		})); err != nil {
		return nil, err
	}
	return in, nil
}

// txn runs one etcd transaction in a client span and times it. A failed
// one is recorded with error.type: timeout, unavailable or _OTHER.
func (in *instruments) txn(ctx context.Context, op string, ops int, commit func(context.Context) error) error {
	ctx, span := in.tracer.Start(ctx, "etcd Txn "+op, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("db.system.name", "etcd"), attribute.String("db.operation.name", "Txn"),
			attribute.String("medfleet.txn.op", op), attribute.Int("medfleet.txn.ops", ops)))
	start := time.Now()
	err := commit(ctx)
	attrs := []attribute.KeyValue{attribute.String("op", op)}
	if err != nil {
		attrs = append(attrs, attribute.String("error.type", errorType(err)))
		span.SetStatus(otelcodes.Error, err.Error())
	}
	in.txnDuration.Record(ctx, time.Since(start).Seconds(), metric.WithAttributes(attrs...))
	span.End()
	return err
}

func errorType(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded), status.Code(err) == codes.DeadlineExceeded:
		return "timeout"
	case status.Code(err) == codes.Unavailable:
		return "unavailable"
	}
	return "_OTHER"
}

type censusKey struct{ profile, connectivity string }

// census counts the devices that are not decommissioned by profile and
// connectivity.
func (inv *Inventory) census() map[censusKey]int {
	now := inv.now()
	counts := map[censusKey]int{}
	inv.mu.RLock()
	defer inv.mu.RUnlock()
	for _, e := range inv.devices {
		e.mu.Lock()
		if e.spec.GetDecommissionTime() == nil {
			conn := "offline"
			if inv.connectivity(e.status, now) == pb.Connectivity_CONNECTIVITY_ONLINE {
				conn = "online"
			}
			counts[censusKey{e.spec.GetProfile(), conn}]++
		}
		e.mu.Unlock()
	}
	return counts
}
