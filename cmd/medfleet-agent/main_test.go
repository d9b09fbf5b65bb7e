package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/medfleet/medfleet/agent"
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
		{name: "no devices", args: []string{"simulate"}, want: "devices: "},
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
	config := filepath.Join(dir, "agent.yaml")
	yaml := "device_id: from-file\nprofile: cpap\nmodel: ResMed AirSense 11\nfirmware: 1.0.0\ninterval: 50ms\nrequest_timeout: 100ms\n"
	if err := os.WriteFile(config, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state")
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	var stdout, stderr bytes.Buffer
	args := []string{"run", "--config", config, "--id", "from-flag", "--server", freeAddr(t), "--state-dir", state}
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

func TestSimulateStopsGracefully(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	var stdout, stderr bytes.Buffer
	args := []string{"simulate", "--server", freeAddr(t), "--devices", "3", "--interval", "20ms", "--log-level", "warn"}
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
	args := []string{"run", "--id", "a", "--profile", "cpap", "--model", "m", "--fw", "1", "--server", freeAddr(t), "--state-dir", file}
	if code := run(t.Context(), args, &stdout, &stderr); code != exitError {
		t.Errorf("run(%q) = %d, want %d; stderr:\n%s", args, code, exitError, stderr.String())
	}
}
