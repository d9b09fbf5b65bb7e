package coap

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/fxamacker/cbor/v2"
	"github.com/plgd-dev/go-coap/v3/message"
)

// Record is one resolved SenML record (RFC 8428): base name, base time, base
// unit and base value already applied. Exactly one of Value, StringValue and
// BoolValue is set.
type Record struct {
	Name        string
	Unit        string
	Time        float64
	Value       *float64
	StringValue *string
	BoolValue   *bool
}

// Pack is a resolved SenML pack.
type Pack []Record

// senmlCBOR is a record as SenML-CBOR encodes it: integer labels.
type senmlCBOR struct {
	BaseName    string   `cbor:"-2,keyasint,omitempty"`
	BaseTime    float64  `cbor:"-3,keyasint,omitempty"`
	BaseUnit    string   `cbor:"-4,keyasint,omitempty"`
	BaseValue   *float64 `cbor:"-5,keyasint,omitempty"`
	Name        string   `cbor:"0,keyasint,omitempty"`
	Unit        string   `cbor:"1,keyasint,omitempty"`
	Value       *float64 `cbor:"2,keyasint,omitempty"`
	StringValue *string  `cbor:"3,keyasint,omitempty"`
	BoolValue   *bool    `cbor:"4,keyasint,omitempty"`
	Sum         *float64 `cbor:"5,keyasint,omitempty"`
	Time        float64  `cbor:"6,keyasint,omitempty"`
	DataValue   []byte   `cbor:"8,keyasint,omitempty"`
}

// senmlJSON is a record as SenML-JSON encodes it: string labels.
type senmlJSON struct {
	BaseName    string   `json:"bn,omitempty"`
	BaseTime    float64  `json:"bt,omitempty"`
	BaseUnit    string   `json:"bu,omitempty"`
	BaseValue   *float64 `json:"bv,omitempty"`
	Name        string   `json:"n,omitempty"`
	Unit        string   `json:"u,omitempty"`
	Value       *float64 `json:"v,omitempty"`
	StringValue *string  `json:"vs,omitempty"`
	BoolValue   *bool    `json:"vb,omitempty"`
	Sum         *float64 `json:"s,omitempty"`
	Time        float64  `json:"t,omitempty"`
	DataValue   *string  `json:"vd,omitempty"`
}

var (
	// cborDec refuses duplicate map keys and bounds every container, so a
	// hostile payload cannot make the decoder allocate without limit.
	cborDec = mustDecMode(cbor.DecOptions{
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		MaxNestedLevels:  4,
		MaxArrayElements: MaxRecords,
		MaxMapPairs:      64,
		IndefLength:      cbor.IndefLengthAllowed,
		UTF8:             cbor.UTF8RejectInvalid,
	})
	// Shortest lossless floats: most values fit in 3 or 5 bytes rather than 9.
	cborEnc = mustEncMode(cbor.EncOptions{ShortestFloat: cbor.ShortestFloat16})
)

func mustDecMode(o cbor.DecOptions) cbor.DecMode {
	m, err := o.DecMode()
	if err != nil {
		panic(err)
	}
	return m
}

func mustEncMode(o cbor.EncOptions) cbor.EncMode {
	m, err := o.EncMode()
	if err != nil {
		panic(err)
	}
	return m
}

// DecodePack decodes a SenML pack in the given content format (SenML-CBOR or
// SenML-JSON) and resolves its base fields.
func DecodePack(format message.MediaType, data []byte) (Pack, error) {
	if len(data) == 0 {
		return nil, fieldErr("payload", "empty SenML pack")
	}
	switch format {
	case FormatSenMLCBOR:
		var raw []senmlCBOR
		if err := cborDec.Unmarshal(data, &raw); err != nil {
			return nil, &FieldError{Field: "payload", Err: fmt.Errorf("not a SenML-CBOR pack: %w", err)}
		}
		recs := make([]senmlJSON, len(raw))
		for i, r := range raw {
			recs[i] = senmlJSON{
				BaseName: r.BaseName, BaseTime: r.BaseTime, BaseUnit: r.BaseUnit, BaseValue: r.BaseValue,
				Name: r.Name, Unit: r.Unit, Value: r.Value, StringValue: r.StringValue, BoolValue: r.BoolValue,
				Sum: r.Sum, Time: r.Time,
			}
			if r.DataValue != nil {
				s := ""
				recs[i].DataValue = &s
			}
		}
		return resolve(recs)
	case FormatSenMLJSON:
		dec := json.NewDecoder(bytes.NewReader(data))
		var raw []senmlJSON
		if err := dec.Decode(&raw); err != nil {
			return nil, &FieldError{Field: "payload", Err: fmt.Errorf("not a SenML-JSON pack: %w", err)}
		}
		if dec.More() {
			return nil, fieldErr("payload", "trailing data after the SenML-JSON pack")
		}
		if len(raw) > MaxRecords {
			return nil, fieldErr("payload", "%d records, at most %d", len(raw), MaxRecords)
		}
		return resolve(raw)
	default:
		return nil, fieldErr("content-format", "%d is not a SenML format: use %d (SenML-CBOR) or %d (SenML-JSON)", format, FormatSenMLCBOR, FormatSenMLJSON)
	}
}

// resolve applies base fields (RFC 8428 section 4.6) and checks each record.
func resolve(raw []senmlJSON) (Pack, error) {
	if len(raw) == 0 {
		return nil, fieldErr("payload", "empty SenML pack")
	}
	pack := make(Pack, 0, len(raw))
	var baseName, baseUnit string
	var baseTime, baseValue float64
	for i, r := range raw {
		if r.BaseName != "" {
			baseName = r.BaseName
		}
		if r.BaseTime != 0 {
			baseTime = r.BaseTime
		}
		if r.BaseUnit != "" {
			baseUnit = r.BaseUnit
		}
		if r.BaseValue != nil {
			baseValue = *r.BaseValue
		}
		rec := Record{Name: baseName + r.Name, Unit: r.Unit, Time: baseTime + r.Time}
		if rec.Unit == "" {
			rec.Unit = baseUnit
		}
		if rec.Name == "" {
			return nil, fieldErr(fmt.Sprintf("record[%d]", i), "no name")
		}
		if !validName(rec.Name) {
			return nil, fieldErr(fmt.Sprintf("record[%d]", i), "bad name %q", truncate(rec.Name))
		}
		// The field's name is built only when there is an error to report:
		// this loop runs for every record of every report.
		field := recordField{i, rec.Name}
		n := 0
		if r.Value != nil {
			v := baseValue + *r.Value
			rec.Value = &v
			n++
		}
		if r.StringValue != nil {
			if len(*r.StringValue) > MaxStringLen {
				return nil, fieldErr(field.String(), "string value longer than %d bytes", MaxStringLen)
			}
			rec.StringValue = r.StringValue
			n++
		}
		if r.BoolValue != nil {
			rec.BoolValue = r.BoolValue
			n++
		}
		if r.DataValue != nil {
			return nil, fieldErr(field.String(), "data values (vd) are not accepted")
		}
		if r.Sum != nil {
			return nil, fieldErr(field.String(), "sums (s) are not accepted")
		}
		// An RFID sighting is the one record that carries two values: the tag
		// EPC in vs and the RSSI in v (protocol v1 fixes this shape).
		sighting := n == 2 && rec.Value != nil && rec.StringValue != nil && strings.HasPrefix(rec.Name, PrefixRFID)
		if n != 1 && !sighting {
			return nil, fieldErr(field.String(), "want exactly one of v, vs, vb; have %d", n)
		}
		if rec.Value != nil && (math.IsNaN(*rec.Value) || math.IsInf(*rec.Value, 0)) {
			return nil, fieldErr(field.String(), "value is not a finite number")
		}
		pack = append(pack, rec)
	}
	return pack, nil
}

// recordField names a record in an error: record[3] "usage".
type recordField struct {
	index int
	name  string
}

func (f recordField) String() string { return fmt.Sprintf("record[%d] %q", f.index, f.name) }

// validName reports whether a resolved SenML name is acceptable (RFC 8428
// section 4.5.1): a letter or digit, then letters, digits and ":./-_", at
// most MaxStringLen bytes.
func validName(name string) bool {
	if len(name) == 0 || len(name) > MaxStringLen {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		alnum := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
		if !alnum && (i == 0 || strings.IndexByte(":./-_", c) < 0) {
			return false
		}
	}
	return true
}

// EncodePack encodes records as SenML-CBOR (FormatSenMLCBOR) or SenML-JSON
// (FormatSenMLJSON), without base fields.
func EncodePack(format message.MediaType, pack Pack) ([]byte, error) {
	switch format {
	case FormatSenMLCBOR:
		raw := make([]senmlCBOR, len(pack))
		for i, r := range pack {
			raw[i] = senmlCBOR{Name: r.Name, Unit: r.Unit, Time: r.Time, Value: r.Value, StringValue: r.StringValue, BoolValue: r.BoolValue}
		}
		return cborEnc.Marshal(raw)
	case FormatSenMLJSON:
		raw := make([]senmlJSON, len(pack))
		for i, r := range pack {
			raw[i] = senmlJSON{Name: r.Name, Unit: r.Unit, Time: r.Time, Value: r.Value, StringValue: r.StringValue, BoolValue: r.BoolValue}
		}
		return json.Marshal(raw)
	default:
		return nil, errors.New("coap: not a SenML format")
	}
}

// Float, String and Bool build records for EncodePack.
func Float(name, unit string, v float64) Record { return Record{Name: name, Unit: unit, Value: &v} }
func String(name, v string) Record              { return Record{Name: name, StringValue: &v} }
func Bool(name string, v bool) Record           { return Record{Name: name, BoolValue: &v} }
