package inventory

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/medfleet/medfleet/coap"
	"github.com/medfleet/medfleet/internal/etcdtest"
	"github.com/medfleet/medfleet/internal/telemetry"
)

// BenchmarkReport is the inventory's share of one report: the device's lock,
// the usage fold, the status update and marking it dirty, over a fleet of
// 10,000 devices.
func BenchmarkReport(b *testing.B) {
	etcd := etcdtest.Start(b, "")
	inv, err := New(DefaultConfig(), etcd.Client, discard(), time.Now, telemetry.Noop())
	if err != nil {
		b.Fatal(err)
	}
	const fleet = 10000
	ids := make([]string, fleet)
	for i := range ids {
		ids[i] = fmt.Sprintf("pump-%05d", i)
		if _, err := inv.Register(context.Background(), ids[i], &coap.Registration{Profile: "infusion-pump", Model: "Alaris 8100"}, time.Hour); err != nil {
			b.Fatal(err)
		}
	}
	battery := 80.0
	ctx := context.Background()
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		usage := float64(n)
		seq := uint64(n/fleet + 1)
		if _, err := inv.Report(ctx, ids[n%fleet], &coap.Report{Seq: seq, Usage: &usage, State: coap.StateInUse, Battery: &battery}); err != nil {
			b.Fatal(err)
		}
		n++
	}
}
