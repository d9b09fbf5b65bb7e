package coap

import (
	"encoding/hex"
	"math"
	"slices"
	"strings"
)

// SenML record names every server understands. Any other numeric record is
// kept as telemetry.
const (
	NameSeq       = "seq"
	NameUsage     = "usage"
	NameFirmware  = "fw"
	NameState     = "state"
	NameBattery   = "battery"
	NameWiFiBSSID = "wifi/bssid"
	NameWiFiRSSI  = "wifi/rssi"
	PrefixAlarm   = "alarm/"
	PrefixRFID    = "rfid/"
	NameFWState   = "fw/state"
	NameFWResult  = "fw/result"
	UnitSeconds   = "s"
	UnitPercent   = "%EL"
	UnitDBm       = "dBm"
	maxSeq        = 1 << 53 // largest integer a float64 holds exactly
	maxTelemetry  = 64
)

// Report is the meaning of one data push (POST /dp): the typed view of a
// SenML pack. Pointers are nil when the device did not report that item.
type Report struct {
	Seq uint64
	// Held is the oldest report the device still holds unstored (the
	// held query parameter of POST /dp, not a SenML record); 0 when it did
	// not say.
	Held      uint64
	Usage     *float64 // cumulative operating seconds
	Firmware  string
	State     string // StateIdle, StateInUse, StateCharging or StateFault
	Battery   *float64
	WiFiBSSID string
	WiFiRSSI  *float64
	// Alarms holds the cumulative count per alarm code.
	Alarms map[string]float64
	// Sightings are tag sightings by an RFID reader's antennas.
	Sightings      []Sighting
	FirmwareState  *int // LwM2M object 5 state, 0-3
	FirmwareResult *int // LwM2M object 5 result, 0-11
	// Telemetry holds the other numeric records, at most 64 of them.
	Telemetry map[string]float64
}

// Sighting is one RFID tag seen by one reader antenna.
type Sighting struct {
	Antenna string
	EPC     string // upper-case hex
	RSSI    float64
	Time    float64 // SenML time of the record, 0 when absent
}

// ParseReport interprets a SenML pack as a report and checks every record
// the protocol gives a meaning to. `seq` is required.
func ParseReport(pack Pack) (*Report, error) {
	r := &Report{}
	haveSeq := false
	for _, rec := range pack {
		name := rec.Name
		switch {
		case name == NameSeq:
			v, err := number(rec, "")
			if err != nil {
				return nil, err
			}
			if v < 1 || v >= maxSeq || v != math.Trunc(v) {
				return nil, fieldErr(name, "%v is not an integer in [1, 2^53)", v)
			}
			r.Seq, haveSeq = uint64(v), true
		case name == NameUsage:
			v, err := number(rec, UnitSeconds)
			if err != nil {
				return nil, err
			}
			if v < 0 {
				return nil, fieldErr(name, "%v is negative", v)
			}
			r.Usage = &v
		case name == NameFirmware:
			s, err := text(rec)
			if err != nil {
				return nil, err
			}
			r.Firmware = s
		case name == NameState:
			s, err := text(rec)
			if err != nil {
				return nil, err
			}
			switch s {
			case StateIdle, StateInUse, StateCharging, StateFault:
			default:
				return nil, fieldErr(name, "%q is not one of idle, in_use, charging, fault", truncate(s))
			}
			r.State = s
		case name == NameBattery:
			v, err := number(rec, UnitPercent)
			if err != nil {
				return nil, err
			}
			if v < 0 || v > 100 {
				return nil, fieldErr(name, "%v is outside 0-100", v)
			}
			r.Battery = &v
		case name == NameWiFiBSSID:
			s, err := text(rec)
			if err != nil {
				return nil, err
			}
			r.WiFiBSSID = strings.ToLower(s)
		case name == NameWiFiRSSI:
			v, err := number(rec, UnitDBm)
			if err != nil {
				return nil, err
			}
			r.WiFiRSSI = &v
		case name == NameFWState || name == NameFWResult:
			v, err := number(rec, "")
			if err != nil {
				return nil, err
			}
			limit := float64(FWUpdating)
			if name == NameFWResult {
				limit = FWResultDeferred
			}
			if v < 0 || v > limit || v != math.Trunc(v) {
				return nil, fieldErr(name, "%v is not an integer in [0, %v]", v, limit)
			}
			n := int(v)
			if name == NameFWState {
				r.FirmwareState = &n
			} else {
				r.FirmwareResult = &n
			}
		case strings.HasPrefix(name, PrefixAlarm):
			v, err := number(rec, "")
			if err != nil {
				return nil, err
			}
			if v < 0 {
				return nil, fieldErr(name, "alarm count %v is negative", v)
			}
			if r.Alarms == nil {
				r.Alarms = map[string]float64{}
			}
			r.Alarms[strings.TrimPrefix(name, PrefixAlarm)] = v
		case strings.HasPrefix(name, PrefixRFID):
			s, err := sighting(rec)
			if err != nil {
				return nil, err
			}
			r.Sightings = append(r.Sightings, s)
		default:
			if rec.Value == nil {
				continue // only numbers are kept as telemetry
			}
			if r.Telemetry == nil {
				r.Telemetry = map[string]float64{}
			}
			if _, ok := r.Telemetry[name]; !ok && len(r.Telemetry) >= maxTelemetry {
				return nil, fieldErr(name, "more than %d telemetry records", maxTelemetry)
			}
			r.Telemetry[name] = *rec.Value
		}
	}
	if !haveSeq {
		return nil, fieldErr(NameSeq, "required")
	}
	return r, nil
}

// Pack turns the report back into SenML records, in a stable order.
func (r *Report) Pack() Pack {
	p := Pack{Float(NameSeq, "", float64(r.Seq))}
	if r.Usage != nil {
		p = append(p, Float(NameUsage, UnitSeconds, *r.Usage))
	}
	if r.Firmware != "" {
		p = append(p, String(NameFirmware, r.Firmware))
	}
	if r.State != "" {
		p = append(p, String(NameState, r.State))
	}
	if r.Battery != nil {
		p = append(p, Float(NameBattery, UnitPercent, *r.Battery))
	}
	if r.WiFiBSSID != "" {
		p = append(p, String(NameWiFiBSSID, r.WiFiBSSID))
	}
	if r.WiFiRSSI != nil {
		p = append(p, Float(NameWiFiRSSI, UnitDBm, *r.WiFiRSSI))
	}
	for _, code := range sortedKeys(r.Alarms) {
		p = append(p, Float(PrefixAlarm+code, "", r.Alarms[code]))
	}
	for _, s := range r.Sightings {
		rec := Float(PrefixRFID+s.Antenna, UnitDBm, s.RSSI)
		epc := s.EPC
		rec.StringValue = &epc
		rec.Time = s.Time
		p = append(p, rec)
	}
	if r.FirmwareState != nil {
		p = append(p, Float(NameFWState, "", float64(*r.FirmwareState)))
	}
	if r.FirmwareResult != nil {
		p = append(p, Float(NameFWResult, "", float64(*r.FirmwareResult)))
	}
	for _, name := range sortedKeys(r.Telemetry) {
		p = append(p, Float(name, "", r.Telemetry[name]))
	}
	return p
}

func number(rec Record, unit string) (float64, error) {
	if rec.Value == nil {
		return 0, fieldErr(rec.Name, "want a numeric value (v)")
	}
	if unit != "" && rec.Unit != "" && rec.Unit != unit {
		return 0, fieldErr(rec.Name, "unit %q, want %q", truncate(rec.Unit), unit)
	}
	return *rec.Value, nil
}

func text(rec Record) (string, error) {
	if rec.StringValue == nil {
		return "", fieldErr(rec.Name, "want a string value (vs)")
	}
	if *rec.StringValue == "" {
		return "", fieldErr(rec.Name, "empty")
	}
	return *rec.StringValue, nil
}

// sighting reads an `rfid/{antenna}` record: vs is the tag EPC in hex, v the
// RSSI in dBm.
func sighting(rec Record) (Sighting, error) {
	antenna := strings.TrimPrefix(rec.Name, PrefixRFID)
	if antenna == "" {
		return Sighting{}, fieldErr(rec.Name, "no antenna after %q", PrefixRFID)
	}
	if rec.StringValue == nil || rec.Value == nil {
		return Sighting{}, fieldErr(rec.Name, "want the tag EPC in vs and the RSSI in v")
	}
	epc := *rec.StringValue
	if len(epc) == 0 || len(epc)%2 != 0 || len(epc) > 64 {
		return Sighting{}, fieldErr(rec.Name, "EPC %q is not 1-32 bytes of hex", truncate(epc))
	}
	if _, err := hex.DecodeString(epc); err != nil {
		return Sighting{}, fieldErr(rec.Name, "EPC %q is not hex", truncate(epc))
	}
	if rec.Unit != "" && rec.Unit != UnitDBm {
		return Sighting{}, fieldErr(rec.Name, "unit %q, want %q", truncate(rec.Unit), UnitDBm)
	}
	return Sighting{Antenna: antenna, EPC: strings.ToUpper(epc), RSSI: *rec.Value, Time: rec.Time}, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
