// Command medfleet-bench is a CoAP load generator for medfleetd: N
// simulated devices, each with its own UDP socket, register and then send
// SenML reports at a fixed rate, open loop, and the run reports what the
// server answered and how fast.
//
//	medfleet-bench --server 127.0.0.1:5683 --devices 1000 --rate 1 --duration 60s --warmup 10s --pid 1234
//	medfleet-bench serve-baseline --listen 127.0.0.1:15701
//
// serve-baseline runs the smallest go-coap server there is, one handler
// answering 2.04 to everything, as a yardstick for medfleetd
// (scripts/ingest-baselines.sh runs both, and libcoap's server, in one go).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "serve-baseline" {
		return serveBaseline(args[1:], stderr)
	}
	cfg := DefaultConfig()
	fs := flag.NewFlagSet("medfleet-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.Server, "server", cfg.Server, "CoAP address of the server (host:port, UDP)")
	fs.IntVar(&cfg.Devices, "devices", cfg.Devices, "simulated devices, each with its own socket")
	fs.Float64Var(&cfg.Rate, "rate", cfg.Rate, "reports per second per device")
	fs.DurationVar(&cfg.Duration, "duration", 0, "measured window, after the warm-up (required, at most 1h)")
	fs.DurationVar(&cfg.Warmup, "warmup", 0, "time to run before measuring")
	fs.IntVar(&cfg.PID, "pid", 0, "server process id: sample its CPU and RSS from /proc")
	fs.StringVar(&cfg.IDPrefix, "id-prefix", cfg.IDPrefix, "device ids are {prefix}-{000000}")
	fs.StringVar(&cfg.Profile, "profile", cfg.Profile, "device profile: infusion-pump, cpap, or another")
	fs.IntVar(&cfg.Lifetime, "lifetime", cfg.Lifetime, "registration lifetime, seconds")
	fs.BoolVar(&cfg.Baseline, "baseline", false, "measure a bare CoAP server: no registration, any response counts as answered")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "medfleet-bench: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "medfleet-bench: %v\n", err)
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := Run(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "medfleet-bench: %v\n", err)
		return 1
	}
	if *asJSON {
		err = res.WriteJSON(stdout)
	} else {
		err = res.WriteText(stdout)
	}
	if err != nil && !errors.Is(err, os.ErrClosed) {
		fmt.Fprintf(stderr, "medfleet-bench: %v\n", err)
		return 1
	}
	return 0
}
