package rollout

import (
	"context"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/medfleet/medfleet/internal/telemetry"
	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// metricCounts are what the last step found, for the metrics.
type metricCounts struct {
	// rollouts by {state, pause reason}, unfinished ones only.
	rollouts map[[2]string]int64
	// devices of unfinished rollouts by execution state.
	devices map[string]int64
}

// Bounded attribute values.
var (
	rolloutStates = []pb.RolloutState{pb.RolloutState_ROLLOUT_STATE_RUNNING, pb.RolloutState_ROLLOUT_STATE_PAUSED}
	pauseReasons  = []pb.PauseReason{0, pb.PauseReason_PAUSE_REASON_MANUAL, pb.PauseReason_PAUSE_REASON_ERROR_THRESHOLD,
		pb.PauseReason_PAUSE_REASON_WINDOW_CLOSED, pb.PauseReason_PAUSE_REASON_CLINICAL_HOLD, pb.PauseReason_PAUSE_REASON_VERSION_BLOCKED}
)

func executionName(s pb.ExecutionState) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "EXECUTION_STATE_"))
}

func (c *Controller) registerMetrics(tel telemetry.Providers) error {
	m := tel.Meter.Meter(telemetry.ScopeName + "/rollout")
	if _, err := m.Int64ObservableGauge("medfleet.rollouts", metric.WithUnit("{rollout}"),
		metric.WithDescription("Unfinished firmware rollouts by state (running, paused) and pause reason (none, manual, error_threshold, window_closed, clinical_hold, version_blocked)."),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			c.mu.Lock()
			defer c.mu.Unlock()
			for _, s := range rolloutStates {
				for _, p := range pauseReasons {
					if s == pb.RolloutState_ROLLOUT_STATE_RUNNING && p != 0 {
						continue
					}
					reason := "none"
					if p != 0 {
						reason = reasonName(p)
					}
					o.Observe(c.counts.rollouts[[2]string{stateName(s), reason}],
						metric.WithAttributes(attribute.String("state", stateName(s)), attribute.String("reason", reason)))
				}
			}
			return nil
		})); err != nil {
		return err
	}
	_, err := m.Int64ObservableGauge("medfleet.rollout.devices", metric.WithUnit("{device}"),
		metric.WithDescription("Devices of unfinished rollouts by update state: queued, notified, downloading, downloaded, deferred, installing, succeeded, failed, timed_out, canceled, skipped."),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			c.mu.Lock()
			defer c.mu.Unlock()
			for s := pb.ExecutionState_EXECUTION_STATE_QUEUED; s <= pb.ExecutionState_EXECUTION_STATE_SKIPPED; s++ {
				o.Observe(c.counts.devices[executionName(s)], metric.WithAttributes(attribute.String("state", executionName(s))))
			}
			return nil
		}))
	return err
}

// updateMetrics counts unfinished rollouts and their devices.
func (c *Controller) updateMetrics() {
	n := metricCounts{rollouts: map[[2]string]int64{}, devices: map[string]int64{}}
	active := map[string]bool{}
	c.rollouts.Range(func(id string, r *pb.Rollout) bool {
		if finished(r) {
			return true
		}
		active[id] = true
		reason := "none"
		if r.GetPauseReason() != 0 {
			reason = reasonName(r.GetPauseReason())
		}
		n.rollouts[[2]string{stateName(r.GetState()), reason}]++
		return true
	})
	c.devices.Range(func(k string, d *pb.RolloutDevice) bool {
		id, _, _ := strings.Cut(k, "/")
		if active[id] {
			n.devices[executionName(d.GetState())]++
		}
		return true
	})
	c.mu.Lock()
	c.counts = n
	c.mu.Unlock()
}
