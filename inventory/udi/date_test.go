package udi

import (
	"testing"
	"time"
)

// now2026 is the clock of the tests: C, the year's last two digits, is 26.
var now2026 = time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC)

func TestFullYear(t *testing.T) {
	for _, tc := range []struct {
		now, yy, want int
	}{
		{2026, 26, 2026},
		{2026, 0, 2000},
		{2026, 75, 2075},
		{2026, 76, 2076}, // YY-C = 50: this century
		{2026, 77, 1977}, // 51: the last
		{2026, 99, 1999},
		{2080, 30, 2130}, // -50: the next
		{2080, 31, 2031}, // -49: this one
		{2080, 99, 2099},
		{2000, 50, 2050},
		{2000, 51, 1951},
		{1999, 49, 2049}, // -50
		{1999, 50, 1950}, // -49
		{1999, 0, 2000},
		{2099, 0, 2100},
		{2100, 99, 2099},
	} {
		now := time.Date(tc.now, 6, 1, 0, 0, 0, 0, time.UTC)
		if got := fullYear(tc.yy, now); got != tc.want {
			t.Errorf("fullYear(%02d, %d) = %d, want %d", tc.yy, tc.now, got, tc.want)
		}
	}
}

func TestDate(t *testing.T) {
	for _, tc := range []struct {
		d      Date
		zero   bool
		str    string
		time   time.Time
		yymmdd string
	}{
		{Date{}, true, "", time.Time{}, ""},
		{Date{2014, 12, 31}, false, "2014-12-31", time.Date(2014, 12, 31, 0, 0, 0, 0, time.UTC), "141231"},
		{Date{2015, 7, 7}, false, "2015-07-07", time.Date(2015, 7, 7, 0, 0, 0, 0, time.UTC), "150707"},
		{Date{2015, 7, 0}, false, "2015-07", time.Date(2015, 7, 31, 0, 0, 0, 0, time.UTC), "150700"},
		{Date{2015, 12, 0}, false, "2015-12", time.Date(2015, 12, 31, 0, 0, 0, 0, time.UTC), "151200"},
		{Date{2024, 2, 0}, false, "2024-02", time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC), "240200"},
		{Date{2023, 2, 0}, false, "2023-02", time.Date(2023, 2, 28, 0, 0, 0, 0, time.UTC), "230200"},
		{Date{2000, 1, 1}, false, "2000-01-01", time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), "000101"},
		{Date{1977, 4, 0}, false, "1977-04", time.Date(1977, 4, 30, 0, 0, 0, 0, time.UTC), "770400"},
	} {
		if got := tc.d.IsZero(); got != tc.zero {
			t.Errorf("%#v.IsZero() = %v, want %v", tc.d, got, tc.zero)
		}
		if got := tc.d.String(); got != tc.str {
			t.Errorf("%#v.String() = %q, want %q", tc.d, got, tc.str)
		}
		if got := tc.d.Time(); !got.Equal(tc.time) || got.Location() != time.UTC {
			t.Errorf("%#v.Time() = %v, want %v", tc.d, got, tc.time)
		}
		if got := tc.d.yymmdd(); got != tc.yymmdd {
			t.Errorf("%#v.yymmdd() = %q, want %q", tc.d, got, tc.yymmdd)
		}
	}
}

func TestParseDate(t *testing.T) {
	for _, tc := range []struct {
		in      string
		dayZero bool
		want    Date
		reason  string
	}{
		{"141231", true, Date{2014, 12, 31}, ""},
		{"150700", true, Date{2015, 7, 0}, ""},
		{"150700", false, Date{}, "day 00 is not allowed here"},
		{"240229", true, Date{2024, 2, 29}, ""},
		{"250229", true, Date{}, "day 29 is not in February 2025"},
		{"000229", true, Date{2000, 2, 29}, ""}, // 2000 is a leap year
		{"151301", true, Date{}, "month 13 is not 01-12"},
		{"150001", true, Date{}, "month 00 is not 01-12"},
		{"991231", true, Date{1999, 12, 31}, ""},
		{"150631", true, Date{}, "day 31 is not in June 2015"},
	} {
		got, reason := parseDate(tc.in, now2026, tc.dayZero)
		if got != tc.want || reason != tc.reason {
			t.Errorf("parseDate(%q, dayZero %v) = %v, %q, want %v, %q", tc.in, tc.dayZero, got, reason, tc.want, tc.reason)
		}
	}
}
