package udi

import (
	"fmt"
	"time"
)

// Date is a GS1 YYMMDD date resolved to a full year. Day 0 means the label
// gave no day (GS1 allows DD=00).
type Date struct{ Year, Month, Day int }

// IsZero reports whether d is the zero Date, which stands for no date.
func (d Date) IsZero() bool { return d == Date{} }

// String is "2014-12-31", "2014-12" when Day is 0, and "" when d is zero.
func (d Date) String() string {
	switch {
	case d.IsZero():
		return ""
	case d.Day == 0:
		return fmt.Sprintf("%04d-%02d", d.Year, d.Month)
	default:
		return fmt.Sprintf("%04d-%02d-%02d", d.Year, d.Month, d.Day)
	}
}

// Time returns the date as a UTC time; with Day 0, the last day of the
// month (GS1 rule for expiry). The zero Date gives the zero time.
func (d Date) Time() time.Time {
	switch {
	case d.IsZero():
		return time.Time{}
	case d.Day == 0:
		// Day 0 of the next month is the last day of this one.
		return time.Date(d.Year, time.Month(d.Month)+1, 0, 0, 0, 0, 0, time.UTC)
	default:
		return time.Date(d.Year, time.Month(d.Month), d.Day, 0, 0, 0, 0, time.UTC)
	}
}

// yymmdd is d as GS1 writes it, "" for the zero Date.
func (d Date) yymmdd() string {
	if d.IsZero() {
		return ""
	}
	return fmt.Sprintf("%02d%02d%02d", d.Year%100, d.Month, d.Day)
}

// parseDate reads YYMMDD, six ASCII digits, resolving the century against
// now. dayZero says whether DD may be 00. It returns a reason when the date
// does not exist.
func parseDate(yymmdd string, now time.Time, dayZero bool) (Date, string) {
	yy, mm, dd := atoi2(yymmdd[0:2]), atoi2(yymmdd[2:4]), atoi2(yymmdd[4:6])
	if mm < 1 || mm > 12 {
		return Date{}, fmt.Sprintf("month %02d is not 01-12", mm)
	}
	d := Date{Year: fullYear(yy, now), Month: mm, Day: dd}
	switch {
	case dd == 0 && !dayZero:
		return Date{}, "day 00 is not allowed here"
	case dd > daysIn(d.Year, mm):
		return Date{}, fmt.Sprintf("day %d is not in %s %d", dd, time.Month(mm), d.Year)
	}
	return d, ""
}

// fullYear resolves a two-digit year by the rule of GS1 General
// Specifications 7.12: with C the last two digits of now's year, YY-C from
// 51 to 99 is in the previous century, from -99 to -50 in the next, and
// otherwise in the current one. A label is never more than 49 years ahead
// or 50 behind.
func fullYear(yy int, now time.Time) int {
	c := (now.Year()%100 + 100) % 100
	century := now.Year() - c
	switch diff := yy - c; {
	case diff >= 51:
		century -= 100
	case diff <= -50:
		century += 100
	}
	return century + yy
}

// daysIn is the number of days in the month of the year.
func daysIn(year, month int) int {
	return time.Date(year, time.Month(month)+1, 0, 0, 0, 0, 0, time.UTC).Day()
}
