package agent

import (
	"container/heap"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/medfleet/medfleet/coap"
)

// World is the facility as the simulator needs it: where devices can be,
// how they walk from one place to another, where each reader's antennas
// are and which tag each device carries. medfleetd builds it from its
// facility model; the agent never imports that model.
type World struct {
	// Zones are the places a device can be, each with a unique id.
	Zones []WorldZone
	// Edges are the walkways between zones (corridors, doors, stairs,
	// lifts); each goes both ways.
	Edges []WorldEdge
	// Antennas places the antennas of RFID readers: reader device id ->
	// antenna name -> zone id. A reader reports its sightings as
	// rfid/{antenna name}.
	Antennas map[string]map[string]string
	// Tags are the RFID tags on devices: device id -> EPC, in hex.
	Tags map[string]string
}

// WorldZone is one zone of a World.
type WorldZone struct {
	ID    string
	Floor string
	// X and Y are the zone's centre on its floor, in metres.
	X, Y float64
	// Kind says what the zone is for; the simulator picks destinations
	// with it: ZoneKindPatient, ZoneKindClean, ZoneKindSoiled,
	// ZoneKindCorridor, or anything else for other rooms.
	Kind string
}

// WorldEdge is a walkway between two zones. Metres 0 stands for the
// straight distance between the zones' centres.
type WorldEdge struct {
	From, To string
	Metres   float64
}

// Zone kinds the simulator gives a meaning to.
const (
	ZoneKindPatient  = "patient"  // a bed space: where devices are used
	ZoneKindClean    = "clean"    // clean utility or equipment store
	ZoneKindSoiled   = "soiled"   // dirty utility: used devices wait there to be cleaned
	ZoneKindCorridor = "corridor" // walked through, never a destination
)

// How simulated devices move through a World, in simulated time (each
// Simulator's TimeScale applies).
//
// A device walks at WalkingSpeed along the shortest path. It is in a zone
// while it is within the first or the last third of a walkway from that
// zone's centre; on the middle third it is between the two zones. Passing
// through a zone on its way thus takes it (a+b)/3/WalkingSpeed, a and b the
// walkways in and out.
//
// An idle device dwells in a zone (exponential, mean 20 min), then walks to
// a patient zone (40 %), a clean zone (40 %) or any room but a corridor
// (20 %), chosen at random among those it can reach. A device whose report
// says in_use walks to a random patient zone (unless it is in one) and
// stays while in use. When the use ends it stays at the bedside (20 min
// plus an exponential tail of mean 10 min, so that a CPAP's mask-off break
// does not send it away), walks to the nearest soiled zone, waits there to
// be cleaned (mean 45 min), walks to the nearest clean zone and stays there
// (mean 2 h) before it wanders again. Every device starts dwelling in a
// clean (50 %) or a patient zone; its first report may send it on.
const (
	WalkingSpeed   = 1.2 // metres per second
	worldRoamMean  = 20 * time.Minute
	worldHoldMin   = 20 * time.Minute
	worldHoldMean  = 10 * time.Minute // beyond worldHoldMin
	worldCleanMean = 45 * time.Minute
	worldStoreMean = 2 * time.Hour
)

// Limits of a World's names.
const (
	maxAntennaName = 32
	maxEPCHex      = 64 // as coap accepts
)

// Validate checks w as NewSimulator would use it. Errors name the field,
// below world: world.edges[3].to: unknown zone "icu-9".
func (w *World) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &coap.FieldError{Field: "world." + field, Err: fmt.Errorf(format, args...)})
	}
	if len(w.Zones) == 0 {
		bad("zones", "required")
	}
	zones := make(map[string]int, len(w.Zones))
	for i, z := range w.Zones {
		switch j, seen := zones[z.ID]; {
		case z.ID == "":
			bad(fmt.Sprintf("zones[%d].id", i), "required")
		case seen:
			bad(fmt.Sprintf("zones[%d].id", i), "%q is also zones[%d]", z.ID, j)
		default:
			zones[z.ID] = i
		}
		if !finite(z.X) || !finite(z.Y) {
			bad(fmt.Sprintf("zones[%d]", i), "x and y must be finite numbers")
		}
	}
	for i, e := range w.Edges {
		from, okFrom := zones[e.From]
		to, okTo := zones[e.To]
		if !okFrom {
			bad(fmt.Sprintf("edges[%d].from", i), "unknown zone %q", e.From)
		}
		if !okTo {
			bad(fmt.Sprintf("edges[%d].to", i), "unknown zone %q", e.To)
		}
		switch {
		case okFrom && okTo && from == to:
			bad(fmt.Sprintf("edges[%d].to", i), "%q: the edge's two ends are the same zone", e.To)
		case !finite(e.Metres) || e.Metres < 0:
			bad(fmt.Sprintf("edges[%d].metres", i), "%v is not a length", e.Metres)
		case e.Metres == 0 && okFrom && okTo:
			a, b := w.Zones[from], w.Zones[to]
			if math.Hypot(a.X-b.X, a.Y-b.Y) == 0 {
				bad(fmt.Sprintf("edges[%d].metres", i), "0, and the centres of %q and %q coincide", e.From, e.To)
			}
		}
	}
	for _, reader := range slices.Sorted(maps.Keys(w.Antennas)) {
		for _, name := range slices.Sorted(maps.Keys(w.Antennas[reader])) {
			field := fmt.Sprintf("antennas[%s][%s]", reader, name)
			if !validAntenna(name) {
				bad(field, "antenna name %q is not 1-%d letters, digits and \":._-\"", name, maxAntennaName)
			}
			if zone := w.Antennas[reader][name]; !known(zones, zone) {
				bad(field, "unknown zone %q", zone)
			}
		}
	}
	epcs := map[string]string{}
	for _, device := range slices.Sorted(maps.Keys(w.Tags)) {
		epc := strings.ToUpper(w.Tags[device])
		field := fmt.Sprintf("tags[%s]", device)
		if _, err := hex.DecodeString(epc); err != nil || epc == "" || len(epc) > maxEPCHex {
			bad(field, "EPC %q is not 1-%d bytes of hex", epc, maxEPCHex/2)
			continue
		}
		if other, ok := epcs[epc]; ok {
			bad(field, "EPC %s is also on %s", epc, other)
		}
		epcs[epc] = device
	}
	return errors.Join(errs...)
}

func known(zones map[string]int, id string) bool {
	_, ok := zones[id]
	return ok
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// validAntenna reports whether name makes a SenML record name rfid/{name}
// that coap accepts.
func validAntenna(name string) bool {
	if name == "" || len(name) > maxAntennaName {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte(":._-", c) >= 0) {
			return false
		}
	}
	return true
}

// worldModel is the shared state of a Simulator's World: where every tagged
// device is, where it is going, and which readers see it. The methods that
// lock it (observe, sightings and the controls) first bring the world up
// to the time of its clock; they are safe for any goroutine. Movement is event driven: each device has its own random
// source and its next event (end of a dwell, edge of a zone on its walk),
// so that where a device is at a given time depends neither on how often
// the world is looked at nor on the other devices.
type worldModel struct {
	mu    sync.Mutex
	clock func() time.Time // simulated time
	now   time.Time
	g     *worldGraph

	movers   []*mover
	byID     map[string]*mover
	in       [][]int32 // by zone: the visible devices in it, by mover index
	near     [][]int32 // by zone: the visible devices between it and a neighbour on its floor
	events   moverQueue
	antennas map[string][]worldAntenna // by reader id, by antenna name
}

// worldAntenna is one reader antenna of a World.
type worldAntenna struct {
	name string
	zone int32
	// gain in [0, 1) shifts the RSSI of every tag it sees: some antennas
	// are better placed than others.
	gain float64
}

// plan is what an autonomous device is doing, which says where it goes
// next.
type plan uint8

const (
	planRoam   plan = iota // idle: dwells, then wanders
	planUse                // in use: at (or on its way to) a patient zone
	planHold               // the use ended: stays at the bedside a while
	planSoiled             // on its way to, or waiting in, a soiled zone
	planClean              // on its way to a clean zone
)

// mover is one tagged device of a World.
type mover struct {
	idx  int32
	id   string
	epc  string
	rnd  *rand.Rand
	gain float64 // in [0, 1): how well the tag faces the antennas

	// Where it is: in zone, or (zone < 0) between zones a and b.
	zone, a, b int32
	indexed    bool // in worldModel.in or near
	walk       *walk
	next       time.Time // of its next event; zero for none
	heapIdx    int       // in worldModel.events, -1 when not there

	plan     plan
	state    string // clinical state, from the device's last report
	scripted bool   // moved by MoveTo, Place or Hide: chooses nothing itself
	hidden   bool   // out of every reader's sight
}

// newWorldModel places the devices movers (those with a tag in w) in w.
// Each device's random source is seeded with seed and its id. clock gives
// the world's simulated time.
func newWorldModel(w *World, seed uint64, movers []string, clock func() time.Time) *worldModel {
	g := newWorldGraph(w)
	m := &worldModel{
		clock: clock, now: clock(), g: g, byID: map[string]*mover{},
		in: make([][]int32, len(g.zones)), near: make([][]int32, len(g.zones)),
		antennas: map[string][]worldAntenna{},
	}
	for reader, ants := range w.Antennas {
		for _, name := range slices.Sorted(maps.Keys(ants)) {
			z, ok := g.index[ants[name]]
			if !ok {
				continue
			}
			h := fnv.New64a()
			h.Write([]byte(reader + "\n" + name))
			m.antennas[reader] = append(m.antennas[reader], worldAntenna{name: name, zone: z, gain: float64(h.Sum64()>>11) / (1 << 53)})
		}
	}
	for _, id := range movers {
		epc, ok := w.Tags[id]
		if !ok || m.byID[id] != nil || len(g.zones) == 0 {
			continue
		}
		h := fnv.New64a()
		h.Write([]byte(id))
		d := &mover{idx: int32(len(m.movers)), id: id, epc: strings.ToUpper(epc), rnd: rand.New(rand.NewPCG(seed, h.Sum64())), heapIdx: -1}
		d.gain = d.rnd.Float64()
		start := ZoneKindClean
		if d.rnd.Float64() < 0.5 {
			start = ZoneKindPatient
		}
		z := m.pick(d.rnd, -1, g.byKind[start])
		if z < 0 {
			z = m.pick(d.rnd, -1, g.rooms)
		}
		if z < 0 {
			z = int32(d.rnd.IntN(len(g.zones)))
		}
		m.movers = append(m.movers, d)
		m.byID[id] = d
		m.setPos(d, z, -1, -1)
		m.schedule(d, m.now.Add(expo(d.rnd, worldRoamMean)))
	}
	return m
}

// advance brings the world up to its clock and returns the time.
func (w *worldModel) advance() time.Time {
	now := w.clock()
	for len(w.events) > 0 && !w.events[0].next.After(now) {
		m := w.events[0]
		t := m.next
		heap.Pop(&w.events)
		m.next = time.Time{}
		w.fire(m, t)
	}
	if now.After(w.now) {
		w.now = now
	}
	return w.now
}

// fire runs m's event due at t: the next leg of its walk, its arrival, or
// the end of its dwell.
func (w *worldModel) fire(m *mover, t time.Time) {
	if wk := m.walk; wk != nil {
		if wk.leg++; wk.leg < len(wk.legs) {
			l := wk.legs[wk.leg]
			w.setPos(m, l.zone, l.a, l.b)
			w.schedule(m, l.until)
			return
		}
		m.walk = nil
		w.arrive(m, t)
		return
	}
	w.dwellEnd(m, t)
}

// arrive is the end of m's walk, at the centre of its destination.
func (w *worldModel) arrive(m *mover, t time.Time) {
	if m.scripted {
		return // stays until it is moved again
	}
	switch m.plan {
	case planUse: // stays while in use
	case planHold:
		w.schedule(m, t.Add(worldHoldMin+expo(m.rnd, worldHoldMean)))
	case planSoiled:
		w.schedule(m, t.Add(expo(m.rnd, worldCleanMean)))
	case planClean:
		m.plan = planRoam
		w.schedule(m, t.Add(expo(m.rnd, worldStoreMean)))
	default:
		w.schedule(m, t.Add(expo(m.rnd, worldRoamMean)))
	}
}

// dwellEnd is the end of m's stay in its zone: it chooses where to go.
func (w *worldModel) dwellEnd(m *mover, t time.Time) {
	if m.scripted || m.plan == planUse || m.zone < 0 {
		return
	}
	if m.plan == planHold {
		m.plan = planSoiled
		if z := w.nearest(m.zone, ZoneKindSoiled); z >= 0 {
			w.walkTo(m, t, z)
			return
		}
	}
	if m.plan == planSoiled {
		m.plan = planClean
		if z := w.nearest(m.zone, ZoneKindClean); z >= 0 {
			w.walkTo(m, t, z)
			return
		}
	}
	m.plan = planRoam
	w.walkTo(m, t, w.roam(m))
}

// roam picks an idle device's next destination, its own zone when it can
// go nowhere.
func (w *worldModel) roam(m *mover) int32 {
	var first []int32
	switch u := m.rnd.Float64(); {
	case u < 0.4:
		first = w.g.byKind[ZoneKindPatient]
	case u < 0.8:
		first = w.g.byKind[ZoneKindClean]
	default:
		first = w.g.rooms
	}
	if z := w.pick(m.rnd, m.zone, first); z >= 0 {
		return z
	}
	if z := w.pick(m.rnd, m.zone, w.g.rooms); z >= 0 {
		return z
	}
	return m.zone
}

// pick returns a random zone of zones, other than from and reachable from
// it (any zone when from is -1), or -1 when there is none.
func (w *worldModel) pick(r *rand.Rand, from int32, zones []int32) int32 {
	ok := func(z int32) bool { return from < 0 || z != from && w.g.reachable(from, z) }
	n := 0
	for _, z := range zones {
		if ok(z) {
			n++
		}
	}
	if n == 0 {
		return -1
	}
	k := r.IntN(n)
	for _, z := range zones {
		if ok(z) {
			if k == 0 {
				return z
			}
			k--
		}
	}
	return -1
}

// nearest returns the zone of kind closest to from by walking distance
// (from itself when it is one), or -1 when none is reachable.
func (w *worldModel) nearest(from int32, kind string) int32 {
	t := w.g.tree(from)
	best := int32(-1)
	for _, z := range w.g.byKind[kind] {
		if d := t.dist[z]; !math.IsInf(d, 1) && (best < 0 || d < t.dist[best]) {
			best = z
		}
	}
	return best
}

// startUse sends m to a patient zone, or keeps it in the one it is in.
func (w *worldModel) startUse(m *mover, t time.Time) {
	m.plan = planUse
	if wk := m.walk; wk != nil {
		if w.g.zones[wk.path[len(wk.path)-1]].kind == ZoneKindPatient {
			return // on its way
		}
	} else if w.g.zones[m.zone].kind == ZoneKindPatient {
		w.unschedule(m)
		return
	}
	from := m.zone
	if from < 0 {
		from = m.a
	}
	if z := w.pick(m.rnd, from, w.g.byKind[ZoneKindPatient]); z >= 0 {
		w.walkTo(m, t, z)
	} else if m.walk == nil {
		w.unschedule(m) // used where it is
	}
}

// walkTo starts m's walk from where it is to dest, along the shortest path.
// It returns false, changing nothing, when no path leads there.
func (w *worldModel) walkTo(m *mover, t time.Time, dest int32) bool {
	var path []int32
	var off float64
	if wk := m.walk; wk != nil {
		a, b, x := wk.at(t)
		if !w.g.reachable(a, dest) {
			return false
		}
		// On to b, or back to a, whichever is shorter in all.
		length := w.g.metres(a, b)
		if length-x+w.g.distance(b, dest) <= x+w.g.distance(a, dest) {
			path, off = append([]int32{a}, w.g.path(b, dest)...), x
		} else {
			path, off = append([]int32{b}, w.g.path(a, dest)...), length-x
		}
	} else {
		if !w.g.reachable(m.zone, dest) {
			return false
		}
		path = w.g.path(m.zone, dest)
	}
	w.unschedule(m)
	m.walk = newWalk(w.g, path, off, t)
	if m.walk == nil { // there already
		w.setPos(m, dest, -1, -1)
		w.arrive(m, t)
		return true
	}
	l := m.walk.legs[0]
	w.setPos(m, l.zone, l.a, l.b)
	w.schedule(m, l.until)
	return true
}

// walk is a device's way along a path of zones.
type walk struct {
	path  []int32
	cum   []float64 // metres from path[0] to path[i]
	off   float64   // metres of the path behind it when it set off
	start time.Time
	legs  []leg
	leg   int // the current one
}

// leg is a stretch of a walk spent in one zone, or between two.
type leg struct {
	until time.Time
	zone  int32 // -1 between a and b
	a, b  int32
}

// newWalk plans the walk along path, off metres of which are behind the
// device at start; nil when nothing is left to walk.
func newWalk(g *worldGraph, path []int32, off float64, start time.Time) *walk {
	wk := &walk{path: path, cum: make([]float64, len(path)), off: off, start: start}
	for i := 1; i < len(path); i++ {
		wk.cum[i] = wk.cum[i-1] + g.metres(path[i-1], path[i])
	}
	total := wk.cum[len(path)-1]
	if total-off <= 0 {
		return nil
	}
	add := func(at float64, zone, a, b int32) {
		if at <= off {
			return // behind it
		}
		until := start.Add(walkTime(at - off))
		if n := len(wk.legs); n > 0 && zone >= 0 && wk.legs[n-1].zone == zone {
			wk.legs[n-1].until = until // on through the zone
			return
		}
		wk.legs = append(wk.legs, leg{until: until, zone: zone, a: a, b: b})
	}
	for i := 0; i+1 < len(path); i++ {
		length := wk.cum[i+1] - wk.cum[i]
		add(wk.cum[i]+length/3, path[i], -1, -1)
		add(wk.cum[i]+2*length/3, -1, path[i], path[i+1])
		add(wk.cum[i+1], path[i+1], -1, -1)
	}
	return wk
}

// walkTime is how long walking metres takes.
func walkTime(metres float64) time.Duration {
	return time.Duration(math.Round(metres / WalkingSpeed * float64(time.Second)))
}

// at returns where the walker is at t: x metres from a on the walkway from
// a to b.
func (wk *walk) at(t time.Time) (a, b int32, x float64) {
	d := min(wk.off+WalkingSpeed*t.Sub(wk.start).Seconds(), wk.cum[len(wk.cum)-1])
	i, _ := slices.BinarySearch(wk.cum, d) // the first point at or past d
	i = max(1, i)
	return wk.path[i-1], wk.path[i], d - wk.cum[i-1]
}

// setPos moves m to zone, or between a and b, and into the readers' view
// unless it is hidden.
func (w *worldModel) setPos(m *mover, zone, a, b int32) {
	w.unindex(m)
	m.zone, m.a, m.b = zone, a, b
	if !m.hidden {
		w.index(m)
	}
}

func (w *worldModel) index(m *mover) {
	switch {
	case m.zone >= 0:
		w.in[m.zone] = insertSorted(w.in[m.zone], m.idx)
	case w.g.zones[m.a].floor == w.g.zones[m.b].floor: // in a lift or on the stairs, no reader sees it
		w.near[m.a] = insertSorted(w.near[m.a], m.idx)
		w.near[m.b] = insertSorted(w.near[m.b], m.idx)
	}
	m.indexed = true
}

func (w *worldModel) unindex(m *mover) {
	if !m.indexed {
		return
	}
	if m.zone >= 0 {
		w.in[m.zone] = removeSorted(w.in[m.zone], m.idx)
	} else {
		w.near[m.a] = removeSorted(w.near[m.a], m.idx)
		w.near[m.b] = removeSorted(w.near[m.b], m.idx)
	}
	m.indexed = false
}

func insertSorted(s []int32, v int32) []int32 {
	i, found := slices.BinarySearch(s, v)
	if found {
		return s
	}
	return slices.Insert(s, i, v)
}

func removeSorted(s []int32, v int32) []int32 {
	if i, found := slices.BinarySearch(s, v); found {
		return slices.Delete(s, i, i+1)
	}
	return s
}

// schedule sets m's next event.
func (w *worldModel) schedule(m *mover, t time.Time) {
	m.next = t
	if m.heapIdx >= 0 {
		heap.Fix(&w.events, m.heapIdx)
	} else {
		heap.Push(&w.events, m)
	}
}

// unschedule cancels m's next event.
func (w *worldModel) unschedule(m *mover) {
	if m.heapIdx >= 0 {
		heap.Remove(&w.events, m.heapIdx)
	}
	m.next = time.Time{}
}

// observe learns a device's clinical state from its report.
func (w *worldModel) observe(m *mover, state string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.advance()
	was := m.state
	m.state = state
	if m.scripted || was == state {
		return
	}
	switch inUse, wasInUse := state == coap.StateInUse, was == coap.StateInUse; {
	case inUse && !wasInUse:
		w.startUse(m, now)
	case wasInUse && !inUse:
		m.plan = planHold
		if m.walk == nil {
			w.schedule(m, now.Add(worldHoldMin+expo(m.rnd, worldHoldMean)))
		} // else it holds where it arrives
	}
}

// lookup returns the device and the zone called zone; ok is false when
// either is unknown.
func (w *worldModel) lookup(device, zone string) (*mover, int32, bool) {
	m, ok := w.byID[device]
	z, okZone := w.g.index[zone]
	return m, z, ok && okZone
}

// moveTo makes a device walk to zone and stay there.
func (w *worldModel) moveTo(device, zone string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	m, z, ok := w.lookup(device, zone)
	if !ok {
		return false
	}
	now := w.advance()
	from := m.zone
	if from < 0 {
		from = m.a
	}
	if !w.g.reachable(from, z) {
		return false
	}
	m.scripted = true
	w.show(m)
	return w.walkTo(m, now, z)
}

// place puts a device in zone at once, to stay there.
func (w *worldModel) place(device, zone string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	m, z, ok := w.lookup(device, zone)
	if !ok {
		return false
	}
	w.advance()
	m.scripted = true
	m.hidden = false
	m.walk = nil
	w.unschedule(m)
	w.setPos(m, z, -1, -1)
	return true
}

// hide stops a device where it is (in the zone it is in, or the nearer end
// of its walkway) and takes it out of every reader's sight.
func (w *worldModel) hide(device string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	m, ok := w.byID[device]
	if !ok {
		return false
	}
	now := w.advance()
	z := m.zone
	if m.walk != nil && z < 0 {
		a, b, x := m.walk.at(now)
		if z = a; x > w.g.metres(a, b)/2 {
			z = b
		}
	}
	m.scripted = true
	m.hidden = true
	m.walk = nil
	w.unschedule(m)
	w.setPos(m, z, -1, -1)
	return true
}

// show puts a hidden device back in the readers' view.
func (w *worldModel) show(m *mover) {
	if m.hidden {
		m.hidden = false
		w.index(m)
	}
}

// release gives a scripted device back its own behaviour.
func (w *worldModel) release(device string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	m, ok := w.byID[device]
	if !ok {
		return false
	}
	now := w.advance()
	if !m.scripted {
		return true
	}
	m.scripted = false
	w.show(m)
	if m.state == coap.StateInUse {
		w.startUse(m, now)
		return true
	}
	m.plan = planRoam
	if m.walk == nil {
		w.schedule(m, now.Add(expo(m.rnd, worldRoamMean)))
	} // else it dwells where it arrives
	return true
}

// position returns where a device is: its zone ("" between two zones) and
// whether it is walking.
func (w *worldModel) position(device string) (zone string, walking, ok bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	m, ok := w.byID[device]
	if !ok {
		return "", false, false
	}
	w.advance()
	if m.zone >= 0 {
		zone = w.g.zones[m.zone].id
	}
	return zone, m.walk != nil, true
}

// member returns a device's part in the world, nil when it has none: a
// reader with antennas in it, or a device that moves in it.
func (w *worldModel) member(device string, profile string) *worldMember {
	wm := &worldMember{w: w, mover: w.byID[device]}
	if profile == coap.ProfileRFIDReader {
		wm.antennas = w.antennas[device]
	}
	if wm.mover == nil && len(wm.antennas) == 0 {
		return nil
	}
	return wm
}

// worldMember is a simulated device's part in its Simulator's World.
type worldMember struct {
	w        *worldModel
	mover    *mover         // nil for a device that does not move
	antennas []worldAntenna // of a reader, nil for other devices
}

// attach gives a reader profile its view of the world.
func (wm *worldMember) attach(p Profile) {
	if r, ok := p.(*reader); ok && len(wm.antennas) > 0 {
		r.world, r.antennas = wm.w, wm.antennas
	}
}

// observe passes the clinical state of the device's report to the world.
func (wm *worldMember) observe(state string) {
	if wm.mover != nil {
		wm.w.observe(wm.mover, state)
	}
}

// moverQueue is a min-heap of devices by next event, then index.
type moverQueue []*mover

func (q moverQueue) Len() int { return len(q) }

func (q moverQueue) Less(i, j int) bool {
	a, b := q[i], q[j]
	return a.next.Before(b.next) || a.next.Equal(b.next) && a.idx < b.idx
}

func (q moverQueue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].heapIdx, q[j].heapIdx = i, j
}

func (q *moverQueue) Push(x any) {
	m := x.(*mover)
	m.heapIdx = len(*q)
	*q = append(*q, m)
}

func (q *moverQueue) Pop() any {
	old := *q
	m := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	m.heapIdx = -1
	return m
}
