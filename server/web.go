package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/medfleet/medfleet/access"
	"github.com/medfleet/medfleet/inventory"
	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// webAPI serves the locate page for facility staff and its JSON API on the
// HTTP port.
//
// The API is a thin layer over the LocationService: every call
// authenticates like a gRPC call (a bearer token, or nobody with
// --insecure-grpc), is allowed by the rule of the RPC it stands for in
// rules, and calls the locationService with the caller in its context, so
// that site scope and errors are the gRPC API's. Mutations are audited as
// that RPC, from the HTTP peer's address.
type webAPI struct {
	loc *locationService
	// users authenticates the page's bearer tokens; insecure (with
	// --insecure-grpc) makes every caller an administrator, as on gRPC.
	users    *access.Store
	insecure bool
	// audit records mutations. Without it the API refuses them: no change
	// goes unrecorded.
	audit auditLog
	log   *slog.Logger
	// dev serves the FHIR export's devices; fhirTrees keeps its Location
	// tree of the facility in force (fhir.go).
	dev       *deviceService
	fhirTrees atomic.Pointer[fhirTree]
}

// The page: plain HTML, CSS and JavaScript, no build step.
//
//go:embed web
var webFiles embed.FS

// webAssets are the files of the page and their content types.
var webAssets = map[string]string{
	"index.html":  "text/html; charset=utf-8",
	"app.js":      "text/javascript; charset=utf-8",
	"style.css":   "text/css; charset=utf-8",
	"favicon.svg": "image/svg+xml",
}

// Limits of the API.
const (
	webTimeout     = 10 * time.Second // one API call
	webMaxBody     = 4 << 10          // a request body
	webMaxQuery    = 128              // a search text
	webMaxReason   = 256              // an availability change's reason
	webMaxResults  = 50               // devices a search returns
	webMaxZoneDevs = 100              // devices listed per zone of a floor
	webCSP         = "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'"
	webJSONType    = "application/json; charset=utf-8"
)

// webJSON marshals API responses: proto field names, unset fields left out.
var webJSON = protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: false}

// register adds the page and its API to mux.
func (w *webAPI) register(mux *http.ServeMux) {
	for name, ctype := range webAssets {
		b, err := webFiles.ReadFile("web/" + name)
		if err != nil {
			panic("server: the page's " + name + " is not embedded: " + err.Error())
		}
		pattern := "GET /" + name
		if name == "index.html" {
			pattern = "GET /{$}"
		}
		mux.Handle(pattern, staticFile(name, ctype, b))
	}

	mux.Handle("GET /api/v1/whoami", endpoint(w, pb.AccessService_GetCaller_FullMethodName, noRequest, w.whoami))
	mux.Handle("GET /api/v1/search", endpoint(w, pb.LocationService_Locate_FullMethodName, searchRequest, w.search))
	mux.Handle("GET /api/v1/devices/{id}", endpoint(w, pb.LocationService_Locate_FullMethodName, locateRequest, w.locate))
	mux.Handle("POST /api/v1/devices/{id}/availability", endpoint(w, pb.LocationService_SetAvailability_FullMethodName, availabilityRequest, w.setAvailability))
	mux.Handle("GET /api/v1/nearest", endpoint(w, pb.LocationService_FindNearest_FullMethodName, nearestRequest, w.nearest))
	mux.Handle("GET /api/v1/units", endpoint(w, pb.LocationService_GetFacility_FullMethodName, noRequest, w.units))
	mux.Handle("GET /api/v1/floors", endpoint(w, pb.LocationService_GetFacility_FullMethodName, floorsRequest, w.floors))
	mux.Handle("GET /api/v1/par", endpoint(w, pb.LocationService_ListParLevels_FullMethodName, parRequest, w.par))
	w.registerFHIR(mux)
	mux.HandleFunc("/api/", func(rw http.ResponseWriter, r *http.Request) {
		securityHeaders(rw.Header())
		writeJSON(rw, http.StatusNotFound, map[string]string{"error": "no such API: " + r.Method + " " + r.URL.Path})
	})
}

// securityHeaders are on every response of the page and its API: nothing
// but the page's own files may load, nothing may frame it, and browsers
// must trust the content types given.
func securityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", webCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
}

// staticFile serves one embedded file, revalidated by its hash.
func staticFile(name, ctype string, b []byte) http.Handler {
	sum := sha256.Sum256(b)
	etag := `"` + hex.EncodeToString(sum[:8]) + `"`
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		h := rw.Header()
		securityHeaders(h)
		h.Set("Content-Type", ctype)
		h.Set("Cache-Control", "no-cache")
		h.Set("ETag", etag)
		http.ServeContent(rw, r, name, time.Time{}, bytes.NewReader(b))
	})
}

// endpoint is one API call standing for the RPC method: decode reads the
// request (before the permission check, as gRPC decodes a message before
// its interceptors run), and call answers it with a proto.Message or a
// value for encoding/json, or fails with a gRPC status.
func endpoint[Req any](w *webAPI, method string, decode func(*http.Request) (Req, error),
	call func(context.Context, Req) (any, error)) http.Handler {
	rl, ok := rules[method]
	if !ok {
		panic("server: the web API stands for " + method + ", which has no rule")
	}
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		start := time.Now()
		var p *access.Principal
		resp, err := func() (any, error) {
			var err error
			if p, err = w.authenticate(r); err != nil {
				return nil, err
			}
			req, err := decode(r)
			if err != nil {
				return nil, err
			}
			ctx, cancel := context.WithTimeout(w.callContext(r, p), webTimeout)
			defer cancel()
			if err := permit(rl, p, method); err != nil {
				if rl.mutation {
					w.record(ctx, p, method, req, err)
				}
				return nil, err
			}
			if rl.mutation && w.audit == nil {
				w.log.Error("the web API has no audit log: a change was refused", "action", method, "actor", p.Name())
				return nil, status.Error(codes.Unavailable, "changes are refused: the audit log is not connected")
			}
			resp, err := call(ctx, req)
			if rl.mutation {
				w.record(ctx, p, method, req, err)
			}
			return resp, err
		}()
		code := w.reply(rw, resp, err)
		user := ""
		if p != nil {
			user = p.Name()
		}
		w.log.Info("http", "method", r.Method, "path", r.URL.Path, "rpc", method, "user", user, "status", code, "dur", time.Since(start))
	})
}

// authenticate finds the caller of an API call by its bearer token, as
// authorizer.authenticate does for gRPC (HTTP has no client certificates).
func (w *webAPI) authenticate(r *http.Request) (*access.Principal, error) {
	if w.insecure {
		return insecurePrincipal, nil
	}
	auth := r.Header.Get("Authorization")
	if auth == "" {
		return nil, status.Error(codes.Unauthenticated, "no credential: send \"Authorization: Bearer mft_...\"")
	}
	bearer, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok {
		return nil, status.Error(codes.Unauthenticated, "authorization: want \"Bearer mft_...\"")
	}
	p, err := w.users.Authenticate(bearer)
	if err != nil {
		return nil, status.Error(codes.Unauthenticated, "token is unknown, expired or revoked")
	}
	return p, nil
}

// permit decides whether an authenticated caller may call a method with
// rule r: its role's permissions, and site scope. gRPC and the page share it.
func permit(r rule, p *access.Principal, method string) error {
	if !access.Allows(p.Role, r.perm) {
		return status.Errorf(codes.PermissionDenied, "role %s may not %s (%s)", access.RoleName(p.Role), r.perm, method)
	}
	if r.global && p.Site != "" {
		return status.Errorf(codes.PermissionDenied, "a caller confined to site %s may not %s: it spans every site", p.Site, r.perm)
	}
	return nil
}

// callContext is what a gRPC handler's context holds: the caller, the
// peer's address and the x-request-id, for site scope and the audit log.
func (w *webAPI) callContext(r *http.Request, p *access.Principal) context.Context {
	ctx := context.WithValue(r.Context(), principalKey{}, p)
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		ctx = peer.NewContext(ctx, &peer.Peer{Addr: net.TCPAddrFromAddrPort(ap)})
	}
	if id := r.Header.Get("X-Request-Id"); id != "" {
		ctx = metadata.NewIncomingContext(ctx, metadata.Pairs("x-request-id", id))
	}
	return ctx
}

// record audits a mutation exactly as the gRPC API does.
func (w *webAPI) record(ctx context.Context, p *access.Principal, method string, req any, err error) {
	if w.audit == nil {
		return
	}
	(&authorizer{audit: w.audit, log: w.log}).record(ctx, p, method, req, err)
}

// httpStatus maps a gRPC code to the API's HTTP status.
func httpStatus(c codes.Code) int {
	switch c {
	case codes.OK:
		return http.StatusOK
	case codes.InvalidArgument:
		return http.StatusBadRequest
	case codes.NotFound:
		return http.StatusNotFound
	case codes.FailedPrecondition:
		return http.StatusConflict
	case codes.PermissionDenied:
		return http.StatusForbidden
	case codes.Unauthenticated:
		return http.StatusUnauthorized
	}
	return http.StatusInternalServerError
}

// reply writes an answer or an error as JSON and returns the HTTP status.
func (w *webAPI) reply(rw http.ResponseWriter, resp any, err error) int {
	h := rw.Header()
	securityHeaders(h)
	h.Set("Cache-Control", "no-store")
	if err == nil {
		var b []byte
		if m, ok := resp.(proto.Message); ok {
			b, err = webJSON.Marshal(m)
		} else {
			b, err = json.Marshal(resp)
		}
		if err == nil {
			h.Set("Content-Type", webJSONType)
			rw.WriteHeader(http.StatusOK)
			rw.Write(b)
			return http.StatusOK
		}
	}
	s, ok := status.FromError(err)
	if !ok {
		w.log.Error("web API call failed", "err", err)
		s = status.New(codes.Internal, "internal error")
	}
	code := httpStatus(s.Code())
	if code == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", `Bearer realm="medfleet"`)
	}
	writeJSON(rw, code, map[string]string{"error": s.Message()})
	return code
}

func writeJSON(rw http.ResponseWriter, code int, v any) {
	b, _ := json.Marshal(v)
	rw.Header().Set("Content-Type", webJSONType)
	rw.WriteHeader(code)
	rw.Write(b)
}

// protoRaw is a message as the API writes it, to embed in a JSON value.
func protoRaw(m proto.Message) (json.RawMessage, error) {
	b, err := webJSON.Marshal(m)
	return json.RawMessage(b), err
}

// parseAvailability reads an availability by its enum name or short name,
// in any case, with spaces or hyphens for underscores: "AVAILABILITY_SOILED",
// "soiled", "in use", "out-of-service".
func parseAvailability(s string) (pb.Availability, bool) {
	n := strings.ToUpper(strings.NewReplacer(" ", "_", "-", "_").Replace(strings.TrimSpace(s)))
	v, ok := pb.Availability_value["AVAILABILITY_"+strings.TrimPrefix(n, "AVAILABILITY_")]
	if !ok || v == 0 {
		return 0, false
	}
	return pb.Availability(v), true
}

func noRequest(*http.Request) (struct{}, error) { return struct{}{}, nil }

// whoamiResponse is GET /api/v1/whoami.
type whoamiResponse struct {
	User string `json:"user"`
	Role string `json:"role"`
	// Site confines the caller; "" is every site.
	Site string `json:"site"`
	// CanMarkStatus: the caller may change availability.
	CanMarkStatus bool `json:"can_mark_status"`
}

func (w *webAPI) whoami(ctx context.Context, _ struct{}) (any, error) {
	p := principalFrom(ctx)
	return whoamiResponse{User: p.User, Role: access.RoleName(p.Role), Site: p.Site,
		CanMarkStatus: permit(rules[pb.LocationService_SetAvailability_FullMethodName], p, "") == nil}, nil
}

func searchRequest(r *http.Request) (string, error) {
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	switch {
	case q == "":
		return "", invalidArgument("q", "required: a device id, tag EPC, model or profile")
	case len(q) > webMaxQuery:
		return "", invalidArgument("q", "longer than "+strconv.Itoa(webMaxQuery)+" characters")
	}
	return q, nil
}

// searchResponse is GET /api/v1/search.
type searchResponse struct {
	// DeviceLocations: the device carrying the tag, then devices whose id
	// starts with the text, then those whose model or profile contains it.
	Devices []json.RawMessage `json:"devices"`
	// Truncated: more devices matched than are listed.
	Truncated bool `json:"truncated"`
}

// search finds devices by tag EPC (exact), id (prefix) or model or profile
// (contains), in any case, among the caller's site's, and locates them.
func (w *webAPI) search(ctx context.Context, q string) (any, error) {
	p := principalFrom(ctx)
	var locs []*pb.DeviceLocation
	seen := map[string]bool{}
	if l, err := w.loc.Locate(ctx, &pb.LocateRequest{Device: "tags/" + strings.TrimPrefix(q, "tags/")}); err == nil {
		locs = append(locs, l)
		seen[strings.TrimPrefix(l.GetDevice(), "devices/")] = true
	}
	lq := strings.ToLower(q)
	var byID, byKind []string
	matched := 0
	w.loc.inv.Range(func(s *inventory.Summary) bool {
		if p.Site != "" && s.Site != p.Site || seen[s.ID] {
			return true
		}
		switch {
		case len(s.ID) >= len(q) && strings.EqualFold(s.ID[:len(q)], q):
			matched++
			if len(byID) < webMaxResults {
				byID = append(byID, s.ID)
			}
		case !s.Decommissioned && (strings.Contains(strings.ToLower(s.Model), lq) || strings.Contains(strings.ToLower(s.Profile), lq)):
			matched++
			if len(byKind) < webMaxResults {
				byKind = append(byKind, s.ID)
			}
		}
		return true
	})
	for _, id := range append(byID, byKind...) {
		if len(locs) == webMaxResults {
			break
		}
		l, err := w.loc.Locate(ctx, &pb.LocateRequest{Device: "devices/" + id})
		if status.Code(err) == codes.NotFound {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, err
		}
		locs = append(locs, l)
	}
	resp := searchResponse{Devices: []json.RawMessage{}, Truncated: len(seen)+matched > len(locs)}
	for _, l := range locs {
		b, err := protoRaw(l)
		if err != nil {
			return nil, err
		}
		resp.Devices = append(resp.Devices, b)
	}
	return resp, nil
}

func deviceName(r *http.Request) (string, error) {
	id := r.PathValue("id")
	if id == "" {
		return "", invalidArgument("device", "required")
	}
	return "devices/" + id, nil
}

func locateRequest(r *http.Request) (*pb.LocateRequest, error) {
	name, err := deviceName(r)
	return &pb.LocateRequest{Device: name}, err
}

func (w *webAPI) locate(ctx context.Context, req *pb.LocateRequest) (any, error) {
	return w.loc.Locate(ctx, req)
}

// availabilityRequest reads POST /api/v1/devices/{id}/availability:
// {"availability": "available", "reason": "cleaned in 4W utility"}.
func availabilityRequest(r *http.Request) (*pb.SetAvailabilityRequest, error) {
	name, err := deviceName(r)
	if err != nil {
		return nil, err
	}
	// Only JSON: a form on another site cannot send it without a CORS
	// preflight, which this API never allows.
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/json" {
		return nil, invalidArgument("body", "want Content-Type application/json")
	}
	var body struct {
		Availability string `json:"availability"`
		Reason       string `json:"reason"`
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, webMaxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		return nil, invalidArgument("body", "want {\"availability\": \"available\", \"reason\": \"...\"}: "+err.Error())
	}
	a, ok := parseAvailability(body.Availability)
	if !ok {
		return nil, invalidArgument("availability", strconv.Quote(body.Availability)+" is not an availability: available, in_use, soiled, in_maintenance or out_of_service")
	}
	if len(body.Reason) > webMaxReason {
		return nil, invalidArgument("reason", "longer than "+strconv.Itoa(webMaxReason)+" bytes")
	}
	return &pb.SetAvailabilityRequest{Device: name, Availability: a, Reason: body.Reason}, nil
}

func (w *webAPI) setAvailability(ctx context.Context, req *pb.SetAvailabilityRequest) (any, error) {
	return w.loc.SetAvailability(ctx, req)
}

// nearestRequest reads GET /api/v1/nearest?profile=&model=&near=&availability=&limit=&include_stale=.
func nearestRequest(r *http.Request) (*pb.FindNearestRequest, error) {
	q := r.URL.Query()
	req := &pb.FindNearestRequest{Profile: q.Get("profile"), Model: q.Get("model"), Near: q.Get("near")}
	if s := q.Get("availability"); s != "" {
		a, ok := parseAvailability(s)
		if !ok {
			return nil, invalidArgument("availability", strconv.Quote(s)+" is not an availability")
		}
		req.Availability = a
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.ParseInt(s, 10, 32)
		if err != nil {
			return nil, invalidArgument("limit", strconv.Quote(s)+" is not a number")
		}
		req.Limit = int32(n)
	}
	if s := q.Get("include_stale"); s != "" {
		b, err := strconv.ParseBool(s)
		if err != nil {
			return nil, invalidArgument("include_stale", strconv.Quote(s)+" is not true or false")
		}
		req.IncludeStale = b
	}
	return req, nil
}

func (w *webAPI) nearest(ctx context.Context, req *pb.FindNearestRequest) (any, error) {
	return w.loc.FindNearest(ctx, req)
}

// unitJSON is one unit of GET /api/v1/units.
type unitJSON struct {
	Unit      string `json:"unit"`
	UnitName  string `json:"unit_name"`
	Floor     string `json:"floor"`
	FloorName string `json:"floor_name"`
	Site      string `json:"site"`
}

// units lists the facility's units, in document order; a caller confined
// to a site sees its site's.
func (w *webAPI) units(ctx context.Context, _ struct{}) (any, error) {
	p := principalFrom(ctx)
	out := []unitJSON{}
	for _, u := range w.loc.engine.Facility().Units() {
		if p.Site != "" && u.Site != p.Site {
			continue
		}
		out = append(out, unitJSON{Unit: u.Unit, UnitName: u.UnitName, Floor: u.Floor, FloorName: u.FloorName, Site: u.Site})
	}
	return out, nil
}

// floorJSON is one floor of GET /api/v1/floors: its zones in metres, top
// left at x, y, and the devices located in each.
type floorJSON struct {
	Site         string     `json:"site"`
	SiteName     string     `json:"site_name"`
	Building     string     `json:"building"`
	BuildingName string     `json:"building_name"`
	Floor        string     `json:"floor"`
	Name         string     `json:"name"`
	Level        int        `json:"level"`
	Width        float64    `json:"width"`
	Height       float64    `json:"height"`
	Zones        []zoneJSON `json:"zones"`
}

type zoneJSON struct {
	Zone     string  `json:"zone"`
	Name     string  `json:"name"`
	X        float64 `json:"x"`
	Y        float64 `json:"y"`
	W        float64 `json:"w"`
	H        float64 `json:"h"`
	Unit     string  `json:"unit"`
	UnitName string  `json:"unit_name"`
	Room     string  `json:"room"`
	RoomName string  `json:"room_name"`
	// Count is the number of devices located in the zone; Devices lists
	// the first webMaxZoneDevs of them.
	Count   int              `json:"count"`
	Devices []zoneDeviceJSON `json:"devices"`
}

type zoneDeviceJSON struct {
	ID           string `json:"id"`
	Profile      string `json:"profile"`
	Model        string `json:"model"`
	Availability string `json:"availability"`
	Stale        bool   `json:"stale"`
}

// floorsRequest reads the optional floor id of GET /api/v1/floors?floor=.
func floorsRequest(r *http.Request) (string, error) { return r.URL.Query().Get("floor"), nil }

// floors draws the facility's floors (one with floor set) with the
// devices the caller may see in each zone; decommissioned ones are left
// out.
func (w *webAPI) floors(ctx context.Context, floor string) (any, error) {
	p := principalFrom(ctx)
	out := []floorJSON{}
	for _, f := range w.loc.engine.Facility().Floors() {
		if floor != "" && f.Floor != floor || p.Site != "" && f.Site != p.Site {
			continue
		}
		fj := floorJSON{Site: f.Site, Building: f.Building, Floor: f.Floor, Name: f.Name, Level: f.Level,
			Width: f.Width, Height: f.Height, Zones: make([]zoneJSON, 0, len(f.Zones))}
		if len(f.Zones) > 0 {
			fj.SiteName, fj.BuildingName = f.Zones[0].Place.SiteName, f.Zones[0].Place.BuildingName
		}
		for _, z := range f.Zones {
			zj := zoneJSON{Zone: z.ID, Name: z.Name, X: z.X, Y: z.Y, W: z.W, H: z.H, Unit: z.Place.Unit,
				UnitName: z.Place.UnitName, Room: z.Place.Room, RoomName: z.Place.RoomName, Devices: []zoneDeviceJSON{}}
			for _, id := range w.loc.engine.InZone(z.ID) {
				l, err := w.loc.Locate(ctx, &pb.LocateRequest{Device: "devices/" + id})
				if err != nil || l.GetPlace().GetZone() != z.ID || l.GetAvailability() == pb.Availability_AVAILABILITY_DECOMMISSIONED {
					continue // out of scope, gone, or moved meanwhile
				}
				zj.Count++
				if len(zj.Devices) < webMaxZoneDevs {
					zj.Devices = append(zj.Devices, zoneDeviceJSON{ID: id, Profile: l.GetProfile(), Model: l.GetModel(),
						Availability: l.GetAvailability().String(), Stale: l.GetStale()})
				}
			}
			fj.Zones = append(fj.Zones, zj)
		}
		out = append(out, fj)
	}
	if floor != "" && len(out) == 0 {
		return nil, status.Errorf(codes.NotFound, "floor %q is not in the facility", floor)
	}
	return out, nil
}

// parRequest reads GET /api/v1/par?unit=&below_only=.
func parRequest(r *http.Request) (*pb.ListParLevelsRequest, error) {
	q := r.URL.Query()
	req := &pb.ListParLevelsRequest{Unit: q.Get("unit")}
	if s := q.Get("below_only"); s != "" {
		b, err := strconv.ParseBool(s)
		if err != nil {
			return nil, invalidArgument("below_only", strconv.Quote(s)+" is not true or false")
		}
		req.BelowOnly = b
	}
	return req, nil
}

func (w *webAPI) par(ctx context.Context, req *pb.ListParLevelsRequest) (any, error) {
	return w.loc.ListParLevels(ctx, req)
}
