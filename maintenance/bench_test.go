package maintenance

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// fleet is n devices of the example models, half pumps and half CPAPs,
// each with 24 daily samples and, for every other one, a maintenance
// record.
func fleet(tb testing.TB, n int) ([]*Device, []*pb.DeviceModel) {
	var models []*pb.DeviceModel
	for _, f := range []string{"infusion-pump.yaml", "cpap.yaml"} {
		id, m, err := ParseModelYAML(readExample(tb, f))
		if err != nil {
			tb.Fatal(err)
		}
		m.Name = "models/" + id
		models = append(models, m)
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	devices := make([]*Device, n)
	for i := range devices {
		m := models[i%2]
		indicators := Indicators(m)
		perDay := 2 + 8*rnd.Float64()
		age := time.Duration(30+rnd.IntN(1500)) * day
		usage := perDay * age.Hours() / 24
		d := &Device{ID: fmt.Sprintf("dev-%06d", i), LastSeen: now, CreateTime: now.Add(-age), UsageHours: usage,
			History: &History{}, Indicators: map[string]float64{}, Location: "4W-412"}
		level := 100 * rnd.Float64()
		slope := 5 * rnd.Float64()
		for s := 23; s >= 0; s-- {
			vals := make([]float64, len(indicators))
			for k := range vals {
				vals[k] = level - slope*float64(s)
			}
			d.History.Add(Sample{Time: now.Add(-time.Duration(s) * day), UsageHours: usage - perDay*float64(s)*(0.8+0.4*rnd.Float64()),
				Values: vals}, time.Hour)
		}
		for _, ind := range indicators {
			d.Indicators[ind] = level
		}
		if i%2 == 0 {
			rec := inService()
			for _, task := range m.GetTasks() {
				ago := time.Duration(rnd.IntN(400)) * day
				rec.Tasks = append(rec.Tasks, &pb.TaskState{TaskId: task.GetId(), LastDoneTime: timestamppb.New(now.Add(-ago)),
					LastDoneUsageHours: usage - perDay*ago.Hours()/24})
			}
			d.Record = rec
		}
		devices[i] = d
	}
	return devices, models
}

// BenchmarkDue100k computes the due list of a fleet of 100,000 devices
// over the next 30 days and sorts it, as the scheduler does on each run.
func BenchmarkDue100k(b *testing.B) {
	const n = 100_000
	devices, models := fleet(b, n)
	var items []*pb.DueItem
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		items = make([]*pb.DueItem, 0, n)
		for i, d := range devices {
			items = append(items, Due(now, d, models[i%2], 30*day)...)
		}
		SortDue(items)
	}
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/list")
	b.ReportMetric(float64(len(items)), "items/list")
}

// The benchmark's fleet is a plausible one: some, not all, of it is due.
func TestFleetDue(t *testing.T) {
	devices, models := fleet(t, 1000)
	var items []*pb.DueItem
	reasons := map[pb.DueReason]int{}
	for i, d := range devices {
		for _, it := range Due(now, d, models[i%2], 30*day) {
			items = append(items, it)
			reasons[it.GetReason()]++
		}
	}
	SortDue(items)
	if len(items) < len(devices)/2 || len(items) > 4*len(devices) {
		t.Errorf("Due over %d devices = %d items, want between %d and %d", len(devices), len(items), len(devices)/2, 4*len(devices))
	}
	for _, r := range []pb.DueReason{pb.DueReason_DUE_REASON_ACCEPTANCE, pb.DueReason_DUE_REASON_CALENDAR,
		pb.DueReason_DUE_REASON_USAGE, pb.DueReason_DUE_REASON_CONDITION} {
		if reasons[r] == 0 {
			t.Errorf("Due over the fleet: no item for %v (%v)", r, reasons)
		}
	}
	for i := 1; i < len(items); i++ {
		if items[i].GetOverdue() && !items[i-1].GetOverdue() {
			t.Fatalf("SortDue: item %d is overdue after one that is not", i)
		}
	}
}
