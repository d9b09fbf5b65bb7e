package udi

import (
	"testing"
)

// The recognised AIs agree with the GS1 tables the raw form is split by:
// an AI has the number of digits its first two imply, and one with a
// pre-defined length has a value of exactly that length.
func TestSpecsAgreeWithGS1Tables(t *testing.T) {
	for ai, sp := range specs {
		if !isAI(ai) {
			t.Errorf("AI %q is not 2 to 4 digits", ai)
			continue
		}
		if n := aiDigits[ai[:2]]; n != len(ai) {
			t.Errorf("AI %q has %d digits, but AIs starting %q have %d", ai, len(ai), ai[:2], n)
		}
		if sp.min < 1 || sp.min > sp.max {
			t.Errorf("AI %q: length %d to %d", ai, sp.min, sp.max)
		}
		if n := fixedLen(ai); n > 0 && (sp.min != n || sp.max != n) {
			t.Errorf("AI %q: length %d to %d, but its pre-defined length is %d", ai, sp.min, sp.max, n)
		}
	}
	for _, tc := range []struct {
		ai   string
		want int
	}{
		{"00", 18}, {"01", 14}, {"02", 14}, {"11", 6}, {"17", 6}, {"20", 2}, {"3103", 6}, {"410", 13},
		{"10", 0}, {"21", 0}, {"240", 0}, {"30", 0}, {"37", 0}, {"7003", 0}, {"8020", 0}, {"90", 0},
	} {
		if got := fixedLen(tc.ai); got != tc.want {
			t.Errorf("fixedLen(%q) = %d, want %d", tc.ai, got, tc.want)
		}
	}
}

func TestCheckAlpha(t *testing.T) {
	// The 82 characters of GS1 AI encodable character set 82 pass, every
	// other printable ASCII character fails.
	allowed := 0
	for c := byte(0); c < 128; c++ {
		reason := checkAlpha(string(c), 1, 1)
		if reason == "" {
			allowed++
		}
		isLetterOrDigit := 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9'
		want := isLetterOrDigit || c < 128 && containsByte(cset82, c)
		if (reason == "") != want {
			t.Errorf("checkAlpha(%q) = %q, want allowed %v", c, reason, want)
		}
	}
	if allowed != 82 {
		t.Errorf("%d ASCII characters allowed, want 82", allowed)
	}
}

func containsByte(s string, c byte) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return true
		}
	}
	return false
}
