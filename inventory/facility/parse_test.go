package facility

import (
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
	"testing"
)

const samplePath = "../../examples/facility/hospital.yaml"

func readSample(tb testing.TB) []byte {
	tb.Helper()
	data, err := os.ReadFile(samplePath)
	if err != nil {
		tb.Fatal(err)
	}
	return data
}

func parseSample(tb testing.TB) *Facility {
	tb.Helper()
	f, err := Parse(readSample(tb))
	if err != nil {
		tb.Fatalf("Parse(%s): %v", samplePath, err)
	}
	return f
}

// lineErrors unpacks what Parse returned, failing if any is not a *LineError.
func lineErrors(t *testing.T, err error) []*LineError {
	t.Helper()
	if err == nil {
		return nil
	}
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok {
		t.Fatalf("Parse error %T is not joined: %v", err, err)
	}
	var out []*LineError
	for _, e := range joined.Unwrap() {
		le, ok := e.(*LineError)
		if !ok {
			t.Fatalf("Parse error %T (%v) is not a *LineError", e, e)
		}
		out = append(out, le)
	}
	return out
}

func TestParseSample(t *testing.T) {
	f := parseSample(t)
	for _, c := range []struct {
		what      string
		got, want int
	}{
		{"Zones()", f.Zones(), 64},
		{"Readers()", f.Readers(), 20},
		{"AccessPoints()", f.AccessPoints(), 8},
		{"len(ParLevels())", len(f.ParLevels()), 7},
		{"len(Units())", len(f.Units()), 8},
		{"len(Floors())", len(f.Floors()), 3},
	} {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.what, c.got, c.want)
		}
	}
	// The simulator's readers for 200 devices: device i (0-based) with
	// i%10 == 2, each with antennas 1-4.
	for i := 2; i < 200; i += 10 {
		reader := fmt.Sprintf("sim-rfid-%04d", i+1)
		for _, a := range []string{"1", "2", "3", "4"} {
			if _, ok := f.ReaderZone(reader, a); !ok {
				t.Errorf("ReaderZone(%q, %q) not found", reader, a)
			}
		}
	}
	// Every zone can be walked to from every floor: one connected building.
	n := 0
	f.Walk("bme-quarantine", func(string, float64) bool { n++; return true })
	if n != f.Zones() {
		t.Errorf("Walk(bme-quarantine) reached %d zones, want all %d", n, f.Zones())
	}
}

// base is a small valid document; the cases below edit it line by line and
// expect errors on the lines numbered here.
const base = `sites:
  - id: s
    name: Site
    buildings:
      - id: b
        name: Building
        floors:
          - id: f1
            name: Floor 1
            level: 1
            width: 20
            height: 10
            units:
              - id: u
                name: Unit
                par: {infusion-pump: 2}
                rooms:
                  - id: r1
                    name: Room 1
                    zones:
                      - {id: z1, name: Bed, x: 0, y: 0, w: 4, h: 4}
                      - {id: z2, name: Door, x: 4, y: 0, w: 2, h: 4}
                  - id: r2
                    name: Corridor
                    zones:
                      - {id: z3, name: Hall, x: 0, y: 6, w: 20, h: 4}
          - id: f2
            name: Floor 2
            level: 2
            units:
              - id: u2
                name: Unit 2
                rooms:
                  - id: r3
                    name: Room 3
                    zones:
                      - {id: z4, name: Hall, x: 0, y: 0, w: 10, h: 4}
connections:
  - {from: z2, to: z3}
  - {from: z3, to: z4, kind: stairs, cost: 20}
readers:
  - device: sim-rfid-0003
    antennas: {"1": z1, "2": z3}
access_points:
  - {bssid: "0A:1B:2C:3D:4E:5F", zone: z3}
`

// edit replaces each old string of base with its new one, in pairs; each
// old string must occur exactly once.
func edit(t *testing.T, pairs ...string) string {
	t.Helper()
	doc := base
	for i := 0; i+1 < len(pairs); i += 2 {
		if n := strings.Count(doc, pairs[i]); n != 1 {
			t.Fatalf("edit: %q occurs %d times in base", pairs[i], n)
		}
		doc = strings.Replace(doc, pairs[i], pairs[i+1], 1)
	}
	return doc
}

const (
	f1r1 = "sites[0].buildings[0].floors[0].units[0].rooms[0]"
	f1r2 = "sites[0].buildings[0].floors[0].units[0].rooms[1]"
)

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name  string
		doc   string // the whole document, instead of edits of base
		edits []string
		want  []LineError // Reason is a substring of the reason
	}{
		{name: "valid"},
		{
			name:  "ids are unique per kind only",
			edits: []string{"- id: r1", "- id: z1", "- id: u2", "- id: z1"},
		},
		{
			name:  "unknown key",
			edits: []string{"    name: Site\n", "    nam: Site\n"},
			want:  []LineError{{2, "sites[0].name", "required"}, {3, "sites[0].nam", "unknown field: want one of id, name, time_zone, buildings"}},
		},
		{
			name:  "unknown top-level key",
			edits: []string{"access_points:\n", "colour: blue\naccess_points:\n"},
			want:  []LineError{{44, "colour", "unknown field"}},
		},
		{
			name:  "key given twice",
			edits: []string{"    name: Site\n", "    name: Site\n    name: Site 2\n"},
			want:  []LineError{{4, "sites[0].name", "given twice (first at line 3)"}},
		},
		{
			name:  "id pattern",
			edits: []string{"- id: s\n", "- id: S_1\n"},
			want:  []LineError{{2, "sites[0].id", `"S_1" is not an id`}},
		},
		{
			name:  "id missing",
			edits: []string{"      - id: b\n        name: Building\n", "      - name: Building\n"},
			want:  []LineError{{5, "sites[0].buildings[0].id", "required"}},
		},
		{
			name:  "zone name missing",
			edits: []string{"{id: z1, name: Bed, ", "{id: z1, "},
			want:  []LineError{{21, f1r1 + ".zones[0].name", "required"}},
		},
		{
			name:  "name too long",
			edits: []string{"name: Unit 2", "name: " + strings.Repeat("x", 129)},
			want:  []LineError{{32, "sites[0].buildings[0].floors[1].units[0].name", "longer than 128 characters"}},
		},
		{
			name:  "duplicate zone id",
			edits: []string{"{id: z2, name: Door", "{id: z1, name: Door"},
			want: []LineError{
				{22, f1r1 + ".zones[1].id", `duplicate zone id "z1" (first at line 21)`},
				{39, "connections[0].from", `unknown zone "z2"`},
			},
		},
		{
			name:  "duplicate floor id",
			edits: []string{"- id: f2", "- id: f1"},
			want:  []LineError{{27, "sites[0].buildings[0].floors[1].id", `duplicate floor id "f1" (first at line 8)`}},
		},
		{
			name:  "time zone",
			edits: []string{"    name: Site\n", "    name: Site\n    time_zone: Mars/Olympus_Mons\n"},
			want:  []LineError{{4, "sites[0].time_zone", "not an IANA time zone"}},
		},
		{
			name:  "level missing",
			edits: []string{"            level: 1\n", ""},
			want:  []LineError{{8, "sites[0].buildings[0].floors[0].level", "required"}},
		},
		{
			name:  "level not an integer",
			edits: []string{"level: 1", "level: 1.5"},
			want:  []LineError{{10, "sites[0].buildings[0].floors[0].level", "want an integer"}},
		},
		{
			name:  "floor width zero",
			edits: []string{"width: 20", "width: 0"},
			want:  []LineError{{11, "sites[0].buildings[0].floors[0].width", "must be positive"}},
		},
		{
			name:  "zone width zero",
			edits: []string{"w: 4, h: 4}", "w: 0, h: 4}"},
			want:  []LineError{{21, f1r1 + ".zones[0].w", "must be positive"}},
		},
		{
			name:  "zone negative x",
			edits: []string{"x: 4, y: 0, w: 2", "x: -1, y: 0, w: 2"},
			want:  []LineError{{22, f1r1 + ".zones[1].x", "must not be negative"}},
		},
		{
			name:  "zone x not a number",
			edits: []string{"x: 4, y: 0, w: 2", "x: four, y: 0, w: 2"},
			want:  []LineError{{22, f1r1 + ".zones[1].x", `"four": want a number of metres`}},
		},
		{
			name:  "zone size missing",
			edits: []string{"w: 2, h: 4}", "w: 2}"},
			want:  []LineError{{22, f1r1 + ".zones[1].h", "required"}},
		},
		{
			name:  "zone beyond the floor's width",
			edits: []string{"x: 0, y: 6, w: 20", "x: 1, y: 6, w: 20"},
			want:  []LineError{{26, f1r2 + ".zones[0].w", "ends at x = 21 m, beyond the floor's width of 20 m (line 11)"}},
		},
		{
			name:  "zone beyond the floor's height",
			edits: []string{"w: 20, h: 4}", "w: 20, h: 5}"},
			want:  []LineError{{26, f1r2 + ".zones[0].h", "ends at y = 11 m, beyond the floor's height of 10 m (line 12)"}},
		},
		{
			name:  "room without zones",
			edits: []string{"                    zones:\n                      - {id: z4, name: Hall, x: 0, y: 0, w: 10, h: 4}\n", "                    zones: []\n"},
			want: []LineError{
				{34, "sites[0].buildings[0].floors[1].units[0].rooms[0].zones", "at least one zone"},
				{39, "connections[1].to", `unknown zone "z4"`},
			},
		},
		{
			name: "unit without rooms",
			edits: []string{"                rooms:\n                  - id: r3\n                    name: Room 3\n" +
				"                    zones:\n                      - {id: z4, name: Hall, x: 0, y: 0, w: 10, h: 4}\n", ""},
			want: []LineError{
				{31, "sites[0].buildings[0].floors[1].units[0].rooms", "at least one room"},
				{35, "connections[1].to", `unknown zone "z4"`},
			},
		},
		{
			name:  "par profile",
			edits: []string{"par: {infusion-pump: 2}", "par: {Infusion_Pump: 2}"},
			want:  []LineError{{16, "sites[0].buildings[0].floors[0].units[0].par.Infusion_Pump", "not a device profile"}},
		},
		{
			name:  "par negative",
			edits: []string{"par: {infusion-pump: 2}", "par: {infusion-pump: -2}"},
			want:  []LineError{{16, "sites[0].buildings[0].floors[0].units[0].par.infusion-pump", "must not be negative"}},
		},
		{
			name:  "par not an integer",
			edits: []string{"par: {infusion-pump: 2}", "par: {infusion-pump: many}"},
			want:  []LineError{{16, "sites[0].buildings[0].floors[0].units[0].par.infusion-pump", "want an integer"}},
		},
		{
			name:  "connection to an unknown zone",
			edits: []string{"{from: z2, to: z3}", "{from: z2, to: z9}"},
			want:  []LineError{{39, "connections[0].to", `unknown zone "z9"`}},
		},
		{
			name:  "connection without from",
			edits: []string{"{from: z2, to: z3}", "{to: z3}"},
			want:  []LineError{{39, "connections[0].from", "required"}},
		},
		{
			name:  "connection to itself",
			edits: []string{"{from: z2, to: z3}", "{from: z2, to: z2}"},
			want:  []LineError{{39, "connections[0].to", "the same zone as from"}},
		},
		{
			name:  "negative cost",
			edits: []string{"cost: 20}", "cost: -1}"},
			want:  []LineError{{40, "connections[1].cost", "must not be negative"}},
		},
		{
			name:  "unknown kind",
			edits: []string{"kind: stairs", "kind: ramp"},
			want:  []LineError{{40, "connections[1].kind", `"ramp": want walk, stairs or lift`}},
		},
		{
			name:  "between floors without a cost",
			edits: []string{"kind: stairs, cost: 20}", "kind: stairs}"},
			want:  []LineError{{40, "connections[1].cost", "required between floors f1 and f2"}},
		},
		{
			name:  "walking between floors",
			edits: []string{"kind: stairs, cost: 20}", "cost: 20}"},
			want:  []LineError{{40, "connections[1].kind", "walk between floors f1 and f2: want stairs or lift"}},
		},
		{
			name:  "reader device id",
			edits: []string{"device: sim-rfid-0003", "device: sim rfid"},
			want:  []LineError{{42, "readers[0].device", `"sim rfid" is not a device id`}},
		},
		{
			name:  "reader listed twice",
			edits: []string{"access_points:\n", "  - device: sim-rfid-0003\n    antennas: {\"1\": z4}\naccess_points:\n"},
			want:  []LineError{{44, "readers[1].device", `reader "sim-rfid-0003" listed twice (first at line 42)`}},
		},
		{
			name:  "reader without antennas",
			edits: []string{`antennas: {"1": z1, "2": z3}`, "antennas: {}"},
			want:  []LineError{{43, "readers[0].antennas", "at least one antenna"}},
		},
		{
			name:  "antenna in an unknown zone",
			edits: []string{`"2": z3`, `"2": z8`},
			want:  []LineError{{43, "readers[0].antennas.2", `unknown zone "z8"`}},
		},
		{
			name:  "antenna name too long",
			edits: []string{`"1": z1`, `"antenna-name-too-long": z1`},
			want:  []LineError{{43, "readers[0].antennas.antenna-name-too-long", "not an antenna name: 1-16 characters"}},
		},
		{
			name:  "antenna listed twice",
			edits: []string{`"2": z3`, `"1": z3`},
			want:  []LineError{{43, "readers[0].antennas.1", "given twice (first at line 43)"}},
		},
		{
			name:  "bssid format",
			edits: []string{`"0A:1B:2C:3D:4E:5F"`, `"0A:1B:2C:3D:4E"`},
			want:  []LineError{{45, "access_points[0].bssid", `"0A:1B:2C:3D:4E" is not a BSSID`}},
		},
		{
			name:  "bssid listed twice",
			edits: []string{"zone: z3}\n", "zone: z3}\n  - {bssid: 0a:1b:2c:3d:4e:5f, zone: z1}\n"},
			want:  []LineError{{46, "access_points[1].bssid", "access point 0a:1b:2c:3d:4e:5f listed twice (first at line 45)"}},
		},
		{
			name:  "access point in an unknown zone",
			edits: []string{"zone: z3}\n", "zone: z7}\n"},
			want:  []LineError{{45, "access_points[0].zone", `unknown zone "z7"`}},
		},
		{
			name:  "a value where a mapping belongs",
			edits: []string{`  - {bssid: "0A:1B:2C:3D:4E:5F", zone: z3}`, "  - 0a:1b:2c:3d:4e:5f"},
			want:  []LineError{{45, "access_points[0]", "want a mapping"}},
		},
		{
			name:  "alias",
			edits: []string{"    name: Site\n", "    name: &n Site\n", "        name: Building\n", "        name: *n\n"},
			want:  []LineError{{6, "sites[0].buildings[0].name", "aliases (*n) are not supported"}},
		},
		{
			name:  "YAML syntax",
			edits: []string{"        name: Building\n", "        name: Building: 2\n"},
			want:  []LineError{{6, "", "invalid YAML: mapping values are not allowed in this context"}},
		},
		{
			name:  "second document",
			edits: []string{"zone: z3}\n", "zone: z3}\n---\nsites: []\n"},
			want:  []LineError{{46, "", "a second YAML document"}}, // the line of ---
		},
		{
			name: "empty document",
			doc:  "# nothing yet\n",
			want: []LineError{{1, "sites", "required: the document is empty"}},
		},
		{
			name: "no site",
			doc:  "connections: []\nsites: []\n",
			want: []LineError{{2, "sites", "required: at least one site"}},
		},
		{
			name: "no zone",
			doc:  "sites:\n  - {id: s, name: Site}\n",
			want: []LineError{{1, "sites", "the facility has no zone"}},
		},
		{
			name: "not a mapping",
			doc:  "- sites\n",
			want: []LineError{{1, "", "want a mapping"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			doc := tc.doc
			if doc == "" {
				doc = edit(t, tc.edits...)
			}
			f, err := Parse([]byte(doc))
			got := lineErrors(t, err)
			if len(got) != len(tc.want) {
				t.Fatalf("Parse: %d errors, want %d:\n%v", len(got), len(tc.want), err)
			}
			for i, want := range tc.want {
				if got[i].Line != want.Line || got[i].Field != want.Field || !strings.Contains(got[i].Reason, want.Reason) {
					t.Errorf("Parse: error %d = %q, want line %d, field %q, reason containing %q", i, got[i], want.Line, want.Field, want.Reason)
				}
			}
			if (f == nil) != (len(tc.want) > 0) {
				t.Errorf("Parse returned facility %v with %d errors", f != nil, len(got))
			}
		})
	}
}

func TestParseReportsEveryProblem(t *testing.T) {
	doc := edit(t,
		"w: 4, h: 4}", "w: -4, h: 4}",
		"level: 2", "level: two",
		`"2": z3`, `"2": nowhere`,
	)
	_, err := Parse([]byte(doc))
	want := []string{
		"line 21: " + f1r1 + ".zones[0].w: -4: must not be negative",
		`line 29: sites[0].buildings[0].floors[1].level: "two": want an integer`,
		`line 43: readers[0].antennas.2: unknown zone "nowhere"`,
	}
	got := lineErrors(t, err)
	if len(got) != len(want) {
		t.Fatalf("Parse: %d errors, want %d:\n%v", len(got), len(want), err)
	}
	for i := range want {
		if got[i].Error() != want[i] {
			t.Errorf("error %d = %q, want %q", i, got[i], want[i])
		}
	}
	var le *LineError
	if !errors.As(err, &le) || le.Line != 21 {
		t.Errorf("errors.As(Parse error) = %v, want the line 21 error first", le)
	}
}

func TestParseLimits(t *testing.T) {
	t.Run("size", func(t *testing.T) {
		doc := base + "#" + strings.Repeat(" ", MaxDocumentSize-len(base)) + "\n"
		_, err := Parse([]byte(doc))
		got := lineErrors(t, err)
		if len(got) != 1 || got[0].Line != 0 || !strings.Contains(got[0].Reason, "more than 4194304 (4 MiB)") {
			t.Errorf("Parse(%d bytes) = %v, want one error: more than 4 MiB", len(doc), err)
		}
		if _, err := Parse([]byte(doc[:MaxDocumentSize-1] + "\n")); err != nil {
			t.Errorf("Parse(4 MiB) = %v, want nil", err)
		}
	})
	t.Run("zones per room", func(t *testing.T) {
		var zones strings.Builder
		for i := range MaxZonesPerRoom + 1 {
			fmt.Fprintf(&zones, "                      - {id: many-%d, name: Z, x: 0, y: 0, w: 1, h: 1}\n", i)
		}
		doc := edit(t, "                      - {id: z3, name: Hall, x: 0, y: 6, w: 20, h: 4}\n", zones.String())
		_, err := Parse([]byte(doc))
		got := lineErrors(t, err)
		if len(got) == 0 || got[0].Line != 25 || got[0].Field != f1r2+".zones" || !strings.Contains(got[0].Reason, "a room holds at most 100") {
			t.Errorf("Parse(room of %d zones) = %v, want line 25: a room holds at most 100", MaxZonesPerRoom+1, err)
		}
	})
	t.Run("errors shown", func(t *testing.T) {
		var readers strings.Builder
		readers.WriteString(base)
		for range 150 {
			readers.WriteString("  - {bssid: nonsense, zone: z1}\n")
		}
		_, err := Parse([]byte(readers.String()))
		got := lineErrors(t, err)
		if len(got) != maxErrors+1 || got[maxErrors].Reason != "50 more problems not shown" {
			t.Errorf("Parse(150 problems) = %d errors, want %d and a last one that says 50 more", len(got), maxErrors+1)
		}
	})
	t.Run("metres", func(t *testing.T) {
		for _, v := range []string{".nan", ".inf", "1e6", "null"} {
			_, err := Parse([]byte(edit(t, "cost: 20}", "cost: "+v+"}")))
			got := lineErrors(t, err)
			if len(got) != 1 || got[0].Line != 40 || got[0].Field != "connections[1].cost" {
				t.Errorf("Parse(cost: %s) = %v, want one error on line 40", v, err)
			}
		}
	})
}

func TestLineErrorError(t *testing.T) {
	tests := []struct {
		err  LineError
		want string
	}{
		{LineError{17, "sites[0].w", "must be positive"}, "line 17: sites[0].w: must be positive"},
		{LineError{3, "", "invalid YAML: x"}, "line 3: invalid YAML: x"},
		{LineError{0, "", "too big"}, "too big"},
	}
	for _, tc := range tests {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("%#v.Error() = %q, want %q", tc.err, got, tc.want)
		}
	}
}

func BenchmarkParse(b *testing.B) {
	data := readSample(b)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Parse(data); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzParse checks that Parse never panics, that it reports only
// LineErrors, and that what it accepts can be walked.
func FuzzParse(f *testing.F) {
	f.Add(readSample(f))
	f.Add([]byte(base))
	f.Add([]byte(twoFloors))
	f.Fuzz(func(t *testing.T, data []byte) {
		fac, err := Parse(data)
		if err != nil {
			for _, e := range lineErrors(t, err) {
				if e.Line < 0 || e.Reason == "" {
					t.Fatalf("Parse error %#v: want a line >= 0 and a reason", e)
				}
			}
			if fac != nil {
				t.Fatal("Parse returned a facility and an error")
			}
			return
		}
		zones := 0
		for _, fl := range fac.Floors() {
			zones += len(fl.Zones)
		}
		if zones != fac.Zones() || zones == 0 {
			t.Fatalf("Floors hold %d zones, Zones() = %d", zones, fac.Zones())
		}
		for _, u := range fac.Units() {
			if _, ok := fac.Resolve(u.Unit); !ok {
				t.Fatalf("Resolve(%q) of a unit failed", u.Unit)
			}
		}
		from := fac.Floors()[0].Zones[0].ID
		prev, n := 0.0, 0
		fac.Walk(from, func(zone string, m float64) bool {
			if n == 0 && (zone != from || m != 0) {
				t.Fatalf("Walk(%q) started at %q, %v", from, zone, m)
			}
			if m < prev || math.IsNaN(m) || math.IsInf(m, 0) {
				t.Fatalf("Walk(%q): %q at %v after %v", from, zone, m, prev)
			}
			prev = m
			n++
			return true
		})
		if n > fac.Zones() {
			t.Fatalf("Walk(%q) visited %d zones of %d", from, n, fac.Zones())
		}
	})
}
