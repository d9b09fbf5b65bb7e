package coap

import (
	"bytes"
	"encoding/json"
	"fmt"
	"unicode/utf8"

	"github.com/plgd-dev/go-coap/v3/message"
)

// Registration is the payload of POST /rd (all of it) and of POST /rd/{device}
// (only what changed): a map with text keys, in CBOR or JSON.
type Registration struct {
	Model    string `cbor:"model,omitempty" json:"model,omitempty"`
	Serial   string `cbor:"serial,omitempty" json:"serial,omitempty"`
	Firmware string `cbor:"fw,omitempty" json:"fw,omitempty"`
	Profile  string `cbor:"profile,omitempty" json:"profile,omitempty"`
	UDI      string `cbor:"udi,omitempty" json:"udi,omitempty"`
}

// DecodeRegistration decodes and checks a registration map. Unknown keys are
// ignored so that later protocol versions can add some.
func DecodeRegistration(format message.MediaType, data []byte) (*Registration, error) {
	var reg Registration
	if len(data) == 0 {
		return &reg, nil
	}
	switch format {
	case FormatCBOR:
		if err := cborDec.Unmarshal(data, &reg); err != nil {
			return nil, &FieldError{Field: "payload", Err: fmt.Errorf("not a CBOR registration map: %w", err)}
		}
	case FormatJSON:
		dec := json.NewDecoder(bytes.NewReader(data))
		if err := dec.Decode(&reg); err != nil {
			return nil, &FieldError{Field: "payload", Err: fmt.Errorf("not a JSON registration map: %w", err)}
		}
		if dec.More() {
			return nil, fieldErr("payload", "trailing data after the JSON map")
		}
	default:
		return nil, fieldErr("content-format", "%d is not accepted for a registration: use %d (CBOR) or %d (JSON)", format, FormatCBOR, FormatJSON)
	}
	if err := reg.check(); err != nil {
		return nil, err
	}
	return &reg, nil
}

// Validate checks a complete registration (POST /rd): profile and model are
// required.
func (r *Registration) Validate() error {
	if r.Profile == "" {
		return fieldErr("profile", "required")
	}
	if r.Model == "" {
		return fieldErr("model", "required")
	}
	return r.check()
}

// check validates the fields that are present.
func (r *Registration) check() error {
	for _, f := range []struct{ name, value string }{
		{"model", r.Model}, {"serial", r.Serial}, {"fw", r.Firmware}, {"profile", r.Profile}, {"udi", r.UDI},
	} {
		if len(f.value) > MaxStringLen {
			return fieldErr(f.name, "longer than %d bytes", MaxStringLen)
		}
		if !utf8.ValidString(f.value) {
			return fieldErr(f.name, "not UTF-8")
		}
		for _, c := range f.value {
			if c < 0x20 || c == 0x7f {
				return fieldErr(f.name, "contains a control character")
			}
		}
	}
	if r.Profile != "" {
		if err := ValidateProfile(r.Profile); err != nil {
			return &FieldError{Field: "profile", Err: err}
		}
	}
	return nil
}

// Encode encodes the registration as CBOR (FormatCBOR) or JSON (FormatJSON).
func (r *Registration) Encode(format message.MediaType) ([]byte, error) {
	if format == FormatJSON {
		return json.Marshal(r)
	}
	return cborEnc.Marshal(r)
}
