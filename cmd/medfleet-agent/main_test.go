package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/medfleet/medfleet/agent"
	"github.com/medfleet/medfleet/firmware/manifest"
)

// freeAddr returns a loopback UDP address nobody listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().String()
}

func TestUsageErrors(t *testing.T) {
	config := filepath.Join(t.TempDir(), "agent.yaml")
	if err := os.WriteFile(config, []byte("servr: typo\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fwConfig := filepath.Join(t.TempDir(), "fw.yaml")
	if err := os.WriteFile(fwConfig, []byte("firmware_update:\n  install_command: [/usr/sbin/fw-install]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string // in stderr
	}{
		{name: "no command", args: nil, want: "missing command"},
		{name: "unknown command", args: []string{"fly"}, want: `unknown command or argument "fly"`},
		{name: "unknown flag", args: []string{"run", "--bogus"}, want: "unknown flag: --bogus"},
		{name: "bad duration", args: []string{"run", "--interval", "soon"}, want: "invalid argument"},
		{name: "missing id", args: []string{"run", "--profile", "cpap", "--model", "m", "--fw", "1"}, want: "device_id: required"},
		{name: "unknown profile", args: []string{"run", "--id", "a", "--profile", "toaster", "--model", "m", "--fw", "1"}, want: "profile: "},
		{name: "config typo", args: []string{"run", "--config", config}, want: "field servr not found"},
		{name: "missing config", args: []string{"run", "--config", config + ".missing"}, want: "--config"},
		{name: "bad log level", args: []string{"--log-level", "loud", "run"}, want: "--log-level"},
		{name: "no devices", args: []string{"simulate", "--insecure"}, want: "devices: "},
		{name: "simulate without credentials", args: []string{"simulate", "--devices", "3"}, want: "--insecure"},
		{name: "simulate with a missing ca file", args: []string{"simulate", "--devices", "3", "--credentials-dir", ".", "--ca-file", config + ".missing"}, want: "--ca-file"},
		{name: "simulate with a missing firmware keys file", args: []string{"simulate", "--insecure", "--devices", "3", "--firmware-keys", config + ".missing"}, want: "--firmware-keys"},
		{name: "simulate with no firmware keys in the file", args: []string{"simulate", "--insecure", "--devices", "3", "--firmware-keys", config}, want: "--firmware-keys"},
		{name: "firmware command without a state dir", args: []string{"run", "--insecure", "--config", fwConfig, "--id", "a", "--profile", "cpap", "--model", "m", "--fw", "1"},
			want: "firmware_update.install_command: requires state_dir"},
		{name: "no credential", args: []string{"run", "--id", "a", "--profile", "cpap", "--model", "m", "--fw", "1", "--server", "127.0.0.1:1"},
			want: "credentials_file is not set (nor state_dir) and enrol_token is empty"},
		{name: "token when insecure", args: []string{"run", "--insecure", "--enrol-token", "mfe_x", "--id", "a", "--profile", "cpap", "--model", "m", "--fw", "1"},
			want: "enrol_token: set with insecure"},
		{name: "token without ca", args: []string{"run", "--enrol-token", "mfe_x", "--id", "a", "--profile", "cpap", "--model", "m", "--fw", "1"},
			want: "ca_file: required with enrol_token"},
		{name: "unknown enrol kind", args: []string{"run", "--enrol-kind", "password", "--id", "a", "--profile", "cpap", "--model", "m", "--fw", "1"},
			want: "enrol_kind: "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(t.Context(), tc.args, &stdout, &stderr); code != exitUsage {
				t.Errorf("run(%q) = %d, want %d; stderr:\n%s", tc.args, code, exitUsage, stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("run(%q) stderr = %q, want it to contain %q", tc.args, stderr.String(), tc.want)
			}
		})
	}
}

// TestRunStopsGracefully runs an agent configured by a file and flags,
// against a server that is not there, and stops it: exit 0, and the state
// it saved shows that the flags won over the file.
func TestRunStopsGracefully(t *testing.T) {
	dir := t.TempDir()
	keys := writeFirmwareKeys(t, dir)
	config := filepath.Join(dir, "agent.yaml")
	yaml := "device_id: from-file\nprofile: cpap\nmodel: ResMed AirSense 11\nfirmware: 1.0.0\ninterval: 50ms\nrequest_timeout: 100ms\n" +
		"firmware_update:\n  trusted_keys_file: " + keys + "\n  max_defer_period: 1h\n"
	if err := os.WriteFile(config, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state")
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	var stdout, stderr bytes.Buffer
	args := []string{"run", "--insecure", "--config", config, "--id", "from-flag", "--server", freeAddr(t), "--state-dir", state}
	if code := run(ctx, args, &stdout, &stderr); code != exitOK {
		t.Fatalf("run(%q) = %d, want %d; stderr:\n%s", args, code, exitOK, stderr.String())
	}
	st, err := agent.ReadState(state)
	if err != nil {
		t.Fatal(err)
	}
	if st.DeviceID != "from-flag" || st.Profile != "cpap" || !st.Stopped || st.LastSeq == 0 {
		t.Errorf("state = %+v, want device from-flag (flag over file), profile cpap (file), stopped", st)
	}
}

// writeFirmwareKeys writes a PEM file of one firmware signing key in dir.
func writeFirmwareKeys(t *testing.T, dir string) string {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "firmware-keys.pem")
	if err := os.WriteFile(path, manifest.MarshalPublicKey(pub), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestSimulateStopsGracefully(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	var stdout, stderr bytes.Buffer
	args := []string{"simulate", "--insecure", "--server", freeAddr(t), "--devices", "3", "--interval", "20ms", "--log-level", "warn",
		"--firmware-keys", writeFirmwareKeys(t, t.TempDir()), "--max-defer-period", "1m"}
	if code := run(ctx, args, &stdout, &stderr); code != exitOK {
		t.Fatalf("run(%q) = %d, want %d; stderr:\n%s", args, code, exitOK, stderr.String())
	}
}

func TestRunUnusableStateDir(t *testing.T) {
	file := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	args := []string{"run", "--insecure", "--id", "a", "--profile", "cpap", "--model", "m", "--fw", "1", "--server", freeAddr(t), "--state-dir", file}
	if code := run(t.Context(), args, &stdout, &stderr); code != exitError {
		t.Errorf("run(%q) = %d, want %d; stderr:\n%s", args, code, exitError, stderr.String())
	}
}

// TestSimulateCredentialsDir runs a simulated device with the credentials
// file medfleetctl would write for it, and one without, against a server
// that is not there: the first stops gracefully, the second cannot start.
func TestSimulateCredentialsDir(t *testing.T) {
	tests := []struct {
		name     string
		write    bool
		wantCode int
		want     string // in stderr
	}{
		{name: "with a credentials file", write: true, wantCode: exitOK},
		{name: "without", wantCode: exitError, want: "sim-pump-0001.json does not exist"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.write {
				creds := agent.Credentials{Device: "sim-pump-0001", Kind: "psk", PSK: bytes.Repeat([]byte{7}, 32)}
				if err := agent.WriteCredentials(filepath.Join(dir, "sim-pump-0001.json"), creds, false); err != nil {
					t.Fatal(err)
				}
			}
			ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
			defer cancel()
			var stdout, stderr bytes.Buffer
			args := []string{"simulate", "--credentials-dir", dir, "--server", freeAddr(t), "--devices", "1", "--interval", "20ms", "--log-level", "warn"}
			if code := run(ctx, args, &stdout, &stderr); code != tc.wantCode {
				t.Fatalf("run(%q) = %d, want %d; stderr:\n%s", args, code, tc.wantCode, stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("run(%q) stderr = %q, want it to contain %q", args, stderr.String(), tc.want)
			}
		})
	}
}

func TestDefaultServer(t *testing.T) {
	for _, tc := range []struct {
		insecure bool
		want     string
	}{{false, "127.0.0.1:5684"}, {true, "127.0.0.1:5683"}} {
		if got := defaultServer(tc.insecure); got != tc.want {
			t.Errorf("defaultServer(%v) = %q, want %q", tc.insecure, got, tc.want)
		}
	}
	cfg, err := loadRunConfig("", func(string) bool { return false }, &agent.Config{})
	if err != nil || cfg.Server != "127.0.0.1:5684" {
		t.Errorf("loadRunConfig() = %q, %v; want server 127.0.0.1:5684", cfg.Server, err)
	}
}
