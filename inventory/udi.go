package inventory

import (
	"fmt"
	"strings"

	"github.com/medfleet/medfleet/inventory/udi"
	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// ModelResolver finds the catalogue model of a GS1 device identifier
// (GTIN-14): the model string devices of it report, their manufacturer and
// profile.
type ModelResolver func(di string) (model, manufacturer, profile string, ok bool)

// SetModelResolver makes devices created or changed with a UDI belong to
// the catalogue model of its device identifier. Call it before serving.
func (inv *Inventory) SetModelResolver(fn ModelResolver) { inv.modelOf = fn }

// fromUDI parses a device's UDI into its carrier, writes the UDI back in its
// canonical human-readable form, and fills in what the UDI says and the
// device leaves empty: the serial number, and the model (with its
// manufacturer and profile) that the device identifier belongs to. A UDI
// that contradicts the device's serial or model is refused.
func (inv *Inventory) fromUDI(d *pb.Device) error {
	d.UdiCarrier = nil
	if strings.TrimSpace(d.GetUdi()) == "" {
		d.Udi = ""
		return nil
	}
	u, err := udi.Parse(d.GetUdi())
	if err != nil {
		return &FieldError{Field: "device.udi", Reason: strings.TrimPrefix(err.Error(), "udi: ")}
	}
	d.Udi, d.UdiCarrier = u.HRF(), Carrier(u)
	switch {
	case u.Serial == "":
	case d.GetSerial() == "":
		d.Serial = u.Serial
	case d.GetSerial() != u.Serial:
		return &FieldError{Field: "device.udi", Reason: fmt.Sprintf("its serial (21) %q is not device.serial %q", u.Serial, d.GetSerial())}
	}
	if inv.modelOf == nil {
		return nil
	}
	model, manufacturer, profile, ok := inv.modelOf(u.DI)
	if !ok {
		return nil
	}
	switch d.GetModel() {
	case "":
		d.Model = model
	case model:
	default:
		return &FieldError{Field: "device.udi", Reason: fmt.Sprintf("device identifier %s is model %q in the catalogue, not %q", u.DI, model, d.GetModel())}
	}
	if d.GetManufacturer() == "" {
		d.Manufacturer = manufacturer
	}
	if d.GetProfile() == "" {
		d.Profile = profile
	}
	return nil
}

// Carrier is the UdiCarrier of a parsed UDI.
func Carrier(u udi.UDI) *pb.UdiCarrier {
	return &pb.UdiCarrier{
		DeviceIdentifier: u.DI,
		Issuer:           "GS1",
		Lot:              u.Lot,
		Serial:           u.Serial,
		ManufactureDate:  u.ManufactureDate.String(),
		ExpiryDate:       u.ExpiryDate.String(),
		CarrierHrf:       u.HRF(),
	}
}
