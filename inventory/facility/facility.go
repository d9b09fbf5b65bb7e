package facility

import (
	"slices"
	"strings"
	"sync"
	"time"
)

// Facility is a parsed and validated facility document. It is immutable and
// safe for concurrent use; Parse is the only way to make one.
type Facility struct {
	zones     []Zone           // document order; a zone's index is its graph node
	zoneIndex map[string]int32 // zone id -> index
	roomZone  map[string]int32 // room id -> its first zone
	unitZone  map[string]int32 // unit id -> the first zone of its first room
	units     []Place
	floors    []FloorPlan
	par       []ParLevel
	timeZones map[string]*time.Location // site id -> time zone, when given

	antennas map[antenna]int32 // reader antenna -> zone
	readers  int
	bssids   map[string]int32 // lower-case BSSID -> zone

	graph graph
	walks sync.Pool // *walker
}

// antenna names one antenna of one reader.
type antenna struct{ reader, name string }

// Place is where a zone is, from the site down, with the display names of
// every level. Units returns places filled down to the unit only.
type Place struct {
	Site, Building, Floor, Unit, Room, Zone                         string
	SiteName, BuildingName, FloorName, UnitName, RoomName, ZoneName string
}

// Zone is the smallest place the facility locates devices in: a rectangle
// on its floor, in metres, with the top-left corner at X, Y.
type Zone struct {
	ID, Name   string
	X, Y, W, H float64
	Place      Place
}

// Centre returns the middle of the zone's rectangle, the point distances
// between zones are measured from.
func (z Zone) Centre() (x, y float64) { return z.X + z.W/2, z.Y + z.H/2 }

// ParLevel is the fewest available devices of a profile a unit should hold.
type ParLevel struct {
	Unit, UnitName, Profile string
	Min                     int
}

// FloorPlan is one floor with its zones, for drawing. Width and Height are
// the document's, or the bounding box of the zones when it gives none.
type FloorPlan struct {
	Site, Building, Floor, Name string
	Level                       int
	Width, Height               float64
	Zones                       []Zone // document order, with Place
}

// Zone returns the zone with the given id.
func (f *Facility) Zone(id string) (Zone, bool) {
	i, ok := f.zoneIndex[id]
	if !ok {
		return Zone{}, false
	}
	return f.zones[i], true
}

// Zones returns the number of zones.
func (f *Facility) Zones() int { return len(f.zones) }

// Resolve turns a zone, room or unit id into a zone id: the zone itself, the
// first zone of the room, or the first zone of the unit's first room, in
// document order. Ids are unique per kind only, so a zone id wins over a room
// id, and a room id over a unit id.
func (f *Facility) Resolve(id string) (zone string, ok bool) {
	if i, ok := f.zoneIndex[id]; ok {
		return f.zones[i].ID, true
	}
	if i, ok := f.roomZone[id]; ok {
		return f.zones[i].ID, true
	}
	if i, ok := f.unitZone[id]; ok {
		return f.zones[i].ID, true
	}
	return "", false
}

// ReaderZone returns the zone an antenna of an RFID reader covers. reader
// is the reader's device id.
func (f *Facility) ReaderZone(reader, antennaName string) (zone string, ok bool) {
	i, ok := f.antennas[antenna{reader, antennaName}]
	if !ok {
		return "", false
	}
	return f.zones[i].ID, true
}

// Readers returns the number of RFID readers placed.
func (f *Facility) Readers() int { return f.readers }

// AccessPointZone returns the zone of the Wi-Fi access point with the given
// BSSID, in any case.
func (f *Facility) AccessPointZone(bssid string) (zone string, ok bool) {
	i, ok := f.bssids[strings.ToLower(bssid)]
	if !ok {
		return "", false
	}
	return f.zones[i].ID, true
}

// AccessPoints returns the number of Wi-Fi access points placed.
func (f *Facility) AccessPoints() int { return len(f.bssids) }

// ParLevels returns every unit's par levels in document order.
func (f *Facility) ParLevels() []ParLevel { return slices.Clone(f.par) }

// Floors returns the floor plans, ordered by site and building (document
// order), then by level; floors of the same level keep document order.
func (f *Facility) Floors() []FloorPlan {
	out := slices.Clone(f.floors)
	for i := range out {
		out[i].Zones = slices.Clone(out[i].Zones)
	}
	return out
}

// Units returns every unit, filled down to the unit with its names, in
// document order: the choices of a unit picker.
func (f *Facility) Units() []Place { return slices.Clone(f.units) }

// TimeZone returns a site's time zone, when the document gives one.
func (f *Facility) TimeZone(site string) (*time.Location, bool) {
	loc, ok := f.timeZones[site]
	return loc, ok
}

// Antennas lists where every reader's antennas are: reader device id ->
// antenna name -> zone id.
func (f *Facility) Antennas() map[string]map[string]string {
	out := map[string]map[string]string{}
	for a, z := range f.antennas {
		if out[a.reader] == nil {
			out[a.reader] = map[string]string{}
		}
		out[a.reader][a.name] = f.zones[z].ID
	}
	return out
}
