package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/medfleet/medfleet/agent"
	"github.com/medfleet/medfleet/firmware/manifest"
)

func (c *cli) simulateCommand() *cobra.Command {
	var (
		sc       agent.SimConfig
		caFile   string
		keysFile string
	)
	cmd := &cobra.Command{
		Use:   "simulate",
		Short: "Run many simulated devices in one process",
		Long: `Run a simulated fleet until SIGINT or SIGTERM: six infusion pumps, three CPAPs
and one RFID reader in ten, with ids like sim-pump-0001, each with its own UDP
socket. Starts are spread over the first interval.

Over DTLS every device needs its credential, and simulated devices cannot get
enrolment tokens on their own. Either give them credentials files
(--credentials-dir DIR holding {device}.json, as written by
medfleetctl device enroll --psk -o DIR/{device}.json), or run them with
--insecure (plain CoAP, against medfleetd --insecure-coap). medfleetd
--simulate runs a fleet that enrols by itself.

The devices install firmware the server offers when it is signed by a key of
--firmware-keys (PEM of ed25519 public keys; without it every image is
refused) and they are idle. Nothing is flashed: an image whose first 4 KiB
hold the line "medfleet-sim: selftest-fail=F" fails its self-test on the
share F (0 to 1) of the devices, the same devices every time, and they roll
back.`,
		Example: `  medfleet-agent simulate --insecure --server 127.0.0.1:5683 --devices 1000 --time-scale 60
  medfleet-agent simulate --server medfleet.example.org:5684 --devices 3 --credentials-dir ./creds`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			usage := func(err error) error { return usageError{cmd: cmd.CommandPath(), err: err} }
			if !sc.Insecure && sc.CredentialsDir == "" {
				return usage(errors.New("simulated devices need --insecure (plain CoAP) or --credentials-dir " +
					"(their DTLS credentials): they cannot get enrolment tokens on their own; medfleetd --simulate can"))
			}
			if caFile != "" {
				ca, err := os.ReadFile(caFile)
				if err != nil {
					return usage(fmt.Errorf("--ca-file: %w", err))
				}
				sc.CA = ca
			}
			if keysFile != "" {
				keys, err := os.ReadFile(keysFile)
				if err != nil {
					return usage(fmt.Errorf("--firmware-keys: %w", err))
				}
				if _, err := manifest.ParsePublicKeys(keys); err != nil {
					return usage(fmt.Errorf("--firmware-keys: %s: %w", keysFile, err))
				}
				sc.FirmwareKeys = keys
			}
			if sc.Server == "" {
				sc.Server = defaultServer(sc.Insecure)
			}
			log, _ := c.logger()
			s, err := agent.NewSimulator(sc, log)
			if err != nil {
				return usage(err)
			}
			return s.Run(cmd.Context())
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&sc.Server, "server", "", serverUsage)
	fs.IntVar(&sc.Devices, "devices", 0, "number of simulated devices (required)")
	fs.StringVar(&sc.IDPrefix, "id-prefix", agent.DefaultIDPrefix, "prefix of the device ids")
	fs.StringVar(&sc.StateDir, "state-dir", "", `directory with one subdirectory per device; "" keeps queues in memory`)
	fs.DurationVar(&sc.Interval, "interval", agent.DefaultInterval, "report interval until the server asks for another")
	fs.DurationVar(&sc.Lifetime, "lifetime", agent.DefaultLifetime, "registration lifetime, 10s to 24h")
	fs.Float64Var(&sc.TimeScale, "time-scale", agent.DefaultTimeScale, "simulated device seconds per real second")
	fs.Int64Var(&sc.Seed, "seed", 1, "seed of the fleet: profiles, models, serials, behaviour")
	fs.IntVar(&sc.QueueLimit, "queue-limit", agent.DefaultSimQueueLimit, "most unacknowledged reports kept per device")
	fs.BoolVar(&sc.Insecure, "insecure", false, "plain CoAP without authentication, for development (no DTLS)")
	fs.StringVar(&sc.CredentialsDir, "credentials-dir", "", "directory of the devices' credentials files, {device}.json")
	fs.StringVar(&caFile, "ca-file", "", "PEM of Medfleet's CA, for devices with certificates (unless their files carry it)")
	fs.StringVar(&keysFile, "firmware-keys", "", "PEM of the ed25519 public keys whose firmware signatures the devices accept")
	fs.DurationVar(&sc.MaxDeferPeriod, "max-defer-period", agent.DefaultMaxDeferPeriod, "how long a busy device waits with an image it may install before it reports the update deferred")
	return cmd
}
