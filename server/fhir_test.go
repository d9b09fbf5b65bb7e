package server

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/medfleet/medfleet/coap"
	"github.com/medfleet/medfleet/fhir"
	"github.com/medfleet/medfleet/fhir/fhirtest"
	"github.com/medfleet/medfleet/inventory/facility"
	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// fhirSouth is a second site, added to the sample hospital for site scope.
const fhirSouth = `  - id: south
    name: South Campus
    buildings:
      - id: tower
        name: Tower
        floors:
          - id: tower-1
            name: Ground Floor
            level: 1
            units:
              - id: s-ed
                name: Emergency
                rooms:
                  - id: s-ed-1
                    name: Bay 1
                    zones:
                      - {id: s-ed-1-a, name: Bay, x: 0, y: 0, w: 4, h: 4}
`

// newFHIRTest is the web API over the sample hospital
// (examples/facility/hospital.yaml) and a second site, south.
func newFHIRTest(t *testing.T) *webTest {
	t.Helper()
	wt := newWebTest(t)
	wt.web.dev = &deviceService{inv: wt.inv, log: slog.New(slog.DiscardHandler)}
	b, err := os.ReadFile("../examples/facility/hospital.yaml")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	i := strings.Index(doc, "\nconnections:")
	if i < 0 {
		t.Fatal("examples/facility/hospital.yaml has no connections: section")
	}
	fac, err := facility.Parse([]byte(doc[:i+1] + fhirSouth + doc[i+1:]))
	if err != nil {
		t.Fatalf("facility.Parse(hospital + south): %v", err)
	}
	wt.engine.SetFacility(fac)
	return wt
}

// fhirDevice is a device to create for a test.
type fhirDevice struct {
	id, profile, site, zone, assetTag, udi string
	availability                           pb.Availability
	// report: the device registers and reports usage (hours), firmware
	// and, when battery is not nil, a battery level.
	report  bool
	hours   float64
	battery *float64
}

func (wt *webTest) fhirAdd(t *testing.T, d fhirDevice) {
	t.Helper()
	ctx := context.Background()
	spec := &pb.Device{Profile: d.profile, Model: "Alaris 8015", Manufacturer: "BD", Site: d.site, AssetTag: d.assetTag, Udi: d.udi,
		RiskClass: pb.RiskClass_RISK_CLASS_HIGH}
	if d.profile == "cpap" {
		spec.Model, spec.Manufacturer = "AirSense 11", "ResMed"
	}
	if _, err := wt.inv.Create(ctx, d.id, spec, ""); err != nil {
		t.Fatalf("Create(%s): %v", d.id, err)
	}
	if d.report {
		if _, err := wt.inv.Register(ctx, d.id, &coap.Registration{Profile: spec.Profile, Model: spec.Model, Firmware: "12.1.2"}, time.Hour); err != nil {
			t.Fatalf("Register(%s): %v", d.id, err)
		}
		secs := d.hours * 3600
		if _, err := wt.inv.Report(ctx, d.id, &coap.Report{Seq: 1, Usage: &secs, Firmware: "12.1.2", State: coap.StateIdle, Battery: d.battery}); err != nil {
			t.Fatalf("Report(%s): %v", d.id, err)
		}
	}
	if d.zone != "" {
		if _, err := wt.engine.CheckIn(d.id, d.zone, "users/test", time.Now()); err != nil {
			t.Fatalf("CheckIn(%s, %s): %v", d.id, d.zone, err)
		}
	}
	if d.availability != pb.Availability_AVAILABILITY_UNSPECIFIED {
		if _, err := wt.inv.SetAvailability(ctx, d.id, d.availability); err != nil {
			t.Fatalf("SetAvailability(%s): %v", d.id, err)
		}
	}
}

// pumpUDI is a GS1 UDI: GTIN 00885403801504, made 15 January 2023,
// expiring January 2028, lot LOT42, serial 12345678.
const pumpUDI = "(01)00885403801504(11)230115(17)280100(10)LOT42(21)12345678"

// fhirFleet creates the devices most tests read: in 4 West (rooms 401,
// 402), 3 West and the south site, and one out of service.
func (wt *webTest) fhirFleet(t *testing.T) {
	battery := 87.5
	for _, d := range []fhirDevice{
		{id: "pump-0001", profile: "infusion-pump", site: "north", zone: "4w-401-bed", assetTag: "BME-004471", udi: pumpUDI,
			availability: pb.Availability_AVAILABILITY_AVAILABLE, report: true, hours: 4321.5, battery: &battery},
		{id: "pump-0002", profile: "infusion-pump", site: "north", zone: "4w-402-entry", assetTag: "BME-004472", report: true, hours: 12},
		{id: "pump-0003", profile: "infusion-pump", site: "north", zone: "3w-301-bed"},
		{id: "cpap-0001", profile: "cpap", site: "north", zone: "4w-401-bed"},
		{id: "PUMP_0009", profile: "infusion-pump", site: "north", availability: pb.Availability_AVAILABILITY_OUT_OF_SERVICE},
		{id: "pump-south", profile: "infusion-pump", site: "south", zone: "s-ed-1-a"},
	} {
		wt.fhirAdd(t, d)
	}
}

// fhirGet calls the export as the holder of token ("" for nobody) with
// extra headers, checks that the answer is FHIR R4 JSON that the R4
// definitions accept, and returns its status and body.
func (wt *webTest) fhirGet(t *testing.T, path, token string, header ...string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest("GET", wt.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := wt.srv.Client().Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); ct != fhir.MediaType {
		t.Errorf("GET %s: Content-Type %q, want %q", path, ct, fhir.MediaType)
	}
	if err := fhirtest.Validate(b); err != nil {
		t.Errorf("GET %s = %d: not valid FHIR R4: %v\n%s", path, resp.StatusCode, err, b)
	}
	if resp.StatusCode == http.StatusUnauthorized && resp.Header.Get("WWW-Authenticate") == "" {
		t.Errorf("GET %s = 401 without a WWW-Authenticate challenge", path)
	}
	return resp.StatusCode, b
}

// bundleJSON is what the tests read of a Bundle.
type bundleJSON struct {
	ResourceType string `json:"resourceType"`
	Type         string `json:"type"`
	Total        int    `json:"total"`
	Link         []struct {
		Relation string `json:"relation"`
		URL      string `json:"url"`
	} `json:"link"`
	Entry []struct {
		FullURL  string          `json:"fullUrl"`
		Resource json.RawMessage `json:"resource"`
		Search   struct {
			Mode string `json:"mode"`
		} `json:"search"`
	} `json:"entry"`
}

// ids are the ids of the bundle's matches.
func (b bundleJSON) ids(t *testing.T) []string {
	var out []string
	for _, e := range b.Entry {
		if e.Search.Mode != "match" {
			continue
		}
		var r struct{ ID string }
		if err := json.Unmarshal(e.Resource, &r); err != nil {
			t.Fatal(err)
		}
		out = append(out, r.ID)
	}
	return out
}

func (b bundleJSON) link(relation string) string {
	for _, l := range b.Link {
		if l.Relation == relation {
			return l.URL
		}
	}
	return ""
}

// outcomeJSON is what the tests read of an OperationOutcome.
type outcomeJSON struct {
	ResourceType string `json:"resourceType"`
	Issue        []struct {
		Severity, Code, Diagnostics string
	} `json:"issue"`
}

// fhirSearch calls a search and decodes its Bundle, which must be
// answered 200.
func (wt *webTest) fhirSearch(t *testing.T, path, token string, header ...string) bundleJSON {
	t.Helper()
	code, body := wt.fhirGet(t, path, token, header...)
	var b bundleJSON
	if err := json.Unmarshal(body, &b); err != nil || code != http.StatusOK || b.ResourceType != "Bundle" || b.Type != "searchset" {
		t.Fatalf("GET %s = %d %s, want 200 and a searchset Bundle", path, code, body)
	}
	return b
}

func TestFHIRDeviceRead(t *testing.T) {
	wt := newFHIRTest(t)
	wt.fhirFleet(t)
	code, body := wt.fhirGet(t, "/fhir/Device/pump-0001", wt.tokens["facility"])
	if code != http.StatusOK {
		t.Fatalf("GET Device/pump-0001 = %d %s, want 200", code, body)
	}
	var d fhir.Device
	if err := json.Unmarshal(body, &d); err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		what      string
		got, want any
	}{
		{"id", d.ID, "pump-0001"},
		{"status", d.Status, "active"},
		{"identifiers", d.Identifier, []fhir.Identifier{
			{Type: &fhir.CodeableConcept{Text: "Asset tag"}, System: fhir.SystemAssetTag, Value: "BME-004471"},
			{Type: &fhir.CodeableConcept{Text: "Medfleet device id"}, System: fhir.SystemDeviceID, Value: "pump-0001"}}},
		{"udiCarrier", d.UDICarrier, []fhir.DeviceUDICarrier{{DeviceIdentifier: "00885403801504", Issuer: fhir.NamingGS1DI,
			Jurisdiction: fhir.NamingFDAUDI, CarrierHRF: pumpUDI}}},
		{"lot, serial, dates", []string{d.LotNumber, d.SerialNumber, d.ManufactureDate, d.ExpirationDate},
			[]string{"LOT42", "12345678", "2023-01-15", "2028-01"}},
		{"model", []string{d.ModelNumber, d.DeviceName[0].Name, d.DeviceName[0].Type, d.Manufacturer}, []string{"Alaris 8015", "Alaris 8015", "model-name", "BD"}},
		{"type", d.Type.Coding[0], fhir.Coding{System: fhir.SystemProfile, Code: "infusion-pump", Display: "infusion-pump"}},
		{"firmware", d.Version, []fhir.DeviceVersion{{Type: &fhir.CodeableConcept{Text: "firmware"}, Value: "12.1.2"}}},
		{"online", d.StatusReason[0].Coding[0].Code, "online"},
		{"usage hours", d.Property[0].ValueQuantity[0], fhir.Quantity{Value: 4321.5, Unit: "h", System: fhir.UCUM, Code: "h"}},
		{"location", *d.Location, fhir.Reference{Reference: "Location/area-4w-401-bed", Display: "Bed"}},
		{"extensions", d.Extension, []fhir.Extension{{URL: fhir.ExtAvailability, ValueCode: "available"}, {URL: fhir.ExtRiskClass, ValueCode: "high"}}},
	}
	for _, c := range checks {
		gb, _ := json.Marshal(c.got)
		wb, _ := json.Marshal(c.want)
		if string(gb) != string(wb) {
			t.Errorf("Device/pump-0001 %s = %s, want %s", c.what, gb, wb)
		}
	}

	nurseSouth := wt.user(t, "nurse-south", pb.Role_ROLE_FACILITY, "south")
	for _, tc := range []struct {
		name, path, token string
		want              int
		wantStatus        string
	}{
		{"out of service", "/fhir/Device/.PUMP.0009", wt.tokens["facility"], http.StatusOK, "inactive"},
		{"unknown", "/fhir/Device/pump-0404", wt.tokens["facility"], http.StatusNotFound, ""},
		{"not an id the export writes", "/fhir/Device/PUMP_0009", wt.tokens["facility"], http.StatusNotFound, ""},
		{"other site", "/fhir/Device/pump-0001", nurseSouth, http.StatusNotFound, ""},
		{"own site", "/fhir/Device/pump-south", nurseSouth, http.StatusOK, "active"},
		{"automation reads", "/fhir/Device/pump-0002", wt.tokens["automation"], http.StatusOK, "active"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := wt.fhirGet(t, tc.path, tc.token)
			var r struct{ ResourceType, Status string }
			json.Unmarshal(body, &r)
			if code != tc.want || code == http.StatusOK && r.Status != tc.wantStatus || code != http.StatusOK && r.ResourceType != "OperationOutcome" {
				t.Errorf("GET %s = %d %s, want %d, status %q (or an OperationOutcome)", tc.path, code, body, tc.want, tc.wantStatus)
			}
		})
	}
	// A device id too long for a Device id once escaped is read by its
	// digest, as are its metrics.
	long := strings.Repeat("a_", 32)
	wt.fhirAdd(t, fhirDevice{id: long, profile: "cpap", site: "north", report: true, hours: 1})
	for _, path := range []string{"/fhir/Device/" + fhir.DeviceID(long), "/fhir/DeviceMetric/" + fhir.MetricID(long, fhir.MetricUsageHours)} {
		code, body := wt.fhirGet(t, path, wt.tokens["facility"])
		if code != http.StatusOK || !strings.Contains(string(body), `"id":"..`) {
			t.Errorf("GET %s = %d %s, want 200 and the resource with its digest id", path, code, body)
		}
	}
	if code, _ := wt.fhirGet(t, "/fhir/Device/.."+strings.Repeat("0", 32), wt.tokens["facility"]); code != http.StatusNotFound {
		t.Errorf("GET a digest of no device = %d, want 404", code)
	}

	// Decommissioned devices stay readable, inactive.
	if _, err := wt.inv.Decommission(context.Background(), "pump-0003", ""); err != nil {
		t.Fatal(err)
	}
	code, body = wt.fhirGet(t, "/fhir/Device/pump-0003", wt.tokens["facility"])
	if code != http.StatusOK || !strings.Contains(string(body), `"status":"inactive"`) || !strings.Contains(string(body), `"valueCode":"decommissioned"`) {
		t.Errorf("GET a decommissioned device = %d %s, want it inactive, decommissioned", code, body)
	}
}

func TestFHIRDeviceSearch(t *testing.T) {
	wt := newFHIRTest(t)
	wt.fhirFleet(t)
	nurseSouth := wt.user(t, "nurse-south", pb.Role_ROLE_FACILITY, "south")
	nurseNorth := wt.user(t, "nurse-north", pb.Role_ROLE_FACILITY, "north")
	admin := wt.tokens["admin"]
	allPumps := []string{".PUMP.0009", "pump-0001", "pump-0002", "pump-0003", "pump-south"}
	for _, tc := range []struct {
		name, query, token string
		want               []string
	}{
		{"all, in device id order", "", admin, []string{".PUMP.0009", "cpap-0001", "pump-0001", "pump-0002", "pump-0003", "pump-south"}},
		{"type", "type=infusion-pump", admin, allPumps},
		{"type with system", "type=" + url.QueryEscape(fhir.SystemProfile+"|cpap"), admin, []string{"cpap-0001"}},
		{"types", "type=cpap,infusion-pump&status=inactive", admin, []string{".PUMP.0009"}},
		{"location: a unit, through its rooms' zones", "location=wa-4-west", admin, []string{"cpap-0001", "pump-0001", "pump-0002"}},
		{"location: a reference to a room", "location=Location/ro-4w-401", admin, []string{"cpap-0001", "pump-0001"}},
		{"location: below a floor", "location:below=lvl-main-3", admin, []string{"pump-0003"}},
		{"location: a site", "location=si-north&type=infusion-pump", admin, []string{"pump-0001", "pump-0002", "pump-0003"}},
		{"location: a zone", "location=area-4w-402-entry", admin, []string{"pump-0002"}},
		{"location: either", "location=area-4w-402-entry,area-3w-301-bed", admin, []string{"pump-0002", "pump-0003"}},
		{"location: unknown", "location=wa-9-east", admin, nil},
		{"identifier: asset tag", "identifier=BME-004471", admin, []string{"pump-0001"}},
		{"identifier: system and value", "identifier=" + url.QueryEscape(fhir.SystemAssetTag+"|BME-004472"), admin, []string{"pump-0002"}},
		{"identifier: device id", "identifier=" + url.QueryEscape(fhir.SystemDeviceID+"|PUMP_0009"), admin, []string{".PUMP.0009"}},
		{"udi-di", "udi-di=00885403801504", admin, []string{"pump-0001"}},
		{"udi-carrier", "udi-carrier=" + url.QueryEscape("(01)00885403801504"), admin, []string{"pump-0001"}},
		{"status", "status=inactive", admin, []string{".PUMP.0009"}},
		{"manufacturer, any case", "manufacturer=resmed", admin, []string{"cpap-0001"}},
		{"model", "model=Alaris&location=wa-4-west", admin, []string{"pump-0001", "pump-0002"}},
		{"_id", "_id=pump-0002,pump-0404", admin, []string{"pump-0002"}},
		{"site scope", "type=infusion-pump", nurseSouth, []string{"pump-south"}},
		{"site scope: a location elsewhere", "location=wa-4-west", nurseSouth, nil},
		{"site scope: north", "location=si-north", nurseNorth, []string{"cpap-0001", "pump-0001", "pump-0002", "pump-0003"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := "/fhir/Device"
			if tc.query != "" {
				path += "?" + tc.query
			}
			b := wt.fhirSearch(t, path, tc.token)
			if got := b.ids(t); !slices.Equal(got, tc.want) || b.Total != len(tc.want) {
				t.Errorf("GET %s = %v, total %d; want %v", path, got, b.Total, tc.want)
			}
			for _, e := range b.Entry {
				if e.Search.Mode == "match" && !strings.HasPrefix(e.FullURL, wt.srv.URL+"/fhir/Device/") {
					t.Errorf("GET %s: fullUrl %q, want it under %s/fhir/Device/", path, e.FullURL, wt.srv.URL)
				}
			}
		})
	}
}

func TestFHIRDevicePaging(t *testing.T) {
	wt := newFHIRTest(t)
	var want []string
	for i := range 7 {
		id := "syringe-" + string(rune('a'+i))
		wt.fhirAdd(t, fhirDevice{id: id, profile: "syringe-pump", site: "north", zone: "4w-401-bed"})
		want = append(want, id)
	}
	wt.fhirAdd(t, fhirDevice{id: "cpap-0001", profile: "cpap", site: "north"})
	token := wt.tokens["biomed"]
	path := "/fhir/Device?type=syringe-pump&_count=3"
	var got []string
	var sizes []int
	for page := 0; path != ""; page++ {
		if page == 3 {
			t.Fatalf("a fourth page: %s", path)
		}
		b := wt.fhirSearch(t, path, token)
		if b.Total != 7 {
			t.Errorf("page %d: total %d, want 7", page+1, b.Total)
		}
		if self := b.link("self"); !strings.HasPrefix(self, wt.srv.URL+"/fhir/Device?") || !strings.Contains(self, "type=syringe-pump") {
			t.Errorf("page %d: self link %q, want an absolute link carrying the search", page+1, self)
		}
		ids := b.ids(t)
		got, sizes = append(got, ids...), append(sizes, len(ids))
		path = ""
		if next := b.link("next"); next != "" {
			u, err := url.Parse(next)
			if err != nil || u.Query().Get("_page") == "" || u.Query().Get("type") != "syringe-pump" {
				t.Fatalf("next link %q: want the search with a _page token", next)
			}
			path = u.RequestURI()
		}
	}
	if !slices.Equal(got, want) || !slices.Equal(sizes, []int{3, 3, 1}) {
		t.Errorf("pages of 3 = %v in %v, want %v in 3, 3, 1", got, sizes, want)
	}

	// A page token is tied to its search.
	b := wt.fhirSearch(t, "/fhir/Device?type=syringe-pump&_count=3", token)
	u, _ := url.Parse(b.link("next"))
	tok := u.Query().Get("_page")
	code, body := wt.fhirGet(t, "/fhir/Device?type=cpap&_page="+tok, token)
	if code != http.StatusBadRequest || !strings.Contains(string(body), "_page") {
		t.Errorf("GET with another search's page token = %d %s, want 400 naming _page", code, body)
	}
	for _, count := range []string{"-1", "lots"} {
		if code, _ := wt.fhirGet(t, "/fhir/Device?_count="+count, token); code != http.StatusBadRequest {
			t.Errorf("GET Device?_count=%s = %d, want 400", count, code)
		}
	}
	b = wt.fhirSearch(t, "/fhir/Device?_count=0", token)
	if b.Total != 8 || len(b.Entry) != 0 || b.link("next") != "" {
		t.Errorf("GET Device?_count=0 = total %d, %d entries, next %q; want the total only", b.Total, len(b.Entry), b.link("next"))
	}
	b = wt.fhirSearch(t, "/fhir/Device?_count=100000", token)
	if len(b.ids(t)) != 8 || !strings.Contains(b.link("self"), "_count=500") {
		t.Errorf("GET Device?_count=100000 = %d devices, self %q; want all 8, _count bounded to 500", len(b.ids(t)), b.link("self"))
	}
}

func TestFHIRLocation(t *testing.T) {
	wt := newFHIRTest(t)
	token := wt.tokens["facility"]
	// partOf climbs from a zone to the site, a level at a time.
	want := []struct{ id, physicalType string }{
		{"area-4w-401-bed", "area"}, {"ro-4w-401", "ro"}, {"wa-4-west", "wa"}, {"lvl-main-4", "lvl"}, {"bu-main", "bu"}, {"si-north", "si"},
	}
	id := want[0].id
	for i, w := range want {
		code, body := wt.fhirGet(t, "/fhir/Location/"+id, token)
		var l fhir.Location
		if err := json.Unmarshal(body, &l); err != nil || code != http.StatusOK {
			t.Fatalf("GET Location/%s = %d %s, want 200", id, code, body)
		}
		if l.ID != w.id || l.PhysicalType.Coding[0].Code != w.physicalType || l.PhysicalType.Coding[0].System != fhir.SystemPhysicalType ||
			l.Mode != "instance" || l.Status != "active" || l.Name == "" {
			t.Errorf("Location/%s = %+v, want id %s, physical type %s, instance, active, named", id, l, w.id, w.physicalType)
		}
		if i == len(want)-1 {
			if l.PartOf != nil {
				t.Errorf("the site %s is part of %v, want nothing", id, l.PartOf)
			}
			break
		}
		if l.PartOf == nil {
			t.Fatalf("Location/%s has no partOf, want %s", id, want[i+1].id)
		}
		id = strings.TrimPrefix(l.PartOf.Reference, "Location/")
	}

	nurseSouth := wt.user(t, "nurse-south", pb.Role_ROLE_FACILITY, "south")
	rooms40x := []string{"ro-4w-401", "ro-4w-402", "ro-4w-403", "ro-4w-404", "ro-4w-405", "ro-4w-406"}
	for _, tc := range []struct {
		name, query, token string
		want               []string // a prefix of the matches, in tree order
		wantTotal          int      // -1: len(want)
	}{
		{"sites", "physical-type=si", token, []string{"si-north", "si-south"}, -1},
		{"buildings", "physical-type=" + url.QueryEscape(fhir.SystemPhysicalType+"|bu"), token, []string{"bu-main", "bu-tower"}, -1},
		{"partof: a unit's rooms", "partof=wa-4-west&name=Room%2040", token, rooms40x, -1},
		{"partof:below: everything in a room", "partof:below=ro-4w-401", token, []string{"area-4w-401-bed", "area-4w-401-entry"}, -1},
		{"name", "name=4%20west&physical-type=wa", token, []string{"wa-4-west"}, -1},
		{"identifier", "identifier=" + url.QueryEscape(fhir.SystemFacility+"zone|s-ed-1-a"), token, []string{"area-s-ed-1-a"}, -1},
		{"site scope", "", nurseSouth, []string{"si-south", "bu-tower", "lvl-tower-1", "wa-s-ed", "ro-s-ed-1", "area-s-ed-1-a"}, -1},
		{"site scope: partof elsewhere", "partof=wa-4-west", nurseSouth, nil, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := "/fhir/Location?_count=500"
			if tc.query != "" {
				path += "&" + tc.query
			}
			b := wt.fhirSearch(t, path, tc.token)
			got := b.ids(t)
			total := tc.wantTotal
			if total < 0 {
				total = len(tc.want)
			}
			if len(got) < len(tc.want) || !slices.Equal(got[:len(tc.want)], tc.want) || b.Total != total {
				t.Errorf("GET %s = %v, total %d; want %v, total %d", path, got, b.Total, tc.want, total)
			}
		})
	}
	if code, _ := wt.fhirGet(t, "/fhir/Location/si-north", nurseSouth); code != http.StatusNotFound {
		t.Errorf("GET Location/si-north confined to south = %d, want 404", code)
	}
	if code, _ := wt.fhirGet(t, "/fhir/Location/4w-401-bed", token); code != http.StatusNotFound {
		t.Errorf("GET Location/4w-401-bed (a facility id, not a Location id) = %d, want 404", code)
	}

	// The whole tree pages, and every Location but the sites is part of
	// one listed before it.
	seen := map[string]bool{}
	path := "/fhir/Location?_count=40"
	pages := 0
	for path != "" {
		b := wt.fhirSearch(t, path, token)
		pages++
		for _, e := range b.Entry {
			var l fhir.Location
			json.Unmarshal(e.Resource, &l)
			if l.PartOf != nil && !seen[strings.TrimPrefix(l.PartOf.Reference, "Location/")] {
				t.Errorf("%s is part of %s, not listed before it", l.ID, l.PartOf.Reference)
			}
			seen[l.ID] = true
		}
		path = ""
		if next := b.link("next"); next != "" {
			u, _ := url.Parse(next)
			path = u.RequestURI()
		}
	}
	if pages < 3 || len(seen) < 100 {
		t.Errorf("the Location tree came in %d pages of %d Locations, want several pages of the whole hospital", pages, len(seen))
	}
}

func TestFHIRDeviceMetric(t *testing.T) {
	wt := newFHIRTest(t)
	wt.fhirFleet(t)
	token := wt.tokens["biomed"]
	b := wt.fhirSearch(t, "/fhir/DeviceMetric?source=Device/pump-0001", token)
	if got, want := b.ids(t), []string{"pump-0001-usage-hours", "pump-0001-battery"}; !slices.Equal(got, want) || b.Total != 2 {
		t.Fatalf("GET DeviceMetric?source=Device/pump-0001 = %v, total %d; want %v", got, b.Total, want)
	}
	var battery fhir.DeviceMetric
	json.Unmarshal(b.Entry[1].Resource, &battery)
	if battery.OperationalStatus != "on" || battery.Category != "measurement" || battery.Source.Reference != "Device/pump-0001" ||
		battery.Unit.Coding[0].Code != "%" || len(battery.Extension) != 2 || battery.Extension[0].ValueQuantity.Value != 87.5 {
		t.Errorf("the battery metric = %+v, want on, measurement, of Device/pump-0001, in %%, latest value 87.5", battery)
	}
	for _, tc := range []struct {
		name, path string
		want       []string
	}{
		{"a device without battery", "/fhir/DeviceMetric?source=pump-0002", []string{"pump-0002-usage-hours"}},
		{"by type", "/fhir/DeviceMetric?type=battery", []string{"pump-0001-battery"}},
		{"two sources", "/fhir/DeviceMetric?source=pump-0002,pump-0001&type=usage-hours", []string{"pump-0001-usage-hours", "pump-0002-usage-hours"}},
		{"unknown source", "/fhir/DeviceMetric?source=Device/pump-0404", nil},
		{"all", "/fhir/DeviceMetric?category=measurement&_count=2", []string{".PUMP.0009-usage-hours", "cpap-0001-usage-hours"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := wt.fhirSearch(t, tc.path, token)
			if got := b.ids(t); !slices.Equal(got, tc.want) {
				t.Errorf("GET %s = %v, want %v", tc.path, got, tc.want)
			}
		})
	}
	// All the metrics, page by page: one per device, two for pump-0001.
	var all []string
	for path := "/fhir/DeviceMetric?_count=2"; path != ""; {
		b := wt.fhirSearch(t, path, token)
		if b.Total != 7 {
			t.Errorf("GET %s: total %d, want 7", path, b.Total)
		}
		all = append(all, b.ids(t)...)
		path = ""
		if next := b.link("next"); next != "" {
			u, _ := url.Parse(next)
			path = u.RequestURI()
		}
	}
	if len(all) != 7 || all[2] != "pump-0001-usage-hours" || all[3] != "pump-0001-battery" {
		t.Errorf("all metrics, by 2 = %v, want 7, pump-0001's two together", all)
	}

	nurseSouth := wt.user(t, "nurse-south", pb.Role_ROLE_FACILITY, "south")
	for _, tc := range []struct {
		path, token string
		want        int
	}{
		{"/fhir/DeviceMetric/pump-0001-battery", token, http.StatusOK},
		{"/fhir/DeviceMetric/pump-0002-battery", token, http.StatusNotFound},
		{"/fhir/DeviceMetric/pump-0001-voltage", token, http.StatusNotFound},
		{"/fhir/DeviceMetric/.PUMP.0009-usage-hours", token, http.StatusOK},
		{"/fhir/DeviceMetric/pump-0001-usage-hours", nurseSouth, http.StatusNotFound},
	} {
		if code, body := wt.fhirGet(t, tc.path, tc.token); code != tc.want {
			t.Errorf("GET %s = %d %s, want %d", tc.path, code, body, tc.want)
		}
	}
	b = wt.fhirSearch(t, "/fhir/DeviceMetric?source=pump-0001", nurseSouth)
	if len(b.Entry) != 0 {
		t.Errorf("GET DeviceMetric?source=pump-0001 confined to south = %v, want nothing", b.ids(t))
	}
}

func TestFHIRAuthentication(t *testing.T) {
	wt := newFHIRTest(t)
	wt.fhirFleet(t)
	for _, path := range []string{"/fhir/Device", "/fhir/Device/pump-0001", "/fhir/Location", "/fhir/Location/si-north",
		"/fhir/DeviceMetric?source=pump-0001", "/fhir/DeviceMetric/pump-0001-usage-hours"} {
		for _, token := range []string{"", "mft_nosuchtoken_0000"} {
			code, body := wt.fhirGet(t, path, token)
			var o outcomeJSON
			json.Unmarshal(body, &o)
			if code != http.StatusUnauthorized || o.ResourceType != "OperationOutcome" || o.Issue[0].Code != fhir.IssueLogin {
				t.Errorf("GET %s with token %q = %d %s, want 401 and an OperationOutcome (login)", path, token, code, body)
			}
		}
	}
	// The metadata is public, as FHIR clients read it before they log in.
	code, body := wt.fhirGet(t, "/fhir/metadata", "")
	var cs fhir.CapabilityStatement
	if err := json.Unmarshal(body, &cs); err != nil || code != http.StatusOK || cs.FHIRVersion != "4.0.1" {
		t.Fatalf("GET metadata without a token = %d %s, want 200 and a CapabilityStatement", code, body)
	}
	if cs.Implementation.URL != wt.srv.URL+"/fhir" {
		t.Errorf("metadata: implementation.url %q, want %s/fhir", cs.Implementation.URL, wt.srv.URL)
	}
	var types []string
	for _, r := range cs.Rest[0].Resource {
		types = append(types, r.Type)
		if r.Type == "Device" && !slices.ContainsFunc(r.SearchParam, func(p fhir.CapabilitySearchParam) bool { return p.Name == "udi-di" }) {
			t.Errorf("metadata: Device search parameters %v lack udi-di", r.SearchParam)
		}
	}
	if !slices.Equal(types, []string{"Device", "DeviceMetric", "Location"}) {
		t.Errorf("metadata lists %v, want Device, DeviceMetric, Location", types)
	}
}

// Every route stands for an RPC whose rule needs devices.read, which
// every role has; a rule the caller's role lacks is refused with 403.
func TestFHIRForbidden(t *testing.T) {
	wt := newFHIRTest(t)
	mux := http.NewServeMux()
	mux.Handle("GET /fhir/Device", wt.web.fhirHandler(pb.AuditService_ListAuditRecords_FullMethodName, wt.web.fhirSearchDevices))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	auditing := *wt
	auditing.srv = srv
	code, body := auditing.fhirGet(t, "/fhir/Device", wt.tokens["facility"])
	var o outcomeJSON
	json.Unmarshal(body, &o)
	if code != http.StatusForbidden || o.Issue[0].Code != fhir.IssueForbidden {
		t.Errorf("GET Device as a role without the rule's permission = %d %s, want 403 (forbidden)", code, body)
	}
}

func TestFHIRSearchParameters(t *testing.T) {
	wt := newFHIRTest(t)
	wt.fhirFleet(t)
	token := wt.tokens["facility"]
	// Unknown parameters are ignored, and said so, unless strict.
	b := wt.fhirSearch(t, "/fhir/Device?type=cpap&colour=blue&_sort=model", token)
	last := b.Entry[len(b.Entry)-1]
	var o outcomeJSON
	json.Unmarshal(last.Resource, &o)
	if !slices.Equal(b.ids(t), []string{"cpap-0001"}) || last.Search.Mode != "outcome" || o.Issue[0].Severity != "warning" ||
		!strings.Contains(o.Issue[0].Diagnostics, "colour") || strings.Contains(b.link("self"), "colour") {
		t.Errorf("GET Device?type=cpap&colour=blue = %v, last entry %s; want cpap-0001 and a warning naming colour, left out of the self link", b.ids(t), last.Resource)
	}
	for _, tc := range []struct {
		name, path string
		header     []string
		want       int
		wantIssue  string
	}{
		{"strict", "/fhir/Device?colour=blue", []string{"Prefer", "handling=strict"}, http.StatusBadRequest, fhir.IssueNotSupported},
		{"strict among other preferences", "/fhir/Location?colour=blue", []string{"Prefer", "return=representation, handling=strict"}, http.StatusBadRequest, fhir.IssueNotSupported},
		{"lenient", "/fhir/Device?colour=blue", []string{"Prefer", "handling=lenient"}, http.StatusOK, ""},
		{"unknown modifier", "/fhir/Device?type:text=pump", nil, http.StatusBadRequest, fhir.IssueNotSupported},
		{"bad reference", "/fhir/Device?location=Patient/1", nil, http.StatusBadRequest, fhir.IssueValue},
		{"query too long", "/fhir/Device?model=" + strings.Repeat("a", fhirMaxQuery), nil, http.StatusBadRequest, fhir.IssueTooLong},
		{"bad escape", "/fhir/Device?model=%zz", nil, http.StatusBadRequest, fhir.IssueInvalid},
		{"no such resource type", "/fhir/Patient", nil, http.StatusNotFound, fhir.IssueNotFound},
		{"no such interaction", "/fhir/Device/pump-0001/_history", nil, http.StatusNotFound, fhir.IssueNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := wt.fhirGet(t, tc.path, token, tc.header...)
			var o outcomeJSON
			json.Unmarshal(body, &o)
			if code != tc.want || tc.wantIssue != "" && (o.ResourceType != "OperationOutcome" || o.Issue[0].Code != tc.wantIssue) {
				t.Errorf("GET %s = %d %s, want %d %s", tc.path, code, body, tc.want, tc.wantIssue)
			}
		})
	}
	// The export is read-only.
	req, _ := http.NewRequest("POST", wt.srv.URL+"/fhir/Device", strings.NewReader(`{"resourceType": "Device"}`))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := wt.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" || fhirtest.Validate(body) != nil {
		t.Errorf("POST Device = %d (Allow %q) %s, want 405, Allow GET, and an OperationOutcome", resp.StatusCode, resp.Header.Get("Allow"), body)
	}
}

func TestFHIRFormat(t *testing.T) {
	wt := newFHIRTest(t)
	token := wt.tokens["facility"]
	for _, tc := range []struct {
		name, query string
		header      []string
		want        int
	}{
		{"no preference", "", nil, http.StatusOK},
		{"FHIR JSON", "", []string{"Accept", "application/fhir+json"}, http.StatusOK},
		{"FHIR JSON R4", "", []string{"Accept", "application/fhir+json; fhirVersion=4.0"}, http.StatusOK},
		{"FHIR JSON R3", "", []string{"Accept", "application/fhir+json; fhirVersion=3.0"}, http.StatusNotAcceptable},
		{"JSON", "", []string{"Accept", "application/json"}, http.StatusOK},
		{"a browser", "", []string{"Accept", "text/html,application/xhtml+xml,*/*;q=0.8"}, http.StatusOK},
		{"XML", "", []string{"Accept", "application/fhir+xml"}, http.StatusNotAcceptable},
		{"not JSON at all", "", []string{"Accept", "application/fhir+xml, application/json;q=0"}, http.StatusNotAcceptable},
		{"_format json", "_format=json", []string{"Accept", "application/fhir+xml"}, http.StatusOK},
		{"_format with an unescaped +", "_format=application/fhir+json", nil, http.StatusOK},
		{"_format xml", "_format=xml", nil, http.StatusNotAcceptable},
		{"_pretty", "_pretty=true", nil, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := "/fhir/Location?_count=1"
			if tc.query != "" {
				path += "&" + tc.query
			}
			code, body := wt.fhirGet(t, path, token, tc.header...)
			if code != tc.want {
				t.Errorf("GET %s with %v = %d %s, want %d", path, tc.header, code, body, tc.want)
			}
			if pretty := strings.Contains(string(body), "\n  "); pretty != (tc.query == "_pretty=true") {
				t.Errorf("GET %s: indented %v, want indented only with _pretty=true", path, pretty)
			}
		})
	}
}
