package agent

import (
	"encoding/hex"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/medfleet/medfleet/coap"
)

// t0 is a Monday noon, UTC: profiles use the start's location for local
// time.
var t0 = time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)

// simulate steps a profile from t0 for d in steps of step and returns the
// samples, one per step.
func simulate(t *testing.T, name string, seed uint64, d, step time.Duration) []coap.Report {
	t.Helper()
	p, err := NewProfile(name, seed, t0)
	if err != nil {
		t.Fatal(err)
	}
	var out []coap.Report
	for now := t0.Add(step); !now.After(t0.Add(d)); now = now.Add(step) {
		p.Step(now)
		out = append(out, p.Sample())
	}
	return out
}

func TestNewProfileUnknown(t *testing.T) {
	if _, err := NewProfile("toaster", 1, t0); err == nil {
		t.Error(`NewProfile("toaster") = nil error, want one`)
	}
}

func TestProfileDeterministic(t *testing.T) {
	for _, name := range Profiles() {
		t.Run(name, func(t *testing.T) {
			a := simulate(t, name, 42, 48*time.Hour, 10*time.Minute)
			b := simulate(t, name, 42, 48*time.Hour, 10*time.Minute)
			if !reflect.DeepEqual(a, b) {
				t.Error("two runs with seed 42 differ")
			}
			c := simulate(t, name, 43, 48*time.Hour, 10*time.Minute)
			if reflect.DeepEqual(a, c) {
				t.Error("seeds 42 and 43 give the same device")
			}
		})
	}
}

// TestProfileStepSize checks that the usage counter does not depend on how
// often the device is stepped.
func TestProfileStepSize(t *testing.T) {
	for _, name := range Profiles() {
		t.Run(name, func(t *testing.T) {
			fine := simulate(t, name, 5, 72*time.Hour, time.Minute)
			coarse := simulate(t, name, 5, 72*time.Hour, 6*time.Hour)
			if got, want := *coarse[len(coarse)-1].Usage, *fine[len(fine)-1].Usage; got != want {
				t.Errorf("usage after 72 h in 6 h steps = %v, in 1 min steps %v", got, want)
			}
		})
	}
}

// TestProfileReports checks that every sample is a report the server
// accepts, within one CoAP block, with counters that never go back.
func TestProfileReports(t *testing.T) {
	for _, name := range Profiles() {
		t.Run(name, func(t *testing.T) {
			var prev *coap.Report
			for i, r := range simulate(t, name, 9, 7*24*time.Hour, 13*time.Minute) {
				r.Seq, r.Firmware = uint64(i+1), "1.0.0"
				body, err := coap.EncodePack(coap.FormatSenMLCBOR, r.Pack())
				if err != nil {
					t.Fatal(err)
				}
				if len(body) > 1024 {
					t.Fatalf("report %d is %d bytes, want at most one block (1024)", i, len(body))
				}
				pack, err := coap.DecodePack(coap.FormatSenMLCBOR, body)
				if err != nil {
					t.Fatalf("DecodePack(report %d) = %v", i, err)
				}
				got, err := coap.ParseReport(pack)
				if err != nil {
					t.Fatalf("ParseReport(report %d) = %v", i, err)
				}
				if !reflect.DeepEqual(*got, r) {
					t.Fatalf("ParseReport(Pack()) = %+v, want %+v", *got, r)
				}
				if prev != nil {
					if *r.Usage < *prev.Usage {
						t.Fatalf("usage went from %v to %v", *prev.Usage, *r.Usage)
					}
					for code, n := range prev.Alarms {
						if r.Alarms[code] < n {
							t.Fatalf("alarm %s count went from %v to %v", code, n, r.Alarms[code])
						}
					}
				}
				prev = &r
			}
		})
	}
}

func TestPumpGoesInAndOutOfUse(t *testing.T) {
	const step = time.Minute
	var infusions, alarms int
	for seed := range uint64(5) {
		samples := simulate(t, coap.ProfileInfusionPump, seed, 14*24*time.Hour, step)
		states := map[string]int{}
		inUse, run := 0, 0
		for i, r := range samples {
			states[r.State]++
			if *r.Battery < 0 || *r.Battery > 100 {
				t.Fatalf("seed %d: battery %v", seed, *r.Battery)
			}
			if r.State == coap.StateInUse {
				inUse++
				run++
				if i == 0 || samples[i-1].State != coap.StateInUse {
					infusions++
				}
			} else if run > 0 {
				if run*int(step) < int(pumpMinInfusion)-int(2*step) && i-run > 0 {
					t.Errorf("seed %d: an infusion of %v, want at least %v", seed, time.Duration(run)*step, pumpMinInfusion)
				}
				run = 0
			}
			if i > 0 && r.Telemetry["infusion/rate"] > 0 != (r.State == coap.StateInUse) {
				t.Fatalf("seed %d: rate %v in state %s", seed, r.Telemetry["infusion/rate"], r.State)
			}
		}
		share := float64(inUse) / float64(len(samples))
		if share < 0.1 || share > 0.9 {
			t.Errorf("seed %d: in use %.0f %% of two weeks, want 10-90 %%", seed, 100*share)
		}
		for _, s := range []string{coap.StateInUse, coap.StateIdle, coap.StateCharging} {
			if states[s] == 0 {
				t.Errorf("seed %d: never %s in two weeks (%v)", seed, s, states)
			}
		}
		// The counter is infusing time: one step per in-use sample, give or
		// take the steps where an infusion started or ended.
		usage := *samples[len(samples)-1].Usage
		if got, want := usage, float64(inUse)*step.Seconds(); got < want-float64(infusions)*120 || got > want+float64(infusions)*120 {
			t.Errorf("seed %d: usage %v s, want about %v s", seed, got, want)
		}
		last := samples[len(samples)-1].Alarms
		alarms += int(last[AlarmOcclusion] + last[AlarmAirInLine])
	}
	if infusions < 20 {
		t.Errorf("%d infusions over 5 pumps and two weeks, want at least 20", infusions)
	}
	if alarms == 0 {
		t.Error("no alarm in 5 pumps over two weeks")
	}
}

func TestCPAPRunsAtNight(t *testing.T) {
	for _, loc := range []*time.Location{time.UTC, time.FixedZone("EST", -5*3600)} {
		t.Run(loc.String(), func(t *testing.T) {
			start := time.Date(2026, 3, 2, 12, 0, 0, 0, loc)
			p, err := NewProfile(coap.ProfileCPAP, 3, start)
			if err != nil {
				t.Fatal(err)
			}
			nightly := map[string]float64{}
			prev := 0.0
			for now := start.Add(time.Minute); now.Before(start.Add(14 * 24 * time.Hour)); now = now.Add(time.Minute) {
				p.Step(now)
				r := p.Sample()
				used := *r.Usage - prev
				prev = *r.Usage
				hour := now.Hour()
				night := hour >= 21 || hour < 8
				if used > 0 && !night {
					t.Fatalf("%v: %v s of use in the day", now, used)
				}
				if (r.State == coap.StateInUse) != (r.Telemetry["blower/pressure"] > 0) {
					t.Fatalf("%v: pressure %v in state %s", now, r.Telemetry["blower/pressure"], r.State)
				}
				evening := now.Add(-12 * time.Hour).Format(time.DateOnly)
				nightly[evening] += used
			}
			used := 0
			for _, s := range nightly {
				if s > 4*3600 {
					used++
				}
				if s > 10*3600 {
					t.Errorf("a night of %v h", s/3600)
				}
			}
			if used < 9 {
				t.Errorf("%d of 14 nights with more than 4 h of therapy, want at least 9: %v", used, nightly)
			}
		})
	}
}

func TestRFIDReaderSightings(t *testing.T) {
	samples := simulate(t, coap.ProfileRFIDReader, 11, 24*time.Hour, 5*time.Minute)
	antennas := map[string]map[string]bool{} // EPC -> antennas seen on
	var epcs []string
	for i, r := range samples {
		if want := float64((i + 1) * 300); *r.Usage != want {
			t.Fatalf("sample %d: usage %v, want %v (always powered)", i, *r.Usage, want)
		}
		for _, s := range r.Sightings {
			if !slices.Contains([]string{"1", "2", "3", "4"}, s.Antenna) {
				t.Fatalf("sighting on antenna %q", s.Antenna)
			}
			if b, err := hex.DecodeString(s.EPC); err != nil || len(b) != 12 {
				t.Fatalf("EPC %q is not 12 bytes of hex", s.EPC)
			}
			if s.RSSI < -90 || s.RSSI > -25 {
				t.Fatalf("RSSI %v dBm", s.RSSI)
			}
			if antennas[s.EPC] == nil {
				antennas[s.EPC] = map[string]bool{}
				epcs = append(epcs, s.EPC)
			}
			antennas[s.EPC][s.Antenna] = true
		}
	}
	if len(epcs) < rfidMinTags || len(epcs) > rfidMaxTags {
		t.Errorf("%d distinct tags in a day, want a stable population of %d-%d", len(epcs), rfidMinTags, rfidMaxTags)
	}
	moved := 0
	for _, seen := range antennas {
		if len(seen) > 1 {
			moved++
		}
	}
	if moved == 0 {
		t.Error("no tag moved between antennas in a day")
	}
}

func TestProfileRestore(t *testing.T) {
	for _, name := range Profiles() {
		t.Run(name, func(t *testing.T) {
			p, err := NewProfile(name, 1, t0)
			if err != nil {
				t.Fatal(err)
			}
			p.Step(t0.Add(72 * time.Hour))
			c := p.Counters()
			q, err := NewProfile(name, 2, t0)
			if err != nil {
				t.Fatal(err)
			}
			q.Restore(c)
			if got := q.Counters(); !reflect.DeepEqual(got, c) {
				t.Errorf("Counters() after Restore = %+v, want %+v", got, c)
			}
			if got := *q.Sample().Usage; got != c.Usage {
				t.Errorf("Sample().Usage after Restore = %v, want %v", got, c.Usage)
			}
		})
	}
}
