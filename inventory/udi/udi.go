package udi

import (
	"maps"
	"slices"
	"strings"
	"time"
	"unicode"
)

// MaxLen bounds, in bytes, the input of Parse and the human-readable form
// of the UDIs it returns.
const MaxLen = 256

// Separators between element strings in the raw form: GS (ASCII 29), which
// scanners send for FNC1, and U+241D, the visible symbol for it that
// documents use.
const (
	gs       = "\x1d"
	gsSymbol = "\u241d"
)

// gs1Symbologies are the symbology identifiers (ISO/IEC 15424) of GS1
// symbols that scanners put before the data: GS1-128, GS1 DataBar, GS1
// DataMatrix, GS1 QR Code and GS1 DotCode.
var gs1Symbologies = []string{"]C1", "]e0", "]d2", "]Q3", "]J1"}

// UDI is a Unique Device Identifier from a GS1 label: the device identifier
// and the production identifiers.
type UDI struct {
	DI              string            // AI 01, the GTIN-14 (device identifier, UDI-DI)
	Lot             string            // AI 10
	Serial          string            // AI 21
	ManufactureDate Date              // AI 11
	ExpiryDate      Date              // AI 17
	Other           map[string]string // other recognised AIs (e.g. "240", "30", "7003"), keyed by AI; nil when none
}

// Parse reads a GS1 UDI in its human-readable form,
// "(01)51022222233336(17)150707(10)A213B1(21)1234", or as a scanner sends
// it, "01510222222333361715070710A213B1\x1d211234", and checks every
// element (the package documentation lists the rules). Two-digit years are resolved
// against the current year; ParseAt takes the year to use.
//
// Its errors are *Error.
func Parse(s string) (UDI, error) {
	return ParseAt(s, time.Now())
}

// ParseAt is Parse with two-digit years resolved against now's year.
func ParseAt(s string, now time.Time) (UDI, error) {
	if len(s) > MaxLen {
		return UDI{}, errAt(MaxLen, "input is %d bytes, at most %d", len(s), MaxLen)
	}
	p := parser{in: s, now: now}
	u, err := p.parse()
	if err != nil {
		return UDI{}, err
	}
	if n := len(u.HRF()); n > MaxLen {
		return UDI{}, errAt(0, "the human-readable form would be %d bytes, at most %d", n, MaxLen)
	}
	return u, nil
}

// HRF is the canonical human-readable form: (01), (11), (17), (10), (21),
// then the other AIs in AI order, each value after its AI in parentheses.
// A "(" inside a value is written "\(", so that it does not start an AI.
func (u UDI) HRF() string {
	var b strings.Builder
	for _, e := range u.elements() {
		b.WriteString("(" + e.ai + ")")
		b.WriteString(strings.ReplaceAll(e.value, "(", `\(`))
	}
	return b.String()
}

// AIDC is the canonical element string, as a barcode carries it without
// its leading FNC1: the pre-defined length elements first, in HRF order,
// then the others, separated by GS (ASCII 29).
func (u UDI) AIDC() string {
	var fixed, variable []string
	for _, e := range u.elements() {
		if fixedLen(e.ai) > 0 {
			fixed = append(fixed, e.ai+e.value)
		} else {
			variable = append(variable, e.ai+e.value)
		}
	}
	return strings.Join(fixed, "") + strings.Join(variable, gs)
}

// An element is an application identifier and its value.
type element struct {
	ai, value string
}

// elements are the non-empty elements of u in HRF order.
func (u UDI) elements() []element {
	all := []element{
		{"01", u.DI},
		{"11", u.ManufactureDate.yymmdd()},
		{"17", u.ExpiryDate.yymmdd()},
		{"10", u.Lot},
		{"21", u.Serial},
	}
	for _, ai := range slices.Sorted(maps.Keys(u.Other)) {
		all = append(all, element{ai, u.Other[ai]})
	}
	return slices.DeleteFunc(all, func(e element) bool { return e.value == "" })
}

// parser reads one input. Offsets are into in, the whole input.
type parser struct {
	in   string
	now  time.Time
	raw  bool     // the raw form, not the parenthesised one
	seen []string // AIs read so far
	u    UDI
}

func (p *parser) parse() (UDI, error) {
	s := p.in
	i := len(s) - len(strings.TrimLeftFunc(s, unicode.IsSpace))
	end := len(strings.TrimRightFunc(s, unicode.IsSpace))
	if i >= end {
		return UDI{}, errAt(0, "empty input")
	}
	i, err := p.prefix(i, end)
	if err != nil {
		return UDI{}, err
	}
	if i == end {
		return UDI{}, errAt(i, "no element strings")
	}
	if s[i] == '(' {
		err = p.parenthesised(i, end)
	} else {
		p.raw = true
		err = p.rawForm(i, end)
	}
	if err != nil {
		return UDI{}, err
	}
	if p.u.DI == "" {
		return UDI{}, &Error{AI: "01", Offset: 0, Reason: "missing: a UDI needs its device identifier, the GTIN"}
	}
	return p.u, nil
}

// prefix skips what may come before the element strings: a GS1 symbology
// identifier, then a GS standing for the leading FNC1. It refuses the
// UDIs of the other issuing agencies and GS1 Digital Link URIs.
func (p *parser) prefix(i, end int) (int, error) {
	s := p.in[i:end]
	if s[0] == ']' {
		if len(s) < 3 {
			return 0, errAt(i, "truncated symbology identifier %q", s)
		}
		id := s[:3]
		if !slices.Contains(gs1Symbologies, id) {
			if err := notGS1(s[3:], i+3); err != nil {
				return 0, err
			}
			return 0, errAt(i, "symbology identifier %q is not that of a GS1 symbol (%s)",
				id, strings.Join(gs1Symbologies, ", "))
		}
		i += 3
		s = s[3:]
	}
	if err := notGS1(s, i); err != nil {
		return 0, err
	}
	return i + sepLen(s), nil
}

// notGS1 refuses s, at offset off, if it starts like a UDI of another
// issuing agency or a GS1 Digital Link URI.
func notGS1(s string, off int) error {
	switch {
	case strings.HasPrefix(s, "+"):
		return errAt(off, `"+" starts an HIBCC UDI; only GS1 UDIs are supported`)
	case strings.HasPrefix(s, "=") || strings.HasPrefix(s, "&"):
		return errAt(off, "%q starts an ICCBBA (ISBT 128) UDI; only GS1 UDIs are supported", s[:1])
	case hasPrefixFold(s, "http://") || hasPrefixFold(s, "https://"):
		return errAt(off, "a GS1 Digital Link URI is not supported; give the element string")
	}
	return nil
}

// hasPrefixFold is strings.HasPrefix ignoring ASCII case.
func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// sepLen is the length of the separator s starts with, 0 if none.
func sepLen(s string) int {
	switch {
	case strings.HasPrefix(s, gs):
		return len(gs)
	case strings.HasPrefix(s, gsSymbol):
		return len(gsSymbol)
	}
	return 0
}

// parenthesised reads in[i:end], which starts with "(": each element is
// an AI in parentheses, then its value up to the next "(" that is not
// escaped as "\(", or the end.
func (p *parser) parenthesised(i, end int) error {
	s := p.in
	for i < end {
		closing := strings.IndexByte(s[i:end], ')')
		if closing < 0 {
			return errAt(i, `unbalanced parenthesis: "(" without ")"`)
		}
		ai := s[i+1 : i+closing]
		if !isAI(ai) {
			return errAt(i, "want an application identifier of 2 to 4 digits in parentheses, got %q", excerpt(s[i:end]))
		}
		if _, ok := specs[ai]; !ok {
			return errAt(i, "unknown application identifier %q", ai)
		}
		start := i + closing + 1
		var v strings.Builder
		j := start
		for j < end && s[j] != '(' {
			if strings.HasPrefix(s[j:end], `\(`) {
				j++
			}
			v.WriteByte(s[j])
			j++
		}
		if err := p.add(ai, v.String(), start); err != nil {
			return err
		}
		i = j
	}
	return nil
}

// isAI reports whether s looks like an application identifier: 2 to 4
// ASCII digits.
func isAI(s string) bool {
	return 2 <= len(s) && len(s) <= 4 && strings.Trim(s, "0123456789") == ""
}

// rawForm reads in[i:end], element strings one after the other: an
// element with a pre-defined length is exactly that long, any other ends
// at a separator or the end. A separator after a pre-defined length
// element, or at the end, is allowed.
func (p *parser) rawForm(i, end int) error {
	s := p.in
	for i < end {
		if sepLen(s[i:end]) > 0 {
			return errAt(i, "empty element string: two separators in a row")
		}
		ai, err := readAI(s[i:end], i)
		if err != nil {
			return err
		}
		start := i + len(ai)
		j, n := start, fixedLen(ai)
		for j < end && sepLen(s[j:end]) == 0 && (n == 0 || j-start < n) {
			j++
		}
		if err := p.add(ai, s[start:j], start); err != nil {
			return err
		}
		i = j + sepLen(s[j:end])
	}
	return nil
}

// readAI reads the recognised application identifier s starts with; off
// is the offset of s.
func readAI(s string, off int) (string, error) {
	if len(s) < 2 || !isAI(s[:2]) {
		return "", errAt(off, "want an application identifier, got %q", excerpt(s))
	}
	n := aiDigits[s[:2]]
	if n == 0 {
		return "", errAt(off, "unknown application identifier starting %q", s[:2])
	}
	if len(s) < n || !isAI(s[:n]) {
		return "", errAt(off, "truncated application identifier %q", excerpt(s))
	}
	ai := s[:n]
	if _, ok := specs[ai]; !ok {
		return "", errAt(off, "unknown application identifier %q", ai)
	}
	return ai, nil
}

// excerpt is the start of s, for an error message.
func excerpt(s string) string {
	const max = 10
	for i := range s {
		if i >= max {
			return s[:i] + "..."
		}
	}
	return s
}

// add checks the value v of a recognised ai, which starts at offset off,
// and records it.
func (p *parser) add(ai, v string, off int) error {
	if slices.Contains(p.seen, ai) {
		return &Error{AI: ai, Value: v, Offset: off, Reason: "repeated: an AI may appear once"}
	}
	p.seen = append(p.seen, ai)
	sp := specs[ai]
	if reason := sp.check(v, p.now); reason != "" {
		if p.raw && fixedLen(ai) == 0 && len(v) > sp.max {
			reason += " (is a GS separator missing after it?)"
		}
		return &Error{AI: ai, Value: v, Offset: off, Reason: reason}
	}
	switch ai {
	case "01":
		p.u.DI = v
	case "10":
		p.u.Lot = v
	case "21":
		p.u.Serial = v
	case "11":
		p.u.ManufactureDate, _ = parseDate(v, p.now, true)
	case "17":
		p.u.ExpiryDate, _ = parseDate(v, p.now, true)
	default:
		if p.u.Other == nil {
			p.u.Other = make(map[string]string)
		}
		p.u.Other[ai] = v
	}
	return nil
}
