package fhir

import (
	"cmp"
	"strings"

	"github.com/medfleet/medfleet/inventory/facility"
)

// SystemPhysicalType is the code system of Location.physicalType.
const SystemPhysicalType = "http://terminology.hl7.org/CodeSystem/location-physical-type"

// Location is a FHIR R4 Location.
type Location struct {
	ID           string           `json:"id,omitempty"`
	Identifier   []Identifier     `json:"identifier,omitempty"`
	Status       string           `json:"status,omitempty"`
	Name         string           `json:"name,omitempty"`
	Description  string           `json:"description,omitempty"`
	Mode         string           `json:"mode,omitempty"`
	PhysicalType *CodeableConcept `json:"physicalType,omitempty"`
	PartOf       *Reference       `json:"partOf,omitempty"`
}

func (Location) ResourceType() string { return "Location" }
func (l Location) ResourceID() string { return l.ID }
func (l Location) MarshalJSON() ([]byte, error) {
	type location Location
	return marshalResource("Location", location(l))
}

// Level is a level of the facility.
type Level int

const (
	LevelSite Level = iota
	LevelBuilding
	LevelFloor
	LevelUnit
	LevelRoom
	LevelZone
)

// levels are, per level, the prefix of Location ids, the physical type
// (location-physical-type) with its display, and the facility's name of
// the level (for identifier systems).
var levels = [...]struct{ prefix, code, display, name string }{
	LevelSite:     {"si-", "si", "Site", "site"},
	LevelBuilding: {"bu-", "bu", "Building", "building"},
	LevelFloor:    {"lvl-", "lvl", "Level", "floor"},
	LevelUnit:     {"wa-", "wa", "Ward", "unit"},
	LevelRoom:     {"ro-", "ro", "Room", "room"},
	LevelZone:     {"area-", "area", "Area", "zone"},
}

// PhysicalType is the location-physical-type code of the level: si, bu,
// lvl, wa, ro or area.
func (l Level) PhysicalType() string { return levels[l].code }

// LocationID is the Location id of a place of the facility: its facility
// id (unique per level only) behind a prefix per level, "wa-4-west".
func LocationID(l Level, id string) string { return encodeID(levels[l].prefix, id, "") }

// Place is one place of the facility, a node of a Tree.
type Place struct {
	Level Level
	// ID is the facility id; LocationID the Location id.
	ID, LocationID, Name string
	// Site is the facility id of the site the place is in.
	Site string
	// Parent is the index of the place's parent in its Tree, -1 for a
	// site.
	Parent int
}

// Tree is the facility as Locations: its places with every place after
// its parent, depth first, in the order of the facility's floor plans
// (sites and buildings in document order, floors by level, zones in
// document order). It is immutable.
//
// The facility names sites and buildings in their zones' places only: a
// site or building none of whose floors has a zone is named by its id,
// and a site or building with no floor at all is not in the tree.
type Tree struct {
	places   []Place
	children [][]int
	byID     map[string]int // Location id -> index
}

// NewTree builds the tree of a facility; f nil is the empty tree.
func NewTree(f *facility.Facility) *Tree {
	t := &Tree{byID: map[string]int{}}
	if f == nil {
		return t
	}
	// add adds a place once (facility ids are unique per level, and so
	// Location ids in the whole tree) and returns its index.
	add := func(l Level, id, name, site string, parent int) int {
		lid := LocationID(l, id)
		if i, ok := t.byID[lid]; ok {
			if t.places[i].Name == id && name != "" {
				t.places[i].Name = name // named by a later floor's zones
			}
			return i
		}
		i := len(t.places)
		t.places = append(t.places, Place{Level: l, ID: id, LocationID: lid, Name: cmp.Or(name, id), Site: site, Parent: parent})
		t.children = append(t.children, nil)
		if parent >= 0 {
			t.children[parent] = append(t.children[parent], i)
		}
		t.byID[lid] = i
		return i
	}
	for _, fp := range f.Floors() {
		var siteName, buildingName string
		if len(fp.Zones) > 0 {
			siteName, buildingName = fp.Zones[0].Place.SiteName, fp.Zones[0].Place.BuildingName
		}
		site := add(LevelSite, fp.Site, siteName, fp.Site, -1)
		building := add(LevelBuilding, fp.Building, buildingName, fp.Site, site)
		floor := add(LevelFloor, fp.Floor, fp.Name, fp.Site, building)
		for _, z := range fp.Zones {
			unit := add(LevelUnit, z.Place.Unit, z.Place.UnitName, fp.Site, floor)
			room := add(LevelRoom, z.Place.Room, z.Place.RoomName, fp.Site, unit)
			add(LevelZone, z.ID, z.Name, fp.Site, room)
		}
	}
	return t
}

// Len returns the number of places.
func (t *Tree) Len() int { return len(t.places) }

// Place returns the place at index i.
func (t *Tree) Place(i int) Place { return t.places[i] }

// Index returns the index of the place with a Location id.
func (t *Tree) Index(locationID string) (int, bool) {
	i, ok := t.byID[locationID]
	return i, ok
}

// Children returns the indexes of the places directly in place i.
func (t *Tree) Children(i int) []int { return t.children[i] }

// Below calls fn with place i and every place in it, depth first, until
// fn returns false.
func (t *Tree) Below(i int, fn func(j int) bool) bool {
	if !fn(i) {
		return false
	}
	for _, c := range t.children[i] {
		if !t.Below(c, fn) {
			return false
		}
	}
	return true
}

// Location returns the Location of place i.
func (t *Tree) Location(i int) *Location {
	p := t.places[i]
	pt := coded(SystemPhysicalType, levels[p.Level].code, levels[p.Level].display)
	l := &Location{
		ID:           p.LocationID,
		Identifier:   []Identifier{{System: SystemFacility + levels[p.Level].name, Value: p.ID}},
		Status:       "active",
		Name:         p.Name,
		Mode:         "instance",
		PhysicalType: &pt,
	}
	var path []string
	for j := p.Parent; j >= 0; j = t.places[j].Parent {
		path = append(path, t.places[j].Name)
	}
	if len(path) > 0 {
		parent := t.places[p.Parent]
		l.PartOf = &Reference{Reference: "Location/" + parent.LocationID, Display: parent.Name}
		l.Description = p.Name + ", " + strings.Join(path, ", ")
	}
	return l
}
