package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/medfleet/medfleet/coap"
	"github.com/medfleet/medfleet/firmware/manifest"
)

// SimConfig configures a Simulator: many simulated devices in one process,
// each an Agent with its own UDP socket (and DTLS session).
type SimConfig struct {
	// Server is host:port of the control plane's CoAP endpoint (UDP).
	Server string `yaml:"server"`
	// Insecure makes every device speak plain CoAP (Config.Insecure).
	Insecure bool `yaml:"insecure"`
	// CA is the PEM of Medfleet's CA (Config.CA).
	CA []byte `yaml:"-"`
	// Enroll, when set, gives a device without a credential a one-time
	// enrolment token, which it trades for its credential over POST /bs.
	// Devices call it concurrently.
	Enroll func(ctx context.Context, device string) (token string, err error) `yaml:"-"`
	// CredentialsDir holds one credentials file per device, {device}.json
	// (as medfleetctl writes them). Otherwise each device keeps its
	// credential in its state directory, or in memory without one.
	CredentialsDir string `yaml:"credentials_dir"`
	// Devices is the number of simulated devices.
	Devices int `yaml:"devices"`
	// IDPrefix starts every device id: "sim" gives sim-pump-0001.
	IDPrefix string `yaml:"id_prefix"`
	// StateDir holds one subdirectory per device; "" keeps queues in memory.
	StateDir string `yaml:"state_dir"`
	// Interval, Lifetime and TimeScale are those of every device (Config).
	Interval  time.Duration `yaml:"interval"`
	Lifetime  time.Duration `yaml:"lifetime"`
	TimeScale float64       `yaml:"time_scale"`
	// Seed makes the fleet (profiles, models, serials, behaviour, start
	// times) repeatable.
	Seed int64 `yaml:"seed"`
	// QueueLimit bounds each device's queue; 0 means 1000, less than a real
	// device's default because every simulated queue shares one process.
	QueueLimit int `yaml:"queue_limit"`
	// FirmwareKeys is PEM of the ed25519 public keys whose firmware
	// signatures every device accepts; FirmwareKeysFile (read when the
	// simulator starts) adds more. Without any key every image fails its
	// integrity check (result 5).
	FirmwareKeys     []byte `yaml:"-"`
	FirmwareKeysFile string `yaml:"firmware_keys_file"`
	// MaxDeferPeriod is that of every device
	// (Config.FirmwareUpdate.MaxDeferPeriod).
	MaxDeferPeriod time.Duration `yaml:"max_defer_period"`
	// World, when set, is the facility the devices live in: the simulated
	// devices with a tag in it (all but readers) move through its zones,
	// and the simulated readers with antennas in it report the tags they
	// see (world.go). Other readers invent tags of their own.
	World *World `yaml:"-"`
}

// Defaults and bounds of SimConfig.
const (
	DefaultIDPrefix      = "sim"
	DefaultSimQueueLimit = 1000
	MaxSimDevices        = 1_000_000
)

// simMix is the profile of device i (1-based) at position (i-1)%10: six
// pumps, three CPAPs and one reader in ten, and one of each among the
// first three.
var simMix = [10]string{
	coap.ProfileInfusionPump, coap.ProfileCPAP, coap.ProfileRFIDReader, coap.ProfileInfusionPump, coap.ProfileInfusionPump,
	coap.ProfileCPAP, coap.ProfileInfusionPump, coap.ProfileInfusionPump, coap.ProfileCPAP, coap.ProfileInfusionPump,
}

// simModel is a device model a simulated device can be.
type simModel struct {
	model, serialPrefix, firmware string
}

var (
	simShort = map[string]string{
		coap.ProfileInfusionPump: "pump", coap.ProfileCPAP: "cpap", coap.ProfileRFIDReader: "rfid",
	}
	simModels = map[string][]simModel{
		coap.ProfileInfusionPump: {
			{"BD Alaris 8100", "AL81", "9.33.1"},
			{"Baxter Novum IQ LVP", "NVQ", "2.3.0"},
			{"ICU Medical Plum 360", "PL36", "15.24.0"},
		},
		coap.ProfileCPAP: {
			{"ResMed AirSense 11", "RS11", "SW04600.01.0"},
			{"Philips DreamStation 2", "DS2", "1.4.2"},
		},
		coap.ProfileRFIDReader: {
			{"Zebra FX9600", "FX96", "3.21.0"},
			{"Impinj R700", "R700", "8.4.1"},
		},
	}
)

func (c SimConfig) withDefaults() SimConfig {
	if c.IDPrefix == "" {
		c.IDPrefix = DefaultIDPrefix
	}
	if c.QueueLimit == 0 {
		c.QueueLimit = DefaultSimQueueLimit
	}
	return c
}

// Validate checks c as NewSimulator would use it. Errors name the field.
func (c SimConfig) Validate() error {
	_, err := c.withDefaults().devices()
	return err
}

// devices returns the configuration of every simulated device.
func (c SimConfig) devices() ([]Config, error) {
	var errs []error
	if c.Devices < 1 || c.Devices > MaxSimDevices {
		errs = append(errs, &coap.FieldError{Field: "devices", Err: fmt.Errorf("%d is outside 1..%d", c.Devices, MaxSimDevices)})
	}
	if err := coap.ValidateDeviceID(c.IDPrefix + "-pump-0001"); err != nil {
		errs = append(errs, &coap.FieldError{Field: "id_prefix", Err: fmt.Errorf("%q does not make device ids", c.IDPrefix)})
	}
	if !c.Insecure {
		switch {
		case c.Enroll == nil && c.CredentialsDir == "" && c.StateDir == "":
			errs = append(errs, &coap.FieldError{Field: "insecure", Err: errors.New(
				"false, and the devices have no way to get a DTLS credential: give an Enroll function (medfleetd --simulate), credentials_dir, or set insecure")})
		case c.Enroll != nil && len(c.CA) == 0:
			errs = append(errs, &coap.FieldError{Field: "ca", Err: errors.New("required to enrol: it verifies medfleetd")})
		}
	}
	if c.MaxDeferPeriod < 0 {
		errs = append(errs, &coap.FieldError{Field: "max_defer_period", Err: fmt.Errorf("%v is negative", c.MaxDeferPeriod)})
	}
	if len(c.FirmwareKeys) > 0 {
		if _, err := manifest.ParsePublicKeys(c.FirmwareKeys); err != nil {
			errs = append(errs, &coap.FieldError{Field: "firmware_keys", Err: err})
		}
	}
	if c.World != nil {
		if err := c.World.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	width := max(4, len(strconv.Itoa(c.Devices)))
	rnd := rand.New(rand.NewPCG(uint64(c.Seed), 0x73696d))
	out := make([]Config, c.Devices)
	for i := range out {
		profile := simMix[i%len(simMix)]
		m := simModels[profile][rnd.IntN(len(simModels[profile]))]
		id := fmt.Sprintf("%s-%s-%0*d", c.IDPrefix, simShort[profile], width, i+1)
		cfg := Config{
			Server:     c.Server,
			DeviceID:   id,
			Profile:    profile,
			Model:      m.model,
			Serial:     fmt.Sprintf("%s%08d", m.serialPrefix, rnd.IntN(100_000_000)),
			Firmware:   m.firmware,
			Lifetime:   c.Lifetime,
			Interval:   c.Interval,
			TimeScale:  c.TimeScale,
			QueueLimit: c.QueueLimit,
			Seed:       int64(rnd.Uint64()),
			NoSync:     true, // a simulator survives crashes of its process, not power losses
			Insecure:   c.Insecure,
			CA:         c.CA,
			FirmwareUpdate: FirmwareUpdate{
				MaxDeferPeriod: c.MaxDeferPeriod,
			},
		}
		if c.StateDir != "" {
			cfg.StateDir = filepath.Join(c.StateDir, id)
		}
		if c.CredentialsDir != "" {
			cfg.CredentialsFile = filepath.Join(c.CredentialsDir, id+".json")
		}
		if err := cfg.Validate(); err != nil {
			// The devices differ only in what is valid by construction:
			// one error stands for all of them.
			return nil, err
		}
		out[i] = cfg
	}
	return out, nil
}

// Simulator runs many simulated devices in one process. medfleetd runs one
// for its --simulate flag.
type Simulator struct {
	cfg     SimConfig
	log     *slog.Logger
	started atomic.Bool
	devices []Config
	agents  []*Agent
	byID    map[string]*Agent
	delays  []time.Duration // of each device's start
	tick    *ticker         // shared by every device's connection
	world   *worldModel     // nil without SimConfig.World
}

// NewSimulator validates cfg and prepares its devices; it starts nothing.
func NewSimulator(cfg SimConfig, log *slog.Logger) (*Simulator, error) {
	cfg = cfg.withDefaults()
	devices, err := cfg.devices()
	if err != nil {
		return nil, fmt.Errorf("agent: simulator: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// Ten thousand agents would each log every registration at INFO: the
	// simulator logs the fleet, the devices log at DEBUG unless it is a
	// warning or an error.
	quiet := slog.New(demote{log.Handler()})
	s := &Simulator{cfg: cfg, log: log, devices: devices, byID: map[string]*Agent{}, tick: newTicker(retransmitTick)}
	interval := devices[0].withDefaults().Interval
	if cfg.World != nil {
		var movers []string
		for _, d := range devices {
			if d.Profile != coap.ProfileRFIDReader { // readers stay where they are
				movers = append(movers, d.DeviceID)
			}
		}
		s.world = newWorldModel(cfg.World, uint64(cfg.Seed), movers, worldClock(devices[0].withDefaults().TimeScale))
	}
	rnd := rand.New(rand.NewPCG(uint64(cfg.Seed), 0x7374617274))
	for _, d := range devices {
		a, err := New(d, quiet)
		if err != nil {
			return nil, fmt.Errorf("agent: simulator: %w", err)
		}
		a.tick = s.tick
		a.enrolToken = cfg.Enroll
		a.inFleet = true
		if s.world != nil {
			a.world = s.world.member(d.DeviceID, d.Profile)
		}
		s.agents = append(s.agents, a)
		s.byID[d.DeviceID] = a
		// Starts are spread over the first interval, so that a big fleet
		// does not register in the same instant.
		s.delays = append(s.delays, time.Duration(rnd.Int64N(int64(interval))))
	}
	return s, nil
}

// Devices returns the configuration of every simulated device, in id order.
func (s *Simulator) Devices() []Config {
	out := make([]Config, len(s.devices))
	copy(out, s.devices)
	return out
}

// SetInUse forces a device's clinical state to in_use (a nurse starts an
// infusion), or with false gives it back to its profile's own behaviour.
// The device reports the change at once; it never installs firmware while
// in use. It returns false for an unknown device. Safe for any goroutine.
func (s *Simulator) SetInUse(device string, inUse bool) bool {
	a, ok := s.byID[device]
	if ok {
		a.setInUse(inUse)
	}
	return ok
}

// Firmware returns what a device knows of its firmware (running version,
// update state and result), false for an unknown device. Safe for any
// goroutine.
func (s *Simulator) Firmware(device string) (FirmwareStatus, bool) {
	a, ok := s.byID[device]
	if !ok {
		return FirmwareStatus{}, false
	}
	return a.Firmware(), true
}

// Truth returns, by device id, what every simulated device has made so far
// (devices that have not started are absent). Safe for any goroutine.
func (s *Simulator) Truth() map[string]Truth {
	out := make(map[string]Truth, len(s.byID))
	for id, a := range s.byID {
		if t := a.truth.Load(); t != nil {
			out[id] = *t
		}
	}
	return out
}

// Quiesce makes every device stop making reports; they go on delivering
// their queues and heartbeating, so that their Truth stops moving and a
// server's view of them can catch up with it. Safe for any goroutine.
func (s *Simulator) Quiesce() {
	for _, a := range s.byID {
		a.quiet.Store(true)
	}
}

// worldClock is the simulated time of a Simulator's World: it starts at the
// real time of the call and runs scale times as fast, like the clock of
// each device.
func worldClock(scale float64) func() time.Time {
	start := time.Now()
	return func() time.Time {
		d := float64(time.Since(start)) * scale
		return start.Add(time.Duration(min(d, math.MaxInt64/2)))
	}
}

// MoveTo makes a device of the World walk to zone, along the shortest path
// at WalkingSpeed (simulated time), and stay there until it is moved again
// or released: it stops choosing destinations itself. It returns false for
// a device that does not move in the World (none, untagged, or a reader),
// an unknown zone, or one it cannot reach. Safe for any goroutine.
func (s *Simulator) MoveTo(device, zone string) bool {
	return s.world != nil && s.world.moveTo(device, zone)
}

// Place puts a device of the World in zone at once, to stay there like
// after MoveTo. It returns false for an unknown device or zone. Safe for
// any goroutine.
func (s *Simulator) Place(device, zone string) bool {
	return s.world != nil && s.world.place(device, zone)
}

// Hide takes a device of the World out of every reader's sight (in a
// drawer, or a room without readers) until it is moved again or released.
// It stops where it is: in its zone, or at the nearer end of the walkway it
// was on, where Position reports it. It returns false for an unknown
// device. Safe for any goroutine.
func (s *Simulator) Hide(device string) bool {
	return s.world != nil && s.world.hide(device)
}

// Release gives a device moved with MoveTo, Place or Hide back its own
// behaviour: it becomes visible again, and goes where its clinical state
// takes it. It returns false for an unknown device. Safe for any
// goroutine.
func (s *Simulator) Release(device string) bool {
	return s.world != nil && s.world.release(device)
}

// Position returns where a device of the World is now, the ground truth
// that readers report: its zone, "" while it is between two zones, and
// whether it is walking; ok is false for an unknown device. Safe for any
// goroutine.
func (s *Simulator) Position(device string) (zone string, walking bool, ok bool) {
	if s.world == nil {
		return "", false, false
	}
	return s.world.position(device)
}

// firmwareKeys parses the trusted keys of FirmwareKeys and FirmwareKeysFile,
// once for every device.
func (c SimConfig) firmwareKeys() (manifest.Keys, error) {
	fu := FirmwareUpdate{TrustedKeys: c.FirmwareKeys}
	keys, err := fu.trustedKeys()
	if err != nil {
		return nil, err
	}
	if c.FirmwareKeysFile != "" {
		data, err := os.ReadFile(c.FirmwareKeysFile)
		if err != nil {
			return nil, fmt.Errorf("agent: simulator: firmware_keys_file: %w", err)
		}
		more, err := manifest.ParsePublicKeys(data)
		if err != nil {
			return nil, fmt.Errorf("agent: simulator: firmware_keys_file: %s: %w", c.FirmwareKeysFile, err)
		}
		keys = append(keys, more...)
	}
	return keys, nil
}

// Run runs every device until ctx is cancelled, then waits for all of them
// to stop gracefully. It returns the errors of the devices that could not
// run.
func (s *Simulator) Run(ctx context.Context) error {
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("agent: simulator: Run called twice")
	}
	keys, err := s.cfg.firmwareKeys()
	if err != nil {
		return err
	}
	for _, a := range s.agents {
		a.fw.keys = keys // before the agent runs: its loop owns it after
	}
	count := map[string]int{}
	for _, d := range s.devices {
		count[d.Profile]++
	}
	mode := "dtls"
	if s.cfg.Insecure {
		mode = "insecure"
		s.log.Warn("insecure: the simulated devices speak plain CoAP, the server cannot authenticate them")
	}
	s.log.Info("simulator starting", slog.Int(keyDevices, len(s.devices)), slog.String(keyServer, s.cfg.Server),
		slog.String(keyMode, mode), slog.Int("pumps", count[coap.ProfileInfusionPump]), slog.Int("cpaps", count[coap.ProfileCPAP]),
		slog.Int("readers", count[coap.ProfileRFIDReader]))
	if s.world != nil {
		readers := 0
		for _, d := range s.devices {
			if m := s.world.member(d.DeviceID, d.Profile); m != nil && len(m.antennas) > 0 {
				readers++
			}
		}
		s.log.Info("simulated world", slog.Int("zones", len(s.world.g.zones)), slog.Int("tagged", len(s.world.movers)),
			slog.Int("readers_placed", readers))
	}
	errs := make([]error, len(s.agents))
	tickCtx, stopTick := context.WithCancel(context.Background())
	var tickWG sync.WaitGroup
	tickWG.Go(func() { s.tick.run(tickCtx) })
	var running atomic.Int64
	var wg sync.WaitGroup
	for i, a := range s.agents {
		wg.Go(func() {
			t := time.NewTimer(s.delays[i])
			defer t.Stop()
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			running.Add(1)
			defer running.Add(-1)
			if err := a.Run(ctx); err != nil {
				s.log.Error("simulated device failed", slog.String(keyDevice, s.devices[i].DeviceID), slog.Any(keyErr, err))
				errs[i] = err
			}
		})
	}
	<-ctx.Done()
	s.log.Info("simulator stopping", slog.Int64(keyDevices, running.Load()))
	wg.Wait()
	stopTick()
	tickWG.Wait()
	s.log.Info("simulator stopped")
	return errors.Join(errs...)
}

// demote is a slog.Handler that logs INFO records at DEBUG.
type demote struct{ slog.Handler }

func (d demote) Enabled(ctx context.Context, l slog.Level) bool {
	if l == slog.LevelInfo {
		l = slog.LevelDebug
	}
	return d.Handler.Enabled(ctx, l)
}

func (d demote) Handle(ctx context.Context, r slog.Record) error {
	if r.Level == slog.LevelInfo {
		r.Level = slog.LevelDebug
	}
	return d.Handler.Handle(ctx, r)
}

func (d demote) WithAttrs(attrs []slog.Attr) slog.Handler { return demote{d.Handler.WithAttrs(attrs)} }

func (d demote) WithGroup(name string) slog.Handler { return demote{d.Handler.WithGroup(name)} }
