package facility

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// twoFloors is a small facility with known distances. Centres are noted
// beside the zones; "hall" and "room-a" join their zones implicitly.
const twoFloors = `sites:
  - id: s
    name: Site
    buildings:
      - id: b
        name: Building
        floors:
          - id: f2
            name: Upper
            level: 2
            units:
              - id: up
                name: Upper Unit
                rooms:
                  - id: up-hall
                    name: Upper Hall
                    zones:
                      - {id: s2, name: Stairs, x: 10, y: 4, w: 2, h: 2}      # 11,5
                      - {id: c2, name: Corridor, x: 0, y: 4, w: 10, h: 2}    # 5,5
          - id: f1
            name: Lower
            level: 1
            units:
              - id: low
                name: Lower Unit
                rooms:
                  - id: room-a
                    name: Room A
                    zones:
                      - {id: a1, name: Bed, x: 0, y: 0, w: 2, h: 2}          # 1,1
                      - {id: a2, name: Door, x: 4, y: 0, w: 2, h: 2}         # 5,1
                  - id: hall
                    name: Hall
                    zones:
                      - {id: c1, name: Corridor, x: 0, y: 4, w: 10, h: 2}    # 5,5
                      - {id: s1, name: Stairs, x: 10, y: 4, w: 2, h: 2}      # 11,5
                  - id: store
                    name: Store
                    zones:
                      - {id: st, name: Store, x: 12, y: 0, w: 2, h: 2}       # 13,1
                  - id: island
                    name: Island
                    zones:
                      - {id: isle, name: Nowhere, x: 20, y: 20, w: 1, h: 1}
connections:
  - {from: a2, to: c1}                        # 4
  - {from: c1, to: st, cost: 1.5}             # cheaper than the 8.9 m between centres
  - {from: s1, to: s2, kind: stairs, cost: 20}
`

type step struct {
	Zone   string
	Metres float64
}

func walkAll(f *Facility, from string) []step {
	var out []step
	f.Walk(from, func(zone string, m float64) bool {
		out = append(out, step{zone, m})
		return true
	})
	return out
}

func TestWalk(t *testing.T) {
	f, err := Parse([]byte(twoFloors))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		from string
		want []step
	}{
		{"a1", []step{{"a1", 0}, {"a2", 4}, {"c1", 8}, {"st", 9.5}, {"s1", 14}, {"s2", 34}, {"c2", 40}}},
		{"c2", []step{{"c2", 0}, {"s2", 6}, {"s1", 26}, {"c1", 32}, {"st", 33.5}, {"a2", 36}, {"a1", 40}}},
		{"isle", []step{{"isle", 0}}}, // no connection: only itself
		{"nowhere", nil},
	}
	for _, tc := range tests {
		if diff := cmp.Diff(tc.want, walkAll(f, tc.from)); diff != "" {
			t.Errorf("Walk(%q) mismatch (-want +got):\n%s", tc.from, diff)
		}
	}
}

func TestWalkStops(t *testing.T) {
	f, err := Parse([]byte(twoFloors))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	f.Walk("a1", func(zone string, _ float64) bool {
		got = append(got, zone)
		return len(got) < 3
	})
	if diff := cmp.Diff([]string{"a1", "a2", "c1"}, got); diff != "" {
		t.Errorf("Walk(a1) stopped after 3 mismatch (-want +got):\n%s", diff)
	}
	// A walk inside a walk gets its own state.
	var outer, inner int
	f.Walk("a1", func(string, float64) bool {
		outer++
		inner += len(walkAll(f, "c2"))
		return true
	})
	if outer != 7 || inner != 7*7 {
		t.Errorf("nested Walk: %d outer and %d inner visits, want 7 and 49", outer, inner)
	}
}

func TestDistance(t *testing.T) {
	f, err := Parse([]byte(twoFloors))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		from, to string
		want     float64
		wantOK   bool
	}{
		{"a1", "a1", 0, true},
		{"a1", "c2", 40, true},
		{"c2", "a1", 40, true},
		{"c1", "st", 1.5, true}, // the connection's cost, not the centres' distance
		{"a1", "s1", 14, true},  // a1-a2 and c1-s1 join through their rooms
		{"a1", "isle", 0, false},
		{"isle", "a1", 0, false},
		{"a1", "nowhere", 0, false},
		{"nowhere", "a1", 0, false},
	}
	for _, tc := range tests {
		got, ok := f.Distance(tc.from, tc.to)
		if math.Abs(got-tc.want) > 1e-9 || ok != tc.wantOK {
			t.Errorf("Distance(%q, %q) = %v, %v, want %v, %v", tc.from, tc.to, got, ok, tc.want, tc.wantOK)
		}
	}
}

func TestDistanceSample(t *testing.T) {
	f := parseSample(t)
	// From a bed on 4 West to SPD's clean storage, by the lifts:
	// Walk's total must match the sum of its legs.
	total, ok := f.Distance("4w-401-bed", "spd-clean-a")
	if !ok {
		t.Fatal("Distance(4w-401-bed, spd-clean-a) unreachable")
	}
	toLift, _ := f.Distance("4w-401-bed", "lift-4")
	fromLift, _ := f.Distance("lift-0", "spd-clean-a")
	if want := toLift + 50 + fromLift; math.Abs(total-want) > 1e-9 {
		t.Errorf("Distance(4w-401-bed, spd-clean-a) = %v, want %v by lift", total, want)
	}
}

// generated returns a facility of floors x 200 zones: per floor, four units
// of a ten-zone corridor and ten four-zone rooms, with stairs and a lift
// between consecutive floors.
func generated(tb testing.TB, floors int) *Facility {
	tb.Helper()
	var b, conns strings.Builder
	b.WriteString("sites:\n- id: s\n  name: Site\n  buildings:\n  - id: b\n    name: Tower\n    floors:\n")
	for fl := range floors {
		fmt.Fprintf(&b, "    - {id: f%d, name: Floor %d, level: %d, units: [\n", fl, fl, fl)
		for u := range 4 {
			fmt.Fprintf(&b, "      {id: f%d-u%d, name: Unit %d, rooms: [\n", fl, u, u)
			fmt.Fprintf(&b, "        {id: f%d-u%d-c, name: Corridor, zones: [\n", fl, u)
			for c := range 10 {
				fmt.Fprintf(&b, "          {id: f%d-u%d-c%d, name: C, x: %d, y: 13, w: 5, h: 4},\n", fl, u, c, 50*u+5*c)
			}
			b.WriteString("        ]},\n")
			for r := range 10 {
				x, y := 50*u+10*(r%5), 18*(r/5)
				fmt.Fprintf(&b, "        {id: f%d-u%d-r%d, name: Room, zones: [\n", fl, u, r)
				for z := range 4 {
					fmt.Fprintf(&b, "          {id: f%d-u%d-r%d-z%d, name: Z, x: %d, y: %d, w: 5, h: 6},\n", fl, u, r, z, x+5*(z%2), y+6*(z/2))
				}
				b.WriteString("        ]},\n")
				fmt.Fprintf(&conns, "- {from: f%d-u%d-r%d-z0, to: f%d-u%d-c%d}\n", fl, u, r, fl, u, 2*(r%5))
			}
			b.WriteString("      ]},\n")
			if u > 0 {
				fmt.Fprintf(&conns, "- {from: f%d-u%d-c9, to: f%d-u%d-c0}\n", fl, u-1, fl, u)
			}
		}
		b.WriteString("    ]}\n")
		if fl > 0 {
			fmt.Fprintf(&conns, "- {from: f%d-u0-c0, to: f%d-u0-c0, kind: stairs, cost: 16}\n", fl-1, fl)
			fmt.Fprintf(&conns, "- {from: f%d-u3-c9, to: f%d-u3-c9, kind: lift, cost: 35}\n", fl-1, fl)
		}
	}
	b.WriteString("connections:\n")
	b.WriteString(conns.String())
	f, err := Parse([]byte(b.String()))
	if err != nil {
		tb.Fatal(err)
	}
	if f.Zones() != floors*200 {
		tb.Fatalf("generated %d zones, want %d", f.Zones(), floors*200)
	}
	return f
}

func TestWalkGenerated(t *testing.T) {
	f := generated(t, 10)
	n, prev := 0, 0.0
	f.Walk("f0-u0-r0-z0", func(zone string, m float64) bool {
		if m < prev {
			t.Fatalf("Walk: %s at %v after %v", zone, m, prev)
		}
		n, prev = n+1, m
		return true
	})
	if n != f.Zones() {
		t.Errorf("Walk reached %d zones, want all %d", n, f.Zones())
	}
}

// BenchmarkWalk walks a 2,000-zone facility from a corner: the first 50
// zones (a FindNearest that finds its device nearby) and all of them.
func BenchmarkWalk(b *testing.B) {
	f := generated(b, 10)
	for _, bc := range []struct {
		name  string
		zones int
	}{{"first50", 50}, {"full", f.Zones()}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				n := 0
				f.Walk("f0-u0-r0-z0", func(string, float64) bool {
					n++
					return n < bc.zones
				})
				if n != bc.zones {
					b.Fatalf("Walk visited %d zones, want %d", n, bc.zones)
				}
			}
		})
	}
}

func BenchmarkDistance(b *testing.B) {
	f := generated(b, 10)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := f.Distance("f0-u0-r0-z0", "f9-u3-r9-z3"); !ok {
			b.Fatal("unreachable")
		}
	}
}
