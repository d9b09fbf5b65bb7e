package agent

import (
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/medfleet/medfleet/coap"
)

// Attribute keys of the agent's log lines.
const (
	keyDevice   = "device"
	keyProfile  = "profile"
	keyServer   = "server"
	keySeq      = "seq"
	keyAbove    = "above"
	keyPending  = "pending"
	keyDropped  = "dropped"
	keyLimit    = "limit"
	keyInterval = "interval"
	keyLifetime = "lifetime"
	keyRetryIn  = "retry_in"
	keyCode     = "code"
	keyDiag     = "diagnostic"
	keyRevision = "config_revision"
	keyErr      = "err"
	keyReason   = "reason"
	keyOffset   = "offset"
	keyBytes    = "bytes"
	keyPath     = "path"
	keyDevices  = "devices"
	keyKind     = "kind"
	keyMode     = "mode"
	keyVersion  = "version"
	keySHA256   = "sha256"
	keyFWState  = "fw_state"
	keyFWResult = "fw_result"
	keyState    = "state"
)

// stopFlushTimeout bounds how long a stopping agent tries to deliver its
// queue and learn that it is stored (asking every stopSettlePoll);
// deregistration gets at most stopDeleteTimeout more.
const (
	stopFlushTimeout  = 2 * time.Second
	stopSettlePoll    = 250 * time.Millisecond
	stopDeleteTimeout = time.Second
)

// trouble is why the agent is not talking to the server right now.
type trouble int

const (
	troubleNone        trouble = iota
	troubleUnreachable         // timeout, network error, 5.xx: exponential backoff
	troubleBusy                // 4.29, or 5.03 with Max-Age: wait Max-Age
	troubleRefused             // 4.03: wait RefusedBackoff
	troubleHandshake           // DTLS handshake failed: exponential backoff
)

// Agent is one device's agent: it registers, reports on an interval, queues
// what the server has not acknowledged, and follows the server's desired
// state. Create it with New and run it with Run, once.
type Agent struct {
	cfg     Config
	log     *slog.Logger
	started atomic.Bool

	// now and heartbeatEvery are fields so that tests can tighten them.
	now            func() time.Time
	heartbeatEvery time.Duration
	// tick, when set (by a Simulator), drives the agent's connection;
	// otherwise Run runs its own.
	tick *ticker
	// enrolToken, when set (by a Simulator), gives the agent a token to
	// enrol with when it has no credential and Config.EnrolToken is empty.
	enrolToken func(ctx context.Context, device string) (string, error)
	// inFleet is set by a Simulator, which says once for all its devices
	// what they all would say.
	inFleet bool
	// world, set by a Simulator with a World, is the device's part in it:
	// the view of a reader, or the position of a tagged device, which
	// learns the device's clinical state from its reports.
	world *worldMember

	// Safe for any goroutine: the firmware as last published, a forced
	// in_use (Simulator.SetInUse), and the loop's wake-up for a change of
	// it.
	fwStatus     atomic.Pointer[FirmwareStatus]
	inUse        atomic.Bool
	stateChanged atomic.Bool
	poke         chan struct{}
	// truth is what the device has made so far (Simulator.Truth); quiet
	// stops it making reports (Simulator.Quiesce).
	truth atomic.Pointer[Truth]
	quiet atomic.Bool

	// Everything below is owned by the goroutine that calls Run.
	rnd         *rand.Rand
	retry       backoff
	link        *link
	queue       Queue
	profile     Profile
	realStart   time.Time
	simStart    time.Time
	simNow      time.Time // simulated time of the newest report
	lastSeq     uint64
	dropped     uint64
	interval    time.Duration
	lastReport  time.Time
	registered  bool
	lastContact time.Time
	retryAt     time.Time
	trouble     trouble
	queueFull   bool
	saved       State // as last written to device.json
	stopping    bool
	cfgRevision uint64
	clinical    string   // the device's state in its latest report
	fw          firmware // the firmware update machine (firmware.go)
	// fatal is why the agent cannot go on (an enrolment the server
	// refused): the loop ends and Run returns it.
	fatal error

	// delivered is the newest report the server accepted without yet
	// storing it (the desired state's stored): such reports stay queued,
	// unsent, until a later answer says they are stored. Any failed
	// exchange or new registration sets it back to the queue's acked
	// point, so that they are sent again in order.
	delivered uint64

	// DTLS (unless Config.Insecure).
	cas       []*x509.Certificate // Config.CA and CAFile
	creds     *credential         // nil until the agent has one
	credsSeen []byte              // contents of the credentials file as last read
	token     string              // from enrolToken, kept until it is used
	enrolKey  *ecdsa.PrivateKey   // of a certificate enrolment, kept across retries
}

// New validates cfg (after applying defaults) and returns an agent that has
// not started anything yet.
func New(cfg Config, log *slog.Logger) (*Agent, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("agent: config: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &Agent{
		cfg:            cfg,
		log:            log.With(slog.String(keyDevice, cfg.DeviceID)),
		now:            time.Now,
		heartbeatEvery: cfg.Lifetime / 2,
		poke:           make(chan struct{}, 1),
	}
	switch {
	case cfg.Installer != nil:
		a.fw.installer = cfg.Installer
	case len(cfg.FirmwareUpdate.InstallCommand) > 0:
		a.fw.installer = newCommandInstaller(cfg.FirmwareUpdate)
	default:
		a.fw.installer = simInstaller{device: cfg.DeviceID}
	}
	a.fw.retryAfter = DefaultFirmwareRetry
	a.fw.st = firmwareState{Running: cfg.Firmware, Configured: cfg.Firmware}
	a.publishFirmware()
	return a, nil
}

// setInUse forces the device's clinical state to in_use, or gives it back
// to its profile; a change is reported at once. Safe for any goroutine.
func (a *Agent) setInUse(inUse bool) {
	if a.inUse.Swap(inUse) != inUse {
		a.stateChanged.Store(true)
		select {
		case a.poke <- struct{}{}:
		default:
		}
	}
}

// Run runs the agent until ctx is cancelled, then stops gracefully: it
// takes a last report, tries for up to two seconds to deliver the queue,
// deregisters and saves its state. Over DTLS, an agent without a credential
// first enrols for one with its token. It returns nil after a graceful
// stop, and an error when the agent cannot start (its state directory, CA
// or credentials file is not usable; ErrNoCredential: it has no credential
// and no token) or cannot go on (ErrEnrolRefused: the server refused the
// token). Every goroutine it starts has ended when it returns.
func (a *Agent) Run(ctx context.Context) error {
	if !a.started.CompareAndSwap(false, true) {
		return errors.New("agent: Run called twice")
	}
	if err := a.openCredentials(); err != nil {
		return err
	}
	if err := a.open(); err != nil {
		return err
	}
	if err := a.openFirmware(); err != nil {
		a.fw.stage.close()
		_ = a.queue.Close()
		return err
	}
	defer a.fw.stage.close()
	tick := a.tick
	if tick == nil {
		tick = newTicker(retransmitTick)
		tickCtx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Go(func() { tick.run(tickCtx) })
		defer func() {
			cancel()
			wg.Wait()
		}()
	}
	a.link = &link{server: a.cfg.Server, log: a.log, tick: tick, handshakeTimeout: a.cfg.HandshakeTimeout}
	mode := "dtls"
	if a.cfg.Insecure {
		mode = "insecure"
		if !a.inFleet {
			a.log.Warn("insecure: plain CoAP, the server cannot authenticate this device")
		}
	} else {
		a.link.dtls = a.sessionOptions
	}
	defer a.link.close()
	a.log.Info("agent started", slog.String(keyProfile, a.cfg.Profile), slog.String(keyServer, a.cfg.Server),
		slog.String(keyMode, mode), slog.Uint64(keySeq, a.lastSeq), slog.Int(keyPending, a.queue.Len()))
	a.loop(ctx)
	return errors.Join(a.fatal, a.stop(ctx))
}

// open restores the device from StateDir: the state file, then the queue,
// whose newest report is more recent than the state file after a crash.
func (a *Agent) open() error {
	h := fnv.New64a()
	h.Write([]byte(a.cfg.DeviceID))
	seed := uint64(a.cfg.Seed) ^ h.Sum64()
	a.rnd = rand.New(rand.NewPCG(seed, 0x6a6974746572)) // jitter
	a.retry = backoff{min: a.cfg.RetryMin, max: a.cfg.RetryMax, rnd: a.rnd}
	a.interval = a.cfg.Interval
	a.realStart = a.now()
	a.simStart = a.realStart

	var st State
	if a.cfg.StateDir == "" {
		a.queue = NewMemoryQueue(a.cfg.QueueLimit)
	} else {
		var err error
		if st, err = a.loadState(); err != nil {
			return err
		}
		if st.SimTime.After(a.simStart) {
			a.simStart = st.SimTime // a time-scaled device's clock does not go back
		}
		if a.queue, err = OpenQueue(a.cfg.StateDir, st.AckedSeq, a.cfg.QueueLimit, !a.cfg.NoSync, a.log); err != nil {
			return err
		}
		a.saved = st
	}
	profile, err := NewProfile(a.cfg.Profile, seed, a.simStart)
	if err != nil {
		_ = a.queue.Close()
		return err
	}
	a.profile = profile
	if a.world != nil {
		a.world.attach(profile)
	}
	a.simNow = a.simStart
	a.dropped = st.Dropped
	a.lastSeq = max(st.LastSeq, a.queue.Acked())
	counters := Counters{Usage: st.Usage, Alarms: st.Alarms, Other: st.Counters}
	if last, ok := a.queue.Last(); ok && last.Seq > st.LastSeq {
		// The agent did not stop cleanly: the newest queued report carries
		// newer counters than the state file.
		a.lastSeq = last.Seq
		c, err := countersFromPack(last.Pack, profile.Counters())
		if err != nil {
			a.log.Warn("cannot read the counters of the newest queued report", slog.Uint64(keySeq, last.Seq), slog.Any(keyErr, err))
		} else {
			counters = c
		}
	}
	profile.Restore(counters)
	a.publishTruth()
	return nil
}

// loadState reads device.json. A missing file is a new device; an
// unreadable one is moved aside (the queue still restores the counters of
// its newest report) rather than keeping the device offline.
func (a *Agent) loadState() (State, error) {
	if err := os.MkdirAll(a.cfg.StateDir, 0o700); err != nil {
		return State{}, fmt.Errorf("agent: state_dir: %w", err)
	}
	st, err := ReadState(a.cfg.StateDir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return State{}, nil
	case err != nil:
		path := filepath.Join(a.cfg.StateDir, StateFile)
		aside := fmt.Sprintf("%s.corrupt-%d", path, time.Now().UnixNano())
		a.log.Error("state file unreadable, moved aside; starting from the queue", slog.String(keyPath, aside), slog.Any(keyErr, err))
		if err := os.Rename(path, aside); err != nil {
			return State{}, fmt.Errorf("agent: state: %w", err)
		}
		return State{}, nil
	}
	if st.DeviceID != "" && st.DeviceID != a.cfg.DeviceID {
		return State{}, fmt.Errorf("agent: state_dir: %s holds the state of device %q, not %q", a.cfg.StateDir, st.DeviceID, a.cfg.DeviceID)
	}
	return st, nil
}

// countersFromPack reads a device's counters from one of its reports; want
// says which other counters the profile keeps.
func countersFromPack(pack []byte, want Counters) (Counters, error) {
	p, err := coap.DecodePack(coap.FormatSenMLCBOR, pack)
	if err != nil {
		return Counters{}, err
	}
	r, err := coap.ParseReport(p)
	if err != nil {
		return Counters{}, err
	}
	c := Counters{Alarms: r.Alarms}
	if r.Usage != nil {
		c.Usage = *r.Usage
	}
	for name := range want.Other {
		if v, ok := r.Telemetry[name]; ok {
			if c.Other == nil {
				c.Other = map[string]float64{}
			}
			c.Other[name] = v
		}
	}
	return c, nil
}

// loop takes reports on the interval and talks to the server when there is
// something to say and no backoff to wait out, until ctx is cancelled.
func (a *Agent) loop(ctx context.Context) {
	timer := time.NewTimer(0) // since Go 1.23, Reset needs no draining
	defer timer.Stop()
	for {
		now := a.now()
		changed := a.stateChanged.Swap(false)
		if changed || a.lastReport.IsZero() || !now.Before(a.lastReport.Add(a.interval)) {
			a.takeReport(now)
		}
		if !now.Before(a.exchangeAt(now)) {
			a.sync(ctx)
			if ctx.Err() != nil || a.fatal != nil {
				return
			}
		}
		a.firmwareStep(ctx)
		if ctx.Err() != nil {
			return
		}
		now = a.now()
		wake := a.lastReport.Add(a.interval)
		if at := a.exchangeAt(now); at.Before(wake) {
			wake = at
		}
		if at := a.firmwareWake(now); !at.IsZero() && at.Before(wake) {
			wake = at
		}
		timer.Reset(max(0, wake.Sub(now)))
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-a.poke:
		}
	}
}

// exchangeAt is when the agent next wants to talk to the server: at once
// when it is not registered or has reports to send, at heartbeat time
// otherwise, and never before a backoff has run out.
func (a *Agent) exchangeAt(now time.Time) time.Time {
	at := now
	if a.registered && !a.unsent() {
		at = a.lastContact.Add(a.heartbeatEvery)
	}
	if at.Before(a.retryAt) {
		at = a.retryAt
	}
	return at
}

// simTime maps real time to the simulated device's clock.
func (a *Agent) simTime(now time.Time) time.Time {
	d := float64(now.Sub(a.realStart)) * a.cfg.TimeScale
	return a.simStart.Add(time.Duration(min(d, math.MaxInt64/2)))
}

// takeReport advances the simulated device to now and queues its report.
// The counters move only here, so the state file's counters are those of
// the newest report.
func (a *Agent) takeReport(now time.Time) {
	a.lastReport = now
	if a.quiet.Load() {
		return
	}
	a.simNow = a.simTime(now)
	a.profile.Step(a.simNow)
	r := a.profile.Sample()
	a.lastSeq++
	r.Seq = a.lastSeq
	if a.inUse.Load() {
		r.State = coap.StateInUse
	}
	a.clinical = r.State
	if a.world != nil {
		a.world.observe(r.State)
	}
	r.Firmware = a.fw.st.Running
	r.FirmwareState, r.FirmwareResult = ptr(a.fw.st.State), ptr(a.fw.st.Result)
	body, err := coap.EncodePack(coap.FormatSenMLCBOR, r.Pack())
	if err != nil {
		a.log.Error("cannot encode a report", slog.Uint64(keySeq, r.Seq), slog.Any(keyErr, err))
		return
	}
	dropped, err := a.queue.Append(Entry{Seq: r.Seq, Pack: body})
	if err != nil {
		a.log.Error("cannot queue a report; it is lost, the next one carries the counters",
			slog.Uint64(keySeq, r.Seq), slog.Any(keyErr, err))
		a.dropped++
		a.publishTruth()
		return
	}
	defer a.publishTruth()
	a.log.Debug("report queued", slog.Uint64(keySeq, r.Seq), slog.Int(keyPending, a.queue.Len()))
	if dropped > 0 {
		a.dropped += uint64(dropped)
		if !a.queueFull {
			a.queueFull = true
			a.log.Warn("queue full: dropping the oldest reports (counters are cumulative, usage is kept)",
				slog.Int(keyLimit, a.cfg.QueueLimit))
		}
	}
}

// sync talks to the server, then schedules the next attempt after a
// failure and logs what changed.
func (a *Agent) sync(ctx context.Context) {
	err := a.exchange(ctx)
	if ctx.Err() != nil {
		return // stopping: stop does the rest
	}
	now := a.now()
	if err == nil {
		a.retry.reset()
		a.retryAt = time.Time{}
		if a.trouble != troubleNone {
			a.log.Info("server reachable again", slog.Int(keyPending, a.queue.Len()))
			a.trouble = troubleNone
		}
		if a.queueFull && a.queue.Len() < a.cfg.QueueLimit {
			a.queueFull = false
		}
		a.checkpoint(false)
		return
	}
	if errors.Is(err, ErrEnrolRefused) {
		a.fatal = err
		a.log.Error("enrolment refused; the token will not be tried again: the device needs a new one",
			slog.Int(keyPending, a.queue.Len()), slog.Any(keyErr, err))
		return
	}
	// The server may have lost what it accepted and had not stored: the
	// next exchange sends every unsettled report again, oldest first.
	a.delivered = a.queue.Acked()
	kind, wait := a.classify(err)
	a.retryAt = now.Add(wait)
	if kind != a.trouble {
		attrs := []any{slog.Duration(keyRetryIn, wait), slog.Int(keyPending, a.queue.Len()), slog.Any(keyErr, err)}
		switch kind {
		case troubleRefused:
			a.log.Warn("server refused the device; keeping the queue and waiting", attrs...)
		case troubleHandshake:
			a.log.Warn("DTLS handshake failed; retrying with backoff, with the credentials file read again", attrs...)
		case troubleBusy:
			a.log.Info("server busy; waiting as it asked", attrs...)
		default:
			a.log.Info("server unreachable; queueing reports", attrs...)
		}
		a.trouble = kind
	}
	a.checkpoint(false)
}

// classify says what kind of failure err is and how long to wait.
func (a *Agent) classify(err error) (trouble, time.Duration) {
	var se *StatusError
	switch {
	case errors.Is(err, ErrRefused):
		a.registered = false // register again when the wait is over: the way back in
		// A new session after the wait reads the credentials file again:
		// the refusal may be of a credential that was rotated or revoked.
		a.link.close()
		return troubleRefused, jitter(a.rnd, a.cfg.RefusedBackoff)
	case errors.Is(err, ErrHandshake):
		return troubleHandshake, a.retry.next()
	case errors.As(err, &se) && (se.Code == codes.TooManyRequests || se.Code == codes.ServiceUnavailable) && se.MaxAge > 0:
		return troubleBusy, jitter(a.rnd, se.MaxAge)
	}
	return troubleUnreachable, a.retry.next()
}

// exchange registers when needed, sends the queue oldest first and
// heartbeats when nothing else was said for half the lifetime. A 4.04 makes
// it register again, once.
func (a *Agent) exchange(ctx context.Context) error {
	reregistered := false
	for {
		err := a.exchangeOnce(ctx)
		if errors.Is(err, ErrUnknown) && !reregistered {
			a.log.Info("server does not know the registration; registering again")
			a.registered = false
			reregistered = true
			continue
		}
		return err
	}
}

func (a *Agent) exchangeOnce(ctx context.Context) error {
	if !a.cfg.Insecure && a.creds == nil {
		a.reloadCredentials() // an operator may have dropped one in
		if a.creds == nil {
			if err := a.enrol(ctx); err != nil {
				return err
			}
		}
	}
	if !a.registered {
		if err := a.register(ctx); err != nil {
			return err
		}
	}
	for a.unsent() {
		if err := ctx.Err(); err != nil {
			return err
		}
		e, ok, err := a.queue.Next(max(a.delivered, a.queue.Acked()))
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		if err := a.report(ctx, e); err != nil {
			return err
		}
		if now := a.now(); !a.stopping && !now.Before(a.lastReport.Add(a.interval)) {
			a.takeReport(now) // a long backlog does not hold up the device's own reports
		}
	}
	if !a.now().Before(a.lastContact.Add(a.heartbeatEvery)) {
		return a.heartbeat(ctx)
	}
	return nil
}

// unsent reports whether queued reports wait to be sent: pending ones
// above those the server has accepted and not yet stored.
func (a *Agent) unsent() bool {
	last, ok := a.queue.Last()
	return ok && a.queue.Len() > 0 && last.Seq > max(a.delivered, a.queue.Acked())
}

// register is POST /rd?ep={id}&lt={seconds} with the registration map.
func (a *Agent) register(ctx context.Context) error {
	reg := a.cfg.registration()
	reg.Firmware = a.fw.st.Running // after an update, not the configured one
	body, err := reg.Encode(coap.FormatCBOR)
	if err != nil {
		return fmt.Errorf("agent: registration: %w", err)
	}
	resp, err := a.link.do(ctx, a.cfg.RequestTimeout, request{
		method: codes.POST, path: coap.PathRegistration, format: coap.FormatCBOR, body: body, accept: true,
		queries: []string{
			coap.QueryEndpoint + "=" + a.cfg.DeviceID,
			coap.QueryLifetime + "=" + strconv.Itoa(int(a.cfg.Lifetime/time.Second)),
		},
	})
	if err != nil {
		return err
	}
	switch resp.code {
	case codes.Created, codes.Changed:
	case codes.BadRequest:
		// The server will not take this registration until someone fixes
		// the configuration: as good as refused.
		a.log.Error("server refused the registration", slog.String(keyDiag, resp.diagnostic()))
		return fmt.Errorf("%w: registration: %s", ErrRefused, resp.diagnostic())
	default:
		return statusError("register", resp)
	}
	a.registered = true
	a.delivered = a.queue.Acked() // a new registration: the server may have lost the unsettled ones
	a.lastContact = a.now()
	a.log.Info("registered", slog.String(keyServer, a.cfg.Server), slog.Duration(keyLifetime, a.cfg.Lifetime),
		slog.Int(keyPending, a.queue.Len()))
	return a.follow(resp, 0)
}

// report is POST /dp?ep={id}&held={seq} with one queued report; held is
// the oldest report the agent holds unstored, so that a server that lost
// the ones before e (a replica that died) answers with its own seq instead
// of accepting e over them.
func (a *Agent) report(ctx context.Context, e Entry) error {
	held, ok := a.queue.First()
	if !ok || held > e.Seq {
		held = e.Seq
	}
	resp, err := a.link.do(ctx, a.cfg.RequestTimeout, request{
		method: codes.POST, path: coap.PathData, format: coap.FormatSenMLCBOR, body: e.Pack, accept: true,
		queries: []string{coap.QueryEndpoint + "=" + a.cfg.DeviceID, coap.QueryHeld + "=" + strconv.FormatUint(held, 10)},
		trace:   a.fw.traces[e.Seq], // of a firmware transition
	})
	if err != nil {
		return err
	}
	switch {
	case resp.code == codes.Changed:
		a.lastContact = a.now()
		return a.follow(resp, e.Seq)
	case poison(resp.code):
		// A refused request is not contact (protocol section 5.3): it does
		// not put off the heartbeat.
		a.log.Error("server refused a report; dropped it", slog.Uint64(keySeq, e.Seq),
			slog.String(keyCode, resp.code.String()), slog.String(keyDiag, resp.diagnostic()))
		a.dropped++
		a.publishTruth()
		return a.queue.Ack(e.Seq)
	}
	return statusError("report", resp)
}

// heartbeat is POST /rd/{id} with an empty body.
func (a *Agent) heartbeat(ctx context.Context) error {
	resp, err := a.link.do(ctx, a.cfg.RequestTimeout, request{
		method: codes.POST, path: coap.PathRegistration + "/" + a.cfg.DeviceID, accept: true,
	})
	if err != nil {
		return err
	}
	if resp.code != codes.Changed {
		return statusError("heartbeat", resp)
	}
	a.lastContact = a.now()
	a.log.Debug("heartbeat")
	return a.follow(resp, 0)
}

// deregister is DELETE /rd/{id}.
func (a *Agent) deregister(ctx context.Context) error {
	resp, err := a.link.do(ctx, a.cfg.RequestTimeout, request{
		method: codes.DELETE, path: coap.PathRegistration + "/" + a.cfg.DeviceID,
	})
	if err != nil {
		return err
	}
	if resp.code != codes.Deleted && resp.code != codes.NotFound {
		return statusError("deregister", resp)
	}
	a.registered = false
	return nil
}

// follow applies a response's desired state. sent is the report the
// response acknowledges, 0 when it answers something else.
func (a *Agent) follow(resp response, sent uint64) error {
	d, err := resp.desired()
	if err != nil {
		a.log.Warn("unreadable desired state from the server", slog.Any(keyErr, err))
		d = nil
	}
	var seq uint64
	if d != nil {
		seq = d.Seq
	}
	if seq > a.lastSeq {
		// The server has accepted higher numbers than this agent remembers
		// (it lost its state, or the id was used before): it would drop
		// every pending report as a replay, including the one just sent.
		pending := a.queue.Len()
		if err := a.queue.Renumber(seq, setSeq); err != nil {
			return err
		}
		a.lastSeq = seq + uint64(pending)
		a.delivered = seq
		a.log.Info("server is ahead of this agent's sequence numbers; continuing above them",
			slog.Uint64(keyAbove, seq), slog.Int(keyPending, pending))
	} else {
		// The server has accepted everything up to max(sent, seq) (a
		// sequence number it reports within the queue was delivered before
		// the agent noticed), and stored everything up to stored.
		accepted := max(sent, seq)
		if d != nil && seq < sent {
			// Not applied: the server lacks earlier reports this agent
			// holds (they went to a replica that died); they go first.
			accepted = seq
		}
		stored := accepted
		if d != nil && d.Stored != nil {
			stored = min(*d.Stored, accepted)
		}
		if seq < a.delivered && (sent == 0 || seq < sent) {
			// The server knows less than it accepted before: it lost its
			// memory (a restart, another replica) and the unsettled
			// reports go again.
			a.delivered = max(seq, a.queue.Acked())
		}
		a.delivered = max(a.delivered, accepted)
		if stored > a.queue.Acked() {
			if err := a.queue.Ack(stored); err != nil {
				return err
			}
		}
	}
	if d == nil {
		return nil
	}
	if d.Interval > 0 {
		if iv := min(time.Duration(d.Interval)*time.Second, MaxInterval); iv != a.interval {
			a.log.Info("report interval changed by the server", slog.Duration(keyInterval, iv))
			a.interval = iv
		}
	}
	if d.ConfigRevision != a.cfgRevision {
		// There is no device configuration to fetch yet (protocol v1).
		a.log.Debug("configuration revision changed", slog.Uint64(keyRevision, d.ConfigRevision))
		a.cfgRevision = d.ConfigRevision
	}
	a.followFirmware(d.Firmware)
	return nil
}

// Truth is what a device has made so far: what the server's view of it
// must reach once every report is delivered.
type Truth struct {
	LastSeq      uint64  // sequence number of the newest report
	Dropped      uint64  // reports settled without delivery (a full queue, a refused report)
	UsageSeconds float64 // the usage counter of the newest report (cumulative)
}

// publishTruth makes the device's Truth readable from other goroutines.
func (a *Agent) publishTruth() {
	a.truth.Store(&Truth{LastSeq: a.lastSeq, Dropped: a.dropped, UsageSeconds: a.profile.Counters().Usage})
}

// setSeq rewrites the seq record of a queued SenML-CBOR pack.
func setSeq(seq uint64, pack []byte) ([]byte, error) {
	p, err := coap.DecodePack(coap.FormatSenMLCBOR, pack)
	if err != nil {
		return nil, err
	}
	found := false
	for i := range p {
		if p[i].Name == coap.NameSeq {
			v := float64(seq)
			p[i].Value = &v
			found = true
		}
	}
	if !found {
		return nil, errors.New("no seq record")
	}
	return coap.EncodePack(coap.FormatSenMLCBOR, p)
}

// checkpoint writes device.json when something worth keeping changed, or
// always when the agent stops.
func (a *Agent) checkpoint(stopped bool) {
	if a.cfg.StateDir == "" {
		return
	}
	c := a.profile.Counters()
	st := State{
		DeviceID: a.cfg.DeviceID,
		Profile:  a.cfg.Profile,
		Usage:    c.Usage,
		Alarms:   c.Alarms,
		Counters: c.Other,
		LastSeq:  a.lastSeq,
		AckedSeq: a.queue.Acked(),
		Pending:  a.queue.Len(),
		Dropped:  a.dropped,
		SimTime:  a.simNow,
		Stopped:  stopped,
	}
	if !stopped && st.LastSeq == a.saved.LastSeq && st.AckedSeq == a.saved.AckedSeq && st.Dropped == a.saved.Dropped {
		return
	}
	st.SavedAt = time.Now().UTC()
	if err := writeState(a.cfg.StateDir, st, !a.cfg.NoSync); err != nil {
		a.log.Error("cannot save the device state", slog.Any(keyErr, err))
		return
	}
	a.saved = st
}

// stop takes a last report, tries to deliver the queue, deregisters and
// saves the state.
func (a *Agent) stop(ctx context.Context) error {
	a.stopping = true
	a.takeReport(a.now())
	base := context.WithoutCancel(ctx)
	delivered := false
	if a.trouble != troubleRefused && a.fatal == nil && (a.cfg.Insecure || a.creds != nil) {
		flushCtx, cancel := context.WithTimeout(base, stopFlushTimeout)
		err := a.exchange(flushCtx)
		// What the server accepted it may not have stored yet: ask until it
		// has (a heartbeat's answer says), within the flush time. What is
		// still unsettled then is sent again at the next start.
		for err == nil && a.queue.Len() > 0 && !a.unsent() && a.registered {
			select {
			case <-flushCtx.Done():
			case <-time.After(stopSettlePoll):
			}
			if flushCtx.Err() != nil || a.heartbeat(flushCtx) != nil {
				break
			}
		}
		cancel()
		delivered = err == nil
		if err != nil {
			a.log.Info("stopping with reports queued", slog.Int(keyPending, a.queue.Len()), slog.Any(keyErr, err))
		}
	}
	if a.registered && delivered {
		delCtx, cancel := context.WithTimeout(base, min(a.cfg.RequestTimeout, stopDeleteTimeout))
		if err := a.deregister(delCtx); err != nil {
			a.log.Info("cannot deregister", slog.Any(keyErr, err))
		}
		cancel()
	}
	a.checkpoint(true)
	if a.fw.st.State == coap.FWDownloading && a.fw.st.Offset != a.fw.savedAt {
		a.saveFirmware()
	}
	err := a.queue.Close()
	a.log.Info("agent stopped", slog.Uint64(keySeq, a.lastSeq), slog.Int(keyPending, a.queue.Len()),
		slog.Bool("deregistered", delivered && !a.registered))
	return err
}
