package program

import (
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/medfleet/medfleet/coap"
	"github.com/medfleet/medfleet/internal/etcdtest"
	"github.com/medfleet/medfleet/internal/telemetry"
	"github.com/medfleet/medfleet/inventory"
	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// pumpModel: a PM every 365 days or 100 operating hours, whichever first,
// with a 5-day window after.
func pumpModel() *pb.DeviceModel {
	return &pb.DeviceModel{Model: "Test Pump", Profile: "infusion-pump", EmNumber: 14, HighRisk: true,
		Tasks: []*pb.MaintenanceTask{{Id: "pm", Kind: pb.TaskKind_TASK_KIND_PM_INSPECTION, IntervalDays: 365, IntervalHours: 100, WindowAfterDays: 5}}}
}

type fixture struct {
	etcd *etcdtest.Etcd
	clk  *clock
	inv  *inventory.Inventory
	prog *Program
	seq  uint64
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{etcd: etcdtest.Start(t, ""), clk: &clock{t: time.Date(2026, 1, 1, 8, 0, 0, 0, time.UTC)}}
	var err error
	f.inv, err = inventory.New(inventory.DefaultConfig(), f.etcd.Client, slog.New(slog.DiscardHandler), f.clk.Now, telemetry.Noop())
	if err != nil {
		t.Fatal(err)
	}
	if err := f.inv.Load(t.Context()); err != nil {
		t.Fatal(err)
	}
	f.prog = f.newProgram(t)
	return f
}

// newProgram is a medfleetd (re)starting over the same etcd.
func (f *fixture) newProgram(t *testing.T) *Program {
	t.Helper()
	p, err := New(DefaultConfig(), f.etcd.Client, f.inv, slog.New(slog.DiscardHandler), f.clk.Now, telemetry.Noop())
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Load(t.Context()); err != nil {
		t.Fatal(err)
	}
	return p
}

// report registers dev (once) and reports its cumulative usage and firmware.
func (f *fixture) report(t *testing.T, dev string, usageHours float64, fw string) {
	t.Helper()
	ctx := t.Context()
	if _, err := f.inv.Register(ctx, dev, &coap.Registration{Profile: "infusion-pump", Model: "Test Pump", Firmware: fw}, time.Hour); err != nil {
		t.Fatal(err)
	}
	f.seq++
	u := usageHours * 3600
	if _, err := f.inv.Report(ctx, dev, &coap.Report{Seq: f.seq, Usage: &u, Firmware: fw}); err != nil {
		t.Fatal(err)
	}
}

func openOrders(p *Program, dev string) []*pb.WorkOrder {
	var out []*pb.WorkOrder
	for _, o := range p.WorkOrders("devices/"+dev, 0) {
		if isOpen(o) {
			out = append(out, o)
		}
	}
	return out
}

func TestScheduleIsDuplicateFreeAcrossRestarts(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	if _, err := f.prog.ApplyModel(ctx, "test-pump", pumpModel()); err != nil {
		t.Fatal(err)
	}
	f.report(t, "pump-1", 10, "1.0")

	// A new device needs its acceptance check first.
	f.prog.Schedule(ctx)
	f.prog.Schedule(ctx)
	orders := openOrders(f.prog, "pump-1")
	if len(orders) != 1 || orders[0].GetType() != pb.WorkOrderType_WORK_ORDER_TYPE_ACCEPTANCE {
		t.Fatalf("open orders after two schedules = %v, want one acceptance", orders)
	}
	if c := f.prog.counts; c.tasks[[2]string{"due", "high"}] != 1 || c.openOrders != 1 {
		t.Errorf("metrics after scheduling = %+v, want 1 high-risk task due and 1 open order", c)
	}
	acc := orders[0]
	if _, err := f.prog.Complete(ctx, name(acc), Completion{By: "users/tech", Results: []*pb.TaskResult{{TaskId: "acceptance", Passed: true}}}, ""); err != nil {
		t.Fatal(err)
	}
	if st := f.prog.Record("pump-1").GetServiceState(); st != pb.ServiceState_SERVICE_STATE_IN_SERVICE {
		t.Fatalf("service state after a passed acceptance = %v, want in service", st)
	}

	// Usage passes the 100 h interval: one PM order, even with a restarted
	// medfleetd and a second replica scheduling at the same time.
	f.report(t, "pump-1", 120, "1.0")
	restarted := f.newProgram(t)
	var wg sync.WaitGroup
	for _, p := range []*Program{f.prog, restarted, f.newProgram(t)} {
		wg.Go(func() { p.Schedule(ctx) })
	}
	wg.Wait()
	f.prog = f.newProgram(t) // sees what the others wrote (a running one follows a watch)
	orders = openOrders(f.prog, "pump-1")
	if len(orders) != 1 || orders[0].GetTaskIds()[0] != "pm" || orders[0].GetReason() != pb.DueReason_DUE_REASON_USAGE {
		t.Fatalf("open orders after usage passed the interval = %v, want one PM for usage", orders)
	}
	if due := f.prog.Due(DueQuery{Within: 24 * time.Hour}); len(due) != 1 || due[0].GetWorkOrder() != orders[0].GetName() {
		t.Errorf("due list = %v, want the PM with its open order", due)
	}

	// Completing it resets the task's clock: nothing due; the record has
	// the usage at completion.
	if _, err := f.prog.Complete(ctx, name(orders[0]), Completion{By: "users/tech", Results: []*pb.TaskResult{{TaskId: "pm", Passed: true}}, MinutesSpent: 40}, ""); err != nil {
		t.Fatal(err)
	}
	// (It falls due again in 100 h of use: at the 120 h/day this device
	// has averaged, within a day, but not within the hour.)
	if due := f.prog.Due(DueQuery{Within: time.Hour}); len(due) != 0 {
		t.Errorf("due list after the PM = %v, want empty", due)
	}
	ts := f.prog.Record("pump-1").GetTasks()
	if len(ts) != 1 || ts[0].GetLastDoneUsageHours() != 120 {
		t.Errorf("task state = %v, want pm done at 120 h", ts)
	}
	f.prog.Schedule(ctx)
	if o := openOrders(f.prog, "pump-1"); len(o) != 0 {
		t.Errorf("open orders right after the PM = %v, want none", o)
	}

	// A firmware upgrade sends the device back to needs_check.
	f.report(t, "pump-1", 121, "2.0")
	f.prog.Schedule(ctx)
	if st := f.prog.Record("pump-1").GetServiceState(); st != pb.ServiceState_SERVICE_STATE_NEEDS_CHECK {
		t.Errorf("service state after a firmware upgrade = %v, want needs_check", st)
	}
}

func TestRepairRecordsAFailure(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	if _, err := f.prog.ApplyModel(ctx, "test-pump", pumpModel()); err != nil {
		t.Fatal(err)
	}
	f.report(t, "pump-2", 50, "1.0")
	o, err := f.prog.CreateWorkOrder(ctx, &pb.WorkOrder{Device: "devices/pump-2", Type: pb.WorkOrderType_WORK_ORDER_TYPE_REPAIR, Major: true}, "users/alice")
	if err != nil {
		t.Fatal(err)
	}
	var fe *FieldError
	if _, err := f.prog.Complete(ctx, name(o), Completion{}, ""); !errors.As(err, &fe) || fe.Field != "failure_code" {
		t.Errorf("completing a repair without a failure code = %v, want a FieldError on failure_code", err)
	}
	if _, err := f.prog.Complete(ctx, name(o), Completion{FailureCode: "occlusion-sensor", MinutesSpent: 90}, ""); err != nil {
		t.Fatal(err)
	}
	r := f.prog.Record("pump-2")
	if len(r.GetFailures()) != 1 || r.GetFailures()[0].GetUsageHours() != 50 || r.GetServiceState() != pb.ServiceState_SERVICE_STATE_NEEDS_CHECK {
		t.Errorf("record after a major repair = %v, want one failure at 50 h and needs_check", r)
	}
	if _, err := f.prog.Complete(ctx, name(o), Completion{FailureCode: "x"}, ""); !errors.Is(err, ErrState) {
		t.Errorf("completing twice = %v, want ErrState", err)
	}
	if _, err := f.prog.Cancel(ctx, name(o), "", ""); !errors.As(err, &fe) {
		t.Errorf("cancel without a reason = %v, want a FieldError", err)
	}
}

func TestCompliance(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	if _, err := f.prog.ApplyModel(ctx, "test-pump", pumpModel()); err != nil {
		t.Fatal(err)
	}
	start := f.clk.Now()
	for _, d := range []string{"pump-a", "pump-b"} {
		f.report(t, d, 1, "1.0")
		if _, err := f.prog.CreateWorkOrder(ctx, &pb.WorkOrder{Device: "devices/" + d, Type: pb.WorkOrderType_WORK_ORDER_TYPE_PREVENTIVE, TaskIds: []string{"pm"}}, "users/alice"); err != nil {
			t.Fatal(err)
		}
	}
	done := f.prog.WorkOrders("devices/pump-a", 0)[0]
	if _, err := f.prog.Complete(ctx, name(done), Completion{}, ""); err != nil {
		t.Fatal(err)
	}
	f.clk.Add(48 * time.Hour) // pump-b's window has ended
	r, err := f.prog.Compliance(start.Add(-time.Hour), f.clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	if o := r.GetOverall(); o.GetScheduled() != 2 || o.GetOnTime() != 1 || o.GetMissed() != 1 || o.GetOnTimePercent() != 50 {
		t.Errorf("compliance = %v, want 1 of 2 on time, 1 missed", o)
	}
	if h := r.GetHighRisk(); h.GetScheduled() != 2 {
		t.Errorf("high-risk figures = %v, want both orders (the model is high risk)", h)
	}
}

func name(o *pb.WorkOrder) string { return o.GetName()[len("workOrders/"):] }

func TestReliability(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	if _, err := f.prog.ApplyModel(ctx, "test-pump", pumpModel()); err != nil {
		t.Fatal(err)
	}
	// Occlusion-sensor repairs at these operating hours on six pumps; two
	// more pumps have run 900 h without one (censored).
	failures := map[string][]float64{"p1": {300}, "p2": {420, 900}, "p3": {510}, "p4": {610}, "p5": {700}, "p6": {380}, "p7": nil, "p8": nil}
	for dev, at := range failures {
		for _, h := range at {
			f.report(t, dev, h, "1.0")
			o, err := f.prog.CreateWorkOrder(ctx, &pb.WorkOrder{Device: "devices/" + dev, Type: pb.WorkOrderType_WORK_ORDER_TYPE_REPAIR}, "users/tech")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.prog.Complete(ctx, name(o), Completion{FailureCode: "occlusion-sensor"}, ""); err != nil {
				t.Fatal(err)
			}
		}
		f.report(t, dev, 1000, "1.0")
	}
	r, err := f.prog.Reliability("test-pump", 0.9)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.GetModes()) != 1 {
		t.Fatalf("modes = %v, want occlusion-sensor only", r.GetModes())
	}
	m := r.GetModes()[0]
	// 7 failures (p2 twice: 420 h, then 480 h more); censored: 1000-h
	// runs since the last failure on p1, p3-p6 and p2 (100 h), and p7, p8.
	if m.GetFailures() != 7 || m.GetSuspensions() != 8 {
		t.Errorf("failures %d, suspensions %d; want 7 and 8", m.GetFailures(), m.GetSuspensions())
	}
	if m.GetError() != "" || m.GetBeta() <= 1 || m.GetEtaHours() <= 0 || m.GetTaskId() != "pm" || m.GetIntervalHours() != 100 {
		t.Errorf("fit = %v, want a wear-out fit judged against the pm's 100 h", m)
	}
	if m.GetVerdict() != "too-short" {
		t.Errorf("verdict on a 100 h interval for a part that lasts about 500 h = %q, want too-short", m.GetVerdict())
	}
	if _, err := f.prog.Reliability("test-pump", 1.5); err == nil {
		t.Error("target 1.5 accepted")
	}
}
