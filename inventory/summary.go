package inventory

import (
	"math"
	"time"

	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

var nan = math.NaN()

// Summary is what fleet-wide computations (the maintenance due list) read
// of a device, without the copy that Get makes.
type Summary struct {
	ID, Model, Profile, Site, Firmware string
	// Manufacturer, Serial, and the UDI's device identifier and lot.
	Manufacturer, Serial, UDIDI, Lot string
	CreateTime                       time.Time
	Decommissioned                   bool
	UsageHours                       float64
	LastSeen                         time.Time
	// Battery is NaN when the device reports none.
	Battery float64
	// Registered is when the device last registered; Online says whether
	// its registration is current.
	Registered time.Time
	Online     bool
	// InUse: the device reports in_use, or people marked it so.
	InUse        bool
	Availability pb.Availability
	// FirmwareState and FirmwareResult are the LwM2M object 5 numbers the
	// device reported last; FirmwareTime is when either changed.
	FirmwareState, FirmwareResult int32
	FirmwareTime                  time.Time
	// Labels, Alarms (counts by code) and Telemetry are the inventory's own
	// maps: valid only during the Range callback, and never to be changed.
	Labels            map[string]string
	Alarms, Telemetry map[string]float64
}

// Range calls fn with a summary of every device, in id order, until fn
// returns false. fn runs with the device locked: it must be quick and must
// not call back into the inventory.
func (inv *Inventory) Range(fn func(s *Summary) bool) {
	inv.mu.RLock()
	sorted := inv.sorted
	inv.mu.RUnlock()
	now := inv.now()
	var s Summary
	for _, e := range sorted {
		e.mu.Lock()
		inv.summarize(e, now, &s)
		ok := fn(&s)
		e.mu.Unlock()
		if !ok {
			return
		}
	}
}

// Lookup calls fn with a summary of one device, under the same rules as
// Range, and reports whether the device exists.
func (inv *Inventory) Lookup(id string, fn func(s *Summary)) bool {
	e, ok := inv.lookup(id)
	if !ok {
		return false
	}
	var s Summary
	e.mu.Lock()
	defer e.mu.Unlock()
	inv.summarize(e, inv.now(), &s)
	fn(&s)
	return true
}

// summarize fills s from e, whose lock is held.
func (inv *Inventory) summarize(e *entry, now time.Time, s *Summary) {
	spec, st := e.spec, e.status
	*s = Summary{ID: e.id, Model: spec.GetModel(), Profile: spec.GetProfile(), Site: spec.GetSite(),
		Manufacturer: spec.GetManufacturer(), Serial: spec.GetSerial(),
		UDIDI: spec.GetUdiCarrier().GetDeviceIdentifier(), Lot: spec.GetUdiCarrier().GetLot(),
		Firmware: st.GetFirmwareVersion(), CreateTime: spec.GetCreateTime().AsTime(),
		Decommissioned: spec.GetDecommissionTime() != nil, UsageHours: st.GetUsageSeconds() / 3600,
		LastSeen: st.GetLastSeenTime().AsTime(), Battery: nan,
		Labels: spec.GetLabels(), Alarms: st.GetAlarmCounts(), Telemetry: st.GetTelemetry(),
		Registered: st.GetRegistrationTime().AsTime(), Online: inv.online(st, now),
		InUse:         st.GetClinicalState() == pb.ClinicalState_CLINICAL_STATE_IN_USE || st.GetAvailability() == pb.Availability_AVAILABILITY_IN_USE,
		Availability:  st.GetAvailability(),
		FirmwareState: st.GetFirmwareUpdateState(), FirmwareResult: st.GetFirmwareUpdateResult(),
		FirmwareTime: st.GetFirmwareUpdateTime().AsTime()}
	if st.BatteryPercent != nil {
		s.Battery = st.GetBatteryPercent()
	}
	if s.Decommissioned {
		s.Availability = pb.Availability_AVAILABILITY_DECOMMISSIONED
	}
}

// Select calls fn with a summary of every device in service that filter
// (AIP-160, as in List) matches, in id order, until fn returns false. The
// rules of Range apply to fn. A bad filter is a *FieldError.
func (inv *Inventory) Select(filter string, fn func(s *Summary) bool) error {
	f, err := ParseFilter(filter)
	if err != nil {
		return err
	}
	inv.mu.RLock()
	sorted := inv.sorted
	inv.mu.RUnlock()
	now := inv.now()
	var s Summary
	for _, e := range sorted {
		e.mu.Lock()
		ok := true
		if e.spec.GetDecommissionTime() == nil && f.match(e.spec, e.status, func() pb.Connectivity { return inv.connectivity(e.status, now) }) {
			inv.summarize(e, now, &s)
			ok = fn(&s)
		}
		e.mu.Unlock()
		if !ok {
			break
		}
	}
	return nil
}
