package rul

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// cmapssRow formats one C-MAPSS row: unit, cycle, then 24 values, the
// k-th being base+k.
func cmapssRow(unit, cycle int, base float64) string {
	f := []string{strconv.Itoa(unit), strconv.Itoa(cycle)}
	for k := range 24 {
		f = append(f, strconv.FormatFloat(base+float64(k), 'f', -1, 64))
	}
	return strings.Join(f, " ")
}

func TestReadCMAPSS(t *testing.T) {
	in := cmapssRow(1, 1, 0.5) + "  \n" +
		cmapssRow(1, 2, 1.5) + "\n" +
		"\n" +
		cmapssRow(7, 1, -3) + "\n"
	units, err := ReadCMAPSS(strings.NewReader(in))
	if err != nil {
		t.Fatalf("ReadCMAPSS: %v", err)
	}
	if len(units) != 2 {
		t.Fatalf("ReadCMAPSS: %d units, want 2", len(units))
	}
	u := units[0]
	if u.ID != "1" || len(u.Observations) != 2 || units[1].ID != "7" || len(units[1].Observations) != 1 {
		t.Errorf("ReadCMAPSS: units %q (%d rows) and %q (%d rows), want 1 (2) and 7 (1)",
			u.ID, len(u.Observations), units[1].ID, len(units[1].Observations))
	}
	if len(u.Channels) != 24 || u.Channels[0] != "setting1" || u.Channels[2] != "setting3" || u.Channels[3] != "s1" || u.Channels[23] != "s21" {
		t.Errorf("ReadCMAPSS channels = %q, want setting1..3, s1..s21", u.Channels)
	}
	if o := u.Observations[1]; o.Time != 2 || o.Values[0] != 1.5 || o.Values[23] != 24.5 {
		t.Errorf("ReadCMAPSS unit 1 row 2 = time %v, values %v..%v; want 2, 1.5..24.5", o.Time, o.Values[0], o.Values[23])
	}
	if err := u.check(); err != nil {
		t.Errorf("unit 1: %v", err)
	}
	// Units do not share their channel slices.
	units[0].Channels[0] = "changed"
	if units[1].Channels[0] != "setting1" {
		t.Errorf("units share their Channels")
	}
}

func TestReadCMAPSSErrors(t *testing.T) {
	good := cmapssRow(1, 1, 0)
	tests := []struct {
		name string
		in   string
		line int
		want string
	}{
		{"columns", good + "\n" + "1 2 3\n", 2, "want 26 columns, got 3"},
		{"unit", strings.Replace(good, "1", "x", 1), 1, `unit "x"`},
		{"negative unit", strings.Replace(good, "1", "-1", 1), 1, `unit "-1"`},
		{"cycle", "1 c" + good[3:], 1, `cycle: "c": not a number`},
		{"value", good + "\n" + strings.Replace(cmapssRow(1, 2, 0), " 5 ", " five ", 1), 2, `column 8 (s3): "five"`},
		{"nan", strings.Replace(good, " 5 ", " NaN ", 1), 1, "not a finite number"},
		{"inf", strings.Replace(good, " 5 ", " 1e999 ", 1), 1, "not a number"},
		{"cycle order", good + "\n" + cmapssRow(1, 1, 0), 2, "cycle 1 after cycle 1"},
		{"not contiguous", good + "\n" + cmapssRow(2, 1, 0) + "\n\n" + cmapssRow(1, 2, 0), 4, "unit 1 again after unit 2"},
		{"too long", good + "\n" + strings.Repeat("1", maxLine+1), 2, "longer than"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadCMAPSS(strings.NewReader(tc.in))
			var le *LineError
			if !errors.As(err, &le) || le.Line != tc.line {
				t.Fatalf("ReadCMAPSS = %v, want an error at line %d", err, tc.line)
			}
			if want := fmt.Sprintf("cmapss: line %d: ", tc.line); !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ReadCMAPSS = %q, want %q...%q", err, want, tc.want)
			}
		})
	}
}

func TestReadRUL(t *testing.T) {
	got, err := ReadRUL(strings.NewReader("44 \n51\n\n27.5\n"))
	if err != nil || !slices.Equal(got, []float64{44, 51, 27.5}) {
		t.Errorf("ReadRUL = %v, %v; want [44 51 27.5]", got, err)
	}
	for _, tc := range []struct {
		in   string
		want string
	}{
		{"1\n2 3\n", "rul file: line 2: want 1 column, got 2"},
		{"1\n-2\n", "rul file: line 2: remaining life -2: must not be negative"},
		{"x\n", `rul file: line 1: "x": not a number`},
	} {
		if _, err := ReadRUL(strings.NewReader(tc.in)); err == nil || err.Error() != tc.want {
			t.Errorf("ReadRUL(%q) = %v, want %q", tc.in, err, tc.want)
		}
	}
}

// formatCMAPSS writes units back in the C-MAPSS format.
func formatCMAPSS(units []Unit) string {
	var b strings.Builder
	for _, u := range units {
		for _, o := range u.Observations {
			b.WriteString(u.ID + " " + strconv.FormatFloat(o.Time, 'g', -1, 64))
			for _, v := range o.Values {
				b.WriteString(" " + strconv.FormatFloat(v, 'g', -1, 64))
			}
			b.WriteByte('\n')
		}
	}
	return b.String()
}

func FuzzReadCMAPSS(f *testing.F) {
	f.Add(cmapssRow(1, 1, 0) + "\n" + cmapssRow(1, 2, 0.25) + "\n" + cmapssRow(2, 1, -1))
	f.Add(cmapssRow(1, 1, 0) + "\n" + cmapssRow(1, 1, 0))
	f.Add("1 1 -0.0005 0.0004 100.0 518.67 642.36 1583.23 1396.84 14.62 21.61 553.97 2387.96 9062.17 1.30 47.30 522.31 2388.01 8145.32 8.4246 0.03 391 2388 100.00 39.11 23.3537  \n")
	f.Add("1 2 3\n\n")
	f.Fuzz(func(t *testing.T, in string) {
		units, err := ReadCMAPSS(strings.NewReader(in))
		if err != nil {
			var le *LineError
			if !errors.As(err, &le) || le.Line < 1 {
				t.Fatalf("ReadCMAPSS error %v names no line", err)
			}
			return
		}
		for _, u := range units {
			if err := u.check(); err != nil {
				t.Fatalf("ReadCMAPSS gave a bad unit: %v", err)
			}
			for _, o := range u.Observations {
				for _, v := range o.Values {
					if math.IsNaN(v) || math.IsInf(v, 0) {
						t.Fatalf("ReadCMAPSS gave value %v", v)
					}
				}
			}
		}
		// What it read reads back the same.
		again, err := ReadCMAPSS(strings.NewReader(formatCMAPSS(units)))
		if err != nil {
			t.Fatalf("ReadCMAPSS of its own units: %v", err)
		}
		if formatCMAPSS(again) != formatCMAPSS(units) {
			t.Fatalf("ReadCMAPSS does not read back its own units")
		}
	})
}
