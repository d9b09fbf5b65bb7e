package agent

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/medfleet/medfleet/coap"
)

// Profile is a simulated device: a model of how one kind of device is used,
// driven by a clock the caller owns, so that tests step through simulated
// days in milliseconds. It is deterministic: the same seed, start and
// sequence of Step times give the same samples.
type Profile interface {
	// Name is the profile name the device registers with.
	Name() string
	// Step advances the device to now (simulated time). A time at or before
	// the last step does nothing.
	Step(now time.Time)
	// Sample is the device's report as of the last Step, without Seq and
	// Firmware, which the agent fills in.
	Sample() coap.Report
	// Counters returns the device's cumulative counters, and Restore sets
	// them back after a restart.
	Counters() Counters
	Restore(Counters)
}

// Counters are a device's cumulative counters: what must survive a restart
// so that the server never sees a counter go backwards.
type Counters struct {
	Usage  float64            // whole seconds of use
	Alarms map[string]float64 // count per alarm code
	// Other holds the profile's other counters by SenML record name.
	Other map[string]float64
}

// Profiles lists the profiles NewProfile knows.
func Profiles() []string {
	return []string{coap.ProfileInfusionPump, coap.ProfileCPAP, coap.ProfileRFIDReader}
}

// NewProfile returns the simulated device called name, starting at start.
// Time-of-day behaviour (a CPAP runs at night) uses start's location.
func NewProfile(name string, seed uint64, start time.Time) (Profile, error) {
	switch name {
	case coap.ProfileInfusionPump:
		return newPump(seed, start), nil
	case coap.ProfileCPAP:
		return newCPAP(seed, start), nil
	case coap.ProfileRFIDReader:
		return newReader(seed, start), nil
	}
	return nil, fmt.Errorf("agent: unknown profile %q", name)
}

// Stream numbers of the profiles' random sources: one source per concern,
// so that the schedule does not change with how often alarms fire or with
// how often the device is sampled.
const (
	streamSchedule = iota + 1
	streamNoise
	streamAlarm1
	streamAlarm2
	streamTags = 1000
)

func newRand(seed uint64, stream uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, stream))
}

// uniform returns a duration in [lo, hi].
func uniform(r *rand.Rand, lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(r.Int64N(int64(hi-lo)+1))
}

// expo returns an exponentially distributed duration with the given mean,
// at least a second (so that a countdown always moves on).
func expo(r *rand.Rand, mean time.Duration) time.Duration {
	return max(time.Duration(r.ExpFloat64()*float64(mean)), time.Second)
}

// seconds is a usage counter as reported: whole seconds, so that the
// server's sum of deltas is exact in float64.
func seconds(d time.Duration) float64 { return float64(d / time.Second) }

// fromSeconds is the inverse of seconds for a restored counter.
func fromSeconds(s float64) time.Duration {
	if math.IsNaN(s) || s <= 0 || s > float64(math.MaxInt64/int64(time.Second)) {
		return 0
	}
	return time.Duration(s) * time.Second
}

// count is a restored counter: finite and not negative.
func count(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
		return 0
	}
	return v
}

func round1(v float64) float64 { return math.Round(v*10) / 10 }

func ptr[T any](v T) *T { return &v }

// hospitalAPs are the Wi-Fi access points of the simulated hospital, shared
// by every simulated device so that the server can place devices by BSSID.
var hospitalAPs = func() []string {
	r := newRand(0x4d4544, 0x4150) // fixed: the same hospital in every run
	aps := make([]string, 48)
	for i := range aps {
		aps[i] = fmt.Sprintf("00:1a:1e:%02x:%02x:%02x", r.IntN(256), r.IntN(256), i)
	}
	return aps
}()

// wifi is a device's association with one access point.
type wifi struct {
	bssid string
	rssi  float64 // mean, dBm
}

func associate(r *rand.Rand) wifi {
	return wifi{bssid: hospitalAPs[r.IntN(len(hospitalAPs))], rssi: -45 - 30*r.Float64()}
}

// sample returns the BSSID and a noisy RSSI reading.
func (w wifi) sample(noise *rand.Rand) (string, *float64) {
	rssi := math.Round(min(-30, max(-95, w.rssi+2*noise.NormFloat64())))
	return w.bssid, &rssi
}
