package udi

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// The example UDI of the GS1 healthcare guides, in the two forms.
const (
	exampleHRF  = "(01)51022222233336(11)141231(17)150707(10)A213B1(21)1234"
	exampleAIDC = "0151022222233336111412311715070710A213B1\x1d211234"
)

var example = UDI{
	DI:              "51022222233336",
	Lot:             "A213B1",
	Serial:          "1234",
	ManufactureDate: Date{2014, 12, 31},
	ExpiryDate:      Date{2015, 7, 7},
}

// validCases parse at now2026. The round-trip and fuzz tests use them too.
var validCases = []struct {
	name string
	in   string
	want UDI
}{
	{"human-readable", exampleHRF, example},
	{"raw", exampleAIDC, example},
	{"raw with ]d2", "]d2" + exampleAIDC, example},
	{"raw with ]C1 and leading GS", "]C1\x1d" + exampleAIDC, example},
	{"raw with ]Q3", "]Q3" + exampleAIDC, example},
	{"raw with ]e0", "]e0" + exampleAIDC, example},
	{"raw with ]J1", "]J1" + exampleAIDC, example},
	{"raw with leading GS", "\x1d" + exampleAIDC, example},
	{"human-readable with ]d2", "]d2" + exampleHRF, example},
	{"visible GS symbol", "0151022222233336111412311715070710A213B1␝211234", example},
	{"visible GS symbol leading", "␝0151022222233336111412311715070710A213B1␝211234", example},
	{"surrounding white space", " \t" + exampleHRF + "\r\n", example},
	{"raw, variable elements first", "211234\x1d10A213B1\x1d0151022222233336" + "17150707" + "11141231", example},
	{"raw, GS after fixed elements and at the end",
		"0151022222233336\x1d11141231\x1d17150707\x1d10A213B1\x1d211234\x1d", example},
	{"DI only", "(01)51022222233336", UDI{DI: "51022222233336"}},
	{"DI only, raw", "0151022222233336", UDI{DI: "51022222233336"}},
	{"day 00", "(01)51022222233336(17)150700",
		UDI{DI: "51022222233336", ExpiryDate: Date{2015, 7, 0}}},
	{"leap day", "(01)51022222233336(17)280229",
		UDI{DI: "51022222233336", ExpiryDate: Date{2028, 2, 29}}},
	{"YY-C = 50 is this century", "(01)51022222233336(17)760101",
		UDI{DI: "51022222233336", ExpiryDate: Date{2076, 1, 1}}},
	{"YY-C = 51 is the last century", "(01)51022222233336(11)770101",
		UDI{DI: "51022222233336", ManufactureDate: Date{1977, 1, 1}}},
	{"YY 00", "(01)51022222233336(11)000101",
		UDI{DI: "51022222233336", ManufactureDate: Date{2000, 1, 1}}},
	{"serial only", "(01)51022222233336(21)SN-000042",
		UDI{DI: "51022222233336", Serial: "SN-000042"}},
	{"lot with - and /", "(01)51022222233336(10)LOT-2024/07",
		UDI{DI: "51022222233336", Lot: "LOT-2024/07"}},
	{"lot and serial of 20", "(01)51022222233336(10)ABCDEFGHIJKLMNOPQRST(21)abcdefghijklmnopqrst",
		UDI{DI: "51022222233336", Lot: "ABCDEFGHIJKLMNOPQRST", Serial: "abcdefghijklmnopqrst"}},
	{"lot of one character", "(01)51022222233336(10)7",
		UDI{DI: "51022222233336", Lot: "7"}},
	{"every punctuation of character set 82", `(01)51022222233336(10)!"%&'\()*+,-./:;<=>?_`,
		UDI{DI: "51022222233336", Lot: `!"%&'()*+,-./:;<=>?_`}},
	{"raw lot with parentheses", "015102222223333610A(1)B",
		UDI{DI: "51022222233336", Lot: "A(1)B"}},
	{"escaped parenthesis", `(01)51022222233336(10)A\(1)B(21)9`,
		UDI{DI: "51022222233336", Lot: "A(1)B", Serial: "9"}},
	{"other AIs", "(01)51022222233336(10)X1(240)PUMP-8100(30)12(7003)2607152359",
		UDI{DI: "51022222233336", Lot: "X1", Other: map[string]string{"240": "PUMP-8100", "30": "12", "7003": "2607152359"}}},
	{"other AIs, raw", "0151022222233336240PUMP-8100\x1d3012\x1d10X1\x1d70032607152359",
		UDI{DI: "51022222233336", Lot: "X1", Other: map[string]string{"240": "PUMP-8100", "30": "12", "7003": "2607152359"}}},
	{"other fixed-length AIs, raw", "01510222222333361315070020991717010110B",
		UDI{DI: "51022222233336", Lot: "B", ExpiryDate: Date{2017, 1, 1}, Other: map[string]string{"13": "150700", "20": "99"}}},
	{"SSCC, GDTI, software version", "(01)51022222233336(00)106141412345678908(253)4012345000009DOC-1(8012)v2.4.1",
		UDI{DI: "51022222233336", Other: map[string]string{"00": "106141412345678908", "253": "4012345000009DOC-1", "8012": "v2.4.1"}}},
	{"every other AI", "(01)51022222233336(02)04006381333931(12)260101(15)260101(16)260101(22)CPV" +
		"(235)TPX(241)CPN(242)123456(243)PCN(250)SSN(251)REF(254)EXT(37)5(7004)1234(8020)PAY",
		UDI{DI: "51022222233336", Other: map[string]string{
			"02": "04006381333931", "12": "260101", "15": "260101", "16": "260101", "22": "CPV",
			"235": "TPX", "241": "CPN", "242": "123456", "243": "PCN", "250": "SSN", "251": "REF",
			"254": "EXT", "37": "5", "7004": "1234", "8020": "PAY"}}},
}

func TestParse(t *testing.T) {
	for _, tc := range validCases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseAt(tc.in, now2026)
			if err != nil {
				t.Fatalf("ParseAt(%q) error: %v", tc.in, err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("ParseAt(%q) = %+v, want %+v", tc.in, got, tc.want)
			}
		})
	}
}

func TestParseUsesNow(t *testing.T) {
	// Parse resolves the century against the clock: a 2014 label reads as
	// 2014 for decades to come.
	got, err := Parse(exampleHRF)
	if err != nil {
		t.Fatalf("Parse(%q) error: %v", exampleHRF, err)
	}
	if !reflect.DeepEqual(got, example) {
		t.Errorf("Parse(%q) = %+v, want %+v", exampleHRF, got, example)
	}
}

// TestRoundTrip: the canonical forms of a parsed UDI parse to the same UDI,
// and are fixed points.
func TestRoundTrip(t *testing.T) {
	for _, tc := range validCases {
		t.Run(tc.name, func(t *testing.T) {
			u, err := ParseAt(tc.in, now2026)
			if err != nil {
				t.Fatalf("ParseAt(%q) error: %v", tc.in, err)
			}
			for _, form := range []struct {
				name   string
				encode func(UDI) string
			}{{"HRF", UDI.HRF}, {"AIDC", UDI.AIDC}} {
				s := form.encode(u)
				back, err := ParseAt(s, now2026)
				if err != nil {
					t.Fatalf("ParseAt(%s() = %q) error: %v", form.name, s, err)
				}
				if !reflect.DeepEqual(back, u) {
					t.Errorf("ParseAt(%s() = %q) = %+v, want %+v", form.name, s, back, u)
				}
				if again := form.encode(back); again != s {
					t.Errorf("%s() of the reparsed UDI = %q, want %q", form.name, again, s)
				}
			}
		})
	}
}

func TestCanonicalForms(t *testing.T) {
	for _, tc := range []struct {
		name      string
		u         UDI
		hrf, aidc string
	}{
		{"example", example, exampleHRF, exampleAIDC},
		{"DI only", UDI{DI: "51022222233336"}, "(01)51022222233336", "0151022222233336"},
		{"day 00", UDI{DI: "51022222233336", ExpiryDate: Date{2015, 7, 0}},
			"(01)51022222233336(17)150700", "015102222223333617150700"},
		{"other AIs in AI order, fixed ones first in AIDC",
			UDI{DI: "51022222233336", Lot: "L", Serial: "S", Other: map[string]string{
				"8020": "P", "30": "12", "240": "A", "13": "150700", "7003": "2607152359"}},
			"(01)51022222233336(10)L(21)S(13)150700(240)A(30)12(7003)2607152359(8020)P",
			"015102222223333613150700" + "10L\x1d21S\x1d240A\x1d3012\x1d70032607152359\x1d8020P"},
		{"parenthesis escaped in HRF only", UDI{DI: "51022222233336", Lot: "A(B)"},
			`(01)51022222233336(10)A\(B)`, "015102222223333610A(B)"},
		{"zero UDI", UDI{}, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.u.HRF(); got != tc.hrf {
				t.Errorf("HRF() = %q, want %q", got, tc.hrf)
			}
			if got := tc.u.AIDC(); got != tc.aidc {
				t.Errorf("AIDC() = %q, want %q", got, tc.aidc)
			}
		})
	}
}

// longRaw is a raw UDI of 252 bytes whose human-readable form is 263.
var longRaw = strings.Join([]string{
	"0151022222233336" + "10" + strings.Repeat("L", 20),
	"21" + strings.Repeat("S", 20),
	"22" + strings.Repeat("C", 20),
	"235" + strings.Repeat("T", 28),
	"240" + strings.Repeat("A", 30),
	"241" + strings.Repeat("B", 30),
	"250" + strings.Repeat("D", 30),
	"251" + strings.Repeat("E", 30),
}, "\x1d")

func TestParseErrors(t *testing.T) {
	const charset = `GS1 allows only A-Z a-z 0-9 and !"%&'()*+,-./:;<=>?_`
	for _, tc := range []struct {
		name string
		in   string
		ai   string // Error.AI
		off  int    // Error.Offset
		want string // Error()
	}{
		{"wrong check digit", "(01)51022222233335", "01", 4,
			`udi: (01) "51022222233335": check digit 5, want 6`},
		{"wrong check digit, raw", "0151022222233335", "01", 2,
			`udi: (01) "51022222233335": check digit 5, want 6`},
		{"offset counts leading white space", "  (01)51022222233335", "01", 6,
			`udi: (01) "51022222233335": check digit 5, want 6`},
		{"13-digit GTIN", "(01)5102222223333(17)150707", "01", 4,
			`udi: (01) "5102222223333": 13 digits, want 14`},
		{"15-digit GTIN", "(01)510222222333360", "01", 4,
			`udi: (01) "510222222333360": 15 digits, want 14`},
		{"non-digit GTIN", "(01)5102222223333A", "01", 4,
			`udi: (01) "5102222223333A": 'A' is not a digit`},
		{"space in GTIN", "(01) 51022222233336", "01", 4,
			`udi: (01) " 51022222233336": ' ' is not a digit`},
		{"missing (01)", "(17)150707(10)A213B1", "01", 0,
			`udi: (01): missing: a UDI needs its device identifier, the GTIN`},
		{"missing (01), raw", "17150707", "01", 0,
			`udi: (01): missing: a UDI needs its device identifier, the GTIN`},
		{"month 13", "(01)51022222233336(17)151307", "17", 22,
			`udi: (17) "151307": month 13 is not 01-12`},
		{"month 00", "(01)51022222233336(11)150007", "11", 22,
			`udi: (11) "150007": month 00 is not 01-12`},
		{"day 32", "(01)51022222233336(17)150732", "17", 22,
			`udi: (17) "150732": day 32 is not in July 2015`},
		{"31 April", "(01)51022222233336(17)150431", "17", 22,
			`udi: (17) "150431": day 31 is not in April 2015`},
		{"30 February", "(01)51022222233336(17)150230", "17", 22,
			`udi: (17) "150230": day 30 is not in February 2015`},
		{"29 February in a common year", "(01)51022222233336(11)270229", "11", 22,
			`udi: (11) "270229": day 29 is not in February 2027`},
		{"short date", "(01)51022222233336(17)15070", "17", 22,
			`udi: (17) "15070": 5 digits, want 6`},
		{"lot of 21", "(01)51022222233336(10)ABCDEFGHIJKLMNOPQRSTU", "10", 22,
			`udi: (10) "ABCDEFGHIJKLMNOPQRSTU": 21 characters, at most 20`},
		{"serial of 21", "(01)51022222233336(21)ABCDEFGHIJKLMNOPQRSTU", "21", 22,
			`udi: (21) "ABCDEFGHIJKLMNOPQRSTU": 21 characters, at most 20`},
		{"lot with a space", "(01)51022222233336(10)A213 B1", "10", 22,
			`udi: (10) "A213 B1": ' ' is not allowed: ` + charset},
		{"lot with é", "(01)51022222233336(10)Lé1", "10", 22,
			`udi: (10) "Lé1": 'é' is not allowed: ` + charset},
		{"lot with #", "(01)51022222233336(10)L#1", "10", 22,
			`udi: (10) "L#1": '#' is not allowed: ` + charset},
		{"lot with a backslash", `(01)51022222233336(10)L\1`, "10", 22,
			`udi: (10) "L\\1": '\\' is not allowed: ` + charset},
		{"GS in the human-readable form", "(01)51022222233336\x1d(10)A", "01", 4,
			`udi: (01) "51022222233336\x1d": '\x1d' is not a digit`},
		{"missing GS: the lot swallows the serial", "015102222223333610A213B1CDEFGHIJ21123456", "10", 18,
			`udi: (10) "A213B1CDEFGHIJ21123456": 22 characters, at most 20 (is a GS separator missing after it?)`},
		{"missing GS: a GTIN cut short", "015102222223333\x1d10A", "01", 2,
			`udi: (01) "5102222223333": 13 digits, want 14`},
		{"missing digit: a date cut short at the end", "01510222222333361715070", "17", 18,
			`udi: (17) "15070": 5 digits, want 6`},
		{"missing digit: a date takes the next AI's digit", "0151022222233336171507010A213B1", "", 24,
			`udi: at byte 24: want an application identifier, got "0A213B1"`},
		{"unknown AI", "0151022222233336" + "99ABC", "", 16,
			`udi: at byte 16: unknown application identifier "99"`},
		{"unknown AI, human-readable", "(01)51022222233336(99)ABC", "", 18,
			`udi: at byte 18: unknown application identifier "99"`},
		{"unknown 4-digit AI", "(01)51022222233336(7006)150707", "", 18,
			`udi: at byte 18: unknown application identifier "7006"`},
		{"unassigned AI prefix", "0151022222233336" + "05123", "", 16,
			`udi: at byte 16: unknown application identifier starting "05"`},
		{"truncated AI", "0151022222233336" + "700", "", 16,
			`udi: at byte 16: truncated application identifier "700"`},
		{"duplicate AI", "(01)51022222233336(10)A(10)B", "10", 27,
			`udi: (10) "B": repeated: an AI may appear once`},
		{"duplicate DI, raw", "01510222222333360151022222233336", "01", 18,
			`udi: (01) "51022222233336": repeated: an AI may appear once`},
		{"trailing garbage", "(01)51022222233336(17)150707xyz", "17", 22,
			`udi: (17) "150707xyz": 'x' is not a digit`},
		{"trailing garbage, raw", "0151022222233336" + "17150707" + "xyz", "", 24,
			`udi: at byte 24: want an application identifier, got "xyz"`},
		{"space between raw elements", "0151022222233336 10A", "", 16,
			`udi: at byte 16: want an application identifier, got " 10A"`},
		{"mixed forms", "0151022222233336(10)A", "", 16,
			`udi: at byte 16: want an application identifier, got "(10)A"`},
		{"empty", "", "", 0, `udi: at byte 0: empty input`},
		{"white space only", " \t\r\n", "", 0, `udi: at byte 0: empty input`},
		{"symbology identifier only", "]d2", "", 3, `udi: at byte 3: no element strings`},
		{"GS only", "\x1d", "", 1, `udi: at byte 1: no element strings`},
		{"two GS", "\x1d\x1d0151022222233336", "", 1,
			`udi: at byte 1: empty element string: two separators in a row`},
		{"two GS between elements", "0151022222233336\x1d\x1d10A", "", 17,
			`udi: at byte 17: empty element string: two separators in a row`},
		{"HIBCC", "+H123PUMP10/$$3231231BC", "", 0,
			`udi: at byte 0: "+" starts an HIBCC UDI; only GS1 UDIs are supported`},
		{"HIBCC in a DataMatrix", "]d1+H123PUMP10/$$3231231BC", "", 3,
			`udi: at byte 3: "+" starts an HIBCC UDI; only GS1 UDIs are supported`},
		{"ICCBBA =", "=/A9999XYZ100T0944=,000025=A99971312345600=>014032=}013032&,1000000000000XYZ123", "", 0,
			`udi: at byte 0: "=" starts an ICCBBA (ISBT 128) UDI; only GS1 UDIs are supported`},
		{"ICCBBA &", "&,1000000000000XYZ123", "", 0,
			`udi: at byte 0: "&" starts an ICCBBA (ISBT 128) UDI; only GS1 UDIs are supported`},
		{"GS1 Digital Link", "https://id.gs1.org/01/51022222233336/10/A213B1", "", 0,
			`udi: at byte 0: a GS1 Digital Link URI is not supported; give the element string`},
		{"symbology of a plain DataMatrix", "]d1" + exampleAIDC, "", 0,
			`udi: at byte 0: symbology identifier "]d1" is not that of a GS1 symbol (]C1, ]e0, ]d2, ]Q3, ]J1)`},
		{"truncated symbology identifier", "]d", "", 0,
			`udi: at byte 0: truncated symbology identifier "]d"`},
		{"unbalanced parenthesis", "(01)51022222233336(10A213B1", "", 18,
			`udi: at byte 18: unbalanced parenthesis: "(" without ")"`},
		{"AI of one digit", "(01)51022222233336(1)A", "", 18,
			`udi: at byte 18: want an application identifier of 2 to 4 digits in parentheses, got "(1)A"`},
		{"AI of five digits", "(01)51022222233336(70030)A", "", 18,
			`udi: at byte 18: want an application identifier of 2 to 4 digits in parentheses, got "(70030)A"`},
		{"empty value", "(10)(21)1", "10", 4, `udi: (10): empty value`},
		{"empty value at the end", "(01)51022222233336(21)", "21", 22, `udi: (21): empty value`},
		{"input too long", strings.Repeat("1", MaxLen+1), "", MaxLen,
			`udi: at byte 256: input is 257 bytes, at most 256`},
		{"human-readable form too long", longRaw, "", 0,
			`udi: at byte 0: the human-readable form would be 263 bytes, at most 256`},
		{"SSCC check digit", "(01)51022222233336(00)106141412345678907", "00", 22,
			`udi: (00) "106141412345678907": check digit 7, want 8`},
		{"GDTI check digit", "(01)51022222233336(253)4012345000008", "253", 23,
			`udi: (253) "4012345000008": check digit 8, want 9`},
		{"GDTI document type with a letter", "(01)51022222233336(253)401234500000X", "253", 23,
			`udi: (253) "401234500000X": document type: 'X' is not a digit`},
		{"count too long", "(01)51022222233336(30)123456789", "30", 22,
			`udi: (30) "123456789": 9 digits, at most 8`},
		{"expiry time hour 24", "(01)51022222233336(7003)2607152400", "7003", 24,
			`udi: (7003) "2607152400": hour 24 is not 00-23`},
		{"expiry time minute 60", "(01)51022222233336(7003)2607152360", "7003", 24,
			`udi: (7003) "2607152360": minute 60 is not 00-59`},
		{"expiry time day 00", "(01)51022222233336(7003)2607002359", "7003", 24,
			`udi: (7003) "2607002359": day 00 is not allowed here`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, err := ParseAt(tc.in, now2026)
			if err == nil {
				t.Fatalf("ParseAt(%q) = %+v, want error %s", tc.in, u, tc.want)
			}
			if got := err.Error(); got != tc.want {
				t.Errorf("ParseAt(%q) error = %s, want %s", tc.in, got, tc.want)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("ParseAt(%q) error is %T, want *Error", tc.in, err)
			}
			if e.AI != tc.ai || e.Offset != tc.off {
				t.Errorf("ParseAt(%q) error AI %q at byte %d, want AI %q at byte %d", tc.in, e.AI, e.Offset, tc.ai, tc.off)
			}
			if !reflect.DeepEqual(u, UDI{}) {
				t.Errorf("ParseAt(%q) returned %+v with its error, want the zero UDI", tc.in, u)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, tc := range validCases {
		f.Add(tc.in)
	}
	for _, s := range []string{
		"", "(", "()", "(01", "(10)(21)1", `(10)\(`, "]d2", "]", "\x1d\x1d", "␝", "+H123",
		"01", "0151022222233335", "(01)51022222233336(17)150732", longRaw,
		"0151022222233336\x1d", "0151022222233336" + "253" + "4012345000009",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseAt(s, now2026)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("ParseAt(%q) error is %T, want *Error", s, err)
			}
			if e.Offset < 0 || e.Offset > len(s) {
				t.Errorf("ParseAt(%q) error offset %d, outside the input", s, e.Offset)
			}
			if !strings.HasPrefix(e.Error(), "udi: ") || e.Reason == "" {
				t.Errorf("ParseAt(%q) error %q, want a reason after \"udi: \"", s, e.Error())
			}
			return
		}
		if err := CheckGTIN(u.DI); err != nil {
			t.Errorf("ParseAt(%q).DI: %v", s, err)
		}
		if u.Other != nil && len(u.Other) == 0 {
			t.Errorf("ParseAt(%q).Other is empty but not nil", s)
		}
		for _, form := range []string{u.HRF(), u.AIDC()} {
			back, err := ParseAt(form, now2026)
			if err != nil {
				t.Fatalf("ParseAt(%q) = %+v, whose form %q does not parse: %v", s, u, form, err)
			}
			if !reflect.DeepEqual(back, u) {
				t.Errorf("ParseAt(%q) = %+v, but its form %q parses to %+v", s, u, form, back)
			}
		}
	})
}
