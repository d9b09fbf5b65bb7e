package coap

import (
	"fmt"
	"regexp"

	"github.com/plgd-dev/go-coap/v3/message"
)

// Resource paths of protocol v1.
const (
	PathCore         = "/.well-known/core"
	PathRegistration = "/rd"
	PathData         = "/dp"
	PathFirmware     = "/fw"
)

// Query parameters.
const (
	QueryEndpoint = "ep" // device id
	QueryLifetime = "lt" // registration lifetime, seconds
	// QueryHeld, on POST /dp, is the seq of the oldest report the device
	// still holds unstored: a server that has not accepted the reports
	// between it and the one sent must not accept this one before them.
	QueryHeld = "held"
)

// Content formats (CoAP Content-Format numbers).
var (
	FormatLinkFormat = message.AppLinkFormat // 40
	FormatJSON       = message.AppJSON       // 50
	FormatCBOR       = message.AppCBOR       // 60
	FormatSenMLJSON  = message.AppSenmlJSON  // 110
	FormatSenMLCBOR  = message.AppSenmlCbor  // 112
)

// OptionTraceparent carries a W3C traceparent. The number is elective (even),
// safe to forward and not part of the cache key, from the experimental range.
const OptionTraceparent message.OptionID = 65020

// Limits on what a device may send.
const (
	// MaxPayload is the largest request body the gateway accepts (4.13 above it).
	MaxPayload = 16 << 10
	// MaxRecords is the largest number of records in one SenML pack.
	MaxRecords = 512
	// MaxStringLen bounds every string field of a registration and every
	// SenML string value.
	MaxStringLen = 128

	// DefaultLifetime is the registration lifetime when `lt` is absent.
	DefaultLifetime = 300
	// MinLifetime and MaxLifetime bound `lt`, in seconds.
	MinLifetime = 10
	MaxLifetime = 86400
)

var (
	deviceIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	profilePattern  = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)
)

// ValidateDeviceID reports whether id can name a device: 1 to 64 characters
// of [A-Za-z0-9._-], starting with a letter or a digit.
func ValidateDeviceID(id string) error {
	if id == "" {
		return fmt.Errorf("required")
	}
	if !deviceIDPattern.MatchString(id) {
		return fmt.Errorf("%q is not a device id: 1-64 characters of [A-Za-z0-9._-], starting with a letter or digit", truncate(id))
	}
	return nil
}

// ValidateProfile reports whether p can name a device profile: a lower-case
// letter followed by up to 31 lower-case letters, digits and dashes.
func ValidateProfile(p string) error {
	if !profilePattern.MatchString(p) {
		return fmt.Errorf("%q is not a profile: a lower-case letter, then up to 31 of [a-z0-9-]", truncate(p))
	}
	return nil
}

// Well-known device profiles. Others of the same shape are accepted.
const (
	ProfileInfusionPump = "infusion-pump"
	ProfileCPAP         = "cpap"
	ProfileRFIDReader   = "rfid-reader"
)

// Clinical states a device reports in the `state` record.
const (
	StateIdle     = "idle"
	StateInUse    = "in_use"
	StateCharging = "charging"
	StateFault    = "fault"
)

// FieldError is a decoding or validation error that names the offending
// field, so that the gateway can answer 4.00 with a useful diagnostic.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Err: fmt.Errorf(format, args...)}
}

func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}
