package location

import (
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/medfleet/medfleet/inventory/facility"
	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// Par levels are counted as things happen: each device counts towards at
// most one unit and profile (it is available, located in the unit and not
// stale), and recount moves it between counts when any of that changes.

// ParLevels returns each unit's stock against its par levels, counted
// now (the running counts only decide when to tell watchers). unit narrows
// it to one unit.
func (e *Engine) ParLevels(unit string, belowOnly bool) []*pb.ParStatus {
	now := e.now()
	e.mu.Lock()
	defer e.mu.Unlock()
	counted := map[string]map[parKey]int{} // unit -> counts, each unit counted once
	var out []*pb.ParStatus
	for _, p := range e.fac.Load().ParLevels() {
		if unit != "" && p.Unit != unit {
			continue
		}
		n, ok := counted[p.Unit]
		if !ok {
			n = map[parKey]int{}
			for _, zone := range e.unitZones[p.Unit] {
				for dev := range e.byZone[zone] {
					if k := e.countKey(dev, e.tracks[dev], now); k != (parKey{}) {
						n[k]++
					}
				}
			}
			counted[p.Unit] = n
		}
		s := parStatus(p, n[parKey{p.Unit, p.Profile}])
		if !belowOnly || s.GetBelow() {
			out = append(out, s)
		}
	}
	return out
}

func parStatus(p facility.ParLevel, n int) *pb.ParStatus {
	return &pb.ParStatus{Unit: p.Unit, UnitName: p.UnitName, Profile: p.Profile, Min: int32(p.Min), Available: int32(n), Below: n < p.Min}
}

// countKey is what a device counts towards now, the zero key for nothing.
// e.mu is held.
func (e *Engine) countKey(dev string, t *track, now time.Time) parKey {
	if t.zone == "" || now.Sub(t.seen) > e.cfg.StaleAfter {
		return parKey{}
	}
	z, ok := e.fac.Load().Zone(t.zone)
	if !ok || z.Place.Unit == "" {
		return parKey{}
	}
	d, ok := e.dir.Device(dev)
	if !ok || d.Decommissioned || d.Availability != pb.Availability_AVAILABILITY_AVAILABLE {
		return parKey{}
	}
	return parKey{z.Place.Unit, d.Profile}
}

// recount moves a device to the count it belongs to now, and tells
// watchers of a par level crossed either way. e.mu is held.
func (e *Engine) recount(dev string, t *track, now time.Time) {
	k := e.countKey(dev, t, now)
	if k == t.counted {
		return
	}
	old := t.counted
	t.counted = k
	if old != (parKey{}) {
		e.counts[old]--
		e.parChanged(old, e.counts[old]+1, now)
	}
	if k != (parKey{}) {
		e.counts[k]++
		e.parChanged(k, e.counts[k]-1, now)
	}
}

// parChanged tells watchers when a unit's count of a profile crossed its
// par level. e.mu is held.
func (e *Engine) parChanged(k parKey, before int, now time.Time) {
	p, ok := e.parMin[k]
	if !ok {
		return
	}
	after := e.counts[k]
	switch {
	case before >= p.Min && after < p.Min:
		e.publishPar(parStatus(p, after), pb.LocationEvent_KIND_PAR_BELOW, now)
	case before < p.Min && after >= p.Min:
		e.publishPar(parStatus(p, after), pb.LocationEvent_KIND_PAR_RESTORED, now)
	}
}

// recountAll rebuilds every count, for a new facility or a load. e.mu is
// held.
func (e *Engine) recountAll(now time.Time) {
	e.counts = map[parKey]int{}
	for _, t := range e.tracks {
		t.counted = parKey{}
	}
	for dev, t := range e.tracks {
		if k := e.countKey(dev, t, now); k != (parKey{}) {
			t.counted = k
			e.counts[k]++
		}
	}
}

func (e *Engine) publishPar(s *pb.ParStatus, kind pb.LocationEvent_Kind, now time.Time) {
	ev := &pb.LocationEvent{Kind: kind, Time: timestamppb.New(now), Par: s}
	for w := range e.subs {
		if (w.unit == "" || w.unit == s.GetUnit()) && (w.profile == "" || w.profile == s.GetProfile()) {
			w.send(ev)
		}
	}
}
