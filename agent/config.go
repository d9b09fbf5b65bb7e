package agent

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode"

	"gopkg.in/yaml.v3"

	"github.com/medfleet/medfleet/coap"
)

// Defaults and bounds of Config.
const (
	DefaultLifetime       = coap.DefaultLifetime * time.Second
	MinLifetime           = coap.MinLifetime * time.Second
	MaxLifetime           = coap.MaxLifetime * time.Second
	DefaultInterval       = 10 * time.Second
	MinInterval           = 10 * time.Millisecond // below a second only makes sense in tests
	MaxInterval           = 24 * time.Hour
	DefaultTimeScale      = 1.0
	MaxTimeScale          = 1e6
	DefaultQueueLimit     = 10000
	DefaultRequestTimeout = 5 * time.Second
	DefaultRetryMin       = time.Second
	DefaultRetryMax       = time.Minute
	// DefaultRefusedBackoff is how long an agent waits after the server
	// refused the device (4.03) or its registration (4.00).
	DefaultRefusedBackoff = 5 * time.Minute
	// DefaultHandshakeTimeout bounds a DTLS handshake: several flights,
	// each retransmitted after a second when it is lost.
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultEnrolKind        = coap.KindPSK
	// DefaultMaxDeferPeriod is how long a device that may install an image
	// but is busy waits before it reports the update deferred (result 11).
	DefaultMaxDeferPeriod = 24 * time.Hour
	// DefaultCommandTimeout bounds each firmware install, self-test and
	// rollback command.
	DefaultCommandTimeout = 30 * time.Minute
)

// Config is one device agent's configuration. Zero values take the defaults
// above; New applies them before it validates.
type Config struct {
	// Server is host:port of the control plane's CoAP endpoint (UDP): port
	// 5684 (coap.PortDTLS) for DTLS, 5683 (coap.PortPlain) with Insecure.
	Server   string `yaml:"server"`
	DeviceID string `yaml:"device_id"`
	// Profile selects the simulated device: infusion-pump, cpap or rfid-reader.
	Profile  string `yaml:"profile"`
	Model    string `yaml:"model"`
	Serial   string `yaml:"serial"`
	Firmware string `yaml:"firmware"` // running firmware version
	UDI      string `yaml:"udi"`
	// StateDir keeps the offline queue and device.json; "" keeps the queue in
	// memory and the state nowhere.
	StateDir string `yaml:"state_dir"`
	// Lifetime is the registration lifetime (`lt`), whole seconds.
	Lifetime time.Duration `yaml:"lifetime"`
	// Interval is the report interval until the server asks for another.
	Interval time.Duration `yaml:"interval"`
	// TimeScale is simulated device seconds per real second; above 1
	// simulated usage grows faster.
	TimeScale float64 `yaml:"time_scale"`
	// QueueLimit is the largest number of unacknowledged reports kept; the
	// oldest go first (usage survives: counters are cumulative).
	QueueLimit int `yaml:"queue_limit"`
	// Seed makes the profile's randomness repeatable; it is mixed with the
	// device id so that devices sharing a seed still differ.
	Seed int64 `yaml:"seed"`
	// RequestTimeout is the deadline of one CoAP exchange.
	RequestTimeout time.Duration `yaml:"request_timeout"`
	// RetryMin and RetryMax bound the jittered exponential backoff after a
	// timeout, a network error or a 5.xx.
	RetryMin time.Duration `yaml:"retry_min"`
	RetryMax time.Duration `yaml:"retry_max"`
	// RefusedBackoff is the wait after the server refused the device (4.03).
	RefusedBackoff time.Duration `yaml:"refused_backoff"`
	// NoSync skips fsync when the queue and state are written: they then
	// survive a crash of the process but not a power loss. The simulator sets
	// it; a real device should not.
	NoSync bool `yaml:"no_sync"`

	// Insecure speaks plain CoAP, without any authentication, for
	// development. Otherwise the agent speaks CoAP over DTLS 1.2 with its
	// credential (a PSK or a certificate), which it enrols for on first start.
	Insecure bool `yaml:"insecure"`
	// CAFile is the PEM of Medfleet's CA, which signs medfleetd's DTLS
	// certificate: the agent verifies the server with it when it enrols and
	// when it uses a certificate. The credentials file may carry the CA too
	// (the enrolment response has it); the agent trusts both.
	CAFile string `yaml:"ca_file"`
	// CA is the PEM of Medfleet's CA for an agent run in-process (the
	// simulator); it is trusted along with CAFile.
	CA []byte `yaml:"-"`
	// CredentialsFile holds the device's credential (see Credentials). It
	// defaults to {state_dir}/credentials.json; with no state_dir either,
	// an enrolled credential is kept in memory only. The agent reads it again
	// whenever it opens a DTLS session, so that a rotated credential dropped
	// in by an operator takes effect without a restart.
	CredentialsFile string `yaml:"credentials_file"`
	// EnrolToken is the one-time token (mfe_...) the agent trades for its
	// credential (POST /bs) when it has none. It is a secret: never logged.
	EnrolToken string `yaml:"enrol_token"`
	// EnrolKind is the credential to enrol for: "psk" (the default) or
	// "cert" (the agent makes its own ECDSA P-256 key and sends a CSR).
	EnrolKind string `yaml:"enrol_kind"`
	// HandshakeTimeout bounds one DTLS handshake.
	HandshakeTimeout time.Duration `yaml:"handshake_timeout"`

	// FirmwareUpdate configures firmware updates (section firmware_update;
	// the key firmware is the running version).
	FirmwareUpdate FirmwareUpdate `yaml:"firmware_update"`
	// Installer, when set, installs firmware images in place of the
	// commands of FirmwareUpdate, for an agent embedded in a program.
	Installer Installer `yaml:"-"`
}

// FirmwareUpdate is how the device checks and installs firmware images.
// Without InstallCommand the agent simulates installs, as the simulator's
// devices do (SimInstaller).
type FirmwareUpdate struct {
	// TrustedKeysFile is a PEM file of the ed25519 public keys whose
	// manifest signatures the device accepts (PUBLIC KEY blocks). Without
	// any trusted key every image fails its integrity check (result 5).
	TrustedKeysFile string `yaml:"trusted_keys_file"`
	// TrustedKeys is PEM of more trusted keys, for an agent run in-process.
	TrustedKeys []byte `yaml:"-"`
	// MaxDeferPeriod is how long the device waits, busy, with an image the
	// server allows it to install, before it reports the update deferred
	// (result 11). It keeps waiting after that: a busy device never
	// installs.
	MaxDeferPeriod time.Duration `yaml:"max_defer_period"`
	// InstallCommand, SelfTestCommand and RollbackCommand are programs and
	// their first arguments (no shell); the agent appends the image file
	// and the version it installs. Exit status 0 is success. Install
	// writes the image so that the device runs it, keeping the previous
	// one; a self-test that fails is followed by the rollback, which goes
	// back to the previous image. Without a self-test command the new image
	// is taken as good when it is installed.
	InstallCommand  []string `yaml:"install_command"`
	SelfTestCommand []string `yaml:"selftest_command"`
	RollbackCommand []string `yaml:"rollback_command"`
	// CommandTimeout bounds each of these commands.
	CommandTimeout time.Duration `yaml:"command_timeout"`
}

// withDefaults returns c with zero fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.Lifetime == 0 {
		c.Lifetime = DefaultLifetime
	}
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.TimeScale == 0 {
		c.TimeScale = DefaultTimeScale
	}
	if c.QueueLimit == 0 {
		c.QueueLimit = DefaultQueueLimit
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.RetryMin == 0 {
		c.RetryMin = DefaultRetryMin
	}
	if c.RetryMax == 0 {
		c.RetryMax = max(DefaultRetryMax, c.RetryMin)
	}
	if c.RefusedBackoff == 0 {
		c.RefusedBackoff = DefaultRefusedBackoff
	}
	if c.EnrolKind == "" {
		c.EnrolKind = DefaultEnrolKind
	}
	if c.CredentialsFile == "" && c.StateDir != "" {
		c.CredentialsFile = filepath.Join(c.StateDir, CredentialsFile)
	}
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if c.FirmwareUpdate.MaxDeferPeriod == 0 {
		c.FirmwareUpdate.MaxDeferPeriod = DefaultMaxDeferPeriod
	}
	if c.FirmwareUpdate.CommandTimeout == 0 {
		c.FirmwareUpdate.CommandTimeout = DefaultCommandTimeout
	}
	return c
}

// Validate checks c as New would use it: zero fields stand for their
// defaults. Errors name the field by its YAML key.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &coap.FieldError{Field: field, Err: fmt.Errorf(format, args...)})
	}
	if c.Server == "" {
		bad("server", "required")
	} else if _, _, err := net.SplitHostPort(c.Server); err != nil {
		bad("server", "%q is not host:port", c.Server)
	}
	if err := coap.ValidateDeviceID(c.DeviceID); err != nil {
		bad("device_id", "%v", err)
	}
	switch {
	case c.Profile == "":
		bad("profile", "required")
	case !slices.Contains(Profiles(), c.Profile):
		bad("profile", "%q is not one of %s", c.Profile, strings.Join(Profiles(), ", "))
	}
	if c.Model == "" {
		bad("model", "required")
	}
	if c.Firmware == "" {
		bad("firmware", "required")
	}
	if len(errs) == 0 {
		// Lengths and characters of the registration strings, as the server
		// checks them.
		reg := c.registration()
		if err := reg.Validate(); err != nil {
			var fe *coap.FieldError
			if errors.As(err, &fe) && fe.Field == "fw" {
				err = &coap.FieldError{Field: "firmware", Err: fe.Err}
			}
			errs = append(errs, err)
		}
	}
	if c.Lifetime < MinLifetime || c.Lifetime > MaxLifetime || c.Lifetime%time.Second != 0 {
		bad("lifetime", "%v is not whole seconds in %v..%v", c.Lifetime, MinLifetime, MaxLifetime)
	}
	if c.Interval < MinInterval || c.Interval > MaxInterval {
		bad("interval", "%v is outside %v..%v", c.Interval, MinInterval, MaxInterval)
	}
	if math.IsNaN(c.TimeScale) || c.TimeScale <= 0 || c.TimeScale > MaxTimeScale {
		bad("time_scale", "%v is outside (0, %v]", c.TimeScale, MaxTimeScale)
	}
	if c.QueueLimit < 1 {
		bad("queue_limit", "%d is not positive", c.QueueLimit)
	}
	if c.RequestTimeout < time.Millisecond {
		bad("request_timeout", "%v is below 1ms", c.RequestTimeout)
	}
	if c.RetryMin < time.Millisecond {
		bad("retry_min", "%v is below 1ms", c.RetryMin)
	}
	if c.RetryMax < c.RetryMin {
		bad("retry_max", "%v is below retry_min %v", c.RetryMax, c.RetryMin)
	}
	if c.RefusedBackoff < time.Millisecond {
		bad("refused_backoff", "%v is below 1ms", c.RefusedBackoff)
	}
	if c.HandshakeTimeout < time.Millisecond {
		bad("handshake_timeout", "%v is below 1ms", c.HandshakeTimeout)
	}
	if c.EnrolKind != coap.KindPSK && c.EnrolKind != coap.KindCertificate {
		bad("enrol_kind", "%q is not %q or %q", c.EnrolKind, coap.KindPSK, coap.KindCertificate)
	}
	// The token is a secret: no message repeats it.
	switch {
	case c.EnrolToken == "":
	case c.Insecure:
		bad("enrol_token", "set with insecure: plain CoAP has no enrolment")
	case !strings.HasPrefix(c.EnrolToken, enrolTokenPrefix) || strings.ContainsFunc(c.EnrolToken, unicode.IsSpace):
		bad("enrol_token", "not an enrolment token (%s...)", enrolTokenPrefix)
	case c.CAFile == "" && len(c.CA) == 0:
		bad("ca_file", "required with enrol_token: it verifies medfleetd during enrolment")
	}
	fw := c.FirmwareUpdate
	if fw.MaxDeferPeriod < 0 {
		bad("firmware_update.max_defer_period", "%v is negative", fw.MaxDeferPeriod)
	}
	if fw.CommandTimeout < time.Millisecond {
		bad("firmware_update.command_timeout", "%v is below 1ms", fw.CommandTimeout)
	}
	for _, cmd := range []struct {
		field string
		argv  []string
	}{
		{"install_command", fw.InstallCommand}, {"selftest_command", fw.SelfTestCommand}, {"rollback_command", fw.RollbackCommand},
	} {
		if len(cmd.argv) > 0 && cmd.argv[0] == "" {
			bad("firmware_update."+cmd.field, "the program is empty")
		}
	}
	switch {
	case len(fw.InstallCommand) == 0 && (len(fw.SelfTestCommand) > 0 || len(fw.RollbackCommand) > 0):
		bad("firmware_update.install_command", "required with selftest_command and rollback_command")
	case len(fw.SelfTestCommand) > 0 && len(fw.RollbackCommand) == 0:
		bad("firmware_update.rollback_command", "required with selftest_command: a failed self-test must be undone")
	case len(fw.InstallCommand) > 0 && c.StateDir == "":
		bad("firmware_update.install_command", "requires state_dir, where the image is kept for the command")
	}
	return errors.Join(errs...)
}

// enrolTokenPrefix starts every enrolment token.
const enrolTokenPrefix = "mfe_"

// registration is the payload of POST /rd of a device that runs the
// firmware of the configuration.
func (c Config) registration() coap.Registration {
	return coap.Registration{Model: c.Model, Serial: c.Serial, Firmware: c.Firmware, Profile: c.Profile, UDI: c.UDI}
}

// ParseConfig reads a YAML agent configuration. Unknown keys are errors, so
// that a misspelt key does not silently fall back to a default. It does not
// validate: flags may still override fields.
func ParseConfig(data []byte) (Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, fmt.Errorf("agent: config: %w", err)
	}
	return c, nil
}
