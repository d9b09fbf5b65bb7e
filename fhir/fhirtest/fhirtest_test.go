package fhirtest

import (
	"strings"
	"testing"
)

// valid are documents of every resource type the schema keeps, as the
// FHIR R4 specification's examples write them (trimmed).
var valid = map[string]string{
	"device": `{"resourceType": "Device", "id": "example", "status": "active",
		"udiCarrier": [{"deviceIdentifier": "09504000059118", "issuer": "http://hl7.org/fhir/NamingSystem/gs1-di",
			"jurisdiction": "http://hl7.org/fhir/NamingSystem/fda-udi", "carrierHRF": "(01)09504000059118(17)141120(10)7654321D(21)10987654d321"}],
		"statusReason": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/device-status-reason", "code": "online"}]}],
		"manufactureDate": "2013-02", "expirationDate": "2014-11-20", "lotNumber": "7654321D",
		"deviceName": [{"name": "FlowMax", "type": "model-name"}],
		"version": [{"type": {"text": "firmware"}, "value": "1.2.3"}],
		"property": [{"type": {"text": "hours"}, "valueQuantity": [{"value": 12.5, "unit": "h", "system": "http://unitsofmeasure.org", "code": "h"}]}],
		"extension": [{"url": "urn:example:x", "valueCode": "soiled"}],
		"location": {"reference": "Location/area-1", "display": "Bed"}}`,
	"location": `{"resourceType": "Location", "id": "ro-1", "status": "active", "name": "Room 1", "mode": "instance",
		"physicalType": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/location-physical-type", "code": "ro"}]},
		"partOf": {"reference": "Location/wa-1"}}`,
	"metric": `{"resourceType": "DeviceMetric", "id": "d-battery", "type": {"text": "battery"}, "category": "measurement",
		"operationalStatus": "on", "source": {"reference": "Device/d"}}`,
	"outcome": `{"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "not-found", "diagnostics": "gone"}]}`,
	"bundle": `{"resourceType": "Bundle", "type": "searchset", "total": 1,
		"link": [{"relation": "self", "url": "http://h/fhir/Location"}],
		"entry": [{"fullUrl": "http://h/fhir/Location/si-1", "search": {"mode": "match"},
			"resource": {"resourceType": "Location", "id": "si-1", "status": "active", "name": "North"}}]}`,
	"capabilities": `{"resourceType": "CapabilityStatement", "status": "active", "date": "2025-01-01", "kind": "instance",
		"fhirVersion": "4.0.1", "format": ["json"], "rest": [{"mode": "server",
		"resource": [{"type": "Device", "interaction": [{"code": "read"}, {"code": "search-type"}],
			"searchParam": [{"name": "udi-di", "type": "string"}]}]}]}`,
}

func TestValidateAccepts(t *testing.T) {
	for name, doc := range valid {
		t.Run(name, func(t *testing.T) {
			if err := Validate([]byte(doc)); err != nil {
				t.Errorf("Validate(%s) = %v, want nil", name, err)
			}
		})
	}
}

// The validator must refuse what the definitions refuse: each document
// here breaks one rule.
func TestValidateRejects(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
		want      string // in the error
	}{
		{"device status not in the required binding", `{"resourceType": "Device", "status": "broken"}`, "status"},
		{"unknown element", `{"resourceType": "Device", "colour": "blue"}`, "colour"},
		{"element of the wrong type", `{"resourceType": "Device", "lotNumber": 42}`, "lotNumber"},
		{"single element as array", `{"resourceType": "Device", "location": [{"reference": "Location/x"}]}`, "location"},
		{"id with an underscore", `{"resourceType": "Device", "id": "pump_1"}`, "id"},
		{"id longer than 64", `{"resourceType": "Device", "id": "` + strings.Repeat("a", 65) + `"}`, "id"},
		{"dateTime without a time zone", `{"resourceType": "Device", "manufactureDate": "2024-01-02T10:00:00"}`, "manufactureDate"},
		{"bad udi entry type", `{"resourceType": "Device", "udiCarrier": [{"entryType": "scanned"}]}`, "entryType"},
		{"device name without its type", `{"resourceType": "Device", "deviceName": [{"name": "x"}]}`, "type"},
		{"location mode", `{"resourceType": "Location", "mode": "instances"}`, "mode"},
		{"location status", `{"resourceType": "Location", "status": "open"}`, "status"},
		{"metric without category", `{"resourceType": "DeviceMetric", "type": {"text": "x"}}`, "category"},
		{"metric operational status", `{"resourceType": "DeviceMetric", "type": {"text": "x"}, "category": "measurement", "operationalStatus": "online"}`, "operationalStatus"},
		{"bundle without type", `{"resourceType": "Bundle"}`, "type"},
		{"bundle type", `{"resourceType": "Bundle", "type": "search"}`, "type"},
		{"bundle link without url", `{"resourceType": "Bundle", "type": "searchset", "link": [{"relation": "self"}]}`, "url"},
		{"bundle of a resource the export does not emit", `{"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": {"resourceType": "Patient"}}]}`, "resource"},
		{"entry resource broken", `{"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": {"resourceType": "Device", "status": "on"}}]}`, "resource"},
		{"outcome without issues", `{"resourceType": "OperationOutcome"}`, "issue"},
		{"issue severity", `{"resourceType": "OperationOutcome", "issue": [{"severity": "bad", "code": "invalid"}]}`, "severity"},
		{"fhirVersion", `{"resourceType": "CapabilityStatement", "status": "active", "date": "2025", "kind": "instance", "fhirVersion": "4.0.2", "format": ["json"]}`, "fhirVersion"},
		{"resource type unknown", `{"resourceType": "Patient"}`, "Patient"},
		{"extension without url", `{"resourceType": "Device", "extension": [{"valueCode": "x"}]}`, "url"},
		{"extension with two values", `{"resourceType": "Device", "extension": [{"url": "urn:x", "valueCode": "x", "valueString": "y"}]}`, "more than one value"},
		{"extension without a value", `{"resourceType": "Device", "extension": [{"url": "urn:x"}]}`, "ext-1"},
		{"empty array", `{"resourceType": "Device", "identifier": []}`, "empty array"},
		{"empty object", `{"resourceType": "Device", "type": {}}`, "empty object"},
		{"empty string", `{"resourceType": "Device", "lotNumber": ""}`, "lotNumber"},
		{"not JSON", `{"resourceType": "Device",`, "JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Validate([]byte(tc.doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate(%s) = %v, want an error naming %q", tc.doc, err, tc.want)
			}
		})
	}
}
