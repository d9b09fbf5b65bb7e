package main

import (
	"github.com/spf13/cobra"

	"github.com/medfleet/medfleet/agent"
)

func (c *cli) simulateCommand() *cobra.Command {
	var sc agent.SimConfig
	cmd := &cobra.Command{
		Use:   "simulate",
		Short: "Run many simulated devices in one process",
		Long: `Run a simulated fleet until SIGINT or SIGTERM: six infusion pumps, three CPAPs
and one RFID reader in ten, with ids like sim-pump-0001, each with its own UDP
socket. Starts are spread over the first interval.`,
		Example: `  medfleet-agent simulate --server 127.0.0.1:5683 --devices 1000 --time-scale 60`,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, _ := c.logger()
			s, err := agent.NewSimulator(sc, log)
			if err != nil {
				return usageError{cmd: cmd.CommandPath(), err: err}
			}
			return s.Run(cmd.Context())
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&sc.Server, "server", defaultServer, "CoAP server of the control plane, host:port (UDP)")
	fs.IntVar(&sc.Devices, "devices", 0, "number of simulated devices (required)")
	fs.StringVar(&sc.IDPrefix, "id-prefix", agent.DefaultIDPrefix, "prefix of the device ids")
	fs.StringVar(&sc.StateDir, "state-dir", "", `directory with one subdirectory per device; "" keeps queues in memory`)
	fs.DurationVar(&sc.Interval, "interval", agent.DefaultInterval, "report interval until the server asks for another")
	fs.DurationVar(&sc.Lifetime, "lifetime", agent.DefaultLifetime, "registration lifetime, 10s to 24h")
	fs.Float64Var(&sc.TimeScale, "time-scale", agent.DefaultTimeScale, "simulated device seconds per real second")
	fs.Int64Var(&sc.Seed, "seed", 1, "seed of the fleet: profiles, models, serials, behaviour")
	fs.IntVar(&sc.QueueLimit, "queue-limit", agent.DefaultSimQueueLimit, "most unacknowledged reports kept per device")
	return cmd
}
