package fhir

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Search parameter types.
const (
	ParamToken     = "token"
	ParamString    = "string"
	ParamReference = "reference"
)

// SearchParam is a search parameter the export supports for a resource.
type SearchParam struct {
	Name, Type, Documentation string
	// Standard: FHIR R4 defines the parameter for the resource (else
	// Medfleet does).
	Standard bool
	// Modifiers are the modifiers the parameter takes beyond those of its
	// type (string: exact, contains).
	Modifiers []string
	// Target is the resource type a reference parameter points to.
	Target string

	// values returns what the parameter matches in a resource: codes for
	// a token, strings for a string, "Type/id" references for a
	// reference.
	tokens  func(Resource) []Coding
	strings func(Resource) []string
	refs    func(Resource) []string
}

// Paging: the default and the largest _count.
const (
	DefaultCount = 50
	MaxCount     = 500
)

// maxPageToken bounds a _page token's length.
const maxPageToken = 512

var idParam = SearchParam{Name: "_id", Type: ParamToken, Standard: true, Documentation: "The resource's logical id.",
	tokens: func(r Resource) []Coding { return []Coding{{Code: r.ResourceID()}} }}

// SearchParams are the search parameters of each resource type.
var SearchParams = map[string][]SearchParam{
	"Device": {
		idParam,
		{Name: "identifier", Type: ParamToken, Standard: true,
			Documentation: "The asset tag (system " + SystemAssetTag + ") or the Medfleet device id (system " + SystemDeviceID + "); system|value or value.",
			tokens: func(r Resource) []Coding {
				var out []Coding
				for _, id := range r.(*Device).Identifier {
					out = append(out, Coding{System: id.System, Code: id.Value})
				}
				return out
			}},
		{Name: "type", Type: ParamToken, Standard: true,
			Documentation: "The device profile (system " + SystemProfile + "): infusion-pump, cpap, rfid-reader, ...",
			tokens:        func(r Resource) []Coding { return codings(r.(*Device).Type) }},
		{Name: "status", Type: ParamToken, Standard: true,
			Documentation: "active (in service), or inactive (out of service or decommissioned).",
			tokens:        func(r Resource) []Coding { return []Coding{{System: SystemDeviceStatus, Code: r.(*Device).Status}} }},
		{Name: "location", Type: ParamReference, Standard: true, Target: "Location", Modifiers: []string{"below"},
			Documentation: "Location/{id} or {id}: the devices located in that Location or anywhere in it (a unit: the zones of its rooms). " +
				"With or without :below, as a device's location is always a zone.",
			refs: func(r Resource) []string { return refs(r.(*Device).Location) }},
		{Name: "manufacturer", Type: ParamString, Standard: true, Documentation: "The manufacturer.",
			strings: func(r Resource) []string { return nonEmpty(r.(*Device).Manufacturer) }},
		{Name: "model", Type: ParamString, Standard: true, Documentation: "The model.",
			strings: func(r Resource) []string { return nonEmpty(r.(*Device).ModelNumber) }},
		{Name: "device-name", Type: ParamString, Standard: true, Documentation: "The model or the device profile.",
			strings: func(r Resource) []string {
				d := r.(*Device)
				var out []string
				for _, n := range d.DeviceName {
					out = append(out, n.Name)
				}
				if d.Type != nil {
					out = append(out, d.Type.Text)
				}
				return out
			}},
		{Name: "udi-di", Type: ParamString, Standard: true, Documentation: "The UDI's device identifier (GTIN-14).",
			strings: func(r Resource) []string {
				var out []string
				for _, u := range r.(*Device).UDICarrier {
					out = append(out, u.DeviceIdentifier)
				}
				return out
			}},
		{Name: "udi-carrier", Type: ParamString, Standard: true, Documentation: "The UDI in its human-readable form, \"(01)...\".",
			strings: func(r Resource) []string {
				var out []string
				for _, u := range r.(*Device).UDICarrier {
					out = append(out, u.CarrierHRF)
				}
				return out
			}},
	},
	"Location": {
		idParam,
		{Name: "identifier", Type: ParamToken, Standard: true,
			Documentation: "The facility id, in the system " + SystemFacility + "{site,building,floor,unit,room,zone}.",
			tokens: func(r Resource) []Coding {
				var out []Coding
				for _, id := range r.(*Location).Identifier {
					out = append(out, Coding{System: id.System, Code: id.Value})
				}
				return out
			}},
		{Name: "name", Type: ParamString, Standard: true, Documentation: "The name.",
			strings: func(r Resource) []string { return nonEmpty(r.(*Location).Name) }},
		{Name: "status", Type: ParamToken, Standard: true, Documentation: "Always active.",
			tokens: func(r Resource) []Coding {
				return []Coding{{System: "http://hl7.org/fhir/location-status", Code: r.(*Location).Status}}
			}},
		{Name: "partof", Type: ParamReference, Standard: true, Target: "Location", Modifiers: []string{"below"},
			Documentation: "The Locations directly in that Location; with :below, every Location in it.",
			refs:          func(r Resource) []string { return refs(r.(*Location).PartOf) }},
		{Name: "physical-type", Type: ParamToken,
			Documentation: "The physical type (" + SystemPhysicalType + "): si, bu, lvl, wa, ro or area.",
			tokens:        func(r Resource) []Coding { return codings(r.(*Location).PhysicalType) }},
	},
	"DeviceMetric": {
		idParam,
		{Name: "source", Type: ParamReference, Standard: true, Target: "Device", Documentation: "Device/{id} or {id}: the device's metrics.",
			refs: func(r Resource) []string { return refs(r.(*DeviceMetric).Source) }},
		{Name: "type", Type: ParamToken, Standard: true, Documentation: "The metric (system " + SystemMetric + "): usage-hours or battery.",
			tokens: func(r Resource) []Coding { t := r.(*DeviceMetric).Type; return codings(&t) }},
		{Name: "category", Type: ParamToken, Standard: true, Documentation: "Always measurement.",
			tokens: func(r Resource) []Coding {
				return []Coding{{System: "http://hl7.org/fhir/metric-category", Code: r.(*DeviceMetric).Category}}
			}},
	},
}

// resultParams are the parameters that shape a search's result rather
// than select resources; _format and _pretty are the caller's to read.
var resultParams = []string{"_count", "_page", "_format", "_pretty"}

func codings(c *CodeableConcept) []Coding {
	if c == nil {
		return nil
	}
	return c.Coding
}

func refs(r *Reference) []string {
	if r == nil {
		return nil
	}
	return []string{r.Reference}
}

func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

// Term is one search parameter of a query with its values, any of which
// may match.
type Term struct {
	Param    *SearchParam
	Modifier string
	Values   []string
}

// Query is a parsed search of one resource type: its terms, all of which
// must match, and its paging.
type Query struct {
	Resource string
	Terms    []Term
	// Count is the page size: _count, or DefaultCount; at most MaxCount.
	Count int
	// Ignored are the parameters the query does not know, left out when
	// not strict.
	Ignored []string

	page    string
	applied url.Values // the parameters the terms came from
}

// ParamError is a search parameter the export cannot apply. Unknown says
// the parameter or its modifier is not supported, rather than its value
// wrong.
type ParamError struct {
	Param, Reason string
	Unknown       bool
}

func (e *ParamError) Error() string { return e.Param + ": " + e.Reason }

// ParseQuery reads the search parameters of a search of a resource type.
// A parameter the export does not know is left out, and listed in
// Ignored, unless strict (a client's "Prefer: handling=strict"), when it
// is an error; an unknown modifier is always one. A parameter without a
// value is left out, as FHIR asks. Values separated by commas are
// alternatives; a parameter given twice must match both times.
func ParseQuery(resource string, values url.Values, strict bool) (*Query, error) {
	params, ok := SearchParams[resource]
	if !ok {
		return nil, &ParamError{Param: "resourceType", Reason: resource + " is not searchable", Unknown: true}
	}
	q := &Query{Resource: resource, Count: DefaultCount, applied: url.Values{}}
	for _, key := range slices.Sorted(maps.Keys(values)) {
		name, modifier, _ := strings.Cut(key, ":")
		if slices.Contains(resultParams, name) {
			if modifier != "" {
				return nil, &ParamError{Param: key, Reason: "takes no modifier", Unknown: true}
			}
			if err := q.result(name, values[key]); err != nil {
				return nil, err
			}
			continue
		}
		i := slices.IndexFunc(params, func(p SearchParam) bool { return p.Name == name })
		if i < 0 {
			if strict {
				return nil, &ParamError{Param: key, Reason: "not a search parameter of " + resource + " here", Unknown: true}
			}
			q.Ignored = append(q.Ignored, key)
			continue
		}
		p := &params[i]
		if modifier != "" && !p.takes(modifier) {
			return nil, &ParamError{Param: key, Reason: "the modifier :" + modifier + " is not supported", Unknown: true}
		}
		for _, v := range values[key] {
			if v == "" {
				continue
			}
			t := Term{Param: p, Modifier: modifier}
			for _, alt := range cut(v, ',') {
				if p.Type == ParamReference {
					ref, err := reference(alt, p.Target)
					if err != nil {
						return nil, &ParamError{Param: key, Reason: err.Error()}
					}
					alt = ref
				}
				t.Values = append(t.Values, alt)
			}
			q.Terms = append(q.Terms, t)
			q.applied.Add(key, v)
		}
	}
	return q, nil
}

// result reads a result parameter.
func (q *Query) result(name string, vs []string) error {
	if len(vs) > 1 {
		return &ParamError{Param: name, Reason: "given more than once"}
	}
	switch name {
	case "_count":
		n, err := strconv.Atoi(vs[0])
		if err != nil || n < 0 {
			return &ParamError{Param: name, Reason: strconv.Quote(vs[0]) + " is not a number of resources: want 0 to " + strconv.Itoa(MaxCount)}
		}
		q.Count = min(n, MaxCount)
	case "_page":
		if len(vs[0]) > maxPageToken {
			return &ParamError{Param: name, Reason: "not a page token of this search"}
		}
		q.page = vs[0]
	}
	return nil
}

// takes reports whether the parameter takes a modifier.
func (p *SearchParam) takes(modifier string) bool {
	if p.Type == ParamString && (modifier == "exact" || modifier == "contains") {
		return true
	}
	return slices.Contains(p.Modifiers, modifier)
}

// cut splits a search value at every sep that no backslash escapes
// (FHIR escapes ",", "|", "$" and "\\" so in values); the parts keep
// their escapes.
func cut(v string, sep byte) []string {
	var out []string
	start := 0
	for i := 0; i < len(v); i++ {
		switch v[i] {
		case '\\':
			i++
		case sep:
			out = append(out, v[start:i])
			start = i + 1
		}
	}
	return append(out, v[start:])
}

// unescape removes the escapes from a search value.
func unescape(v string) string {
	if !strings.Contains(v, `\`) {
		return v
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] == '\\' && i+1 < len(v) {
			i++
		}
		b.WriteByte(v[i])
	}
	return b.String()
}

// reference reads a reference parameter's value, "Type/id", "id" or an
// absolute URL ending in Type/id, as "Type/id".
func reference(v, target string) (string, error) {
	v = unescape(v)
	if u, err := url.Parse(v); err == nil && u.IsAbs() {
		v = u.Path
		if i := strings.LastIndex(v, "/"+target+"/"); i >= 0 {
			v = v[i+1:]
		}
	}
	id, ok := strings.CutPrefix(v, target+"/")
	if !ok && strings.Contains(v, "/") {
		return "", fmt.Errorf("%q is not a reference to a %s: want %s/{id} or {id}", v, target, target)
	}
	if !ok {
		id = v
	}
	if !ValidID(id) {
		return "", fmt.Errorf("%q is not a %s id", id, target)
	}
	return target + "/" + id, nil
}

// Take removes the terms of a parameter from the query, for a caller
// that matches them itself, and returns them.
func (q *Query) Take(name string) []Term {
	var out []Term
	q.Terms = slices.DeleteFunc(q.Terms, func(t Term) bool {
		if t.Param.Name == name {
			out = append(out, t)
			return true
		}
		return false
	})
	return out
}

// Match reports whether a resource of the query's type matches every
// term left in the query.
func (q *Query) Match(r Resource) bool {
	for _, t := range q.Terms {
		if !t.Match(r) {
			return false
		}
	}
	return true
}

// Match reports whether any of the term's values matches the resource.
func (t Term) Match(r Resource) bool {
	p := t.Param
	for _, want := range t.Values {
		switch p.Type {
		case ParamToken:
			system, code, hasSystem := cutToken(want)
			for _, c := range p.tokens(r) {
				switch {
				case !hasSystem && c.Code == code,
					hasSystem && c.System == system && (code == "" || c.Code == code):
					return true
				}
			}
		case ParamString:
			for _, s := range p.strings(r) {
				if matchString(s, want, t.Modifier) {
					return true
				}
			}
		case ParamReference:
			if slices.Contains(p.refs(r), want) {
				return true
			}
		}
	}
	return false
}

// cutUnescaped reads a token value: "system|code", "|code" (no system:
// the system must be absent) or "code".
func cutToken(v string) (system, code string, hasSystem bool) {
	parts := cut(v, '|')
	if len(parts) == 1 {
		return "", unescape(v), false
	}
	return unescape(parts[0]), unescape(v[len(parts[0])+1:]), true
}

// matchString matches a string parameter: by default the value starts
// with what is searched, in any case; :exact, the same string; :contains,
// contains it in any case.
func matchString(value, search, modifier string) bool {
	search = unescape(search)
	switch modifier {
	case "exact":
		return value == search
	case "contains":
		return strings.Contains(strings.ToLower(value), strings.ToLower(search))
	}
	return strings.HasPrefix(strings.ToLower(value), strings.ToLower(search))
}

// Cursor is where a page of a search starts: after the resource whose
// key is After (and, for resources that share a key, the N-th of them).
type Cursor struct {
	After string `json:"a"`
	N     int    `json:"n,omitempty"`
	Query uint64 `json:"q"`
}

// Cursor returns where the requested page starts; the zero Cursor for
// the first page. A _page token of another search is an error.
func (q *Query) Cursor() (Cursor, error) {
	if q.page == "" {
		return Cursor{}, nil
	}
	bad := &ParamError{Param: "_page", Reason: "not a page token of this search: start again without it"}
	b, err := base64.RawURLEncoding.DecodeString(q.page)
	if err != nil {
		return Cursor{}, bad
	}
	var c Cursor
	if err := json.Unmarshal(b, &c); err != nil || c.After == "" || c.N < 0 || c.Query != q.digest() {
		return Cursor{}, bad
	}
	return c, nil
}

// PageToken is the _page token of the page that starts at c.
func (q *Query) PageToken(c Cursor) string {
	c.Query = q.digest()
	b, _ := json.Marshal(c) // cannot fail: plain fields
	return base64.RawURLEncoding.EncodeToString(b)
}

// digest ties page tokens to the resource type and the parameters
// applied.
func (q *Query) digest() uint64 {
	h := fnv.New64a()
	h.Write([]byte(q.Resource + "?" + q.applied.Encode()))
	return h.Sum64()
}

// Link is the URL of a page of the search under base (".../fhir"): the
// parameters applied, _count, and the page's token when it is not the
// first.
func (q *Query) Link(base, page string) string {
	v := url.Values{}
	for k, vs := range q.applied {
		v[k] = vs
	}
	v.Set("_count", strconv.Itoa(q.Count))
	if page != "" {
		v.Set("_page", page)
	}
	return base + "/" + q.Resource + "?" + v.Encode()
}

// Page returns the token of the requested page, "" for the first.
func (q *Query) Page() string { return q.page }
