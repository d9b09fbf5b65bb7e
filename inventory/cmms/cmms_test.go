package cmms

import (
	"bytes"
	"os"
	"slices"
	"strings"
	"testing"
)

func TestReadMapsHeadersByAlias(t *testing.T) {
	in := "\xEF\xBB\xBFAsset #,Mfr,Model Number,Serial No.,UDI,Room,Last PM,Risk Level,Label.Unit,Cost Center\n" +
		"BME-0001,BD,BD Alaris 8100,12580001,,4W-401,2026-03-01,High,4-west,7710\n"
	f, err := Read(strings.NewReader(in), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{AssetTag, Manufacturer, Model, Serial, UDI, Location, LastPM, RiskClass, "label.unit", ""}
	if !slices.Equal(f.Columns, want) {
		t.Fatalf("columns %q, want %q", f.Columns, want)
	}
	if len(f.Problems) != 0 {
		t.Fatalf("problems: %v", f.Problems)
	}
	r := f.Rows[0]
	if r.Line != 2 || r.Get(AssetTag) != "BME-0001" || r.Get(Location) != "4W-401" || r.Labels["unit"] != "4-west" || r.Get(UDI) != "" {
		t.Fatalf("row %+v", r)
	}
}

func TestReadMappingComesFirst(t *testing.T) {
	in := "Tag,Equipment Control,Model\nT1,BME-9,M\n"
	f, err := Read(strings.NewReader(in), map[string]string{"equipment control": AssetTag, "TAG": RFIDTag})
	if err != nil {
		t.Fatal(err)
	}
	if got := f.Rows[0]; got.Get(AssetTag) != "BME-9" || got.Get(RFIDTag) != "T1" {
		t.Fatalf("row %+v", got)
	}
	if _, err := Read(strings.NewReader(in), map[string]string{"Tag": "colour"}); err == nil || !strings.Contains(err.Error(), `unknown column`) {
		t.Fatalf("mapping to an unknown column: %v", err)
	}
}

func TestReadDelimiters(t *testing.T) {
	for _, in := range []string{
		"asset_tag;model;serial\nA1;M;S1\n",
		"asset_tag\tmodel\tserial\nA1\tM\tS1\n",
		"asset_tag,model,serial\r\nA1,M,S1\r\n",
	} {
		f, err := Read(strings.NewReader(in), nil)
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		if len(f.Rows) != 1 || f.Rows[0].Get(Serial) != "S1" {
			t.Fatalf("%q: rows %+v", in, f.Rows)
		}
	}
}

func TestReadProblemsNameLineAndColumn(t *testing.T) {
	in := strings.Join([]string{
		"asset_tag,model,last_pm_date,risk_class",
		"A1,M,2026-01-31,low",
		",M,2026-01-31,low",   // 3: no asset tag
		"A3,M,03/04/2025,low", // 4: ambiguous date
		"A4,M,,critical",      // 5: unknown risk
		"A5,M",                // 6: short row
		`A6,"12"" pump",,`,    // 7: fine, quoted
		`A7,12" pump,,`,       // 8: fine, bare quote
	}, "\n")
	f, err := Read(strings.NewReader(in), nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range f.Problems {
		got = append(got, p.Error())
	}
	want := []string{
		"line 3: asset_tag: required",
		`line 4: last_pm_date: "03/04/2025" is not a date as YYYY-MM-DD`,
		`line 5: risk_class: "critical" is not a risk class: low, medium, high or life-support`,
		"line 6: 2 fields, the header has 4",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("problems\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(f.Rows) != 6 || f.Rows[4].Get(Model) != `12" pump` || f.Rows[5].Get(Model) != `12" pump` {
		t.Fatalf("rows %+v", f.Rows)
	}
}

func TestReadRefusesWhatIsNoInventory(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "empty"},
		{"model,serial\nM,S\n", "no asset tag column"},
		{"asset_tag,Asset #\nA,B\n", "maps to column asset_tag"},
	} {
		if _, err := Read(strings.NewReader(tc.in), nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.in, err, tc.want)
		}
	}
}

func TestWriteReadsBack(t *testing.T) {
	rows := []Row{
		{Values: map[string]string{AssetTag: "A1", Model: "BD Alaris 8100", Serial: "1, 2", RiskClass: "high"}, Labels: map[string]string{"unit": "4-west"}},
		{Values: map[string]string{AssetTag: "A2", Model: `12" monitor`, LastPM: "2026-01-02"}},
	}
	var b bytes.Buffer
	w, err := NewWriter(&b, LabelKeys(rows))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	f, err := Read(&b, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Problems) != 0 || len(f.Rows) != 2 {
		t.Fatalf("problems %v rows %d", f.Problems, len(f.Rows))
	}
	for i, r := range f.Rows {
		for c, v := range rows[i].Values {
			if r.Get(c) != v {
				t.Errorf("row %d %s = %q, want %q", i, c, r.Get(c), v)
			}
		}
		if r.Labels["unit"] != rows[i].Labels["unit"] {
			t.Errorf("row %d labels %v", i, r.Labels)
		}
	}
}

// The sample inventory in examples/ reads without a problem.
func TestSampleInventory(t *testing.T) {
	b, err := os.ReadFile("../../examples/cmms/inventory.csv")
	if err != nil {
		t.Fatal(err)
	}
	f, err := Read(bytes.NewReader(b), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Problems) != 0 {
		t.Fatalf("problems: %v", f.Problems)
	}
	if len(f.Rows) < 200 {
		t.Fatalf("%d rows, want a few hundred", len(f.Rows))
	}
	if slices.Contains(f.Columns, "") {
		t.Fatalf("columns %q: a header is not known", f.Columns)
	}
}

// FuzzRead: any input is read or refused, never a panic, and every row and
// problem names a line of the file.
func FuzzRead(f *testing.F) {
	f.Add("asset_tag,model,serial\nA1,M,S1\n")
	f.Add("\xEF\xBB\xBFAsset #;Mfr;Last PM\nA;B;2026-01-01\n")
	f.Add("asset_tag,last_pm_date,risk_class\n,03/04/2025,critical\nA,\"x\ny\",low\n")
	f.Fuzz(func(t *testing.T, in string) {
		file, err := Read(strings.NewReader(in), nil)
		if err != nil {
			return
		}
		lines := strings.Count(in, "\n") + 1
		for _, r := range file.Rows {
			if r.Line < 2 || r.Line > lines {
				t.Fatalf("row at line %d of %d", r.Line, lines)
			}
		}
		for _, p := range file.Problems {
			if p.Line < 2 || p.Line > lines {
				t.Fatalf("problem at line %d of %d: %v", p.Line, lines, p)
			}
		}
	})
}
