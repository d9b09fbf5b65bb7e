package coap

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/plgd-dev/go-coap/v3/message"
)

// Desired is the control plane's answer to a data push (2.04 to POST /dp)
// and to a registration (2.01 to POST /rd): what it wants the device to do.
type Desired struct {
	// Seq is the highest report sequence number the server has accepted.
	// A device that lost its own count continues above it.
	Seq uint64 `cbor:"seq" json:"seq"`
	// Stored, when present, is the highest sequence number the server has
	// stored durably; the reports between it and Seq are accepted but could
	// still be lost with the server's memory. A device keeps them queued,
	// without sending them again, until a later answer says they are
	// stored, and sends them again after any failed exchange. Absent (a
	// server that does not say), every accepted report counts as stored.
	Stored *uint64 `cbor:"stored,omitempty" json:"stored,omitempty"`
	// Interval is the report interval the server wants, in seconds.
	Interval uint32 `cbor:"interval" json:"interval"`
	// ConfigRevision changes whenever the device's configuration does;
	// absent until device configuration exists.
	ConfigRevision uint64 `cbor:"cfg,omitempty" json:"cfg,omitempty"`
	// Firmware, when set, is an image the device should fetch and install.
	Firmware *FirmwareTarget `cbor:"fw,omitempty" json:"fw,omitempty"`
}

// Encode encodes d as CBOR, or JSON when format is FormatJSON.
func (d *Desired) Encode(format message.MediaType) ([]byte, error) {
	if format == FormatJSON {
		return json.Marshal(d)
	}
	return cborEnc.Marshal(d)
}

// DecodeDesired decodes a desired-state map (CBOR or JSON).
func DecodeDesired(format message.MediaType, data []byte) (*Desired, error) {
	var d Desired
	switch format {
	case FormatJSON:
		if err := json.NewDecoder(bytes.NewReader(data)).Decode(&d); err != nil {
			return nil, fmt.Errorf("coap: desired state: %w", err)
		}
	case FormatCBOR:
		if err := cborDec.Unmarshal(data, &d); err != nil {
			return nil, fmt.Errorf("coap: desired state: %w", err)
		}
	default:
		return nil, fmt.Errorf("coap: desired state in content format %d", format)
	}
	return &d, nil
}
