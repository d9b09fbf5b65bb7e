package udi

import "fmt"

// Error is why Parse, CheckGTIN or GTINCheckDigit refused their input:
// which element is wrong, where it starts and what is wrong with it.
type Error struct {
	// AI is the application identifier of the element at fault, such as
	// "17"; empty when the problem is not inside a recognised element
	// (an unknown application identifier, a separator, the whole input).
	AI string
	// Value is the element's value as given (with "\(" unescaped), when
	// the problem is in the value.
	Value string
	// Offset is the byte offset in the input of the element's value, or
	// of the problem when AI is empty.
	Offset int
	// Reason says what is wrong, in lower case.
	Reason string
}

// Error reads like `udi: (17) "150732": day 32 is not in July 2015`, or
// `udi: at byte 17: unknown application identifier "99"` when no
// recognised element is at fault.
func (e *Error) Error() string {
	switch {
	case e.AI == "":
		return fmt.Sprintf("udi: at byte %d: %s", e.Offset, e.Reason)
	case e.Value == "":
		return fmt.Sprintf("udi: (%s): %s", e.AI, e.Reason)
	default:
		return fmt.Sprintf("udi: (%s) %q: %s", e.AI, e.Value, e.Reason)
	}
}

// errAt is an error at byte off that no recognised element is responsible for.
func errAt(off int, format string, args ...any) *Error {
	return &Error{Offset: off, Reason: fmt.Sprintf(format, args...)}
}
