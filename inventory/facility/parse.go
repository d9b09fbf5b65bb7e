package facility

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // time_zone is checked the same way on every host
	"unicode"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// Limits on a facility document.
const (
	// MaxDocumentSize is the largest document Parse reads, in bytes.
	MaxDocumentSize = 4 << 20
	// MaxZonesPerRoom bounds the zones of one room, which are all
	// connected to each other.
	MaxZonesPerRoom = 100
	// MaxMetres bounds every coordinate, size and cost, in metres.
	MaxMetres = 100_000
	// MaxNameLen bounds display names, in characters.
	MaxNameLen = 128
	// MaxAntennaNameLen bounds antenna names, in characters.
	MaxAntennaNameLen = 16
	// maxErrors is how many problems Parse reports before it gives up.
	maxErrors = 100
)

// Connection kinds.
const (
	KindWalk   = "walk"
	KindStairs = "stairs"
	KindLift   = "lift"
)

var (
	idPattern       = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)
	deviceIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`) // coap.ValidateDeviceID's
	profilePattern  = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)            // coap.ValidateProfile's
	bssidPattern    = regexp.MustCompile(`^[0-9a-f]{2}(:[0-9a-f]{2}){5}$`)
	yamlLinePattern = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)
)

// LineError is one problem of a facility document: the line of the YAML
// node at fault (0 when the problem is the whole document), the field's
// path such as "sites[0].buildings[0].floors[1].units[0].rooms[2].zones[0].w",
// and why it is wrong.
type LineError struct {
	Line   int
	Field  string
	Reason string
}

func (e *LineError) Error() string {
	var b strings.Builder
	if e.Line > 0 {
		b.WriteString("line ")
		b.WriteString(strconv.Itoa(e.Line))
		b.WriteString(": ")
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Reason)
	return b.String()
}

// Parse reads and validates a facility document (the format is in the
// package documentation). It reports every problem it finds, up to 100, in
// line order, each as a *LineError, joined with errors.Join.
func Parse(data []byte) (*Facility, error) {
	if len(data) > MaxDocumentSize {
		return nil, errors.Join(&LineError{Reason: fmt.Sprintf("the document is %d bytes, more than %d (4 MiB)", len(data), MaxDocumentSize)})
	}
	root, err := decodeYAML(data)
	if err != nil {
		return nil, errors.Join(err)
	}
	p := &parser{
		f: &Facility{
			zoneIndex: map[string]int32{},
			roomZone:  map[string]int32{},
			unitZone:  map[string]int32{},
			timeZones: map[string]*time.Location{},
			antennas:  map[antenna]int32{},
			bssids:    map[string]int32{},
		},
		first: map[kindID]int{},
	}
	p.document(root)
	if len(p.errs) > 0 {
		return nil, p.err()
	}
	f := p.f
	f.graph = newGraph(f.zones, p.rooms, p.conns)
	return f, nil
}

// decodeYAML returns the root node of the only document in data, nil for
// an empty one.
func decodeYAML(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if err == io.EOF {
			return nil, nil
		}
		return nil, yamlError(err)
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case err == io.EOF:
	case err != nil:
		return nil, yamlError(err)
	default:
		return nil, &LineError{Line: next.Line, Reason: "a second YAML document: want one"}
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	return doc.Content[0], nil
}

// yamlError turns a YAML syntax error into a LineError.
func yamlError(err error) *LineError {
	msg := err.Error()
	if m := yamlLinePattern.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &LineError{Line: line, Reason: "invalid YAML: " + m[2]}
	}
	return &LineError{Reason: "invalid YAML: " + strings.TrimPrefix(msg, "yaml: ")}
}

// parser walks the YAML tree, building the facility and collecting errors.
type parser struct {
	f     *Facility
	errs  []*LineError
	first map[kindID]int // line of the first id of each kind

	rooms     []span // zones of each room, by zone index
	conns     []connection
	zoneNodes int // zones in the document, valid or not
}

// kindID is an id with its kind ("zone", "room"...): ids are unique per kind.
type kindID struct{ kind, id string }

// connection is an undirected edge between zones, by index.
type connection struct {
	from, to int32
	cost     float64
}

// field is one key and value of a YAML mapping.
type field struct{ key, value *yaml.Node }

func (p *parser) errorf(line int, path, format string, args ...any) {
	p.errs = append(p.errs, &LineError{Line: line, Field: path, Reason: fmt.Sprintf(format, args...)})
}

// err returns the problems found, in line order, the first maxErrors of them.
func (p *parser) err() error {
	slices.SortStableFunc(p.errs, func(a, b *LineError) int { return a.Line - b.Line })
	var errs []error
	for i, e := range p.errs {
		if i == maxErrors {
			errs = append(errs, &LineError{Reason: fmt.Sprintf("%d more problems not shown", len(p.errs)-maxErrors)})
			break
		}
		errs = append(errs, e)
	}
	return errors.Join(errs...)
}

// join appends a key to a field path, shortened if it is long: keys are
// the document's own, whatever their size.
func join(path, key string) string {
	key = truncate(key)
	if path == "" {
		return key
	}
	return path + "." + key
}

func index(path string, i int) string { return path + "[" + strconv.Itoa(i) + "]" }

// is reports whether n is of the wanted kind, and says what is wrong if not.
func (p *parser) is(n *yaml.Node, path string, kind yaml.Kind) bool {
	if n.Kind == kind {
		return true
	}
	if n.Kind == yaml.AliasNode {
		p.errorf(n.Line, path, "aliases (*%s) are not supported", n.Value)
		return false
	}
	p.errorf(n.Line, path, "want %s", kindNames[kind])
	return false
}

var kindNames = map[yaml.Kind]string{yaml.MappingNode: "a mapping", yaml.SequenceNode: "a list", yaml.ScalarNode: "a single value"}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

// pairs returns the fields of a mapping in document order, reporting keys
// that are not plain values and keys given twice. A null is an empty mapping.
func (p *parser) pairs(n *yaml.Node, path string) []field {
	if isNull(n) || !p.is(n, path, yaml.MappingNode) {
		return nil
	}
	out := make([]field, 0, len(n.Content)/2)
	lines := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if !p.is(k, path, yaml.ScalarNode) {
			continue
		}
		if first, dup := lines[k.Value]; dup {
			p.errorf(k.Line, join(path, k.Value), "given twice (first at line %d)", first)
			continue
		}
		lines[k.Value] = k.Line
		out = append(out, field{k, v})
	}
	return out
}

// fields returns the fields of a mapping by key, reporting unknown keys.
func (p *parser) fields(n *yaml.Node, path string, known ...string) (map[string]field, bool) {
	if !p.is(n, path, yaml.MappingNode) {
		return nil, false
	}
	out := map[string]field{}
	for _, f := range p.pairs(n, path) {
		if !slices.Contains(known, f.key.Value) {
			p.errorf(f.key.Line, join(path, f.key.Value), "unknown field: want one of %s", strings.Join(known, ", "))
			continue
		}
		out[f.key.Value] = f
	}
	return out, true
}

// list returns the items of a sequence; a null or absent one is empty. ok
// is false when the value is not a list, which it reports.
func (p *parser) list(m map[string]field, path, key string) (items []*yaml.Node, ok bool) {
	f, given := m[key]
	if !given || isNull(f.value) {
		return nil, true
	}
	if !p.is(f.value, join(path, key), yaml.SequenceNode) {
		return nil, false
	}
	return f.value.Content, true
}

// scalar returns the text of a single value; a null is "".
func (p *parser) scalar(n *yaml.Node, path string) (string, bool) {
	if !p.is(n, path, yaml.ScalarNode) {
		return "", false
	}
	if isNull(n) {
		return "", true
	}
	return n.Value, true
}

// name returns a required display name.
func (p *parser) name(m map[string]field, n *yaml.Node, path string) string {
	path = join(path, "name")
	f, ok := m["name"]
	if !ok {
		p.errorf(n.Line, path, "required")
		return ""
	}
	s, ok := p.scalar(f.value, path)
	switch {
	case !ok:
	case strings.TrimSpace(s) == "":
		p.errorf(f.value.Line, path, "required")
	case utf8.RuneCountInString(s) > MaxNameLen:
		p.errorf(f.value.Line, path, "longer than %d characters", MaxNameLen)
	}
	return s
}

// id returns a required id, checking its pattern and that no other of its
// kind came before.
func (p *parser) id(m map[string]field, n *yaml.Node, path, kind string) string {
	path = join(path, "id")
	f, ok := m["id"]
	if !ok {
		p.errorf(n.Line, path, "required")
		return ""
	}
	id, ok := p.scalar(f.value, path)
	switch {
	case !ok:
		return ""
	case id == "":
		p.errorf(f.value.Line, path, "required")
		return ""
	case !idPattern.MatchString(id):
		p.errorf(f.value.Line, path, "%q is not an id: 1-64 of [a-z0-9._-], starting with a letter or digit", truncate(id))
	}
	key := kindID{kind, id}
	if first, dup := p.first[key]; dup {
		p.errorf(f.value.Line, path, "duplicate %s id %q (first at line %d)", kind, id, first)
	} else {
		p.first[key] = f.value.Line
	}
	return id
}

// metres returns an optional length or coordinate: a finite number from 0
// to MaxMetres. given is false when the key is absent (line 0) or when the
// value is invalid, which it reports (line is the value's).
func (p *parser) metres(m map[string]field, path, key string) (v float64, line int, given bool) {
	f, ok := m[key]
	if !ok {
		return 0, 0, false
	}
	path = join(path, key)
	if !p.is(f.value, path, yaml.ScalarNode) {
		return 0, f.value.Line, false
	}
	if err := f.value.Decode(&v); err != nil || isNull(f.value) || math.IsNaN(v) || math.IsInf(v, 0) {
		p.errorf(f.value.Line, path, "%q: want a number of metres", truncate(f.value.Value))
		return 0, f.value.Line, false
	}
	switch {
	case v < 0:
		p.errorf(f.value.Line, path, "%v: must not be negative", v)
		return 0, f.value.Line, false
	case v > MaxMetres:
		p.errorf(f.value.Line, path, "%v: more than %d metres", v, MaxMetres)
		return 0, f.value.Line, false
	}
	return v, f.value.Line, true
}

// integer decodes an integer value.
func (p *parser) integer(n *yaml.Node, path string) (int, bool) {
	if !p.is(n, path, yaml.ScalarNode) {
		return 0, false
	}
	var v int
	if err := n.Decode(&v); err != nil || n.Tag != "!!int" {
		p.errorf(n.Line, path, "%q: want an integer", truncate(n.Value))
		return 0, false
	}
	return v, true
}

// zoneRef returns the index of the zone a required field names.
func (p *parser) zoneRef(m map[string]field, n *yaml.Node, path, key string) (int32, bool) {
	f, ok := m[key]
	if !ok {
		p.errorf(n.Line, join(path, key), "required: a zone id")
		return 0, false
	}
	return p.zoneValue(f.value, join(path, key))
}

func (p *parser) zoneValue(n *yaml.Node, path string) (int32, bool) {
	id, ok := p.scalar(n, path)
	if !ok {
		return 0, false
	}
	if id == "" {
		p.errorf(n.Line, path, "required: a zone id")
		return 0, false
	}
	i, ok := p.f.zoneIndex[id]
	if !ok {
		p.errorf(n.Line, path, "unknown zone %q", truncate(id))
	}
	return i, ok
}

func truncate(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	for i := max; i > 0; i-- {
		if utf8.RuneStart(s[i]) {
			return s[:i] + "..."
		}
	}
	return "..."
}

// document parses the whole document: the sites first, so that the other
// sections can refer to their zones wherever they are.
func (p *parser) document(root *yaml.Node) {
	if root == nil {
		p.errorf(1, "sites", "required: the document is empty")
		return
	}
	m, ok := p.fields(root, "", "sites", "connections", "readers", "access_points")
	if !ok {
		return
	}
	sites, ok := p.list(m, "", "sites")
	for i, n := range sites {
		p.site(n, index("sites", i))
	}
	switch {
	case !ok:
	case len(sites) == 0:
		line := root.Line
		if f, ok := m["sites"]; ok {
			line = f.key.Line
		}
		p.errorf(line, "sites", "required: at least one site")
	case p.zoneNodes == 0:
		p.errorf(m["sites"].key.Line, "sites", "the facility has no zone: want at least one")
	}
	for _, section := range []struct {
		key   string
		parse func(*yaml.Node, string)
	}{{"connections", p.connection}, {"readers", p.reader}, {"access_points", p.accessPoint}} {
		items, _ := p.list(m, "", section.key)
		for i, n := range items {
			section.parse(n, index(section.key, i))
		}
	}
}

func (p *parser) site(n *yaml.Node, path string) {
	m, ok := p.fields(n, path, "id", "name", "time_zone", "buildings")
	if !ok {
		return
	}
	at := Place{Site: p.id(m, n, path, "site"), SiteName: p.name(m, n, path)}
	if f, ok := m["time_zone"]; ok {
		p.timeZone(at.Site, f.value, join(path, "time_zone"))
	}
	buildings, _ := p.list(m, path, "buildings")
	for i, b := range buildings {
		p.building(b, index(join(path, "buildings"), i), at)
	}
}

func (p *parser) timeZone(site string, n *yaml.Node, path string) {
	name, ok := p.scalar(n, path)
	if !ok || name == "" {
		return
	}
	// "Local" would be the server's zone, whatever that is.
	loc, err := time.LoadLocation(name)
	if err != nil || name == "Local" {
		p.errorf(n.Line, path, "%q is not an IANA time zone such as Europe/Paris", truncate(name))
		return
	}
	p.f.timeZones[site] = loc
}

func (p *parser) building(n *yaml.Node, path string, at Place) {
	m, ok := p.fields(n, path, "id", "name", "floors")
	if !ok {
		return
	}
	at.Building, at.BuildingName = p.id(m, n, path, "building"), p.name(m, n, path)
	first := len(p.f.floors)
	floors, _ := p.list(m, path, "floors")
	for i, fl := range floors {
		p.floor(fl, index(join(path, "floors"), i), at)
	}
	slices.SortStableFunc(p.f.floors[first:], func(a, b FloorPlan) int { return a.Level - b.Level })
}

func (p *parser) floor(n *yaml.Node, path string, at Place) {
	m, ok := p.fields(n, path, "id", "name", "level", "width", "height", "units")
	if !ok {
		return
	}
	at.Floor, at.FloorName = p.id(m, n, path, "floor"), p.name(m, n, path)
	plan := FloorPlan{Site: at.Site, Building: at.Building, Floor: at.Floor, Name: at.FloorName}
	if f, ok := m["level"]; ok {
		plan.Level, _ = p.integer(f.value, join(path, "level"))
	} else {
		p.errorf(n.Line, join(path, "level"), "required: an integer, for ordering")
	}
	var bounds floorBounds
	bounds.width, bounds.widthLine, bounds.hasWidth = p.positive(m, path, "width")
	bounds.height, bounds.heightLine, bounds.hasHeight = p.positive(m, path, "height")
	first := len(p.f.zones)
	units, _ := p.list(m, path, "units")
	for i, u := range units {
		p.unit(u, index(join(path, "units"), i), at, bounds)
	}
	plan.Zones = slices.Clone(p.f.zones[first:])
	plan.Width, plan.Height = bounds.width, bounds.height
	for _, z := range plan.Zones {
		if !bounds.hasWidth {
			plan.Width = max(plan.Width, z.X+z.W)
		}
		if !bounds.hasHeight {
			plan.Height = max(plan.Height, z.Y+z.H)
		}
	}
	p.f.floors = append(p.f.floors, plan)
}

// floorBounds is a floor's extent, when the document gives it.
type floorBounds struct {
	width, height         float64
	widthLine, heightLine int
	hasWidth, hasHeight   bool
}

// positive returns an optional size that must be more than zero.
func (p *parser) positive(m map[string]field, path, key string) (float64, int, bool) {
	v, line, given := p.metres(m, path, key)
	if given && v == 0 {
		p.errorf(line, join(path, key), "must be positive")
		return 0, line, false
	}
	return v, line, given
}

func (p *parser) unit(n *yaml.Node, path string, at Place, bounds floorBounds) {
	m, ok := p.fields(n, path, "id", "name", "par", "rooms")
	if !ok {
		return
	}
	at.Unit, at.UnitName = p.id(m, n, path, "unit"), p.name(m, n, path)
	p.f.units = append(p.f.units, at)
	if f, ok := m["par"]; ok {
		p.par(f.value, join(path, "par"), at)
	}
	rooms, ok := p.list(m, path, "rooms")
	if ok && len(rooms) == 0 {
		p.errorf(n.Line, join(path, "rooms"), "required: at least one room")
	}
	for i, r := range rooms {
		first := len(p.f.zones)
		p.room(r, index(join(path, "rooms"), i), at, bounds)
		if _, dup := p.f.unitZone[at.Unit]; !dup && len(p.f.zones) > first {
			p.f.unitZone[at.Unit] = int32(first)
		}
	}
}

func (p *parser) par(n *yaml.Node, path string, at Place) {
	for _, f := range p.pairs(n, path) {
		profile, fpath := f.key.Value, join(path, f.key.Value)
		if !profilePattern.MatchString(profile) {
			p.errorf(f.key.Line, fpath, "%q is not a device profile: a lower-case letter, then up to 31 of [a-z0-9-]", truncate(profile))
		}
		min, ok := p.integer(f.value, fpath)
		if ok && min < 0 {
			p.errorf(f.value.Line, fpath, "%d: must not be negative", min)
		}
		p.f.par = append(p.f.par, ParLevel{Unit: at.Unit, UnitName: at.UnitName, Profile: profile, Min: min})
	}
}

func (p *parser) room(n *yaml.Node, path string, at Place, bounds floorBounds) {
	m, ok := p.fields(n, path, "id", "name", "zones")
	if !ok {
		return
	}
	at.Room, at.RoomName = p.id(m, n, path, "room"), p.name(m, n, path)
	zones, ok := p.list(m, path, "zones")
	switch {
	case ok && len(zones) == 0:
		p.errorf(n.Line, join(path, "zones"), "required: at least one zone")
	case len(zones) > MaxZonesPerRoom:
		p.errorf(m["zones"].key.Line, join(path, "zones"), "%d zones: a room holds at most %d", len(zones), MaxZonesPerRoom)
		return
	}
	first := int32(len(p.f.zones))
	for i, z := range zones {
		p.zone(z, index(join(path, "zones"), i), at, bounds)
	}
	last := int32(len(p.f.zones))
	if last > first {
		p.rooms = append(p.rooms, span{first, last})
		if _, dup := p.f.roomZone[at.Room]; !dup {
			p.f.roomZone[at.Room] = first
		}
	}
}

func (p *parser) zone(n *yaml.Node, path string, at Place, bounds floorBounds) {
	m, ok := p.fields(n, path, "id", "name", "x", "y", "w", "h")
	if !ok {
		return
	}
	p.zoneNodes++
	z := Zone{ID: p.id(m, n, path, "zone"), Name: p.name(m, n, path)}
	at.Zone, at.ZoneName = z.ID, z.Name
	z.Place = at
	var lines [4]int
	for i, c := range []struct {
		key string
		v   *float64
	}{{"x", &z.X}, {"y", &z.Y}, {"w", &z.W}, {"h", &z.H}} {
		var given bool
		*c.v, lines[i], given = p.metres(m, path, c.key)
		switch {
		case lines[i] == 0:
			p.errorf(n.Line, join(path, c.key), "required: metres")
		case given && i >= 2 && *c.v == 0:
			p.errorf(lines[i], join(path, c.key), "must be positive")
		}
	}
	if bounds.hasWidth && z.X+z.W > bounds.width {
		p.errorf(cmp.Or(lines[2], n.Line), join(path, "w"), "the zone ends at x = %v m, beyond the floor's width of %v m (line %d)", z.X+z.W, bounds.width, bounds.widthLine)
	}
	if bounds.hasHeight && z.Y+z.H > bounds.height {
		p.errorf(cmp.Or(lines[3], n.Line), join(path, "h"), "the zone ends at y = %v m, beyond the floor's height of %v m (line %d)", z.Y+z.H, bounds.height, bounds.heightLine)
	}
	if z.ID == "" {
		return
	}
	if _, dup := p.f.zoneIndex[z.ID]; !dup {
		p.f.zoneIndex[z.ID] = int32(len(p.f.zones))
	}
	p.f.zones = append(p.f.zones, z)
}

func (p *parser) connection(n *yaml.Node, path string) {
	m, ok := p.fields(n, path, "from", "to", "kind", "cost")
	if !ok {
		return
	}
	from, ok1 := p.zoneRef(m, n, path, "from")
	to, ok2 := p.zoneRef(m, n, path, "to")
	kind, kindLine := KindWalk, n.Line
	if f, ok := m["kind"]; ok {
		kind, kindLine = "", f.value.Line // "" when invalid: reported once
		if s, ok := p.scalar(f.value, join(path, "kind")); ok {
			switch s {
			case KindWalk, KindStairs, KindLift:
				kind = s
			default:
				p.errorf(f.value.Line, join(path, "kind"), "%q: want walk, stairs or lift", truncate(s))
			}
		}
	}
	cost, costLine, hasCost := p.metres(m, path, "cost")
	if !ok1 || !ok2 {
		return
	}
	if from == to {
		p.errorf(n.Line, join(path, "to"), "the same zone as from")
		return
	}
	a, b := p.f.zones[from].Place, p.f.zones[to].Place
	if a.Site != b.Site || a.Building != b.Building || a.Floor != b.Floor {
		between := fmt.Sprintf("between floors %s and %s", a.Floor, b.Floor)
		if _, given := m["cost"]; !given {
			p.errorf(n.Line, join(path, "cost"), "required %s", between)
		}
		if kind == KindWalk {
			p.errorf(kindLine, join(path, "kind"), "%s %s: want stairs or lift", kind, between)
		}
	} else if !hasCost && costLine == 0 {
		cost = centreDistance(p.f.zones[from], p.f.zones[to])
	}
	p.conns = append(p.conns, connection{from, to, cost})
}

func (p *parser) reader(n *yaml.Node, path string) {
	m, ok := p.fields(n, path, "device", "antennas")
	if !ok {
		return
	}
	device := ""
	if f, ok := m["device"]; !ok {
		p.errorf(n.Line, join(path, "device"), "required: the reader's device id")
	} else if s, ok := p.scalar(f.value, join(path, "device")); ok {
		device = s
		if s == "" {
			p.errorf(f.value.Line, join(path, "device"), "required: the reader's device id")
		} else if !deviceIDPattern.MatchString(s) {
			p.errorf(f.value.Line, join(path, "device"), "%q is not a device id: 1-64 of [A-Za-z0-9._-], starting with a letter or digit", truncate(s))
		} else if first, dup := p.first[kindID{"reader", s}]; dup {
			p.errorf(f.value.Line, join(path, "device"), "reader %q listed twice (first at line %d)", s, first)
			return
		} else {
			p.first[kindID{"reader", s}] = f.value.Line
			p.f.readers++
		}
	}
	f, ok := m["antennas"]
	if !ok {
		p.errorf(n.Line, join(path, "antennas"), "required: antenna name -> zone")
		return
	}
	antennas := p.pairs(f.value, join(path, "antennas"))
	if isNull(f.value) || (f.value.Kind == yaml.MappingNode && len(f.value.Content) == 0) {
		p.errorf(f.value.Line, join(path, "antennas"), "required: at least one antenna")
	}
	for _, a := range antennas {
		name, apath := a.key.Value, join(join(path, "antennas"), a.key.Value)
		if utf8.RuneCountInString(name) < 1 || utf8.RuneCountInString(name) > MaxAntennaNameLen || strings.ContainsFunc(name, unicode.IsControl) {
			p.errorf(a.key.Line, apath, "%q is not an antenna name: 1-%d characters", truncate(name), MaxAntennaNameLen)
		}
		if zone, ok := p.zoneValue(a.value, apath); ok {
			p.f.antennas[antenna{device, name}] = zone
		}
	}
}

func (p *parser) accessPoint(n *yaml.Node, path string) {
	m, ok := p.fields(n, path, "bssid", "zone")
	if !ok {
		return
	}
	bssid := ""
	if f, ok := m["bssid"]; !ok {
		p.errorf(n.Line, join(path, "bssid"), "required: the access point's MAC address")
	} else if s, ok := p.scalar(f.value, join(path, "bssid")); ok {
		bssid = strings.ToLower(s)
		if s == "" {
			p.errorf(f.value.Line, join(path, "bssid"), "required: the access point's MAC address")
		} else if !bssidPattern.MatchString(bssid) {
			p.errorf(f.value.Line, join(path, "bssid"), "%q is not a BSSID: six hex pairs separated by colons, such as 0a:1b:2c:3d:4e:5f", truncate(s))
			bssid = ""
		} else if first, dup := p.first[kindID{"bssid", bssid}]; dup {
			p.errorf(f.value.Line, join(path, "bssid"), "access point %s listed twice (first at line %d)", bssid, first)
			bssid = ""
		} else {
			p.first[kindID{"bssid", bssid}] = f.value.Line
		}
	}
	zone, ok := p.zoneRef(m, n, path, "zone")
	if ok && bssid != "" {
		p.f.bssids[bssid] = zone
	}
}
