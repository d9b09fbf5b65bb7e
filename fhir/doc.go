// Package fhir is Medfleet's read-only HL7 FHIR R4 (4.0.1) view of the
// fleet: the resources the export emits (Device, DeviceMetric, Location,
// and Bundle, OperationOutcome and CapabilityStatement around them) as Go
// structs that marshal to FHIR JSON, the mapping of devices and of the
// facility to them, and the search parameters the export supports, with
// their matching rules.
//
// # Mapping
//
// A device (medfleet.v1.Device) is a Device; its cumulative operating
// hours, and its battery when it reports one, are DeviceMetrics; the
// facility (site > building > floor > unit > room > zone) is a tree of
// Locations linked by partOf, with the physical types si, bu, lvl, wa, ro
// and area. The docs' "FHIR export" section has the table.
//
// Ids: FHIR ids are 1 to 64 of [A-Za-z0-9.-]. A device's Device id is its
// device id when that is one; DeviceID says how other ids are written.
// Location ids are prefixed by the level, as facility ids are unique per
// level only ("wa-4-west", "area-4w-401-bed").
//
// Medfleet's own identifier systems, code systems and extensions are
// named by URNs under urn:medfleet: (see the constants), so that no
// made-up web address appears in the resources.
//
// # Imports
//
// fhir imports the standard library, the API's protos and
// inventory/facility only: it must not import the server, gRPC or etcd.
// Its test helper, fhirtest, validates JSON against the published R4
// definitions.
package fhir
