package recall

import (
	"fmt"
	"slices"
	"strings"
	"unicode"
)

// Candidate is what matching needs of a fleet device.
type Candidate struct {
	Device                                  string // "devices/{id}"
	Manufacturer, Model, Serial, Lot, UDIDI string
	// ProductCode is the FDA product code of the device's catalogue model,
	// "" when unknown.
	ProductCode string
	// ModelNumbers are catalogue or part numbers known for the model; may
	// be empty.
	ModelNumbers []string
}

// Strength is how sure a match is.
type Strength int

const (
	// StrengthPossible: the recall names the model, but nothing it lists
	// identifies this unit (it covers all units, or the unit's serial or
	// lot is not known).
	StrengthPossible Strength = iota + 1
	// StrengthStrong: the unit's serial or lot is among those the recall
	// lists.
	StrengthStrong
)

func (s Strength) String() string {
	switch s {
	case StrengthPossible:
		return "possible"
	case StrengthStrong:
		return "strong"
	}
	return fmt.Sprintf("Strength(%d)", int(s))
}

// Match is a fleet device a recall may affect.
type Match struct {
	Recall   string // "recalls/{ID}"
	Device   string // Candidate.Device
	Strength Strength
	// Basis says why, in plain words: "model Alaris 8100 named in the
	// recall", "product code FRN", "serial 12580077 in 12580050-12580099".
	Basis []string
}

// MatchFleet returns the devices of fleet that recall r may affect, sorted
// by device. The rules are in the package documentation.
func MatchFleet(r Recall, fleet []Candidate) []Match {
	text := newRecallText(r)
	var out []Match
	for _, c := range fleet {
		named, ok := text.names(c)
		if !ok {
			continue
		}
		basis := []string{named}
		if r.ProductCode != "" && strings.TrimSpace(c.ProductCode) != "" {
			if !strings.EqualFold(r.ProductCode, strings.TrimSpace(c.ProductCode)) {
				continue
			}
			basis = append(basis, "product code "+r.ProductCode)
		}
		strength, why, ok := scope(r.Codes, c)
		if !ok {
			continue
		}
		out = append(out, Match{
			Recall:   "recalls/" + r.ID,
			Device:   c.Device,
			Strength: strength,
			Basis:    append(basis, why...),
		})
	}
	slices.SortStableFunc(out, func(a, b Match) int { return strings.Compare(a.Device, b.Device) })
	return out
}

// recallText is what of a recall can name a model: the words of its
// product description and code information and the models and device
// identifiers it lists, normalised (upper case, letters and digits only).
type recallText struct {
	words  map[string]bool // words and their letter-and-digit runs
	models map[string]bool // Codes.Models
	dis    map[string]bool
	// seq is every run, in order, each between spaces: " ALARIS PUMP
	// MODULE MODEL 8100 ", for model numbers of more than one word.
	seq string
}

func newRecallText(r Recall) recallText {
	t := recallText{words: map[string]bool{}, models: map[string]bool{}, dis: map[string]bool{}}
	var seq strings.Builder
	seq.WriteString(" ")
	for _, s := range []string{r.ProductDescription, r.CodeInfo} {
		for _, w := range strings.Fields(s) {
			// "409-375," is the word "409375" and the runs "409" and "375".
			if n := normalise(w); n != "" {
				t.words[n] = true
			}
			for _, run := range runs(w) {
				t.words[run] = true
				seq.WriteString(run)
				seq.WriteString(" ")
			}
		}
	}
	t.seq = seq.String()
	for _, m := range r.Codes.Models {
		if n := normalise(m); n != "" {
			t.models[n] = true
			t.words[n] = true
		}
		for _, run := range runs(m) {
			t.words[run] = true
		}
	}
	for _, di := range r.Codes.DIs {
		t.dis[di] = true
	}
	return t
}

// runs splits s into its runs of letters and digits, normalised.
func runs(s string) []string {
	f := strings.FieldsFunc(s, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
	for i := range f {
		f[i] = normalise(f[i])
	}
	return f
}

// names reports whether the recall names c's model, and how.
func (t recallText) names(c Candidate) (basis string, ok bool) {
	if di, ok := deviceIdentifier(digitsOf(c.UDIDI)); ok && t.dis[di] {
		return "UDI-DI " + di + " named in the recall", true
	}
	for _, mn := range c.ModelNumbers {
		if t.namesNumber(mn) {
			return "model number " + strings.TrimSpace(mn) + " named in the recall", true
		}
	}
	return t.namesModel(c.Model, c.Manufacturer)
}

// namesNumber reports whether a catalogue or model number of at least
// three characters appears in the recall: as a word ("8100", "409-375"), or
// as consecutive words ("AirSense 11").
func (t recallText) namesNumber(mn string) bool {
	n := normalise(mn)
	if len(n) < 3 {
		return false
	}
	if t.words[n] {
		return true
	}
	rs := runs(mn)
	return len(rs) > 1 && strings.Contains(t.seq, " "+strings.Join(rs, " ")+" ")
}

// namesModel applies the model-string rule: the model's distinguishing
// tokens are the words of the model string that are not words of the
// manufacturer's name (nor "model"). If some have digits, all those must
// appear, and so must one of the others or, standing alone, a token of at
// least three characters that the recall lists as a model; otherwise all
// tokens must appear.
func (t recallText) namesModel(model, manufacturer string) (string, bool) {
	maker := map[string]bool{"MODEL": true}
	for _, w := range runs(manufacturer) {
		maker[w] = true
	}
	var digits, letters, found []string
	for _, raw := range strings.FieldsFunc(model, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }) {
		w := normalise(raw)
		if w == "" || maker[w] {
			continue
		}
		if hasDigit(w) {
			digits = append(digits, w)
		} else {
			letters = append(letters, w)
		}
		if t.words[w] {
			found = append(found, raw)
		}
	}
	if len(digits)+len(letters) == 0 {
		return "", false
	}
	basis := "model " + strings.Join(found, " ") + " named in the recall"
	if len(digits) == 0 {
		for _, w := range letters {
			if !t.words[w] {
				return "", false
			}
		}
		return basis, true
	}
	long := false
	for _, w := range digits {
		if !t.words[w] {
			return "", false
		}
		if len(w) >= 3 && (t.models[w] || len(letters) == 0) {
			long = true
		}
	}
	if long {
		return basis, true
	}
	for _, w := range letters {
		if t.words[w] {
			return basis, true
		}
	}
	return "", false
}

func digitsOf(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] >= '0' && s[i] <= '9' {
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// scope decides, for a device whose model the recall names, whether the
// units the recall lists include it.
func scope(codes Codes, c Candidate) (Strength, []string, bool) {
	serial, lot := strings.TrimSpace(c.Serial), strings.TrimSpace(c.Lot)
	if r, ok := find(codes.Serials, serial); ok {
		return StrengthStrong, []string{listed("serial", serial, r)}, true
	}
	if r, ok := find(codes.Lots, lot); ok {
		return StrengthStrong, []string{listed("lot", lot, r)}, true
	}
	listsUnits := len(codes.Serials) > 0 || len(codes.Lots) > 0
	if !listsUnits {
		if r, ok := find(codes.Unlabelled, serial); ok {
			return StrengthStrong, []string{listed("serial", serial, r) + " (not labelled lot or serial)"}, true
		}
		if r, ok := find(codes.Unlabelled, lot); ok {
			return StrengthStrong, []string{listed("lot", lot, r) + " (not labelled lot or serial)"}, true
		}
	}
	if codes.All {
		return StrengthPossible, []string{"recall names the model, all units"}, true
	}
	if listsUnits {
		var why []string
		var unknown []string
		if len(codes.Serials) > 0 {
			if serial == "" {
				unknown = append(unknown, "serial")
			} else {
				why = append(why, "serial "+serial+" not listed")
			}
		}
		if len(codes.Lots) > 0 {
			if lot == "" {
				unknown = append(unknown, "lot")
			} else {
				why = append(why, "lot "+lot+" not listed")
			}
		}
		if len(unknown) == 0 {
			return 0, nil, false
		}
		return StrengthPossible, append(why, strings.Join(unknown, " and ")+" unknown"), true
	}
	if len(codes.Unlabelled) > 0 {
		why := []string{"recall lists numbers without saying whether they are lots or serials"}
		if serial != "" {
			why = append(why, "serial "+serial+" not among them")
		}
		if lot != "" {
			why = append(why, "lot "+lot+" not among them")
		}
		return StrengthPossible, why, true
	}
	return StrengthPossible, []string{"recall names the model, all units"}, true
}

func find(list []Range, v string) (Range, bool) {
	if v == "" {
		return Range{}, false
	}
	for _, r := range list {
		if r.Contains(v) {
			return r, true
		}
	}
	return Range{}, false
}

func listed(what, v string, r Range) string {
	if r.single() {
		return what + " " + v + " listed in the recall"
	}
	return what + " " + v + " in " + r.String()
}
