package filter

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The grammar, with spaces, tabs, carriage returns and newlines allowed
// between tokens:
//
//	filter = [ term { "AND" term } ]
//	term   = word op value
//	op     = "=" | "!=" | "<" | "<=" | ">" | ">="
//	value  = word | string
//	word   = 1*( ASCII letter | digit | "." | "_" | "-" | ":" | "/" )
//	string = '"' { byte | escape } '"'
//
// AND is upper case; "and" is a word like any other. In a string every byte
// but " and \ stands for itself, a newline included; an escape is \" or \\,
// or one of Go's (\n, \t, \xff, \u00e9, \U0001f600, \377 ...), so that a
// value written by strconv.Quote reads back as itself.

// Term is one comparison of a filter: Field Op Value.
type Term struct {
	Field  string // a word: profile, labels.unit, time
	Op     string // =, !=, <, <=, > or >=
	Value  string // unescaped when Quoted
	Quoted bool   // Value was written as a string ("cpap"), not a word (cpap)
	Offset int    // where Field starts in the filter, in bytes
}

// SyntaxError is a filter that does not follow the grammar.
type SyntaxError struct {
	Offset int    // where in the filter, in bytes
	Msg    string // what is wrong there: "expected AND", "unterminated string"
	Got    string // what stands there instead, when that helps: `"OR"`
}

func (e *SyntaxError) Error() string {
	if e.Got == "" {
		return fmt.Sprintf("%s at offset %d", e.Msg, e.Offset)
	}
	return fmt.Sprintf("%s at offset %d, got %s", e.Msg, e.Offset, e.Got)
}

// Parse reads a filter into its terms, in order; an empty or blank filter
// has none. Errors are *SyntaxError.
func Parse(s string) ([]Term, error) {
	toks, err := lex(s)
	if err != nil {
		return nil, err
	}
	at := func(i int) token {
		if i < len(toks) {
			return toks[i]
		}
		return token{kind: tokEnd, off: len(s)}
	}
	var terms []Term
	for i := 0; i < len(toks); i += 3 {
		if len(terms) > 0 {
			if t := toks[i]; t.kind != tokWord || t.text != "AND" {
				return nil, unexpected("expected AND", t)
			}
			i++
		}
		field, op, val := at(i), at(i+1), at(i+2)
		switch {
		case field.kind != tokWord:
			return nil, unexpected("expected a field name", field)
		case op.kind != tokOp:
			return nil, unexpected("expected an operator after "+field.text, op)
		case val.kind != tokWord && val.kind != tokString:
			return nil, unexpected("expected a value after "+field.text+" "+op.text, val)
		}
		terms = append(terms, Term{Field: field.text, Op: op.text, Value: val.text, Quoted: val.kind == tokString, Offset: field.off})
	}
	return terms, nil
}

// String writes terms in the canonical form: field op "value", the value
// quoted by strconv.Quote, joined by " AND ". Parse reads it back to the
// same fields, operators and values, all Quoted.
func String(terms []Term) string {
	var b []byte
	for i, t := range terms {
		if i > 0 {
			b = append(b, " AND "...)
		}
		b = append(b, t.Field...)
		b = append(b, ' ')
		b = append(b, t.Op...)
		b = append(b, ' ')
		b = strconv.AppendQuote(b, t.Value)
	}
	return string(b)
}

func unexpected(msg string, t token) *SyntaxError {
	got := "the end of the filter"
	if t.kind != tokEnd {
		got = strconv.Quote(t.text)
	}
	return &SyntaxError{Offset: t.off, Msg: msg, Got: got}
}

type tokKind int

const (
	tokWord tokKind = iota
	tokString
	tokOp
	tokEnd // past the last token
)

type token struct {
	kind tokKind
	text string // a string's value, unescaped
	off  int
}

func lex(s string) ([]token, error) {
	var toks []token
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case strings.IndexByte("=!<>", c) >= 0:
			op := s[i : i+1]
			if c != '=' && i+1 < len(s) && s[i+1] == '=' {
				op = s[i : i+2]
			}
			if op == "!" {
				return nil, &SyntaxError{Offset: i, Msg: "expected !=", Got: `"!"`}
			}
			toks = append(toks, token{tokOp, op, i})
			i += len(op)
		case c == '"':
			v, end, err := unquote(s, i)
			if err != nil {
				return nil, err
			}
			toks = append(toks, token{tokString, v, i})
			i = end
		case isWordByte(c):
			j := i
			for j < len(s) && isWordByte(s[j]) {
				j++
			}
			toks = append(toks, token{tokWord, s[i:j], i})
			i = j
		default:
			r, _ := utf8.DecodeRuneInString(s[i:])
			return nil, &SyntaxError{Offset: i, Msg: fmt.Sprintf("unexpected %q", string(r))}
		}
	}
	return toks, nil
}

// unquote reads the string whose opening quote is s[start], returning its
// value and the offset just past its closing quote.
func unquote(s string, start int) (string, int, error) {
	var b []byte
	for i := start + 1; i < len(s); {
		switch c := s[i]; {
		case c == '"':
			return string(b), i + 1, nil
		case c != '\\':
			b = append(b, c)
			i++
		case i+1 == len(s):
			i++ // a \ that ends the filter escapes nothing: unterminated
		default:
			r, multibyte, rest, err := strconv.UnquoteChar(s[i:], '"')
			if err != nil {
				return "", 0, &SyntaxError{Offset: i, Msg: "bad escape in a string"}
			}
			if multibyte {
				b = utf8.AppendRune(b, r)
			} else {
				b = append(b, byte(r)) // \xff is the byte ff, not U+00FF
			}
			i = len(s) - len(rest)
		}
	}
	return "", 0, &SyntaxError{Offset: start, Msg: "unterminated string"}
}

func isWordByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("._-:/", c) >= 0
}
