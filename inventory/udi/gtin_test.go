package udi

import (
	"errors"
	"testing"
)

func TestCheckGTIN(t *testing.T) {
	for _, tc := range []struct {
		gtin string
		want string // the error, "" for none
	}{
		{"51022222233336", ""},
		{"04006381333931", ""},
		{"00012345678905", ""},
		{"00000000000000", ""},
		{"51022222233335", `udi: (01) "51022222233335": check digit 5, want 6`},
		{"04006381333930", `udi: (01) "04006381333930": check digit 0, want 1`},
		{"5102222223333", `udi: (01) "5102222223333": 13 digits, want 14`},
		{"510222222333360", `udi: (01) "510222222333360": 15 digits, want 14`},
		{"", `udi: (01): 0 digits, want 14`},
		{"5102222223333X", `udi: (01) "5102222223333X": 'X' is not a digit`},
		{"５1022222233336", `udi: (01) "５1022222233336": '５' is not a digit`},
	} {
		err := CheckGTIN(tc.gtin)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("CheckGTIN(%q) = %v, want nil", tc.gtin, err)
		case tc.want != "" && (err == nil || err.Error() != tc.want):
			t.Errorf("CheckGTIN(%q) = %v, want %s", tc.gtin, err, tc.want)
		case err != nil:
			var e *Error
			if !errors.As(err, &e) || e.AI != "01" || e.Value != tc.gtin {
				t.Errorf("CheckGTIN(%q) = %#v, want an *Error for (01) with the value", tc.gtin, err)
			}
		}
	}
}

func TestGTINCheckDigit(t *testing.T) {
	for _, tc := range []struct {
		first13 string
		want    byte
		err     string
	}{
		{"5102222223333", '6', ""},
		{"0400638133393", '1', ""},
		{"0001234567890", '5', ""},
		{"0000000000000", '0', ""},
		{"9999999999999", '7', ""},
		{"510222222333", 0, `udi: (01) "510222222333": first 13 digits of a GTIN: 12 digits, want 13`},
		{"51022222233336", 0, `udi: (01) "51022222233336": first 13 digits of a GTIN: 14 digits, want 13`},
		{"510222222333a", 0, `udi: (01) "510222222333a": first 13 digits of a GTIN: 'a' is not a digit`},
	} {
		got, err := GTINCheckDigit(tc.first13)
		gotErr := ""
		if err != nil {
			gotErr = err.Error()
		}
		if got != tc.want || gotErr != tc.err {
			t.Errorf("GTINCheckDigit(%q) = %q, %v, want %q, %s", tc.first13, got, err, tc.want, tc.err)
		}
	}
}

// Every GTIN with a check digit GTINCheckDigit computes passes CheckGTIN,
// and no other last digit does.
func TestGTINCheckDigitAgreesWithCheckGTIN(t *testing.T) {
	for _, first13 := range []string{"5102222223333", "0000000000001", "1234567890123", "8712345678906"[:13]} {
		cd, err := GTINCheckDigit(first13)
		if err != nil {
			t.Fatalf("GTINCheckDigit(%q): %v", first13, err)
		}
		for d := byte('0'); d <= '9'; d++ {
			err := CheckGTIN(first13 + string(d))
			if (d == cd) != (err == nil) {
				t.Errorf("CheckGTIN(%q) = %v; the check digit is %c", first13+string(d), err, cd)
			}
		}
	}
}
