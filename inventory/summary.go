package inventory

import (
	"math"
	"time"
)

var nan = math.NaN()

// Summary is what fleet-wide computations (the maintenance due list) read
// of a device, without the copy that Get makes.
type Summary struct {
	ID, Model, Profile, Site, Firmware string
	CreateTime                         time.Time
	Decommissioned                     bool
	UsageHours                         float64
	LastSeen                           time.Time
	// Battery is NaN when the device reports none.
	Battery float64
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
	var s Summary
	for _, e := range sorted {
		e.mu.Lock()
		spec, st := e.spec, e.status
		s = Summary{ID: e.id, Model: spec.GetModel(), Profile: spec.GetProfile(), Site: spec.GetSite(),
			Firmware: st.GetFirmwareVersion(), CreateTime: spec.GetCreateTime().AsTime(),
			Decommissioned: spec.GetDecommissionTime() != nil, UsageHours: st.GetUsageSeconds() / 3600,
			LastSeen: st.GetLastSeenTime().AsTime(), Battery: nan,
			Labels: spec.GetLabels(), Alarms: st.GetAlarmCounts(), Telemetry: st.GetTelemetry()}
		if st.BatteryPercent != nil {
			s.Battery = st.GetBatteryPercent()
		}
		ok := fn(&s)
		e.mu.Unlock()
		if !ok {
			return
		}
	}
}
