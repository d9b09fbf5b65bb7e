package facility

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestZone(t *testing.T) {
	f := parseSample(t)
	got, ok := f.Zone("4w-401-entry")
	want := Zone{ID: "4w-401-entry", Name: "Entry", X: 0.5, Y: 8, W: 5, H: 4, Place: Place{
		Site: "north", Building: "main", Floor: "main-4", Unit: "4-west", Room: "4w-401", Zone: "4w-401-entry",
		SiteName: "North Campus", BuildingName: "Main Building", FloorName: "Floor 4",
		UnitName: "4 West Medical-Surgical", RoomName: "Room 401", ZoneName: "Entry",
	}}
	if !ok {
		t.Fatal(`Zone("4w-401-entry") not found`)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf(`Zone("4w-401-entry") mismatch (-want +got):\n%s`, diff)
	}
	if x, y := got.Centre(); x != 3 || y != 10 {
		t.Errorf("Centre() = %v, %v, want 3, 10", x, y)
	}
	if _, ok := f.Zone("4w-401"); ok {
		t.Error(`Zone("4w-401") of a room found, want only zones`)
	}
}

func TestResolve(t *testing.T) {
	f := parseSample(t)
	// In this document a room has the id of a zone of another room, and a
	// unit the id of a room.
	shadowed, err := Parse([]byte(strings.NewReplacer("- id: store", "- id: a2", "- id: up\n", "- id: hall\n").Replace(twoFloors)))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		f      *Facility
		id     string
		want   string
		wantOK bool
	}{
		{f, "4w-401-entry", "4w-401-entry", true}, // a zone
		{f, "4w-401", "4w-401-bed", true},         // a room: its first zone
		{f, "4w-clean-utility", "4w-clean", true},
		{f, "4-west", "4w-401-bed", true}, // a unit: its first room's first zone
		{f, "4-east", "4e-411-bed", true},
		{f, "spd", "spd-decon", true},
		{f, "main-4", "", false}, // floors are not resolved
		{f, "north", "", false},
		{f, "", "", false},
		{shadowed, "a2", "a2", true},   // the zone wins over the room
		{shadowed, "hall", "c1", true}, // the room wins over the unit
	}
	for _, tc := range tests {
		got, ok := tc.f.Resolve(tc.id)
		if got != tc.want || ok != tc.wantOK {
			t.Errorf("Resolve(%q) = %q, %v, want %q, %v", tc.id, got, ok, tc.want, tc.wantOK)
		}
	}
}

func TestReaderZone(t *testing.T) {
	f := parseSample(t)
	tests := []struct {
		reader, antenna string
		want            string
		wantOK          bool
	}{
		{"sim-rfid-0003", "1", "4w-corridor-a", true},
		{"sim-rfid-0003", "2", "4w-corridor-b", true},
		{"sim-rfid-0193", "4", "0-hall", true},
		{"sim-rfid-0003", "5", "", false},
		{"sim-rfid-0004", "1", "", false},
		{"SIM-RFID-0003", "1", "", false}, // device ids are case-sensitive
	}
	for _, tc := range tests {
		got, ok := f.ReaderZone(tc.reader, tc.antenna)
		if got != tc.want || ok != tc.wantOK {
			t.Errorf("ReaderZone(%q, %q) = %q, %v, want %q, %v", tc.reader, tc.antenna, got, ok, tc.want, tc.wantOK)
		}
	}
}

func TestAccessPointZone(t *testing.T) {
	f := parseSample(t)
	tests := []struct {
		bssid  string
		want   string
		wantOK bool
	}{
		{"0a:1b:2c:3d:4e:5f", "4w-corridor-a", true},
		{"0A:1B:2C:3D:4E:5F", "4w-corridor-a", true},
		{"0a:1b:2c:3d:0e:5f", "spd-corridor-a", true}, // upper case in the document
		{"0a:1b:2c:3d:4e:60", "", false},
		{"", "", false},
	}
	for _, tc := range tests {
		got, ok := f.AccessPointZone(tc.bssid)
		if got != tc.want || ok != tc.wantOK {
			t.Errorf("AccessPointZone(%q) = %q, %v, want %q, %v", tc.bssid, got, ok, tc.want, tc.wantOK)
		}
	}
}

func TestParLevels(t *testing.T) {
	f := parseSample(t)
	want := []ParLevel{
		{"spd", "Sterile Processing (SPD)", "infusion-pump", 10},
		{"spd", "Sterile Processing (SPD)", "cpap", 4},
		{"3-west", "3 West Telemetry", "infusion-pump", 5},
		{"3-west", "3 West Telemetry", "cpap", 1},
		{"4-west", "4 West Medical-Surgical", "infusion-pump", 6},
		{"4-east", "4 East Intensive Care (ICU)", "infusion-pump", 8},
		{"4-east", "4 East Intensive Care (ICU)", "cpap", 2},
	}
	if diff := cmp.Diff(want, f.ParLevels()); diff != "" {
		t.Errorf("ParLevels() mismatch (-want +got):\n%s", diff)
	}
}

func TestUnits(t *testing.T) {
	f := parseSample(t)
	units := f.Units()
	var ids []string
	for _, u := range units {
		ids = append(ids, u.Unit)
	}
	want := []string{"spd", "0-core", "biomed", "3-west", "3-core", "4-west", "4-core", "4-east"}
	if diff := cmp.Diff(want, ids); diff != "" {
		t.Errorf("Units() ids mismatch (-want +got):\n%s", diff)
	}
	wantLast := Place{Site: "north", Building: "main", Floor: "main-4", Unit: "4-east",
		SiteName: "North Campus", BuildingName: "Main Building", FloorName: "Floor 4", UnitName: "4 East Intensive Care (ICU)"}
	if diff := cmp.Diff(wantLast, units[len(units)-1]); diff != "" {
		t.Errorf("Units()[last] mismatch (-want +got):\n%s", diff)
	}
	units[0].Unit = "changed"
	if f.Units()[0].Unit != "spd" {
		t.Error("Units() returned the facility's own slice")
	}
}

func TestFloors(t *testing.T) {
	// twoFloors lists level 2 before level 1; a second building comes
	// after it in the document and is ordered after it.
	doc := twoFloors + `
`
	doc = strings.Replace(doc, "connections:", `      - id: annex
        name: Annex
        floors:
          - id: annex-0
            name: Annex Ground
            level: 0
            width: 30
            height: 20
            units:
              - id: annex-unit
                name: Annex Unit
                rooms:
                  - id: annex-room
                    name: Annex Room
                    zones:
                      - {id: annex-zone, name: Z, x: 1, y: 1, w: 2, h: 2}
connections:`, 1)
	f, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	type floor struct {
		Building, Floor string
		Level           int
		Width, Height   float64
		Zones           []string
	}
	var got []floor
	for _, fl := range f.Floors() {
		g := floor{fl.Building, fl.Floor, fl.Level, fl.Width, fl.Height, nil}
		for _, z := range fl.Zones {
			g.Zones = append(g.Zones, z.ID)
			if z.Place.Floor != fl.Floor || z.Place.Zone != z.ID {
				t.Errorf("Floors(): zone %s has place %+v", z.ID, z.Place)
			}
		}
		got = append(got, g)
	}
	want := []floor{
		{"b", "f1", 1, 21, 21, []string{"a1", "a2", "c1", "s1", "st", "isle"}}, // bounding box: isle ends at 21, 21
		{"b", "f2", 2, 12, 6, []string{"s2", "c2"}},
		{"annex", "annex-0", 0, 30, 20, []string{"annex-zone"}}, // as given
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Floors() mismatch (-want +got):\n%s", diff)
	}
}

func TestTimeZone(t *testing.T) {
	f := parseSample(t)
	loc, ok := f.TimeZone("north")
	if !ok || loc.String() != "Europe/Paris" {
		t.Errorf(`TimeZone("north") = %v, %v, want Europe/Paris`, loc, ok)
	}
	if _, ok := f.TimeZone("south"); ok {
		t.Error(`TimeZone("south") found, want no such site`)
	}
}

func TestEdges(t *testing.T) {
	f := parseSample(t)
	edges := f.Edges()
	if len(edges) == 0 {
		t.Fatal("no edges")
	}
	// Every edge's cost is the walking distance between its ends or more
	// (a shorter path may exist), and both ends are zones.
	for _, e := range edges {
		d, ok := f.Distance(e.From, e.To)
		if !ok || d > e.Metres+1e-9 {
			t.Errorf("edge %v: distance %v (reachable %v)", e, d, ok)
		}
	}
}
