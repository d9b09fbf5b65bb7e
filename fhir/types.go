package fhir

import (
	"bytes"
	"encoding/json"
)

// Version is the FHIR version the package speaks; MediaType is its JSON
// media type, with the version parameter R4 defines.
const (
	Version   = "4.0.1"
	MediaType = "application/fhir+json; fhirVersion=4.0"
)

// Resource is a resource the export emits.
type Resource interface {
	// ResourceType is the resource's type: "Device".
	ResourceType() string
	// ResourceID is its logical id; "" when it has none.
	ResourceID() string
}

// marshalResource writes v, a resource's fields, as JSON with
// resourceType first.
func marshalResource(resourceType string, v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	buf.Grow(len(b) + len(resourceType) + 20)
	buf.WriteString(`{"resourceType":"`)
	buf.WriteString(resourceType)
	buf.WriteByte('"')
	if len(b) > 2 { // not {}
		buf.WriteByte(',')
	}
	buf.Write(b[1:])
	return buf.Bytes(), nil
}

// Meta is a resource's metadata.
type Meta struct {
	// LastUpdated is an instant: RFC 3339 with seconds and a zone.
	LastUpdated string   `json:"lastUpdated,omitempty"`
	Profile     []string `json:"profile,omitempty"`
}

// Coding is a code from a code system.
type Coding struct {
	System  string `json:"system,omitempty"`
	Code    string `json:"code,omitempty"`
	Display string `json:"display,omitempty"`
}

// CodeableConcept is a concept as codes and text.
type CodeableConcept struct {
	Coding []Coding `json:"coding,omitempty"`
	Text   string   `json:"text,omitempty"`
}

// Identifier is a business identifier: a value in a system.
type Identifier struct {
	Use    string           `json:"use,omitempty"`
	Type   *CodeableConcept `json:"type,omitempty"`
	System string           `json:"system,omitempty"`
	Value  string           `json:"value,omitempty"`
}

// Reference points to another resource: "Location/area-4w-401-bed".
type Reference struct {
	Reference string `json:"reference,omitempty"`
	Display   string `json:"display,omitempty"`
}

// Quantity is a measured amount, with its unit in UCUM when System says so.
type Quantity struct {
	Value  float64 `json:"value"`
	Unit   string  `json:"unit,omitempty"`
	System string  `json:"system,omitempty"`
	Code   string  `json:"code,omitempty"`
}

// Extension is a value the base resource has no element for, defined by
// URL. Exactly one value is set.
type Extension struct {
	URL           string    `json:"url"`
	ValueCode     string    `json:"valueCode,omitempty"`
	ValueInstant  string    `json:"valueInstant,omitempty"`
	ValueQuantity *Quantity `json:"valueQuantity,omitempty"`
}

// UCUM is the system of units of Quantity and of units as codes.
const UCUM = "http://unitsofmeasure.org"

// coded is a CodeableConcept of one code, with display as its text.
func coded(system, code, display string) CodeableConcept {
	return CodeableConcept{Coding: []Coding{{System: system, Code: code, Display: display}}, Text: display}
}
