package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"runtime"
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
	// With --metrics: the server's own counters over the window.
	Counters *ServerCounters `json:"server_counters,omitempty"`

	// With --dtls: provisioning and the devices' sessions.
	DTLS *DTLSResult `json:"dtls,omitempty"`

	// With download devices: what they did, the reports and the server
	// before, during and after the downloads, and the load generator's own
	// use of the machine it shares with the server.
	Firmware *FirmwareResult `json:"firmware,omitempty"`
	Phases   []PhaseResult   `json:"phases,omitempty"`
	Bench    *ServerUsage    `json:"bench,omitempty"`
	Machine  *ServerUsage    `json:"machine,omitempty"` // all CPUs' busy time, pid -1, no RSS
}

// DTLSResult is what a --dtls run did besides the reports: provisioning,
// before the run, and the sessions over the whole run (warm-up included,
// like the registrations).
type DTLSResult struct {
	// ProvisioningS is the time CreateDevice and IssueDeviceCredential
	// took for every device, before the run started.
	ProvisioningS     float64 `json:"provisioning_s"`
	Handshakes        uint64  `json:"handshakes"`         // sessions opened
	HandshakeFailures uint64  `json:"handshake_failures"` // each retried after a backoff
	Handshake         Latency `json:"handshake_ms"`       // of the successful ones, socket dialled to handshake done
	// SessionsDropped are sessions given up after an exchange got no
	// answer, or closed by the server: the next exchange shook hands again.
	SessionsDropped   uint64 `json:"sessions_dropped"`
	FirstHandshakeErr string `json:"first_handshake_error,omitempty"`
}

func dtlsResult(st *stats, provisioning time.Duration) *DTLSResult {
	r := &DTLSResult{
		ProvisioningS: provisioning.Seconds(),
		Handshakes:    st.handshakes.Load(), HandshakeFailures: st.handshakeFailures.Load(),
		Handshake: latencyOf(&st.handshake), SessionsDropped: st.sessionsDropped.Load(),
	}
	if e := st.handshakeErr.Load(); e != nil {
		r.FirstHandshakeErr = *e
	}
	return r
}

// FirmwareResult is what the download devices did. Times run from the
// moment they all started.
type FirmwareResult struct {
	SHA256        string  `json:"sha256"`
	Devices       int     `json:"devices"`
	BlockSize     int     `json:"block_size"`
	Confirmable   bool    `json:"confirmable"` // CON requests; NON otherwise
	ImageSize     int64   `json:"image_size"`  // bytes, of a complete download
	StartedAfterS float64 `json:"started_after_s"`
	// CompletionS is the time until the last download ended (complete or
	// not), or the timeout.
	CompletionS    float64 `json:"completion_s"`
	Complete       uint64  `json:"complete"` // every byte fetched, SHA-256 checked
	Failed         uint64  `json:"failed"`   // link lost (no answer after the resends), an error code, a protocol fault
	HashMismatches uint64  `json:"hash_mismatches"`
	Unfinished     uint64  `json:"unfinished"` // still running at the timeout or the signal
	// DeviceTime is per complete download, from the common start: queueing
	// behind 5.03s included. TransferTime runs from its first block.
	DeviceTime      Seconds           `json:"device_time_s"`
	TransferTime    Seconds           `json:"transfer_time_s"`
	Blocks          uint64            `json:"blocks"` // 2.05s taken
	Bytes           uint64            `json:"bytes"`
	BlocksPerSec    float64           `json:"blocks_per_s"` // over CompletionS
	MBPerSec        float64           `json:"mb_per_s"`     // 10^6 bytes
	Busy            uint64            `json:"max_age_waits"`
	Retransmissions uint64            `json:"retransmissions"`
	Timeouts        uint64            `json:"timeouts"` // blocks never answered: the download failed
	BlockRTT        Latency           `json:"block_rtt_ms"`
	Responses       map[string]uint64 `json:"responses"`
	Errors          []string          `json:"errors,omitempty"` // the first few failures
}

// PhaseResult is what the reporting devices saw in one phase of a firmware
// run ("before", "during", "after" the downloads), by the time of each
// report's first transmission.
type PhaseResult struct {
	Name            string       `json:"name"`
	DurationS       float64      `json:"duration_s"`
	Sent            uint64       `json:"sent"`
	Acked           uint64       `json:"acked"`
	AckedPerSec     float64      `json:"acked_per_s"`
	Timeouts        uint64       `json:"timeouts"`
	Retransmissions uint64       `json:"retransmissions"`
	Skipped         uint64       `json:"skipped_device_busy"`
	Latency         Latency      `json:"latency_ms"`
	Server          *ServerUsage `json:"server,omitempty"`
	Bench           *ServerUsage `json:"bench,omitempty"`
	Machine         *ServerUsage `json:"machine,omitempty"`
}

// Seconds holds percentiles of durations in seconds.
type Seconds struct {
	Count uint64  `json:"count"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	Max   float64 `json:"max"`
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
	r.Latency = latencyOf(&st.latency)
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

func latencyOf(h *histogram) Latency {
	return Latency{Count: h.Count(), Mean: ms(h.Mean()), P50: ms(h.Quantile(0.5)), P90: ms(h.Quantile(0.9)),
		P99: ms(h.Quantile(0.99)), P999: ms(h.Quantile(0.999)), Max: ms(h.Max())}
}

func secondsOf(h *histogram) Seconds {
	s := func(d time.Duration) float64 { return d.Seconds() }
	return Seconds{Count: h.Count(), P50: s(h.Quantile(0.5)), P90: s(h.Quantile(0.9)), P99: s(h.Quantile(0.99)), Max: s(h.Max())}
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
	if r.DTLS != nil {
		p("devices", "%d at %g reports/s each, %s over DTLS (PSK), a session and a socket each", r.NumDevices, r.Rate, r.Config.Server)
	} else {
		p("devices", "%d at %g reports/s each, %s over %d sockets", r.NumDevices, r.Rate, r.Config.Server, r.NumDevices)
	}
	if f := r.Firmware; f != nil {
		p("downloads", "%d devices on their own sockets (plain CoAP), %s requests for /fw/%s in blocks of %d B, all starting %.1f s after the warm-up",
			f.Devices, map[bool]string{false: "NON", true: "CON"}[f.Confirmable], f.SHA256, f.BlockSize, f.StartedAfterS)
	}
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
	if t := r.DTLS; t != nil {
		p("provisioning", "%.2f s for %d devices (CreateDevice, IssueDeviceCredential PSK) over %s", t.ProvisioningS, r.NumDevices, r.Config.GRPC)
		p("handshakes", "%d done, %d failed, %d sessions dropped (no answer, or closed by the server)", t.Handshakes, t.HandshakeFailures, t.SessionsDropped)
		h := t.Handshake
		p("handshake ms", "p50 %.3f  p90 %.3f  p99 %.3f  max %.3f  (mean %.3f, n=%d)", h.P50, h.P90, h.P99, h.Max, h.Mean, h.Count)
		if t.FirstHandshakeErr != "" {
			p("handshake error", "the first: %s", t.FirstHandshakeErr)
		}
	}
	if s := r.Server; s != nil {
		if s.Err != "" {
			p("server", "pid %d: %s", s.PID, s.Err)
		} else {
			p("server", "pid %d: CPU %.1f %% of one core, peak RSS %.1f MiB (%d samples)", s.PID, s.CPUPercent, s.PeakRSSMiB, s.Samples)
		}
	}
	if c := r.Counters; c != nil {
		if c.Err != "" {
			p("server counters", "%s", c.Err)
		} else {
			ops := slices.Sorted(maps.Keys(c.EtcdTxnsPerSecond))
			var txns []string
			for _, op := range ops {
				txns = append(txns, fmt.Sprintf("%s %.1f", op, c.EtcdTxnsPerSecond[op]))
			}
			p("server counters", "%.0f reports accepted/s; etcd transactions/s: %s", c.ReportsAcceptedPerSecond, strings.Join(txns, ", "))
		}
	}
	if f := r.Firmware; f != nil {
		r.writeFirmware(p)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(r.Phases) == 0 {
		return nil
	}
	return r.writePhases(w)
}

// writeFirmware writes the downloads' lines.
func (r *Result) writeFirmware(p func(k, format string, args ...any)) {
	f := r.Firmware
	p("fw outcome", "%d complete and verified (%d B each), %d failed, %d hash mismatches, %d unfinished",
		f.Complete, f.ImageSize, f.Failed, f.HashMismatches, f.Unfinished)
	p("fw completion", "%.1f s until the last download ended", f.CompletionS)
	d, t := f.DeviceTime, f.TransferTime
	p("fw per device s", "p50 %.1f  p90 %.1f  p99 %.1f  max %.1f  (from the start, n=%d)", d.P50, d.P90, d.P99, d.Max, d.Count)
	p("fw transfer s", "p50 %.1f  p90 %.1f  p99 %.1f  max %.1f  (from each device's first block)", t.P50, t.P90, t.P99, t.Max)
	p("fw throughput", "%d blocks, %.0f blocks/s, %.2f MB/s", f.Blocks, f.BlocksPerSec, f.MBPerSec)
	l := f.BlockRTT
	p("fw block rtt ms", "p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f  (mean %.3f)", l.P50, l.P90, l.P99, l.P999, l.Max, l.Mean)
	p("fw waits", "%d 5.03/4.29 with Max-Age waited out, %d retransmissions, %d blocks never answered", f.Busy, f.Retransmissions, f.Timeouts)
	codes := slices.Sorted(maps.Keys(f.Responses))
	var line []string
	for _, c := range codes {
		line = append(line, fmt.Sprintf("%s: %d", c, f.Responses[c]))
	}
	p("fw responses", "%s", strings.Join(line, "  "))
	for _, e := range f.Errors {
		p("fw error", "%s", e)
	}
	if b := r.Bench; b != nil && b.Err == "" {
		p("medfleet-bench", "CPU %.1f %% of one core, peak RSS %.1f MiB", b.CPUPercent, b.PeakRSSMiB)
	}
	if m := r.Machine; m != nil && m.Err == "" {
		p("machine", "CPU %.1f %% of one core busy, all processes (%d CPUs)", m.CPUPercent, runtime.NumCPU())
	}
}

// writePhases writes the reports and the processes' use of the machine
// before, during and after the downloads, as a table.
func (r *Result) writePhases(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "phase\ts\tacked/s\tp50 ms\tp90 ms\tp99 ms\tp99.9 ms\tmax ms\ttimeouts\tskipped\tserver CPU %\tserver RSS MiB\tbench CPU %\tmachine CPU %\t")
	for _, ph := range r.Phases {
		l := ph.Latency
		fmt.Fprintf(tw, "%s\t%.1f\t%.1f\t%.3f\t%.3f\t%.3f\t%.3f\t%.3f\t%d\t%d\t%s\t%s\t%s\t%s\t\n", ph.Name, ph.DurationS, ph.AckedPerSec,
			l.P50, l.P90, l.P99, l.P999, l.Max, ph.Timeouts, ph.Skipped, cpuCell(ph.Server), rssCell(ph.Server), cpuCell(ph.Bench), cpuCell(ph.Machine))
	}
	return tw.Flush()
}

func cpuCell(u *ServerUsage) string {
	if u == nil || u.Err != "" || u.Samples < 2 {
		return "-"
	}
	return fmt.Sprintf("%.1f", u.CPUPercent)
}

// rssCell is the peak RSS of the phase.
func rssCell(u *ServerUsage) string {
	if u == nil || u.Err != "" || u.Samples == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f", u.PeakRSSMiB)
}
