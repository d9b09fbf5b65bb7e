package server

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/medfleet/medfleet/access"
	"github.com/medfleet/medfleet/internal/etcdtest"
	"github.com/medfleet/medfleet/internal/telemetry"
	"github.com/medfleet/medfleet/inventory"
	"github.com/medfleet/medfleet/inventory/facility"
	"github.com/medfleet/medfleet/inventory/location"
	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// webFacility is a small facility: one floor of 4 West with a patient
// room, a clean utility room 20 m down the corridor, and a second site.
const webFacility = `
sites:
  - id: north
    name: North Campus
    buildings:
      - id: main
        name: Main Building
        floors:
          - id: main-4
            name: Floor 4
            level: 4
            width: 40
            height: 10
            units:
              - id: 4-west
                name: 4 West
                par: {infusion-pump: 2}
                rooms:
                  - id: 4w-401
                    name: Room 401
                    zones:
                      - {id: 4w-401-bed, name: Bed, x: 0, y: 0, w: 4, h: 4}
                  - id: 4w-corridor
                    name: Corridor
                    zones:
                      - {id: 4w-corridor-a, name: Corridor A, x: 0, y: 4, w: 30, h: 2}
                  - id: 4w-clean
                    name: Clean Utility
                    zones:
                      - {id: 4w-clean-1, name: Shelf, x: 26, y: 6, w: 4, h: 4}
  - id: south
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
connections:
  - {from: 4w-401-bed, to: 4w-corridor-a, cost: 3}
  - {from: 4w-corridor-a, to: 4w-clean-1, cost: 20}
`

// memAudit is an audit log in memory.
type memAudit struct {
	mu   sync.Mutex
	recs []*pb.AuditRecord
}

func (m *memAudit) Append(_ context.Context, r *pb.AuditRecord) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.recs = append(m.recs, r)
	return nil
}

func (m *memAudit) records() []*pb.AuditRecord {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.recs)
}

// webTest is the web API over a real inventory, access store and location
// engine on embedded etcd, served by httptest.
type webTest struct {
	srv    *httptest.Server
	inv    *inventory.Inventory
	engine *location.Engine
	users  *access.Store
	audit  *memAudit
	web    *webAPI
	// tokens by role name, each of a user of that role on every site.
	tokens map[string]string
}

func newWebTest(t *testing.T) *webTest {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	etcd := etcdtest.Start(t, "")
	log := slog.New(slog.DiscardHandler)
	inv, err := inventory.New(inventory.DefaultConfig(), etcd.Client, log, time.Now, telemetry.Noop())
	if err != nil {
		t.Fatal(err)
	}
	users := access.New(etcd.Client, log, time.Now)
	if err := inv.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if err := users.Load(ctx); err != nil {
		t.Fatal(err)
	}
	engine, err := location.New(location.DefaultConfig(), locationDirectory{inv}, log, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	fac, err := facility.Parse([]byte(webFacility))
	if err != nil {
		t.Fatalf("facility.Parse: %v", err)
	}
	engine.SetFacility(fac)
	wt := &webTest{inv: inv, engine: engine, users: users, audit: &memAudit{}, tokens: map[string]string{}}
	wt.web = &webAPI{loc: &locationService{engine: engine, inv: inv, log: log}, users: users, audit: wt.audit, log: log}
	mux := http.NewServeMux()
	wt.web.register(mux)
	wt.srv = httptest.NewServer(mux)
	t.Cleanup(wt.srv.Close)
	for _, role := range []pb.Role{pb.Role_ROLE_ADMIN, pb.Role_ROLE_BIOMED, pb.Role_ROLE_FACILITY, pb.Role_ROLE_AUTOMATION} {
		wt.tokens[access.RoleName(role)] = wt.user(t, access.RoleName(role), role, "")
	}
	return wt
}

// user creates a user and returns a bearer token of theirs.
func (wt *webTest) user(t *testing.T, id string, role pb.Role, site string) string {
	t.Helper()
	ctx := context.Background()
	if _, err := wt.users.CreateUser(ctx, id, &pb.User{Role: role, Site: site}, "users/test"); err != nil {
		t.Fatalf("CreateUser(%s): %v", id, err)
	}
	_, bearer, err := wt.users.CreateToken(ctx, id, nil, 0)
	if err != nil {
		t.Fatalf("CreateToken(%s): %v", id, err)
	}
	return bearer
}

// device creates a device, checks it in to zone and gives it availability a.
func (wt *webTest) device(t *testing.T, id, site, tag, zone string, a pb.Availability) {
	t.Helper()
	ctx := context.Background()
	if _, err := wt.inv.Create(ctx, id, &pb.Device{Profile: "infusion-pump", Model: "Alaris 8015", Site: site, RfidTag: tag}, ""); err != nil {
		t.Fatalf("Create(%s): %v", id, err)
	}
	if zone != "" {
		if _, err := wt.engine.CheckIn(id, zone, "users/test", time.Now()); err != nil {
			t.Fatalf("CheckIn(%s, %s): %v", id, zone, err)
		}
	}
	if a != pb.Availability_AVAILABILITY_UNSPECIFIED {
		if _, err := wt.inv.SetAvailability(ctx, id, a); err != nil {
			t.Fatalf("SetAvailability(%s, %v): %v", id, a, err)
		}
	}
}

// do calls the API as the holder of token ("" for nobody) and decodes the
// JSON answer into out when it is not nil.
func (wt *webTest) do(t *testing.T, method, path, token, body string, out any) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, wt.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := wt.srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); strings.HasPrefix(path, "/api/") && ct != webJSONType {
		t.Errorf("%s %s: Content-Type %q, want %q", method, path, ct, webJSONType)
	}
	if out != nil && resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, b)
		}
	}
	return resp.StatusCode, string(b)
}

// deviceJSON is what the tests read of a DeviceLocation.
type deviceJSON struct {
	Device       string `json:"device"`
	Availability string `json:"availability"`
	Stale        bool   `json:"stale"`
	Place        struct {
		Zone     string `json:"zone"`
		RoomName string `json:"room_name"`
		UnitName string `json:"unit_name"`
	} `json:"place"`
}

func TestWebAuthentication(t *testing.T) {
	wt := newWebTest(t)
	for _, tc := range []struct {
		name, header string
		want         int
	}{
		{name: "no token", header: "", want: http.StatusUnauthorized},
		{name: "unknown token", header: "Bearer mft_nosuchtoken_0000", want: http.StatusUnauthorized},
		{name: "not bearer", header: "Basic YWRtaW46YWRtaW4=", want: http.StatusUnauthorized},
		{name: "facility token", header: "Bearer " + wt.tokens["facility"], want: http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, path := range []string{"/api/v1/whoami", "/api/v1/search?q=pump", "/api/v1/units", "/api/v1/floors", "/api/v1/par"} {
				req, _ := http.NewRequest("GET", wt.srv.URL+path, nil)
				if tc.header != "" {
					req.Header.Set("Authorization", tc.header)
				}
				resp, err := wt.srv.Client().Do(req)
				if err != nil {
					t.Fatal(err)
				}
				var body map[string]any
				json.NewDecoder(resp.Body).Decode(&body)
				resp.Body.Close()
				if resp.StatusCode != tc.want {
					t.Errorf("GET %s = %d %v, want %d", path, resp.StatusCode, body, tc.want)
				}
				if tc.want == http.StatusUnauthorized {
					if body["error"] == nil || resp.Header.Get("WWW-Authenticate") == "" {
						t.Errorf("GET %s: 401 body %v, WWW-Authenticate %q; want an error and a challenge", path, body, resp.Header.Get("WWW-Authenticate"))
					}
				}
			}
		})
	}
}

func TestWebWhoami(t *testing.T) {
	wt := newWebTest(t)
	confined := wt.user(t, "nurse-south", pb.Role_ROLE_FACILITY, "south")
	for _, tc := range []struct {
		name, token string
		want        whoamiResponse
	}{
		{"facility", wt.tokens["facility"], whoamiResponse{User: "facility", Role: "facility", CanMarkStatus: true}},
		{"biomed", wt.tokens["biomed"], whoamiResponse{User: "biomed", Role: "biomed", CanMarkStatus: true}},
		{"automation", wt.tokens["automation"], whoamiResponse{User: "automation", Role: "automation", CanMarkStatus: false}},
		{"confined", confined, whoamiResponse{User: "nurse-south", Role: "facility", Site: "south", CanMarkStatus: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got whoamiResponse
			if code, body := wt.do(t, "GET", "/api/v1/whoami", tc.token, "", &got); code != http.StatusOK || got != tc.want {
				t.Errorf("GET whoami = %d %+v (%s), want 200 %+v", code, got, body, tc.want)
			}
		})
	}
	wt.web.insecure = true
	var got whoamiResponse
	if code, _ := wt.do(t, "GET", "/api/v1/whoami", "", "", &got); code != http.StatusOK || got.Role != "admin" || !got.CanMarkStatus {
		t.Errorf("insecure: GET whoami without a token = %d %+v, want 200 as an administrator", code, got)
	}
}

func TestWebAvailability(t *testing.T) {
	wt := newWebTest(t)
	wt.device(t, "pump-soiled", "north", "", "4w-401-bed", pb.Availability_AVAILABILITY_SOILED)
	wt.device(t, "pump-broken", "north", "", "4w-clean-1", pb.Availability_AVAILABILITY_OUT_OF_SERVICE)
	wt.device(t, "pump-south", "south", "", "s-ed-1-a", pb.Availability_AVAILABILITY_SOILED)
	nurseSouth := wt.user(t, "nurse-south", pb.Role_ROLE_FACILITY, "south")
	clean := `{"availability": "available", "reason": "cleaned"}`
	for _, tc := range []struct {
		name, device, token, body string
		want                      int
		wantAvailability          string // after the call
		wantOutcome               string // of the audit record; "" for none
	}{
		{name: "automation may not", device: "pump-soiled", token: wt.tokens["automation"], body: clean,
			want: http.StatusForbidden, wantAvailability: "AVAILABILITY_SOILED", wantOutcome: "PermissionDenied"},
		{name: "no token", device: "pump-soiled", body: clean,
			want: http.StatusUnauthorized, wantAvailability: "AVAILABILITY_SOILED"},
		{name: "bad availability", device: "pump-soiled", token: wt.tokens["facility"], body: `{"availability": "sparkling"}`,
			want: http.StatusBadRequest, wantAvailability: "AVAILABILITY_SOILED"},
		{name: "unknown field", device: "pump-soiled", token: wt.tokens["facility"], body: `{"availability": "available", "patient": "x"}`,
			want: http.StatusBadRequest, wantAvailability: "AVAILABILITY_SOILED"},
		{name: "unknown device", device: "pump-nope", token: wt.tokens["facility"], body: clean,
			want: http.StatusNotFound, wantOutcome: "NotFound"},
		{name: "other site", device: "pump-soiled", token: nurseSouth, body: clean,
			want: http.StatusNotFound, wantAvailability: "AVAILABILITY_SOILED", wantOutcome: "NotFound"},
		{name: "forbidden transition", device: "pump-broken", token: wt.tokens["facility"], body: clean,
			want: http.StatusConflict, wantAvailability: "AVAILABILITY_OUT_OF_SERVICE", wantOutcome: "FailedPrecondition"},
		{name: "decommissioned is not ours", device: "pump-soiled", token: wt.tokens["facility"], body: `{"availability": "decommissioned"}`,
			want: http.StatusBadRequest, wantAvailability: "AVAILABILITY_SOILED", wantOutcome: "InvalidArgument"},
		{name: "mark clean", device: "pump-soiled", token: wt.tokens["facility"], body: clean,
			want: http.StatusOK, wantAvailability: "AVAILABILITY_AVAILABLE", wantOutcome: "OK"},
		{name: "enum name", device: "pump-soiled", token: wt.tokens["biomed"], body: `{"availability": "AVAILABILITY_SOILED"}`,
			want: http.StatusOK, wantAvailability: "AVAILABILITY_SOILED", wantOutcome: "OK"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(wt.audit.records())
			var got deviceJSON
			path := "/api/v1/devices/" + tc.device + "/availability"
			code, body := wt.do(t, "POST", path, tc.token, tc.body, &got)
			if code != tc.want {
				t.Fatalf("POST %s = %d %s, want %d", path, code, body, tc.want)
			}
			var e struct{ Error string }
			if code != http.StatusOK && (json.Unmarshal([]byte(body), &e) != nil || e.Error == "") {
				t.Errorf("POST %s = %d %s, want a JSON {\"error\": ...}", path, code, body)
			}
			if code == http.StatusOK && got.Availability != tc.wantAvailability {
				t.Errorf("POST %s answered availability %s, want %s", path, got.Availability, tc.wantAvailability)
			}
			if tc.wantAvailability != "" {
				l, err := wt.engine.Locate(tc.device)
				if err != nil || l.GetAvailability().String() != tc.wantAvailability {
					t.Errorf("after POST %s: Locate(%s) = %v, %v; want availability %s", path, tc.device, l.GetAvailability(), err, tc.wantAvailability)
				}
			}
			recs := wt.audit.records()[before:]
			switch {
			case tc.wantOutcome == "" && len(recs) > 0:
				t.Errorf("POST %s audited %v, want no record", path, recs)
			case tc.wantOutcome != "" && len(recs) != 1:
				t.Errorf("POST %s audited %d records, want 1 with outcome %s", path, len(recs), tc.wantOutcome)
			case tc.wantOutcome != "":
				r := recs[0]
				if r.GetOutcome() != tc.wantOutcome || r.GetAction() != pb.LocationService_SetAvailability_FullMethodName ||
					r.GetTarget() != "devices/"+tc.device || !strings.HasPrefix(r.GetSource(), "127.0.0.1:") || r.GetActor() == "" {
					t.Errorf("POST %s audited %v, want outcome %s, action SetAvailability, target devices/%s, source 127.0.0.1", path, r, tc.wantOutcome, tc.device)
				}
			}
		})
	}
}

// A form on another site can post text/plain, which must change nothing.
func TestWebAvailabilityOnlyJSON(t *testing.T) {
	wt := newWebTest(t)
	wt.device(t, "pump-1", "north", "", "4w-401-bed", pb.Availability_AVAILABILITY_SOILED)
	wt.web.insecure = true // no token needed: the case where a cross-site form could otherwise work
	for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded", ""} {
		req, _ := http.NewRequest("POST", wt.srv.URL+"/api/v1/devices/pump-1/availability", strings.NewReader(`{"availability": "available"}`))
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		resp, err := wt.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("POST availability as %q = %d, want 400", ct, resp.StatusCode)
		}
	}
	if l, _ := wt.engine.Locate("pump-1"); l.GetAvailability() != pb.Availability_AVAILABILITY_SOILED {
		t.Errorf("after posts that are not JSON, pump-1 is %v, want still soiled", l.GetAvailability())
	}
}

// Without an audit log, the API changes nothing.
func TestWebAvailabilityNeedsAudit(t *testing.T) {
	wt := newWebTest(t)
	wt.device(t, "pump-1", "north", "", "4w-401-bed", pb.Availability_AVAILABILITY_SOILED)
	wt.web.audit = nil
	code, body := wt.do(t, "POST", "/api/v1/devices/pump-1/availability", wt.tokens["facility"], `{"availability": "available"}`, nil)
	if code != http.StatusInternalServerError || !strings.Contains(body, "audit") {
		t.Errorf("POST without an audit log = %d %s, want 500 naming the audit log", code, body)
	}
	if l, _ := wt.engine.Locate("pump-1"); l.GetAvailability() != pb.Availability_AVAILABILITY_SOILED {
		t.Errorf("without an audit log, pump-1 became %v, want it still soiled", l.GetAvailability())
	}
}

func TestWebLocate(t *testing.T) {
	wt := newWebTest(t)
	wt.device(t, "pump-1", "north", "E2801160600002084D5C0A01", "4w-401-bed", pb.Availability_AVAILABILITY_SOILED)
	wt.device(t, "pump-south", "south", "", "s-ed-1-a", pb.Availability_AVAILABILITY_AVAILABLE)
	nurseSouth := wt.user(t, "nurse-south", pb.Role_ROLE_FACILITY, "south")
	for _, tc := range []struct {
		name, path, token string
		want              int
		wantRoom          string
	}{
		{"found", "/api/v1/devices/pump-1", wt.tokens["facility"], http.StatusOK, "Room 401"},
		{"automation reads", "/api/v1/devices/pump-1", wt.tokens["automation"], http.StatusOK, "Room 401"},
		{"unknown device", "/api/v1/devices/pump-404", wt.tokens["facility"], http.StatusNotFound, ""},
		{"other site", "/api/v1/devices/pump-1", nurseSouth, http.StatusNotFound, ""},
		{"own site", "/api/v1/devices/pump-south", nurseSouth, http.StatusOK, "Bay 1"},
		{"no such API", "/api/v1/devices", wt.tokens["facility"], http.StatusNotFound, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got deviceJSON
			code, body := wt.do(t, "GET", tc.path, tc.token, "", &got)
			if code != tc.want || got.Place.RoomName != tc.wantRoom {
				t.Errorf("GET %s = %d, room %q (%s); want %d, room %q", tc.path, code, got.Place.RoomName, body, tc.want, tc.wantRoom)
			}
		})
	}
}

func TestWebSearch(t *testing.T) {
	wt := newWebTest(t)
	wt.device(t, "pump-4471", "north", "E2801160600002084D5C0A01", "4w-401-bed", pb.Availability_AVAILABILITY_SOILED)
	wt.device(t, "pump-4472", "north", "", "", pb.Availability_AVAILABILITY_UNSPECIFIED)
	wt.device(t, "pump-south", "south", "", "s-ed-1-a", pb.Availability_AVAILABILITY_AVAILABLE)
	ctx := context.Background()
	if _, err := wt.inv.Create(ctx, "cpap-1", &pb.Device{Profile: "cpap", Model: "AirSense 11", Site: "north"}, ""); err != nil {
		t.Fatal(err)
	}
	nurseSouth := wt.user(t, "nurse-south", pb.Role_ROLE_FACILITY, "south")
	for _, tc := range []struct {
		name, q, token string
		want           []string
	}{
		{"id prefix", "pump-447", wt.tokens["facility"], []string{"devices/pump-4471", "devices/pump-4472"}},
		{"id any case", "PUMP-4471", wt.tokens["facility"], []string{"devices/pump-4471"}},
		{"tag", "e2801160600002084d5c0a01", wt.tokens["facility"], []string{"devices/pump-4471"}},
		{"tag name", "tags/E2801160600002084D5C0A01", wt.tokens["facility"], []string{"devices/pump-4471"}},
		{"model", "airsense", wt.tokens["facility"], []string{"devices/cpap-1"}},
		{"profile", "infusion", wt.tokens["facility"], []string{"devices/pump-4471", "devices/pump-4472", "devices/pump-south"}},
		{"site scope", "pump", nurseSouth, []string{"devices/pump-south"}},
		{"tag elsewhere", "E2801160600002084D5C0A01", nurseSouth, nil},
		{"nothing", "ventilator", wt.tokens["facility"], nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got struct {
				Devices   []deviceJSON
				Truncated bool
			}
			path := "/api/v1/search?q=" + url.QueryEscape(tc.q)
			code, body := wt.do(t, "GET", path, tc.token, "", &got)
			var ids []string
			for _, d := range got.Devices {
				ids = append(ids, d.Device)
			}
			if code != http.StatusOK || !slices.Equal(ids, tc.want) {
				t.Errorf("GET %s = %d %v (%s), want 200 %v", path, code, ids, body, tc.want)
			}
		})
	}
	var got struct{ Devices []deviceJSON }
	wt.do(t, "GET", "/api/v1/search?q=pump-4471", wt.tokens["facility"], "", &got)
	if len(got.Devices) != 1 || got.Devices[0].Place.RoomName != "Room 401" || got.Devices[0].Availability != "AVAILABILITY_SOILED" {
		t.Errorf("search pump-4471 = %+v, want it soiled in Room 401", got.Devices)
	}
	if code, _ := wt.do(t, "GET", "/api/v1/search?q=", wt.tokens["facility"], "", nil); code != http.StatusBadRequest {
		t.Errorf("GET search without q = %d, want 400", code)
	}
}

func TestWebNearest(t *testing.T) {
	wt := newWebTest(t)
	wt.device(t, "pump-near", "north", "", "4w-corridor-a", pb.Availability_AVAILABILITY_AVAILABLE)
	wt.device(t, "pump-far", "north", "", "4w-clean-1", pb.Availability_AVAILABILITY_AVAILABLE)
	wt.device(t, "pump-dirty", "north", "", "4w-401-bed", pb.Availability_AVAILABILITY_SOILED)
	for _, tc := range []struct {
		name, query string
		want        int
		wantIDs     []string
		wantMetres  []float64
	}{
		{"available from the unit", "near=4-west&profile=infusion-pump", http.StatusOK,
			[]string{"devices/pump-near", "devices/pump-far"}, []float64{3, 23}},
		{"soiled", "near=4w-401-bed&profile=infusion-pump&availability=soiled", http.StatusOK,
			[]string{"devices/pump-dirty"}, []float64{0}},
		{"limit", "near=4-west&profile=infusion-pump&limit=1", http.StatusOK, []string{"devices/pump-near"}, []float64{3}},
		{"unknown unit", "near=9-east&profile=infusion-pump", http.StatusBadRequest, nil, nil},
		{"no profile", "near=4-west", http.StatusBadRequest, nil, nil},
		{"bad limit", "near=4-west&profile=infusion-pump&limit=many", http.StatusBadRequest, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got struct {
				Devices []struct {
					Location  deviceJSON
					DistanceM float64 `json:"distance_m"`
				}
			}
			code, body := wt.do(t, "GET", "/api/v1/nearest?"+tc.query, wt.tokens["facility"], "", &got)
			var ids []string
			var metres []float64
			for _, d := range got.Devices {
				ids, metres = append(ids, d.Location.Device), append(metres, d.DistanceM)
			}
			if code != tc.want || !slices.Equal(ids, tc.wantIDs) || !slices.Equal(metres, tc.wantMetres) {
				t.Errorf("GET nearest?%s = %d %v %v (%s), want %d %v %v", tc.query, code, ids, metres, body, tc.want, tc.wantIDs, tc.wantMetres)
			}
		})
	}
}

func TestWebFacility(t *testing.T) {
	wt := newWebTest(t)
	wt.device(t, "pump-1", "north", "", "4w-401-bed", pb.Availability_AVAILABILITY_SOILED)
	wt.device(t, "pump-2", "north", "", "4w-401-bed", pb.Availability_AVAILABILITY_AVAILABLE)
	wt.device(t, "pump-south", "south", "", "s-ed-1-a", pb.Availability_AVAILABILITY_AVAILABLE)
	nurseSouth := wt.user(t, "nurse-south", pb.Role_ROLE_FACILITY, "south")

	var units []unitJSON
	wt.do(t, "GET", "/api/v1/units", wt.tokens["facility"], "", &units)
	wantUnits := []unitJSON{{Unit: "4-west", UnitName: "4 West", Floor: "main-4", FloorName: "Floor 4", Site: "north"},
		{Unit: "s-ed", UnitName: "Emergency", Floor: "tower-1", FloorName: "Ground Floor", Site: "south"}}
	if !slices.Equal(units, wantUnits) {
		t.Errorf("GET units = %+v, want %+v", units, wantUnits)
	}
	units = nil
	wt.do(t, "GET", "/api/v1/units", nurseSouth, "", &units)
	if !slices.Equal(units, wantUnits[1:]) {
		t.Errorf("GET units confined to south = %+v, want %+v", units, wantUnits[1:])
	}

	var floors []floorJSON
	if code, body := wt.do(t, "GET", "/api/v1/floors?floor=main-4", wt.tokens["facility"], "", &floors); code != http.StatusOK || len(floors) != 1 {
		t.Fatalf("GET floors?floor=main-4 = %d %s, want one floor", code, body)
	}
	f := floors[0]
	if f.Name != "Floor 4" || f.SiteName != "North Campus" || f.BuildingName != "Main Building" || f.Width != 40 || len(f.Zones) != 3 {
		t.Fatalf("floor main-4 = %+v, want Floor 4 of Main Building, North Campus, 40 m wide, 3 zones", f)
	}
	bed := f.Zones[0]
	wantDevs := []zoneDeviceJSON{
		{ID: "pump-1", Profile: "infusion-pump", Model: "Alaris 8015", Availability: "AVAILABILITY_SOILED"},
		{ID: "pump-2", Profile: "infusion-pump", Model: "Alaris 8015", Availability: "AVAILABILITY_AVAILABLE"},
	}
	if bed.Zone != "4w-401-bed" || bed.RoomName != "Room 401" || bed.W != 4 || bed.Count != 2 || !slices.Equal(bed.Devices, wantDevs) {
		t.Errorf("zone 4w-401-bed = %+v, want Room 401, 4 m wide, devices %+v", bed, wantDevs)
	}
	if n := f.Zones[1].Count + f.Zones[2].Count; n != 0 {
		t.Errorf("zones without devices count %d, want 0", n)
	}

	floors = nil
	wt.do(t, "GET", "/api/v1/floors", nurseSouth, "", &floors)
	if len(floors) != 1 || floors[0].Floor != "tower-1" || floors[0].Zones[0].Count != 1 {
		t.Errorf("GET floors confined to south = %+v, want tower-1 with pump-south", floors)
	}
	if code, _ := wt.do(t, "GET", "/api/v1/floors?floor=main-9", wt.tokens["facility"], "", nil); code != http.StatusNotFound {
		t.Errorf("GET floors?floor=main-9 = %d, want 404", code)
	}

	var par struct {
		Levels []struct {
			Unit      string
			Profile   string
			Min       int
			Available int
			Below     bool
		}
	}
	wt.do(t, "GET", "/api/v1/par", wt.tokens["facility"], "", &par)
	if len(par.Levels) != 1 || par.Levels[0].Unit != "4-west" || par.Levels[0].Min != 2 || par.Levels[0].Available != 1 || !par.Levels[0].Below {
		t.Errorf("GET par = %+v, want 4-west infusion-pump 1 of 2, below", par.Levels)
	}
}

func TestWebPage(t *testing.T) {
	wt := newWebTest(t)
	for _, tc := range []struct {
		path, wantType, wantText string
	}{
		{"/", "text/html; charset=utf-8", `<label for="q">`},
		{"/app.js", "text/javascript; charset=utf-8", "sessionStorage"},
		{"/style.css", "text/css; charset=utf-8", ":focus-visible"},
		{"/favicon.svg", "image/svg+xml", "<svg"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			resp, err := wt.srv.Client().Get(wt.srv.URL + tc.path)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			h := resp.Header
			if resp.StatusCode != http.StatusOK || h.Get("Content-Type") != tc.wantType || !strings.Contains(string(b), tc.wantText) {
				t.Errorf("GET %s = %d %q, want 200 %q holding %q", tc.path, resp.StatusCode, h.Get("Content-Type"), tc.wantType, tc.wantText)
			}
			if h.Get("Content-Security-Policy") != webCSP || h.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("GET %s: CSP %q, X-Content-Type-Options %q; want %q, nosniff", tc.path, h.Get("Content-Security-Policy"), h.Get("X-Content-Type-Options"), webCSP)
			}
			// The SVG namespace is a name, not a place to load from.
			text := strings.ReplaceAll(string(b), "http://www.w3.org/2000/svg", "")
			for _, external := range []string{"http://", "https://", "//cdn"} {
				if strings.Contains(text, external) {
					t.Errorf("GET %s refers to %q: the page must load nothing from elsewhere", tc.path, external)
				}
			}
		})
	}
}

func TestWebParseAvailability(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want pb.Availability
		ok   bool
	}{
		{"available", pb.Availability_AVAILABILITY_AVAILABLE, true},
		{"AVAILABILITY_SOILED", pb.Availability_AVAILABILITY_SOILED, true},
		{"in use", pb.Availability_AVAILABILITY_IN_USE, true},
		{"Out-Of-Service", pb.Availability_AVAILABILITY_OUT_OF_SERVICE, true},
		{"in_maintenance", pb.Availability_AVAILABILITY_IN_MAINTENANCE, true},
		{"", 0, false},
		{"AVAILABILITY_UNSPECIFIED", 0, false},
		{"clean", 0, false},
	} {
		if got, ok := parseAvailability(tc.in); got != tc.want || ok != tc.ok {
			t.Errorf("parseAvailability(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}
