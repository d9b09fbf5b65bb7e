package agent

import (
	"math"
	"math/rand/v2"
	"time"

	"github.com/medfleet/medfleet/coap"
)

// AlarmHighLeak is the CPAP profile's alarm code: mask leak above limits.
const AlarmHighLeak = "high-leak"

// How the simulated CPAP is used: at night, local time. Therapy starts
// between 21:30 and 23:30 and ends between 05:30 and 07:00, with a few short
// breaks (mask off) in between; about one night in ten it is not used at
// all. The blower's air filter is changed after 200 to 300 hours.
const (
	cpapStartEarliest = 21*time.Hour + 30*time.Minute // after midnight of the evening's date
	cpapStartLatest   = 23*time.Hour + 30*time.Minute
	cpapEndEarliest   = 29*time.Hour + 30*time.Minute // 05:30 the next morning
	cpapEndLatest     = 31 * time.Hour                // 07:00
	cpapSkipNight     = 0.1
	cpapMinSegment    = 90 * time.Minute
	cpapMaxSegment    = 5 * time.Hour
	cpapMinBreak      = 5 * time.Minute
	cpapMaxBreak      = 20 * time.Minute
	cpapMinFilterLife = 200 * time.Hour
	cpapMaxFilterLife = 300 * time.Hour
	cpapLeakMean      = 30 * time.Hour // of therapy time between alarms
)

// NameFilterHours is the CPAP's filter counter (hours of blower time on the
// current filter), reported as telemetry and kept across restarts.
const NameFilterHours = "filter/hours"

// cpap simulates a CPAP machine. Its usage counter is blower time.
type cpap struct {
	sched, leakRand, noise *rand.Rand
	loc                    *time.Location

	now, until time.Time // the current phase ends at until
	running    bool
	evening    time.Time // local midnight of the date the planned night starts
	nightStart time.Time
	nightEnd   time.Time
	pressure   float64 // prescribed, cmH2O
	leakBase   float64 // L/min
	wifi       wifi

	usage, filter time.Duration
	filterLife    time.Duration
	leaks         float64
	toLeak        time.Duration
}

func newCPAP(seed uint64, start time.Time) *cpap {
	c := &cpap{
		sched:    newRand(seed, streamSchedule),
		leakRand: newRand(seed, streamAlarm1),
		noise:    newRand(seed, streamNoise),
		loc:      start.Location(),
		now:      start,
	}
	c.pressure = float64(6+c.sched.IntN(9)) + 0.5*float64(c.sched.IntN(2)) // 6-14.5
	c.leakBase = 15 + 15*c.sched.Float64()
	c.filterLife = uniform(c.sched, cpapMinFilterLife, cpapMaxFilterLife)
	c.filter = time.Duration(c.sched.Float64() * float64(c.filterLife))
	c.toLeak = expo(c.leakRand, cpapLeakMean)
	c.wifi = associate(c.sched)
	// The night that may be under way: the one that started yesterday
	// evening when it is still morning.
	local := start.In(c.loc)
	c.evening = time.Date(local.Year(), local.Month(), local.Day(), 0, 0, 0, 0, c.loc)
	if local.Hour() < 12 {
		c.evening = c.evening.AddDate(0, 0, -1)
	}
	c.planNight()
	for !c.nightEnd.After(start) {
		c.evening = c.evening.AddDate(0, 0, 1)
		c.planNight()
	}
	if c.nightStart.After(start) {
		c.until = c.nightStart
	} else {
		c.startSegment()
	}
	return c
}

// planNight draws the therapy window of the night that starts on the date
// c.evening; a skipped night moves on to the next date.
func (c *cpap) planNight() {
	for c.sched.Float64() < cpapSkipNight {
		c.evening = c.evening.AddDate(0, 0, 1)
	}
	c.nightStart = c.at(uniform(c.sched, cpapStartEarliest, cpapStartLatest))
	c.nightEnd = c.at(uniform(c.sched, cpapEndEarliest, cpapEndLatest))
}

// at returns the local time d after midnight of c.evening, counting wall
// clock hours (so that a DST change does not move bedtime).
func (c *cpap) at(d time.Duration) time.Time {
	return time.Date(c.evening.Year(), c.evening.Month(), c.evening.Day(), 0, 0, 0, int(d), c.loc)
}

func (c *cpap) Name() string { return coap.ProfileCPAP }

func (c *cpap) Step(now time.Time) {
	for c.now.Before(now) {
		end := now
		if c.until.Before(end) {
			end = c.until
		}
		c.advance(end.Sub(c.now))
		c.now = end
		if !c.now.Before(c.until) {
			c.transition()
		}
	}
}

func (c *cpap) advance(dt time.Duration) {
	if !c.running {
		return
	}
	c.usage += dt
	c.filter += dt
	for c.filter >= c.filterLife {
		c.filter -= c.filterLife // a biomed changed the filter
		c.filterLife = uniform(c.sched, cpapMinFilterLife, cpapMaxFilterLife)
	}
	for c.toLeak -= dt; c.toLeak <= 0; c.toLeak += expo(c.leakRand, cpapLeakMean) {
		c.leaks++
	}
}

// transition ends the current phase: the day's wait, a therapy segment, or
// a break.
func (c *cpap) transition() {
	switch {
	case c.running:
		c.running = false
		if c.now.Before(c.nightEnd) {
			c.until = c.now.Add(uniform(c.sched, cpapMinBreak, cpapMaxBreak)) // mask off for a while
			if c.until.Before(c.nightEnd.Add(-10 * time.Minute)) {
				return
			}
		}
		c.evening = c.evening.AddDate(0, 0, 1)
		c.planNight()
		c.until = c.nightStart
	default:
		c.startSegment()
	}
}

func (c *cpap) startSegment() {
	c.running = true
	c.until = c.now.Add(uniform(c.sched, cpapMinSegment, cpapMaxSegment))
	if c.until.After(c.nightEnd) {
		c.until = c.nightEnd
	}
}

func (c *cpap) Sample() coap.Report {
	var pressure, leak float64
	state := coap.StateIdle
	if c.running {
		state = coap.StateInUse
		pressure = round1(c.pressure + 0.3*c.noise.NormFloat64())
		leak = round1(max(0, c.leakBase+4*c.noise.NormFloat64()))
	}
	bssid, rssi := c.wifi.sample(c.noise)
	return coap.Report{
		Usage:     ptr(seconds(c.usage)),
		State:     state,
		WiFiBSSID: bssid,
		WiFiRSSI:  rssi,
		Alarms:    map[string]float64{AlarmHighLeak: c.leaks},
		Telemetry: map[string]float64{
			"blower/pressure": pressure,
			"leak/rate":       leak,
			NameFilterHours:   math.Floor(c.filter.Hours()*10) / 10,
		},
	}
}

func (c *cpap) Counters() Counters {
	return Counters{
		Usage:  seconds(c.usage),
		Alarms: map[string]float64{AlarmHighLeak: c.leaks},
		Other:  map[string]float64{NameFilterHours: c.filter.Hours()},
	}
}

func (c *cpap) Restore(s Counters) {
	c.usage = fromSeconds(s.Usage)
	c.leaks = count(s.Alarms[AlarmHighLeak])
	if h, ok := s.Other[NameFilterHours]; ok {
		c.filter = time.Duration(min(count(h), c.filterLife.Hours()) * float64(time.Hour))
	}
}
