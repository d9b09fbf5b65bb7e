// Command medfleetctl is the command-line client of the Medfleet public API,
// in the manner of etcdctl: `medfleetctl <noun> <verb>`, tables for people,
// `-o json` for scripts, and exit codes that scripts can rely on.
//
// It is a thin client: it turns flags into requests of medfleet.v1 and
// responses into text, and decides nothing the server decides. Flags and
// environment are read here and nowhere else.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel"
	otelcodes "go.opentelemetry.io/otel/codes"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/medfleet/medfleet/internal/telemetry"
)

// version is set at link time: -ldflags "-X main.version=v0.3.0".
var version = ""

// Exit codes. Scripts may rely on them; change them only with a major
// version, and keep the root command's Long help in step.
const (
	exitOK                 = 0 // success
	exitError              = 1 // any other error, including Internal and Unknown
	exitUsage              = 2 // bad flags or arguments, caught before any RPC
	exitNotFound           = 3 // NotFound
	exitAlreadyExists      = 4 // AlreadyExists
	exitInvalidArgument    = 5 // InvalidArgument: the server refused the request
	exitFailedPrecondition = 6 // FailedPrecondition or Aborted (etag mismatch)
	exitUnavailable        = 7 // Unavailable or DeadlineExceeded: try again later
	exitPermission         = 8 // PermissionDenied or Unauthenticated
)

const (
	envServer      = "MEDFLEET_SERVER"
	defaultServer  = "127.0.0.1:7443"
	defaultTimeout = 10 * time.Second
)

const rootLong = `medfleetctl is the command-line client of Medfleet, the fleet manager for
hospital medical devices. It talks gRPC to the Medfleet server.

Output is a table for people, or with -o json the protojson encoding of the
API response (a Device, a ListDevicesResponse, a User...) for scripts; each
command's help says what it writes.

Connection and credentials:
  The connection is TLS. The server's certificate is checked against
  --ca-file (MEDFLEET_CA_FILE), by default ./medfleet-data/tls/ca.crt when
  that file exists (medfleetd creates it in {data_dir}/tls on first start),
  else against the system's roots; --server-name sets the name to check when
  it is not the host of --server.

  The caller is authenticated by an API token or a client certificate:
    MEDFLEET_TOKEN              the token itself (mft_...); there is no
                                --token flag, because other users of the host
                                can read command lines
    --token-file FILE           a file holding the token (MEDFLEET_TOKEN_FILE)
    --cert FILE --key FILE      a client certificate of a user
                                (MEDFLEET_CERT_FILE, MEDFLEET_KEY_FILE), as
                                "user cert" makes it; it takes precedence
                                over tokens
  The first of --token-file, MEDFLEET_TOKEN and MEDFLEET_TOKEN_FILE that is
  given is used; without any of them and without a client certificate,
  ./medfleet-data/admin.token, the first administrator's token that
  medfleetd writes on first start, when that file exists.

  --insecure (MEDFLEET_INSECURE=1) speaks plaintext and sends no credential,
  for a server run with --insecure-grpc.

Exit codes:
  0  success
  1  other error (internal, unknown); "audit verify": the log is broken
  2  usage error: bad flags or arguments, or an unreadable --ca-file,
     --token-file, --cert or --key; nothing was sent
  3  not found
  4  already exists
  5  invalid argument: the server refused the request
  6  failed precondition, or aborted (etag mismatch: the device changed)
  7  unavailable or deadline exceeded: the server could not be reached or
     did not answer in time, or the TLS handshake failed; retrying later may
     help
  8  permission denied or unauthenticated: the server refused the token or
     certificate, or the caller's role or site does not allow the call`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	shutdown := setupTracing(ctx)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	shutdown()
	stop()
	os.Exit(code)
}

// setupTracing traces every call when the OTEL_* variables configure a
// trace exporter (the call's trace then continues in medfleetd), and does
// nothing otherwise. It returns a function that flushes the spans.
func setupTracing(ctx context.Context) func() {
	if !telemetry.Configured("TRACES") {
		return func() {}
	}
	sdk, err := telemetry.Setup(ctx, telemetry.Config{ServiceName: "medfleetctl", SampleRatio: 1})
	if err != nil {
		fmt.Fprintln(os.Stderr, "medfleetctl: tracing disabled:", err)
		return func() {}
	}
	otel.SetTracerProvider(sdk.Tracer)
	otel.SetTextMapPropagator(sdk.Propagator)
	return func() {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = sdk.Shutdown(sctx)
	}
}

// run executes one command line and returns the process exit code. Errors
// are written to stderr as "medfleetctl: <message>".
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	c := &cli{stdout: stdout, stderr: stderr, getenv: getenv, now: time.Now}
	root := c.rootCommand()
	root.SetArgs(args)
	root.SetIn(stdin)
	ctx, span := otel.Tracer(telemetry.ScopeName+"/medfleetctl").Start(ctx, "medfleetctl")
	cmd, err := root.ExecuteContextC(ctx)
	if cmd != nil {
		span.SetName(cmd.CommandPath())
	}
	if err != nil {
		span.SetStatus(otelcodes.Error, err.Error())
	}
	span.End()
	if err == nil {
		return exitOK
	}
	lines := append(errorLines(err, c.flags.server), c.conn.hints(err)...)
	fmt.Fprintf(stderr, "medfleetctl: %s\n", lines[0])
	for _, line := range lines[1:] {
		fmt.Fprintln(stderr, line)
	}
	return exitCode(err)
}

// cli holds what every command shares: where to write, the environment, the
// clock, the global flags once parsed, and the connection they describe.
type cli struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	now            func() time.Time
	flags          globalFlags
	conn           connection
	// warnedStale is set once a stale answer was pointed out (warnStale).
	warnedStale bool
}

type globalFlags struct {
	server  string
	timeout time.Duration
	output  string // "table" or "json"
	conn    connFlags
}

func (c *cli) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "medfleetctl",
		Short:         "Command-line client of the Medfleet API",
		Long:          rootLong,
		Args:          subcommandArgs,
		RunE:          missingSubcommand,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return c.checkGlobalFlags(cmd)
		},
	}
	root.SetOut(c.stdout)
	root.SetErr(c.stderr)
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return usageError{cmd: cmd.CommandPath(), err: err}
	})

	pf := root.PersistentFlags()
	pf.StringVar(&c.flags.server, "server", defaultServer, "address of the Medfleet server, host:port (env "+envServer+")")
	pf.DurationVar(&c.flags.timeout, "timeout", defaultTimeout, "deadline of each RPC")
	pf.StringVarP(&c.flags.output, "output", "o", "table", "output format: table or json")
	c.flags.conn.add(pf)

	root.AddCommand(
		c.deviceCommand(),
		c.userCommand(),
		c.tokenCommand(),
		c.whoamiCommand(),
		c.auditCommand(),
		c.maintenanceCommand(),
		c.modelCommand(),
		c.workorderCommand(),
		c.firmwareCommand(),
		c.rolloutCommand(),
		c.recallCommand(),
		c.facilityCommand(),
		c.locateCommand(),
		c.findCommand(),
		c.checkinCommand(),
		c.parCommand(),
		c.locationCommand(),
		c.versionCommand(),
	)
	return root
}

// checkGlobalFlags applies the environment and validates the global flags.
// It runs before every command.
func (c *cli) checkGlobalFlags(cmd *cobra.Command) error {
	source := "--server"
	if !cmd.Flags().Changed("server") {
		if s := c.getenv(envServer); s != "" {
			c.flags.server, source = s, envServer
		}
	}
	if err := checkServer(c.flags.server); err != nil {
		return usageErrorf(cmd, "%s %q: %v", source, c.flags.server, err)
	}
	if c.flags.timeout <= 0 {
		return usageErrorf(cmd, "--timeout: must be positive, got %s", c.flags.timeout)
	}
	switch c.flags.output {
	case "table", "json":
	default:
		return usageErrorf(cmd, "--output: must be table or json, got %q", c.flags.output)
	}
	conn, err := c.flags.conn.resolve(cmd.Flags().Changed, c.getenv, fileExists)
	if err != nil {
		return usageError{cmd: cmd.CommandPath(), err: err}
	}
	c.conn = conn
	return nil
}

// checkServer checks a --server address. host:port is what people give;
// gRPC would default a missing port to 443, and report a malformed address
// only on the first RPC, as Unavailable. A gRPC target with a scheme
// ("dns:///...", "unix:///...") is passed on as it is.
func checkServer(s string) error {
	if strings.Contains(s, ":///") {
		return nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return errors.New("want host:port")
	}
	if host == "" || port == "" {
		return errors.New("want host:port, both parts")
	}
	return nil
}

// dial opens the connection to the server, with the transport security and
// credential that the global flags resolved to. It reads the files they name
// (an unreadable one is a usage error) and connects lazily: an unreachable
// server shows up as Unavailable on the first RPC.
func (c *cli) dial(_ context.Context) (*grpc.ClientConn, error) {
	opts, err := c.conn.dialOptions()
	if err != nil {
		return nil, usageError{err: err}
	}
	opts = append(opts,
		grpc.WithUserAgent("medfleetctl/"+versionString()),
		// Spans and trace context for every call; free when tracing is off.
		grpc.WithStatsHandler(otelgrpc.NewClientHandler()),
		grpc.WithChainUnaryInterceptor(c.warnStale),
	)
	conn, err := grpc.NewClient(c.flags.server, opts...)
	if err != nil {
		// Only a malformed target fails here: a usage error.
		return nil, usageError{err: fmt.Errorf("--server %q: %w", c.flags.server, err)}
	}
	return conn, nil
}

// warnStale says on stderr, once, when the server answered from its memory
// alone because its etcd is unreachable (header medfleet-stale-since).
func (c *cli) warnStale(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	var md metadata.MD
	err := invoker(ctx, method, req, reply, cc, append(opts, grpc.Header(&md))...)
	if since := md.Get("medfleet-stale-since"); len(since) > 0 && !c.warnedStale {
		c.warnedStale = true
		fmt.Fprintf(c.stderr, "medfleetctl: warning: the server cannot reach its store since %s; this answer is from its memory and may be stale\n", since[0])
	}
	return err
}

// withConn dials the server, runs fn and closes the connection.
func (c *cli) withConn(ctx context.Context, fn func(*grpc.ClientConn) error) error {
	conn, err := c.dial(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return fn(conn)
}

// rpcContext returns the context of one RPC, bounded by --timeout.
func (c *cli) rpcContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.flags.timeout)
}

// subcommandArgs is the Args of a command that only groups subcommands:
// any argument left over is an unknown subcommand.
func subcommandArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageErrorf(cmd, "unknown command %q for %q", args[0], cmd.CommandPath())
	}
	return nil
}

// missingSubcommand is the RunE of a command that only groups subcommands.
func missingSubcommand(cmd *cobra.Command, _ []string) error {
	var names []string
	for _, sub := range cmd.Commands() {
		if sub.IsAvailableCommand() && sub.Name() != "help" && sub.Name() != "completion" {
			names = append(names, sub.Name())
		}
	}
	slices.Sort(names)
	return usageErrorf(cmd, "%smissing command, one of: %s", subPath(cmd), strings.Join(names, ", "))
}

// subPath is the command path without "medfleetctl" and with a colon:
// "device get: ", or "" for the root.
func subPath(cmd *cobra.Command) string {
	if !cmd.HasParent() {
		return ""
	}
	return strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()+" ") + ": "
}

// exactArgs is cobra.ExactArgs, but its error is a usage error.
// rangeArgs accepts min to max positional arguments.
func rangeArgs(min, max int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < min || len(args) > max {
			return usageErrorf(cmd, "%swant %s, got %d", subPath(cmd), what, len(args))
		}
		return nil
	}
}

func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usageErrorf(cmd, "%swant %s, got %d", subPath(cmd), what, len(args))
		}
		return nil
	}
}

// usageError is an error in the command line itself: bad flags or
// arguments, or a value that fails client-side validation. Nothing was
// sent to the server.
type usageError struct {
	cmd string // command path, for the hint; may be empty
	err error
}

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usageErrorf(cmd *cobra.Command, format string, args ...any) error {
	return usageError{cmd: cmd.CommandPath(), err: fmt.Errorf(format, args...)}
}

// exitCode maps an error to the exit code documented in rootLong.
func exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	if errors.As(err, new(usageError)) {
		return exitUsage
	}
	st, ok := status.FromError(err)
	if !ok {
		return exitError
	}
	switch st.Code() {
	case codes.OK:
		return exitOK
	case codes.NotFound:
		return exitNotFound
	case codes.AlreadyExists:
		return exitAlreadyExists
	case codes.InvalidArgument:
		return exitInvalidArgument
	case codes.FailedPrecondition, codes.Aborted:
		return exitFailedPrecondition
	case codes.Unavailable, codes.DeadlineExceeded:
		return exitUnavailable
	case codes.PermissionDenied, codes.Unauthenticated:
		return exitPermission
	default:
		return exitError
	}
}

// errorLines renders an error for stderr: first the gRPC code in words and
// the message (run prefixes it with "medfleetctl: "), then, indented, each
// field violation or precondition failure that the status carries, or for
// a usage error where to read about usage. server names the server when it
// could not be reached.
func errorLines(err error, server string) []string {
	var ue usageError
	if errors.As(err, &ue) {
		lines := []string{ue.Error()}
		if ue.cmd != "" {
			lines = append(lines, fmt.Sprintf("Run '%s --help' for usage.", ue.cmd))
		}
		return lines
	}
	st, ok := status.FromError(err)
	if !ok {
		return []string{err.Error()}
	}
	first := codeWords(st.Code()) + ": "
	switch st.Code() {
	case codes.Unavailable, codes.DeadlineExceeded:
		// Say which server: the address may have come from the
		// environment. (The server itself may also say Unavailable, when
		// its store is down; hence not "cannot reach".)
		first += "server " + server + ": "
	}
	msg := st.Message()
	first += msg
	lines := []string{first}
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.BadRequest:
			for _, v := range d.GetFieldViolations() {
				line := v.GetField() + ": " + v.GetDescription()
				if line != msg {
					lines = append(lines, "  "+line)
				}
			}
		case *errdetails.PreconditionFailure:
			for _, v := range d.GetViolations() {
				line := strings.TrimPrefix(v.GetSubject()+": "+v.GetDescription(), ": ")
				if line != msg {
					lines = append(lines, "  "+line)
				}
			}
		}
	}
	return lines
}

// codeWords spells a gRPC code in lower-case words: "invalid argument".
func codeWords(c codes.Code) string {
	if c == codes.OK {
		return "ok"
	}
	var b strings.Builder
	for i, r := range c.String() {
		if 'A' <= r && r <= 'Z' {
			if i > 0 {
				b.WriteByte(' ')
			}
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

func (c *cli) versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of medfleetctl",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if c.flags.output == "json" {
				return writeJSONValue(c.stdout, map[string]string{
					"version": versionString(),
					"api":     "medfleet.v1",
					"go":      runtime.Version(),
				})
			}
			_, err := fmt.Fprintf(c.stdout, "medfleetctl %s\napi: medfleet.v1\ngo: %s\n", versionString(), runtime.Version())
			return err
		},
	}
}

// versionString is the version set at link time, else the module version
// recorded by `go install`, else "devel".
func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}
