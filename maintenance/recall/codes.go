package recall

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Codes is what a recall's free text names: models, lots, serial numbers
// and UDI device identifiers.
type Codes struct {
	// Models are model, catalogue and part numbers ("Model 8100",
	// "Catalog No. 8100", "REF 2000EN"), as written, without repeats.
	Models []string
	Lots   []Range
	// Serials are serial numbers. A "Lot/Serial" list goes to both Lots
	// and Serials.
	Serials []Range
	// Unlabelled are numbers the text lists without saying whether they
	// are lots, serials or models (code_info that is a bare list).
	Unlabelled []Range
	// DIs are GS1 UDI device identifiers (GTIN-14) named after "UDI",
	// "UDI-DI", "GTIN" or as application identifier (01).
	DIs []string
	// All is set when the text says all lots, all serial numbers or all
	// units.
	All bool
}

// Empty reports whether c names nothing.
func (c Codes) Empty() bool {
	return len(c.Models) == 0 && len(c.Lots) == 0 && len(c.Serials) == 0 &&
		len(c.Unlabelled) == 0 && len(c.DIs) == 0 && !c.All
}

// ParseCodeInfo reads the models, lots, serial numbers and device
// identifiers out of a recall's code information, the free text the FDA
// publishes as code_info. It understands labels ("Serial Numbers:", "SN",
// "S/N", "Lot #", "Batch", "Model", "Catalog No.", "REF", "P/N", "UDI-DI",
// "GTIN"), lists separated by commas, semicolons, newlines, "&", "and" and
// "or", ranges written "A to B", "A through B", "A thru B", "A - B",
// "between A and B" or "A-B", GS1 element strings ("(01)...(10)...(21)...")
// and "all lots", "all serial numbers", "all units". It drops dates, expiry
// and manufacture dates, quantities, software versions, 510(k) numbers and
// enumerators ("1)"), and whatever follows "Product Code" or "except". A
// label holds until the next label. It never fails: text it cannot read
// adds nothing.
func ParseCodeInfo(s string) Codes {
	p := parser{toks: tokenize(s)}
	p.run()
	return p.codes
}

// Tokens.

type tokKind uint8

const (
	tWord  tokKind = iota // letters and digits, with inner - . / _
	tSep                  // , ; newline & |
	tDash                 // a free-standing - – — ~ (a range, or nothing)
	tOpen                 // (
	tClose                // )
	tAI                   // GS1 application identifier "(01)"; text is "01"
	tNoise                // : # and other punctuation that only separates words
)

type token struct {
	kind tokKind
	text string
}

func isWordRune(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }

func isJoiner(r rune) bool { return r == '-' || r == '.' || r == '/' || r == '_' }

// tokenize splits s into words and the punctuation that matters. A joiner
// (- . / _) between two word characters stays in the word: "A1000-A1999",
// "K6870.20.US.L", "S/N", "2025/10/17".
func tokenize(s string) []token {
	var toks []token
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case isWordRune(r):
			start := i
			i += size
			for i < len(s) {
				r, size := utf8.DecodeRuneInString(s[i:])
				if isWordRune(r) {
					i += size
					continue
				}
				if isJoiner(r) && i+size < len(s) {
					next, _ := utf8.DecodeRuneInString(s[i+size:])
					if isWordRune(next) {
						i += size
						continue
					}
				}
				break
			}
			toks = append(toks, token{tWord, s[start:i]})
		case r == '(':
			if ai, n := applicationIdentifier(s[i:]); n > 0 {
				toks = append(toks, token{tAI, ai})
				i += n
				continue
			}
			toks = append(toks, token{kind: tOpen})
			i += size
		case r == ')':
			toks = append(toks, token{kind: tClose})
			i += size
		case r == ',' || r == ';' || r == '\n' || r == '\r' || r == '&' || r == '|':
			toks = append(toks, token{kind: tSep})
			i += size
		case r == '-' || r == '–' || r == '—' || r == '~':
			toks = append(toks, token{kind: tDash})
			i += size
		case r == '.' || unicode.IsSpace(r):
			// A full stop or a space only ends a word.
			i += size
		default:
			toks = append(toks, token{kind: tNoise})
			i += size
		}
	}
	return toks
}

// applicationIdentifier recognises a GS1 application identifier in
// parentheses, two to four digits, followed (after optional spaces) by a
// digit or letter: "(01)00844505000772", "(01) 04050598000582". It returns
// the identifier and the length of "(01)".
func applicationIdentifier(s string) (ai string, n int) {
	i := 1
	for i < len(s) && i <= 5 && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	digits := i - 1
	if digits < 2 || digits > 4 || i >= len(s) || s[i] != ')' {
		return "", 0
	}
	j := i + 1
	for j < len(s) && s[j] == ' ' {
		j++
	}
	if j >= len(s) {
		return "", 0
	}
	if r, _ := utf8.DecodeRuneInString(s[j:]); !isWordRune(r) {
		return "", 0
	}
	return s[1:i], i + 1
}

// The state machine.

// kind is what the values that follow a label are.
type kind uint8

const (
	kindNone      kind = iota // no label yet: Unlabelled
	kindSerial                // Serials
	kindLot                   // Lots
	kindLotSerial             // both Lots and Serials
	kindModel                 // Models
	kindDI                    // DIs
	kindIgnore                // dropped until the next label
)

// labels are words that set the kind of the values after them.
var labels = map[string]kind{
	"serial": kindSerial, "serials": kindSerial, "sn": kindSerial, "s/n": kindSerial,
	"sns": kindSerial, "ser": kindSerial, "serialno": kindSerial,
	"lot": kindLot, "lots": kindLot, "batch": kindLot, "batches": kindLot, "lotno": kindLot,
	"model": kindModel, "models": kindModel, "catalog": kindModel, "catalogue": kindModel,
	"ref": kindModel, "p/n": kindModel, "pn": kindModel, "sku": kindModel, "cfn": kindModel,
	"catno": kindModel, "reorder": kindModel,
	"udi": kindDI, "udi-di": kindDI, "di": kindDI, "gtin": kindDI, "upn": kindDI,
	"version": kindIgnore, "versions": kindIgnore, "ver": kindIgnore, "rev": kindIgnore,
	"revision": kindIgnore, "software": kindIgnore, "firmware": kindIgnore,
	"except": kindIgnore, "excluding": kindIgnore, "excludes": kindIgnore, "exclude": kindIgnore,
	"not": kindIgnore, "fei": kindIgnore, "ndc": kindIgnore,
}

// weakLabels are labels only when a number word, "#" or ":" follows them
// ("Part Number:", "Item #", "Cat. No."), so that "as part of" is not one.
var weakLabels = map[string]kind{
	"part": kindModel, "item": kindModel, "article": kindModel, "material": kindModel,
	"reference": kindModel, "cat": kindModel, "product": kindModel, "component": kindModel,
	"quantity": kindIgnore, "qty": kindIgnore,
}

// numberWords follow a label without changing anything: "Serial Number(s)",
// "Lot No.", "UDI Code".
var numberWords = map[string]bool{
	"number": true, "numbers": true, "no": true, "nos": true, "num": true, "nr": true,
	"code": true, "codes": true, "id": true, "ids": true, "identifier": true,
	"identifiers": true, "s": true,
}

// dateWords start a date, which runs to the next separator or ")":
// "Exp. Date: 2025/10/17", "manufactured 03/2024".
var dateWords = map[string]bool{
	"exp": true, "expiry": true, "expiration": true, "expires": true, "expiring": true,
	"date": true, "dates": true, "dated": true, "mfg": true, "mfd": true, "manufactured": true,
	"manufacture": true, "manufacturing": true, "produced": true, "distributed": true,
	"shipped": true, "sold": true, "week": true, "weeks": true, "month": true, "months": true,
	"year": true, "years": true, "day": true, "days": true, "before": true, "after": true,
	"since": true, "prior": true, "use-by": true, "bb": true,
}

var months = map[string]bool{
	"jan": true, "january": true, "feb": true, "february": true, "mar": true, "march": true,
	"apr": true, "april": true, "may": true, "jun": true, "june": true, "jul": true,
	"july": true, "aug": true, "august": true, "sep": true, "sept": true, "september": true,
	"oct": true, "october": true, "nov": true, "november": true, "dec": true, "december": true,
}

// unitWords after a number make it a quantity or a size, not an identifier:
// "(50 units)", "1000 mL".
var unitWords = map[string]bool{
	"unit": true, "units": true, "pcs": true, "pieces": true, "kits": true, "boxes": true,
	"cases": true, "each": true, "ea": true, "ml": true, "mm": true, "cm": true, "mg": true,
	"kg": true, "lbs": true, "fr": true, "ga": true, "pack": true, "packs": true,
}

// allWords after "all" make the recall cover every unit: "all lots", "all
// serial numbers", "all units".
var allWords = map[string]bool{
	"lot": true, "lots": true, "serial": true, "serials": true, "sn": true, "s/n": true,
	"unit": true, "units": true, "device": true, "devices": true, "product": true,
	"products": true, "codes": true, "batches": true, "pumps": true, "systems": true,
}

var rangeWords = map[string]bool{"to": true, "through": true, "thru": true, "till": true, "until": true}

type parser struct {
	toks  []token
	i     int
	codes Codes

	state    kind
	override kind // set by a GS1 application identifier for one value
	skip     bool // in a date or an aside: drop values to the next separator
	depth    int  // parentheses open
	between  bool // "between A and B": "and" is a range

	// last is the value a range operator would extend: the list it is in
	// and its index. rangeOpen is set after the operator.
	last      *[]Range
	lastIdx   int
	rangeOpen bool

	// pairing is set while slashed reads the second half of "Lot/Serial".
	pairing bool
	// both holds the values of a "Lot/Serial" list until run copies them
	// to Lots and Serials.
	both []Range
}

func (p *parser) peek(k int) token {
	if p.i+k < len(p.toks) {
		return p.toks[p.i+k]
	}
	return token{kind: tSep}
}

// resetList forgets the value a range could extend.
func (p *parser) resetList() {
	p.last = nil
	p.rangeOpen = false
}

func (p *parser) separator() {
	p.resetList()
	p.skip = false
	p.between = false
}

func (p *parser) run() {
	for ; p.i < len(p.toks); p.i++ {
		t := p.toks[p.i]
		switch t.kind {
		case tSep:
			p.separator()
		case tNoise:
		case tOpen:
			p.depth++
			p.resetList()
		case tClose:
			if p.depth > 0 {
				p.depth--
			}
			p.resetList()
			p.skip = false
		case tDash:
			if p.last != nil && !p.skip {
				p.rangeOpen = true
			}
		case tAI:
			p.resetList()
			switch t.text {
			case "01":
				p.override = kindDI
			case "10":
				p.override = kindLot
			case "21":
				p.override = kindSerial
			default: // dates (11, 17), quantities and the rest
				p.override = kindIgnore
			}
		case tWord:
			p.word(t.text)
		}
	}
	c := &p.codes
	c.Lots = dedupeRanges(append(c.Lots, p.both...))
	c.Serials = dedupeRanges(append(c.Serials, p.both...))
	c.Unlabelled = dedupeRanges(c.Unlabelled)
	c.Models = dedupeStrings(c.Models)
	c.DIs = dedupeStrings(c.DIs)
}

// dedupeRanges drops repeats, ignoring case, and keeps the first of each.
func dedupeRanges(list []Range) []Range {
	if len(list) < 2 {
		return list
	}
	seen := make(map[Range]bool, len(list))
	out := list[:0]
	for _, r := range list {
		k := Range{From: strings.ToUpper(r.From), To: strings.ToUpper(r.To)}
		if !seen[k] {
			seen[k] = true
			out = append(out, r)
		}
	}
	return out
}

// dedupeStrings drops repeats, ignoring case, and keeps the first of each.
func dedupeStrings(list []string) []string {
	if len(list) < 2 {
		return list
	}
	seen := make(map[string]bool, len(list))
	out := list[:0]
	for _, s := range list {
		k := strings.ToUpper(s)
		if !seen[k] {
			seen[k] = true
			out = append(out, s)
		}
	}
	return out
}

func (p *parser) word(w string) {
	lw := strings.ToLower(w)
	if p.override != kindNone {
		// The value of "(10)", "(21)", "(01)": a lot or serial may have no
		// digits.
		k := p.override
		p.override = kindNone
		p.value(w, k)
		return
	}
	if !hasDigit(w) {
		p.keyword(lw)
		return
	}
	if p.skip {
		return
	}
	// "No.8100", "Ref.2000EN": an abbreviated label run into its value.
	if head, rest, ok := strings.Cut(w, "."); ok && !hasDigit(head) && hasDigit(rest) && isLabelWord(strings.ToLower(head)) {
		p.keyword(strings.ToLower(head))
		p.word(rest)
		return
	}
	// "1)" numbers a list; it is not a value.
	if next := p.peek(1); next.kind == tClose && p.depth == 0 {
		p.separator()
		return
	}
	// "510(k)".
	if lw == "510" && p.peek(1).kind == tOpen && strings.EqualFold(p.peek(2).text, "k") {
		p.i += 3
		return
	}
	// "50 units", "1000 mL".
	if next := p.peek(1); next.kind == tWord && unitWords[strings.ToLower(next.text)] {
		p.resetList()
		return
	}
	if isDate(w) {
		p.resetList()
		return
	}
	if strings.Contains(w, "/") {
		p.slashed(w)
		return
	}
	p.value(w, p.state)
}

// keyword handles a word without digits.
func (p *parser) keyword(lw string) {
	if strings.Contains(lw, "/") {
		p.slashed(lw)
		return
	}
	switch {
	case lw == "and" && p.between && p.last != nil:
		p.rangeOpen = true
		p.between = false
		return
	case lw == "and" || lw == "or":
		p.separator()
		return
	case rangeWords[lw]:
		if p.last != nil && !p.skip {
			p.rangeOpen = true
		}
		return
	case lw == "between":
		p.resetList()
		p.between = true
		return
	case lw == "all":
		p.all()
		return
	case numberWords[lw]:
		return
	case months[lw]:
		p.month()
		return
	case dateWords[lw]:
		p.resetList()
		p.skip = true
		return
	case lw == "product" && isCodeWord(p.peek(1)):
		// "Product Code: FRN" is the FDA's product code, or a firm's
		// product code for a kit; neither is a lot or a serial.
		p.label(kindIgnore)
		p.i++
		return
	}
	if k, ok := labels[lw]; ok {
		p.label(k)
		return
	}
	if k, ok := weakLabels[lw]; ok && labelFollows(p.peek(1)) {
		p.label(k)
		return
	}
	if strings.HasPrefix(lw, "udi") || strings.HasPrefix(lw, "gtin") {
		p.label(kindDI)
		return
	}
	// Any other word ends a range: "1001 units through" is not one.
	p.resetList()
}

func isLabelWord(lw string) bool {
	_, label := labels[lw]
	_, weak := weakLabels[lw]
	return label || weak || numberWords[lw]
}

func isCodeWord(t token) bool {
	if t.kind != tWord {
		return false
	}
	lw := strings.ToLower(t.text)
	return lw == "code" || lw == "codes"
}

func labelFollows(t token) bool {
	switch t.kind {
	case tNoise:
		return true
	case tWord:
		head, _, _ := strings.Cut(strings.ToLower(t.text), ".") // "No.8100"
		return numberWords[head]
	}
	return false
}

func (p *parser) label(k kind) {
	p.resetList()
	p.skip = false
	p.override = kindNone
	// "Lot/Serial Number" lists values that are one or the other.
	if (p.state == kindLot && k == kindSerial || p.state == kindSerial && k == kindLot) && p.pairing {
		k = kindLotSerial
	}
	p.state = k
}

// all sets Codes.All when a lot, serial or unit word follows "all" within
// three words: "All lots", "all serial numbers", "all of the units".
func (p *parser) all() {
	p.resetList()
	for k := 1; k <= 3; k++ {
		t := p.peek(k)
		if t.kind != tWord {
			return
		}
		lw := strings.ToLower(t.text)
		if allWords[lw] || strings.HasPrefix(lw, "lot/") || strings.HasPrefix(lw, "serial/") {
			p.codes.All = true
			return
		}
	}
}

// month drops "March 2024", "Mar 15, 2024", "May 2024": the month and the
// day or year after it. A month name not followed by one ("units may be
// affected") is an ordinary word.
func (p *parser) month() {
	p.resetList()
	n := 0
	for k := 1; k <= 3; k++ {
		t := p.peek(k)
		if t.kind == tSep && k == 2 && n == 1 {
			continue // "Mar 15, 2024"
		}
		if t.kind != tWord || !dayOrYear(t.text) {
			break
		}
		n = k
	}
	p.i += n
}

func dayOrYear(w string) bool {
	if !allDigits(w) {
		return false
	}
	switch len(w) {
	case 1, 2:
		return true
	case 4:
		return w[0] == '1' && w[1] == '9' || w[0] == '2' && w[1] == '0'
	}
	return false
}

// slashed handles a word with "/" in it: a known label ("S/N", "P/N"), a
// pair of labels ("Model/Catalog", "Lot/Serial", "GTIN/UPN"), or values
// and labels run together ("FGS-0312/FGS-0313", "K6870/Lot").
func (p *parser) slashed(w string) {
	lw := strings.ToLower(w)
	if k, ok := labels[lw]; ok {
		p.label(k)
		return
	}
	parts := strings.Split(w, "/")
	for j, part := range parts {
		if part == "" {
			continue
		}
		p.pairing = j > 0
		if hasDigit(part) {
			if !p.skip {
				p.value(part, p.state)
			}
		} else {
			p.keyword(strings.ToLower(part))
		}
		p.pairing = false
		p.last = nil // each part is its own value
		p.rangeOpen = false
	}
}

// value adds w to the list k says.
func (p *parser) value(w string, k kind) {
	switch k {
	case kindIgnore:
		p.resetList()
	case kindModel:
		p.resetList()
		p.codes.Models = append(p.codes.Models, w)
	case kindDI:
		p.resetList()
		if di, ok := deviceIdentifier(w); ok {
			p.codes.DIs = append(p.codes.DIs, di)
		}
	case kindLot:
		p.number(&p.codes.Lots, w)
	case kindSerial:
		p.number(&p.codes.Serials, w)
	case kindLotSerial:
		p.number(&p.both, w)
	default:
		if isKNumber(w) {
			p.resetList()
			return
		}
		p.number(&p.codes.Unlabelled, w)
	}
}

// number adds a lot or serial to list: the end of an open range, a range
// written with a hyphen ("1001-1050", "A1000-A1999"), or a single value.
func (p *parser) number(list *[]Range, w string) {
	if p.rangeOpen && p.last == list && p.lastIdx < len(*list) {
		from := (*list)[p.lastIdx].From
		if r, ok := makeRange(from, w); ok && (*list)[p.lastIdx].single() {
			(*list)[p.lastIdx] = r
			p.resetList()
			p.between = false
			return
		}
	}
	r := Range{From: w, To: w}
	if a, b, ok := strings.Cut(w, "-"); ok && !strings.Contains(b, "-") {
		// A hyphen is a range only between two values with the same prefix,
		// in ascending order: "1001-1050" is, "2019-05" and "409-375" are not.
		if hr, ok := makeRange(a, b); ok && hr.From == a {
			r = hr
		}
	}
	*list = append(*list, r) // run drops repeats at the end
	p.last, p.lastIdx, p.rangeOpen = list, len(*list)-1, false
}

// deviceIdentifier returns the GTIN-14 of a UDI-DI value: 14 digits, a
// GTIN-12 or GTIN-13 padded with zeros, or the GTIN after "01" in an
// element string written without parentheses ("0100844505000772...").
func deviceIdentifier(w string) (string, bool) {
	n := 0
	for n < len(w) && w[n] >= '0' && w[n] <= '9' {
		n++
	}
	switch {
	case n == 14:
		return w[:14], true
	case n >= 16 && strings.HasPrefix(w, "01"):
		return w[2:16], true
	case (n == 12 || n == 13) && n == len(w):
		return strings.Repeat("0", 14-n) + w, true
	}
	return "", false
}

// isKNumber reports a 510(k) number, "K" and six digits.
func isKNumber(w string) bool {
	return len(w) == 7 && (w[0] == 'K' || w[0] == 'k') && allDigits(w[1:])
}

func hasDigit(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= '0' && s[i] <= '9' {
			return true
		}
	}
	return false
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// isDate recognises dates written with digits: 2025/10/17, 01/20/2023,
// 12/2024, 10/15 (month/year), 2023-01-15, 01-15-2023, 15.01.2023.
func isDate(w string) bool {
	for _, sep := range []string{"/", "-", "."} {
		parts := strings.Split(w, sep)
		if len(parts) < 2 || len(parts) > 3 {
			continue
		}
		ok := true
		for _, part := range parts {
			if !allDigits(part) || len(part) > 4 {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		if len(parts) == 2 {
			// Month and year: 12/2024, 10/15. Not with hyphens or dots:
			// "1001-1050" is a range and "2.5" a size.
			if sep == "/" && isMonth(parts[0]) && (len(parts[1]) == 2 || len(parts[1]) == 4) {
				return true
			}
			continue
		}
		a, b, c := parts[0], parts[1], parts[2]
		switch {
		case len(a) == 4: // year first
			if isMonth(b) && isDay(c) {
				return true
			}
		case len(c) == 4 || len(c) == 2 && sep != ".": // year last
			if isMonth(a) && isDay(b) || isDay(a) && isMonth(b) {
				return true
			}
		}
	}
	return false
}

func isMonth(s string) bool { n := atoi(s); return len(s) <= 2 && n >= 1 && n <= 12 }
func isDay(s string) bool   { n := atoi(s); return len(s) <= 2 && n >= 1 && n <= 31 }

func atoi(s string) int {
	n := 0
	for i := 0; i < len(s) && i < 4; i++ {
		n = n*10 + int(s[i]-'0')
	}
	return n
}
