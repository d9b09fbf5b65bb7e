package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/medfleet/medfleet/internal/servertest"
	"github.com/medfleet/medfleet/server"
)

// unreachable is a loopback port nobody listens on: connecting to it is
// refused at once.
const unreachable = "127.0.0.1:1"

// runCLI runs a command line with the environment env and returns the exit
// code, stdout and stderr.
func runCLI(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	return runCLIStdin(t, env, "", args...)
}

// runCLIStdin is runCLI with stdin.
func runCLIStdin(t *testing.T, env map[string]string, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	getenv := func(k string) string { return env[k] }
	code := run(t.Context(), args, strings.NewReader(stdin), &stdout, &stderr, getenv)
	return code, stdout.String(), stderr.String()
}

// testServer is a real medfleetd, secure as it runs by default (TLS and
// authentication on gRPC), and the environment that points medfleetctl at
// it as its first administrator.
type testServer struct {
	cfg server.Config
	srv *server.Server
	env map[string]string
}

// startServer starts a secure medfleetd on loopback for the test.
func startServer(t *testing.T) *testServer {
	t.Helper()
	cfg := servertest.SecureConfig(t)
	srv := servertest.Start(t, cfg)
	return &testServer{cfg: cfg, srv: srv, env: map[string]string{
		envServer:    srv.Addrs().GRPC.String(),
		envCAFile:    cfg.CAPath(),
		envTokenFile: cfg.AdminTokenPath(),
	}}
}

// startInsecureServer starts a medfleetd run with --insecure-grpc.
func startInsecureServer(t *testing.T) *testServer {
	t.Helper()
	cfg := servertest.Config(t)
	srv := servertest.Start(t, cfg)
	return &testServer{cfg: cfg, srv: srv, env: map[string]string{
		envServer:   srv.Addrs().GRPC.String(),
		envInsecure: "1",
	}}
}

// run runs a command line as the first administrator.
func (s *testServer) run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	return s.runEnv(t, nil, args...)
}

// runEnv runs a command line in the server's environment changed by env;
// a variable set to "" is unset.
func (s *testServer) runEnv(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	merged := maps.Clone(s.env)
	maps.Copy(merged, env)
	return runCLI(t, merged, args...)
}

// runStdin runs a command line as the first administrator with stdin.
func (s *testServer) runStdin(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	return runCLIStdin(t, s.env, stdin, args...)
}

// mustRun runs a command line as the first administrator, fails the test
// unless it exits 0, and returns its stdout.
func (s *testServer) mustRun(t *testing.T, args ...string) string {
	t.Helper()
	code, stdout, stderr := s.run(t, args...)
	if code != exitOK {
		t.Fatalf("medfleetctl %q = %d, want 0; stderr:\n%s", args, code, stderr)
	}
	return stdout
}

// mustJSON runs a command line with -o json as the first administrator and
// decodes its output into m.
func (s *testServer) mustJSON(t *testing.T, m proto.Message, args ...string) {
	t.Helper()
	out := s.mustRun(t, append([]string{"-o", "json"}, args...)...)
	if err := protojson.Unmarshal([]byte(out), m); err != nil {
		t.Fatalf("medfleetctl -o json %q: %v; output:\n%s", args, err, out)
	}
}

func TestExitCode(t *testing.T) {
	tests := []struct {
		code codes.Code
		want int
	}{
		{codes.OK, exitOK},
		{codes.Canceled, exitError},
		{codes.Unknown, exitError},
		{codes.InvalidArgument, exitInvalidArgument},
		{codes.DeadlineExceeded, exitUnavailable},
		{codes.NotFound, exitNotFound},
		{codes.AlreadyExists, exitAlreadyExists},
		{codes.PermissionDenied, exitPermission},
		{codes.ResourceExhausted, exitError},
		{codes.FailedPrecondition, exitFailedPrecondition},
		{codes.Aborted, exitFailedPrecondition},
		{codes.OutOfRange, exitError},
		{codes.Unimplemented, exitError},
		{codes.Internal, exitError},
		{codes.Unavailable, exitUnavailable},
		{codes.DataLoss, exitError},
		{codes.Unauthenticated, exitPermission},
	}
	if len(tests) != 17 {
		t.Fatalf("%d codes in the table, want all 17", len(tests))
	}
	for _, tc := range tests {
		t.Run(tc.code.String(), func(t *testing.T) {
			err := status.Error(tc.code, "boom")
			if got := exitCode(err); got != tc.want {
				t.Errorf("exitCode(%v) = %d, want %d", err, got, tc.want)
			}
			if err == nil {
				return // status.Error(OK) is nil
			}
			wrapped := fmt.Errorf("get device: %w", err)
			if got := exitCode(wrapped); got != tc.want {
				t.Errorf("exitCode(%v) = %d, want %d", wrapped, got, tc.want)
			}
		})
	}
}

func TestExitCodeOther(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"nil", nil, exitOK},
		{"usage", usageError{err: errors.New("bad flag")}, exitUsage},
		{"wrapped usage", fmt.Errorf("x: %w", usageError{err: errors.New("bad flag")}), exitUsage},
		{"plain", errors.New("write /dev/stdout: broken pipe"), exitError},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := exitCode(tc.err); got != tc.want {
				t.Errorf("exitCode(%v) = %d, want %d", tc.err, got, tc.want)
			}
		})
	}
}

func TestCodeWords(t *testing.T) {
	tests := map[codes.Code]string{
		codes.OK:                 "ok",
		codes.NotFound:           "not found",
		codes.InvalidArgument:    "invalid argument",
		codes.DeadlineExceeded:   "deadline exceeded",
		codes.FailedPrecondition: "failed precondition",
		codes.Unauthenticated:    "unauthenticated",
	}
	for c, want := range tests {
		if got := codeWords(c); got != want {
			t.Errorf("codeWords(%v) = %q, want %q", c, got, want)
		}
	}
}

func withDetails(t *testing.T, st *status.Status, details ...*errdetails.BadRequest) error {
	t.Helper()
	for _, d := range details {
		var err error
		st, err = st.WithDetails(d)
		if err != nil {
			t.Fatal(err)
		}
	}
	return st.Err()
}

func TestErrorLines(t *testing.T) {
	violations := &errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
		{Field: "device_id", Description: "required"},
		{Field: "device.profile", Description: "must be lower-case"},
	}}
	tests := []struct {
		name string
		err  error
		want []string
	}{
		{
			name: "status",
			err:  status.Error(codes.NotFound, "device devices/pump-0001 not found"),
			want: []string{"not found: device devices/pump-0001 not found"},
		},
		{
			name: "field violations, the one in the message not repeated",
			err:  withDetails(t, status.New(codes.InvalidArgument, "device_id: required"), violations),
			want: []string{
				"invalid argument: device_id: required",
				"  device.profile: must be lower-case",
			},
		},
		{
			name: "unavailable names the server",
			err:  status.Error(codes.Unavailable, "connection refused"),
			want: []string{"unavailable: server 10.0.0.7:7443: connection refused"},
		},
		{
			name: "usage with hint",
			err:  usageError{cmd: "medfleetctl device get", err: errors.New("device id \"a b\": bad")},
			want: []string{`device id "a b": bad`, "Run 'medfleetctl device get --help' for usage."},
		},
		{
			name: "plain",
			err:  errors.New("write /dev/stdout: broken pipe"),
			want: []string{"write /dev/stdout: broken pipe"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := errorLines(tc.err, "10.0.0.7:7443")
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("errorLines(%v) mismatch (-want +got):\n%s", tc.err, diff)
			}
		})
	}
}

// TestUnreachableServer runs a real command against a loopback port that
// refuses connections.
func TestUnreachableServer(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		args []string
	}{
		{"flag", nil, []string{"--server", unreachable, "--timeout", "300ms", "device", "list"}},
		{"environment", map[string]string{envServer: unreachable}, []string{"--timeout", "300ms", "device", "get", "pump-0001"}},
		{"json output", nil, []string{"--server", unreachable, "--timeout", "300ms", "-o", "json", "device", "list", "--all"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			code, stdout, stderr := runCLI(t, tc.env, tc.args...)
			if code != exitUnavailable {
				t.Errorf("exit code = %d, want %d (stderr %q)", code, exitUnavailable, stderr)
			}
			if stdout != "" {
				t.Errorf("stdout = %q, want nothing", stdout)
			}
			// Connection refused is Unavailable; a slow refusal would be
			// DeadlineExceeded. Both must say which server.
			if !strings.HasPrefix(stderr, "medfleetctl: unavailable: server "+unreachable+": ") &&
				!strings.HasPrefix(stderr, "medfleetctl: deadline exceeded: server "+unreachable+": ") {
				t.Errorf("stderr = %q, want medfleetctl: unavailable: server %s: ...", stderr, unreachable)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %v with --timeout 300ms", d)
			}
		})
	}
}

// TestUsageErrors checks that bad command lines exit 2 before any RPC: the
// server is unreachable, so an RPC would exit 7 instead.
func TestUsageErrors(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantStderr string
	}{
		{"label without =", []string{"device", "list", "--label", "foo"}, `invalid argument "foo" for "--label" flag: want key=value`},
		{"label without key", []string{"device", "create", "p-1", "--profile", "cpap", "--model", "m", "--label", "=x"}, `for "--label" flag`},
		{"online and offline", []string{"device", "list", "--online", "--offline"}, "--online and --offline exclude each other"},
		{"bad state", []string{"device", "list", "--state", "asleep"}, `--state: want idle, in_use, charging or fault, got "asleep"`},
		{"negative page size", []string{"device", "list", "--page-size", "-1"}, "--page-size"},
		{"unknown flag", []string{"device", "list", "--colour"}, "unknown flag: --colour"},
		{"bad output", []string{"-o", "yaml", "device", "list"}, `--output: must be table or json, got "yaml"`},
		{"empty server", []string{"--server", "", "device", "list"}, `--server "": want host:port`},
		{"server without port", []string{"--server", "medfleet.example", "device", "list"}, `--server "medfleet.example": want host:port`},
		{"malformed server", []string{"--server", "bad::[", "device", "list"}, `--server "bad::["`},
		{"zero timeout", []string{"--timeout", "0s", "device", "list"}, "--timeout: must be positive"},
		{"bad timeout", []string{"--timeout", "soon", "device", "list"}, `"--timeout" flag`},
		{"get without id", []string{"device", "get"}, "device get: want one device id, got 0"},
		{"get two ids", []string{"device", "get", "a", "b"}, "device get: want one device id, got 2"},
		{"bad id", []string{"device", "get", "pump 1"}, `device id "pump 1": want 1 to 64 characters`},
		{"bad resource name", []string{"device", "delete", "devices/"}, `device id "devices/"`},
		{"list with argument", []string{"device", "list", "pump-0001"}, "device list: want no arguments, got 1"},
		{"unknown verb", []string{"device", "frob"}, `unknown command "frob" for "medfleetctl device"`},
		{"unknown noun", []string{"frob"}, `unknown command "frob" for "medfleetctl"`},
		{"noun without verb", []string{"device"}, "medfleetctl: device: missing command, one of: clean, create, credential, delete, enroll, export, get, import, list, status, tag, update\n"},
		{"nothing at all", []string{}, "medfleetctl: missing command, one of: audit, checkin, device, facility, find, firmware, locate, location, maintenance, model, par, recall, rollout, token, user, version, whoami, workorder\n"},
		{"create without profile", []string{"device", "create", "p-1", "--model", "m"}, "--profile: required"},
		{"create without model", []string{"device", "create", "p-1", "--profile", "cpap"}, "--model: required"},
		{"create label twice", []string{"device", "create", "p-1", "--profile", "cpap", "--model", "m", "--label", "a=1", "--label", "a=2"}, `--label: key "a" given twice`},
		{"create long request id", []string{"device", "create", "p-1", "--profile", "cpap", "--model", "m", "--request-id", strings.Repeat("r", 65)}, "--request-id: at most 64 characters"},
		{"update nothing", []string{"device", "update", "p-1"}, "nothing to update"},
		{"update set and remove", []string{"device", "update", "p-1", "--label", "a=1", "--remove-label", "a"}, `label "a": both --label and --remove-label`},
		{"update remove empty key", []string{"device", "update", "p-1", "--remove-label", ""}, "--remove-label: want a label key"},
		{"whoami with argument", []string{"whoami", "alice"}, "whoami: want no arguments, got 1"},
		{"user create without role", []string{"user", "create", "alice"}, "--role: required, one of admin, biomed, facility, automation"},
		{"user create unknown role", []string{"user", "create", "alice", "--role", "nurse"}, `--role: want one of admin, biomed, facility, automation, got "nurse"`},
		{"user create bad id", []string{"user", "create", "Alice", "--role", "biomed"}, `user id "Alice": want 1 to 64 characters of [a-z0-9._-]`},
		{"user get resource name of a device", []string{"user", "get", "devices/p-1"}, `user id "devices/p-1"`},
		{"user cert without out", []string{"user", "cert", "alice"}, "--out: required"},
		{"user cert bad validity", []string{"user", "cert", "alice", "--out", "a", "--validity", "soon"}, `invalid argument "soon" for "--validity" flag: want a duration such as 90d or 720h`},
		{"user cert zero validity", []string{"user", "cert", "alice", "--out", "a", "--validity", "0d"}, "--validity: must be positive"},
		{"token create negative ttl", []string{"token", "create", "alice", "--ttl", "-1h"}, `"--ttl" flag: must not be negative`},
		{"token list two users", []string{"token", "list", "alice", "bob"}, "token list: want at most one user id, got 2"},
		{"token delete without token id", []string{"token", "delete", "alice"}, "token delete: want a user id and a token id, got 1"},
		{"token delete bad token id", []string{"token", "delete", "alice", "a/b"}, `token id "a/b"`},
		{"enroll kind without out", []string{"device", "enroll", "p-1", "--kind", "psk"}, "--kind: needs --out FILE"},
		{"enroll out without kind", []string{"device", "enroll", "p-1", "--out", "p-1.json"}, "--out: needs --kind psk or --kind cert"},
		{"enroll unknown kind", []string{"device", "enroll", "p-1", "--kind", "x509", "--out", "p-1.json"}, `--kind: want psk or cert, got "x509"`},
		{"enroll out with ttl", []string{"device", "enroll", "p-1", "--kind", "psk", "--out", "p-1.json", "--ttl", "2h"}, "--ttl: only for an enrolment token"},
		{"enroll out with ca-out", []string{"device", "enroll", "p-1", "--kind", "psk", "--out", "p-1.json", "--ca-out", "ca.pem"}, "--ca-out: only for an enrolment token"},
		{"enroll force without file", []string{"device", "enroll", "p-1", "--force"}, "--force: replaces the file of --out or --ca-out"},
		{"enroll zero ttl", []string{"device", "enroll", "p-1", "--ttl", "0s"}, "--ttl: must be positive"},
		{"credential bad id", []string{"device", "credential", "get", "pump 1"}, `device id "pump 1"`},
		{"credential without verb", []string{"device", "credential"}, "device credential: missing command, one of: get, revoke"},
		{"audit list negative limit", []string{"audit", "list", "--limit", "-1"}, "--limit: must not be negative"},
		{"audit verify with argument", []string{"audit", "verify", "x"}, "audit verify: want no arguments, got 1"},
		{"cert without key", []string{"--cert", "a.crt", "whoami"}, `--cert "a.crt": needs --key`},
		{"key without cert", []string{"--key", "a.key", "whoami"}, `--key "a.key": needs --cert`},
		{"token file and cert", []string{"--token-file", "t", "--cert", "a.crt", "--key", "a.key", "whoami"}, "--token-file and --cert: give one credential"},
		{"insecure with ca file", []string{"--insecure", "--ca-file", "ca.crt", "whoami"}, "--ca-file: a plaintext connection"},
		{"insecure with token file", []string{"--insecure", "--token-file", "t", "whoami"}, "--token-file: a plaintext connection"},
		{"empty token file", []string{"--token-file", "", "whoami"}, `--token-file "": want a file`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"--server", unreachable}, tc.args...)
			code, stdout, stderr := runCLI(t, nil, args...)
			if code != exitUsage {
				t.Errorf("run(%q) exit code = %d, want %d (stderr %q)", args, code, exitUsage, stderr)
			}
			if !strings.HasPrefix(stderr, "medfleetctl: ") || !strings.Contains(stderr, tc.wantStderr) {
				t.Errorf("run(%q) stderr = %q, want medfleetctl: ...%s...", args, stderr, tc.wantStderr)
			}
			if !strings.Contains(stderr, "\nRun 'medfleetctl") {
				t.Errorf("run(%q) stderr = %q, want a hint to --help", args, stderr)
			}
			if stdout != "" {
				t.Errorf("run(%q) stdout = %q, want nothing", args, stdout)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	code, stdout, stderr := runCLI(t, nil, "--help")
	if code != exitOK {
		t.Errorf("--help exit code = %d, want 0 (stderr %q)", code, stderr)
	}
	for _, want := range []string{
		"Exit codes:", "  7  unavailable", "--server", "device", "audit", "token", "user", "whoami",
		"MEDFLEET_TOKEN ", "--token-file", "--ca-file", "--cert", "--key", "--server-name", "--insecure",
		"MEDFLEET_CA_FILE", "MEDFLEET_TOKEN_FILE", "MEDFLEET_CERT_FILE", "MEDFLEET_KEY_FILE", "MEDFLEET_SERVER_NAME", "MEDFLEET_INSECURE",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("--help output lacks %q:\n%s", want, stdout)
		}
	}
}

func TestVersion(t *testing.T) {
	code, stdout, _ := runCLI(t, nil, "version")
	if code != exitOK || !strings.HasPrefix(stdout, "medfleetctl ") || !strings.Contains(stdout, "api: medfleet.v1\n") {
		t.Errorf("version = %d, %q; want 0, medfleetctl <version>\\napi: medfleet.v1...", code, stdout)
	}

	code, stdout, _ = runCLI(t, nil, "version", "-o", "json")
	var v map[string]string
	if err := json.Unmarshal([]byte(stdout), &v); err != nil || code != exitOK {
		t.Fatalf("version -o json = %d, %q (%v); want 0 and a JSON object", code, stdout, err)
	}
	if v["api"] != "medfleet.v1" || v["version"] == "" {
		t.Errorf("version -o json = %v, want api medfleet.v1 and a version", v)
	}
}

// TestCanceled checks that an interrupted command (Ctrl-C cancels the
// context in main) fails without hanging.
func TestCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	var stdout, stderr bytes.Buffer
	code := run(ctx, []string{"--server", unreachable, "device", "list"}, nil, &stdout, &stderr, func(string) string { return "" })
	if code != exitError {
		t.Errorf("exit code = %d, want %d (stderr %q)", code, exitError, stderr.String())
	}
	if !strings.HasPrefix(stderr.String(), "medfleetctl: canceled: ") {
		t.Errorf("stderr = %q, want medfleetctl: canceled: ...", stderr.String())
	}
}
