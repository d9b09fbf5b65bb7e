package audit

import "errors"

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
