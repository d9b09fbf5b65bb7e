package inventory

import "errors"

// Expected outcomes. The server translates them to gRPC and CoAP codes.
var (
	ErrNotFound       = errors.New("inventory: device not found")
	ErrAlreadyExists  = errors.New("inventory: device already exists")
	ErrDecommissioned = errors.New("inventory: device is decommissioned")
	// ErrConflict means the etag given is not the device's current one, or a
	// concurrent writer changed the device first.
	ErrConflict = errors.New("inventory: device changed concurrently (etag mismatch)")
	// ErrNotRegistered means the device has no live registration: it must
	// register again (CoAP 4.04 on /rd/{device} and /dp).
	ErrNotRegistered = errors.New("inventory: device has no live registration")
)

// FieldError is a request that is invalid because of one field, named by its
// path in the request (device.labels, filter, page_token).
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }
