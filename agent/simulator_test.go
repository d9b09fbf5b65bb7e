package agent

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/medfleet/medfleet/coap"
)

func TestSimulatorFleet(t *testing.T) {
	s, err := NewSimulator(SimConfig{Server: "127.0.0.1:5683", Insecure: true, Devices: 100, Seed: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	devices := s.Devices()
	count := map[string]int{}
	ids := map[string]bool{}
	for _, d := range devices {
		count[d.Profile]++
		ids[d.DeviceID] = true
		if d.Model == "" || d.Serial == "" || d.Firmware == "" {
			t.Errorf("device %+v lacks model, serial or firmware", d)
		}
	}
	if want := map[string]int{coap.ProfileInfusionPump: 60, coap.ProfileCPAP: 30, coap.ProfileRFIDReader: 10}; count[coap.ProfileInfusionPump] != 60 ||
		count[coap.ProfileCPAP] != 30 || count[coap.ProfileRFIDReader] != 10 {
		t.Errorf("profiles %v, want %v", count, want)
	}
	if len(ids) != 100 {
		t.Errorf("%d distinct ids, want 100", len(ids))
	}
	for i, want := range []string{"sim-pump-0001", "sim-cpap-0002", "sim-rfid-0003", "sim-pump-0004"} {
		if devices[i].DeviceID != want {
			t.Errorf("device %d is %q, want %q", i, devices[i].DeviceID, want)
		}
	}

	again, err := NewSimulator(SimConfig{Server: "127.0.0.1:5683", Insecure: true, Devices: 100, Seed: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, d := range again.Devices() {
		if diff := cmp.Diff(devices[i], d); diff != "" {
			t.Fatalf("device %d with the same seed differs (-first +again):\n%s", i, diff)
		}
	}
}

func noToken(context.Context, string) (string, error) { return "", errors.New("no token") }

func TestSimConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  SimConfig
		want string
	}{
		{name: "valid", cfg: SimConfig{Server: "127.0.0.1:5683", Insecure: true, Devices: 3}},
		{name: "wide ids", cfg: SimConfig{Server: "127.0.0.1:5683", Insecure: true, Devices: 12345, IDPrefix: "ward4"}},
		{name: "no devices", cfg: SimConfig{Server: "127.0.0.1:5683"}, want: "devices: "},
		{name: "bad prefix", cfg: SimConfig{Server: "127.0.0.1:5683", Insecure: true, Devices: 1, IDPrefix: "a b"}, want: "id_prefix: "},
		{name: "no server", cfg: SimConfig{Devices: 1, Insecure: true}, want: "server: required"},
		{name: "bad interval", cfg: SimConfig{Server: "127.0.0.1:5683", Insecure: true, Devices: 1, Interval: time.Nanosecond}, want: "interval: "},
		{name: "dtls without credentials", cfg: SimConfig{Server: "127.0.0.1:5684", Devices: 1}, want: "insecure: "},
		{name: "dtls with state", cfg: SimConfig{Server: "127.0.0.1:5684", Devices: 1, StateDir: "/tmp/sim"}},
		{name: "dtls with credentials dir", cfg: SimConfig{Server: "127.0.0.1:5684", Devices: 1, CredentialsDir: "/tmp/creds"}},
		{name: "enroll without ca", cfg: SimConfig{Server: "127.0.0.1:5684", Devices: 1, Enroll: noToken}, want: "ca: "},
		{name: "enroll", cfg: SimConfig{Server: "127.0.0.1:5684", Devices: 1, Enroll: noToken, CA: []byte("pem")}},
		{name: "bad firmware keys", cfg: SimConfig{Server: "127.0.0.1:5683", Insecure: true, Devices: 1, FirmwareKeys: []byte("pem")}, want: "firmware_keys: "},
		{name: "negative defer period", cfg: SimConfig{Server: "127.0.0.1:5683", Insecure: true, Devices: 1, MaxDeferPeriod: -time.Second},
			want: "max_defer_period: -1s is negative"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("Validate() = %v, want %q", err, tc.want)
			}
		})
	}
	s, err := NewSimulator(SimConfig{Server: "127.0.0.1:5683", Insecure: true, Devices: 12345, IDPrefix: "ward4"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Devices()[0].DeviceID; got != "ward4-pump-00001" {
		t.Errorf("first id of 12345 = %q, want ward4-pump-00001", got)
	}
}

func TestSimulatorRun(t *testing.T) {
	srv := startTestServer(t)
	dir := t.TempDir()
	s, err := NewSimulator(SimConfig{
		Server: srv.addr, Insecure: true, Devices: 3, StateDir: dir, Interval: 30 * time.Millisecond, TimeScale: 600, Seed: 2,
	}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	waitFor(t, 5*time.Second, "3 reports from each device", func() bool {
		for _, d := range s.Devices() {
			if len(srv.reports(d.DeviceID)) < 3 {
				return false
			}
		}
		return true
	})
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run() = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}

	regs := map[string]string{}
	for _, r := range srv.registrations() {
		regs[r.ID] = r.Reg.Profile
	}
	want := map[string]string{
		"sim-pump-0001": coap.ProfileInfusionPump, "sim-cpap-0002": coap.ProfileCPAP, "sim-rfid-0003": coap.ProfileRFIDReader,
	}
	for id, profile := range want {
		if regs[id] != profile {
			t.Errorf("%s registered as %q, want %q", id, regs[id], profile)
		}
		st, err := ReadState(filepath.Join(dir, id))
		if err != nil {
			t.Fatal(err)
		}
		reports := srv.reports(id)
		checkContiguous(t, reports, 1)
		if !st.Stopped || !st.Acknowledged() || st.Usage != *reports[len(reports)-1].Usage {
			t.Errorf("%s: state %+v, want stopped, acknowledged, usage of the last report", id, st)
		}
	}
	srv.with(func(s *testServer) {
		if s.deletes != 3 {
			t.Errorf("%d deregistrations, want 3", s.deletes)
		}
	})
}

// TestSimulatorFirmware updates a simulated fleet: the devices whose model
// the image is not for refuse it (result 6); the reader, held in use with
// SetInUse, downloads it, reports the install deferred, and installs it
// once released. Firmware reports each device's ground truth.
func TestSimulatorFirmware(t *testing.T) {
	srv := startTestServer(t)
	priv, keys := testSigner(t)
	keysFile := filepath.Join(t.TempDir(), "keys.pem")
	if err := os.WriteFile(keysFile, keys, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := NewSimulator(SimConfig{
		Server: srv.addr, Insecure: true, Devices: 3, Interval: 30 * time.Millisecond, TimeScale: 600, Seed: 2,
		FirmwareKeysFile: keysFile, MaxDeferPeriod: 100 * time.Millisecond,
	}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	devices := s.Devices()
	pump, cpap, reader := devices[0], devices[1], devices[2]
	img := testFirmwareImage(3000, "MFW1\n"+SimDirective+"0\n")
	target := signedTarget(priv, img, "99.0.0", reader.Model)
	srv.with(func(s *testServer) { s.images[target.SHA256], s.fw = img, target })
	if !s.SetInUse(reader.DeviceID, true) {
		t.Fatalf("SetInUse(%q) = false, want true", reader.DeviceID)
	}
	if s.SetInUse("sim-toaster-0001", true) {
		t.Errorf("SetInUse of an unknown device = true, want false")
	}
	if _, ok := s.Firmware("sim-toaster-0001"); ok {
		t.Errorf("Firmware of an unknown device: ok, want false")
	}
	if st, ok := s.Firmware(reader.DeviceID); !ok || st.Running != reader.Firmware {
		t.Errorf("Firmware(%q) before Run = %+v, %v; want %s", reader.DeviceID, st, ok, reader.Firmware)
	}

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run() = %v", err)
		}
	}()
	waitFor(t, 10*time.Second, "the deferral of the reader and the refusal of the others", func() bool {
		r, _ := s.Firmware(reader.DeviceID)
		p, _ := s.Firmware(pump.DeviceID)
		c, _ := s.Firmware(cpap.DeviceID)
		return r.State == coap.FWDownloaded && r.Result == coap.FWResultDeferred &&
			p.Result == coap.FWResultUnsupported && c.Result == coap.FWResultUnsupported
	})
	for _, r := range srv.reports(reader.DeviceID) { // SetInUse came before the first
		if r.State != coap.StateInUse {
			t.Errorf("reader report seq %d has state %q while held in use, want in_use", r.Seq, r.State)
		}
	}
	s.SetInUse(reader.DeviceID, false)
	waitFor(t, 10*time.Second, "the reader's update", func() bool {
		r, _ := s.Firmware(reader.DeviceID)
		return r.Running == "99.0.0" && r.Result == coap.FWResultSuccess
	})
	for _, d := range []Config{pump, cpap} {
		if st, _ := s.Firmware(d.DeviceID); st.Running != d.Firmware {
			t.Errorf("%s runs %q, want %q", d.DeviceID, st.Running, d.Firmware)
		}
	}
	waitFor(t, 5*time.Second, "the reader's registration with 99.0.0", func() bool {
		for _, r := range srv.registrations() {
			if r.ID == reader.DeviceID && r.Reg.Firmware == "99.0.0" {
				return true
			}
		}
		return false
	})
}
