package udi

import (
	"fmt"
	"strings"
	"time"
)

// aiDigits is how many digits an application identifier has, by its first
// two digits (GS1 General Specifications 7.8, figure 7.8.2-1, "GS1
// Application Identifier lengths"). A raw element string is split with it;
// two leading digits not listed start no assigned AI.
var aiDigits = map[string]int{
	"00": 2, "01": 2, "02": 2,
	"10": 2, "11": 2, "12": 2, "13": 2, "15": 2, "16": 2, "17": 2,
	"20": 2, "21": 2, "22": 2, "23": 3, "24": 3, "25": 3,
	"30": 2, "31": 4, "32": 4, "33": 4, "34": 4, "35": 4, "36": 4, "37": 2, "39": 4,
	"40": 3, "41": 3, "42": 3, "43": 4,
	"70": 4, "71": 3, "72": 4,
	"80": 4, "81": 4, "82": 4,
	"90": 2, "91": 2, "92": 2, "93": 2, "94": 2, "95": 2, "96": 2, "97": 2, "98": 2, "99": 2,
}

// predefined is the length, AI included, of the element strings whose AI
// starts with these two digits: the GS1 table of element strings with a
// pre-defined length (GS1 General Specifications 7.8). These are the only
// ones that need no FNC1 (GS) separator after them; it also lists
// prefixes reserved for future fixed-length AIs (03, 04, 14, 18, 19).
var predefined = map[string]int{
	"00": 20, "01": 16, "02": 16, "03": 16, "04": 18,
	"11": 8, "12": 8, "13": 8, "14": 8, "15": 8, "16": 8, "17": 8, "18": 8, "19": 8,
	"20": 4,
	"31": 10, "32": 10, "33": 10, "34": 10, "35": 10, "36": 10,
	"41": 16,
}

// fixedLen is the length of the value of ai if its element string has a
// pre-defined length, else 0: then it ends at a separator or the input's end.
func fixedLen(ai string) int {
	n := predefined[ai[:2]]
	if n == 0 {
		return 0
	}
	return n - len(ai)
}

// A format is what a value may contain.
type format int

const (
	numeric  format = iota // N: digits
	alpha                  // X: GS1 AI encodable character set 82
	key                    // N, the last digit a GS1 mod-10 check digit
	date                   // N6 YYMMDD; DD may be 00, the day not given
	dateTime               // N10 YYMMDDHHMM; DD may not be 00
	gdti                   // N13 key, then X..17
)

// A spec is a recognised AI's value: its format and its length in
// characters (min == max for a fixed length).
type spec struct {
	format   format
	min, max int
}

// specs are the recognised AIs, as the GS1 Barcode Syntax Dictionary
// defines them. An AI not here is refused.
var specs = map[string]spec{
	"00":   {key, 18, 18},      // SSCC
	"01":   {key, 14, 14},      // GTIN, the UDI-DI
	"02":   {key, 14, 14},      // GTIN of contained trade items
	"10":   {alpha, 1, 20},     // batch or lot number
	"11":   {date, 6, 6},       // production date
	"12":   {date, 6, 6},       // due date
	"13":   {date, 6, 6},       // packaging date
	"15":   {date, 6, 6},       // best before date
	"16":   {date, 6, 6},       // sell by date
	"17":   {date, 6, 6},       // expiration date
	"20":   {numeric, 2, 2},    // internal product variant
	"21":   {alpha, 1, 20},     // serial number
	"22":   {alpha, 1, 20},     // consumer product variant
	"235":  {alpha, 1, 28},     // third-party controlled serialised extension of the GTIN
	"240":  {alpha, 1, 30},     // additional product identification
	"241":  {alpha, 1, 30},     // customer part number
	"242":  {numeric, 1, 6},    // made-to-order variation number
	"243":  {alpha, 1, 20},     // packaging component number
	"250":  {alpha, 1, 30},     // secondary serial number
	"251":  {alpha, 1, 30},     // reference to source entity
	"253":  {gdti, 13, 30},     // global document type identifier
	"254":  {alpha, 1, 20},     // GLN extension component
	"30":   {numeric, 1, 8},    // variable count of items
	"37":   {numeric, 1, 8},    // count of trade items
	"7003": {dateTime, 10, 10}, // expiration date and time
	"7004": {numeric, 1, 4},    // active potency
	"8012": {alpha, 1, 20},     // software version
	"8020": {alpha, 1, 25},     // payment slip reference number
}

// check returns why v is not a valid value for sp, or "" if it is. Dates
// are checked against the century that now implies.
func (sp spec) check(v string, now time.Time) string {
	if v == "" {
		return "empty value"
	}
	switch sp.format {
	case alpha:
		return checkAlpha(v, sp.min, sp.max)
	case numeric:
		return checkNumeric(v, sp.min, sp.max)
	case key:
		if reason := checkNumeric(v, sp.min, sp.max); reason != "" {
			return reason
		}
		return checkKey(v)
	case date:
		if reason := checkNumeric(v, 6, 6); reason != "" {
			return reason
		}
		_, reason := parseDate(v, now, true)
		return reason
	case dateTime:
		if reason := checkNumeric(v, 10, 10); reason != "" {
			return reason
		}
		if _, reason := parseDate(v[:6], now, false); reason != "" {
			return reason
		}
		return checkTime(v[6:])
	case gdti:
		if reason := checkAlpha(v, sp.min, sp.max); reason != "" {
			return reason
		}
		if reason := checkNumeric(v[:13], 13, 13); reason != "" {
			return "document type: " + reason
		}
		return checkKey(v[:13])
	}
	panic(fmt.Sprintf("udi: spec with unknown format %d", sp.format))
}

// checkNumeric checks that v is min to max ASCII digits.
func checkNumeric(v string, min, max int) string {
	for _, r := range v {
		if r < '0' || r > '9' {
			return fmt.Sprintf("%q is not a digit", r)
		}
	}
	return checkLen(v, min, max, "digits")
}

// cset82 are the characters of GS1 AI encodable character set 82 besides
// letters and digits (GS1 General Specifications 7.11).
const cset82 = `!"%&'()*+,-./:;<=>?_`

// checkAlpha checks that v is min to max characters of GS1 AI encodable
// character set 82.
func checkAlpha(v string, min, max int) string {
	for _, r := range v {
		ok := 'A' <= r && r <= 'Z' || 'a' <= r && r <= 'z' || '0' <= r && r <= '9' ||
			strings.ContainsRune(cset82, r)
		if !ok {
			return fmt.Sprintf("%q is not allowed: GS1 allows only A-Z a-z 0-9 and %s", r, cset82)
		}
	}
	return checkLen(v, min, max, "characters")
}

// checkLen checks that v, already known to be ASCII, is min to max long.
func checkLen(v string, min, max int, unit string) string {
	switch n := len(v); {
	case min == max && n != max:
		return fmt.Sprintf("%d %s, want %d", n, unit, max)
	case n < min:
		return fmt.Sprintf("%d %s, want at least %d", n, unit, min)
	case n > max:
		return fmt.Sprintf("%d %s, at most %d", n, unit, max)
	}
	return ""
}

// checkTime checks HHMM, four digits.
func checkTime(hhmm string) string {
	if h := atoi2(hhmm[:2]); h > 23 {
		return fmt.Sprintf("hour %02d is not 00-23", h)
	}
	if m := atoi2(hhmm[2:]); m > 59 {
		return fmt.Sprintf("minute %02d is not 00-59", m)
	}
	return ""
}

// atoi2 is the value of two ASCII digits.
func atoi2(s string) int {
	return int(s[0]-'0')*10 + int(s[1]-'0')
}
