package program

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/medfleet/medfleet/internal/telemetry"
	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// risks and states are the bounded attribute values of the task gauge.
var (
	risks  = []string{"life_support", "high", "other"}
	states = []string{"due", "overdue"}
)

// counts are what the last schedule found, for the metrics.
type counts struct {
	tasks      map[[2]string]int64 // {state, risk}
	openOrders int64
}

func riskOf(it *pb.DueItem) string {
	switch {
	case it.GetLifeSupport():
		return "life_support"
	case it.GetHighRisk():
		return "high"
	}
	return "other"
}

// registerMetrics exports the counts of the last schedule.
func (p *Program) registerMetrics(tel telemetry.Providers) error {
	m := tel.Meter.Meter(telemetry.ScopeName + "/maintenance")
	if _, err := m.Int64ObservableGauge("medfleet.maintenance.tasks", metric.WithUnit("{task}"),
		metric.WithDescription("Maintenance tasks due now (within their window) or overdue (past it), by the risk of the equipment: life_support, high, other. Acceptance checks count as due."),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			p.mu.Lock()
			c := p.counts
			p.mu.Unlock()
			for _, s := range states {
				for _, r := range risks {
					o.Observe(c.tasks[[2]string{s, r}], metric.WithAttributes(attribute.String("state", s), attribute.String("risk", r)))
				}
			}
			return nil
		})); err != nil {
		return err
	}
	_, err := m.Int64ObservableGauge("medfleet.maintenance.work_orders.open", metric.WithUnit("{work_order}"),
		metric.WithDescription("Work orders open or assigned."),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			p.mu.Lock()
			n := p.counts.openOrders
			p.mu.Unlock()
			o.Observe(n)
			return nil
		}))
	return err
}
