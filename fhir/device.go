package fhir

import (
	"math"
	"strings"

	"github.com/medfleet/medfleet/inventory/facility"
	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// Medfleet's identifier systems, code systems and extensions. They are
// URNs, not web addresses: nothing is published at them.
const (
	// SystemDeviceID identifies a device by its Medfleet device id.
	SystemDeviceID = "urn:medfleet:device-id"
	// SystemAssetTag identifies a device by the hospital's asset tag
	// (CMMS equipment number).
	SystemAssetTag = "urn:medfleet:asset-tag"
	// SystemProfile codes a Device.type: the device profile
	// ("infusion-pump", "cpap").
	SystemProfile = "urn:medfleet:device-profile"
	// SystemProperty codes Device.property types; SystemMetric codes
	// DeviceMetric types.
	SystemProperty = "urn:medfleet:device-property"
	SystemMetric   = "urn:medfleet:device-metric"
	// SystemFacility is the prefix of the identifier systems of
	// Locations: urn:medfleet:facility:zone names zones by their facility
	// id, and so on for site, building, floor, unit and room.
	SystemFacility = "urn:medfleet:facility:"

	// ExtAvailability is the clinical availability of a device (valueCode:
	// available, in-use, soiled, in-maintenance, out-of-service,
	// decommissioned). FHIR has no element for it.
	ExtAvailability = "urn:medfleet:extension:availability"
	// ExtRiskClass is the clinical risk class clinical engineering gives a
	// device (valueCode: low, medium, high, life-support).
	ExtRiskClass = "urn:medfleet:extension:risk-class"
)

// Systems of FHIR and of HL7 terminology the mapping uses.
const (
	SystemDeviceStatus       = "http://hl7.org/fhir/device-status"
	SystemDeviceStatusReason = "http://terminology.hl7.org/CodeSystem/device-status-reason"
	NamingGS1DI              = "http://hl7.org/fhir/NamingSystem/gs1-di"
	NamingFDAUDI             = "http://hl7.org/fhir/NamingSystem/fda-udi"
)

// Device is a FHIR R4 Device.
type Device struct {
	ID           string             `json:"id,omitempty"`
	Meta         *Meta              `json:"meta,omitempty"`
	Extension    []Extension        `json:"extension,omitempty"`
	Identifier   []Identifier       `json:"identifier,omitempty"`
	UDICarrier   []DeviceUDICarrier `json:"udiCarrier,omitempty"`
	Status       string             `json:"status,omitempty"`
	StatusReason []CodeableConcept  `json:"statusReason,omitempty"`
	Manufacturer string             `json:"manufacturer,omitempty"`
	// ManufactureDate and ExpirationDate are FHIR dateTimes: "2024-03"
	// or "2024-03-31" from a UDI.
	ManufactureDate string           `json:"manufactureDate,omitempty"`
	ExpirationDate  string           `json:"expirationDate,omitempty"`
	LotNumber       string           `json:"lotNumber,omitempty"`
	SerialNumber    string           `json:"serialNumber,omitempty"`
	DeviceName      []DeviceName     `json:"deviceName,omitempty"`
	ModelNumber     string           `json:"modelNumber,omitempty"`
	Type            *CodeableConcept `json:"type,omitempty"`
	Version         []DeviceVersion  `json:"version,omitempty"`
	Property        []DeviceProperty `json:"property,omitempty"`
	Location        *Reference       `json:"location,omitempty"`
}

// DeviceUDICarrier is the UDI on a device's label.
type DeviceUDICarrier struct {
	DeviceIdentifier string `json:"deviceIdentifier,omitempty"`
	Issuer           string `json:"issuer,omitempty"`
	Jurisdiction     string `json:"jurisdiction,omitempty"`
	CarrierHRF       string `json:"carrierHRF,omitempty"`
}

// DeviceName is one name of a device; Type is a device-nametype code.
type DeviceName struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// DeviceVersion is the version of a part of a device: its firmware.
type DeviceVersion struct {
	Type  *CodeableConcept `json:"type,omitempty"`
	Value string           `json:"value"`
}

// DeviceProperty is a property of a device with its value.
type DeviceProperty struct {
	Type          CodeableConcept `json:"type"`
	ValueQuantity []Quantity      `json:"valueQuantity,omitempty"`
}

func (Device) ResourceType() string { return "Device" }
func (d Device) ResourceID() string { return d.ID }
func (d Device) MarshalJSON() ([]byte, error) {
	type device Device
	return marshalResource("Device", device(d))
}

// Device status codes.
const (
	StatusActive   = "active"
	StatusInactive = "inactive"
)

// UsageHours is the code of cumulative operating hours, as a Device
// property and as a DeviceMetric type.
const UsageHours = "usage-hours"

// NewDevice maps a device to a Device. at is the zone the device is
// located in, nil when it has none (or it is not in the facility).
func NewDevice(d *pb.Device, at *facility.Zone) *Device {
	id := strings.TrimPrefix(d.GetName(), "devices/")
	st := d.GetStatus()
	out := &Device{
		ID:           DeviceID(id),
		Status:       deviceStatus(d),
		Manufacturer: d.GetManufacturer(),
		ModelNumber:  d.GetModel(),
		SerialNumber: d.GetSerial(),
	}
	if a := availability(d); a != "" {
		out.Extension = append(out.Extension, Extension{URL: ExtAvailability, ValueCode: a})
	}
	if r := riskClass(d.GetRiskClass()); r != "" {
		out.Extension = append(out.Extension, Extension{URL: ExtRiskClass, ValueCode: r})
	}
	if t := d.GetAssetTag(); t != "" {
		out.Identifier = append(out.Identifier, Identifier{Type: &CodeableConcept{Text: "Asset tag"}, System: SystemAssetTag, Value: t})
	}
	out.Identifier = append(out.Identifier, Identifier{Type: &CodeableConcept{Text: "Medfleet device id"}, System: SystemDeviceID, Value: id})
	if u := d.GetUdiCarrier(); u.GetDeviceIdentifier() != "" {
		c := DeviceUDICarrier{DeviceIdentifier: u.GetDeviceIdentifier(), CarrierHRF: u.GetCarrierHrf()}
		if u.GetIssuer() == "GS1" {
			c.Issuer, c.Jurisdiction = NamingGS1DI, NamingFDAUDI
		}
		out.UDICarrier = []DeviceUDICarrier{c}
		out.LotNumber = u.GetLot()
		out.ManufactureDate, out.ExpirationDate = u.GetManufactureDate(), u.GetExpiryDate()
		if out.SerialNumber == "" {
			out.SerialNumber = u.GetSerial()
		}
	}
	switch st.GetConnectivity() {
	case pb.Connectivity_CONNECTIVITY_ONLINE:
		out.StatusReason = []CodeableConcept{coded(SystemDeviceStatusReason, "online", "Online")}
	case pb.Connectivity_CONNECTIVITY_OFFLINE:
		out.StatusReason = []CodeableConcept{coded(SystemDeviceStatusReason, "offline", "Offline")}
	}
	if m := d.GetModel(); m != "" {
		out.DeviceName = []DeviceName{{Name: m, Type: "model-name"}}
	}
	if p := d.GetProfile(); p != "" {
		t := coded(SystemProfile, p, p)
		out.Type = &t
	}
	if fw := st.GetFirmwareVersion(); fw != "" {
		out.Version = []DeviceVersion{{Type: &CodeableConcept{Text: "firmware"}, Value: fw}}
	}
	if h := st.GetUsageSeconds() / 3600; h > 0 && !math.IsInf(h, 0) {
		out.Property = []DeviceProperty{{
			Type:          coded(SystemProperty, UsageHours, "Cumulative operating hours"),
			ValueQuantity: []Quantity{hours(h)},
		}}
	}
	if at != nil {
		out.Location = &Reference{Reference: "Location/" + LocationID(LevelZone, at.ID), Display: at.Name}
	}
	return out
}

// deviceStatus is active for a device in service, inactive for one out
// of service or decommissioned.
func deviceStatus(d *pb.Device) string {
	if d.GetDecommissionTime() != nil || d.GetStatus().GetAvailability() == pb.Availability_AVAILABILITY_OUT_OF_SERVICE {
		return StatusInactive
	}
	return StatusActive
}

// availability is the device's availability as a code: "in-use".
func availability(d *pb.Device) string {
	a := d.GetStatus().GetAvailability()
	if d.GetDecommissionTime() != nil {
		a = pb.Availability_AVAILABILITY_DECOMMISSIONED
	}
	if a == pb.Availability_AVAILABILITY_UNSPECIFIED {
		return ""
	}
	return enumCode(a.String(), "AVAILABILITY_")
}

func riskClass(r pb.RiskClass) string {
	if r == pb.RiskClass_RISK_CLASS_UNSPECIFIED {
		return ""
	}
	return enumCode(r.String(), "RISK_CLASS_")
}

// enumCode writes a proto enum value name as a FHIR-style code:
// AVAILABILITY_IN_USE is in-use.
func enumCode(name, prefix string) string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(name, prefix)), "_", "-")
}

// hours is a number of hours as a UCUM quantity, to the hundredth (36
// seconds).
func hours(h float64) Quantity {
	return Quantity{Value: math.Round(h*100) / 100, Unit: "h", System: UCUM, Code: "h"}
}
