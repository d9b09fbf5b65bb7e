package location

import (
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/medfleet/medfleet/coap"
	"github.com/medfleet/medfleet/inventory/facility"
	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// A corridor of three rooms, 10 m apart: a (unit u1), b (unit u1), c (unit
// u2); one reader with an antenna in each; an access point in c.
const testFacility = `
sites:
  - id: s
    name: Site
    buildings:
      - id: b
        name: Building
        floors:
          - id: f1
            name: Floor 1
            level: 1
            units:
              - id: u1
                name: Unit One
                par: {infusion-pump: 1}
                rooms:
                  - id: ra
                    name: Room A
                    zones: [{id: a, name: A, x: 0, y: 0, w: 2, h: 2}]
                  - id: rb
                    name: Room B
                    zones: [{id: b, name: B, x: 10, y: 0, w: 2, h: 2}]
              - id: u2
                name: Unit Two
                rooms:
                  - id: rc
                    name: Room C
                    zones: [{id: c, name: C, x: 20, y: 0, w: 2, h: 2}]
connections:
  - {from: a, to: b}
  - {from: b, to: c}
readers:
  - device: rd-1
    antennas: {"1": a, "2": b, "3": c}
access_points:
  - {bssid: "0a:00:00:00:00:01", zone: c}
`

type dir struct {
	mu      sync.Mutex
	tags    map[string]string
	devices map[string]Device
}

func (d *dir) DeviceByTag(epc string) (string, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	id, ok := d.tags[epc]
	return id, ok
}

func (d *dir) Device(id string) (Device, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	v, ok := d.devices[id]
	return v, ok
}

func (d *dir) set(id string, a pb.Availability) {
	d.mu.Lock()
	defer d.mu.Unlock()
	v := d.devices[id]
	v.Availability = a
	d.devices[id] = v
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time                { return c.t }
func (c *clock) add(d time.Duration) time.Time { c.t = c.t.Add(d); return c.t }

func newEngine(t *testing.T) (*Engine, *dir, *clock) {
	t.Helper()
	fac, err := facility.Parse([]byte(testFacility))
	if err != nil {
		t.Fatal(err)
	}
	d := &dir{tags: map[string]string{}, devices: map[string]Device{}}
	for i := range 4 {
		id := fmt.Sprintf("pump-%d", i)
		d.tags[fmt.Sprintf("EPC%05d", i)] = id
		d.devices[id] = Device{Profile: "infusion-pump", Model: "P1", Availability: pb.Availability_AVAILABILITY_AVAILABLE}
	}
	c := &clock{t: time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)}
	cfg := DefaultConfig()
	cfg.Dwell, cfg.StaleAfter = 10*time.Second, time.Minute
	e, err := New(cfg, d, slog.New(slog.DiscardHandler), c.now)
	if err != nil {
		t.Fatal(err)
	}
	e.SetFacility(fac)
	return e, d, c
}

func seen(e *Engine, c *clock, antenna, epc string, rssi float64) {
	e.Sightings("rd-1", []coap.Sighting{{Antenna: antenna, EPC: epc, RSSI: rssi}}, c.t)
}

func zoneOf(t *testing.T, e *Engine, dev string) string {
	t.Helper()
	l, err := e.Locate(dev)
	if err != nil {
		t.Fatal(err)
	}
	return l.GetPlace().GetZone()
}

// TestHysteresis: a tag moves only on strong evidence that persists; a
// faint sighting through a wall, or one strong blip, does not move it.
func TestHysteresis(t *testing.T) {
	e, _, c := newEngine(t)
	seen(e, c, "1", "EPC00000", -50)
	if z := zoneOf(t, e, "pump-0"); z != "a" {
		t.Fatalf("first strong sighting: zone %q, want a", z)
	}
	// Faint bleed into b, for a minute: it stays in a.
	for range 6 {
		c.add(5 * time.Second)
		seen(e, c, "1", "EPC00000", -52)
		seen(e, c, "2", "EPC00000", -75)
	}
	if z := zoneOf(t, e, "pump-0"); z != "a" {
		t.Fatalf("after faint sightings in b: zone %q, want a", z)
	}
	// One strong blip in b while a is still strong: no move.
	c.add(5 * time.Second)
	seen(e, c, "2", "EPC00000", -55)
	if z := zoneOf(t, e, "pump-0"); z != "a" {
		t.Fatalf("after one blip in b: zone %q, want a", z)
	}
	// It is wheeled to b: a falls silent, b is strong and stays so.
	for range 4 {
		c.add(5 * time.Second)
		seen(e, c, "2", "EPC00000", -48)
	}
	l, _ := e.Locate("pump-0")
	if l.GetPlace().GetZone() != "b" || l.GetPlace().GetRoomName() != "Room B" || l.GetSource() != pb.LocationSource_LOCATION_SOURCE_RFID {
		t.Fatalf("after persistent evidence in b: %v", l)
	}
	h, _ := e.History("pump-0", time.Time{}, time.Time{})
	if len(h) != 2 || h[0].GetPlace().GetZone() != "b" || h[1].GetPlace().GetZone() != "a" {
		t.Fatalf("history %v, want b then a (newest first), and no flapping", h)
	}
}

func TestStaleAndWatch(t *testing.T) {
	e, _, c := newEngine(t)
	w := e.Watch("u1", "")
	defer w.Close()
	seen(e, c, "1", "EPC00001", -50)
	ev := <-w.Events()
	if ev.GetKind() != pb.LocationEvent_KIND_MOVED || ev.GetLocation().GetPlace().GetZone() != "a" {
		t.Fatalf("event %v, want moved to a", ev)
	}
	c.add(2 * time.Minute)
	e.Sweep(c.t)
	for ev = range w.Events() {
		if ev.GetKind() == pb.LocationEvent_KIND_STALE {
			break
		}
	}
	if !ev.GetLocation().GetStale() || ev.GetLocation().GetDevice() != "devices/pump-1" {
		t.Fatalf("event %v, want pump-1 stale", ev)
	}
	if l, _ := e.Locate("pump-1"); !l.GetStale() || l.GetPlace().GetZone() != "a" {
		t.Fatalf("Locate after silence: %v, want stale in a", l)
	}
	// Seen again: fresh again, same zone.
	seen(e, c, "1", "EPC00001", -50)
	if l, _ := e.Locate("pump-1"); l.GetStale() {
		t.Fatalf("seen again but still stale: %v", l)
	}
}

func TestNearest(t *testing.T) {
	e, d, c := newEngine(t)
	seen(e, c, "3", "EPC00000", -50) // c: 20 m from a
	seen(e, c, "2", "EPC00001", -50) // b: 10 m
	seen(e, c, "1", "EPC00002", -50) // a: 0 m, but soiled
	seen(e, c, "2", "EPC00003", -50) // b
	d.set("pump-2", pb.Availability_AVAILABILITY_SOILED)
	got, err := e.Nearest(Query{Profile: "infusion-pump", Near: "ra", Limit: 3})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, n := range got {
		ids = append(ids, fmt.Sprintf("%s@%.0f", n.Location.GetDevice(), n.Metres))
	}
	if want := "[devices/pump-1@10 devices/pump-3@10 devices/pump-0@20]"; fmt.Sprint(ids) != want {
		t.Fatalf("Nearest = %v, want %s", ids, want)
	}
	soiled, _ := e.Nearest(Query{Profile: "infusion-pump", Near: "a", Availability: pb.Availability_AVAILABILITY_SOILED})
	if len(soiled) != 1 || soiled[0].Location.GetDevice() != "devices/pump-2" || soiled[0].Metres != 0 {
		t.Fatalf("Nearest soiled = %v", soiled)
	}
	if _, err := e.Nearest(Query{Profile: "infusion-pump", Near: "nowhere"}); err == nil {
		t.Fatal("Nearest from an unknown place: no error")
	}
}

func TestParLevels(t *testing.T) {
	e, d, c := newEngine(t)
	w := e.Watch("u1", "infusion-pump")
	defer w.Close()
	if p := e.ParLevels("u1", false); len(p) != 1 || !p[0].GetBelow() || p[0].GetAvailable() != 0 {
		t.Fatalf("empty unit: %v, want below par", p)
	}
	seen(e, c, "1", "EPC00000", -50)
	if p := e.ParLevels("u1", false); p[0].GetBelow() || p[0].GetAvailable() != 1 {
		t.Fatalf("one available pump in u1: %v", p)
	}
	d.set("pump-0", pb.Availability_AVAILABILITY_IN_USE)
	e.AvailabilityChanged("pump-0", c.t)
	var kinds []pb.LocationEvent_Kind
	for len(w.Events()) > 0 {
		kinds = append(kinds, (<-w.Events()).GetKind())
	}
	want := []pb.LocationEvent_Kind{pb.LocationEvent_KIND_MOVED, pb.LocationEvent_KIND_PAR_RESTORED, pb.LocationEvent_KIND_AVAILABILITY, pb.LocationEvent_KIND_PAR_BELOW}
	if fmt.Sprint(kinds) != fmt.Sprint(want) {
		t.Fatalf("events %v, want %v", kinds, want)
	}
}

func TestCheckInAndWiFi(t *testing.T) {
	e, _, c := newEngine(t)
	l, err := e.CheckIn("pump-0", "rb", "users/nurse", c.t)
	if err != nil || l.GetPlace().GetZone() != "b" || l.GetSource() != pb.LocationSource_LOCATION_SOURCE_MANUAL || l.GetConfidence() != 1 {
		t.Fatalf("CheckIn = %v, %v", l, err)
	}
	// Checked in again where it is: confirmed, not moved.
	if _, err := e.CheckIn("pump-0", "b", "users/porter", c.add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if h, _ := e.History("pump-0", time.Time{}, time.Time{}); len(h) != 1 {
		t.Fatalf("history after a check-in where it was: %v, want one move", h)
	}
	// Wi-Fi does not overrule a fresh check-in.
	e.WiFi("pump-0", "0A:00:00:00:00:01", c.add(5*time.Second))
	if z := zoneOf(t, e, "pump-0"); z != "b" {
		t.Fatalf("after Wi-Fi: %q, want b", z)
	}
	// A device only Wi-Fi knows of is placed by its access point.
	e.WiFi("pump-1", "0a:00:00:00:00:01", c.t)
	if l, _ := e.Locate("pump-1"); l.GetPlace().GetZone() != "c" || l.GetSource() != pb.LocationSource_LOCATION_SOURCE_WIFI {
		t.Fatalf("Wi-Fi only: %v", l)
	}
	if _, err := e.CheckIn("pump-0", "nowhere", "x", c.t); err == nil {
		t.Fatal("check-in to an unknown zone accepted")
	}
	if _, err := e.CheckIn("ghost", "a", "x", c.t); err == nil {
		t.Fatal("check-in of an unknown device accepted")
	}
}
