package firmware

import (
	"errors"
	"fmt"
)

// Errors of the package, for the server to map.
var (
	ErrNotFound = errors.New("firmware: not found")
	ErrExists   = errors.New("firmware: already exists")
	// ErrInUse: an unfinished rollout uses the artifact.
	ErrInUse = errors.New("firmware: in use")
	// ErrPolicy: the model's policy forbids the version.
	ErrPolicy   = errors.New("firmware: forbidden by policy")
	ErrConflict = errors.New("firmware: changed since it was read")
)

// FieldError names the request field that is wrong.
type FieldError struct {
	Field, Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}
