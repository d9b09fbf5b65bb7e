package filter

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []Term
		wantErr string // the *SyntaxError's text
	}{
		{name: "empty", in: ""},
		{name: "blank", in: " \t\r\n"},
		{name: "quoted", in: `profile = "cpap"`, want: []Term{{Field: "profile", Op: "=", Value: "cpap", Quoted: true}}},
		{name: "bare", in: `profile=cpap`, want: []Term{{Field: "profile", Op: "=", Value: "cpap"}}},
		{name: "no spaces", in: `a="x"AND b!="y"`, want: []Term{
			{Field: "a", Op: "=", Value: "x", Quoted: true},
			{Field: "b", Op: "!=", Value: "y", Quoted: true, Offset: 9},
		}},
		{name: "every operator", in: "t >= \"1\" AND\tt > \"2\"\r\nAND t <= \"3\" AND t < \"4\" AND t != 5", want: []Term{
			{Field: "t", Op: ">=", Value: "1", Quoted: true},
			{Field: "t", Op: ">", Value: "2", Quoted: true, Offset: 13},
			{Field: "t", Op: "<=", Value: "3", Quoted: true, Offset: 26},
			{Field: "t", Op: "<", Value: "4", Quoted: true, Offset: 39},
			{Field: "t", Op: "!=", Value: "5", Offset: 51},
		}},
		{name: "word bytes", in: `labels.unit_2:x/y-z = a:b/c-D.9`, want: []Term{{Field: "labels.unit_2:x/y-z", Op: "=", Value: "a:b/c-D.9"}}},
		{name: "AND as field and value", in: `AND = AND`, want: []Term{{Field: "AND", Op: "=", Value: "AND"}}},
		{name: "empty string", in: `v = ""`, want: []Term{{Field: "v", Op: "=", Value: "", Quoted: true}}},
		{name: "quote and backslash escapes", in: `v = "say \"hi\" \\ bye"`, want: []Term{{Field: "v", Op: "=", Value: `say "hi" \ bye`, Quoted: true}}},
		{name: "Go escapes", in: `v = "\a\n\t\x41\u00e9\U0001F600\101\xff"`, want: []Term{{Field: "v", Op: "=", Value: "\a\n\tAé😀A\xff", Quoted: true}}},
		{name: "raw bytes", in: "v = \"a\nb\tc\xffé\"", want: []Term{{Field: "v", Op: "=", Value: "a\nb\tc\xffé", Quoted: true}}},
		{name: "operators inside a string", in: `v = "a AND b = (c)"`, want: []Term{{Field: "v", Op: "=", Value: "a AND b = (c)", Quoted: true}}},

		{name: "lower-case and", in: `a = "x" and b = "y"`, wantErr: `expected AND at offset 8, got "and"`},
		{name: "OR", in: `a = "x" OR b = "y"`, wantErr: `expected AND at offset 8, got "OR"`},
		{name: "no AND", in: `a = "x" b = "y"`, wantErr: `expected AND at offset 8, got "b"`},
		{name: "string for AND", in: `a = "x" "AND" b = "y"`, wantErr: `expected AND at offset 8, got "AND"`},
		{name: "trailing AND", in: `a = "x" AND`, wantErr: `expected a field name at offset 11, got the end of the filter`},
		{name: "quoted field", in: `"a" = "x"`, wantErr: `expected a field name at offset 0, got "a"`},
		{name: "no field", in: `= "x"`, wantErr: `expected a field name at offset 0, got "="`},
		{name: "no operator", in: `a "x"`, wantErr: `expected an operator after a at offset 2, got "x"`},
		{name: "field alone", in: `a`, wantErr: `expected an operator after a at offset 1, got the end of the filter`},
		{name: "NOT", in: `NOT a = "x"`, wantErr: `expected an operator after NOT at offset 4, got "a"`},
		{name: "no value", in: `a =`, wantErr: `expected a value after a = at offset 3, got the end of the filter`},
		{name: "==", in: `a == "x"`, wantErr: `expected a value after a = at offset 3, got "="`},
		{name: "stray !", in: `a ! "x"`, wantErr: `expected != at offset 2, got "!"`},
		{name: "! at the end", in: `a !`, wantErr: `expected != at offset 2, got "!"`},
		{name: "unterminated", in: `a = "x`, wantErr: `unterminated string at offset 4`},
		{name: "escaped closing quote", in: `a = "x\"`, wantErr: `unterminated string at offset 4`},
		{name: "backslash at the end", in: `a = "x\`, wantErr: `unterminated string at offset 4`},
		{name: "unknown escape", in: `a = "x\q"`, wantErr: `bad escape in a string at offset 6`},
		{name: "single-quote escape", in: `a = "\'"`, wantErr: `bad escape in a string at offset 5`},
		{name: "short hex escape", in: `a = "\x4"`, wantErr: `bad escape in a string at offset 5`},
		{name: "surrogate escape", in: `a = "\ud800"`, wantErr: `bad escape in a string at offset 5`},
		{name: "parenthesis", in: `(a = "x")`, wantErr: `unexpected "(" at offset 0`},
		{name: "&&", in: `a = "x" && b = "y"`, wantErr: `unexpected "&" at offset 8`},
		{name: "non-ASCII", in: `a → "x"`, wantErr: `unexpected "→" at offset 2`},
		{name: "invalid UTF-8", in: "a = x\xff", wantErr: `unexpected "�" at offset 5`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(tc.in)
			if tc.wantErr != "" {
				var se *SyntaxError
				if !errors.As(err, &se) || se.Error() != tc.wantErr {
					t.Errorf("Parse(%q) = %v, want SyntaxError %s", tc.in, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.in, err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Parse(%q) mismatch (-want +got):\n%s", tc.in, diff)
			}
		})
	}
}

func TestString(t *testing.T) {
	tests := []struct {
		name  string
		terms []Term
		want  string
	}{
		{name: "none", want: ""},
		{name: "bare value quoted", terms: []Term{{Field: "profile", Op: "=", Value: "cpap"}}, want: `profile = "cpap"`},
		{name: "joined by AND", terms: []Term{{Field: "a", Op: "!=", Value: "x"}, {Field: "t", Op: ">=", Value: "2026-11-01T00:00:00Z"}},
			want: `a != "x" AND t >= "2026-11-01T00:00:00Z"`},
		{name: "escaped as by strconv.Quote", terms: []Term{{Field: "v", Op: "=", Value: "say \"hi\" \\ é\n\xff"}}, want: `v = "say \"hi\" \\ é\n\xff"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := String(tc.terms); got != tc.want {
				t.Errorf("String(%v) = %s, want %s", tc.terms, got, tc.want)
			}
		})
	}
}

// comparable strips a term of how it was written: where, and whether quoted.
func comparable(terms []Term) []Term {
	out := make([]Term, len(terms))
	for i, t := range terms {
		out[i] = Term{Field: t.Field, Op: t.Op, Value: t.Value}
	}
	return out
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`profile = "cpap" AND labels.unit != "4-west"`,
		`connectivity = ONLINE AND clinical_state=IN_USE`,
		`actor != "a\"b\\" AND time >= "2026-11-01T00:00:00Z"`,
		`v = "\n\x00\xff\u00e9\U0001F600\377"`, "v = \"\xff\n\"",
		`x = "\"`, `!=`, `a = b AND`, `<<=>=!`, `(a = "b")`, `a = "\`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		terms, err := Parse(s)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) || se.Offset < 0 || se.Offset > len(s) {
				t.Fatalf("Parse(%q) = %v, want a SyntaxError with an offset in [0, %d]", s, err, len(s))
			}
			return
		}
		for _, tm := range terms {
			if !strings.HasPrefix(s[tm.Offset:], tm.Field) {
				t.Fatalf("Parse(%q): term %+v: the filter has %q at its offset", s, tm, s[tm.Offset:])
			}
		}
		// The canonical form reads back to the same terms, and is a fixed point.
		canon := String(terms)
		again, err := Parse(canon)
		if err != nil {
			t.Fatalf("Parse(String(Parse(%q)) = %q): %v", s, canon, err)
		}
		if diff := cmp.Diff(comparable(terms), comparable(again)); diff != "" {
			t.Fatalf("Parse(String(Parse(%q)) = %q) mismatch (-first +again):\n%s", s, canon, diff)
		}
		if String(again) != canon {
			t.Fatalf("String(Parse(%q)) = %q, want %q", canon, String(again), canon)
		}
	})
}

func BenchmarkParse(b *testing.B) {
	const s = `profile = "cpap" AND labels.unit != "4-west" AND connectivity = ONLINE`
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(s); err != nil {
			b.Fatal(err)
		}
	}
}
