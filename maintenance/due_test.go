package maintenance

import (
	"math"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// plan is a model of the given tasks.
func plan(tasks ...*pb.MaintenanceTask) *pb.DeviceModel {
	return &pb.DeviceModel{Name: "models/test", Model: "Test", EmNumber: 12, Tasks: tasks}
}

func inService(tasks ...*pb.TaskState) *pb.DeviceMaintenance {
	return &pb.DeviceMaintenance{ServiceState: pb.ServiceState_SERVICE_STATE_IN_SERVICE, Tasks: tasks}
}

func done(id string, at time.Time, usage float64) *pb.TaskState {
	return &pb.TaskState{TaskId: id, LastDoneTime: timestamppb.New(at), LastDoneUsageHours: usage}
}

// usageUntilNow is a history of daily samples over the 20 days before now at
// perDay hours a day, ending at usage.
func usageUntilNow(usage, perDay float64) *History {
	h := &History{}
	for d := 20; d >= 0; d-- {
		h.Add(Sample{Time: now.Add(-time.Duration(d) * day), UsageHours: usage - perDay*float64(d)}, time.Hour)
	}
	return h
}

// indicatorUntilNow is a history of daily samples over the 10 days before
// now of one indicator that moves perDay and ends at v.
func indicatorUntilNow(v, perDay float64) *History {
	h := &History{}
	for d := 10; d >= 0; d-- {
		h.Add(Sample{Time: now.Add(-time.Duration(d) * day), UsageHours: 100, Values: []float64{v - perDay*float64(d)}}, time.Hour)
	}
	return h
}

// dueFor returns the item of task among items, or nil.
func dueFor(items []*pb.DueItem, task string) *pb.DueItem {
	for _, it := range items {
		if it.GetTaskId() == task {
			return it
		}
	}
	return nil
}

// sameTime reports whether a timestamp is at want, to the microsecond
// (float day arithmetic may be off by a few nanoseconds).
func sameTime(ts *timestamppb.Timestamp, want time.Time) bool {
	d := ts.AsTime().Sub(want)
	return ts != nil && d < time.Microsecond && d > -time.Microsecond
}

func TestDueCalendar(t *testing.T) {
	m := plan(&pb.MaintenanceTask{Id: "esa", Kind: kindSafety, IntervalDays: 365, WindowBeforeDays: 30, WindowAfterDays: 30})
	created := now.Add(-300 * day)
	tests := []struct {
		name    string
		record  *pb.DeviceMaintenance
		horizon time.Duration
		due     time.Time // zero: not due
		overdue bool
	}{
		{name: "due a year after it was done", record: inService(done("esa", now.Add(-300*day), 0)), horizon: 90 * day,
			due: now.Add(65 * day)},
		{name: "never done: a year after creation", record: inService(), horizon: 90 * day, due: created.Add(365 * day)},
		{name: "another task done", record: inService(done("pm", now.Add(-day), 0)), horizon: 90 * day,
			due: created.Add(365 * day)},
		{name: "done recently", record: inService(done("esa", now.Add(-day), 0)), horizon: 90 * day},
		{name: "beyond the horizon", record: inService(done("esa", now.Add(-300*day), 0)), horizon: 64 * day},
		{name: "at the horizon", record: inService(done("esa", now.Add(-300*day), 0)), horizon: 65 * day,
			due: now.Add(65 * day)},
		{name: "past due, in the window", record: inService(done("esa", now.Add(-375*day), 0)), due: now.Add(-10 * day)},
		{name: "end of the window", record: inService(done("esa", now.Add(-395*day), 0)), due: now.Add(-30 * day)},
		{name: "past the window: overdue", record: inService(done("esa", now.Add(-395*day-time.Second), 0)),
			due: now.Add(-30*day - time.Second), overdue: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := &Device{ID: "pump-1", LastSeen: now, CreateTime: created, UsageHours: 1000, Record: tc.record}
			items := Due(now, d, m, tc.horizon)
			it := dueFor(items, "esa")
			if tc.due.IsZero() {
				if it != nil {
					t.Errorf("Due(...) = %v, want nothing due", it)
				}
				return
			}
			if it == nil {
				t.Fatalf("Due(...) = %v, want esa due at %v", items, tc.due)
			}
			if !it.GetDueTime().AsTime().Equal(tc.due) || it.GetOverdue() != tc.overdue ||
				it.GetReason() != pb.DueReason_DUE_REASON_CALENDAR {
				t.Errorf("Due(...) = %v at %v, overdue %v; want calendar at %v, overdue %v",
					it.GetReason(), it.GetDueTime().AsTime(), it.GetOverdue(), tc.due, tc.overdue)
			}
			if it.GetDueEarliestTime() != nil || it.GetDueLatestTime() != nil {
				t.Errorf("Due(...) calendar item has a band %v-%v, want none", it.GetDueEarliestTime(), it.GetDueLatestTime())
			}
			if len(items) != 1 {
				t.Errorf("Due(...) = %d items, want 1", len(items))
			}
		})
	}
}

// With no overdue window, a task is overdue as soon as its due time passes.
func TestDueNoWindow(t *testing.T) {
	m := plan(&pb.MaintenanceTask{Id: "esa", Kind: kindSafety, IntervalDays: 365})
	for _, tc := range []struct {
		last    time.Time
		overdue bool
	}{
		{now.Add(-365 * day), false},
		{now.Add(-365*day - time.Second), true},
	} {
		d := &Device{ID: "pump-1", LastSeen: now, CreateTime: now.Add(-1000 * day), Record: inService(done("esa", tc.last, 0))}
		it := dueFor(Due(now, d, m, 0), "esa")
		if it == nil || it.GetOverdue() != tc.overdue {
			t.Errorf("Due(last done %v) = %v, want overdue %v", tc.last, it, tc.overdue)
		}
	}
}

func TestDueUsage(t *testing.T) {
	m := plan(&pb.MaintenanceTask{Id: "blower", Kind: kindBlower, IntervalHours: 2000, WindowAfterDays: 30})
	variable := &History{}
	u := 2600 - 8*20.0
	for d := 20; d >= 0; d-- {
		variable.Add(Sample{Time: now.Add(-time.Duration(d) * day), UsageHours: u}, time.Hour)
		u += []float64{2, 14}[d%2]
	}
	tests := []struct {
		name       string
		usage      float64
		lastUsage  float64 // with a record of the task when > 0
		created    time.Time
		history    *History
		horizon    time.Duration
		due        time.Duration // from now; < 0: not due
		band       bool          // earliest < due < latest, rather than equal
		wantDetail string
	}{
		{name: "steady 8 h/day, 400 h left", usage: 2600, lastUsage: 1000, history: usageUntilNow(2600, 8),
			horizon: 90 * day, due: 50 * day, wantDetail: "1600 h used, 8.0 h/day"},
		{name: "beyond the horizon", usage: 2600, lastUsage: 1000, history: usageUntilNow(2600, 8), horizon: 49 * day,
			due: -1},
		{name: "never done: from zero", usage: 1900, history: usageUntilNow(1900, 8), horizon: 90 * day, due: 12*day + 12*time.Hour},
		{name: "variable use: a band", usage: 2600, lastUsage: 1000, history: variable, horizon: 365 * day, band: true},
		{name: "exceeded: due now", usage: 3100, lastUsage: 1000, history: usageUntilNow(3100, 8), due: 0},
		{name: "exactly reached: due now", usage: 3000, lastUsage: 1000, history: usageUntilNow(3000, 8), due: 0},
		{name: "no history: lifetime average", usage: 1000, created: now.Add(-200 * day), horizon: 365 * day,
			due: 200 * day, band: true},
		{name: "not in use: ten years out", usage: 2600, lastUsage: 1000, history: usageUntilNow(2600, 0),
			horizon: 3650 * day, due: 3650 * day},
		// The server's usage is cumulative, so a record above it means the
		// counter restarted since (a re-registered device): count from zero,
		// not 2000 h plus the difference.
		{name: "counter reset since done", usage: 300, lastUsage: 5000, history: usageUntilNow(300, 8),
			horizon: 365 * day, due: 212*day + 12*time.Hour, wantDetail: "300 h used"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			created := tc.created
			if created.IsZero() {
				created = now.Add(-1000 * day)
			}
			rec := inService()
			if tc.lastUsage > 0 {
				rec = inService(done("blower", now.Add(-100*day), tc.lastUsage))
			}
			d := &Device{ID: "cpap-1", LastSeen: now, CreateTime: created, UsageHours: tc.usage, History: tc.history, Record: rec}
			it := dueFor(Due(now, d, m, tc.horizon), "blower")
			if tc.due < 0 {
				if it != nil {
					t.Errorf("Due(...) = %v, want nothing due", it)
				}
				return
			}
			if it == nil {
				t.Fatalf("Due(...) = nothing, want blower due")
			}
			if it.GetReason() != pb.DueReason_DUE_REASON_USAGE || it.GetOverdue() {
				t.Errorf("Due(...) = %v, overdue %v; want usage, not overdue", it.GetReason(), it.GetOverdue())
			}
			if strings.Contains(it.GetDetail(), "-") || !strings.Contains(it.GetDetail(), tc.wantDetail) {
				t.Errorf("Due(...).Detail = %q, want it to hold %q and no negative hours", it.GetDetail(), tc.wantDetail)
			}
			due := it.GetDueTime().AsTime()
			if (tc.due != 0 || !tc.band) && !sameTime(it.GetDueTime(), now.Add(tc.due)) {
				t.Errorf("Due(...) at %v, want %v", due, now.Add(tc.due))
			}
			if tc.due == 0 && !tc.band {
				if it.GetDueEarliestTime() != nil || it.GetDueLatestTime() != nil {
					t.Errorf("Due(...) due now with a band %v-%v, want none", it.GetDueEarliestTime(), it.GetDueLatestTime())
				}
				return
			}
			early, late := it.GetDueEarliestTime().AsTime(), it.GetDueLatestTime().AsTime()
			if it.GetDueEarliestTime() == nil || it.GetDueLatestTime() == nil || early.After(due) || due.After(late) {
				t.Fatalf("Due(...) band %v <= %v <= %v does not hold", early, due, late)
			}
			if tc.band != early.Before(late) {
				t.Errorf("Due(...) band %v to %v, want a band of some width: %v", early, late, tc.band)
			}
		})
	}
}

// The lifetime average's band is half to twice the rate: the projection is
// twice as far out, or half as far.
func TestDueUsageFallbackBand(t *testing.T) {
	m := plan(&pb.MaintenanceTask{Id: "blower", Kind: kindBlower, IntervalHours: 2000})
	d := &Device{ID: "cpap-1", LastSeen: now, CreateTime: now.Add(-200 * day), UsageHours: 1000, Record: inService()}
	it := dueFor(Due(now, d, m, 365*day), "blower")
	if it == nil {
		t.Fatal("Due(...) = nothing, want blower due")
	}
	if !sameTime(it.GetDueEarliestTime(), now.Add(100*day)) || !sameTime(it.GetDueLatestTime(), now.Add(400*day)) {
		t.Errorf("Due(...) band %v to %v, want %v to %v", it.GetDueEarliestTime().AsTime(), it.GetDueLatestTime().AsTime(),
			now.Add(100*day), now.Add(400*day))
	}
}

func TestDueCondition(t *testing.T) {
	filter := plan(&pb.MaintenanceTask{Id: "filter", Kind: kindFilter, Conditions: []*pb.Condition{
		{Indicator: "telemetry/filter/hours", Op: ">=", Threshold: 250, TrendDays: 7}}})
	battery := plan(&pb.MaintenanceTask{Id: "filter", Kind: kindBattery, Conditions: []*pb.Condition{
		{Indicator: "battery", Op: "<=", Threshold: 5}}})
	batteryTrend := plan(&pb.MaintenanceTask{Id: "filter", Kind: kindBattery, Conditions: []*pb.Condition{
		{Indicator: "battery", Op: "<=", Threshold: 20, TrendDays: 30}}})
	tests := []struct {
		name    string
		m       *pb.DeviceModel
		value   *float64 // nil: not reported
		history *History
		due     time.Duration // from now; < 0: not due
	}{
		{name: "met", m: filter, value: ptr(251), due: 0},
		{name: "met exactly", m: filter, value: ptr(250), due: 0},
		{name: "met without a trend", m: filter, value: ptr(400), history: indicatorUntilNow(400, -5), due: 0},
		{name: "trend within trend_days", m: filter, value: ptr(220), history: indicatorUntilNow(220, 7.5), due: 4 * day},
		{name: "trend at trend_days", m: filter, value: ptr(197.5), history: indicatorUntilNow(197.5, 7.5), due: 7 * day},
		{name: "trend beyond trend_days", m: filter, value: ptr(180), history: indicatorUntilNow(180, 7.5), due: -1},
		{name: "trend away", m: filter, value: ptr(240), history: indicatorUntilNow(240, -7.5), due: -1},
		{name: "flat", m: filter, value: ptr(240), history: indicatorUntilNow(240, 0), due: -1},
		{name: "no history", m: filter, value: ptr(249), due: -1},
		{name: "not reported", m: filter, history: indicatorUntilNow(249, 7.5), due: -1},
		{name: "battery low", m: battery, value: ptr(3), due: 0},
		{name: "battery fine, no trend_days", m: battery, value: ptr(6), history: indicatorUntilNow(6, -5), due: -1},
		{name: "battery falling within trend_days", m: batteryTrend, value: ptr(50), history: indicatorUntilNow(50, -2),
			due: 15 * day},
		{name: "battery rising", m: batteryTrend, value: ptr(50), history: indicatorUntilNow(50, 2), due: -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := &Device{ID: "cpap-1", LastSeen: now, CreateTime: now.Add(-100 * day), UsageHours: 100, History: tc.history, Record: inService()}
			if tc.value != nil {
				d.Indicators = map[string]float64{tc.m.Tasks[0].Conditions[0].Indicator: *tc.value}
			}
			it := dueFor(Due(now, d, tc.m, 30*day), "filter")
			if tc.due < 0 {
				if it != nil {
					t.Errorf("Due(...) = %v, want nothing due", it)
				}
				return
			}
			if it == nil {
				t.Fatalf("Due(...) = nothing, want due at now+%v", tc.due)
			}
			if it.GetReason() != pb.DueReason_DUE_REASON_CONDITION || !sameTime(it.GetDueTime(), now.Add(tc.due)) {
				t.Errorf("Due(...) = %v at %v, want condition at %v", it.GetReason(), it.GetDueTime().AsTime(), now.Add(tc.due))
			}
			if !strings.Contains(it.GetDetail(), tc.m.Tasks[0].Conditions[0].Indicator) {
				t.Errorf("Due(...).Detail = %q, want it to name the indicator", it.GetDetail())
			}
		})
	}
}

func ptr(v float64) *float64 { return &v }

// The first trigger to fire sets the due time and the reason.
func TestDueFirstTrigger(t *testing.T) {
	m := plan(&pb.MaintenanceTask{Id: "pm", Kind: kindPM, IntervalDays: 365, IntervalHours: 2000,
		Conditions: []*pb.Condition{{Indicator: "battery", Op: "<=", Threshold: 5}}})
	tests := []struct {
		name     string
		lastDone time.Time
		usage    float64 // with 1000 h at the last time done, 8 h/day
		battery  float64
		due      time.Time
		reason   pb.DueReason
	}{
		{name: "calendar first", lastDone: now.Add(-355 * day), usage: 2600, battery: 80,
			due: now.Add(10 * day), reason: pb.DueReason_DUE_REASON_CALENDAR},
		{name: "usage first", lastDone: now.Add(-325 * day), usage: 2840, battery: 80,
			due: now.Add(20 * day), reason: pb.DueReason_DUE_REASON_USAGE},
		{name: "condition first", lastDone: now.Add(-355 * day), usage: 2840, battery: 4,
			due: now, reason: pb.DueReason_DUE_REASON_CONDITION},
		{name: "calendar and condition at once: calendar", lastDone: now.Add(-365 * day), usage: 1100, battery: 4,
			due: now, reason: pb.DueReason_DUE_REASON_CALENDAR},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := &Device{ID: "pump-1", LastSeen: now, CreateTime: now.Add(-1000 * day), UsageHours: tc.usage, History: usageUntilNow(tc.usage, 8),
				Indicators: map[string]float64{"battery": tc.battery}, Record: inService(done("pm", tc.lastDone, 1000))}
			items := Due(now, d, m, 60*day)
			if len(items) != 1 {
				t.Fatalf("Due(...) = %d items, want one per task: %v", len(items), items)
			}
			if it := items[0]; it.GetReason() != tc.reason || !sameTime(it.GetDueTime(), tc.due) {
				t.Errorf("Due(...) = %v at %v, want %v at %v", it.GetReason(), it.GetDueTime().AsTime(), tc.reason, tc.due)
			}
		})
	}
}

func TestDueAcceptance(t *testing.T) {
	m := plan(&pb.MaintenanceTask{Id: "esa", Kind: kindSafety, IntervalDays: 365})
	tests := []struct {
		name   string
		record *pb.DeviceMaintenance
		want   bool
	}{
		{name: "no record", want: true},
		{name: "needs check", record: &pb.DeviceMaintenance{ServiceState: pb.ServiceState_SERVICE_STATE_NEEDS_CHECK}, want: true},
		{name: "record without a state", record: &pb.DeviceMaintenance{}, want: true},
		{name: "in service", record: inService()},
		// Under repair: the repair's completion asks for the check.
		{name: "out of service", record: &pb.DeviceMaintenance{ServiceState: pb.ServiceState_SERVICE_STATE_OUT_OF_SERVICE}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := &Device{ID: "pump-1", LastSeen: now, CreateTime: now.Add(-day), Record: tc.record}
			items := Due(now, d, m, 30*day)
			it := dueFor(items, AcceptanceTask)
			if (it != nil) != tc.want {
				t.Fatalf("Due(...) acceptance = %v, want %v", it, tc.want)
			}
			if it == nil {
				return
			}
			if items[0] != it {
				t.Errorf("Due(...)[0] = %v, want the acceptance check first", items[0].GetTaskId())
			}
			if it.GetReason() != pb.DueReason_DUE_REASON_ACCEPTANCE || it.GetKind() != pb.TaskKind_TASK_KIND_ACCEPTANCE ||
				!it.GetDueTime().AsTime().Equal(now) || it.GetOverdue() {
				t.Errorf("Due(...) acceptance = %v %v at %v, overdue %v; want acceptance now, not overdue",
					it.GetReason(), it.GetKind(), it.GetDueTime().AsTime(), it.GetOverdue())
			}
		})
	}
}

// An item carries the device, the model's risk and the open work order.
func TestDueItemFields(t *testing.T) {
	m := pumpPlan()
	d := &Device{ID: "pump-7", LastSeen: now, CreateTime: now.Add(-400 * day), UsageHours: 900, Location: "4W-412",
		Indicators: map[string]float64{"battery": 90},
		OpenOrders: map[string]string{"pm": "workOrders/42", AcceptanceTask: "workOrders/7"}}
	items := Due(now, d, m, 30*day)
	want := map[string]string{AcceptanceTask: "workOrders/7", "pm": "workOrders/42", "esa": ""}
	if len(items) != len(want) {
		t.Fatalf("Due(...) = %d items, want %d: %v", len(items), len(want), items)
	}
	for _, it := range items {
		order, ok := want[it.GetTaskId()]
		if !ok {
			t.Errorf("Due(...) has task %q, want only %v", it.GetTaskId(), want)
		}
		if it.GetWorkOrder() != order {
			t.Errorf("Due(...) %s work order = %q, want %q", it.GetTaskId(), it.GetWorkOrder(), order)
		}
		if it.GetDevice() != "devices/pump-7" || it.GetModel() != "models/bd-alaris-8100" || !it.GetHighRisk() ||
			it.GetLifeSupport() || it.GetEmNumber() != 17 || it.GetLocation() != "4W-412" {
			t.Errorf("Due(...) %s = %v, want device, model, risk, em number and location copied", it.GetTaskId(), it)
		}
	}
	if it := dueFor(items, "pm"); it.GetKind() != kindPM || !it.GetOverdue() {
		t.Errorf("Due(...) pm = %v, overdue %v; want pm-inspection, overdue (never done in 400 days)", it.GetKind(), it.GetOverdue())
	}
}

func TestIndicators(t *testing.T) {
	m := plan(
		&pb.MaintenanceTask{Id: "a", Conditions: []*pb.Condition{{Indicator: "battery"}, {Indicator: "alarm/occlusion"}}},
		&pb.MaintenanceTask{Id: "b", IntervalDays: 10},
		&pb.MaintenanceTask{Id: "c", Conditions: []*pb.Condition{{Indicator: "telemetry/x"}, {Indicator: "battery"}}},
	)
	want := []string{"battery", "alarm/occlusion", "telemetry/x"}
	if got := Indicators(m); !equal(got, want) {
		t.Errorf("Indicators(...) = %q, want %q", got, want)
	}
}

// The trend of the second indicator is read from the second value of the
// samples.
func TestDueConditionIndicatorOrder(t *testing.T) {
	m := plan(
		&pb.MaintenanceTask{Id: "battery", Kind: kindBattery, Conditions: []*pb.Condition{{Indicator: "battery", Op: "<=", Threshold: 5}}},
		&pb.MaintenanceTask{Id: "filter", Kind: kindFilter, Conditions: []*pb.Condition{
			{Indicator: "telemetry/filter/hours", Op: ">=", Threshold: 250, TrendDays: 7}}},
	)
	h := &History{}
	for d := 10; d >= 0; d-- {
		h.Add(Sample{Time: now.Add(-time.Duration(d) * day), Values: []float64{50 + float64(d), 220 - 7.5*float64(d)}}, 0)
	}
	dev := &Device{ID: "cpap-1", LastSeen: now, CreateTime: now.Add(-100 * day), History: h, Record: inService(),
		Indicators: map[string]float64{"battery": 50, "telemetry/filter/hours": 220}}
	items := Due(now, dev, m, 30*day)
	if it := dueFor(items, "filter"); it == nil || !sameTime(it.GetDueTime(), now.Add(4*day)) {
		t.Errorf("Due(...) filter = %v, want due in 4 days", it)
	}
	if it := dueFor(items, "battery"); it != nil {
		t.Errorf("Due(...) battery = %v, want nothing due", it)
	}
}

func TestProject(t *testing.T) {
	tests := []struct {
		remaining, perDay float64
		want              time.Duration
	}{
		{80, 8, 10 * day},
		{12, 24, 12 * time.Hour},
		{100, 0, 3650 * day},
		{100, -1, 3650 * day},
		{1e6, 0.1, 3650 * day},
	}
	for _, tc := range tests {
		if got := project(now, tc.remaining, tc.perDay); !got.Equal(now.Add(tc.want)) {
			t.Errorf("project(%v, %v) = now+%v, want now+%v", tc.remaining, tc.perDay, got.Sub(now), tc.want)
		}
	}
}

func TestSortDue(t *testing.T) {
	item := func(id string, overdue, life, high bool, em int32, due time.Duration) *pb.DueItem {
		return &pb.DueItem{Device: "devices/" + id, TaskId: "pm", Overdue: overdue, LifeSupport: life, HighRisk: high || life,
			EmNumber: em, DueTime: timestamppb.New(now.Add(due))}
	}
	items := []*pb.DueItem{
		item("low-soon", false, false, false, 12, day),
		item("low-em20", false, false, false, 20, 9*day),
		item("high", false, false, true, 12, 9*day),
		item("life", false, true, false, 12, 9*day),
		item("overdue-low", true, false, false, 12, -40*day),
		item("overdue-life", true, true, false, 12, -31*day),
		item("low-later", false, false, false, 12, 2*day),
		item("high-em17", false, false, true, 17, 20*day),
		item("overdue-high-late", true, false, true, 17, -31*day),
		item("overdue-high-early", true, false, true, 17, -60*day),
	}
	SortDue(items)
	want := []string{"overdue-life", "overdue-high-early", "overdue-high-late", "overdue-low",
		"life", "high-em17", "high", "low-em20", "low-soon", "low-later"}
	var got []string
	for _, it := range items {
		got = append(got, strings.TrimPrefix(it.GetDevice(), "devices/"))
	}
	if !equal(got, want) {
		t.Errorf("SortDue(...) = %q\nwant %q", got, want)
	}
}

// Equal items fall back to device then task, so the list is stable
// across runs whatever the input order.
func TestSortDueTies(t *testing.T) {
	mk := func(dev, task string) *pb.DueItem {
		return &pb.DueItem{Device: dev, TaskId: task, DueTime: timestamppb.New(now)}
	}
	items := []*pb.DueItem{mk("devices/b", "pm"), mk("devices/a", "pm"), mk("devices/a", "esa")}
	SortDue(items)
	if items[0].GetTaskId() != "esa" || items[1].GetDevice() != "devices/a" || items[2].GetDevice() != "devices/b" {
		t.Errorf("SortDue(ties) = %v, want a/esa, a/pm, b/pm", items)
	}
}

func TestHours(t *testing.T) {
	for _, tc := range []struct {
		h    float64
		want string
	}{{2000, "2000"}, {99.94, "99.9"}, {0, "0.0"}, {math.Round(1874.4), "1874"}} {
		if got := hours(tc.h); got != tc.want {
			t.Errorf("hours(%v) = %q, want %q", tc.h, got, tc.want)
		}
	}
}

// The longest interval ValidateModel accepts does not overflow: done
// yesterday, it is due in a century, not in the past.
func TestDueLongestInterval(t *testing.T) {
	m := plan(&pb.MaintenanceTask{Id: "esa", Kind: kindSafety, IntervalDays: maxDays, WindowAfterDays: maxDays - 1,
		Conditions: []*pb.Condition{{Indicator: "battery", Op: "<=", Threshold: 5, TrendDays: maxDays}}})
	if err := ValidateModel("test", m); err != nil {
		t.Fatalf("ValidateModel(longest) = %v", err)
	}
	d := &Device{ID: "pump-1", LastSeen: now, CreateTime: now.Add(-day), Record: inService(done("esa", now.Add(-day), 0)),
		Indicators: map[string]float64{"battery": 100}, History: indicatorUntilNow(100, -1e-3)}
	if items := Due(now, d, m, 30*day); len(items) != 0 {
		t.Errorf("Due(...) = %v, want nothing due", items)
	}
	items := Due(now, d, m, 200*365*day)
	if len(items) != 1 || !items[0].GetDueTime().AsTime().After(now) || items[0].GetOverdue() {
		t.Errorf("Due(..., 200 years) = %v, want one item due in the future, not overdue", items)
	}
}

// A condition read before the task was last done does not make it due
// again: the device has not reported since the work (its filter counter is
// reset at its next report).
func TestDueConditionReadBeforeTheWork(t *testing.T) {
	m := plan(&pb.MaintenanceTask{Id: "filter", Kind: kindFilter, Conditions: []*pb.Condition{
		{Indicator: "telemetry/filter/hours", Op: ">=", Threshold: 250}}})
	for _, tc := range []struct {
		name     string
		lastSeen time.Time
		wantDue  bool
	}{
		{"reported before the work", now.Add(-2 * time.Hour), false},
		{"reported after the work, still met", now, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &Device{ID: "cpap-1", LastSeen: tc.lastSeen, CreateTime: now.Add(-100 * day), Record: inService(done("filter", now.Add(-time.Hour), 0)),
				Indicators: map[string]float64{"telemetry/filter/hours": 260}}
			if got := dueFor(Due(now, d, m, day), "filter") != nil; got != tc.wantDue {
				t.Errorf("Due(...) has filter = %v, want %v", got, tc.wantDue)
			}
		})
	}
}
