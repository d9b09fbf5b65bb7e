package audit

import (
	"fmt"
	"slices"
	"strings"
	"time"

	aipfilter "github.com/medfleet/medfleet/internal/filter"
	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// filter is a parsed ListAuditRecords filter: comparisons joined by AND, in
// the AIP-160 syntax, such as `actor = "users/alice" AND time >= "2026-11-01T00:00:00Z"`.
type filter struct {
	terms []term
}

type term struct {
	aipfilter.Term           // a time's Value rewritten in RFC 3339, normalised
	at             time.Time // the time's Value, parsed
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
	terms, err := aipfilter.Parse(s)
	if err != nil {
		return nil, &FieldError{Field: "filter", Reason: err.Error()}
	}
	f := &filter{}
	for _, ft := range terms {
		t := term{Term: ft}
		ops := stringOps
		switch {
		case t.Field == "time":
			ops = timeOps
		case !slices.Contains(stringFields, t.Field):
			return nil, filterErr("unknown field %q; use actor, role, action, target, outcome or time", t.Field)
		}
		if !slices.Contains(ops, t.Op) {
			return nil, filterErr("%s cannot be compared with %s; use %s", t.Field, t.Op, orList(ops))
		}
		if !t.Quoted {
			return nil, filterErr("the value in %s %s %s must be quoted, as in %s %s %q", t.Field, t.Op, t.Value, t.Field, t.Op, t.Value)
		}
		if t.Field == "time" {
			at, err := time.Parse(time.RFC3339, t.Value)
			if err != nil {
				return nil, filterErr("time %q is not RFC 3339, such as \"2026-11-01T00:00:00Z\"", t.Value)
			}
			t.at = at
			t.Value = at.Format(time.RFC3339Nano)
		}
		f.terms = append(f.terms, t)
	}
	return f, nil
}

// String is the filter's canonical form, which page tokens are tied to.
func (f *filter) String() string {
	terms := make([]aipfilter.Term, len(f.terms))
	for i, t := range f.terms {
		terms[i] = t.Term
	}
	return aipfilter.String(terms)
}

// orList writes {a, b, c} as "a, b or c".
func orList(ops []string) string {
	return strings.Join(ops[:len(ops)-1], ", ") + " or " + ops[len(ops)-1]
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
	switch t.Field {
	case "time":
		c := r.GetTime().AsTime().Compare(t.at)
		switch t.Op {
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
	return (got == t.Value) == (t.Op == "=")
}

func filterErr(format string, args ...any) error {
	return &FieldError{Field: "filter", Reason: fmt.Sprintf(format, args...)}
}
