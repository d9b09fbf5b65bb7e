package inventory

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode"

	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// Filter is a parsed ListDevices filter: a conjunction of comparisons in the
// AIP-160 syntax, such as `profile = "cpap" AND connectivity = ONLINE`.
type Filter struct {
	terms []term
}

type term struct {
	field string // profile, model, ..., or labels.<key>
	neg   bool   // != rather than =
	value string // for enums, the bare name (ONLINE, IN_USE)
}

// filterFields are the device fields a filter may name, with the enum values
// each accepts (nil: any string).
var filterFields = map[string][]string{
	"profile":          nil,
	"model":            nil,
	"manufacturer":     nil,
	"serial":           nil,
	"udi":              nil,
	"site":             nil,
	"firmware_version": nil,
	"connectivity":     {"ONLINE", "OFFLINE"},
	"clinical_state":   {"IDLE", "IN_USE", "CHARGING", "FAULT", "UNSPECIFIED"},
}

// ParseFilter parses a filter string; an empty string matches everything.
// Errors are *FieldError on the field "filter".
func ParseFilter(s string) (*Filter, error) {
	if len(s) > 1024 {
		return nil, &FieldError{Field: "filter", Reason: "longer than 1024 bytes"}
	}
	toks, err := lexFilter(s)
	if err != nil {
		return nil, err
	}
	f := &Filter{}
	for i := 0; i < len(toks); {
		if len(f.terms) > 0 {
			if toks[i].kind != tokWord || toks[i].text != "AND" {
				return nil, filterErr("expected AND at %q", toks[i].text)
			}
			i++
		}
		if i+3 > len(toks) {
			return nil, filterErr("incomplete comparison at the end; want field = value")
		}
		field, op, val := toks[i], toks[i+1], toks[i+2]
		i += 3
		if field.kind != tokWord {
			return nil, filterErr("expected a field name, got %q", field.text)
		}
		if op.kind != tokOp {
			return nil, filterErr("expected = or != after %q, got %q", field.text, op.text)
		}
		if val.kind == tokOp {
			return nil, filterErr("expected a value after %q %s", field.text, op.text)
		}
		t := term{field: field.text, neg: op.text == "!=", value: val.text}
		if key, ok := strings.CutPrefix(t.field, "labels."); ok {
			if key == "" {
				return nil, filterErr("labels. needs a key, as in labels.unit = \"4-west\"")
			}
		} else {
			enums, known := filterFields[t.field]
			if !known {
				return nil, filterErr("unknown field %q; known: profile, model, manufacturer, serial, udi, site, firmware_version, connectivity, clinical_state, labels.<key>", t.field)
			}
			if enums != nil {
				t.value = strings.TrimPrefix(strings.ToUpper(t.value), strings.ToUpper(t.field)+"_")
				if !slices.Contains(enums, t.value) {
					return nil, filterErr("%s cannot be %q; want one of %s", t.field, val.text, strings.Join(enums, ", "))
				}
			}
		}
		f.terms = append(f.terms, t)
	}
	return f, nil
}

// String is the canonical form of the filter, used to tie page tokens to it.
func (f *Filter) String() string {
	parts := make([]string, len(f.terms))
	for i, t := range f.terms {
		op := "="
		if t.neg {
			op = "!="
		}
		parts[i] = t.field + " " + op + " " + strconv.Quote(t.value)
	}
	return strings.Join(parts, " AND ")
}

// match reports whether a device (registry part and status) passes the
// filter; conn computes its connectivity, only when a term needs it.
func (f *Filter) match(d *pb.Device, st *pb.DeviceStatus, conn func() pb.Connectivity) bool {
	for _, t := range f.terms {
		var got string
		switch t.field {
		case "profile":
			got = d.GetProfile()
		case "model":
			got = d.GetModel()
		case "manufacturer":
			got = d.GetManufacturer()
		case "serial":
			got = d.GetSerial()
		case "udi":
			got = d.GetUdi()
		case "site":
			got = d.GetSite()
		case "firmware_version":
			got = st.GetFirmwareVersion()
		case "connectivity":
			got = strings.TrimPrefix(conn().String(), "CONNECTIVITY_")
		case "clinical_state":
			got = strings.TrimPrefix(st.GetClinicalState().String(), "CLINICAL_STATE_")
		default:
			got = d.GetLabels()[strings.TrimPrefix(t.field, "labels.")]
		}
		if (got == t.value) == t.neg {
			return false
		}
	}
	return true
}

type tokKind int

const (
	tokWord tokKind = iota
	tokString
	tokOp
)

type token struct {
	kind tokKind
	text string
}

func lexFilter(s string) ([]token, error) {
	var toks []token
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			i++
		case c == '=':
			toks = append(toks, token{tokOp, "="})
			i++
		case c == '!':
			if i+1 >= len(s) || s[i+1] != '=' {
				return nil, filterErr("stray %q at offset %d", "!", i)
			}
			toks = append(toks, token{tokOp, "!="})
			i += 2
		case c == '"':
			j := i + 1
			for j < len(s) && s[j] != '"' {
				if s[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(s) {
				return nil, filterErr("unterminated string at offset %d", i)
			}
			v, err := strconv.Unquote(s[i : j+1])
			if err != nil {
				return nil, filterErr("bad string at offset %d: %v", i, err)
			}
			toks = append(toks, token{tokString, v})
			i = j + 1
		default:
			j := i
			for j < len(s) && isWordByte(s[j]) {
				j++
			}
			if j == i {
				return nil, filterErr("unexpected %q at offset %d", string(rune(c)), i)
			}
			toks = append(toks, token{tokWord, s[i:j]})
			i = j
		}
	}
	return toks, nil
}

func isWordByte(c byte) bool {
	return c < unicode.MaxASCII && (unicode.IsLetter(rune(c)) || unicode.IsDigit(rune(c)) || strings.IndexByte("._-:/", c) >= 0)
}

func filterErr(format string, args ...any) error {
	return &FieldError{Field: "filter", Reason: fmt.Sprintf(format, args...)}
}
