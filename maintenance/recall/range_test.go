package recall

import "testing"

func TestRangeContains(t *testing.T) {
	tests := []struct {
		name string
		r    Range
		v    string
		want bool
	}{
		{"inside numeric range", span("12580050", "12580099"), "12580077", true},
		{"lower bound", span("12580050", "12580099"), "12580050", true},
		{"upper bound", span("12580050", "12580099"), "12580099", true},
		{"below", span("12580050", "12580099"), "12580049", false},
		{"above", span("12580050", "12580099"), "12580100", false},
		{"prefix inside", span("A1000", "A1999"), "A1500", true},
		{"prefix case-insensitive", span("A1000", "A1999"), "a1500", true},
		{"other prefix", span("A1000", "A1999"), "B1500", false},
		{"no prefix against prefix", span("A1000", "A1999"), "1500", false},
		{"letters inside the prefix", span("2204A001", "2204A250"), "2204A100", true},
		{"letters inside, other prefix", span("2204A001", "2204A250"), "2205A100", false},
		{"different digit counts", span("1", "100"), "050", true},
		{"different digit counts above", span("1", "100"), "0101", false},
		{"longer number is larger", span("900", "999"), "1000", false},
		{"numbers beyond int64", span("123456789012345678901", "123456789012345678999"), "123456789012345678950", true},
		{"punctuation in the prefix", span("NIS-0101", "NIS-0148"), "nis0120", true},
		{"reversed ends", span("4510", "4505"), "4507", true},
		{"single value", one("4505"), "4505", true},
		{"single value with leading zeros", one("4505"), "04505", true},
		{"single value other", one("4505"), "4506", false},
		{"single value trailing letter", one("49349Q"), "49349q", true},
		{"single value trailing letter other", one("49349Q"), "49350Q", false},
		{"letter suffix is not a number", one("4505"), "4505A", false},
		{"empty value", span("1", "9"), "", false},
		{"blank value", one("4505"), "  ", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.r.Contains(tc.v); got != tc.want {
				t.Errorf("%v.Contains(%q) = %v, want %v", tc.r, tc.v, got, tc.want)
			}
		})
	}
}

func TestRangeString(t *testing.T) {
	for _, tc := range []struct {
		r    Range
		want string
	}{
		{span("12580050", "12580099"), "12580050-12580099"},
		{one("12580120"), "12580120"},
	} {
		if got := tc.r.String(); got != tc.want {
			t.Errorf("%#v.String() = %q, want %q", tc.r, got, tc.want)
		}
	}
}
