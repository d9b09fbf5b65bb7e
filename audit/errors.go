package audit

import (
	"errors"
	"strconv"
)

// Expected outcomes. The server translates them at its boundary.
var (
	// ErrClosed means Run has returned: nothing more can be appended.
	ErrClosed = errors.New("audit: log closed")
	// ErrTooLarge means a record would not fit in an etcd request with
	// others; audited fields are meant to be short.
	ErrTooLarge = errors.New("audit: record too large")
)

// FieldError is a List request that is invalid because of one field, named
// by its path in the request: filter, page_token or page_size.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// BrokenError names the first record at which the chain does not hold.
type BrokenError struct {
	Sequence uint64
	Reason   string
}

func (e *BrokenError) Error() string {
	return "audit record " + strconv.FormatUint(e.Sequence, 10) + ": " + e.Reason
}
