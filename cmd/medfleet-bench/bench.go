package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/medfleet/medfleet/coap"
)

// Config is one load run. main fills it from flags; tests fill it directly.
type Config struct {
	Server   string        // --server: host:port of the CoAP listener (DTLS listener with --dtls)
	Devices  int           // --devices
	Rate     float64       // --rate: reports per second per device
	Duration time.Duration // --duration: the measured window, after the warm-up
	Warmup   time.Duration // --warmup: run but do not measure
	PID      int           // --pid: server process to sample, 0 for none
	Metrics  string        // --metrics: the server's /metrics URL, to read its counters (metrics.go)
	IDPrefix string        // --id-prefix: devices are {prefix}-{000000}
	Profile  string        // --profile
	Lifetime int           // registration lifetime, seconds
	// Baseline (--baseline) measures a bare CoAP server: no registration,
	// and every response counts as answered, whatever its code.
	Baseline bool
	// Firmware, when Firmware.Devices > 0, adds devices that download an
	// image while the reporting devices report (firmware.go).
	Firmware FirmwareConfig

	// DTLS (--dtls) runs every device over its own DTLS session, with a
	// PSK, to Server, medfleetd's DTLS listener (dtls.go). The devices and
	// their keys are made first through medfleetd's gRPC API at GRPC
	// (--grpc, plaintext: medfleetd runs with --insecure-grpc; provision.go).
	DTLS             bool
	GRPC             string
	HandshakeTimeout time.Duration // --handshake-timeout: bounds one handshake
	// RequestTimeout (--request-timeout), when set, ends an exchange that
	// long after its first transmission, retransmissions or not, as
	// medfleet-agent's request timeout (5 s) does; over DTLS the session is
	// then dropped and the next exchange shakes hands again. 0: RFC 7252's
	// retransmissions alone (62-93 s with the defaults).
	RequestTimeout time.Duration
	// Progress, when set, gets a line on provisioning every 10,000 devices.
	Progress io.Writer

	// CoAP transmission parameters (RFC 7252 section 4.8); tests shorten them.
	AckTimeout      time.Duration
	AckRandomFactor float64
	MaxRetransmit   int
	// Drain is how long requests still in flight when the run ends may take
	// to finish; those that do not are counted as unfinished.
	Drain time.Duration
}

// DefaultConfig returns the flags' defaults and RFC 7252's transmission
// parameters.
func DefaultConfig() Config {
	return Config{
		Server:           "127.0.0.1:5683",
		Devices:          1000,
		Rate:             1,
		IDPrefix:         "bench",
		Profile:          coap.ProfileInfusionPump,
		Lifetime:         coap.DefaultLifetime,
		AckTimeout:       2 * time.Second,
		AckRandomFactor:  1.5,
		MaxRetransmit:    4,
		Drain:            5 * time.Second,
		Firmware:         DefaultFirmwareConfig(),
		HandshakeTimeout: 10 * time.Second,
	}
}

const maxRun = time.Hour

// Validate checks the configuration; errors name the flag.
func (c Config) Validate() error {
	var errs []error
	bad := func(flag, format string, args ...any) {
		errs = append(errs, fmt.Errorf("--%s: %s", flag, fmt.Sprintf(format, args...)))
	}
	if _, _, err := net.SplitHostPort(c.Server); err != nil {
		bad("server", "%v", err)
	}
	minDevices := 1
	if c.Firmware.Devices > 0 {
		minDevices = 0 // downloads alone
	}
	if c.Devices < minDevices || c.Devices > 100_000 {
		bad("devices", "%d is outside %d-100000", c.Devices, minDevices)
	}
	if !(c.Rate > 0 && c.Rate <= 100) {
		bad("rate", "%v is outside (0, 100] reports/s per device", c.Rate)
	}
	switch {
	case c.Firmware.Devices > 0 && c.Duration != 0:
		bad("duration", "not with --fw-devices: the downloads set the measured window (--fw-before, at most --fw-timeout, --fw-after)")
	case c.Firmware.Devices == 0 && (c.Duration <= 0 || c.Duration > maxRun):
		bad("duration", "%v is outside (0, 1h]", c.Duration)
	}
	if c.Warmup < 0 || c.Warmup > maxRun {
		bad("warmup", "%v is outside [0, 1h]", c.Warmup)
	}
	if c.PID < 0 {
		bad("pid", "%d is negative", c.PID)
	}
	if err := coap.ValidateDeviceID(deviceID(c.IDPrefix, max(c.Devices-1, 0))); err != nil {
		bad("id-prefix", "%v", err)
	}
	if err := coap.ValidateProfile(c.Profile); err != nil {
		bad("profile", "%v", err)
	}
	if c.Lifetime < coap.MinLifetime || c.Lifetime > coap.MaxLifetime {
		bad("lifetime", "%d is outside %d-%d s", c.Lifetime, coap.MinLifetime, coap.MaxLifetime)
	}
	errs = append(errs, c.Firmware.validate(c.IDPrefix, c.Baseline)...)
	switch {
	case c.DTLS && c.GRPC == "":
		bad("grpc", "required with --dtls: the devices and their PSKs are made through medfleetd's API")
	case !c.DTLS && c.GRPC != "":
		bad("grpc", "only with --dtls")
	case c.DTLS:
		if _, _, err := net.SplitHostPort(c.GRPC); err != nil {
			bad("grpc", "%v", err)
		}
	}
	if c.DTLS && c.Baseline {
		bad("dtls", "not with --baseline: the bare servers speak plain CoAP")
	}
	if c.DTLS && c.Firmware.Devices > 0 {
		bad("dtls", "not with --fw-devices: downloads are plain CoAP")
	}
	if c.HandshakeTimeout <= 0 || c.HandshakeTimeout > time.Minute {
		bad("handshake-timeout", "%v is outside (0, 1m]", c.HandshakeTimeout)
	}
	if c.RequestTimeout < 0 || c.RequestTimeout > 5*time.Minute {
		bad("request-timeout", "%v is outside 0-5m", c.RequestTimeout)
	}
	if c.AckTimeout <= 0 || c.AckRandomFactor < 1 || c.MaxRetransmit < 0 || c.MaxRetransmit > 10 || c.Drain < 0 {
		errs = append(errs, fmt.Errorf("transmission parameters: ack timeout %v, random factor %v, max retransmit %d, drain %v",
			c.AckTimeout, c.AckRandomFactor, c.MaxRetransmit, c.Drain))
	}
	return errors.Join(errs...)
}

func deviceID(prefix string, i int) string { return fmt.Sprintf("%s-%06d", prefix, i) }

// stats are the run's counters, shared by all devices.
type stats struct {
	attempted, sent, acked, answered, timeouts, retransmissions, skipped, unfinished atomic.Uint64
	resets, separate, backoffs                                                       atomic.Uint64
	registrations, registrationFailures, reregistrations                             atomic.Uint64
	codes                                                                            [256]atomic.Uint64
	latency                                                                          histogram
	// Over DTLS: sessions opened and failed handshakes, handshake times,
	// sessions dropped (no answer, or closed by the server), and the first
	// failure's error.
	handshakes, handshakeFailures, sessionsDropped atomic.Uint64
	handshake                                      histogram
	handshakeErr                                   atomic.Pointer[string]
	// phases splits the reports into before, during and after the
	// downloads; nil without them.
	phases *phaseClock
}

// DeviceResult is what one device did, for tests and for -json consumers
// that want it (it is not printed).
type DeviceResult struct {
	ID      string
	Reports uint64  // distinct reports acknowledged (2.04)
	LastSeq uint64  // seq of the last acknowledged report
	Usage   float64 // usage counter of the last acknowledged report
}

// Run runs the load and returns what it measured. It returns early, with
// what it measured so far, when ctx is cancelled; every device goroutine
// has stopped and every socket is closed when it returns.
//
// Without firmware devices the measured window is --duration after the
// warm-up. With them it is: --fw-before of reports alone, then the
// downloads, all starting at once and lasting until the last one ended (at
// most --fw-timeout), then --fw-after of reports alone.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	raddr, err := net.ResolveUDPAddr("udp", cfg.Server)
	if err != nil {
		return nil, fmt.Errorf("--server: %w", err)
	}
	devs := make([]*device, 0, cfg.Devices)
	var fw *firmwareRun
	defer func() {
		for _, d := range devs {
			d.stopConn()
		}
		fw.close()
	}()
	interval := time.Duration(float64(time.Second) / cfg.Rate)
	st := &stats{}
	for i := range cfg.Devices {
		var c packetConn // over DTLS, the device's first exchange opens a session
		if !cfg.DTLS {
			if c, err = net.DialUDP("udp", nil, raddr); err != nil {
				return nil, fmt.Errorf("device %d: %w", i, err)
			}
		}
		d := newDevice(deviceID(cfg.IDPrefix, i), i, c, &cfg, st)
		d.raddr = raddr
		devs = append(devs, d)
	}
	var provisioning time.Duration
	if cfg.DTLS {
		t0 := time.Now()
		if err := provision(ctx, &cfg, devs); err != nil {
			return nil, err
		}
		provisioning = time.Since(t0)
	}

	start := time.Now().Add(20 * time.Millisecond)
	measureFrom := start.Add(cfg.Warmup)
	end := measureFrom.Add(cfg.Duration)
	if cfg.Firmware.Devices > 0 {
		f := cfg.Firmware
		end = measureFrom.Add(f.Before + f.Timeout + f.After) // the latest it can be
		st.phases = &phaseClock{fwStart: measureFrom.Add(f.Before)}
		if fw, err = newFirmwareRun(&cfg, raddr, st.phases.fwStart); err != nil {
			return nil, err
		}
	}
	win := newWindow(measureFrom, end)
	runCtx, cancel := context.WithDeadline(ctx, end.Add(cfg.Drain))
	defer cancel()

	// With downloads, the load generator's own use of the machine and the
	// machine's are sampled too: the rest of the machine is someone else's
	// load on a shared machine.
	var sampler, self, machine *procSampler
	if cfg.PID > 0 {
		sampler = newProcSampler(cfg.PID)
	}
	if fw != nil {
		self, machine = newProcSampler(os.Getpid()), newProcSampler(machinePID)
	}
	counters := watchCounters(ctx, cfg.Metrics, win)
	var samplers sync.WaitGroup
	for _, s := range []*procSampler{sampler, self, machine} {
		if s != nil {
			samplers.Go(func() { s.run(ctx, win) })
		}
	}

	var wg sync.WaitGroup
	for i, d := range devs {
		offset := time.Duration(int64(interval) * int64(i) / int64(cfg.Devices))
		wg.Go(func() { d.run(runCtx, start.Add(offset), interval, win) })
	}
	if fw != nil {
		wg.Go(func() {
			fwEnd := fw.run(runCtx, func() { sampler.sample(); self.sample(); machine.sample() })
			st.phases.end(fwEnd)
			end := fwEnd.Add(cfg.Firmware.After)
			win.setEnd(end)
			stop := time.AfterFunc(time.Until(end.Add(cfg.Drain)), cancel)
			context.AfterFunc(runCtx, func() { stop.Stop() })
		})
	}
	wg.Wait()
	samplers.Wait()

	res := &Result{Config: cfg, Interrupted: ctx.Err() != nil}
	measured := win.End().Sub(win.start)
	if res.Interrupted {
		measured = max(time.Since(win.start), 0)
		measured = min(measured, win.End().Sub(win.start))
	}
	res.fill(st, measured)
	if cfg.DTLS {
		res.DTLS = dtlsResult(st, provisioning)
	}
	if sampler != nil {
		res.Server = sampler.result(win.start, win.End())
	}
	res.Counters = counters()
	if fw != nil {
		res.Firmware = fw.result()
		res.Phases = st.phases.results(win, sampler, self, machine)
		res.Bench = self.result(win.start, win.End())
		res.Machine = machine.result(win.start, win.End())
	}
	for _, d := range devs {
		res.Devices = append(res.Devices, DeviceResult{ID: d.id, Reports: d.acked, LastSeq: d.lastAckedSeq, Usage: d.lastAckedUsage})
	}
	return res, nil
}

// window is the measured part of the run: requests due in [start, end).
// Its end may move earlier once (setEnd): when the downloads are over.
type window struct {
	start   time.Time
	end     atomic.Int64  // unix ns
	changed chan struct{} // closed by setEnd
	once    sync.Once
}

func newWindow(start, end time.Time) *window {
	w := &window{start: start, changed: make(chan struct{})}
	w.end.Store(end.UnixNano())
	return w
}

// End returns the end of the window as it is now known.
func (w *window) End() time.Time { return time.Unix(0, w.end.Load()) }

// setEnd moves the end; only the first call counts.
func (w *window) setEnd(t time.Time) {
	w.once.Do(func() {
		w.end.Store(t.UnixNano())
		close(w.changed)
	})
}

func (w *window) has(t time.Time) bool { return !t.Before(w.start) && t.UnixNano() < w.end.Load() }

// codeString writes a CoAP code as class.detail ("2.04").
func codeString(c uint8) string {
	return strconv.Itoa(int(c>>5)) + "." + fmt.Sprintf("%02d", c&0x1f)
}
