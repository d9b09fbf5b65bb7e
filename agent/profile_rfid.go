package agent

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	"github.com/medfleet/medfleet/coap"
)

// How the simulated RFID reader behaves. It is always powered (usage is
// powered time) and watches a stable population of 6 to 12 tags on its four
// antennas. Now and then (mean 45 min per tag) a tag moves to another
// antenna, or out of range (15 %), from where it comes back later.
const (
	rfidAntennas  = 4
	rfidMinTags   = 6
	rfidMaxTags   = 12 // keeps a report under one CoAP block (1024 bytes)
	rfidMoveMean  = 45 * time.Minute
	rfidLeaveProb = 0.15
)

// reader simulates a fixed UHF RFID reader.
type reader struct {
	noise *rand.Rand
	now   time.Time
	usage time.Duration
	tags  []*tag
	temp  float64
}

// tag is one RFID tag the reader can see. Each has its own random source,
// so that its moves do not depend on the others or on the step size.
type tag struct {
	rnd     *rand.Rand
	epc     string
	antenna int // 1-4, 0 when out of range
	rssi    float64
	next    time.Time // of the next move
}

func newReader(seed uint64, start time.Time) *reader {
	sched := newRand(seed, streamSchedule)
	r := &reader{noise: newRand(seed, streamNoise), now: start, temp: 36 + 6*sched.Float64()}
	n := rfidMinTags + sched.IntN(rfidMaxTags-rfidMinTags+1)
	for i := range n {
		rnd := newRand(seed, streamTags+uint64(i))
		// An SGTIN-96 EPC: header 0x30, then 11 random bytes.
		epc := fmt.Sprintf("30%06X%016X", rnd.Uint32()&0xffffff, rnd.Uint64())
		t := &tag{rnd: rnd, epc: epc, antenna: 1 + rnd.IntN(rfidAntennas)}
		t.rssi = -40 - 35*rnd.Float64()
		t.next = start.Add(expo(rnd, rfidMoveMean))
		r.tags = append(r.tags, t)
	}
	return r
}

func (r *reader) Name() string { return coap.ProfileRFIDReader }

func (r *reader) Step(now time.Time) {
	if !r.now.Before(now) {
		return
	}
	r.usage += now.Sub(r.now)
	r.now = now
	for _, t := range r.tags {
		for !t.next.After(now) {
			t.move()
			t.next = t.next.Add(expo(t.rnd, rfidMoveMean))
		}
	}
}

func (t *tag) move() {
	switch {
	case t.antenna == 0:
		t.antenna = 1 + t.rnd.IntN(rfidAntennas) // back in range
	case t.rnd.Float64() < rfidLeaveProb:
		t.antenna = 0
		return
	default:
		t.antenna = 1 + (t.antenna+t.rnd.IntN(rfidAntennas-1))%rfidAntennas // another antenna
	}
	t.rssi = -40 - 35*t.rnd.Float64()
}

func (r *reader) Sample() coap.Report {
	var seen []coap.Sighting
	for _, t := range r.tags {
		if t.antenna == 0 {
			continue
		}
		rssi := math.Round(min(-25, max(-90, t.rssi+2*r.noise.NormFloat64())))
		seen = append(seen, coap.Sighting{Antenna: strconv.Itoa(t.antenna), EPC: t.epc, RSSI: rssi})
	}
	slices.SortFunc(seen, func(a, b coap.Sighting) int {
		return cmp.Or(cmp.Compare(a.Antenna, b.Antenna), cmp.Compare(a.EPC, b.EPC))
	})
	// A reader works all the time but is never on a patient: it reports idle,
	// which is what lets firmware install on it without waiting.
	return coap.Report{
		Usage:     ptr(seconds(r.usage)),
		State:     coap.StateIdle,
		Sightings: seen,
		Telemetry: map[string]float64{"temperature": round1(r.temp + 0.5*r.noise.NormFloat64())},
	}
}

func (r *reader) Counters() Counters { return Counters{Usage: seconds(r.usage)} }

func (r *reader) Restore(c Counters) { r.usage = fromSeconds(c.Usage) }
