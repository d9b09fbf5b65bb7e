package recall

import (
	"strings"
	"unicode"
)

// Range is a lot or serial number, or a run of them, as a recall lists it:
// "12580050 through 12580099" is {From: "12580050", To: "12580099"}; a
// single value has From == To.
type Range struct{ From, To string }

// String is "From-To", or From alone for a single value.
func (r Range) String() string {
	if r.single() {
		return r.From
	}
	return r.From + "-" + r.To
}

func (r Range) single() bool { return r.From == r.To }

// Contains reports whether v is in r. Values compare by their non-numeric
// prefix and trailing number: the prefixes must be equal (ignoring case and
// punctuation) and v's number must lie between From's and To's, compared as
// numbers, so "SN A1000-A1999" contains "A1500" but not "B1500", and
// "1-100" contains "050". Values without a trailing number compare as
// whole strings, ignoring case and punctuation.
func (r Range) Contains(v string) bool {
	vp, vn := splitNumber(v)
	fp, fn := splitNumber(r.From)
	tp, tn := splitNumber(r.To)
	if vp == "" && vn == "" {
		return false
	}
	if vp != fp || vp != tp {
		return false
	}
	if vn == "" || fn == "" || tn == "" {
		// No number to compare: only the identical single value.
		return vn == "" && fn == "" && tn == ""
	}
	lo, hi := fn, tn
	if compareNumbers(lo, hi) > 0 {
		lo, hi = hi, lo
	}
	return compareNumbers(lo, vn) <= 0 && compareNumbers(vn, hi) <= 0
}

// splitNumber splits v into its normalised prefix (upper case, letters and
// digits only) and its trailing run of ASCII digits without leading zeros
// ("0" for a run of zeros). "2204A001" is ("2204A", "1"); "AP0447" is
// ("AP", "447"); "49349Q" is ("49349Q", "").
func splitNumber(v string) (prefix, number string) {
	v = strings.TrimSpace(v)
	end := len(v)
	start := end
	for start > 0 && v[start-1] >= '0' && v[start-1] <= '9' {
		start--
	}
	if start < end {
		number = strings.TrimLeft(v[start:end], "0")
		if number == "" {
			number = "0"
		}
	}
	return normalise(v[:start]), number
}

// normalise upper-cases s and drops everything but letters and digits.
func normalise(s string) string {
	var b strings.Builder
	for _, r := range s {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			b.WriteRune(unicode.ToUpper(r))
		}
	}
	return b.String()
}

// compareNumbers compares two runs of ASCII digits without leading zeros
// as numbers, whatever their length.
func compareNumbers(a, b string) int {
	if len(a) != len(b) {
		if len(a) < len(b) {
			return -1
		}
		return 1
	}
	return strings.Compare(a, b)
}

// makeRange returns the range from a to b, in ascending order, when both
// have the same prefix and a trailing number; otherwise ok is false and the
// two are separate values.
func makeRange(a, b string) (r Range, ok bool) {
	ap, an := splitNumber(a)
	bp, bn := splitNumber(b)
	if ap != bp || an == "" || bn == "" {
		return Range{}, false
	}
	if compareNumbers(an, bn) > 0 {
		a, b = b, a
	}
	return Range{From: a, To: b}, true
}
