package maintenance

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

const day = 24 * time.Hour

// Device is what the due list needs to know of one device.
type Device struct {
	ID         string
	CreateTime time.Time
	UsageHours float64
	// Indicators are the current values a condition may name:
	// "telemetry/<name>", "alarm/<code>", "battery".
	Indicators map[string]float64
	// History feeds usage projection and indicator trends; nil: none yet.
	History *History
	// Record is the device's maintenance record; nil: never maintained, so
	// it needs an acceptance check before use.
	Record *pb.DeviceMaintenance
	// OpenOrders maps a task id (or "acceptance") to its open work order.
	OpenOrders map[string]string
	// Location is where the device was last seen, when known.
	Location string
	// LastSeen is when the device last reported its indicators.
	LastSeen time.Time
}

// AcceptanceTask is the id the due list and work orders use for the
// acceptance check that every device needs before use.
const AcceptanceTask = "acceptance"

// Indicators lists, in a fixed order, the indicators the conditions of a
// model's plan watch: the order of Sample.Values.
func Indicators(m *pb.DeviceModel) []string {
	var out []string
	for _, t := range m.GetTasks() {
		for _, c := range t.GetConditions() {
			if !slices.Contains(out, c.GetIndicator()) {
				out = append(out, c.GetIndicator())
			}
		}
	}
	return out
}

// Due returns the tasks of d under m that are due at now or within horizon,
// each with the trigger that makes it due first.
func Due(now time.Time, d *Device, m *pb.DeviceModel, horizon time.Duration) []*pb.DueItem {
	var items []*pb.DueItem
	base := func(task string, kind pb.TaskKind) *pb.DueItem {
		return &pb.DueItem{Device: "devices/" + d.ID, Model: m.GetName(), TaskId: task, Kind: kind,
			HighRisk: m.GetHighRisk(), LifeSupport: m.GetLifeSupport(), EmNumber: m.GetEmNumber(),
			WorkOrder: d.OpenOrders[task], Location: d.Location}
	}
	if st := d.Record.GetServiceState(); st == pb.ServiceState_SERVICE_STATE_UNSPECIFIED || st == pb.ServiceState_SERVICE_STATE_NEEDS_CHECK {
		it := base(AcceptanceTask, pb.TaskKind_TASK_KIND_ACCEPTANCE)
		it.Reason, it.DueTime, it.Detail = pb.DueReason_DUE_REASON_ACCEPTANCE, timestamppb.New(now), "acceptance check before use"
		items = append(items, it)
	}
	indicators := Indicators(m)
	var rate *Rate
	for _, t := range m.GetTasks() {
		lastTime, lastUsage := d.CreateTime, 0.0
		if ts := taskState(d.Record, t.GetId()); ts != nil {
			lastTime, lastUsage = ts.GetLastDoneTime().AsTime(), ts.GetLastDoneUsageHours()
		}
		var best *pb.DueItem
		consider := func(it *pb.DueItem) {
			if best == nil || it.DueTime.AsTime().Before(best.DueTime.AsTime()) {
				best = it
			}
		}
		if n := t.GetIntervalDays(); n > 0 {
			it := base(t.GetId(), t.GetKind())
			it.Reason, it.DueTime = pb.DueReason_DUE_REASON_CALENDAR, timestamppb.New(lastTime.Add(time.Duration(n)*day))
			it.Detail = fmt.Sprintf("every %d d; last %s", n, lastTime.Format("2006-01-02"))
			consider(it)
		}
		if n := t.GetIntervalHours(); n > 0 {
			if rate == nil {
				r := EstimateRate(orEmpty(d.History), d.UsageHours, now.Sub(d.CreateTime))
				rate = &r
			}
			it := base(t.GetId(), t.GetKind())
			it.Reason = pb.DueReason_DUE_REASON_USAGE
			used := d.UsageHours - lastUsage
			if used < 0 {
				// The usage counter restarted since the task was done (a
				// device registered again): count from the restart.
				used = d.UsageHours
			}
			remaining := n - used
			it.Detail = fmt.Sprintf("every %s h: %s h used, %.1f h/day", hours(n), hours(used), rate.PerDay)
			if remaining <= 0 {
				it.DueTime = timestamppb.New(now)
			} else {
				it.DueTime = timestamppb.New(project(now, remaining, rate.PerDay))
				it.DueEarliestTime = timestamppb.New(project(now, remaining, rate.High))
				it.DueLatestTime = timestamppb.New(project(now, remaining, rate.Low))
			}
			consider(it)
		}
		// Readings taken before the task was last done say nothing about
		// the work (a filter counter the device has not reset yet).
		conditions := t.GetConditions()
		if taskState(d.Record, t.GetId()) != nil && !d.LastSeen.After(lastTime) {
			conditions = nil
		}
		for _, c := range conditions {
			if it := condition(now, d, c, slices.Index(indicators, c.GetIndicator())); it != nil {
				b := base(t.GetId(), t.GetKind())
				b.Reason, b.DueTime, b.Detail = it.Reason, it.DueTime, it.Detail
				consider(b)
			}
		}
		if best == nil || best.DueTime.AsTime().After(now.Add(horizon)) {
			continue
		}
		end := best.DueTime.AsTime().Add(time.Duration(t.GetWindowAfterDays()) * day)
		best.Overdue = now.After(end)
		items = append(items, best)
	}
	return items
}

// condition is a due item when c is met now, or when its trend meets it
// within c.trend_days.
func condition(now time.Time, d *Device, c *pb.Condition, idx int) *pb.DueItem {
	v, ok := d.Indicators[c.GetIndicator()]
	if !ok {
		return nil
	}
	met := func(x float64) bool {
		if c.GetOp() == ">=" {
			return x >= c.GetThreshold()
		}
		return x <= c.GetThreshold()
	}
	if met(v) {
		return &pb.DueItem{Reason: pb.DueReason_DUE_REASON_CONDITION, DueTime: timestamppb.New(now),
			Detail: fmt.Sprintf("%s %g %s %g", c.GetIndicator(), v, c.GetOp(), c.GetThreshold())}
	}
	if c.GetTrendDays() == 0 || d.History == nil || idx < 0 {
		return nil
	}
	slope, ok := trend(d.History, idx)
	gap := c.GetThreshold() - v
	if !ok || slope == 0 || math.Signbit(slope) != math.Signbit(gap) {
		return nil
	}
	days := gap / slope
	if days > float64(c.GetTrendDays()) {
		return nil
	}
	return &pb.DueItem{Reason: pb.DueReason_DUE_REASON_CONDITION, DueTime: timestamppb.New(now.Add(time.Duration(days * float64(day)))),
		Detail: fmt.Sprintf("%s %g, trending %+.3g/day to %s %g in %.1f d", c.GetIndicator(), v, slope, c.GetOp(), c.GetThreshold(), days)}
}

// project is when remaining hours of use are reached at perDay hours a
// day; a device not in use is projected ten years out, beyond any horizon.
func project(now time.Time, remaining, perDay float64) time.Time {
	if perDay <= 0 || remaining/perDay > 3650 {
		return now.Add(3650 * day)
	}
	return now.Add(time.Duration(remaining / perDay * float64(day)))
}

func taskState(r *pb.DeviceMaintenance, id string) *pb.TaskState {
	for _, t := range r.GetTasks() {
		if t.GetTaskId() == id {
			return t
		}
	}
	return nil
}

func orEmpty(h *History) *History {
	if h == nil {
		return &History{}
	}
	return h
}

func hours(h float64) string {
	if h >= 100 {
		return fmt.Sprintf("%.0f", h)
	}
	return fmt.Sprintf("%.1f", h)
}

// SortDue orders a due list for a technician: overdue first, then life
// support, then high risk, then the higher equipment-management number,
// then the earlier due time.
func SortDue(items []*pb.DueItem) {
	tier := func(it *pb.DueItem) int {
		switch {
		case it.GetLifeSupport():
			return 0
		case it.GetHighRisk():
			return 1
		}
		return 2
	}
	// Device and task make the order total, so an unstable sort is
	// deterministic; comparisons stop at the first that differs.
	slices.SortFunc(items, func(a, b *pb.DueItem) int {
		if a.GetOverdue() != b.GetOverdue() {
			if a.GetOverdue() {
				return -1
			}
			return 1
		}
		if c := cmp.Compare(tier(a), tier(b)); c != 0 {
			return c
		}
		if c := cmp.Compare(b.GetEmNumber(), a.GetEmNumber()); c != 0 {
			return c
		}
		if c := cmp.Or(cmp.Compare(a.GetDueTime().GetSeconds(), b.GetDueTime().GetSeconds()),
			cmp.Compare(a.GetDueTime().GetNanos(), b.GetDueTime().GetNanos())); c != 0 {
			return c
		}
		return cmp.Or(cmp.Compare(a.GetDevice(), b.GetDevice()), cmp.Compare(a.GetTaskId(), b.GetTaskId()))
	})
}

// PredictedFailureTask is the task id of a predicted failure in the due
// list: not a task of the plan, an inspection the prediction asks for.
const PredictedFailureTask = "predicted-failure"

// PredictedFailure is the due item of a device whose remaining useful life
// a failure model predicts at remainingHours of use: due when its projected
// use reaches them, if that is within horizon.
func PredictedFailure(now time.Time, d *Device, m *pb.DeviceModel, remainingHours float64, horizon time.Duration) *pb.DueItem {
	rate := EstimateRate(orEmpty(d.History), d.UsageHours, now.Sub(d.CreateTime))
	due := project(now, remainingHours, rate.PerDay)
	if remainingHours <= 0 {
		due = now
	}
	if due.After(now.Add(horizon)) {
		return nil
	}
	return &pb.DueItem{Device: "devices/" + d.ID, Model: m.GetName(), TaskId: PredictedFailureTask, Kind: pb.TaskKind_TASK_KIND_PM_INSPECTION,
		Reason: pb.DueReason_DUE_REASON_PREDICTED_FAILURE, DueTime: timestamppb.New(due),
		DueEarliestTime: timestamppb.New(project(now, remainingHours, rate.High)), DueLatestTime: timestamppb.New(project(now, remainingHours, rate.Low)),
		Detail:   fmt.Sprintf("predicted remaining life %s h of use, %.1f h/day", hours(remainingHours), rate.PerDay),
		HighRisk: m.GetHighRisk(), LifeSupport: m.GetLifeSupport(), EmNumber: m.GetEmNumber(), WorkOrder: d.OpenOrders[PredictedFailureTask], Location: d.Location}
}
