package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/testing/protocmp"

	medfleetv1 "github.com/medfleet/medfleet/proto/medfleet/v1"
)

func TestResolve(t *testing.T) {
	tests := []struct {
		name    string
		flags   connFlags
		changed []string // flags on the command line
		env     map[string]string
		exist   []string // files that exist
		want    connection
		wantErr string
	}{
		{
			name: "nothing: system roots, no credential",
			want: connection{auth: authNone},
		},
		{
			name:  "defaults when the files exist",
			exist: []string{defaultCAFile, defaultTokenFile},
			want: connection{
				ca:        source{flag: "--ca-file", path: defaultCAFile, from: "default"},
				tokenFile: source{flag: "--token-file", path: defaultTokenFile, from: "default"},
				auth:      authToken,
			},
		},
		{
			name:    "flags win over the environment",
			flags:   connFlags{caFile: "flag-ca.crt", tokenFile: "flag.token", serverName: "flag.example"},
			changed: []string{"ca-file", "token-file", "server-name"},
			env:     map[string]string{envCAFile: "env-ca.crt", envToken: "mft_env", envTokenFile: "env.token", envServerName: "env.example"},
			exist:   []string{defaultCAFile, defaultTokenFile},
			want: connection{
				serverName: "flag.example",
				ca:         source{flag: "--ca-file", path: "flag-ca.crt"},
				tokenFile:  source{flag: "--token-file", path: "flag.token"},
				auth:       authToken,
			},
		},
		{
			name:  "environment wins over the defaults; MEDFLEET_TOKEN over MEDFLEET_TOKEN_FILE",
			env:   map[string]string{envCAFile: "env-ca.crt", envToken: "mft_env", envTokenFile: "env.token", envServerName: "env.example"},
			exist: []string{defaultCAFile, defaultTokenFile},
			want: connection{
				serverName: "env.example",
				ca:         source{flag: "--ca-file", path: "env-ca.crt", from: envCAFile},
				token:      "mft_env",
				auth:       authToken,
			},
		},
		{
			name:  "MEDFLEET_TOKEN_FILE",
			env:   map[string]string{envTokenFile: "env.token"},
			exist: []string{defaultTokenFile},
			want: connection{
				tokenFile: source{flag: "--token-file", path: "env.token", from: envTokenFile},
				auth:      authToken,
			},
		},
		{
			name:    "a client certificate: no token, not even the default",
			flags:   connFlags{certFile: "a.crt", keyFile: "a.key"},
			changed: []string{"cert", "key"},
			env:     map[string]string{envToken: "mft_env"},
			exist:   []string{defaultTokenFile},
			want: connection{
				cert: source{flag: "--cert", path: "a.crt"},
				key:  source{flag: "--key", path: "a.key"},
				auth: authCertificate,
			},
		},
		{
			name: "a client certificate from the environment",
			env:  map[string]string{envCertFile: "a.crt", envKeyFile: "a.key"},
			want: connection{
				cert: source{flag: "--cert", path: "a.crt", from: envCertFile},
				key:  source{flag: "--key", path: "a.key", from: envKeyFile},
				auth: authCertificate,
			},
		},
		{
			name:  "MEDFLEET_INSECURE ignores credentials in the environment",
			env:   map[string]string{envInsecure: "1", envToken: "mft_env", envCAFile: "env-ca.crt"},
			exist: []string{defaultCAFile, defaultTokenFile},
			want:  connection{insecure: true, auth: authInsecure},
		},
		{
			name:    "--insecure=false overrides MEDFLEET_INSECURE",
			changed: []string{"insecure"},
			env:     map[string]string{envInsecure: "true"},
			want:    connection{auth: authNone},
		},
		{
			name:    "bad MEDFLEET_INSECURE",
			env:     map[string]string{envInsecure: "yes please"},
			wantErr: `MEDFLEET_INSECURE="yes please": want 1 or 0`,
		},
		{
			name:    "MEDFLEET_INSECURE with --cert",
			flags:   connFlags{certFile: "a.crt", keyFile: "a.key"},
			changed: []string{"cert", "key"},
			env:     map[string]string{envInsecure: "1"},
			wantErr: "--cert: a plaintext connection",
		},
		{
			name:    "key from the environment, certificate nowhere",
			env:     map[string]string{envKeyFile: "a.key"},
			wantErr: `--key "a.key" (from MEDFLEET_KEY_FILE): needs --cert`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			changed := func(name string) bool { return slices.Contains(tc.changed, name) }
			getenv := func(k string) string { return tc.env[k] }
			exists := func(p string) bool { return slices.Contains(tc.exist, p) }
			got, err := tc.flags.resolve(changed, getenv, exists)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("resolve() = %+v, %v; want error containing %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("resolve(): %v", err)
			}
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(connection{}, source{})); diff != "" {
				t.Errorf("resolve() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCheckToken(t *testing.T) {
	for _, tok := range []string{"mft_abc_DEF-123", "x"} {
		if err := checkToken(tok); err != nil {
			t.Errorf("checkToken(%q) = %v, want nil", tok, err)
		}
	}
	for _, tok := range []string{"", "mft_a b", "mft_a\nmft_b", "mft_\x00", "mft_ü"} {
		err := checkToken(tok)
		if err == nil {
			t.Errorf("checkToken(%q) = nil, want an error", tok)
		} else if tok != "" && strings.Contains(err.Error(), tok) {
			t.Errorf("checkToken(%q) = %v: the error repeats the token", tok, err)
		}
	}
}

// TestConnectionFileErrors checks that files the connection flags name but
// that cannot be used are usage errors naming the flag, before any RPC (the
// server is unreachable: an RPC would exit 7), and that a token's contents
// never show in the error.
func TestConnectionFileErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	missing := filepath.Join(dir, "missing")
	notPEM := write("not.pem", "hello\n", 0o644)
	emptyToken := write("empty.token", "\n", 0o600)
	twoTokens := write("two.token", "mft_secret_one mft_secret_two\n", 0o600)
	unreadable := write("unreadable.token", "mft_x_y\n", 0o000)

	tests := []struct {
		name       string
		env        map[string]string
		args       []string
		wantStderr string
	}{
		{"missing CA", nil, []string{"--ca-file", missing, "whoami"}, `--ca-file "` + missing + `": no such file or directory`},
		{"missing CA from the environment", map[string]string{envCAFile: missing}, []string{"whoami"}, `--ca-file "` + missing + `" (from MEDFLEET_CA_FILE): no such file`},
		{"CA not PEM", nil, []string{"--ca-file", notPEM, "whoami"}, `--ca-file "` + notPEM + `": holds no PEM certificate`},
		{"missing token file", nil, []string{"--token-file", missing, "device", "list"}, `--token-file "` + missing + `": no such file`},
		{"missing token file from the environment", map[string]string{envTokenFile: missing}, []string{"whoami"}, `(from MEDFLEET_TOKEN_FILE): no such file`},
		{"empty token file", nil, []string{"--token-file", emptyToken, "whoami"}, `--token-file "` + emptyToken + `": holds no token`},
		{"two tokens in the file", nil, []string{"--token-file", twoTokens, "whoami"}, `": want one line holding the token`},
		{"bad MEDFLEET_TOKEN", map[string]string{envToken: "mft_secret_one\tmft_secret_two"}, []string{"whoami"}, "MEDFLEET_TOKEN: want one line holding the token"},
		{"missing cert", nil, []string{"--cert", missing, "--key", notPEM, "whoami"}, `--cert "` + missing + `": no such file`},
		{"missing key", nil, []string{"--cert", notPEM, "--key", missing, "whoami"}, `--key "` + missing + `": no such file`},
		{"cert not PEM", nil, []string{"--cert", notPEM, "--key", notPEM, "audit", "verify"}, `--cert "` + notPEM + `" and --key "` + notPEM + `": tls: `},
	}
	if os.Geteuid() != 0 { // root reads any file
		tests = append(tests, struct {
			name       string
			env        map[string]string
			args       []string
			wantStderr string
		}{"unreadable token file", nil, []string{"--token-file", unreadable, "whoami"}, `--token-file "` + unreadable + `": permission denied`})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"--server", unreachable}, tc.args...)
			code, stdout, stderr := runCLI(t, tc.env, args...)
			if code != exitUsage {
				t.Errorf("run(%q) exit code = %d, want %d (stderr %q)", args, code, exitUsage, stderr)
			}
			if !strings.HasPrefix(stderr, "medfleetctl: ") || !strings.Contains(stderr, tc.wantStderr) {
				t.Errorf("run(%q) stderr = %q, want medfleetctl: ...%s...", args, stderr, tc.wantStderr)
			}
			if strings.Contains(stderr, "secret") {
				t.Errorf("run(%q) stderr = %q: shows the token", args, stderr)
			}
			if stdout != "" {
				t.Errorf("run(%q) stdout = %q, want nothing", args, stdout)
			}
		})
	}
}

// whoami runs "whoami -o json" in the server's environment changed by env
// and returns the caller, failing the test unless it exits 0.
func whoami(t *testing.T, s *testServer, env map[string]string, args ...string) *medfleetv1.Caller {
	t.Helper()
	args = append(args, "-o", "json", "whoami")
	code, stdout, stderr := s.runEnv(t, env, args...)
	if code != exitOK {
		t.Fatalf("whoami %q with %v = %d, want 0; stderr:\n%s", args, env, code, stderr)
	}
	caller := new(medfleetv1.Caller)
	if err := protojson.Unmarshal([]byte(stdout), caller); err != nil {
		t.Fatalf("whoami -o json: %v; output:\n%s", err, stdout)
	}
	return caller
}

// TestWhoami authenticates against a secure server in each way medfleetctl
// offers.
func TestWhoami(t *testing.T) {
	s := startServer(t)
	admin, err := os.ReadFile(s.cfg.AdminTokenPath())
	if err != nil {
		t.Fatal(err)
	}
	wantAdmin := &medfleetv1.Caller{User: "users/admin", Role: medfleetv1.Role_ROLE_ADMIN, AuthenticatedBy: "token"}

	tests := []struct {
		name string
		env  map[string]string
		args []string
	}{
		{"MEDFLEET_TOKEN_FILE", nil, nil},
		{"--token-file", map[string]string{envTokenFile: ""}, []string{"--token-file", s.cfg.AdminTokenPath()}},
		{"MEDFLEET_TOKEN", map[string]string{envTokenFile: "", envToken: string(admin)}, nil},
		{"--ca-file and --server-name", map[string]string{envCAFile: ""}, []string{"--ca-file", s.cfg.CAPath(), "--server-name", "localhost"}},
		{"MEDFLEET_SERVER_NAME", map[string]string{envServerName: "medfleetd"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := whoami(t, s, tc.env, tc.args...)
			if diff := cmp.Diff(wantAdmin, got, protocmp.Transform()); diff != "" {
				t.Errorf("whoami mismatch (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("table", func(t *testing.T) {
		out := s.mustRun(t, "whoami")
		want := "user:             users/admin\nrole:             admin\nsite:             all\nauthenticated by: token\n"
		if out != want {
			t.Errorf("whoami = %q, want %q", out, want)
		}
	})

	// The files medfleetd writes in its data directory are the defaults,
	// relative to the working directory.
	t.Run("default files", func(t *testing.T) {
		dir := t.TempDir()
		copyFile(t, s.cfg.CAPath(), filepath.Join(dir, defaultCAFile))
		copyFile(t, s.cfg.AdminTokenPath(), filepath.Join(dir, defaultTokenFile))
		t.Chdir(dir)
		got := whoami(t, s, map[string]string{envCAFile: "", envTokenFile: ""})
		if diff := cmp.Diff(wantAdmin, got, protocmp.Transform()); diff != "" {
			t.Errorf("whoami with the default files mismatch (-want +got):\n%s", diff)
		}
	})
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestConnectionRefused checks the exit codes and hints when the server
// refuses the credential or the TLS handshake fails, and that a refused
// token does not show in the output.
func TestConnectionRefused(t *testing.T) {
	s := startServer(t)
	const wrong = "mft_0000000000000000_wrongwrongwrongwrongwrongwrongwrongwrong0"
	tests := []struct {
		name     string
		env      map[string]string
		args     []string
		wantCode int
		want     []string // in stderr
	}{
		{
			name:     "wrong token",
			env:      map[string]string{envTokenFile: "", envToken: wrong},
			wantCode: exitPermission,
			want: []string{
				"medfleetctl: unauthenticated: token is unknown, expired or revoked\n",
				"  the server refused the token from MEDFLEET_TOKEN: set MEDFLEET_TOKEN or --token-file to a valid token\n",
			},
		},
		{
			name:     "no credential",
			env:      map[string]string{envTokenFile: ""},
			wantCode: exitPermission,
			want:     []string{"medfleetctl: unauthenticated: ", "  no credential was sent: set MEDFLEET_TOKEN or --token-file"},
		},
		{
			name:     "no CA",
			env:      map[string]string{envCAFile: ""},
			wantCode: exitUnavailable,
			want:     []string{"x509: certificate signed by unknown authority", "  the server's certificate is not signed by a CA of the system: set --ca-file or MEDFLEET_CA_FILE"},
		},
		{
			name:     "wrong server name",
			args:     []string{"--server-name", "medfleet.example.org"},
			wantCode: exitUnavailable,
			want:     []string{"not medfleet.example.org", "  the server's certificate does not name the host of --server: give one of its names with --server-name"},
		},
		{
			name:     "plaintext to a TLS server",
			env:      map[string]string{envInsecure: "1"},
			wantCode: exitUnavailable,
			want:     []string{"medfleetctl: unavailable: server " + s.env[envServer] + ": ", "  --insecure speaks plaintext: if the server uses TLS"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := append(tc.args, "whoami")
			code, stdout, stderr := s.runEnv(t, tc.env, args...)
			if code != tc.wantCode {
				t.Errorf("whoami = %d, want %d (stderr %q)", code, tc.wantCode, stderr)
			}
			for _, want := range tc.want {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr = %q, want it to contain %q", stderr, want)
				}
			}
			if strings.Contains(stdout+stderr, "wrongwrong") {
				t.Errorf("the output shows the token: %q", stdout+stderr)
			}
			if stdout != "" {
				t.Errorf("stdout = %q, want nothing", stdout)
			}
		})
	}

	// A role that does not allow the call: exit 8 with a hint to whoami.
	s.mustRun(t, "user", "create", "viewer", "--role", "facility")
	tok := strings.TrimSpace(s.mustRun(t, "token", "create", "viewer"))
	code, _, stderr := s.runEnv(t, map[string]string{envTokenFile: "", envToken: tok}, "user", "list")
	if code != exitPermission || !strings.HasPrefix(stderr, "medfleetctl: permission denied: role facility may not") ||
		!strings.Contains(stderr, "'medfleetctl whoami' shows who the server thinks you are") {
		t.Errorf("user list as facility = %d, %q; want %d, permission denied and a hint to whoami", code, stderr, exitPermission)
	}
}

// TestInsecureServer talks plaintext to a server run with --insecure-grpc,
// as the tests of the device commands did before TLS.
func TestInsecureServer(t *testing.T) {
	s := startInsecureServer(t)
	want := &medfleetv1.Caller{User: "users/anonymous", Role: medfleetv1.Role_ROLE_ADMIN, AuthenticatedBy: "insecure"}
	for name, tc := range map[string]struct {
		env  map[string]string
		args []string
	}{
		"MEDFLEET_INSECURE": {nil, nil},
		"--insecure":        {map[string]string{envInsecure: ""}, []string{"--insecure"}},
		// Credentials in the environment are not sent in plaintext.
		"environment credentials ignored": {map[string]string{envToken: "mft_x_y", envCAFile: "/nonexistent"}, nil},
	} {
		t.Run(name, func(t *testing.T) {
			got := whoami(t, s, tc.env, tc.args...)
			if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
				t.Errorf("whoami mismatch (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("device round trip", func(t *testing.T) {
		s.mustRun(t, "device", "create", "pump-0001", "--profile", "infusion-pump", "--model", "Alaris 8100", "--site", "north")
		s.mustRun(t, "device", "create", "cpap-0002", "--profile", "cpap", "--model", "AirSense 11", "--site", "south")
		var d medfleetv1.Device
		s.mustJSON(t, &d, "device", "update", "cpap-0002", "--site", "north")
		if d.GetSite() != "north" {
			t.Errorf("device update --site north: site = %q", d.GetSite())
		}
		var list medfleetv1.ListDevicesResponse
		s.mustJSON(t, &list, "device", "list", "--site", "north")
		var ids []string
		for _, d := range list.GetDevices() {
			ids = append(ids, deviceID(d.GetName()))
		}
		if diff := cmp.Diff([]string{"cpap-0002", "pump-0001"}, ids); diff != "" {
			t.Errorf("device list --site north mismatch (-want +got):\n%s", diff)
		}
		if out := s.mustRun(t, "device", "get", "pump-0001"); !strings.Contains(out, "\nsite:           north\n") {
			t.Errorf("device get pump-0001 lacks its site:\n%s", out)
		}
	})

	t.Run("without --insecure", func(t *testing.T) {
		code, _, stderr := s.runEnv(t, map[string]string{envInsecure: ""}, "whoami")
		if code != exitUnavailable || !strings.Contains(stderr, "  the server speaks plaintext (--insecure-grpc): add --insecure or set MEDFLEET_INSECURE=1") {
			t.Errorf("TLS to a plaintext server = %d, %q; want %d and a hint to --insecure", code, stderr, exitUnavailable)
		}
	})
}
