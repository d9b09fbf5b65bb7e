package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/medfleet/medfleet/agent"
)

const defaultServer = "127.0.0.1:5683"

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

The configuration comes from --config (YAML, the keys of agent.Config:
server, device_id, profile, model, serial, firmware, udi, state_dir,
lifetime, interval, time_scale, queue_limit, seed, request_timeout,
retry_min, retry_max, refused_backoff, no_sync); flags given on the command
line override it.`,
		Example: `  medfleet-agent run --server 127.0.0.1:5683 --id pump-0001 --profile infusion-pump \
    --model "BD Alaris 8100" --serial AL81000001 --fw 9.33.1 --state-dir ./agent-data`,
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
			return a.Run(cmd.Context())
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&configFile, "config", "", "YAML configuration file; flags override it")
	fs.StringVar(&f.Server, "server", defaultServer, "CoAP server of the control plane, host:port (UDP)")
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
		cfg.Server = defaultServer
	}
	return cfg, nil
}
