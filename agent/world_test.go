package agent

import (
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/medfleet/medfleet/coap"
)

// testClock is a world's clock that the test moves.
type testClock struct{ t time.Time }

func (c *testClock) now() time.Time      { return c.t }
func (c *testClock) add(d time.Duration) { c.t = c.t.Add(d) }
func newTestClock() (*testClock, func() time.Time) {
	c := &testClock{t: t0}
	return c, c.now
}

// lineWorld is A-B-C-D on one floor (10, 10 and 5 m), with a longer direct
// walkway from A to C (25 m) that the shortest path avoids, and E, which no
// walkway reaches.
func lineWorld() *World {
	return &World{
		Zones: []WorldZone{
			{ID: "A", Floor: "1", Kind: ZoneKindClean}, {ID: "B", Floor: "1", X: 10, Kind: ZoneKindCorridor},
			{ID: "C", Floor: "1", X: 20, Kind: ZoneKindCorridor}, {ID: "D", Floor: "1", X: 25, Kind: ZoneKindPatient},
			{ID: "E", Floor: "1", X: 90, Kind: ZoneKindPatient},
		},
		Edges: []WorldEdge{{From: "A", To: "B", Metres: 10}, {From: "C", To: "B"}, {From: "C", To: "D", Metres: 5}, {From: "A", To: "C", Metres: 25}},
		Tags:  map[string]string{"pump-1": "3000000000000000000000A1", "pump-2": "3000000000000000000000a2"},
	}
}

// wardWorld is a ward: a corridor c1-c2-c3-c4-c5 (10 m apart) with two
// patient rooms, a clean and a soiled utility room off it (5 m), a lift
// lobby on floor 2 joined to c1, and a reader with antennas in p1, c3 and
// c1.
func wardWorld(tags int) *World {
	w := &World{
		Zones: []WorldZone{
			{ID: "c1", Floor: "1", X: 0, Kind: ZoneKindCorridor}, {ID: "c2", Floor: "1", X: 10, Kind: ZoneKindCorridor},
			{ID: "c3", Floor: "1", X: 20, Kind: ZoneKindCorridor}, {ID: "c4", Floor: "1", X: 30, Kind: ZoneKindCorridor},
			{ID: "c5", Floor: "1", X: 40, Kind: ZoneKindCorridor},
			{ID: "p1", Floor: "1", X: 0, Y: 5, Kind: ZoneKindPatient}, {ID: "p2", Floor: "1", X: 10, Y: 5, Kind: ZoneKindPatient},
			{ID: "clean", Floor: "1", X: 40, Y: 5, Kind: ZoneKindClean}, {ID: "soiled", Floor: "1", X: 30, Y: 5, Kind: ZoneKindSoiled},
			{ID: "lift2", Floor: "2", X: 0, Y: -5, Kind: "lobby"},
		},
		Edges: []WorldEdge{
			{From: "c1", To: "c2"}, {From: "c2", To: "c3"}, {From: "c3", To: "c4"}, {From: "c4", To: "c5"},
			{From: "c1", To: "p1"}, {From: "c2", To: "p2"}, {From: "c5", To: "clean"}, {From: "c4", To: "soiled"},
			{From: "c1", To: "lift2", Metres: 20},
		},
		Antennas: map[string]map[string]string{"rdr": {"1": "p1", "2": "c3", "3": "c1"}},
		Tags:     map[string]string{},
	}
	for i := range tags {
		w.Tags[fmt.Sprintf("dev-%02d", i)] = fmt.Sprintf("30%022X", i+1)
	}
	return w
}

func TestWorldValidate(t *testing.T) {
	zones := []WorldZone{{ID: "a"}, {ID: "b", X: 3, Y: 4}}
	tests := []struct {
		name string
		w    World
		want string
	}{
		{name: "valid", w: World{Zones: zones, Edges: []WorldEdge{{From: "a", To: "b"}},
			Antennas: map[string]map[string]string{"r": {"ant-1": "a"}}, Tags: map[string]string{"d": "30ab"}}},
		{name: "no zones", w: World{}, want: "world.zones: required"},
		{name: "no id", w: World{Zones: []WorldZone{{}}}, want: "world.zones[0].id: required"},
		{name: "same id", w: World{Zones: []WorldZone{{ID: "a"}, {ID: "a"}}}, want: `world.zones[1].id: "a" is also zones[0]`},
		{name: "nan", w: World{Zones: []WorldZone{{ID: "a", X: math.NaN()}}}, want: "world.zones[0]: x and y"},
		{name: "unknown from", w: World{Zones: zones, Edges: []WorldEdge{{From: "x", To: "b", Metres: 1}}}, want: `world.edges[0].from: unknown zone "x"`},
		{name: "unknown to", w: World{Zones: zones, Edges: []WorldEdge{{From: "a", To: "y", Metres: 1}}}, want: `world.edges[0].to: unknown zone "y"`},
		{name: "loop", w: World{Zones: zones, Edges: []WorldEdge{{From: "a", To: "a", Metres: 1}}}, want: "world.edges[0].to: "},
		{name: "negative", w: World{Zones: zones, Edges: []WorldEdge{{From: "a", To: "b", Metres: -1}}}, want: "world.edges[0].metres: -1 is not a length"},
		{name: "no length", w: World{Zones: []WorldZone{{ID: "a"}, {ID: "b"}}, Edges: []WorldEdge{{From: "a", To: "b"}}},
			want: "world.edges[0].metres: 0, and the centres"},
		{name: "antenna zone", w: World{Zones: zones, Antennas: map[string]map[string]string{"r": {"1": "z"}}}, want: `world.antennas[r][1]: unknown zone "z"`},
		{name: "antenna name", w: World{Zones: zones, Antennas: map[string]map[string]string{"r": {"a/b": "a"}}}, want: "world.antennas[r][a/b]: antenna name"},
		{name: "epc", w: World{Zones: zones, Tags: map[string]string{"d": "xyz"}}, want: "world.tags[d]: EPC"},
		{name: "odd epc", w: World{Zones: zones, Tags: map[string]string{"d": "abc"}}, want: "world.tags[d]: EPC"},
		{name: "shared epc", w: World{Zones: zones, Tags: map[string]string{"d": "ab", "e": "AB"}}, want: "world.tags[e]: EPC AB is also on d"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.w.Validate()
			if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("Validate() = %v, want %q", err, tc.want)
			}
		})
	}
	cfg := SimConfig{Server: "127.0.0.1:5683", Insecure: true, Devices: 3, World: &World{Zones: zones, Edges: []WorldEdge{{From: "a", To: "q"}}}}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), `world.edges[0].to: unknown zone "q"`) {
		t.Errorf("SimConfig.Validate() = %v, want the world's error", err)
	}
	if _, err := NewSimulator(cfg, nil); err == nil {
		t.Error("NewSimulator with a bad world = nil error, want one")
	}
}

func TestWorldShortestPath(t *testing.T) {
	w := lineWorld()
	tests := []struct {
		from, to string
		want     []string
		metres   float64
		ok       bool
	}{
		{from: "A", to: "D", want: []string{"A", "B", "C", "D"}, metres: 25, ok: true},
		{from: "D", to: "A", want: []string{"D", "C", "B", "A"}, metres: 25, ok: true},
		{from: "A", to: "C", want: []string{"A", "B", "C"}, metres: 20, ok: true}, // C-B: 10 m between the centres
		{from: "B", to: "B", want: []string{"B"}, metres: 0, ok: true},
		{from: "A", to: "E"},
		{from: "A", to: "nowhere"},
	}
	for _, tc := range tests {
		t.Run(tc.from+"-"+tc.to, func(t *testing.T) {
			got, metres, ok := w.ShortestPath(tc.from, tc.to)
			if !slices.Equal(got, tc.want) || metres != tc.metres || ok != tc.ok {
				t.Errorf("ShortestPath(%q, %q) = %v, %v, %v; want %v, %v, %v", tc.from, tc.to, got, metres, ok, tc.want, tc.metres, tc.ok)
			}
		})
	}
	// Equal paths: the same one every time, whatever the order of the input.
	sq := &World{
		Zones: []WorldZone{{ID: "s"}, {ID: "n1", Y: 1}, {ID: "n2", X: 1}, {ID: "t", X: 1, Y: 1}},
		Edges: []WorldEdge{{From: "s", To: "n2"}, {From: "n2", To: "t"}, {From: "s", To: "n1"}, {From: "n1", To: "t"}},
	}
	want, _, _ := sq.ShortestPath("s", "t")
	slices.Reverse(sq.Zones)
	slices.Reverse(sq.Edges)
	if got, _, _ := sq.ShortestPath("s", "t"); !slices.Equal(got, want) || len(got) != 3 {
		t.Errorf("ShortestPath(s, t) = %v after reordering the input, want %v (3 zones)", got, want)
	}
}

// track steps the world's clock by step until the device stops walking (or
// limit passes) and returns the zones it was seen in, in order, "" for
// between zones, and when it stopped.
func track(t *testing.T, w *worldModel, clk *testClock, device string, step, limit time.Duration) ([]string, time.Time) {
	t.Helper()
	var seen []string
	end := clk.t.Add(limit)
	for ; clk.t.Before(end); clk.add(step) {
		zone, walking, ok := w.position(device)
		if !ok {
			t.Fatalf("position(%q): not ok", device)
		}
		if len(seen) == 0 || seen[len(seen)-1] != zone {
			seen = append(seen, zone)
		}
		if !walking {
			return seen, clk.t
		}
	}
	t.Fatalf("%s still walking after %v", device, limit)
	return nil, time.Time{}
}

func TestWorldMoveTo(t *testing.T) {
	clk, now := newTestClock()
	w := newWorldModel(lineWorld(), 1, []string{"pump-1", "pump-2", "untagged"}, now)
	if !w.place("pump-1", "A") {
		t.Fatal(`place("pump-1", "A") = false`)
	}
	if w.moveTo("untagged", "A") || w.moveTo("pump-1", "nowhere") || w.moveTo("pump-1", "E") {
		t.Error("moveTo of an unknown device, to an unknown or unreachable zone = true, want false")
	}
	// 25 m at 1.2 m/s: 20.833 s.
	start := clk.t
	if !w.moveTo("pump-1", "D") {
		t.Fatal(`moveTo("pump-1", "D") = false`)
	}
	arrival := start.Add(walkTime(25))
	clk.t = arrival.Add(-time.Nanosecond)
	if zone, walking, _ := w.position("pump-1"); zone != "D" || !walking {
		t.Errorf("position 1 ns before arrival = %q, %v; want D, walking", zone, walking)
	}
	clk.t = arrival
	if zone, walking, _ := w.position("pump-1"); zone != "D" || walking {
		t.Errorf("position at arrival = %q, %v; want D, not walking", zone, walking)
	}
	clk.add(48 * time.Hour)
	if zone, walking, _ := w.position("pump-1"); zone != "D" || walking {
		t.Errorf("position 48 h after arrival = %q, %v; want D: a scripted device stays", zone, walking)
	}

	// And back, watched every 50 ms.
	start = clk.t
	w.moveTo("pump-1", "A")
	clk.add(time.Millisecond) // just set off: still in D
	seen, stopped := track(t, w, clk, "pump-1", 50*time.Millisecond, time.Minute)
	if want := []string{"D", "", "C", "", "B", "", "A"}; !slices.Equal(seen, want) {
		t.Errorf("pump-1 walked through %q, want %q", seen, want)
	}
	if arrival := start.Add(walkTime(25)); stopped.Before(arrival) || stopped.Sub(arrival) >= 50*time.Millisecond {
		t.Errorf("pump-1 arrived %v after it set off, want %v", stopped.Sub(start), arrival.Sub(start))
	}
	w.moveTo("pump-1", "D")
	clk.add(walkTime(25))

	// Turned round half-way: 2.5 m into the 5 m from D to C, it is sent
	// back to D, which it reaches 2.5 m later.
	w.moveTo("pump-1", "A")
	clk.add(walkTime(2.5))
	if zone, walking, _ := w.position("pump-1"); zone != "" || !walking {
		t.Fatalf("position 2.5 m from D = %q, %v; want between D and C, walking", zone, walking)
	}
	back := clk.t
	w.moveTo("pump-1", "D")
	seen, stopped = track(t, w, clk, "pump-1", 10*time.Millisecond, time.Minute)
	if want := []string{"", "D"}; !slices.Equal(seen, want) {
		t.Errorf("pump-1 turned round through %q, want %q", seen, want)
	}
	if d := stopped.Sub(back); d < walkTime(2.5) || d > walkTime(2.5)+10*time.Millisecond {
		t.Errorf("pump-1 was back in %v, want %v", d, walkTime(2.5))
	}
}

func TestWorldPlaceHideRelease(t *testing.T) {
	clk, now := newTestClock()
	w := newWorldModel(wardWorld(1), 7, []string{"dev-00"}, now)
	if !w.place("dev-00", "p2") {
		t.Fatal("place = false")
	}
	if zone, walking, ok := w.position("dev-00"); zone != "p2" || walking || !ok {
		t.Errorf("position after place = %q, %v, %v; want p2", zone, walking, ok)
	}
	if w.place("dev-00", "nowhere") || w.hide("nobody") || w.release("nobody") {
		t.Error("place in an unknown zone, hide or release of an unknown device = true, want false")
	}
	w.moveTo("dev-00", "clean")
	clk.add(walkTime(9)) // 5 m out of p2, 4 m along the corridor: between c2 and c3, nearer c2
	if !w.hide("dev-00") {
		t.Fatal("hide = false")
	}
	clk.add(24 * time.Hour)
	if zone, walking, _ := w.position("dev-00"); zone != "c2" || walking {
		t.Errorf("position of the device hidden on its way = %q, %v; want c2, stopped", zone, walking)
	}
	if n := len(w.in[w.g.index["c2"]]); n != 0 {
		t.Errorf("%d devices visible in c2, want the hidden one out of sight", n)
	}
	if !w.release("dev-00") {
		t.Fatal("release = false")
	}
	if n := len(w.in[w.g.index["c2"]]); n != 1 {
		t.Errorf("%d devices visible in c2 after release, want 1", n)
	}
	zones := map[string]bool{}
	for range 24 * 60 {
		clk.add(time.Minute)
		zone, _, _ := w.position("dev-00")
		zones[zone] = true
	}
	if len(zones) < 3 {
		t.Errorf("released device was in %v over a day, want it to wander", zones)
	}
}

// TestWorldClinical follows a device through an infusion: to a patient
// zone when in use, staying there while in use, then the bedside, the
// soiled room and the clean room.
func TestWorldClinical(t *testing.T) {
	clk, now := newTestClock()
	w := newWorldModel(wardWorld(1), 3, []string{"dev-00"}, now)
	m := w.byID["dev-00"]
	w.place("dev-00", "clean")
	w.release("dev-00")
	w.observe(m, coap.StateIdle) // a first report: nothing to do
	w.observe(m, coap.StateInUse)
	stops := func(d time.Duration) []string {
		var out []string
		for end := clk.t.Add(d); clk.t.Before(end); clk.add(10 * time.Second) {
			zone, walking, _ := w.position("dev-00")
			if !walking && (len(out) == 0 || out[len(out)-1] != zone) {
				out = append(out, zone)
			}
		}
		return out
	}
	got := stops(12 * time.Hour)
	if len(got) != 1 || w.g.zones[w.g.index[got[0]]].kind != ZoneKindPatient {
		t.Fatalf("in use for 12 h, the device stopped in %q, want one patient zone", got)
	}
	bed := got[0]
	t.Logf("in use at %s", bed)
	w.observe(m, coap.StateIdle)
	if zone, walking, _ := w.position("dev-00"); zone != bed || walking {
		t.Errorf("when the use ended the device was at %q, %v; want %s, not walking (at the bedside)", zone, walking, bed)
	}
	got = stops(24 * time.Hour)
	t.Logf("stops after use: %q", got)
	if len(got) < 3 || got[0] != bed || got[1] != "soiled" || got[2] != "clean" {
		t.Errorf("after use, the device stopped in %q, want %s, soiled, clean, ...", got, bed)
	}

	// In use again: it leaves the clean room for a patient at once.
	w.place("dev-00", "clean")
	w.release("dev-00")
	w.observe(m, coap.StateInUse)
	if _, walking, _ := w.position("dev-00"); !walking {
		t.Error("a device put in use in the clean room is not walking, want on its way to a patient")
	}
}

// TestReaderSeesWorld checks what a reader reports: strong sightings of the
// tags in its antennas' zones, faint ones now and then of the tags next
// door, none of tags further away, on another floor, or hidden.
func TestReaderSeesWorld(t *testing.T) {
	clk, now := newTestClock()
	w := newWorldModel(wardWorld(6), 1, []string{"dev-00", "dev-01", "dev-02", "dev-03", "dev-04", "dev-05"}, now)
	for dev, zone := range map[string]string{"dev-00": "p1", "dev-01": "c1", "dev-02": "c2", "dev-03": "lift2", "dev-04": "c3", "dev-05": "c4"} {
		if !w.place(dev, zone) {
			t.Fatalf("place(%q, %q) = false", dev, zone)
		}
	}
	p, _ := NewProfile(coap.ProfileRFIDReader, 1, t0)
	w.member("rdr", coap.ProfileRFIDReader).attach(p)
	epc := func(dev string) string { return wardWorld(6).Tags[dev] }
	type key struct{ antenna, epc string }
	count := func(n int) (strong, faint map[key]int) {
		strong, faint = map[key]int{}, map[key]int{}
		for range n {
			clk.add(10 * time.Second)
			p.Step(clk.t)
			r := p.Sample()
			for _, s := range r.Sightings {
				switch k := (key{s.Antenna, s.EPC}); {
				case s.RSSI >= rssiStrongMin && s.RSSI <= rssiStrongMax:
					strong[k]++
				case s.RSSI >= rssiFaintMin && s.RSSI <= rssiFaintMax:
					faint[k]++
				default:
					t.Fatalf("sighting %+v: RSSI in neither range", s)
				}
			}
		}
		return strong, faint
	}
	const n = 400
	strong, faint := count(n)
	wantStrong := map[key]int{{"1", epc("dev-00")}: n, {"2", epc("dev-04")}: n, {"3", epc("dev-01")}: n}
	if diff := cmp.Diff(wantStrong, strong); diff != "" {
		t.Errorf("strong sightings (-want +got):\n%s", diff)
	}
	// Next door: dev-01 (c1, next to p1) on antenna 1, dev-02 and dev-05
	// (c2 and c4, next to c3) on antenna 2, dev-00 and dev-02 (p1 and c2,
	// next to c1) on antenna 3; never dev-03 in the lift lobby on floor 2,
	// although a walkway joins it to c1, nor dev-00 in p1 on antenna 2 (c3
	// and p1 are not neighbours).
	for _, k := range []key{{"1", epc("dev-01")}, {"2", epc("dev-02")}, {"2", epc("dev-05")}, {"3", epc("dev-00")}, {"3", epc("dev-02")}} {
		if f := float64(faint[k]) / n; f < bleedProb-0.1 || f > bleedProb+0.1 {
			t.Errorf("%v seen faintly in %.2f of the reports, want about %v", k, f, bleedProb)
		}
		delete(faint, k)
	}
	if len(faint) > 0 {
		t.Errorf("faint sightings of tags that are not next door: %v", faint)
	}

	w.hide("dev-00")
	w.moveTo("dev-04", "c2")
	clk.add(walkTime(5)) // half-way from c3 to c2
	if zone, walking, _ := w.position("dev-04"); zone != "" || !walking {
		t.Fatalf("dev-04 half-way from c3 to c2 is at %q, %v; want between", zone, walking)
	}
	w.hide("dev-01")
	w.hide("dev-02")
	w.hide("dev-05")
	w.place("dev-03", "lift2")
	for range 50 {
		if r := p.Sample(); len(r.Sightings) > 1 || len(r.Sightings) == 1 && (r.Sightings[0].EPC != epc("dev-04") || r.Sightings[0].RSSI > rssiFaintMax) {
			t.Fatalf("with dev-00 hidden and dev-04 between c3 and c2, the reader saw %+v; want at most dev-04, faint", r.Sightings)
		}
	}
}

func TestReaderSightingsFitReport(t *testing.T) {
	world := wardWorld(0)
	var movers []string
	for i := range 40 {
		id := fmt.Sprintf("dev-%02d", i)
		world.Tags[id] = fmt.Sprintf("%064X", i+1)
		movers = append(movers, id)
	}
	for _, long := range []bool{true, false} {
		world.Antennas = map[string]map[string]string{"rdr": {strings.Repeat("a", maxAntennaName): "p1", "b": "p1"}}
		if !long {
			world.Antennas = map[string]map[string]string{"rdr": {"1": "p1", "2": "p1"}}
			for id := range world.Tags {
				world.Tags[id] = world.Tags[id][40:] // SGTIN-96
			}
		}
		_, now := newTestClock()
		w := newWorldModel(world, 1, movers, now)
		for i, id := range movers {
			// Faint sightings from next door lose to strong ones.
			w.place(id, []string{"p1", "c1"}[i%2])
		}
		p, _ := NewProfile(coap.ProfileRFIDReader, 1, t0)
		w.member("rdr", coap.ProfileRFIDReader).attach(p)
		r := p.Sample()
		r.Seq, r.Firmware = 1<<40, "3.21.0"
		r.FirmwareState, r.FirmwareResult = ptr(coap.FWDownloading), ptr(coap.FWResultDeferred)
		body, err := coap.EncodePack(coap.FormatSenMLCBOR, r.Pack())
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Sightings) == 0 || len(r.Sightings) > rfidMaxTags || len(body) > 1024 {
			t.Errorf("long names %v: %d sightings in %d bytes, want 1-%d in at most 1024", long, len(r.Sightings), len(body), rfidMaxTags)
		}
		if !long && len(r.Sightings) != rfidMaxTags {
			t.Errorf("%d short sightings, want %d", len(r.Sightings), rfidMaxTags)
		}
		for _, s := range r.Sightings {
			if s.RSSI < rssiStrongMin {
				t.Errorf("long names %v: reported %+v, want only the strongest: 20 tags in p1", long, s)
			}
		}
		if _, err := coap.ParseReport(mustDecode(t, body)); err != nil {
			t.Errorf("ParseReport = %v", err)
		}
	}
}

func mustDecode(t *testing.T, body []byte) coap.Pack {
	t.Helper()
	p, err := coap.DecodePack(coap.FormatSenMLCBOR, body)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// runWorld runs a ward of 20 devices for 24 h in steps of step, with
// devices going in and out of use on a fixed schedule, and returns every
// device's position and the reader's report at each whole hour.
func runWorld(seed uint64, step time.Duration) []string {
	clk, now := newTestClock()
	world := wardWorld(20)
	movers := slices.Sorted(maps.Keys(world.Tags))
	w := newWorldModel(world, seed, movers, now)
	p, _ := NewProfile(coap.ProfileRFIDReader, seed, t0)
	w.member("rdr", coap.ProfileRFIDReader).attach(p)
	var out []string
	for h := 1; h <= 24; h++ {
		for end := t0.Add(time.Duration(h) * time.Hour); clk.t.Before(end); {
			if clk.add(step); clk.t.After(end) {
				clk.t = end
			}
			w.advance() // nothing is looked at in between
		}
		for i, id := range movers {
			state := coap.StateIdle
			if (h/3+i)%4 == 0 {
				state = coap.StateInUse
			}
			w.observe(w.byID[id], state)
			zone, walking, _ := w.position(id)
			out = append(out, fmt.Sprintf("%d %s %s %v", h, id, zone, walking))
		}
		r := p.Sample()
		out = append(out, fmt.Sprint(r.Sightings))
	}
	return out
}

func TestWorldDeterministic(t *testing.T) {
	a := runWorld(42, time.Minute)
	if diff := cmp.Diff(a, runWorld(42, time.Minute)); diff != "" {
		t.Errorf("two runs with seed 42 differ (-first +second):\n%s", diff)
	}
	// The world moves on events: how often it is stepped does not matter.
	if diff := cmp.Diff(a, runWorld(42, time.Hour)); diff != "" {
		t.Errorf("stepped by the hour, the world differs from stepped by the minute (-minute +hour):\n%s", diff)
	}
	if cmp.Equal(a, runWorld(43, time.Minute)) {
		t.Error("seeds 42 and 43 give the same world")
	}
}

// TestSimulatorWorldControls drives a simulator's world with its
// controls under synctest: its clock runs TimeScale times as fast as real
// time.
func TestSimulatorWorldControls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		world := lineWorld()
		world.Tags = map[string]string{"sim-pump-0001": "30AA", "sim-cpap-0002": "30BB", "sim-rfid-0003": "30CC"}
		s, err := NewSimulator(SimConfig{Server: "127.0.0.1:5683", Insecure: true, Devices: 3, TimeScale: 10, World: world}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if s.MoveTo("sim-rfid-0003", "A") {
			t.Error("MoveTo of a reader = true, want false: readers do not move")
		}
		if !s.Place("sim-pump-0001", "A") || !s.MoveTo("sim-pump-0001", "D") {
			t.Fatal("Place or MoveTo = false")
		}
		arrival := walkTime(25) / 10 // real time
		time.Sleep(arrival - time.Millisecond)
		if zone, walking, ok := s.Position("sim-pump-0001"); zone != "D" || !walking || !ok {
			t.Errorf("Position just before arrival = %q, %v, %v; want D, walking", zone, walking, ok)
		}
		time.Sleep(2 * time.Millisecond)
		if zone, walking, _ := s.Position("sim-pump-0001"); zone != "D" || walking {
			t.Errorf("Position after arrival = %q, %v; want D, not walking", zone, walking)
		}
		if !s.Hide("sim-pump-0001") || !s.Release("sim-pump-0001") {
			t.Error("Hide or Release = false")
		}
		if _, _, ok := s.Position("sim-toaster-0001"); ok {
			t.Error("Position of an unknown device: ok")
		}

		plain, err := NewSimulator(SimConfig{Server: "127.0.0.1:5683", Insecure: true, Devices: 3}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if plain.MoveTo("sim-pump-0001", "A") || plain.Place("sim-pump-0001", "A") || plain.Hide("sim-pump-0001") || plain.Release("sim-pump-0001") {
			t.Error("controls of a simulator without a world = true, want false")
		}
		if _, _, ok := plain.Position("sim-pump-0001"); ok {
			t.Error("Position without a world: ok")
		}
	})
}

// TestSimulatorWorldRun runs a simulated ward against the test server over
// real CoAP: the reader reports the tags of the devices in its antennas'
// zones, follows them when they move, and loses a hidden one.
func TestSimulatorWorldRun(t *testing.T) {
	srv := startTestServer(t)
	world := wardWorld(0)
	world.Antennas = map[string]map[string]string{"sim-rfid-0003": {"bed1": "p1", "store": "clean"}}
	world.Tags = map[string]string{"sim-pump-0001": "3074257bf7194e4000001a85", "sim-cpap-0002": "3074257BF7194E4000001A86"}
	pump, cpap := "3074257BF7194E4000001A85", "3074257BF7194E4000001A86"
	s, err := NewSimulator(SimConfig{
		Server: srv.addr, Insecure: true, Devices: 3, Interval: 30 * time.Millisecond, TimeScale: 600, Seed: 4, World: world,
	}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	s.Place("sim-pump-0001", "p1")
	s.Place("sim-cpap-0002", "clean")
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run() = %v", err)
		}
	}()
	// sees reports whether the reader's latest report has the tag on the
	// antenna, strongly.
	sees := func(antenna, epc string) bool {
		reports := srv.reports("sim-rfid-0003")
		if len(reports) == 0 {
			return false
		}
		return slices.ContainsFunc(reports[len(reports)-1].Sightings, func(s coap.Sighting) bool {
			return s.Antenna == antenna && s.EPC == epc && s.RSSI >= rssiStrongMin
		})
	}
	waitFor(t, 5*time.Second, "the pump at bed 1 and the CPAP in the store", func() bool {
		return sees("bed1", pump) && sees("store", cpap)
	})
	// 50 m from the clean room to p1: 41.7 s of simulated time, 69 ms at
	// this scale.
	if !s.MoveTo("sim-cpap-0002", "p1") {
		t.Fatal("MoveTo = false")
	}
	waitFor(t, 5*time.Second, "the CPAP at bed 1", func() bool {
		zone, walking, _ := s.Position("sim-cpap-0002")
		return zone == "p1" && !walking && sees("bed1", cpap) && !sees("store", cpap)
	})
	s.Hide("sim-pump-0001")
	waitFor(t, 5*time.Second, "three reports without the hidden pump", func() bool {
		reports := srv.reports("sim-rfid-0003")
		if len(reports) < 3 {
			return false
		}
		for _, r := range reports[len(reports)-3:] {
			if slices.ContainsFunc(r.Sightings, func(s coap.Sighting) bool { return s.EPC == pump }) {
				return false
			}
		}
		return true
	})
	for _, id := range []string{"sim-pump-0001", "sim-cpap-0002"} {
		for _, r := range srv.reports(id) {
			if len(r.Sightings) > 0 {
				t.Errorf("%s reported sightings %v, want none: it is not a reader", id, r.Sightings)
			}
		}
	}
}

// BenchmarkWorld steps a world of 100 zones and 1,000 devices by 10 s of
// simulated time, each device reporting its clinical state and 25 readers
// of 4 antennas each reporting what they see: what a simulator with a
// 10 s interval does every 10 s.
func BenchmarkWorld(b *testing.B) {
	world := &World{Antennas: map[string]map[string]string{}, Tags: map[string]string{}}
	kind := func(x, y int) string {
		switch {
		case x == 5:
			return ZoneKindCorridor
		case y == 0:
			return ZoneKindClean
		case y == 9:
			return ZoneKindSoiled
		}
		return ZoneKindPatient
	}
	id := func(x, y int) string { return fmt.Sprintf("z%d%d", x, y) }
	for x := range 10 {
		for y := range 10 {
			world.Zones = append(world.Zones, WorldZone{ID: id(x, y), Floor: "1", X: 8 * float64(x), Y: 6 * float64(y), Kind: kind(x, y)})
			if x > 0 {
				world.Edges = append(world.Edges, WorldEdge{From: id(x-1, y), To: id(x, y)})
			}
			if y > 0 && (x == 5 || x == 0) {
				world.Edges = append(world.Edges, WorldEdge{From: id(x, y-1), To: id(x, y)})
			}
		}
	}
	var movers []string
	for i := range 1000 {
		d := fmt.Sprintf("dev-%04d", i)
		world.Tags[d] = fmt.Sprintf("30%022X", i+1)
		movers = append(movers, d)
	}
	var readers []string
	for r := range 25 {
		name := fmt.Sprintf("rdr-%02d", r)
		readers = append(readers, name)
		world.Antennas[name] = map[string]string{}
		for a := range 4 {
			world.Antennas[name][fmt.Sprint(a+1)] = world.Zones[(r*4+a)%100].ID
		}
	}
	if err := world.Validate(); err != nil {
		b.Fatal(err)
	}
	clk, now := newTestClock()
	w := newWorldModel(world, 1, movers, now)
	var profiles []Profile
	for i, r := range readers {
		p, _ := NewProfile(coap.ProfileRFIDReader, uint64(i), t0)
		w.member(r, coap.ProfileRFIDReader).attach(p)
		profiles = append(profiles, p)
	}
	sightings := 0
	b.ReportAllocs()
	for b.Loop() {
		clk.add(10 * time.Second)
		hour := int(clk.t.Sub(t0) / time.Hour)
		for i, m := range w.movers {
			state := coap.StateIdle
			if (hour+i)%3 == 0 {
				state = coap.StateInUse
			}
			w.observe(m, state)
		}
		for _, p := range profiles {
			sightings += len(p.Sample().Sightings)
		}
	}
	b.ReportMetric(float64(sightings)/float64(b.N)/float64(len(readers)), "sightings/report")
}
