package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/medfleet/medfleet/agent"
	"github.com/medfleet/medfleet/coap"
)

// defaultServer is the control plane's CoAP endpoint on this host: CoAP
// over DTLS (5684), or plain CoAP (5683) when insecure.
func defaultServer(insecure bool) string {
	port := coap.PortDTLS
	if insecure {
		port = coap.PortPlain
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}

const serverUsage = "CoAP server of the control plane, host:port (UDP; default 127.0.0.1:5684, 127.0.0.1:5683 with --insecure)"

// runFlag binds one flag of `run` to its field of agent.Config, so that a
// flag given on the command line overrides the configuration file and a
// flag left alone does not.
type runFlag struct {
	name  string
	apply func(dst, src *agent.Config)
}

var runFlags = []runFlag{
	{"server", func(d, s *agent.Config) { d.Server = s.Server }},
	{"id", func(d, s *agent.Config) { d.DeviceID = s.DeviceID }},
	{"profile", func(d, s *agent.Config) { d.Profile = s.Profile }},
	{"model", func(d, s *agent.Config) { d.Model = s.Model }},
	{"serial", func(d, s *agent.Config) { d.Serial = s.Serial }},
	{"fw", func(d, s *agent.Config) { d.Firmware = s.Firmware }},
	{"udi", func(d, s *agent.Config) { d.UDI = s.UDI }},
	{"state-dir", func(d, s *agent.Config) { d.StateDir = s.StateDir }},
	{"lifetime", func(d, s *agent.Config) { d.Lifetime = s.Lifetime }},
	{"interval", func(d, s *agent.Config) { d.Interval = s.Interval }},
	{"time-scale", func(d, s *agent.Config) { d.TimeScale = s.TimeScale }},
	{"queue-limit", func(d, s *agent.Config) { d.QueueLimit = s.QueueLimit }},
	{"seed", func(d, s *agent.Config) { d.Seed = s.Seed }},
	{"request-timeout", func(d, s *agent.Config) { d.RequestTimeout = s.RequestTimeout }},
	{"no-sync", func(d, s *agent.Config) { d.NoSync = s.NoSync }},
	{"insecure", func(d, s *agent.Config) { d.Insecure = s.Insecure }},
	{"ca-file", func(d, s *agent.Config) { d.CAFile = s.CAFile }},
	{"credentials", func(d, s *agent.Config) { d.CredentialsFile = s.CredentialsFile }},
	{"enrol-token", func(d, s *agent.Config) { d.EnrolToken = s.EnrolToken }},
	{"enrol-kind", func(d, s *agent.Config) { d.EnrolKind = s.EnrolKind }},
	{"handshake-timeout", func(d, s *agent.Config) { d.HandshakeTimeout = s.HandshakeTimeout }},
}

func (c *cli) runCommand() *cobra.Command {
	var (
		configFile string
		f          agent.Config
	)
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run one device agent",
		Long: `Run one device agent until SIGINT or SIGTERM.

The agent speaks CoAP over DTLS 1.2 (udp/5684) with its credential: a
pre-shared key or a certificate from Medfleet's device CA, kept in its
credentials file (--credentials, default {state-dir}/credentials.json, mode
0600). It reads the file again for every new DTLS session, so a rotated
credential can be dropped in without a restart. A new device enrols on first
start: it trades a one-time token (--enrol-token, from medfleetctl) for its
credential, over a session in which it checks medfleetd's certificate against
Medfleet's CA (--ca-file). A token is secret: prefer enrol_token in a
configuration file of mode 0600 to the flag, which other users of the host
can see. --insecure speaks plain CoAP (udp/5683) without any authentication,
for development.

The configuration comes from --config (YAML, the keys of agent.Config:
server, device_id, profile, model, serial, firmware, udi, state_dir,
lifetime, interval, time_scale, queue_limit, seed, request_timeout,
retry_min, retry_max, refused_backoff, no_sync, insecure, ca_file,
credentials_file, enrol_token, enrol_kind, handshake_timeout, and the
section firmware_update); flags given on the command line override it.

Firmware updates follow the server's desired state: the agent downloads the
image block by block (resuming after a lost connection or a restart, from
state_dir), checks its SHA-256 and its signature against the ed25519 keys of
firmware_update.trusted_keys_file (without keys every image is refused), and
installs it only when the server allows it and the device is idle. A device
kept busy reports the update deferred after max_defer_period (default 24h)
and goes on waiting. Without install_command the install is simulated; with
it, the agent runs install_command, then selftest_command, and
rollback_command if the self-test fails, each with the image file and the
version as its last two arguments (exit status 0 is success):

  firmware_update:
    trusted_keys_file: /etc/medfleet/firmware-keys.pem
    max_defer_period: 24h
    install_command: [/usr/sbin/fw-install]
    selftest_command: [/usr/sbin/fw-selftest]
    rollback_command: [/usr/sbin/fw-rollback]
    command_timeout: 30m`,
		Example: `  # First start of a new device: enrol for a PSK, then run.
  medfleet-agent run --server medfleet.example.org:5684 --id pump-0001 --profile infusion-pump \
    --model "BD Alaris 8100" --serial AL81000001 --fw 9.33.1 --state-dir ./agent-data \
    --ca-file ./medfleet-ca.pem --config ./enrol.yaml   # enrol.yaml: enrol_token: mfe_...

  # Development, against medfleetd --insecure-coap.
  medfleet-agent run --insecure --id pump-0001 --profile infusion-pump \
    --model "BD Alaris 8100" --fw 9.33.1`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadRunConfig(configFile, cmd.Flags().Changed, &f)
			if err != nil {
				return usageError{cmd: cmd.CommandPath(), err: err}
			}
			log, _ := c.logger()
			a, err := agent.New(cfg, log)
			if err != nil {
				return usageError{cmd: cmd.CommandPath(), err: err}
			}
			err = a.Run(cmd.Context())
			if errors.Is(err, agent.ErrNoCredential) {
				return usageError{cmd: cmd.CommandPath(), err: err}
			}
			return err
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&configFile, "config", "", "YAML configuration file; flags override it")
	fs.StringVar(&f.Server, "server", "", serverUsage)
	fs.StringVar(&f.DeviceID, "id", "", "device id")
	fs.StringVar(&f.Profile, "profile", "", "simulated device: infusion-pump, cpap or rfid-reader")
	fs.StringVar(&f.Model, "model", "", "device model")
	fs.StringVar(&f.Serial, "serial", "", "serial number")
	fs.StringVar(&f.Firmware, "fw", "", "running firmware version")
	fs.StringVar(&f.UDI, "udi", "", "unique device identifier (GS1 or HIBCC), optional")
	fs.StringVar(&f.StateDir, "state-dir", "", `directory of the offline queue and device state; "" keeps them in memory`)
	fs.DurationVar(&f.Lifetime, "lifetime", agent.DefaultLifetime, "registration lifetime, 10s to 24h")
	fs.DurationVar(&f.Interval, "interval", agent.DefaultInterval, "report interval until the server asks for another")
	fs.Float64Var(&f.TimeScale, "time-scale", agent.DefaultTimeScale, "simulated device seconds per real second")
	fs.IntVar(&f.QueueLimit, "queue-limit", agent.DefaultQueueLimit, "most unacknowledged reports kept")
	fs.Int64Var(&f.Seed, "seed", 0, "seed of the simulated device's behaviour")
	fs.DurationVar(&f.RequestTimeout, "request-timeout", agent.DefaultRequestTimeout, "deadline of one CoAP exchange")
	fs.BoolVar(&f.NoSync, "no-sync", false, "do not fsync the queue and state (survives a crash of the agent, not a power loss)")
	fs.BoolVar(&f.Insecure, "insecure", false, "plain CoAP without authentication, for development (no DTLS)")
	fs.StringVar(&f.CAFile, "ca-file", "", "PEM of Medfleet's CA, to verify medfleetd with when enrolling and with a certificate")
	fs.StringVar(&f.CredentialsFile, "credentials", "", `credentials file of the device (default {state-dir}/credentials.json; "" without a state dir keeps an enrolled credential in memory)`)
	fs.StringVar(&f.EnrolToken, "enrol-token", "", "one-time enrolment token (mfe_...) to get a credential with when the device has none")
	fs.StringVar(&f.EnrolKind, "enrol-kind", "", "credential to enrol for: psk (default) or cert (the agent makes its key and sends a CSR)")
	fs.DurationVar(&f.HandshakeTimeout, "handshake-timeout", agent.DefaultHandshakeTimeout, "deadline of one DTLS handshake")
	return cmd
}

// loadRunConfig reads the configuration file, if any, and applies the
// flags given on the command line (changed) over it.
func loadRunConfig(path string, changed func(flag string) bool, flags *agent.Config) (agent.Config, error) {
	var cfg agent.Config
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return agent.Config{}, fmt.Errorf("--config: %w", err)
		}
		if cfg, err = agent.ParseConfig(data); err != nil {
			return agent.Config{}, fmt.Errorf("--config %s: %w", path, err)
		}
	}
	for _, rf := range runFlags {
		if changed(rf.name) {
			rf.apply(&cfg, flags)
		}
	}
	if cfg.Server == "" {
		cfg.Server = defaultServer(cfg.Insecure)
	}
	return cfg, nil
}
