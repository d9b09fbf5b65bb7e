package recall

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func one(v string) Range         { return Range{From: v, To: v} }
func span(a, b string) Range     { return Range{From: a, To: b} }
func ranges(rs ...Range) []Range { return rs }

func TestParseCodeInfo(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Codes
	}{
		{
			name: "serial range with through",
			in:   "Serial Numbers: 12580001 through 12580180",
			want: Codes{Serials: ranges(span("12580001", "12580180"))},
		},
		{
			name: "SN hyphen range and singles",
			in:   "SN: 1001-1050, 1060, 1075",
			want: Codes{Serials: ranges(span("1001", "1050"), one("1060"), one("1075"))},
		},
		{
			name: "lot list with and",
			in:   "Lot Numbers: 4505, 4506 and 4507",
			want: Codes{Lots: ranges(one("4505"), one("4506"), one("4507"))},
		},
		{
			name: "lot hash range with to",
			in:   "Lot #: 4505 to 4510",
			want: Codes{Lots: ranges(span("4505", "4510"))},
		},
		{
			name: "all lots",
			in:   "All lots.",
			want: Codes{All: true},
		},
		{
			name: "model and all serial numbers",
			in:   "Model 8100, all serial numbers",
			want: Codes{Models: []string{"8100"}, All: true},
		},
		{
			name: "two models",
			in:   "Alaris PC Unit Model 8015 and Alaris Pump Module Model 8100",
			want: Codes{Models: []string{"8015", "8100"}},
		},
		{
			name: "catalog number",
			in:   "Catalog Number: 2000EN",
			want: Codes{Models: []string{"2000EN"}},
		},
		{
			name: "udi-di",
			in:   "UDI-DI: 10885403810022",
			want: Codes{DIs: []string{"10885403810022"}},
		},
		{
			name: "model, serial range, singles and DI",
			in:   "Model 8100; Serial Numbers: 12580050 through 12580099, 12580120 and 12580133. UDI-DI: 10885403810022",
			want: Codes{
				Models:  []string{"8100"},
				Serials: ranges(span("12580050", "12580099"), one("12580120"), one("12580133")),
				DIs:     []string{"10885403810022"},
			},
		},
		{
			name: "prefixed serials with ampersand",
			in:   "Serial Numbers: AP0447, AP0448, AP0449, AP0450, AP0451, AP0458 & AP0463.",
			want: Codes{Serials: ranges(one("AP0447"), one("AP0448"), one("AP0449"), one("AP0450"),
				one("AP0451"), one("AP0458"), one("AP0463"))},
		},
		{
			name: "expiry dates are not lots",
			in:   "Lot Number: 20JC2 Exp. Date: 2025/10/17; 21AA0 Exp Date: 2026/01/04",
			want: Codes{Lots: ranges(one("20JC2"), one("21AA0"))},
		},
		{
			name: "GS1 element string",
			in:   "Model/Catalog Number: 409-375 UDI code: (01)00844505000772(10)122927(17)310301 Lot Number: 122927",
			want: Codes{
				Models: []string{"409-375"},
				Lots:   ranges(one("122927")),
				DIs:    []string{"00844505000772"},
			},
		},
		{
			name: "product code is not a lot",
			in:   "1) UDI-DI: Product Code: AHCV18A, Lots 980221 (exp. 01/20/2023) and 974221 (exp. 01/25/2023)  2) UDI-DI: Product Code: AHCV18B, Lots 868221 (exp. 05/31/2023), 842221 (exp. 05/31/2023)",
			want: Codes{Lots: ranges(one("980221"), one("974221"), one("868221"), one("842221"))},
		},
		{
			name: "no UDI and a trailing comma",
			in:   "Catalog Number: CO-02 UDI-DI Code: No UDI Codes provided Lot Numbers: 202107192, 202108231, 202109231,",
			want: Codes{
				Models: []string{"CO-02"},
				Lots:   ranges(one("202107192"), one("202108231"), one("202109231")),
			},
		},
		{
			name: "date code only",
			in:   "Batteries with date code 3114 or older (Week 31 of 2014)",
			want: Codes{},
		},
		{
			name: "bare list",
			in:   "49349Q  49350Q  49351Q",
			want: Codes{Unlabelled: ranges(one("49349Q"), one("49350Q"), one("49351Q"))},
		},
		{
			name: "part number and lots with a slash",
			in:   "UDI: (01) 04050598000582 PN K6870/Lot Numbers:  220706 Exp. 05/04/2024;  221122 Exp. 06/07/2024.  P/N:K6870.20.US.L Lot Numbers:  221124 Exp:07/29/2025, 230102 Exp: 10/24/2025",
			want: Codes{
				Models: []string{"K6870", "K6870.20.US.L"},
				Lots:   ranges(one("220706"), one("221122"), one("221124"), one("230102")),
				DIs:    []string{"04050598000582"},
			},
		},
		{
			name: "prefixed serial range",
			in:   "SN A1000-A1999",
			want: Codes{Serials: ranges(span("A1000", "A1999"))},
		},
		{
			name: "lot range with letters inside",
			in:   "Lot 2204A001 to 2204A250",
			want: Codes{Lots: ranges(span("2204A001", "2204A250"))},
		},
		{
			name: "range ends with different prefixes are two values",
			in:   "Serial numbers A1000 through B1999",
			want: Codes{Serials: ranges(one("A1000"), one("B1999"))},
		},
		{
			name: "between and, newlines and S/N",
			in:   "REF 2000EN\nS/N between 1001 and 1050\n1060",
			want: Codes{Models: []string{"2000EN"}, Serials: ranges(span("1001", "1050"), one("1060"))},
		},
		{
			name: "manufacture dates in words",
			in:   "Lot Numbers: 4505 to 4510 (manufactured March 2024 through May 2024)",
			want: Codes{Lots: ranges(span("4505", "4510"))},
		},
		{
			name: "month followed by a lot",
			in:   "Lots manufactured in Mar 15, 2024; 3301, 3302",
			want: Codes{Lots: ranges(one("3301"), one("3302"))},
		},
		{
			name: "lot/serial goes to both",
			in:   "Lot/Serial Number: 77001 to 77010",
			want: Codes{Lots: ranges(span("77001", "77010")), Serials: ranges(span("77001", "77010"))},
		},
		{
			name: "software version and quantity are dropped",
			in:   "Software version 2.3.1; Serial Numbers 5001-5010 (10 units)",
			want: Codes{Serials: ranges(span("5001", "5010"))},
		},
		{
			name: "except keeps all and drops the exclusions",
			in:   "All serial numbers except 9001 through 9010",
			want: Codes{All: true},
		},
		{
			name: "hyphenated values that are not ranges",
			in:   "Lots: 2019-05, 21-004",
			want: Codes{Lots: ranges(one("2019-05"), one("21-004"))},
		},
		{
			name: "catalog no. run into its value",
			in:   "Cat. No.8100, Item #: 35700BAX",
			want: Codes{Models: []string{"8100", "35700BAX"}},
		},
		{
			name: "510(k) and K number are not serials",
			in:   "510(k) K123456. 12580001",
			want: Codes{Unlabelled: ranges(one("12580001"))},
		},
		{
			name: "as part of is not a label",
			in:   "Serial numbers 3001-3005, shipped as part of kit; 3009",
			want: Codes{Serials: ranges(span("3001", "3005"), one("3009"))},
		},
		{
			name: "GS1 serial without digits",
			in:   "(01)00844505000772(21)ABCD Lot 123",
			want: Codes{Lots: ranges(one("123")), Serials: ranges(one("ABCD")), DIs: []string{"00844505000772"}},
		},
		{
			name: "empty",
			in:   "",
			want: Codes{},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := ParseCodeInfo(tc.in)
			if diff := cmp.Diff(tc.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("ParseCodeInfo(%q) (-want +got):\n%s", tc.in, diff)
			}
		})
	}
}

func TestCodesEmpty(t *testing.T) {
	if !ParseCodeInfo("Batteries with date code 3114").Empty() {
		t.Errorf("ParseCodeInfo(date code).Empty() = false, want true")
	}
	if ParseCodeInfo("All units").Empty() {
		t.Errorf("ParseCodeInfo(all units).Empty() = true, want false")
	}
}

func FuzzParseCodeInfo(f *testing.F) {
	for _, s := range []string{
		"Serial Numbers: 12580001 through 12580180",
		"SN: 1001-1050, 1060, 1075",
		"Lot #: 4505 to 4510",
		"(01)00844505000772(10)122927(17)310301",
		"Lot/Serial Number: 77001 to 77010 between 1 and",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c := ParseCodeInfo(s)
		for _, list := range [][]Range{c.Lots, c.Serials, c.Unlabelled} {
			for _, r := range list {
				if r.From == "" || r.To == "" {
					t.Fatalf("ParseCodeInfo(%q): range %#v has an empty end", s, r)
				}
				if !r.Contains(r.From) || !r.Contains(r.To) {
					t.Fatalf("ParseCodeInfo(%q): range %#v does not contain its ends", s, r)
				}
				if !strings.Contains(s, r.From) || !strings.Contains(s, r.To) {
					t.Fatalf("ParseCodeInfo(%q): range %#v is not from the text", s, r)
				}
			}
		}
		for _, m := range c.Models {
			if m == "" || !strings.Contains(s, m) {
				t.Fatalf("ParseCodeInfo(%q): model %q is empty or not from the text", s, m)
			}
		}
		for _, di := range c.DIs {
			if len(di) != 14 || !allDigits(di) {
				t.Fatalf("ParseCodeInfo(%q): DI %q is not 14 digits", s, di)
			}
		}
	})
}
