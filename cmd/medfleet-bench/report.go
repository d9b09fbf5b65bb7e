package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Result is what a run measured. Report counters cover the requests due
// in the measured window (after the warm-up); registration counters cover
// the whole run.
type Result struct {
	Config      Config         `json:"-"`
	Devices     []DeviceResult `json:"-"`
	Interrupted bool           `json:"interrupted"`

	NumDevices  int     `json:"devices"`
	Rate        float64 `json:"rate_per_device"`
	WarmupS     float64 `json:"warmup_s"`
	DurationS   float64 `json:"duration_s"` // measured window; shorter when interrupted
	Attempted   uint64  `json:"attempted"`  // reports due (ticks)
	Sent        uint64  `json:"sent"`       // report requests sent, resends after a 4.04 included
	Acked       uint64  `json:"acked"`      // answered 2.04
	AckedPerSec float64 `json:"acked_per_s"`
	// Answered counts responses of any code: the rate a bare server
	// (--baseline) sustains.
	Answered       uint64  `json:"answered"`
	AnsweredPerSec float64 `json:"answered_per_s"`

	Latency           Latency           `json:"latency_ms"`
	Timeouts          uint64            `json:"timeouts"`
	Retransmissions   uint64            `json:"retransmissions"`
	Skipped           uint64            `json:"skipped_device_busy"`
	Unfinished        uint64            `json:"unfinished"` // still in flight when the run ended
	Resets            uint64            `json:"resets"`
	SeparateResponses uint64            `json:"separate_responses"` // empty ACKs, report and registration
	Backoffs          uint64            `json:"max_age_waits"`      // 4.29 / 5.03 with Max-Age
	Responses         map[string]uint64 `json:"responses"`          // by code, "2.04"

	Registrations        uint64 `json:"registrations"`
	RegistrationFailures uint64 `json:"registration_failures"`
	Reregistrations      uint64 `json:"reregistrations_after_404"`

	Server *ServerUsage `json:"server,omitempty"`
}

// Latency holds percentiles in milliseconds (within 0.4 %; Max and Mean
// exact).
type Latency struct {
	Count uint64  `json:"count"`
	Mean  float64 `json:"mean"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p999"`
	Max   float64 `json:"max"`
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func (r *Result) fill(st *stats, measured time.Duration) {
	c := r.Config
	r.NumDevices, r.Rate, r.WarmupS, r.DurationS = c.Devices, c.Rate, c.Warmup.Seconds(), measured.Seconds()
	r.Attempted, r.Sent, r.Acked, r.Answered = st.attempted.Load(), st.sent.Load(), st.acked.Load(), st.answered.Load()
	if measured > 0 {
		r.AckedPerSec = float64(r.Acked) / measured.Seconds()
		r.AnsweredPerSec = float64(r.Answered) / measured.Seconds()
	}
	h := &st.latency
	r.Latency = Latency{Count: h.Count(), Mean: ms(h.Mean()), P50: ms(h.Quantile(0.5)), P90: ms(h.Quantile(0.9)),
		P99: ms(h.Quantile(0.99)), P999: ms(h.Quantile(0.999)), Max: ms(h.Max())}
	r.Timeouts, r.Retransmissions, r.Skipped = st.timeouts.Load(), st.retransmissions.Load(), st.skipped.Load()
	r.Unfinished, r.Resets, r.SeparateResponses, r.Backoffs = st.unfinished.Load(), st.resets.Load(), st.separate.Load(), st.backoffs.Load()
	r.Responses = map[string]uint64{}
	for code := range st.codes {
		if n := st.codes[code].Load(); n > 0 {
			r.Responses[codeString(uint8(code))] = n
		}
	}
	r.Registrations, r.RegistrationFailures, r.Reregistrations = st.registrations.Load(), st.registrationFailures.Load(), st.reregistrations.Load()
}

// WriteJSON writes the result as one JSON object.
func (r *Result) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteText writes the result for people.
func (r *Result) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	p := func(k, format string, args ...any) { fmt.Fprintf(tw, "%s\t"+format+"\n", append([]any{k}, args...)...) }
	if r.Interrupted {
		p("interrupted", "yes: the numbers cover the run until the signal")
	}
	p("devices", "%d at %g reports/s each, %s over %d sockets", r.NumDevices, r.Rate, r.Config.Server, r.NumDevices)
	p("window", "%.1f s measured after %.1f s warm-up", r.DurationS, r.WarmupS)
	p("reports", "%d due, %d sent, %d acked (2.04), %d skipped (device busy)", r.Attempted, r.Sent, r.Acked, r.Skipped)
	p("achieved", "%.1f acked/s, %.1f answered/s (offered %.1f/s)", r.AckedPerSec, r.AnsweredPerSec, float64(r.NumDevices)*r.Rate)
	l := r.Latency
	p("latency ms", "p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f  (mean %.3f, n=%d)", l.P50, l.P90, l.P99, l.P999, l.Max, l.Mean, l.Count)
	p("failures", "%d timeouts, %d retransmissions, %d resets, %d unfinished at the end", r.Timeouts, r.Retransmissions, r.Resets, r.Unfinished)
	p("separate", "%d empty ACKs followed by a separate response", r.SeparateResponses)
	p("max-age waits", "%d (4.29 or 5.03 with Max-Age)", r.Backoffs)
	codes := slices.Sorted(maps.Keys(r.Responses))
	var line []string
	for _, c := range codes {
		line = append(line, fmt.Sprintf("%s: %d", c, r.Responses[c]))
	}
	p("responses", "%s", strings.Join(line, "  "))
	p("registrations", "%d, %d failed attempts, %d after a 4.04", r.Registrations, r.RegistrationFailures, r.Reregistrations)
	if s := r.Server; s != nil {
		if s.Err != "" {
			p("server", "pid %d: %s", s.PID, s.Err)
		} else {
			p("server", "pid %d: CPU %.1f %% of one core, peak RSS %.1f MiB (%d samples)", s.PID, s.CPUPercent, s.PeakRSSMiB, s.Samples)
		}
	}
	return tw.Flush()
}
