package location

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/medfleet/medfleet/coap"
	"github.com/medfleet/medfleet/inventory/facility"
	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// bigFacility is 4 floors of 10 units of 12 rooms of 4 zones (1,920
// zones), each unit a corridor of rooms, units joined end to end, floors
// joined by stairs; one reader antenna per zone.
func bigFacility() string {
	var b strings.Builder
	b.WriteString("sites:\n  - id: s\n    name: S\n    buildings:\n      - id: b\n        name: B\n        floors:\n")
	var conns, antennas []string
	prev := ""
	for f := range 4 {
		fmt.Fprintf(&b, "          - id: f%d\n            name: F%d\n            level: %d\n            units:\n", f, f, f)
		for u := range 10 {
			fmt.Fprintf(&b, "              - id: f%du%d\n                name: U%d\n                par: {infusion-pump: 6}\n                rooms:\n", f, u, u)
			for r := range 12 {
				fmt.Fprintf(&b, "                  - id: f%du%dr%d\n                    name: R%d\n                    zones:\n", f, u, r, r)
				for z := range 4 {
					id := fmt.Sprintf("f%du%dr%dz%d", f, u, r, z)
					x, y := float64(u*60+r*5), float64(z*3)
					fmt.Fprintf(&b, "                      - {id: %s, name: Z, x: %g, y: %g, w: 2, h: 2}\n", id, x, y)
					antennas = append(antennas, fmt.Sprintf("\"%s\": %s", id, id))
					if z == 0 && prev != "" {
						cost := ""
						if strings.Split(prev, "u")[0] != fmt.Sprintf("f%d", f) {
							cost = ", kind: stairs, cost: 30"
						}
						conns = append(conns, fmt.Sprintf("  - {from: %s, to: %s%s}", prev, id, cost))
					}
					if z == 0 {
						prev = id
					}
				}
			}
		}
	}
	b.WriteString("connections:\n" + strings.Join(conns, "\n") + "\n")
	b.WriteString("readers:\n  - device: rd-1\n    antennas: {" + strings.Join(antennas, ", ") + "}\n")
	return b.String()
}

// benchEngine locates n devices at random over the big facility.
func benchEngine(b *testing.B, n int) (*Engine, []string, []string) {
	b.Helper()
	fac, err := facility.Parse([]byte(bigFacility()))
	if err != nil {
		b.Fatal(err)
	}
	var zones []string
	for _, fl := range fac.Floors() {
		for _, z := range fl.Zones {
			zones = append(zones, z.ID)
		}
	}
	d := &dir{tags: map[string]string{}, devices: map[string]Device{}}
	profiles := []string{"infusion-pump", "cpap", "monitor", "wheelchair"}
	rnd := rand.New(rand.NewPCG(1, 2))
	devs := make([]string, n)
	for i := range n {
		id := fmt.Sprintf("dev-%06d", i)
		devs[i] = id
		d.tags[fmt.Sprintf("EPC%08d", i)] = id
		a := pb.Availability_AVAILABILITY_AVAILABLE
		if rnd.IntN(3) == 0 {
			a = pb.Availability_AVAILABILITY_IN_USE
		}
		d.devices[id] = Device{Profile: profiles[i%len(profiles)], Model: "M", Availability: a}
	}
	c := &clock{t: time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)}
	e, err := New(DefaultConfig(), d, slog.New(slog.DiscardHandler), c.now)
	if err != nil {
		b.Fatal(err)
	}
	e.SetFacility(fac)
	for i := range n {
		z := zones[rnd.IntN(len(zones))]
		e.Sightings("rd-1", []coap.Sighting{{Antenna: z, EPC: fmt.Sprintf("EPC%08d", i), RSSI: -50}}, c.t)
	}
	return e, devs, zones
}

// latencies runs op b.N times and reports the median and p99 of each call.
func latencies(b *testing.B, op func(i int)) {
	b.Helper()
	d := make([]time.Duration, 0, b.N)
	i := 0
	for b.Loop() {
		start := time.Now()
		op(i)
		d = append(d, time.Since(start))
		i++
	}
	slices.Sort(d)
	b.ReportMetric(float64(d[len(d)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(d[len(d)*99/100].Microseconds()), "p99-µs")
}

func BenchmarkLocate100k(b *testing.B) {
	e, devs, _ := benchEngine(b, 100_000)
	latencies(b, func(i int) {
		if _, err := e.Locate(devs[i%len(devs)]); err != nil {
			b.Fatal(err)
		}
	})
}

func BenchmarkFindNearest100k(b *testing.B) {
	e, _, zones := benchEngine(b, 100_000)
	latencies(b, func(i int) {
		got, err := e.Nearest(Query{Profile: "infusion-pump", Near: zones[(i*7919)%len(zones)], Limit: 5})
		if err != nil || len(got) != 5 {
			b.Fatalf("Nearest: %d, %v", len(got), err)
		}
	})
}

// BenchmarkSightingToWatch10k: 10,000 tagged devices on the big facility,
// each reader report moving some of them; a watcher measures the time from
// the sighting that moves a device to its event. Reports arrive from four
// goroutines, as the gateway's peers do.
func BenchmarkSightingToWatch10k(b *testing.B) {
	e, devs, zones := benchEngine(b, 10_000)
	e.cfg.Dwell = 0 // every strong sighting elsewhere is a move: the worst case for watchers
	w := e.Watch("", "")
	defer w.Close()
	var lat []time.Duration
	got := make(chan struct{})
	go func() {
		defer close(got)
		for ev := range w.Events() {
			if ev.GetKind() == pb.LocationEvent_KIND_MOVED {
				lat = append(lat, time.Since(ev.GetTime().AsTime()))
				if len(lat) == b.N {
					return
				}
			}
		}
	}()
	b.ResetTimer()
	var wg sync.WaitGroup
	per := (b.N + 3) / 4
	for g := range 4 {
		wg.Go(func() {
			rnd := rand.New(rand.NewPCG(uint64(g), 9))
			for i := g * per; i < min(b.N, (g+1)*per); i++ {
				dev := rnd.IntN(len(devs))
				z := zones[rnd.IntN(len(zones))]
				// Real time, so that the event's time is the sighting's.
				e.Sightings("rd-1", []coap.Sighting{{Antenna: z, EPC: fmt.Sprintf("EPC%08d", dev), RSSI: -40}}, time.Now())
			}
		})
	}
	wg.Wait()
	select {
	case <-got:
	case <-time.After(time.Second): // a sighting in the zone a device is in moves nothing
	}
	b.StopTimer()
	if len(lat) == 0 {
		b.Fatal("no events")
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}
