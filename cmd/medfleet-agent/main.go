// Command medfleet-agent is Medfleet's device agent: it runs on a medical
// device (or simulates one) and talks Medfleet's device protocol (CoAP over
// DTLS) to the control plane. `medfleet-agent simulate` runs a whole simulated fleet in
// one process, for load tests and demonstrations.
//
// Flags, the configuration file and signals are handled here and nowhere
// else; the agent itself is package agent. The binary must stay small: it
// links neither etcd nor gRPC.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

// version is set at link time: -ldflags "-X main.version=v0.3.0".
var version = ""

// Exit codes.
const (
	exitOK    = 0 // stopped gracefully
	exitError = 1 // the agent could not run
	exitUsage = 2 // bad flags, arguments or configuration
)

const rootLong = `medfleet-agent is the device agent of Medfleet, the fleet manager for
hospital medical devices. It registers the device with the control plane,
reports usage, state, alarms and location sightings over CoAP and DTLS
(authenticated by a pre-shared key or a certificate, which a new device gets
by enrolling with a one-time token), and keeps unacknowledged reports on disk
while the server is unreachable.

  medfleet-agent run       one device (a simulated infusion pump, CPAP or RFID reader)
  medfleet-agent simulate  many simulated devices in one process

SIGINT or SIGTERM stops gracefully: the agent delivers what it can within
two seconds, deregisters and saves its state.

Exit codes:
  0  stopped gracefully
  1  the agent could not run (for example, its state directory is unusable,
     or the server refused its enrolment token)
  2  usage error: bad flags, arguments or configuration (including a device
     with neither a credential nor an enrolment token)`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes one command line and returns the exit code. Errors are
// written to stderr as "medfleet-agent: <message>".
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := &cli{stdout: stdout, stderr: stderr}
	root := c.rootCommand()
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(stderr, "medfleet-agent: %v\n", err)
	var ue usageError
	if errors.As(err, &ue) {
		if ue.cmd != "" {
			fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", ue.cmd)
		}
		return exitUsage
	}
	return exitError
}

// cli holds what every command shares.
type cli struct {
	stdout, stderr io.Writer
	logLevel       string
	logFormat      string
}

func (c *cli) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "medfleet-agent",
		Short:         "Device agent of Medfleet",
		Long:          rootLong,
		Version:       versionString(),
		Args:          noArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageError{cmd: cmd.CommandPath(), err: errors.New("missing command: run or simulate")}
		},
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := c.logger(); err != nil {
				return usageError{cmd: cmd.CommandPath(), err: err}
			}
			return nil
		},
	}
	root.CompletionOptions.DisableDefaultCmd = true
	root.SetOut(c.stdout)
	root.SetErr(c.stderr)
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return usageError{cmd: cmd.CommandPath(), err: err}
	})
	pf := root.PersistentFlags()
	pf.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	pf.StringVar(&c.logFormat, "log-format", "text", "log format: text or json")
	root.AddCommand(c.runCommand(), c.simulateCommand())
	return root
}

// logger builds the logger the flags ask for; logs go to stderr.
func (c *cli) logger() (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level: %q is not debug, info, warn or error", c.logLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(c.logFormat) {
	case "text":
		return slog.New(slog.NewTextHandler(c.stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(c.stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format: %q is not text or json", c.logFormat)
}

// usageError is a mistake in the command line or the configuration: exit
// code 2.
type usageError struct {
	cmd string // command path, for the hint to --help
	err error
}

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// noArgs refuses positional arguments (and unknown commands) as a usage
// error.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageError{cmd: cmd.CommandPath(), err: fmt.Errorf("unknown command or argument %q", args[0])}
	}
	return nil
}

func versionString() string {
	if version != "" {
		return version
	}
	if info, ok := debug.ReadBuildInfo(); ok && info.Main.Version != "" {
		return info.Main.Version
	}
	return "(devel)"
}
