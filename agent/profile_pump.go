package agent

import (
	"math"
	"math/rand/v2"
	"time"

	"github.com/medfleet/medfleet/coap"
)

// Alarm codes of the infusion-pump profile.
const (
	AlarmOcclusion = "occlusion"
	AlarmAirInLine = "air-in-line"
)

// How the simulated infusion pump is used. An infusion lasts 30 minutes plus
// an exponential tail (mean 2 h, at most 12 h in all); between infusions the
// pump waits for 15 min to 4 h, or sits in storage for up to a day and a
// half. Idle pumps are usually back on their dock, charging.
const (
	pumpMinInfusion     = 30 * time.Minute
	pumpMeanInfusionAdd = 2 * time.Hour
	pumpMaxInfusion     = 12 * time.Hour
	pumpOcclusionMean   = 10 * time.Hour // of infusion time between alarms
	pumpAirInLineMean   = 25 * time.Hour
	pumpDrainPerHour    = 9.0 // battery %, infusing on battery
	pumpStandbyPerHour  = 0.4 // battery %, off the dock and idle
	pumpChargePerHour   = 30.0
	pumpLowBattery      = 15.0 // staff plug the pump in at this level
)

var pumpRates = []float64{5, 10, 20, 25, 50, 75, 100, 125, 150, 250} // mL/h

// pump simulates a large-volume infusion pump. Its usage counter is the
// time spent infusing.
type pump struct {
	sched, occRand, airRand, noise *rand.Rand

	now, until time.Time // the current phase ends at until
	inUse      bool
	onMains    bool // infusing from the mains, or idle on the dock
	battery    float64
	rate       float64
	wifi       wifi

	usage                  time.Duration
	occlusions, airInLines float64
	toOcclusion, toAir     time.Duration // infusion time until the next alarm
}

func newPump(seed uint64, start time.Time) *pump {
	p := &pump{
		sched:   newRand(seed, streamSchedule),
		occRand: newRand(seed, streamAlarm1),
		airRand: newRand(seed, streamAlarm2),
		noise:   newRand(seed, streamNoise),
		now:     start,
	}
	p.battery = 60 + 40*p.sched.Float64()
	p.toOcclusion = expo(p.occRand, pumpOcclusionMean)
	p.toAir = expo(p.airRand, pumpAirInLineMean)
	// Start somewhere in the middle of an infusion or of an idle gap.
	if p.sched.Float64() < 0.35 {
		p.startInfusion()
	} else {
		p.startIdle()
	}
	p.until = start.Add(time.Duration(p.sched.Float64() * float64(p.until.Sub(start))))
	return p
}

func (p *pump) Name() string { return coap.ProfileInfusionPump }

func (p *pump) Step(now time.Time) {
	for p.now.Before(now) {
		end := now
		if p.until.Before(end) {
			end = p.until
		}
		p.advance(end.Sub(p.now))
		p.now = end
		if !p.now.Before(p.until) {
			if p.inUse {
				p.startIdle()
			} else {
				p.startInfusion()
			}
		}
	}
}

// advance runs the current phase for dt.
func (p *pump) advance(dt time.Duration) {
	h := dt.Hours()
	switch {
	case p.inUse:
		p.usage += dt
		for p.toOcclusion -= dt; p.toOcclusion <= 0; p.toOcclusion += expo(p.occRand, pumpOcclusionMean) {
			p.occlusions++
		}
		for p.toAir -= dt; p.toAir <= 0; p.toAir += expo(p.airRand, pumpAirInLineMean) {
			p.airInLines++
		}
		if p.onMains {
			p.battery += pumpChargePerHour * h
		} else if p.battery -= pumpDrainPerHour * h; p.battery <= pumpLowBattery {
			p.onMains = true
		}
	case p.onMains:
		p.battery += pumpChargePerHour * h
	default:
		p.battery -= pumpStandbyPerHour * h
	}
	p.battery = min(100, max(0, p.battery))
}

func (p *pump) startInfusion() {
	p.inUse = true
	p.onMains = p.sched.Float64() < 0.6
	p.rate = pumpRates[p.sched.IntN(len(pumpRates))]
	d := min(pumpMinInfusion+expo(p.sched, pumpMeanInfusionAdd), pumpMaxInfusion)
	p.until = p.now.Add(d)
	p.wifi = associate(p.sched) // at the patient's bedside
}

func (p *pump) startIdle() {
	p.inUse = false
	p.rate = 0
	p.onMains = p.sched.Float64() < 0.75
	var d time.Duration
	if p.sched.Float64() < 0.7 {
		d = uniform(p.sched, 15*time.Minute, 4*time.Hour)
	} else {
		d = uniform(p.sched, 4*time.Hour, 36*time.Hour)
	}
	p.until = p.now.Add(d)
	p.wifi = associate(p.sched) // back in the equipment room, or on a ward
}

func (p *pump) state() string {
	switch {
	case p.inUse:
		return coap.StateInUse
	case p.onMains && p.battery < 99.5:
		return coap.StateCharging
	default:
		return coap.StateIdle
	}
}

func (p *pump) Sample() coap.Report {
	bssid, rssi := p.wifi.sample(p.noise)
	return coap.Report{
		Usage:     ptr(seconds(p.usage)),
		State:     p.state(),
		Battery:   ptr(math.Round(p.battery)),
		WiFiBSSID: bssid,
		WiFiRSSI:  rssi,
		Alarms:    map[string]float64{AlarmOcclusion: p.occlusions, AlarmAirInLine: p.airInLines},
		Telemetry: map[string]float64{"infusion/rate": p.rate},
	}
}

func (p *pump) Counters() Counters {
	return Counters{
		Usage:  seconds(p.usage),
		Alarms: map[string]float64{AlarmOcclusion: p.occlusions, AlarmAirInLine: p.airInLines},
	}
}

func (p *pump) Restore(c Counters) {
	p.usage = fromSeconds(c.Usage)
	p.occlusions = count(c.Alarms[AlarmOcclusion])
	p.airInLines = count(c.Alarms[AlarmAirInLine])
}
