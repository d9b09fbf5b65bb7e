package udi

import "fmt"

// CheckGTIN reports whether gtin is a GTIN-14: 14 digits whose last is
// the GS1 mod-10 check digit of the first 13. The error, an *Error for
// AI 01, says which digit is wrong or what the check digit should be.
func CheckGTIN(gtin string) error {
	if reason := checkNumeric(gtin, 14, 14); reason != "" {
		return &Error{AI: "01", Value: gtin, Reason: reason}
	}
	if reason := checkKey(gtin); reason != "" {
		return &Error{AI: "01", Value: gtin, Reason: reason}
	}
	return nil
}

// GTINCheckDigit returns the check digit character ('0' to '9') that
// completes the 13 digits first13 into a GTIN-14.
func GTINCheckDigit(first13 string) (byte, error) {
	if reason := checkNumeric(first13, 13, 13); reason != "" {
		return 0, &Error{AI: "01", Value: first13, Reason: "first 13 digits of a GTIN: " + reason}
	}
	return checkDigit(first13), nil
}

// checkDigit computes the GS1 mod-10 check digit of digits, which must all
// be ASCII digits (GS1 General Specifications 7.9.1): from the right,
// weights 3, 1, 3, ... and the digit that brings the sum to a multiple of 10.
func checkDigit(digits string) byte {
	sum, weight := 0, 3
	for i := len(digits) - 1; i >= 0; i-- {
		sum += int(digits[i]-'0') * weight
		weight = 4 - weight
	}
	return byte('0' + (10-sum%10)%10)
}

// checkKey checks the last digit of key, a string of digits, as the check
// digit of the others; it returns a reason when it is wrong.
func checkKey(key string) string {
	last := len(key) - 1
	if want := checkDigit(key[:last]); key[last] != want {
		return fmt.Sprintf("check digit %c, want %c", key[last], want)
	}
	return ""
}
