// Package location turns what devices and readers report into where each
// device is: RFID sightings of the tags on devices, the Wi-Fi access point a
// device is associated with, and check-ins by people. It keeps each
// device's location with its source, confidence and freshness, a bounded
// history of its moves, an index of devices by zone for "nearest
// available", par levels per unit, and streams of events for watchers.
//
// A device moves only when the evidence for a new zone persists: a strong
// sighting there (location.strong_rssi) that beats the current zone's by
// location.margin_db, seen again after location.dwell. A tag seen faintly
// through a wall is ignored; a tag that is seen strongly in two zones at
// once stays where it was until one of them wins for the dwell time.
package location

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/medfleet/medfleet/coap"
	"github.com/medfleet/medfleet/inventory/facility"
	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// Config tunes the engine.
type Config struct {
	// StaleAfter: a location with no evidence for this long is stale.
	StaleAfter time.Duration `yaml:"stale_after"`
	// Dwell: the evidence for a new zone must last this long.
	Dwell time.Duration `yaml:"dwell"`
	// StrongRSSI is the weakest RFID sighting, in dBm, that can move a
	// device; weaker ones only confirm the zone it is in.
	StrongRSSI float64 `yaml:"strong_rssi"`
	// MarginDB: a sighting in a new zone must beat the current zone's
	// recent signal by this much, while the current zone is still seen.
	MarginDB float64 `yaml:"margin_db"`
	// HistoryRetention and HistoryMax bound each device's history of moves.
	HistoryRetention time.Duration `yaml:"history_retention"`
	HistoryMax       int           `yaml:"history_max"`
}

// DefaultConfig returns the defaults documented in docs/operations.md.
func DefaultConfig() Config {
	return Config{StaleAfter: 10 * time.Minute, Dwell: 15 * time.Second, StrongRSSI: -65, MarginDB: 6,
		HistoryRetention: 30 * 24 * time.Hour, HistoryMax: 256}
}

// Validate checks the configuration; errors name the field by its path.
func (c Config) Validate() error {
	switch {
	case c.StaleAfter < time.Second:
		return fmt.Errorf("location.stale_after: %v is under 1s", c.StaleAfter)
	case c.Dwell < 0 || c.Dwell >= c.StaleAfter:
		return fmt.Errorf("location.dwell: %v must be between 0 and stale_after", c.Dwell)
	case c.StrongRSSI > 0 || c.StrongRSSI < -120:
		return fmt.Errorf("location.strong_rssi: %v dBm is outside -120..0", c.StrongRSSI)
	case c.MarginDB < 0 || c.MarginDB > 40:
		return fmt.Errorf("location.margin_db: %v is outside 0..40", c.MarginDB)
	case c.HistoryRetention < time.Hour:
		return fmt.Errorf("location.history_retention: %v is under 1h", c.HistoryRetention)
	case c.HistoryMax < 1 || c.HistoryMax > 10000:
		return fmt.Errorf("location.history_max: %d is outside 1..10000", c.HistoryMax)
	}
	return nil
}

// Device is what the engine asks the inventory about a device.
type Device struct {
	Profile, Model string
	Availability   pb.Availability
	Decommissioned bool
}

// Directory is the inventory, as the engine sees it.
type Directory interface {
	// DeviceByTag returns the device carrying an RFID tag.
	DeviceByTag(epc string) (string, bool)
	// Device describes a device; false for an unknown one.
	Device(id string) (Device, bool)
}

// track is one device's location and the evidence being weighed.
type track struct {
	zone       string
	source     pb.LocationSource
	confidence float64
	since      time.Time
	seen       time.Time
	detail     string
	rssi       float64 // recent strength in zone (RFID), an average
	stale      bool
	counted    parKey // the par count it is in, if any

	// A zone that may become the device's: strong evidence first seen at
	// candSince, last at candSeen.
	cand                string
	candSince, candSeen time.Time
	candRSSI            float64
	candDetail          string
	candSource          pb.LocationSource

	history []*pb.LocationChange // oldest first
	dirty   bool                 // changed since the last flush
}

// Engine locates devices. All its methods are safe for concurrent use.
type Engine struct {
	cfg Config
	dir Directory
	log *slog.Logger
	now func() time.Time
	fac atomic.Pointer[facility.Facility]

	mu     sync.Mutex
	tracks map[string]*track
	byZone map[string]map[string]struct{} // zone -> devices located there
	// counts are the available, fresh devices per unit and profile;
	// parMin the par levels of the facility by unit and profile.
	counts    map[parKey]int
	parMin    map[parKey]facility.ParLevel
	unitZones map[string][]string // each unit's zones
	subs      map[*Watch]struct{}
	moves     atomic.Uint64
}

type parKey struct{ unit, profile string }

// New builds an engine over a directory of devices.
func New(cfg Config, dir Directory, log *slog.Logger, now func() time.Time) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	e := &Engine{cfg: cfg, dir: dir, log: log, now: now, tracks: map[string]*track{}, byZone: map[string]map[string]struct{}{},
		counts: map[parKey]int{}, parMin: map[parKey]facility.ParLevel{}, subs: map[*Watch]struct{}{}}
	e.fac.Store(&facility.Facility{})
	return e, nil
}

// SetFacility replaces the facility model. Devices located in zones it no
// longer has keep their last known place until new evidence comes.
func (e *Engine) SetFacility(f *facility.Facility) {
	parMin := map[parKey]facility.ParLevel{}
	for _, p := range f.ParLevels() {
		parMin[parKey{p.Unit, p.Profile}] = p
	}
	unitZones := map[string][]string{}
	for _, fl := range f.Floors() {
		for _, z := range fl.Zones {
			unitZones[z.Place.Unit] = append(unitZones[z.Place.Unit], z.ID)
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.fac.Store(f)
	e.parMin, e.unitZones = parMin, unitZones
	e.recountAll(e.now())
}

// Facility is the current facility model.
func (e *Engine) Facility() *facility.Facility { return e.fac.Load() }

// Sightings applies what a reader's antennas saw. Tags that are on no
// device, and antennas placed in no zone, are ignored.
func (e *Engine) Sightings(reader string, ss []coap.Sighting, now time.Time) {
	fac := e.fac.Load()
	// The strongest sighting of each device in this report.
	type best struct {
		zone, antenna string
		rssi          float64
	}
	var bests map[string]best
	for _, s := range ss {
		zone, ok := fac.ReaderZone(reader, s.Antenna)
		if !ok {
			continue
		}
		dev, ok := e.dir.DeviceByTag(s.EPC)
		if !ok {
			continue
		}
		if bests == nil {
			bests = map[string]best{}
		}
		if b, ok := bests[dev]; !ok || s.RSSI > b.rssi {
			bests[dev] = best{zone, s.Antenna, s.RSSI}
		}
	}
	if len(bests) == 0 {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for dev, b := range bests {
		e.evidence(dev, b.zone, pb.LocationSource_LOCATION_SOURCE_RFID, b.rssi,
			fmt.Sprintf("reader %s antenna %s (%.0f dBm)", reader, b.antenna, b.rssi), now)
	}
}

// WiFi applies the access point a device reported. RFID, when fresh,
// wins over Wi-Fi, which places a device only to the access point's zone.
func (e *Engine) WiFi(device, bssid string, now time.Time) {
	zone, ok := e.fac.Load().AccessPointZone(bssid)
	if !ok {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if t := e.tracks[device]; t != nil && t.source == pb.LocationSource_LOCATION_SOURCE_RFID && now.Sub(t.seen) < e.cfg.StaleAfter {
		return
	}
	e.evidence(device, zone, pb.LocationSource_LOCATION_SOURCE_WIFI, math.NaN(), "access point "+bssid, now)
}

// CheckIn places a device in a zone because a person said so.
func (e *Engine) CheckIn(device, zone, who string, now time.Time) (*pb.DeviceLocation, error) {
	fac := e.fac.Load()
	z, ok := fac.Resolve(zone)
	if !ok {
		return nil, &FieldError{Field: "zone", Reason: fmt.Sprintf("%q is not a zone, room or unit of the facility", zone)}
	}
	if _, ok := e.dir.Device(device); !ok {
		return nil, fmt.Errorf("%w: devices/%s", ErrNotFound, device)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	t := e.track(device)
	detail := "checked in by " + who
	if t.zone == z { // a confirmation, not a move
		t.source, t.confidence, t.detail, t.seen, t.stale, t.dirty, t.cand = pb.LocationSource_LOCATION_SOURCE_MANUAL, 1, detail, now, false, true, ""
		e.recount(device, t, now)
		return e.view(device, t, now), nil
	}
	e.move(device, t, z, pb.LocationSource_LOCATION_SOURCE_MANUAL, 1, math.NaN(), detail, now)
	return e.view(device, t, now), nil
}

func (e *Engine) track(device string) *track {
	t := e.tracks[device]
	if t == nil {
		t = &track{}
		e.tracks[device] = t
	}
	return t
}

// evidence weighs one piece of evidence that device is in zone. e.mu is held.
func (e *Engine) evidence(device, zone string, source pb.LocationSource, rssi float64, detail string, now time.Time) {
	t := e.track(device)
	strong := math.IsNaN(rssi) || rssi >= e.cfg.StrongRSSI
	if t.zone == zone {
		t.seen = now
		if !math.IsNaN(rssi) {
			t.rssi = 0.7*t.rssi + 0.3*rssi
		}
		if t.stale {
			t.stale = false
			t.dirty = true
			e.recount(device, t, now)
		}
		if t.cand != "" && now.Sub(t.candSeen) > e.cfg.Dwell {
			t.cand = "" // the rival zone went quiet
		}
		return
	}
	if !strong {
		return // bleed through a wall, or a tag at the edge of a field
	}
	fresh := t.zone != "" && now.Sub(t.seen) < e.cfg.StaleAfter
	switch {
	case t.zone == "":
		// Never located: the first strong evidence places it.
		e.move(device, t, zone, source, confidence(source, rssi), rssi, detail, now)
		return
	case t.source == pb.LocationSource_LOCATION_SOURCE_MANUAL && source == pb.LocationSource_LOCATION_SOURCE_WIFI && fresh:
		return // Wi-Fi is too coarse to overrule a person
	case fresh && t.source == pb.LocationSource_LOCATION_SOURCE_RFID && now.Sub(t.seen) < e.cfg.Dwell &&
		!math.IsNaN(rssi) && rssi < t.rssi+e.cfg.MarginDB:
		// The current zone is still heard and not clearly weaker.
		return
	}
	if t.cand != zone {
		t.cand, t.candSince, t.candSeen, t.candRSSI, t.candDetail, t.candSource = zone, now, now, rssi, detail, source
		if e.cfg.Dwell > 0 && fresh {
			return
		}
	}
	t.candSeen, t.candRSSI, t.candDetail = now, rssi, detail
	if !fresh || now.Sub(t.candSince) >= e.cfg.Dwell {
		e.move(device, t, zone, source, confidence(source, rssi), rssi, detail, now)
	}
}

// confidence maps evidence to 0..1: an RFID sighting by its strength, a
// Wi-Fi association low, a check-in full.
func confidence(source pb.LocationSource, rssi float64) float64 {
	switch source {
	case pb.LocationSource_LOCATION_SOURCE_RFID:
		return math.Round(100*max(0.5, min(0.95, 0.95-(-45-rssi)*0.0175))) / 100
	case pb.LocationSource_LOCATION_SOURCE_WIFI:
		return 0.4
	}
	return 1
}

// move puts a device in a zone, records the move and tells watchers. e.mu
// is held.
func (e *Engine) move(device string, t *track, zone string, source pb.LocationSource, conf, rssi float64, detail string, now time.Time) {
	old := t.zone
	if old != "" {
		if set := e.byZone[old]; set != nil {
			delete(set, device)
			if len(set) == 0 {
				delete(e.byZone, old)
			}
		}
	}
	set := e.byZone[zone]
	if set == nil {
		set = map[string]struct{}{}
		e.byZone[zone] = set
	}
	set[device] = struct{}{}
	t.zone, t.source, t.confidence, t.detail, t.since, t.seen, t.stale, t.dirty = zone, source, conf, detail, now, now, false, true
	t.cand = ""
	if !math.IsNaN(rssi) {
		t.rssi = rssi
	}
	fac := e.fac.Load()
	z, _ := fac.Zone(zone)
	t.history = append(t.history, &pb.LocationChange{Time: timestamppb.New(now), Place: place(z.Place), Source: source, Detail: detail})
	e.trimHistory(t, now)
	e.moves.Add(1)
	e.publish(device, t, pb.LocationEvent_KIND_MOVED, now)
	e.recount(device, t, now)
}

func (e *Engine) trimHistory(t *track, now time.Time) {
	cut := 0
	for cut < len(t.history) && now.Sub(t.history[cut].GetTime().AsTime()) > e.cfg.HistoryRetention {
		cut++
	}
	if over := len(t.history) - cut - e.cfg.HistoryMax; over > 0 {
		cut += over
	}
	if cut > 0 {
		t.history = slices.Delete(t.history, 0, cut)
	}
}

func place(p facility.Place) *pb.Place {
	return &pb.Place{Site: p.Site, Building: p.Building, Floor: p.Floor, Unit: p.Unit, Room: p.Room, Zone: p.Zone,
		UnitName: p.UnitName, RoomName: p.RoomName, FloorName: p.FloorName}
}

// view is what callers see of a device's location. e.mu is held.
func (e *Engine) view(device string, t *track, now time.Time) *pb.DeviceLocation {
	l := &pb.DeviceLocation{Device: "devices/" + device}
	if d, ok := e.dir.Device(device); ok {
		l.Profile, l.Model, l.Availability = d.Profile, d.Model, d.Availability
	}
	if t == nil || t.zone == "" {
		return l
	}
	z, _ := e.fac.Load().Zone(t.zone)
	if z.ID == "" {
		z.Place.Zone = t.zone
	}
	l.Place, l.Source, l.Confidence, l.Detail = place(z.Place), t.source, t.confidence, t.detail
	l.SinceTime, l.SeenTime = timestamppb.New(t.since), timestamppb.New(t.seen)
	l.Stale = now.Sub(t.seen) > e.cfg.StaleAfter
	return l
}

// Locate returns where a device is; a device never located has no place.
func (e *Engine) Locate(device string) (*pb.DeviceLocation, error) {
	if _, ok := e.dir.Device(device); !ok {
		return nil, fmt.Errorf("%w: devices/%s", ErrNotFound, device)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.view(device, e.tracks[device], e.now()), nil
}

// History returns a device's moves between from and to (zero: open),
// newest first.
func (e *Engine) History(device string, from, to time.Time) ([]*pb.LocationChange, error) {
	if _, ok := e.dir.Device(device); !ok {
		return nil, fmt.Errorf("%w: devices/%s", ErrNotFound, device)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	t := e.tracks[device]
	if t == nil {
		return nil, nil
	}
	var out []*pb.LocationChange
	for i := len(t.history) - 1; i >= 0; i-- {
		at := t.history[i].GetTime().AsTime()
		if (!from.IsZero() && at.Before(from)) || (!to.IsZero() && at.After(to)) {
			continue
		}
		out = append(out, t.history[i])
	}
	return out, nil
}

// Query asks for the devices nearest a place.
type Query struct {
	Profile, Model string
	Near           string
	Availability   pb.Availability
	Limit          int
	IncludeStale   bool
}

// Nearby is a device and its walking distance.
type Nearby struct {
	Location *pb.DeviceLocation
	Metres   float64
}

// Nearest finds the devices that match q nearest to q.Near, by walking
// cost through the facility, nearest first.
func (e *Engine) Nearest(q Query) ([]Nearby, error) {
	fac := e.fac.Load()
	from, ok := fac.Resolve(q.Near)
	if !ok {
		return nil, &FieldError{Field: "near", Reason: fmt.Sprintf("%q is not a zone, room or unit of the facility", q.Near)}
	}
	if q.Profile == "" && q.Model == "" {
		return nil, &FieldError{Field: "profile", Reason: "give a profile or a model"}
	}
	if q.Limit <= 0 {
		q.Limit = 5
	}
	q.Limit = min(q.Limit, 50)
	if q.Availability == 0 {
		q.Availability = pb.Availability_AVAILABILITY_AVAILABLE
	}
	now := e.now()
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []Nearby
	fac.Walk(from, func(zone string, metres float64) bool {
		for dev := range e.byZone[zone] {
			t := e.tracks[dev]
			if !q.IncludeStale && now.Sub(t.seen) > e.cfg.StaleAfter {
				continue
			}
			d, ok := e.dir.Device(dev)
			if !ok || d.Decommissioned || d.Availability != q.Availability ||
				(q.Profile != "" && d.Profile != q.Profile) || (q.Model != "" && d.Model != q.Model) {
				continue
			}
			out = append(out, Nearby{Location: e.view(dev, t, now), Metres: metres})
		}
		return len(out) < q.Limit
	})
	// Devices in one zone are equally near: order them by id.
	slices.SortStableFunc(out, func(a, b Nearby) int {
		return cmp.Or(cmp.Compare(a.Metres, b.Metres), cmp.Compare(a.Location.GetDevice(), b.Location.GetDevice()))
	})
	if len(out) > q.Limit {
		out = out[:q.Limit]
	}
	return out, nil
}

// AvailabilityChanged is the inventory's news that a device's
// availability changed: watchers hear it, and par levels are checked.
func (e *Engine) AvailabilityChanged(device string, now time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	t := e.tracks[device]
	if t == nil {
		t = &track{}
	}
	e.publish(device, t, pb.LocationEvent_KIND_AVAILABILITY, now)
	e.recount(device, t, now)
}

// Sweep marks locations that went stale and tells watchers; the server
// runs it every few seconds.
func (e *Engine) Sweep(now time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for dev, t := range e.tracks {
		if t.zone == "" || t.stale || now.Sub(t.seen) <= e.cfg.StaleAfter {
			continue
		}
		t.stale, t.dirty = true, true
		e.publish(dev, t, pb.LocationEvent_KIND_STALE, now)
		e.recount(dev, t, now)
	}
}

// Stats are counts for metrics.
type Stats struct {
	Located, Stale int
	Moves          uint64
}

// Stats counts located and stale devices, and moves so far.
func (e *Engine) Stats() Stats {
	now := e.now()
	e.mu.Lock()
	defer e.mu.Unlock()
	var s Stats
	for _, t := range e.tracks {
		if t.zone == "" {
			continue
		}
		s.Located++
		if now.Sub(t.seen) > e.cfg.StaleAfter {
			s.Stale++
		}
	}
	s.Moves = e.moves.Load()
	return s
}

// Run sweeps for stale locations until ctx ends.
func (e *Engine) Run(ctx context.Context) error {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			e.Sweep(e.now())
		}
	}
}
