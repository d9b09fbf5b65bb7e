package recall

import (
	"fmt"
	"slices"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// sampleFleet is the fleet the sample recalls are written for: 180 BD
// Alaris 8100 pumps with serials 12580001-12580180, 60 ResMed AirSense 11
// CPAPs with serials 23231234001-23231234060, and 20 ZOLL R Series
// defibrillators with lots 4501-4520, one lot each.
func sampleFleet() []Candidate {
	var fleet []Candidate
	for i := range 180 {
		fleet = append(fleet, Candidate{
			Device:       fmt.Sprintf("devices/pump-%03d", i+1),
			Manufacturer: "BD",
			Model:        "BD Alaris 8100",
			Serial:       strconv.Itoa(12580001 + i),
			ProductCode:  "FRN",
			ModelNumbers: []string{"8100"},
		})
	}
	for i := range 60 {
		fleet = append(fleet, Candidate{
			Device:       fmt.Sprintf("devices/cpap-%03d", i+1),
			Manufacturer: "ResMed",
			Model:        "ResMed AirSense 11",
			Serial:       strconv.Itoa(23231234001 + i),
			ProductCode:  "BZD",
		})
	}
	for i := range 20 {
		fleet = append(fleet, Candidate{
			Device:       fmt.Sprintf("devices/defib-%03d", i+1),
			Manufacturer: "ZOLL",
			Model:        "ZOLL R Series",
			Serial:       fmt.Sprintf("AF%07d", 2210001+i),
			Lot:          strconv.Itoa(4501 + i),
			ProductCode:  "LDD",
		})
	}
	return fleet
}

func devices(ms []Match) []string {
	var ds []string
	for _, m := range ms {
		ds = append(ds, m.Device)
	}
	return ds
}

func TestMatchFleetSample(t *testing.T) {
	recalls := sampleRecalls(t)
	fleet := sampleFleet()
	bySerial := map[string]string{}
	byLot := map[string]string{}
	for _, c := range fleet {
		bySerial[c.Serial] = c.Device
		if c.Lot != "" {
			byLot[c.Lot] = c.Device
		}
	}

	var pumps []string
	for s := 12580050; s <= 12580099; s++ {
		pumps = append(pumps, bySerial[strconv.Itoa(s)])
	}
	pumps = append(pumps, bySerial["12580120"], bySerial["12580133"])
	slices.Sort(pumps)

	var cpaps []string
	for s := 23231234001; s <= 23231234060; s++ {
		cpaps = append(cpaps, bySerial[strconv.Itoa(s)])
	}

	var defibs []string
	for l := 4505; l <= 4510; l++ {
		defibs = append(defibs, byLot[strconv.Itoa(l)])
	}

	tests := []struct {
		recall   string
		want     []string
		strength Strength
		basis    map[string][]string // device: basis, for a few
	}{
		{
			recall: "Z-1432-2026", want: pumps, strength: StrengthStrong,
			basis: map[string][]string{
				"devices/pump-077": {"model number 8100 named in the recall", "product code FRN", "serial 12580077 in 12580050-12580099"},
				"devices/pump-120": {"model number 8100 named in the recall", "product code FRN", "serial 12580120 listed in the recall"},
			},
		},
		{recall: "Z-1433-2026"}, // Alaris PC unit 8015: "Alaris" alone does not name the 8100.
		{
			recall: "Z-1610-2026", want: cpaps, strength: StrengthPossible,
			basis: map[string][]string{
				"devices/cpap-001": {"model AirSense 11 named in the recall", "product code BZD", "recall names the model, all units"},
			},
		},
		{
			recall: "Z-1207-2026", want: defibs, strength: StrengthStrong,
			basis: map[string][]string{
				"devices/defib-007": {"model R Series named in the recall", "product code LDD", "lot 4507 in 4505-4510"},
			},
		},
		{recall: "Z-1389-2026"}, // Sigma Spectrum: product code FRN like the Alaris, model not.
		{recall: "Z-0871-2024"},
	}
	for _, tc := range tests {
		t.Run(tc.recall, func(t *testing.T) {
			r, ok := recalls[tc.recall]
			if !ok {
				t.Fatalf("sample has no recall %s", tc.recall)
			}
			got := MatchFleet(r, fleet)
			if diff := cmp.Diff(tc.want, devices(got)); diff != "" {
				t.Fatalf("MatchFleet(%s) devices (-want +got):\n%s", tc.recall, diff)
			}
			for _, m := range got {
				if m.Strength != tc.strength {
					t.Errorf("MatchFleet(%s): %s strength %v, want %v", tc.recall, m.Device, m.Strength, tc.strength)
				}
				if m.Recall != "recalls/"+tc.recall {
					t.Errorf("MatchFleet(%s): %s Recall = %q, want %q", tc.recall, m.Device, m.Recall, "recalls/"+tc.recall)
				}
				if want, ok := tc.basis[m.Device]; ok {
					if diff := cmp.Diff(want, m.Basis); diff != "" {
						t.Errorf("MatchFleet(%s): %s basis (-want +got):\n%s", tc.recall, m.Device, diff)
					}
					delete(tc.basis, m.Device)
				}
			}
			for d := range tc.basis {
				t.Errorf("MatchFleet(%s) did not match %s", tc.recall, d)
			}
		})
	}
}

func TestMatchFleetRules(t *testing.T) {
	recalls := sampleRecalls(t)
	pumpRecall := recalls["Z-1432-2026"]
	defibRecall := recalls["Z-1207-2026"]
	pump := func(device, serial, productCode string) Candidate {
		return Candidate{Device: device, Manufacturer: "BD", Model: "BD Alaris 8100", Serial: serial, ProductCode: productCode}
	}
	tests := []struct {
		name      string
		recall    Recall
		candidate Candidate
		want      *Match // nil: no match
	}{
		{
			name:      "right model, wrong product code",
			recall:    pumpRecall,
			candidate: pump("devices/x", "12580077", "FPA"),
		},
		{
			name:      "product code unknown",
			recall:    pumpRecall,
			candidate: pump("devices/x", "12580077", ""),
			want: &Match{Strength: StrengthStrong, Basis: []string{
				"model Alaris 8100 named in the recall", "serial 12580077 in 12580050-12580099"}},
		},
		{
			name:      "product code in lower case",
			recall:    pumpRecall,
			candidate: pump("devices/x", "12580077", "frn"),
			want: &Match{Strength: StrengthStrong, Basis: []string{
				"model Alaris 8100 named in the recall", "product code FRN", "serial 12580077 in 12580050-12580099"}},
		},
		{
			name:      "serial not listed",
			recall:    pumpRecall,
			candidate: pump("devices/x", "12580100", "FRN"),
		},
		{
			name:      "serial unknown",
			recall:    pumpRecall,
			candidate: pump("devices/x", "", "FRN"),
			want: &Match{Strength: StrengthPossible, Basis: []string{
				"model Alaris 8100 named in the recall", "product code FRN", "serial unknown"}},
		},
		{
			name:      "lot unknown",
			recall:    defibRecall,
			candidate: Candidate{Device: "devices/x", Manufacturer: "ZOLL", Model: "ZOLL R Series", Serial: "AF2210099"},
			want: &Match{Strength: StrengthPossible, Basis: []string{
				"model R Series named in the recall", "lot unknown"}},
		},
		{
			name:      "serial known, recall lists only lots",
			recall:    defibRecall,
			candidate: Candidate{Device: "devices/x", Manufacturer: "ZOLL", Model: "ZOLL R Series", Serial: "4507"},
			want: &Match{Strength: StrengthPossible, Basis: []string{
				"model R Series named in the recall", "lot unknown"}},
		},
		{
			name:      "manufacturer name alone",
			recall:    pumpRecall,
			candidate: Candidate{Device: "devices/x", Manufacturer: "CareFusion 303, Inc.", Model: "CareFusion", Serial: "12580077"},
		},
		{
			name:      "model is only the manufacturer's name",
			recall:    pumpRecall,
			candidate: Candidate{Device: "devices/x", Manufacturer: "BD", Model: "BD", Serial: "12580077"},
		},
		{
			name:      "UDI-DI names the model",
			recall:    pumpRecall,
			candidate: Candidate{Device: "devices/x", Manufacturer: "Becton Dickinson", Model: "LVP", UDIDI: "(01)10885403810022", Serial: "12580133"},
			want: &Match{Strength: StrengthStrong, Basis: []string{
				"UDI-DI 10885403810022 named in the recall", "serial 12580133 listed in the recall"}},
		},
		{
			name:      "catalogue number names the model",
			recall:    recalls["Z-1389-2026"],
			candidate: Candidate{Device: "devices/x", Manufacturer: "Baxter", Model: "Sigma Spectrum", ModelNumbers: []string{"35700BAX3"}, Serial: "1000777", ProductCode: "FRN"},
			want: &Match{Strength: StrengthStrong, Basis: []string{
				"model number 35700BAX3 named in the recall", "product code FRN", "serial 1000777 in 1000001-1004500"}},
		},
		{
			name:      "a model number of two words",
			recall:    recalls["Z-1610-2026"],
			candidate: Candidate{Device: "devices/x", Manufacturer: "ResMed", Model: "Sleep unit", ModelNumbers: []string{"AirSense 11"}, ProductCode: "BZD"},
			want: &Match{Strength: StrengthPossible, Basis: []string{
				"model number AirSense 11 named in the recall", "product code BZD", "recall names the model, all units"}},
		},
		{
			name:      "a model number of two words must appear whole",
			recall:    recalls["Z-1610-2026"],
			candidate: Candidate{Device: "devices/x", Manufacturer: "ResMed", Model: "Sleep unit", ModelNumbers: []string{"Sense 11"}, ProductCode: "BZD"},
		},
		{
			name:      "a short number alone does not name the model",
			recall:    Recall{ID: "Z-9", ProductDescription: "Vent 11 ventilator", Codes: Codes{All: true}},
			candidate: Candidate{Device: "devices/x", Manufacturer: "ResMed", Model: "ResMed AirSense 11"},
		},
		{
			name:      "a number the recall lists as a model names it",
			recall:    Recall{ID: "Z-9", CodeInfo: "Model 8100, all units", Codes: ParseCodeInfo("Model 8100, all units")},
			candidate: pump("devices/x", "", ""),
			want: &Match{Strength: StrengthPossible, Basis: []string{
				"model 8100 named in the recall", "recall names the model, all units"}},
		},
		{
			name:      "unlabelled numbers include the serial",
			recall:    Recall{ID: "Z-9", ProductDescription: "Alaris 8100", CodeInfo: "12580077 12580078", Codes: ParseCodeInfo("12580077 12580078")},
			candidate: pump("devices/x", "12580077", ""),
			want: &Match{Strength: StrengthStrong, Basis: []string{
				"model Alaris 8100 named in the recall", "serial 12580077 listed in the recall (not labelled lot or serial)"}},
		},
		{
			name:      "unlabelled numbers without the serial",
			recall:    Recall{ID: "Z-9", ProductDescription: "Alaris 8100", CodeInfo: "12580077 12580078", Codes: ParseCodeInfo("12580077 12580078")},
			candidate: pump("devices/x", "12580079", ""),
			want: &Match{Strength: StrengthPossible, Basis: []string{
				"model Alaris 8100 named in the recall",
				"recall lists numbers without saying whether they are lots or serials",
				"serial 12580079 not among them"}},
		},
		{
			name:      "lots and serials listed, either suffices",
			recall:    Recall{ID: "Z-9", ProductDescription: "Alaris 8100", Codes: ParseCodeInfo("Serial numbers 1-5; lots 77")},
			candidate: Candidate{Device: "devices/x", Model: "Alaris 8100", Serial: "9", Lot: "77"},
			want: &Match{Strength: StrengthStrong, Basis: []string{
				"model Alaris 8100 named in the recall", "lot 77 listed in the recall"}},
		},
		{
			name:      "lots and serials listed, serial not listed, lot unknown",
			recall:    Recall{ID: "Z-9", ProductDescription: "Alaris 8100", Codes: ParseCodeInfo("Serial numbers 1-5; lots 77")},
			candidate: Candidate{Device: "devices/x", Model: "Alaris 8100", Serial: "9"},
			want: &Match{Strength: StrengthPossible, Basis: []string{
				"model Alaris 8100 named in the recall", "serial 9 not listed", "lot unknown"}},
		},
		{
			name:      "lots and serials listed, neither",
			recall:    Recall{ID: "Z-9", ProductDescription: "Alaris 8100", Codes: ParseCodeInfo("Serial numbers 1-5; lots 77")},
			candidate: Candidate{Device: "devices/x", Model: "Alaris 8100", Serial: "9", Lot: "78"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := MatchFleet(tc.recall, []Candidate{tc.candidate})
			var want []Match
			if tc.want != nil {
				w := *tc.want
				w.Recall, w.Device = "recalls/"+tc.recall.ID, tc.candidate.Device
				want = []Match{w}
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("MatchFleet(%s, %+v) (-want +got):\n%s", tc.recall.ID, tc.candidate, diff)
			}
		})
	}
}

func TestMatchFleetSorted(t *testing.T) {
	r := Recall{ID: "Z-9", ProductDescription: "Alaris 8100", Codes: Codes{All: true}}
	fleet := []Candidate{
		{Device: "devices/c", Model: "Alaris 8100"},
		{Device: "devices/a", Model: "Alaris 8100"},
		{Device: "devices/b", Model: "Alaris 8100"},
	}
	if got, want := devices(MatchFleet(r, fleet)), []string{"devices/a", "devices/b", "devices/c"}; !slices.Equal(got, want) {
		t.Errorf("MatchFleet devices = %v, want %v", got, want)
	}
}

func TestStrengthString(t *testing.T) {
	for s, want := range map[Strength]string{StrengthPossible: "possible", StrengthStrong: "strong", 0: "Strength(0)"} {
		if got := s.String(); got != want {
			t.Errorf("Strength(%d).String() = %q, want %q", int(s), got, want)
		}
	}
}

func BenchmarkMatchFleet(b *testing.B) {
	r := sampleRecalls(b)["Z-1432-2026"]
	fleet := sampleFleet()
	b.ReportAllocs()
	for b.Loop() {
		MatchFleet(r, fleet)
	}
}

func BenchmarkParseCodeInfo(b *testing.B) {
	const s = "1) UDI-DI: Product Code: AHCV18A, Lots 980221 (exp. 01/20/2023) and 974221 (exp. 01/25/2023)  2) Serial Numbers: 12580050 through 12580099, 12580120 and 12580133"
	b.ReportAllocs()
	for b.Loop() {
		ParseCodeInfo(s)
	}
}
