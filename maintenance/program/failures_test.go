package program

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/medfleet/medfleet/coap"
	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// TestFailurePrediction: pumps wear out; each repair stores the pump's
// run-to-failure trajectory; a model trained on them predicts that a worn
// pump fails soon and a fresh one does not.
func TestFailurePrediction(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	m := pumpModel()
	m.PredictFailures = true
	if _, err := f.prog.ApplyModel(ctx, "test-pump", m); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	usage := map[string]float64{}
	// step runs dev for 2 operating hours (one hour of calendar time) with
	// its wear at w, then lets the scheduler sample it.
	step := func(dev string, w float64) {
		usage[dev] += 2
		f.seq++
		u := usage[dev] * 3600
		r := &coap.Report{Seq: f.seq, Usage: &u, Telemetry: map[string]float64{
			"wear": w + rng.NormFloat64()*0.02, "temperature": 30 + rng.NormFloat64()}}
		if _, err := f.inv.Report(ctx, dev, r); err != nil {
			t.Fatal(err)
		}
		f.clk.Add(time.Hour)
		f.prog.Schedule(ctx)
	}
	register := func(dev string) {
		if _, err := f.inv.Register(ctx, dev, &coap.Registration{Profile: "infusion-pump", Model: "Test Pump"}, 24*time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	// Eight pumps run to failure after 80-120 h; wear grows from 0 to 1.
	for i := range 8 {
		dev := "worn-" + string(rune('a'+i))
		register(dev)
		life := 80 + 40*rng.Float64()
		for h := 0.0; h < life; h += 2 {
			step(dev, h/life)
		}
		o, err := f.prog.CreateWorkOrder(ctx, &pb.WorkOrder{Device: "devices/" + dev, Type: pb.WorkOrderType_WORK_ORDER_TYPE_REPAIR}, "users/tech")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.prog.Complete(ctx, name(o), Completion{FailureCode: "motor"}, ""); err != nil {
			t.Fatal(err)
		}
	}
	fm, err := f.prog.TrainFailureModel(ctx, "test-pump")
	if err != nil {
		t.Fatal(err)
	}
	if fm.GetTrajectories() != 8 {
		t.Errorf("trained on %d trajectories, want 8", fm.GetTrajectories())
	}

	// A pump at 90 % of a 100 h life, and one at 10 %.
	for _, d := range []struct {
		id   string
		wear float64
	}{{"old", 0.9}, {"new", 0.1}} {
		register(d.id)
		for h := 0.0; h < 100*d.wear; h += 2 {
			step(d.id, h/100)
		}
	}
	// Calendar time has been passing at 2 h of use per hour: 48 h a day.
	// The old pump has about 10 h left (a few hours of calendar time), the
	// new one about 90 h (almost two days).
	predicted := map[string]bool{}
	for _, it := range f.prog.Due(DueQuery{Within: 12 * time.Hour}) {
		if it.GetReason() == pb.DueReason_DUE_REASON_PREDICTED_FAILURE {
			predicted[it.GetDevice()] = true
		}
	}
	if !predicted["devices/old"] || predicted["devices/new"] {
		t.Errorf("predicted failures within 12 h: %v, want devices/old and not devices/new", predicted)
	}

	// A restarted medfleetd loads the trained model.
	if p := f.newProgram(t); len(p.failureModels) != 1 {
		t.Errorf("failure models after a restart: %d, want 1", len(p.failureModels))
	}
}
