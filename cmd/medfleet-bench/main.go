// Command medfleet-bench is a CoAP load generator for medfleetd: N
// simulated devices, each with its own UDP socket, register and then send
// SenML reports at a fixed rate, open loop, and the run reports what the
// server answered and how fast.
//
//	medfleet-bench --server 127.0.0.1:5683 --devices 1000 --rate 1 --duration 60s --warmup 10s --pid 1234
//	medfleet-bench --server 127.0.0.1:5683 --devices 1000 --rate 1 --warmup 10s --pid 1234 \
//	    --fw-sha 9f86d0...0a08 --fw-devices 1000 [--fw-block 1024] [--fw-con]
//	medfleet-bench --dtls --server 127.0.0.1:5684 --grpc 127.0.0.1:7443 --devices 1000 --rate 1 --duration 60s --warmup 10s
//	medfleet-bench serve-baseline --listen 127.0.0.1:15701
//
// With --dtls every device talks CoAP over its own DTLS session (PSK) to
// medfleetd's DTLS listener. Before the run, each device is created and
// issued a PSK through medfleetd's gRPC API at --grpc (plaintext: medfleetd
// runs with --insecure-grpc); the run reports how long that took, and the
// handshakes. A session whose exchange gets no answer is closed and the
// device shakes hands again, as medfleet-agent does.
//
// With --fw-devices, as many more devices download one image (GET
// /fw/{sha256}, protocol 7.1) block by block, all starting at once after
// --fw-before, while the others keep reporting; the run reports the
// downloads (completion time, per-device times, blocks/s, 5.03s,
// retransmissions, failures, hash checks) and the reports' latency and the
// server's CPU and RSS before, during and after them. Plain CoAP only.
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
	cfg, asJSON, err := parseArgs(args, stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) && !errors.Is(err, errUsage) {
			fmt.Fprintf(stderr, "medfleet-bench: %v\n", err)
		}
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg.Progress = stderr
	res, err := Run(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "medfleet-bench: %v\n", err)
		return 1
	}
	if asJSON {
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

// errUsage: the flag package has already said what is wrong.
var errUsage = errors.New("usage")

// parseArgs reads the flags into a validated Config.
func parseArgs(args []string, stderr io.Writer) (cfg Config, asJSON bool, err error) {
	cfg = DefaultConfig()
	fs := flag.NewFlagSet("medfleet-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.Server, "server", cfg.Server, "CoAP address of the server (host:port, UDP)")
	fs.IntVar(&cfg.Devices, "devices", cfg.Devices, "simulated devices, each with its own socket")
	fs.Float64Var(&cfg.Rate, "rate", cfg.Rate, "reports per second per device")
	fs.DurationVar(&cfg.Duration, "duration", 0, "measured window, after the warm-up (required, at most 1h; not with --fw-devices, whose downloads set it)")
	fs.DurationVar(&cfg.Warmup, "warmup", 0, "time to run before measuring")
	fs.IntVar(&cfg.PID, "pid", 0, "server process id: sample its CPU and RSS from /proc")
	fs.StringVar(&cfg.IDPrefix, "id-prefix", cfg.IDPrefix, "device ids are {prefix}-{000000}")
	fs.StringVar(&cfg.Profile, "profile", cfg.Profile, "device profile: infusion-pump, cpap, or another")
	fs.IntVar(&cfg.Lifetime, "lifetime", cfg.Lifetime, "registration lifetime, seconds")
	fs.BoolVar(&cfg.Baseline, "baseline", false, "measure a bare CoAP server: no registration, any response counts as answered")
	fs.BoolVar(&cfg.DTLS, "dtls", false, "CoAP over DTLS (PSK), a session per device: --server is medfleetd's DTLS listener; needs --grpc")
	fs.StringVar(&cfg.GRPC, "grpc", "", "with --dtls: medfleetd's gRPC address (host:port, plaintext, --insecure-grpc), to create the devices and issue their PSKs")
	fs.DurationVar(&cfg.HandshakeTimeout, "handshake-timeout", cfg.HandshakeTimeout, "with --dtls: bound on one DTLS handshake")
	fs.StringVar(&cfg.Metrics, "metrics", "", "medfleetd's /metrics URL (http://HOST:PORT/metrics): report its etcd transactions and accepted reports a second over the measured window")
	fs.DurationVar(&cfg.RequestTimeout, "request-timeout", 0, "end an exchange this long after its first transmission, as medfleet-agent does after 5s (0: RFC 7252 retransmissions alone)")
	fw := &cfg.Firmware
	fs.StringVar(&fw.SHA256, "fw-sha", "", "with --fw-devices: the image to download, GET /fw/{SHA-256}")
	fs.IntVar(&fw.Devices, "fw-devices", 0, "devices that download the image, all at once, while the others report; ids {prefix}-fw-{000000}")
	fs.IntVar(&fw.BlockSize, "fw-block", fw.BlockSize, "Block2 size the download devices ask for, 16 to 1024")
	fs.BoolVar(&fw.Confirmable, "fw-con", false, "download with CON requests, as generic clients do (default NON, as medfleet-agent does)")
	fs.DurationVar(&fw.Before, "fw-before", fw.Before, "reports alone, measured, after the warm-up and before the downloads start")
	fs.DurationVar(&fw.After, "fw-after", fw.After, "reports alone, measured, after the last download ended")
	fs.DurationVar(&fw.Timeout, "fw-timeout", fw.Timeout, "downloads not done this long after they started are unfinished")
	fs.BoolVar(&asJSON, "json", false, "print the result as JSON")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return cfg, false, err
		}
		return cfg, false, errUsage
	}
	if fs.NArg() > 0 {
		return cfg, false, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	return cfg, asJSON, cfg.Validate()
}
