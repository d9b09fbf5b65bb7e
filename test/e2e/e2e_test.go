// Package e2e runs medfleetd, medfleet-agent and medfleetctl as separate
// processes on loopback, built from this tree, and checks what a hospital
// would: devices register and report, usage hours are exact across restarts
// of the server and of an agent, and a silent device goes offline.
package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/medfleet/medfleet/agent"
	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "medfleet-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	for _, name := range []string{"medfleetd", "medfleet-agent", "medfleetctl"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, name), "./cmd/"+name)
		cmd.Dir = "../.."
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n", name, err)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a running program whose output goes to a log file.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan error
}

func start(t *testing.T, dir, name string, args ...string) *proc {
	t.Helper()
	logPath := filepath.Join(dir, fmt.Sprintf("%s-%d.log", name, time.Now().UnixNano()))
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(binDir, strings.Fields(name)[0]), args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait(); f.Close() }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("--- %s log (%s):\n%s", name, strings.Join(args, " "), tail(b, 4000))
		}
		p.done <- nil // let a later stop() see an exit too
	})
	return p
}

// stop sends sig and waits for the exit; a graceful stop must exit 0.
func (p *proc) stop(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %s: %v", p.name, err)
	}
	select {
	case err := <-p.done:
		if sig == syscall.SIGTERM && err != nil {
			t.Errorf("%s exited with %v after SIGTERM, want 0", p.name, err)
		}
		p.done <- err
	case <-time.After(20 * time.Second):
		t.Fatalf("%s did not exit within 20s of %v", p.name, sig)
	}
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

func freeTCP(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func freeUDP(t *testing.T) string {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().String()
}

// eventually polls cond every 200 ms until it holds or the time is up.
func eventually(t *testing.T, within time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	last := ""
	for time.Now().Before(deadline) {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s: not within %v; last seen: %s", what, within, last)
}

// ctlEnv is medfleetctl's environment: the server's CA and the first
// administrator's token, as an operator would set them.
var ctlEnv []string

// ctl runs medfleetctl and returns its stdout and exit code.
func ctl(t *testing.T, server string, args ...string) ([]byte, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "medfleetctl"), append([]string{"--server", server, "--timeout", "5s"}, args...)...)
	cmd.Env = append(os.Environ(), ctlEnv...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return stdout.Bytes(), 0
	case errors.As(err, &exit):
		return append(stdout.Bytes(), stderr.Bytes()...), exit.ExitCode()
	}
	t.Fatalf("medfleetctl %v: %v", args, err)
	return nil, -1
}

func listDevices(t *testing.T, server string) map[string]*pb.Device {
	t.Helper()
	out, code := ctl(t, server, "device", "list", "--all", "-o", "json")
	if code != 0 {
		return nil
	}
	var resp pb.ListDevicesResponse
	if err := protojson.Unmarshal(out, &resp); err != nil {
		t.Fatalf("medfleetctl device list -o json: %v\n%s", err, out)
	}
	m := map[string]*pb.Device{}
	for _, d := range resp.GetDevices() {
		m[strings.TrimPrefix(d.GetName(), "devices/")] = d
	}
	return m
}

func summary(devices map[string]*pb.Device) string {
	var b strings.Builder
	for id, d := range devices {
		st := d.GetStatus()
		fmt.Fprintf(&b, "%s: %v seq=%d usage=%v; ", id, st.GetConnectivity(), st.GetLastSeq(), st.GetUsageSeconds())
	}
	return b.String()
}

func waitHealthy(t *testing.T, httpAddr string) {
	t.Helper()
	eventually(t, 30*time.Second, "medfleetd /healthz", func() (bool, string) {
		resp, err := http.Get("http://" + httpAddr + "/healthz")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
}

func TestEndToEnd(t *testing.T) {
	dir := t.TempDir()
	grpcAddr, coapAddr, httpAddr := freeTCP(t), freeUDP(t), freeTCP(t)
	config := filepath.Join(dir, "medfleetd.yaml")
	yaml := fmt.Sprintf(`data_dir: %s
etcd:
  listen_client: http://%s
  listen_peer: http://%s
grpc:
  listen: %s
coap:
  dtls_listen: %s
http:
  listen: %s
inventory:
  report_interval: 1s
  checkpoint_interval: 200ms
  liveness_grace: 1s
`, filepath.Join(dir, "data"), freeTCP(t), freeTCP(t), grpcAddr, coapAddr, httpAddr)
	if err := os.WriteFile(config, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	server := start(t, dir, "medfleetd", "--config", config)
	waitHealthy(t, httpAddr)
	ctlEnv = []string{"MEDFLEET_CA_FILE=" + filepath.Join(dir, "data", "tls", "ca.crt"),
		"MEDFLEET_TOKEN_FILE=" + filepath.Join(dir, "data", "admin.token")}

	type device struct {
		id, profile, model string
		stateDir           string
		credArgs           []string // how the agent gets its DTLS credential
		proc               *proc
	}
	devices := []*device{
		{id: "e2e-pump", profile: "infusion-pump", model: "Alaris 8100"},
		{id: "e2e-cpap", profile: "cpap", model: "AirSense 11"},
		{id: "e2e-rfid", profile: "rfid-reader", model: "Impinj R700"},
	}
	runAgent := func(d *device) {
		d.proc = start(t, dir, "medfleet-agent "+d.id, append([]string{"run", "--server", coapAddr, "--id", d.id,
			"--profile", d.profile, "--model", d.model, "--serial", "SN-" + d.id, "--fw", "1.0.0",
			"--state-dir", d.stateDir, "--interval", "1s", "--lifetime", "10s", "--time-scale", "600"}, d.credArgs...)...)
	}
	// Three ways to a credential: the pump enrols with a one-time token over
	// DTLS; the CPAP gets a certificate, and the reader a PSK, written to its
	// credentials file by medfleetctl.
	caFile := filepath.Join(dir, "ca.pem")
	out, code := ctl(t, grpcAddr, "device", "enroll", "e2e-pump", "--ca-out", caFile)
	if code != 0 {
		t.Fatalf("medfleetctl device enroll e2e-pump = exit %d: %s", code, out)
	}
	devices[0].credArgs = []string{"--enrol-token", strings.TrimSpace(string(out)), "--ca-file", caFile}
	for _, c := range []struct {
		d    *device
		kind string
	}{{devices[1], "cert"}, {devices[2], "psk"}} {
		file := filepath.Join(dir, c.d.id+".json")
		if out, code := ctl(t, grpcAddr, "device", "enroll", c.d.id, "--kind", c.kind, "--out", file); code != 0 {
			t.Fatalf("medfleetctl device enroll %s --kind %s = exit %d: %s", c.d.id, c.kind, code, out)
		}
		c.d.credArgs = []string{"--credentials", file}
	}
	for _, d := range devices {
		d.stateDir = filepath.Join(dir, d.id)
		runAgent(d)
	}

	// Registration and reports.
	seqAtLeast := func(n uint64) func() (bool, string) {
		return func() (bool, string) {
			got := listDevices(t, grpcAddr)
			for _, d := range devices {
				dv := got[d.id]
				if dv.GetStatus().GetConnectivity() != pb.Connectivity_CONNECTIVITY_ONLINE || dv.GetStatus().GetLastSeq() < n {
					return false, summary(got)
				}
			}
			return true, ""
		}
	}
	eventually(t, 30*time.Second, "three agents online with 3 reports each", seqAtLeast(3))
	got := listDevices(t, grpcAddr)
	for _, d := range devices {
		if dv := got[d.id]; dv.GetProfile() != d.profile || dv.GetModel() != d.model || dv.GetStatus().GetFirmwareVersion() != "1.0.0" {
			t.Errorf("device %s = profile %q model %q fw %q; want %s, %s, 1.0.0", d.id, dv.GetProfile(), dv.GetModel(), dv.GetStatus().GetFirmwareVersion(), d.profile, d.model)
		}
	}
	if got["e2e-rfid"].GetStatus().GetUsageSeconds() <= 0 {
		t.Errorf("RFID reader usage = %v s, want it growing (a reader is always powered)", got["e2e-rfid"].GetStatus().GetUsageSeconds())
	}

	// The server restarts while the agents keep running: they queue, then catch up.
	server.stop(t, syscall.SIGTERM)
	time.Sleep(2500 * time.Millisecond)
	server = start(t, dir, "medfleetd", "--config", config)
	waitHealthy(t, httpAddr)
	before := listDevices(t, grpcAddr)

	// An agent restarts and continues its numbering and counters, with the
	// credential it enrolled for (the token is spent).
	devices[0].proc.stop(t, syscall.SIGTERM)
	devices[0].credArgs = []string{"--ca-file", caFile}
	runAgent(devices[0])

	maxSeq := uint64(0)
	for _, dv := range before {
		maxSeq = max(maxSeq, dv.GetStatus().GetLastSeq())
	}
	eventually(t, 40*time.Second, "reports flowing again after both restarts", seqAtLeast(maxSeq+3))

	// Graceful stops: every report acknowledged, the server's usage equals
	// the device's own counter exactly, and the devices deregister.
	for _, d := range devices[:2] {
		d.proc.stop(t, syscall.SIGTERM)
		st, err := agent.ReadState(d.stateDir)
		if err != nil {
			t.Fatal(err)
		}
		if !st.Stopped || !st.Acknowledged() || st.Dropped != 0 {
			t.Errorf("%s state after stop = %+v, want stopped with every report acknowledged", d.id, st)
		}
		out, code := ctl(t, grpcAddr, "device", "get", d.id, "-o", "json")
		var dv pb.Device
		if code != 0 || protojson.Unmarshal(out, &dv) != nil {
			t.Fatalf("medfleetctl device get %s = exit %d: %s", d.id, code, out)
		}
		if dv.GetStatus().GetUsageSeconds() != st.Usage || dv.GetStatus().GetLastSeq() != st.LastSeq {
			t.Errorf("%s: server usage %v s at seq %d, device counter %v s at seq %d; want equal",
				d.id, dv.GetStatus().GetUsageSeconds(), dv.GetStatus().GetLastSeq(), st.Usage, st.LastSeq)
		}
		if dv.GetStatus().GetUsageResets() != 0 {
			t.Errorf("%s: %d usage resets, want 0 (the agent restart must continue the counter)", d.id, dv.GetStatus().GetUsageResets())
		}
		if dv.GetStatus().GetConnectivity() != pb.Connectivity_CONNECTIVITY_OFFLINE {
			t.Errorf("%s after deregistration = %v, want offline", d.id, dv.GetStatus().GetConnectivity())
		}
	}

	// A device that dies silently goes offline once its lifetime (10 s) and
	// the grace (1 s) have passed, not before.
	rfid := devices[2]
	rfid.proc.stop(t, syscall.SIGKILL)
	killed := time.Now()
	if dv := listDevices(t, grpcAddr)["e2e-rfid"]; dv.GetStatus().GetConnectivity() != pb.Connectivity_CONNECTIVITY_ONLINE {
		t.Errorf("e2e-rfid right after SIGKILL = %v, want still online", dv.GetStatus().GetConnectivity())
	}
	eventually(t, 20*time.Second, "e2e-rfid offline after its lifetime", func() (bool, string) {
		dv := listDevices(t, grpcAddr)["e2e-rfid"]
		return dv.GetStatus().GetConnectivity() == pb.Connectivity_CONNECTIVITY_OFFLINE, dv.GetStatus().GetConnectivity().String()
	})
	if waited := time.Since(killed); waited < 8*time.Second {
		t.Errorf("e2e-rfid went offline %v after it died, want about lifetime + grace (11 s)", waited)
	}

	// The audit log recorded the enrolments and registrations, and verifies.
	out, code = ctl(t, grpcAddr, "audit", "list", "--filter", `action = "device.enrol"`, "--limit", "0")
	if code != 0 || !strings.Contains(string(out), "devices/e2e-pump") {
		t.Errorf("medfleetctl audit list (enrolments) = exit %d:\n%s", code, out)
	}
	if out, code := ctl(t, grpcAddr, "audit", "verify"); code != 0 || !strings.Contains(string(out), "verified") {
		t.Errorf("medfleetctl audit verify = exit %d:\n%s", code, out)
	}

	// The CLI's table and exit codes.
	out, code = ctl(t, grpcAddr, "device", "list", "--profile", "cpap")
	if code != 0 || !strings.Contains(string(out), "e2e-cpap") || strings.Contains(string(out), "e2e-pump") {
		t.Errorf("medfleetctl device list --profile cpap = exit %d:\n%s", code, out)
	}
	if _, code := ctl(t, grpcAddr, "device", "get", "no-such-device"); code != 3 {
		t.Errorf("medfleetctl device get no-such-device = exit %d, want 3 (not found)", code)
	}
	if out, code := ctl(t, grpcAddr, "device", "create", "bad id", "--profile", "cpap", "--model", "x"); code != 2 && code != 5 {
		t.Errorf("medfleetctl device create 'bad id' = exit %d, want 2 or 5:\n%s", code, out)
	}
	server.stop(t, syscall.SIGTERM)
}
