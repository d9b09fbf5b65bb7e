package fhir

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/medfleet/medfleet/fhir/fhirtest"
	"github.com/medfleet/medfleet/inventory/facility"
	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// golden compares a resource's JSON with testdata/name.json (rewriting it
// with -update) and validates it against the FHIR R4 definitions.
func golden(t *testing.T, name string, r Resource) {
	t.Helper()
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	b = append(b, '\n')
	if err := fhirtest.Validate(b); err != nil {
		t.Errorf("%s is not valid FHIR R4: %v\n%s", name, err, b)
	}
	path := filepath.Join("testdata", name+".json")
	if *update {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	if !bytes.Equal(b, want) {
		t.Errorf("%s changed (run go test -update if that is right):\n got %s\nwant %s", name, b, want)
	}
}

func hospital(t *testing.T) *facility.Facility {
	t.Helper()
	b, err := os.ReadFile("../examples/facility/hospital.yaml")
	if err != nil {
		t.Fatal(err)
	}
	f, err := facility.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

var seen = time.Date(2026, 3, 14, 9, 26, 53, 0, time.UTC)

// pump is a device with everything the mapping reads.
func pump() *pb.Device {
	battery := 87.5
	return &pb.Device{
		Name: "devices/pump-0001", Profile: "infusion-pump", Model: "Alaris 8015", Manufacturer: "BD",
		Serial: "12345678", Udi: "(01)00885403801504(11)230115(17)280131(10)LOT42(21)12345678",
		Site: "north", AssetTag: "BME-004471", RiskClass: pb.RiskClass_RISK_CLASS_HIGH,
		UdiCarrier: &pb.UdiCarrier{DeviceIdentifier: "00885403801504", Issuer: "GS1", Lot: "LOT42", Serial: "12345678",
			ManufactureDate: "2023-01-15", ExpiryDate: "2028-01", CarrierHrf: "(01)00885403801504(11)230115(17)280131(10)LOT42(21)12345678"},
		Status: &pb.DeviceStatus{
			UsageSeconds: 4321.5 * 3600, FirmwareVersion: "12.1.2", Connectivity: pb.Connectivity_CONNECTIVITY_ONLINE,
			LastSeenTime: timestamppb.New(seen), BatteryPercent: &battery, Availability: pb.Availability_AVAILABILITY_IN_USE,
		},
	}
}

func TestDeviceGolden(t *testing.T) {
	f := hospital(t)
	bed, ok := f.Zone("4w-401-bed")
	if !ok {
		t.Fatal("the sample facility has no zone 4w-401-bed")
	}
	golden(t, "device", NewDevice(pump(), &bed))
	// A device that says little, decommissioned.
	bare := &pb.Device{Name: "devices/PUMP_0002", Profile: "infusion-pump", DecommissionTime: timestamppb.New(seen),
		Status: &pb.DeviceStatus{Connectivity: pb.Connectivity_CONNECTIVITY_OFFLINE}}
	golden(t, "device-decommissioned", NewDevice(bare, nil))
}

func TestDeviceStatus(t *testing.T) {
	for _, tc := range []struct {
		a               pb.Availability
		decommissioned  bool
		want, wantAvail string
	}{
		{pb.Availability_AVAILABILITY_UNSPECIFIED, false, StatusActive, ""},
		{pb.Availability_AVAILABILITY_AVAILABLE, false, StatusActive, "available"},
		{pb.Availability_AVAILABILITY_SOILED, false, StatusActive, "soiled"},
		{pb.Availability_AVAILABILITY_IN_MAINTENANCE, false, StatusActive, "in-maintenance"},
		{pb.Availability_AVAILABILITY_OUT_OF_SERVICE, false, StatusInactive, "out-of-service"},
		{pb.Availability_AVAILABILITY_AVAILABLE, true, StatusInactive, "decommissioned"},
	} {
		d := &pb.Device{Name: "devices/d", Status: &pb.DeviceStatus{Availability: tc.a}}
		if tc.decommissioned {
			d.DecommissionTime = timestamppb.New(seen)
		}
		got := NewDevice(d, nil)
		var avail string
		for _, e := range got.Extension {
			if e.URL == ExtAvailability {
				avail = e.ValueCode
			}
		}
		if got.Status != tc.want || avail != tc.wantAvail {
			t.Errorf("NewDevice(%v, decommissioned %v): status %q, availability %q; want %q, %q", tc.a, tc.decommissioned, got.Status, avail, tc.want, tc.wantAvail)
		}
	}
}

func TestDeviceMetricsGolden(t *testing.T) {
	ms := NewDeviceMetrics(pump())
	if len(ms) != 2 {
		t.Fatalf("NewDeviceMetrics(pump) = %d metrics, want usage hours and battery", len(ms))
	}
	golden(t, "metric-usage-hours", ms[0])
	golden(t, "metric-battery", ms[1])
	// Never seen, no battery: one metric, off, without a value.
	ms = NewDeviceMetrics(&pb.Device{Name: "devices/new"})
	if len(ms) != 1 || ms[0].ID != "new-usage-hours" || ms[0].OperationalStatus != "off" || ms[0].Extension != nil {
		t.Errorf("NewDeviceMetrics(never seen) = %+v, want one usage-hours metric, off, without a value", ms)
	}
}

func TestTree(t *testing.T) {
	tr := NewTree(hospital(t))
	counts := map[Level]int{}
	for i := range tr.Len() {
		p := tr.Place(i)
		counts[p.Level]++
		if j, ok := tr.Index(p.LocationID); !ok || j != i {
			t.Errorf("Index(%q) = %d, %v; want %d", p.LocationID, j, ok, i)
		}
		// partOf climbs one level at a time to a site.
		l, steps := i, 0
		for tr.Place(l).Parent >= 0 {
			parent := tr.Place(l).Parent
			if parent >= l || tr.Place(parent).Level != tr.Place(l).Level-1 {
				t.Fatalf("%s: parent %s is not the level above, before it", tr.Place(l).LocationID, tr.Place(parent).LocationID)
			}
			l, steps = parent, steps+1
		}
		if tr.Place(l).Level != LevelSite || steps != int(p.Level) {
			t.Errorf("%s: partOf reaches %s in %d steps, want a site in %d", p.LocationID, tr.Place(l).LocationID, steps, p.Level)
		}
	}
	// examples/facility/hospital.yaml: one site, one building, 5 floors.
	if counts[LevelSite] != 1 || counts[LevelBuilding] != 1 || counts[LevelFloor] < 2 || counts[LevelZone] < 50 {
		t.Errorf("the sample hospital's tree has %v places per level", counts)
	}
	i, ok := tr.Index(LocationID(LevelZone, "4w-401-bed"))
	if !ok {
		t.Fatal("no Location area-4w-401-bed")
	}
	var chain []string
	for j := i; j >= 0; j = tr.Place(j).Parent {
		chain = append(chain, tr.Place(j).LocationID)
	}
	want := []string{"area-4w-401-bed", "ro-4w-401", "wa-4-west", "lvl-main-4", "bu-main", "si-north"}
	if !equal(chain, want) {
		t.Errorf("area-4w-401-bed is part of %v, want %v", chain, want)
	}
	golden(t, "location-zone", tr.Location(i))
	golden(t, "location-site", tr.Location(0))

	unit, _ := tr.Index("wa-4-west")
	var below []string
	tr.Below(unit, func(j int) bool {
		if tr.Place(j).Level == LevelZone {
			below = append(below, tr.Place(j).ID)
		}
		return true
	})
	if len(below) < 5 || below[0] != "4w-401-bed" {
		t.Errorf("zones below 4-west: %v, want 4w-401-bed first and the rest of its rooms'", below)
	}
	if NewTree(nil).Len() != 0 {
		t.Error("NewTree(nil) has places")
	}
}

// Facility ids are unique per level only: a room and a unit may share one.
func TestTreeSameIDOnTwoLevels(t *testing.T) {
	f, err := facility.Parse([]byte(`sites:
  - id: icu
    name: ICU Campus
    buildings:
      - id: icu
        name: ICU Building
        floors:
          - id: icu
            name: ICU Floor
            level: 1
            units:
              - id: icu
                name: ICU
                rooms:
                  - id: icu
                    name: ICU Room
                    zones:
                      - {id: icu, name: ICU Bay, x: 0, y: 0, w: 1, h: 1}
`))
	if err != nil {
		t.Fatal(err)
	}
	tr := NewTree(f)
	var ids []string
	for i := range tr.Len() {
		ids = append(ids, tr.Place(i).LocationID)
		golden(t, "location-"+tr.Place(i).LocationID, tr.Location(i))
	}
	want := []string{"si-icu", "bu-icu", "lvl-icu", "wa-icu", "ro-icu", "area-icu"}
	if !equal(ids, want) {
		t.Errorf("Location ids = %v, want %v", ids, want)
	}
}

func TestCapabilitiesGolden(t *testing.T) {
	golden(t, "capabilities", Capabilities("https://medfleet.example.org/fhir"))
}

func TestOutcomeGolden(t *testing.T) {
	golden(t, "outcome", Outcome("error", IssueNotFound, "Device/pump-9 is not known"))
}

func TestBundleGolden(t *testing.T) {
	total := 2
	f := hospital(t)
	bed, _ := f.Zone("4w-401-bed")
	b := &Bundle{Type: "searchset", Total: &total,
		Link: []BundleLink{{Relation: "self", URL: "https://h/fhir/Device?_count=1&type=infusion-pump"},
			{Relation: "next", URL: "https://h/fhir/Device?_count=1&_page=x&type=infusion-pump"}},
		Entry: []BundleEntry{
			{FullURL: "https://h/fhir/Device/pump-0001", Resource: NewDevice(pump(), &bed), Search: &BundleSearch{Mode: "match"}},
			{Resource: Outcome("warning", IssueNotSupported, "ignored: _sort"), Search: &BundleSearch{Mode: "outcome"}},
		}}
	golden(t, "bundle", b)
	zero := 0
	golden(t, "bundle-empty", &Bundle{Type: "searchset", Total: &zero})
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
