package audit

import (
	"fmt"
	"slices"
	"strings"
	"time"

	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// filter is a parsed ListAuditRecords filter: comparisons joined by AND, in
// the AIP-160 syntax, such as `actor = "users/alice" AND time >= "2026-11-01T00:00:00Z"`.
type filter struct {
	terms []term
}

type term struct {
	field string // actor, role, action, target, outcome or time
	op    string // = or != for strings; >=, >, <= or < for time
	value string // as written, unescaped
	at    time.Time
}

var (
	stringFields = []string{"actor", "role", "action", "target", "outcome"}
	stringOps    = []string{"=", "!="}
	timeOps      = []string{">=", ">", "<=", "<"}
)

// maxFilterBytes keeps a filter, which is matched against every record
// scanned, cheap.
const maxFilterBytes = 1024

// parseFilter parses a filter; an empty one matches everything. Errors are
// *FieldError on the field "filter".
func parseFilter(s string) (*filter, error) {
	if len(s) > maxFilterBytes {
		return nil, filterErr("longer than %d bytes", maxFilterBytes)
	}
	toks, err := lexFilter(s)
	if err != nil {
		return nil, err
	}
	f := &filter{}
	for i := 0; i < len(toks); {
		if len(f.terms) > 0 {
			if toks[i].kind != tokWord || toks[i].text != "AND" {
				return nil, filterErr("expected AND at offset %d, got %q", toks[i].off, toks[i].text)
			}
			i++
		}
		if i+3 > len(toks) {
			return nil, filterErr("incomplete comparison at the end; want field op \"value\"")
		}
		field, op, val := toks[i], toks[i+1], toks[i+2]
		i += 3
		if field.kind != tokWord {
			return nil, filterErr("expected a field name at offset %d, got %q", field.off, field.text)
		}
		t := term{field: field.text, op: op.text, value: val.text}
		ops := stringOps
		switch {
		case t.field == "time":
			ops = timeOps
		case !slices.Contains(stringFields, t.field):
			return nil, filterErr("unknown field %q; use actor, role, action, target, outcome or time", t.field)
		}
		if op.kind != tokOp {
			return nil, filterErr("expected an operator after %s at offset %d, got %q", t.field, op.off, op.text)
		}
		if !slices.Contains(ops, t.op) {
			return nil, filterErr("%s cannot be compared with %s; use %s", t.field, t.op, orList(ops))
		}
		if val.kind != tokString {
			return nil, filterErr("the value at offset %d must be quoted, as in %s %s \"...\"", val.off, t.field, t.op)
		}
		if t.field == "time" {
			at, err := time.Parse(time.RFC3339, t.value)
			if err != nil {
				return nil, filterErr("time %q is not RFC 3339, such as \"2026-11-01T00:00:00Z\"", t.value)
			}
			t.at = at
			t.value = at.Format(time.RFC3339Nano)
		}
		f.terms = append(f.terms, t)
	}
	return f, nil
}

// String is the filter's canonical form, which page tokens are tied to.
func (f *filter) String() string {
	parts := make([]string, len(f.terms))
	for i, t := range f.terms {
		parts[i] = t.field + " " + t.op + " " + quote(t.value)
	}
	return strings.Join(parts, " AND ")
}

// orList writes {a, b, c} as "a, b or c".
func orList(ops []string) string {
	return strings.Join(ops[:len(ops)-1], ", ") + " or " + ops[len(ops)-1]
}

func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

func (f *filter) match(r *pb.AuditRecord) bool {
	for _, t := range f.terms {
		if !t.match(r) {
			return false
		}
	}
	return true
}

func (t *term) match(r *pb.AuditRecord) bool {
	var got string
	switch t.field {
	case "time":
		c := r.GetTime().AsTime().Compare(t.at)
		switch t.op {
		case ">=":
			return c >= 0
		case ">":
			return c > 0
		case "<=":
			return c <= 0
		default:
			return c < 0
		}
	case "actor":
		got = r.GetActor()
	case "role":
		got = r.GetRole()
	case "action":
		got = r.GetAction()
	case "target":
		got = r.GetTarget()
	case "outcome":
		got = r.GetOutcome()
	}
	return (got == t.value) == (t.op == "=")
}

type tokKind int

const (
	tokWord tokKind = iota
	tokString
	tokOp
)

type token struct {
	kind tokKind
	text string // a string's value, unescaped
	off  int
}

func lexFilter(s string) ([]token, error) {
	var toks []token
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case strings.IndexByte("=!<>", c) >= 0:
			op := s[i : i+1]
			if i+1 < len(s) && s[i+1] == '=' && c != '=' {
				op = s[i : i+2]
			}
			if op == "!" {
				return nil, filterErr("stray ! at offset %d; the operator is !=", i)
			}
			toks = append(toks, token{tokOp, op, i})
			i += len(op)
		case c == '"':
			v, n, err := unquote(s[i:])
			if err != nil {
				return nil, filterErr("%s at offset %d", err, i)
			}
			toks = append(toks, token{tokString, v, i})
			i += n
		case isWordByte(c):
			j := i
			for j < len(s) && isWordByte(s[j]) {
				j++
			}
			toks = append(toks, token{tokWord, s[i:j], i})
			i = j
		default:
			return nil, filterErr("unexpected %q at offset %d", s[i:i+1], i)
		}
	}
	return toks, nil
}

// unquote reads the quoted string s starts with, whose only escapes are \"
// and \\, and returns its value and length.
func unquote(s string) (string, int, error) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '"':
			return b.String(), i + 1, nil
		case '\\':
			if i+1 == len(s) || (s[i+1] != '"' && s[i+1] != '\\') {
				return "", 0, fmt.Errorf("only \\\" and \\\\ may be escaped")
			}
			i++
		}
		b.WriteByte(s[i])
	}
	return "", 0, fmt.Errorf("unterminated string")
}

func isWordByte(c byte) bool {
	return c == '_' || c == '.' || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9')
}

func filterErr(format string, args ...any) error {
	return &FieldError{Field: "filter", Reason: fmt.Sprintf(format, args...)}
}
