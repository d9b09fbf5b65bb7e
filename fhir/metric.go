package fhir

import (
	"math"
	"strings"
	"time"

	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// Extensions of a DeviceMetric: the latest value the device reported and
// when it reported it. An R4 DeviceMetric describes a measurement and
// carries no value (values are Observations, which the export does not
// serve); without these a client of the export could not read a battery
// level at all.
const (
	ExtLatestValue = "urn:medfleet:extension:latest-value"
	ExtLatestTime  = "urn:medfleet:extension:latest-value-time"
)

// DeviceMetric is a FHIR R4 DeviceMetric.
type DeviceMetric struct {
	ID        string           `json:"id,omitempty"`
	Extension []Extension      `json:"extension,omitempty"`
	Type      CodeableConcept  `json:"type"`
	Unit      *CodeableConcept `json:"unit,omitempty"`
	Source    *Reference       `json:"source,omitempty"`
	// OperationalStatus: on, off, standby or entered-in-error.
	OperationalStatus string `json:"operationalStatus,omitempty"`
	// Category: measurement, setting, calculation or unspecified.
	Category string `json:"category"`
}

func (DeviceMetric) ResourceType() string { return "DeviceMetric" }
func (m DeviceMetric) ResourceID() string { return m.ID }
func (m DeviceMetric) MarshalJSON() ([]byte, error) {
	type metric DeviceMetric
	return marshalResource("DeviceMetric", metric(m))
}

// Metric kinds: what a DeviceMetric measures, the last part of its id.
const (
	MetricUsageHours = UsageHours
	MetricBattery    = "battery"
)

// MetricKinds are the metric kinds in the order a device's metrics are
// listed.
var MetricKinds = []string{MetricUsageHours, MetricBattery}

// MetricID is the DeviceMetric id of a device's metric of a kind: the
// device's Device id and the kind, "pump-0001-battery" (or a shorter form
// of the device id when that is too long; see DeviceID).
func MetricID(device, kind string) string { return encodeID("", device, "-"+kind) }

// ParseMetricID reads a DeviceMetric id: the device and the kind.
func ParseMetricID(id string) (DeviceRef, string, error) {
	for _, kind := range MetricKinds {
		if strings.HasSuffix(id, "-"+kind) {
			key, d, err := decodeID("", id, "-"+kind)
			return DeviceRef{key, d}, kind, err
		}
	}
	return DeviceRef{}, "", errNotOurs
}

// NewDeviceMetrics returns the metrics of a device: its cumulative
// operating hours, and its battery level when it reports one.
func NewDeviceMetrics(d *pb.Device) []*DeviceMetric {
	id := strings.TrimPrefix(d.GetName(), "devices/")
	st := d.GetStatus()
	status := "off"
	if st.GetConnectivity() == pb.Connectivity_CONNECTIVITY_ONLINE {
		status = "on"
	}
	var seen string
	if t := st.GetLastSeenTime(); t != nil {
		seen = t.AsTime().UTC().Format(time.RFC3339)
	}
	metric := func(kind, display, unit string, v float64, q Quantity) *DeviceMetric {
		u := coded(UCUM, unit, unit)
		m := &DeviceMetric{
			ID:                MetricID(id, kind),
			Type:              coded(SystemMetric, kind, display),
			Unit:              &u,
			Source:            &Reference{Reference: "Device/" + DeviceID(id)},
			OperationalStatus: status,
			Category:          "measurement",
		}
		if seen != "" && !math.IsNaN(v) && !math.IsInf(v, 0) {
			m.Extension = []Extension{{URL: ExtLatestValue, ValueQuantity: &q}, {URL: ExtLatestTime, ValueInstant: seen}}
		}
		return m
	}
	h := st.GetUsageSeconds() / 3600
	out := []*DeviceMetric{metric(MetricUsageHours, "Cumulative operating hours", "h", h, hours(h))}
	if st != nil && st.BatteryPercent != nil {
		b := st.GetBatteryPercent()
		out = append(out, metric(MetricBattery, "Battery charge", "%", b, Quantity{Value: b, Unit: "%", System: UCUM, Code: "%"}))
	}
	return out
}
