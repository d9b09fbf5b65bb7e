package inventory

import (
	"context"
	"errors"
	"maps"
	"time"

	"github.com/medfleet/medfleet/coap"
	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// The device side: registrations and reports arriving through the CoAP
// gateway. Registrations that change the registry part write through to
// etcd; everything else touches only memory and marks the status dirty for
// the next checkpoint.

// Register records a device's registration (POST /rd). A device the
// registry does not know yet is created from the registration. It returns
// what the device should do next.
func (inv *Inventory) Register(ctx context.Context, id string, reg *coap.Registration, lifetime time.Duration) (*coap.Desired, error) {
	if err := validateID("ep", id); err != nil {
		return nil, err
	}
	e, ok := inv.lookup(id)
	if !ok {
		now := inv.now()
		spec := &pb.Device{Profile: reg.Profile, Model: reg.Model, Serial: reg.Serial, Udi: reg.UDI, CreateTime: ts(now), UpdateTime: ts(now)}
		if _, err := inv.create(ctx, id, spec, ""); err != nil && !errors.Is(err, ErrAlreadyExists) {
			return nil, err
		}
		if e, ok = inv.lookup(id); !ok {
			// Another replica created it a moment ago; the watch has not
			// brought it yet.
			var err error
			if e, err = inv.fetch(ctx, id); err != nil {
				return nil, err
			}
		}
	} else if err := inv.applyRegistration(ctx, id, e, reg); err != nil {
		return nil, err
	}

	now := inv.now()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.spec.GetDecommissionTime() != nil {
		return nil, ErrDecommissioned
	}
	st := e.status
	st.RegistrationTime = ts(now)
	st.LastSeenTime = ts(now)
	st.LifetimeSeconds = uint32(lifetime / time.Second)
	if reg.Firmware != "" {
		st.FirmwareVersion = reg.Firmware
	}
	inv.markDirty(ctx, id)
	return inv.desired(e), nil
}

// UpdateRegistration is a registration update (POST /rd/{device}): a
// heartbeat, with the registration fields that changed, if any.
func (inv *Inventory) UpdateRegistration(ctx context.Context, id string, reg *coap.Registration) (*coap.Desired, error) {
	e, ok := inv.lookup(id)
	if !ok {
		return nil, ErrNotRegistered
	}
	now := inv.now()
	e.mu.Lock()
	live := inv.online(e.status, now)
	e.mu.Unlock()
	if !live {
		return nil, ErrNotRegistered
	}
	if err := inv.applyRegistration(ctx, id, e, reg); err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.spec.GetDecommissionTime() != nil {
		return nil, ErrDecommissioned
	}
	e.status.LastSeenTime = ts(now)
	if reg.Firmware != "" {
		e.status.FirmwareVersion = reg.Firmware
	}
	inv.markDirty(ctx, id)
	return inv.desired(e), nil
}

// Deregister ends a device's registration (DELETE /rd/{device}): it is
// offline from now on.
func (inv *Inventory) Deregister(ctx context.Context, id string) error {
	e, ok := inv.lookup(id)
	if !ok {
		return ErrNotRegistered
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if !inv.online(e.status, inv.now()) {
		return ErrNotRegistered
	}
	e.status.LifetimeSeconds = 0
	e.status.LastSeenTime = ts(inv.now())
	inv.markDirty(ctx, id)
	return nil
}

// applyRegistration writes registry fields that a registration changed
// (model, serial, profile, UDI: the device is the authority on what it is).
// Empty fields leave the registry as it is.
func (inv *Inventory) applyRegistration(ctx context.Context, id string, e *entry, reg *coap.Registration) error {
	e.mu.Lock()
	spec := e.spec
	e.mu.Unlock()
	if spec.GetDecommissionTime() != nil {
		return ErrDecommissioned
	}
	changed := func(reported, known string) bool { return reported != "" && reported != known }
	if !changed(reg.Profile, spec.GetProfile()) && !changed(reg.Model, spec.GetModel()) &&
		!changed(reg.Serial, spec.GetSerial()) && !changed(reg.UDI, spec.GetUdi()) {
		return nil
	}
	_, err := inv.modify(ctx, id, "", func(d *pb.Device) error {
		if reg.Profile != "" {
			d.Profile = reg.Profile
		}
		if reg.Model != "" {
			d.Model = reg.Model
		}
		if reg.Serial != "" {
			d.Serial = reg.Serial
		}
		if reg.UDI != "" {
			d.Udi = reg.UDI
		}
		return nil
	})
	return err
}

// ReportResult says what became of a report.
type ReportResult struct {
	Desired   *coap.Desired
	Duplicate bool // an already accepted seq: ignored
	// OutOfOrder is a report sent while the device holds earlier ones this
	// server has not accepted (they went to a replica that died): not
	// applied, and the answer's seq, below the report's, makes the device
	// send them first.
	OutOfOrder bool
}

// Report applies a data push (POST /dp). Reports whose seq is not above the
// last accepted one are duplicates or replays: acknowledged, not applied.
func (inv *Inventory) Report(ctx context.Context, id string, r *coap.Report) (ReportResult, error) {
	e, ok := inv.lookup(id)
	if !ok {
		return ReportResult{}, ErrNotRegistered
	}
	now := inv.now()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.spec.GetDecommissionTime() != nil {
		return ReportResult{}, ErrDecommissioned
	}
	st := e.status
	if !inv.online(st, now) {
		return ReportResult{}, ErrNotRegistered
	}
	st.LastSeenTime = ts(now)
	if r.Seq <= st.GetLastSeq() {
		st.ReportsDuplicate++
		return ReportResult{Desired: inv.desired(e), Duplicate: true}, nil
	}
	if next := st.GetLastSeq() + 1; r.Held != 0 && r.Held <= next && next < r.Seq {
		inv.markDirty(ctx, id) // the contact
		return ReportResult{Desired: inv.desired(e), OutOfOrder: true}, nil
	}
	st.LastSeq = r.Seq
	st.ReportsAccepted++
	if r.Usage != nil {
		addUsage(st, *r.Usage)
	}
	if r.Firmware != "" {
		st.FirmwareVersion = r.Firmware
	}
	var changed pb.Availability
	if r.State != "" {
		st.ClinicalState = clinicalStates[r.State]
		if a, ok := reportedAvailability(st.GetAvailability(), r.State); ok {
			st.Availability, st.AvailabilityTime, changed = a, ts(now), a
		}
	}
	if r.FirmwareState != nil && int32(*r.FirmwareState) != st.GetFirmwareUpdateState() {
		st.FirmwareUpdateState = int32(*r.FirmwareState)
		st.FirmwareUpdateTime = ts(now)
	}
	if r.FirmwareResult != nil && int32(*r.FirmwareResult) != st.GetFirmwareUpdateResult() {
		st.FirmwareUpdateResult = int32(*r.FirmwareResult)
		st.FirmwareUpdateTime = ts(now)
	}
	if r.Battery != nil {
		st.BatteryPercent = r.Battery
	}
	if r.WiFiBSSID != "" {
		st.WifiBssid = r.WiFiBSSID
	}
	if r.WiFiRSSI != nil {
		st.WifiRssiDbm = r.WiFiRSSI
	}
	if len(r.Alarms) > 0 {
		if st.AlarmCounts == nil {
			st.AlarmCounts = map[string]float64{}
		}
		maps.Copy(st.AlarmCounts, r.Alarms)
	}
	for name, v := range r.Telemetry {
		if st.Telemetry == nil {
			st.Telemetry = map[string]float64{}
		}
		if _, ok := st.Telemetry[name]; ok || len(st.Telemetry) < maxTelemetry {
			st.Telemetry[name] = v
		}
	}
	inv.markDirty(ctx, id)
	if changed != 0 && inv.onAvailability != nil {
		inv.onAvailability(id, changed, now)
	}
	return ReportResult{Desired: inv.desired(e)}, nil
}

// maxTelemetry bounds the telemetry names kept per device.
const maxTelemetry = 64

var clinicalStates = map[string]pb.ClinicalState{
	coap.StateIdle:     pb.ClinicalState_CLINICAL_STATE_IDLE,
	coap.StateInUse:    pb.ClinicalState_CLINICAL_STATE_IN_USE,
	coap.StateCharging: pb.ClinicalState_CLINICAL_STATE_CHARGING,
	coap.StateFault:    pb.ClinicalState_CLINICAL_STATE_FAULT,
}

// desired is the answer to a device. e.mu must be held.
func (inv *Inventory) desired(e *entry) *coap.Desired {
	stored := min(e.storedSeq, e.status.GetLastSeq())
	return &coap.Desired{Seq: e.status.GetLastSeq(), Stored: &stored, Interval: uint32(inv.cfg.ReportInterval / time.Second)}
}
