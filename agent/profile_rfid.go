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
// powered time). Unless its antennas are in its Simulator's World, it
// watches a stable population of 6 to 12 tags of its own on four antennas.
// Now and then (mean 45 min per tag) a tag moves to another antenna, or out
// of range (15 %), from where it comes back later.
const (
	rfidAntennas  = 4
	rfidMinTags   = 6
	rfidMaxTags   = 12 // keeps a report under one CoAP block (1024 bytes)
	rfidMoveMean  = 45 * time.Minute
	rfidLeaveProb = 0.15
)

// How a reader whose antennas are in the simulator's World sees the tags
// of the devices in it (in each report, as of the world's clock). A tag in
// an antenna's zone is seen strongly: -47 to -58 dBm, by how well tag and
// antenna are placed, plus noise (sd 1.5 dB), within -60 to -45. A tag in a
// zone next to it (joined by an edge, on the same floor), or between the
// antenna's zone and another, is seen faintly by the same antenna in 30 %
// of the reports, as through a wall: -72 to -78 dBm plus noise, within -80
// to -70. A tag in a lift or on the stairs, or hidden, is not seen. A
// report carries the strongest sightings: at most rfidMaxTags, and at most
// rfidSightingBytes of them, so that it stays within one CoAP block.
const (
	rssiStrongBase    = -47.0
	rssiStrongSpread  = 11.0
	rssiStrongMin     = -60.0
	rssiStrongMax     = -45.0
	rssiFaintBase     = -72.0
	rssiFaintSpread   = 6.0
	rssiFaintMin      = -80.0
	rssiFaintMax      = -70.0
	rssiNoise         = 1.5
	bleedProb         = 0.3
	rfidSightingBytes = 640
)

// reader simulates a fixed UHF RFID reader.
type reader struct {
	noise *rand.Rand
	now   time.Time
	usage time.Duration
	tags  []*tag
	temp  float64
	// world, with antennas, replaces tags: the reader sees the devices of
	// its Simulator's World.
	world    *worldModel
	antennas []worldAntenna
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
	if r.world != nil {
		seen = r.world.sightings(r.antennas, r.noise)
	} else {
		for _, t := range r.tags {
			if t.antenna == 0 {
				continue
			}
			rssi := math.Round(min(-25, max(-90, t.rssi+2*r.noise.NormFloat64())))
			seen = append(seen, coap.Sighting{Antenna: strconv.Itoa(t.antenna), EPC: t.epc, RSSI: rssi})
		}
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

// sightings returns what antennas see of the world now: the strongest
// sightings that fit in a report. noise is the reader's.
func (w *worldModel) sightings(antennas []worldAntenna, noise *rand.Rand) []coap.Sighting {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.advance()
	// Candidates are small and hold no pointers: sorting them is cheap.
	type candidate struct {
		rssi           float64
		antenna, mover int32
	}
	cands := make([]candidate, 0, 4*rfidMaxTags)
	see := func(a int, i int32, base, spread, lo, hi float64) {
		_, share := math.Modf(antennas[a].gain + w.movers[i].gain)
		rssi := math.Round(min(hi, max(lo, base-spread*share+rssiNoise*noise.NormFloat64())))
		cands = append(cands, candidate{rssi: rssi, antenna: int32(a), mover: i})
	}
	for a, ant := range antennas {
		for _, i := range w.in[ant.zone] {
			see(a, i, rssiStrongBase, rssiStrongSpread, rssiStrongMin, rssiStrongMax)
		}
		floor := w.g.zones[ant.zone].floor
		for _, next := range w.g.adj[ant.zone] {
			if w.g.zones[next.to].floor != floor {
				continue
			}
			for _, i := range w.in[next.to] {
				if noise.Float64() < bleedProb {
					see(a, i, rssiFaintBase, rssiFaintSpread, rssiFaintMin, rssiFaintMax)
				}
			}
		}
		for _, i := range w.near[ant.zone] {
			if noise.Float64() < bleedProb {
				see(a, i, rssiFaintBase, rssiFaintSpread, rssiFaintMin, rssiFaintMax)
			}
		}
	}
	// The strongest first; of equals, the first antenna and device.
	slices.SortFunc(cands, func(x, y candidate) int {
		return cmp.Or(cmp.Compare(y.rssi, x.rssi), cmp.Compare(x.antenna, y.antenna), cmp.Compare(x.mover, y.mover))
	})
	var seen []coap.Sighting
	size := 0
	for _, c := range cands {
		s := coap.Sighting{Antenna: antennas[c.antenna].name, EPC: w.movers[c.mover].epc, RSSI: c.rssi}
		// A sighting takes about 20 bytes of SenML-CBOR besides its
		// antenna and EPC.
		if size += 20 + len(s.Antenna) + len(s.EPC); len(seen) == rfidMaxTags || size > rfidSightingBytes {
			break
		}
		seen = append(seen, s)
	}
	return seen
}
