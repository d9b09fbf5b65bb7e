package server

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/medfleet/medfleet/agent"
	"github.com/medfleet/medfleet/internal/simfleet"
	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// TestLocationFromReaders runs simulated RFID readers and tagged pumps over
// real CoAP against the server, in the sample facility: a pump's location
// follows its tag as it walks, without flapping back and forth, goes stale
// when no reader sees it, and FindNearest ranks pumps by walking distance.
func TestLocationFromReaders(t *testing.T) {
	if testing.Short() {
		t.Skip("walks simulated pumps through a facility in real time")
	}
	cfg := testConfig(t, t.TempDir())
	cfg.Inventory.ReportInterval = time.Second
	cfg.Location.Dwell, cfg.Location.StaleAfter = 1500*time.Millisecond, 5*time.Second
	ts := startServer(t, cfg)
	ctx := t.Context()
	doc, err := os.ReadFile("../examples/facility/hospital.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.srv.ApplyFacility(ctx, doc); err != nil {
		t.Fatal(err)
	}
	fac := ts.srv.Facility()

	// 30 devices: pumps, CPAPs and the readers sim-rfid-0003, -0013 and
	// -0023, which watch 4 West.
	sc := agent.SimConfig{Server: ts.srv.Addrs().CoAP.String(), Insecure: true, Devices: 30, Interval: time.Second, TimeScale: 1, Seed: 3}
	log := slog.New(slog.DiscardHandler)
	probe, err := agent.NewSimulator(sc, log)
	if err != nil {
		t.Fatal(err)
	}
	sc.World = simfleet.World(fac, probe.Devices())
	if err := simfleet.TagDevices(ctx, ts.srv.Inventory(), sc.World, probe.Devices()); err != nil {
		t.Fatal(err)
	}
	sim, err := agent.NewSimulator(sc, log)
	if err != nil {
		t.Fatal(err)
	}
	// Every tagged device waits in a room no reader covers, out of the way.
	for id := range sc.World.Tags {
		sim.Place(id, "4w-404-bed")
		sim.Hide(id)
	}
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sim.Run(runCtx) }()
	stopSim := sync.OnceValue(func() error { stop(); return <-done })
	t.Cleanup(func() { _ = stopSim() })

	loc := pb.NewLocationServiceClient(ts.conn)
	const pump = "sim-pump-0001"
	watch, err := loc.WatchLocations(ctx, &pb.WatchLocationsRequest{Unit: "4-west"})
	if err != nil {
		t.Fatal(err)
	}
	var (
		movesMu sync.Mutex
		moves   []string
	)
	go func() {
		for {
			ev, err := watch.Recv()
			if err != nil {
				return
			}
			if ev.GetKind() == pb.LocationEvent_KIND_MOVED && ev.GetLocation().GetDevice() == "devices/"+pump {
				movesMu.Lock()
				moves = append(moves, ev.GetLocation().GetPlace().GetZone())
				movesMu.Unlock()
			}
		}
	}()
	locate := func() *pb.DeviceLocation {
		l, err := loc.Locate(ctx, &pb.LocateRequest{Device: pump})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	sim.Place(pump, "4w-clean")
	waitFor(t, 20*time.Second, "pump located in the clean utility room", func() bool { return locate().GetPlace().GetZone() == "4w-clean" })

	// It walks to the far corridor, past readers that see it strongly in
	// each zone and faintly through walls.
	sim.MoveTo(pump, "4w-corridor-c")
	waitFor(t, 60*time.Second, "pump followed to 4w-corridor-c", func() bool {
		l := locate()
		return l.GetPlace().GetZone() == "4w-corridor-c" && l.GetSource() == pb.LocationSource_LOCATION_SOURCE_RFID
	})
	time.Sleep(3 * time.Second) // it stays: nothing more may move it
	if l := locate(); l.GetPlace().GetZone() != "4w-corridor-c" {
		t.Fatalf("pump moved on to %s while standing in 4w-corridor-c", l.GetPlace().GetZone())
	}
	_ = stopSim()
	movesMu.Lock()
	moves = slices.Clone(moves)
	movesMu.Unlock()
	// No flapping: the path through the zones never goes back to where it
	// just came from.
	for i := 2; i < len(moves); i++ {
		if moves[i] == moves[i-2] {
			t.Errorf("location flapped: %v", moves)
			break
		}
	}
	if len(moves) < 2 || moves[len(moves)-1] != "4w-corridor-c" {
		t.Errorf("moves %v, want a walk ending in 4w-corridor-c", moves)
	}

	// With the readers stopped, the location goes stale.
	waitFor(t, 15*time.Second, "location stale", func() bool { return locate().GetStale() })

	// FindNearest ranks by walking distance over the facility's graph.
	resp, err := loc.FindNearest(ctx, &pb.FindNearestRequest{Profile: "infusion-pump", Near: "4w-401", IncludeStale: true, Limit: 50,
		Availability: locate().GetAvailability()})
	if err != nil {
		t.Fatal(err)
	}
	from, _ := fac.Resolve("4w-401")
	var dists []float64
	found := false
	for _, d := range resp.GetDevices() {
		want, ok := fac.Distance(from, d.GetLocation().GetPlace().GetZone())
		if !ok || fmt.Sprintf("%.3f", want) != fmt.Sprintf("%.3f", d.GetDistanceM()) {
			t.Errorf("%s in %s: distance %.1f, facility says %.1f", d.GetLocation().GetDevice(), d.GetLocation().GetPlace().GetZone(), d.GetDistanceM(), want)
		}
		dists = append(dists, d.GetDistanceM())
		found = found || d.GetLocation().GetDevice() == "devices/"+pump
	}
	if !slices.IsSorted(dists) || !found {
		t.Errorf("FindNearest: distances %v (sorted: want), pump found %v", dists, found)
	}
}
