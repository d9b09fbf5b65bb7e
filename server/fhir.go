package server

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/medfleet/medfleet/access"
	"github.com/medfleet/medfleet/fhir"
	"github.com/medfleet/medfleet/inventory"
	"github.com/medfleet/medfleet/inventory/facility"
	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// The FHIR R4 export: read and search of Device, DeviceMetric and
// Location, and the CapabilityStatement, in JSON, under /fhir on the HTTP
// port. Like the page's API, every interaction stands for the RPC whose
// rule it follows (rules), authenticates by bearer token, and calls the
// DeviceService and LocationService with the caller in its context, so
// that site scope and errors are the gRPC API's. The mapping is package
// fhir's.

// Limits of the export.
const (
	fhirMaxQuery = 2048 // bytes of a request's query string
	fhirPrefix   = "/fhir"
)

// fhirTree is the facility's Location tree, kept while the facility is
// the same.
type fhirTree struct {
	fac  *facility.Facility
	tree *fhir.Tree
}

// registerFHIR adds the export to mux.
func (w *webAPI) registerFHIR(mux *http.ServeMux) {
	mux.Handle("GET "+fhirPrefix+"/metadata", w.fhirHandler("", w.fhirMetadata))
	mux.Handle("GET "+fhirPrefix+"/Device", w.fhirHandler(pb.DeviceService_ListDevices_FullMethodName, w.fhirSearchDevices))
	mux.Handle("GET "+fhirPrefix+"/Device/{id}", w.fhirHandler(pb.DeviceService_GetDevice_FullMethodName, w.fhirReadDevice))
	mux.Handle("GET "+fhirPrefix+"/DeviceMetric", w.fhirHandler(pb.DeviceService_ListDevices_FullMethodName, w.fhirSearchMetrics))
	mux.Handle("GET "+fhirPrefix+"/DeviceMetric/{id}", w.fhirHandler(pb.DeviceService_GetDevice_FullMethodName, w.fhirReadMetric))
	mux.Handle("GET "+fhirPrefix+"/Location", w.fhirHandler(pb.LocationService_GetFacility_FullMethodName, w.fhirSearchLocations))
	mux.Handle("GET "+fhirPrefix+"/Location/{id}", w.fhirHandler(pb.LocationService_GetFacility_FullMethodName, w.fhirReadLocation))
	mux.HandleFunc(fhirPrefix+"/", w.fhirNoSuchInteraction)
}

// fhirRequest is what an interaction reads of its HTTP request.
type fhirRequest struct {
	// id is the {id} of a read.
	id    string
	query url.Values
	// strict: the client asked "Prefer: handling=strict", so unknown
	// search parameters are errors rather than ignored.
	strict bool
	// base is the absolute URL of the export, "http://host:port/fhir",
	// for full URLs; "" when the request's Host is not one to repeat.
	base string
}

// fhirError is an error the export answers with its own HTTP status and
// issue type.
type fhirError struct {
	status int
	issue  string
	msg    string
}

func (e *fhirError) Error() string { return e.msg }

// fhirHandler is one interaction standing for the RPC method ("" for the
// metadata, which needs no credential).
func (w *webAPI) fhirHandler(method string, call func(context.Context, *fhirRequest) (fhir.Resource, error)) http.Handler {
	rl, ok := rules[method]
	if method != "" && !ok {
		panic("server: the FHIR export stands for " + method + ", which has no rule")
	}
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		start := time.Now()
		var p *access.Principal
		res, err := func() (fhir.Resource, error) {
			if err := fhirAcceptable(r); err != nil {
				return nil, err
			}
			if method != "" {
				var err error
				if p, err = w.authenticate(r); err != nil {
					return nil, err
				}
				if err := permit(rl, p, method); err != nil {
					return nil, err
				}
			}
			req, err := fhirRead(r)
			if err != nil {
				return nil, err
			}
			ctx, cancel := context.WithTimeout(w.callContext(r, p), webTimeout)
			defer cancel()
			return call(ctx, req)
		}()
		code := w.fhirReply(rw, r, res, err)
		user := ""
		if p != nil {
			user = p.Name()
		}
		w.log.Info("http", "method", r.Method, "path", r.URL.Path, "rpc", method, "user", user, "status", code, "dur", time.Since(start))
	})
}

// fhirFormats are the _format values and media types the export answers
// in: JSON only.
var fhirFormats = []string{"json", "application/json", "application/fhir+json"}

// fhirAcceptable refuses requests for anything but JSON, by _format
// (which wins) or Accept: 406.
func fhirAcceptable(r *http.Request) error {
	notAcceptable := &fhirError{status: http.StatusNotAcceptable, issue: fhir.IssueNotSupported,
		msg: "the FHIR export answers in JSON only: application/fhir+json (_format=json)"}
	if f := r.URL.Query().Get("_format"); f != "" {
		// An unescaped "+" in the query reads as a space.
		mt, _, _ := strings.Cut(strings.ReplaceAll(f, " ", "+"), ";")
		if !slices.Contains(fhirFormats, strings.ToLower(strings.TrimSpace(mt))) {
			return notAcceptable
		}
		return nil
	}
	accept := r.Header.Get("Accept")
	if strings.TrimSpace(accept) == "" {
		return nil
	}
	for _, part := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		if q, err := strconv.ParseFloat(cmp.Or(params["q"], "1"), 64); err != nil || q <= 0 {
			continue
		}
		if v := params["fhirversion"]; v != "" && v != "4.0" {
			continue
		}
		switch mt {
		case "*/*", "application/*", "application/json", "application/fhir+json":
			return nil
		}
	}
	return notAcceptable
}

// fhirHost is a Host header fit to repeat in URLs: a name or an address,
// and a port.
var fhirHost = regexp.MustCompile(`^([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?$`)

// fhirRead reads the parts of a request every interaction needs.
func fhirRead(r *http.Request) (*fhirRequest, error) {
	if len(r.URL.RawQuery) > fhirMaxQuery {
		return nil, &fhirError{status: http.StatusBadRequest, issue: fhir.IssueTooLong,
			msg: "the query string is longer than " + strconv.Itoa(fhirMaxQuery) + " bytes"}
	}
	query, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, &fhirError{status: http.StatusBadRequest, issue: fhir.IssueInvalid, msg: "the query string: " + err.Error()}
	}
	req := &fhirRequest{id: r.PathValue("id"), query: query}
	for _, pref := range r.Header.Values("Prefer") {
		for _, p := range strings.FieldsFunc(pref, func(c rune) bool { return c == ',' || c == ';' }) {
			if strings.EqualFold(strings.ReplaceAll(strings.TrimSpace(p), " ", ""), "handling=strict") {
				req.strict = true
			}
		}
	}
	if fhirHost.MatchString(r.Host) {
		scheme := "http"
		if r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https" {
			scheme = "https"
		}
		req.base = scheme + "://" + r.Host + fhirPrefix
	}
	return req, nil
}

// fhirReply writes a resource, or an error as an OperationOutcome, and
// returns the HTTP status.
func (w *webAPI) fhirReply(rw http.ResponseWriter, r *http.Request, res fhir.Resource, err error) int {
	h := rw.Header()
	securityHeaders(h)
	h.Set("Cache-Control", "no-store")
	code := http.StatusOK
	if err != nil {
		code, res = w.fhirOutcome(err)
		if code == http.StatusUnauthorized {
			h.Set("WWW-Authenticate", `Bearer realm="medfleet"`)
		}
	}
	var b []byte
	if r.URL.Query().Get("_pretty") == "true" {
		b, err = json.MarshalIndent(res, "", "  ")
	} else {
		b, err = json.Marshal(res)
	}
	if err != nil {
		w.log.Error("FHIR export: cannot encode a resource", "path", r.URL.Path, "err", err)
		code = http.StatusInternalServerError
		b, _ = json.Marshal(fhir.Outcome("error", fhir.IssueException, "internal error"))
	}
	h.Set("Content-Type", fhir.MediaType)
	rw.WriteHeader(code)
	rw.Write(b)
	return code
}

// fhirOutcome translates an error to an HTTP status and an
// OperationOutcome.
func (w *webAPI) fhirOutcome(err error) (int, *fhir.OperationOutcome) {
	var fe *fhirError
	var pe *fhir.ParamError
	switch {
	case errors.As(err, &fe):
		return fe.status, fhir.Outcome("error", fe.issue, fe.msg)
	case errors.As(err, &pe):
		issue := fhir.IssueValue
		if pe.Unknown {
			issue = fhir.IssueNotSupported
		}
		return http.StatusBadRequest, fhir.Outcome("error", issue, pe.Error())
	}
	s, ok := status.FromError(err)
	if !ok {
		w.log.Error("FHIR export call failed", "err", err)
		s = status.New(codes.Internal, "internal error")
	}
	issue := fhir.IssueException
	switch s.Code() {
	case codes.InvalidArgument:
		issue = fhir.IssueInvalid
	case codes.NotFound:
		issue = fhir.IssueNotFound
	case codes.PermissionDenied:
		issue = fhir.IssueForbidden
	case codes.Unauthenticated:
		issue = fhir.IssueLogin
	case codes.DeadlineExceeded:
		issue = fhir.IssueTimeout
	case codes.Unavailable:
		issue = fhir.IssueTransient
	}
	return httpStatus(s.Code()), fhir.Outcome("error", issue, s.Message())
}

// fhirNoSuchInteraction answers what the export does not serve: 405 for
// another method on one of its paths, else 404.
func (w *webAPI) fhirNoSuchInteraction(rw http.ResponseWriter, r *http.Request) {
	start := time.Now()
	err := &fhirError{status: http.StatusNotFound, issue: fhir.IssueNotFound,
		msg: "the FHIR export has no " + r.URL.Path + ": it serves metadata, Device, DeviceMetric and Location"}
	rest := strings.TrimPrefix(r.URL.Path, fhirPrefix+"/")
	resourceType, id, _ := strings.Cut(rest, "/")
	if r.Method != http.MethodGet && r.Method != http.MethodHead && !strings.Contains(id, "/") &&
		(rest == "metadata" || fhir.SearchParams[resourceType] != nil) {
		rw.Header().Set("Allow", "GET, HEAD")
		err = &fhirError{status: http.StatusMethodNotAllowed, issue: fhir.IssueNotSupported,
			msg: "the FHIR export is read-only: " + r.Method + " is not allowed"}
	}
	code := w.fhirReply(rw, r, nil, err)
	w.log.Info("http", "method", r.Method, "path", r.URL.Path, "rpc", "", "user", "", "status", code, "dur", time.Since(start))
}

func (w *webAPI) fhirMetadata(_ context.Context, req *fhirRequest) (fhir.Resource, error) {
	return fhir.Capabilities(req.base), nil
}

// fhirNotFound is the error of a read of an id the caller cannot see.
func fhirNotFound(resourceType, id string) error {
	return status.Errorf(codes.NotFound, "%s/%s is not known", resourceType, id)
}

// fhirTree returns the facility in force and its Location tree.
func (w *webAPI) fhirTree() (*facility.Facility, *fhir.Tree) {
	fac := w.loc.engine.Facility()
	if c := w.fhirTrees.Load(); c != nil && c.fac == fac {
		return fac, c.tree
	}
	t := fhir.NewTree(fac)
	w.fhirTrees.Store(&fhirTree{fac: fac, tree: t})
	return fac, t
}

// fhirDevices calls fn with every device the caller may see (confined
// to its site by ListDevices), decommissioned ones too, in id order,
// until fn returns false.
func (w *webAPI) fhirDevices(ctx context.Context, fn func(d *pb.Device) bool) error {
	req := &pb.ListDevicesRequest{PageSize: inventory.MaxPageSize, ShowDecommissioned: true}
	for {
		resp, err := w.dev.ListDevices(ctx, req)
		if err != nil {
			return err
		}
		for _, d := range resp.GetDevices() {
			if !fn(d) {
				return nil
			}
		}
		if resp.GetNextPageToken() == "" {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return status.Error(codes.DeadlineExceeded, "the search took too long: narrow it down")
		}
		req.PageToken = resp.GetNextPageToken()
	}
}

// fhirDevice returns the device a Device id (or the device part of a
// metric id) names, if the caller may see it.
func (w *webAPI) fhirDevice(ctx context.Context, ref fhir.DeviceRef) (*pb.Device, error) {
	if id, ok := ref.ID(); ok {
		d, err := w.dev.GetDevice(ctx, &pb.GetDeviceRequest{Name: "devices/" + id})
		if status.Code(err) == codes.InvalidArgument {
			return nil, status.Error(codes.NotFound, "no such device")
		}
		return d, err
	}
	// The id is a digest of a long device id: look for the device.
	var found *pb.Device
	err := w.fhirDevices(ctx, func(d *pb.Device) bool {
		if ref.Matches(deviceOf(d)) {
			found = d
		}
		return found == nil
	})
	if err == nil && found == nil {
		err = status.Error(codes.NotFound, "no such device")
	}
	return found, err
}

// deviceOf is a device's id.
func deviceOf(d *pb.Device) string { return strings.TrimPrefix(d.GetName(), "devices/") }

// fhirZone returns the zone a device is located in, nil when none.
func (w *webAPI) fhirZone(ctx context.Context, fac *facility.Facility, device string) *facility.Zone {
	if fac == nil {
		return nil
	}
	l, err := w.loc.Locate(ctx, &pb.LocateRequest{Device: "devices/" + device})
	if err != nil || l.GetPlace().GetZone() == "" {
		return nil
	}
	z, ok := fac.Zone(l.GetPlace().GetZone())
	if !ok {
		return nil
	}
	return &z
}

func (w *webAPI) fhirReadDevice(ctx context.Context, req *fhirRequest) (fhir.Resource, error) {
	ref, err := fhir.ParseDeviceID(req.id)
	if err != nil {
		return nil, fhirNotFound("Device", req.id)
	}
	d, err := w.fhirDevice(ctx, ref)
	if status.Code(err) == codes.NotFound {
		return nil, fhirNotFound("Device", req.id)
	}
	if err != nil {
		return nil, err
	}
	fac, _ := w.fhirTree()
	return fhir.NewDevice(d, w.fhirZone(ctx, fac, deviceOf(d))), nil
}

// fhirSearchDevices searches the devices the caller may see. location
// is matched here, against the Location tree: a device matches when the
// zone it is located in is the Location or in it.
func (w *webAPI) fhirSearchDevices(ctx context.Context, req *fhirRequest) (fhir.Resource, error) {
	q, err := fhir.ParseQuery("Device", req.query, req.strict)
	if err != nil {
		return nil, err
	}
	cur, err := q.Cursor()
	if err != nil {
		return nil, err
	}
	fac, tree := w.fhirTree()
	var within map[string]bool // devices in the locations searched; nil: no location searched
	for _, t := range q.Take("location") {
		in := w.fhirDevicesIn(ctx, tree, t.Values)
		if within != nil {
			for id := range within {
				if !in[id] {
					delete(within, id)
				}
			}
		} else {
			within = in
		}
	}
	total, more := 0, false
	var page []*pb.Device
	err = w.fhirDevices(ctx, func(d *pb.Device) bool {
		id := deviceOf(d)
		if within != nil && !within[id] || !q.Match(fhir.NewDevice(d, nil)) {
			return true
		}
		total++
		switch {
		case cur.After != "" && id <= cur.After:
		case len(page) < q.Count:
			page = append(page, d)
		default:
			more = true
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	b := fhirSearchset(req, q, total)
	for _, d := range page {
		b.Entry = append(b.Entry, fhirEntry(req.base, fhir.NewDevice(d, w.fhirZone(ctx, fac, deviceOf(d)))))
	}
	if more && len(page) > 0 {
		fhirNext(req, q, b, fhir.Cursor{After: deviceOf(page[len(page)-1])})
	}
	return fhirWarn(b, q), nil
}

// fhirDevicesIn returns the devices located in the Locations refs
// ("Location/{id}") name, or anywhere in them, that the caller may see.
func (w *webAPI) fhirDevicesIn(ctx context.Context, tree *fhir.Tree, refs []string) map[string]bool {
	site := principalFrom(ctx).Site
	in := map[string]bool{}
	for _, ref := range refs {
		i, ok := tree.Index(strings.TrimPrefix(ref, "Location/"))
		if !ok || site != "" && tree.Place(i).Site != site {
			continue
		}
		tree.Below(i, func(j int) bool {
			if p := tree.Place(j); p.Level == fhir.LevelZone {
				for _, id := range w.loc.engine.InZone(p.ID) {
					in[id] = true
				}
			}
			return true
		})
	}
	return in
}

func (w *webAPI) fhirReadMetric(ctx context.Context, req *fhirRequest) (fhir.Resource, error) {
	ref, _, err := fhir.ParseMetricID(req.id)
	if err != nil {
		return nil, fhirNotFound("DeviceMetric", req.id)
	}
	d, err := w.fhirDevice(ctx, ref)
	if status.Code(err) == codes.NotFound {
		return nil, fhirNotFound("DeviceMetric", req.id)
	}
	if err != nil {
		return nil, err
	}
	for _, m := range fhir.NewDeviceMetrics(d) {
		if m.ID == req.id {
			return m, nil
		}
	}
	return nil, fhirNotFound("DeviceMetric", req.id) // no battery reported
}

// fhirSearchMetrics searches the metrics of the devices the caller may
// see: of the devices source names, or of all.
func (w *webAPI) fhirSearchMetrics(ctx context.Context, req *fhirRequest) (fhir.Resource, error) {
	q, err := fhir.ParseQuery("DeviceMetric", req.query, req.strict)
	if err != nil {
		return nil, err
	}
	cur, err := q.Cursor()
	if err != nil {
		return nil, err
	}
	sources := q.Take("source")
	each := w.fhirDevices
	if len(sources) > 0 {
		// The devices the first source term names; every term is matched
		// below.
		var devices []*pb.Device
		for _, ref := range sources[0].Values {
			dref, err := fhir.ParseDeviceID(strings.TrimPrefix(ref, "Device/"))
			if err != nil {
				continue
			}
			d, err := w.fhirDevice(ctx, dref)
			if status.Code(err) == codes.NotFound {
				continue
			}
			if err != nil {
				return nil, err
			}
			devices = append(devices, d)
		}
		slices.SortFunc(devices, func(a, b *pb.Device) int { return strings.Compare(a.GetName(), b.GetName()) })
		devices = slices.CompactFunc(devices, func(a, b *pb.Device) bool { return a.GetName() == b.GetName() })
		each = func(_ context.Context, fn func(*pb.Device) bool) error {
			for _, d := range devices {
				if !fn(d) {
					break
				}
			}
			return nil
		}
	}
	type item struct {
		device string
		n      int
		metric *fhir.DeviceMetric
	}
	total, more := 0, false
	var page []item
	err = each(ctx, func(d *pb.Device) bool {
		id := deviceOf(d)
		for n, m := range fhir.NewDeviceMetrics(d) {
			if !q.Match(m) || slices.ContainsFunc(sources, func(t fhir.Term) bool { return !t.Match(m) }) {
				continue
			}
			total++
			switch {
			case cur.After != "" && (id < cur.After || id == cur.After && n <= cur.N):
			case len(page) < q.Count:
				page = append(page, item{id, n, m})
			default:
				more = true
			}
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	b := fhirSearchset(req, q, total)
	for _, it := range page {
		b.Entry = append(b.Entry, fhirEntry(req.base, it.metric))
	}
	if more && len(page) > 0 {
		last := page[len(page)-1]
		fhirNext(req, q, b, fhir.Cursor{After: last.device, N: last.n})
	}
	return fhirWarn(b, q), nil
}

func (w *webAPI) fhirReadLocation(ctx context.Context, req *fhirRequest) (fhir.Resource, error) {
	_, tree := w.fhirTree()
	i, ok := tree.Index(req.id)
	if site := principalFrom(ctx).Site; !ok || site != "" && tree.Place(i).Site != site {
		return nil, fhirNotFound("Location", req.id)
	}
	return tree.Location(i), nil
}

// fhirSearchLocations searches the facility's Locations the caller may
// see, in tree order. partof:below is matched here.
func (w *webAPI) fhirSearchLocations(ctx context.Context, req *fhirRequest) (fhir.Resource, error) {
	q, err := fhir.ParseQuery("Location", req.query, req.strict)
	if err != nil {
		return nil, err
	}
	cur, err := q.Cursor()
	if err != nil {
		return nil, err
	}
	_, tree := w.fhirTree()
	start := 0
	if cur.After != "" {
		i, ok := tree.Index(cur.After)
		if !ok {
			return nil, &fhir.ParamError{Param: "_page", Reason: "the facility changed since this page token: start again without it"}
		}
		start = i + 1
	}
	// below[k] holds the places in the Locations of the k-th partof:below
	// term.
	var below []map[int]bool
	for _, t := range q.Take("partof") {
		if t.Modifier != "below" {
			q.Terms = append(q.Terms, t) // partof: the Location's parent
			continue
		}
		in := map[int]bool{}
		for _, ref := range t.Values {
			if i, ok := tree.Index(strings.TrimPrefix(ref, "Location/")); ok {
				tree.Below(i, func(j int) bool { in[j] = j != i; return true })
			}
		}
		below = append(below, in)
	}
	site := principalFrom(ctx).Site
	total, more := 0, false
	var page []*fhir.Location
	for i := range tree.Len() {
		if site != "" && tree.Place(i).Site != site || slices.ContainsFunc(below, func(in map[int]bool) bool { return !in[i] }) {
			continue
		}
		l := tree.Location(i)
		if !q.Match(l) {
			continue
		}
		total++
		switch {
		case i < start:
		case len(page) < q.Count:
			page = append(page, l)
		default:
			more = true
		}
	}
	b := fhirSearchset(req, q, total)
	for _, l := range page {
		b.Entry = append(b.Entry, fhirEntry(req.base, l))
	}
	if more && len(page) > 0 {
		fhirNext(req, q, b, fhir.Cursor{After: page[len(page)-1].ID})
	}
	return fhirWarn(b, q), nil
}

// fhirSearchset starts the Bundle of a search's page, with its self link.
func fhirSearchset(req *fhirRequest, q *fhir.Query, total int) *fhir.Bundle {
	return &fhir.Bundle{Type: "searchset", Total: &total,
		Link: []fhir.BundleLink{{Relation: "self", URL: q.Link(cmp.Or(req.base, fhirPrefix), q.Page())}}}
}

// fhirNext links a search's next page, which starts after c.
func fhirNext(req *fhirRequest, q *fhir.Query, b *fhir.Bundle, c fhir.Cursor) {
	b.Link = append(b.Link, fhir.BundleLink{Relation: "next", URL: q.Link(cmp.Or(req.base, fhirPrefix), q.PageToken(c))})
}

// fhirEntry is a search's match, with its full URL when base is known.
func fhirEntry(base string, r fhir.Resource) fhir.BundleEntry {
	e := fhir.BundleEntry{Resource: r, Search: &fhir.BundleSearch{Mode: "match"}}
	if base != "" {
		e.FullURL = base + "/" + r.ResourceType() + "/" + r.ResourceID()
	}
	return e
}

// fhirWarn adds to a search's result an OperationOutcome naming the
// parameters it ignored, if any.
func fhirWarn(b *fhir.Bundle, q *fhir.Query) *fhir.Bundle {
	if len(q.Ignored) > 0 {
		b.Entry = append(b.Entry, fhir.BundleEntry{
			Resource: fhir.Outcome("warning", fhir.IssueNotSupported, "search parameters ignored: "+strings.Join(q.Ignored, ", ")),
			Search:   &fhir.BundleSearch{Mode: "outcome"},
		})
	}
	return b
}
