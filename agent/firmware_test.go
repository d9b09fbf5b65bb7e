package agent

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/medfleet/medfleet/coap"
	"github.com/medfleet/medfleet/firmware/manifest"
)

const testTrace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

// testSigner returns a signing key and the PEM of its public key.
func testSigner(t *testing.T) (ed25519.PrivateKey, []byte) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return priv, manifest.MarshalPublicKey(pub)
}

// testFirmwareImage returns an image of n bytes that starts with head.
func testFirmwareImage(n int, head string) []byte {
	img := make([]byte, n)
	for i := range img {
		img[i] = byte(i*7 + i/251)
	}
	copy(img, head)
	return img
}

// signedTarget is the desired `fw` of img, signed by priv, allowed to
// install, with a trace.
func signedTarget(priv ed25519.PrivateKey, img []byte, version string, models ...string) *coap.FirmwareTarget {
	sum := sha256.Sum256(img)
	t := &coap.FirmwareTarget{
		Version: version, SHA256: hex.EncodeToString(sum[:]), Size: uint64(len(img)), Models: models,
		Install: true, Trace: testTrace,
	}
	t.Signature = manifest.Sign(priv, manifest.Manifest{Models: t.Models, Version: t.Version, SHA256: t.SHA256, Size: t.Size})
	return t
}

// fwTestConfig is an RFID reader (always idle) of model "Test Model" that
// trusts keys and gives up on a block after 200 ms.
func fwTestConfig(server, id string, keys []byte) Config {
	cfg := testConfig(server, id, coap.ProfileRFIDReader)
	cfg.FirmwareUpdate.TrustedKeys = keys
	cfg.RequestTimeout = 200 * time.Millisecond
	cfg.RetryMin, cfg.RetryMax = 5*time.Millisecond, 20*time.Millisecond
	return cfg
}

// testInstaller records what the agent asks of it, and fails the test if
// it is asked to install while the device is not idle.
type testInstaller struct {
	t           *testing.T
	a           *Agent // its agent, to check that the device is idle
	selfTestErr error

	mu    sync.Mutex
	calls []string
}

func (i *testInstaller) record(op string, img Image) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.calls = append(i.calls, op+" "+img.Target.Version)
}

func (i *testInstaller) Install(_ context.Context, img Image) error {
	i.record("install", img)
	// Called from the agent's loop: its fields may be read here.
	if i.a != nil && !i.a.deviceIdle() {
		i.t.Errorf("Install(%s) while the device is %q (forced in use: %v)", img.Target.Version, i.a.clinical, i.a.inUse.Load())
	}
	r, err := img.Open()
	if err != nil {
		return err
	}
	defer r.Close()
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != img.Target.SHA256 {
		i.t.Errorf("Install(%s) got an image with SHA-256 %s, want %s", img.Target.Version, got, img.Target.SHA256)
	}
	return nil
}

func (i *testInstaller) SelfTest(_ context.Context, img Image) error {
	i.record("selftest", img)
	return i.selfTestErr
}

func (i *testInstaller) Rollback(_ context.Context, img Image) error {
	i.record("rollback", img)
	return nil
}

func (i *testInstaller) Calls() []string {
	i.mu.Lock()
	defer i.mu.Unlock()
	return slices.Clone(i.calls)
}

// newFirmwareAgent returns an agent of cfg with a testInstaller.
func newFirmwareAgent(t *testing.T, cfg Config) (*Agent, *testInstaller) {
	t.Helper()
	inst := &testInstaller{t: t}
	cfg.Installer = inst
	a, err := New(cfg, testLogger(t))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	inst.a = a
	return a, inst
}

// fwStep is a (fw/state, fw/result) pair as reported.
type fwStep [2]int

// fwSteps returns the firmware states the reports went through, each
// change once.
func fwSteps(reports []*coap.Report) []fwStep {
	var out []fwStep
	for _, r := range reports {
		if r.FirmwareState == nil || r.FirmwareResult == nil {
			continue
		}
		s := fwStep{*r.FirmwareState, *r.FirmwareResult}
		if len(out) == 0 || out[len(out)-1] != s {
			out = append(out, s)
		}
	}
	return out
}

// reportedStep reports whether the server accepted a report of step from id.
func reportedStep(srv *testServer, id string, step fwStep) bool {
	return slices.Contains(fwSteps(srv.reports(id)), step)
}

// checkSteps compares the firmware steps the server saw with want.
func checkSteps(t *testing.T, srv *testServer, id string, want []fwStep) {
	t.Helper()
	if diff := cmp.Diff(want, fwSteps(srv.reports(id))); diff != "" {
		t.Errorf("firmware steps reported (-want +got):\n%s", diff)
	}
}

// waitReports waits for n more reports from id than it has now.
func waitReports(t *testing.T, srv *testServer, id string, n int) {
	t.Helper()
	from := len(srv.reports(id))
	waitFor(t, 5*time.Second, fmt.Sprintf("%d more reports", n), func() bool { return len(srv.reports(id)) >= from+n })
}

// waitUpdated waits until a runs version and the server has the report of
// the success (and so every report before it).
func waitUpdated(t *testing.T, srv *testServer, a *Agent, version string) {
	t.Helper()
	waitFor(t, 10*time.Second, "the update to "+version, func() bool {
		return a.Firmware().Running == version && reportedStep(srv, a.cfg.DeviceID, fwStep{coap.FWIdle, coap.FWResultSuccess})
	})
}

var (
	stepsSuccess = []fwStep{{coap.FWIdle, 0}, {coap.FWDownloading, 0}, {coap.FWDownloaded, 0}, {coap.FWUpdating, 0}, {coap.FWIdle, coap.FWResultSuccess}}
)

// TestFirmwareUpdate downloads an image block by block, verifies and
// installs it, reports every step with the trace, and registers again with
// the new version, which a restarted agent keeps.
func TestFirmwareUpdate(t *testing.T) {
	srv := startTestServer(t)
	priv, keys := testSigner(t)
	img := testFirmwareImage(5*1024-300, "")
	target := signedTarget(priv, img, "2.0.0", "Other Model", "Test Model")
	srv.with(func(s *testServer) { s.images[target.SHA256], s.fw = img, target })
	cfg := fwTestConfig(srv.addr, "rfid-0001", keys)
	cfg.StateDir = t.TempDir()
	a, inst := newFirmwareAgent(t, cfg)
	run := startAgent(t, a)
	waitFor(t, 10*time.Second, "a report of the successful update", func() bool {
		return reportedStep(srv, cfg.DeviceID, fwStep{coap.FWIdle, coap.FWResultSuccess})
	})
	waitFor(t, 5*time.Second, "a registration with the new version", func() bool {
		regs := srv.registrations()
		return regs[len(regs)-1].Reg.Firmware == "2.0.0"
	})
	if err := run.stop(); err != nil {
		t.Fatalf("Run() = %v", err)
	}

	if got, want := blockNums(srv.firmwareRequests()), []int64{0, 1, 2, 3, 4}; !slices.Equal(got, want) {
		t.Errorf("blocks requested %v, want %v", got, want)
	}
	for _, r := range srv.firmwareRequests() {
		if r.SHA256 != target.SHA256 || r.Size != coap.FirmwareMaxBlockSize || r.Trace != testTrace {
			t.Errorf("firmware request %+v, want sha256 %s, 1024-byte blocks and trace %s", r, target.SHA256, testTrace)
		}
	}
	if got, want := inst.Calls(), []string{"install 2.0.0", "selftest 2.0.0"}; !slices.Equal(got, want) {
		t.Errorf("installer calls %q, want %q", got, want)
	}
	checkSteps(t, srv, cfg.DeviceID, stepsSuccess)
	var prev fwStep
	for i, r := range srv.reports(cfg.DeviceID) {
		step := fwStep{*r.FirmwareState, *r.FirmwareResult}
		wantFW := "1.0.0"
		if step == (fwStep{coap.FWIdle, coap.FWResultSuccess}) {
			wantFW = "2.0.0"
		}
		if r.Firmware != wantFW {
			t.Errorf("report seq %d in step %v carries fw %q, want %q", r.Seq, step, r.Firmware, wantFW)
		}
		var trace string
		srv.with(func(s *testServer) { trace = s.reportTraces[r.Seq] })
		if changed := i > 0 && step != prev; changed && trace != testTrace {
			t.Errorf("report seq %d of step %v has trace %q, want %q", r.Seq, step, trace, testTrace)
		}
		prev = step
	}
	regs := srv.registrations()
	if regs[0].Reg.Firmware != "1.0.0" || regs[len(regs)-1].Reg.Firmware != "2.0.0" {
		t.Errorf("registered with fw %q first and %q last, want 1.0.0 and 2.0.0", regs[0].Reg.Firmware, regs[len(regs)-1].Reg.Firmware)
	}
	if got := a.Firmware(); got != (FirmwareStatus{Running: "2.0.0", State: coap.FWIdle, Result: coap.FWResultSuccess, Installs: 1}) {
		t.Errorf("Firmware() = %+v, want 2.0.0, idle, success", got)
	}
	if entries, _ := os.ReadDir(filepath.Join(cfg.StateDir, FirmwareDir)); len(entries) != 0 {
		t.Errorf("%d files left in the image directory, want none", len(entries))
	}

	// A restarted agent runs 2.0.0 and does not fetch it again.
	a2, inst2 := newFirmwareAgent(t, cfg)
	if got := a2.Firmware().Running; got != "1.0.0" {
		t.Errorf("before Run, Firmware().Running = %q, want the configured 1.0.0", got)
	}
	run2 := startAgent(t, a2)
	nregs := len(regs)
	waitFor(t, 5*time.Second, "the restarted agent's registration", func() bool { return len(srv.registrations()) > nregs })
	waitReports(t, srv, cfg.DeviceID, 3)
	if err := run2.stop(); err != nil {
		t.Fatal(err)
	}
	if got := srv.registrations()[nregs].Reg.Firmware; got != "2.0.0" {
		t.Errorf("restarted agent registered with fw %q, want 2.0.0", got)
	}
	if n := len(srv.firmwareRequests()); n != 5 || len(inst2.Calls()) != 0 {
		t.Errorf("restarted agent: %d firmware requests, installer calls %q; want 5 and none", n, inst2.Calls())
	}
}

// TestFirmwareResumesAfterSilence: the server stops answering block
// requests in the middle of a download; the agent retries the same block
// and continues from it, not from block 0.
func TestFirmwareResumesAfterSilence(t *testing.T) {
	srv := startTestServer(t)
	priv, keys := testSigner(t)
	img := testFirmwareImage(20*1024-1, "")
	target := signedTarget(priv, img, "2.0.0", "Test Model")
	var answer atomic.Bool
	srv.with(func(s *testServer) {
		s.images[target.SHA256], s.fw = img, target
		s.fwSilent = func(num int64) bool { return num >= 8 && !answer.Load() }
	})
	cfg := fwTestConfig(srv.addr, "rfid-0001", keys)
	cfg.RequestTimeout = 50 * time.Millisecond
	a, _ := newFirmwareAgent(t, cfg)
	startAgent(t, a)
	waitFor(t, 10*time.Second, "three requests of block 8", func() bool {
		n := 0
		for _, r := range srv.firmwareRequests() {
			if r.Num == 8 {
				n++
			}
		}
		return n >= 3
	})
	if st := a.Firmware(); st.State != coap.FWDownloading || st.Downloaded != 8*1024 {
		t.Errorf("while the server is silent, Firmware() = %+v, want downloading with 8192 bytes", st)
	}
	answer.Store(true)
	waitUpdated(t, srv, a, "2.0.0")

	nums := blockNums(srv.firmwareRequests())
	if got, want := slices.Compact(slices.Clone(nums)), []int64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19}; !slices.Equal(got, want) {
		t.Errorf("blocks requested %v, want each of 0-19 in order (repeats of a failed block allowed)", nums)
	}
	checkSteps(t, srv, cfg.DeviceID, stepsSuccess)
}

// TestFirmwareResumesAfterRestart: an agent stopped in the middle of a
// download continues, restarted, from the block after the last one it
// saved.
func TestFirmwareResumesAfterRestart(t *testing.T) {
	srv := startTestServer(t)
	priv, keys := testSigner(t)
	img := testFirmwareImage(30*1024-100, "")
	target := signedTarget(priv, img, "2.0.0", "Test Model")
	var answer atomic.Bool
	srv.with(func(s *testServer) {
		s.images[target.SHA256], s.fw = img, target
		s.fwSilent = func(num int64) bool { return num >= 10 && !answer.Load() }
	})
	cfg := fwTestConfig(srv.addr, "rfid-0001", keys)
	cfg.StateDir = t.TempDir()
	a, _ := newFirmwareAgent(t, cfg)
	run := startAgent(t, a)
	waitFor(t, 10*time.Second, "a request of block 10", func() bool {
		return slices.Contains(blockNums(srv.firmwareRequests()), 10)
	})
	if err := run.stop(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(cfg.StateDir, FirmwareFile))
	if err != nil {
		t.Fatal(err)
	}
	var st firmwareState
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	if st.State != coap.FWDownloading || st.Offset != 10*1024 || st.Target == nil || st.Target.SHA256 != target.SHA256 {
		t.Fatalf("saved firmware state %+v, want downloading %s at 10240 bytes", st, target.SHA256)
	}
	before := len(srv.firmwareRequests())

	answer.Store(true)
	a2, inst := newFirmwareAgent(t, cfg)
	startAgent(t, a2)
	waitUpdated(t, srv, a2, "2.0.0")
	after := blockNums(srv.firmwareRequests()[before:])
	want := make([]int64, 0, 20)
	for n := int64(10); n < 30; n++ {
		want = append(want, n)
	}
	if !slices.Equal(after, want) {
		t.Errorf("blocks requested after the restart %v, want 10-29", after)
	}
	if got := inst.Calls(); !slices.Equal(got, []string{"install 2.0.0", "selftest 2.0.0"}) {
		t.Errorf("installer calls %q, want an install and a self-test", got)
	}
}

// TestFirmwareServerFaults: an ETag that is not the image's discards the
// download (result 5); a last block that says more follow is completed by
// the 4.02 to the block after it.
func TestFirmwareServerFaults(t *testing.T) {
	priv, keys := testSigner(t)
	img := testFirmwareImage(4*1024, "")
	target := signedTarget(priv, img, "2.0.0", "Test Model")
	tests := []struct {
		name      string
		fault     func(s *testServer)
		wantSteps []fwStep
		wantNums  []int64
	}{
		{
			name:      "wrong etag",
			fault:     func(s *testServer) { s.fwETag = []byte("image-B!") },
			wantSteps: []fwStep{{coap.FWIdle, 0}, {coap.FWDownloading, 0}, {coap.FWIdle, coap.FWResultIntegrity}},
			wantNums:  []int64{0},
		},
		{
			name:      "more on the last block",
			fault:     func(s *testServer) { s.fwMore = true },
			wantSteps: stepsSuccess,
			wantNums:  []int64{0, 1, 2, 3, 4},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := startTestServer(t)
			srv.with(func(s *testServer) {
				s.images[target.SHA256], s.fw = img, target
				tc.fault(s)
			})
			cfg := fwTestConfig(srv.addr, "rfid-0001", keys)
			a, _ := newFirmwareAgent(t, cfg)
			startAgent(t, a)
			last := tc.wantSteps[len(tc.wantSteps)-1]
			waitFor(t, 10*time.Second, fmt.Sprintf("a report of %v", last), func() bool { return reportedStep(srv, cfg.DeviceID, last) })
			checkSteps(t, srv, cfg.DeviceID, tc.wantSteps)
			if got := blockNums(srv.firmwareRequests()); !slices.Equal(got, tc.wantNums) {
				t.Errorf("blocks requested %v, want %v", got, tc.wantNums)
			}
		})
	}
}

// TestFirmwareFailures: an image that cannot be installed ends in Idle
// with its result code, nothing installed and nothing left staged, and is
// not tried again.
func TestFirmwareFailures(t *testing.T) {
	priv, keys := testSigner(t)
	otherPriv, _ := testSigner(t)
	img := testFirmwareImage(3*1024+5, "")
	tests := []struct {
		name       string
		target     func() *coap.FirmwareTarget
		serve      func(s *testServer, t *coap.FirmwareTarget)
		keys       []byte
		wantResult int
		wantGETs   bool
	}{
		{
			name:   "wrong sha256",
			target: func() *coap.FirmwareTarget { return signedTarget(priv, img, "2.0.0", "Test Model") },
			serve: func(s *testServer, t *coap.FirmwareTarget) {
				s.images[t.SHA256] = testFirmwareImage(len(img), "not the signed image")
			},
			keys: keys, wantResult: coap.FWResultIntegrity, wantGETs: true,
		},
		{
			name:   "bad signature",
			target: func() *coap.FirmwareTarget { return signedTarget(otherPriv, img, "2.0.0", "Test Model") },
			keys:   keys, wantResult: coap.FWResultIntegrity,
		},
		{
			name: "missing signature",
			target: func() *coap.FirmwareTarget {
				t := signedTarget(priv, img, "2.0.0", "Test Model")
				t.Signature = nil
				return t
			},
			keys: keys, wantResult: coap.FWResultIntegrity,
		},
		{
			name:   "no trusted keys",
			target: func() *coap.FirmwareTarget { return signedTarget(priv, img, "2.0.0", "Test Model") },
			keys:   nil, wantResult: coap.FWResultIntegrity,
		},
		{
			name:   "model not in models",
			target: func() *coap.FirmwareTarget { return signedTarget(priv, img, "2.0.0", "Other Model") },
			keys:   keys, wantResult: coap.FWResultUnsupported,
		},
		{
			name: "size differs from the server's",
			target: func() *coap.FirmwareTarget {
				return signedTarget(priv, img, "2.0.0", "Test Model")
			},
			serve: func(s *testServer, t *coap.FirmwareTarget) { s.images[t.SHA256] = append(slices.Clone(img), 0) },
			keys:  keys, wantResult: coap.FWResultIntegrity, wantGETs: true,
		},
		{
			name:   "unknown image",
			target: func() *coap.FirmwareTarget { return signedTarget(priv, img, "2.0.0", "Test Model") },
			serve:  func(*testServer, *coap.FirmwareTarget) {},
			keys:   keys, wantResult: coap.FWResultInvalidURI, wantGETs: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := startTestServer(t)
			target := tc.target()
			srv.with(func(s *testServer) {
				s.fw = target
				if tc.serve != nil {
					tc.serve(s, target)
				} else {
					s.images[target.SHA256] = img
				}
			})
			cfg := fwTestConfig(srv.addr, "rfid-0001", tc.keys)
			cfg.StateDir = t.TempDir()
			a, inst := newFirmwareAgent(t, cfg)
			startAgent(t, a)
			failed := fwStep{coap.FWIdle, tc.wantResult}
			waitFor(t, 10*time.Second, fmt.Sprintf("a report of result %d", tc.wantResult), func() bool {
				return reportedStep(srv, cfg.DeviceID, failed)
			})
			gets := len(srv.firmwareRequests())
			waitReports(t, srv, cfg.DeviceID, 5) // time to try again, which it must not

			want := []fwStep{{coap.FWIdle, 0}, failed}
			if tc.wantGETs {
				want = []fwStep{{coap.FWIdle, 0}, {coap.FWDownloading, 0}, failed}
			}
			checkSteps(t, srv, cfg.DeviceID, want)
			if (gets > 0) != tc.wantGETs {
				t.Errorf("%d firmware requests, want some: %v", gets, tc.wantGETs)
			}
			if n := len(srv.firmwareRequests()); n != gets {
				t.Errorf("%d firmware requests after the failure, want none (the image is not tried again)", n-gets)
			}
			if calls := inst.Calls(); len(calls) != 0 {
				t.Errorf("installer calls %q, want none", calls)
			}
			if st := a.Firmware(); st.Running != "1.0.0" || st.State != coap.FWIdle || st.Result != tc.wantResult {
				t.Errorf("Firmware() = %+v, want 1.0.0, idle, result %d", st, tc.wantResult)
			}
			if entries, _ := os.ReadDir(filepath.Join(cfg.StateDir, FirmwareDir)); len(entries) != 0 {
				t.Errorf("%d files left in the image directory, want none", len(entries))
			}
		})
	}
}

// TestFirmwareDefersWhileBusy: a downloaded image waits for Install; with
// Install, a busy device waits, reports result 11 once after
// MaxDeferPeriod, and installs only when it is idle again.
func TestFirmwareDefersWhileBusy(t *testing.T) {
	srv := startTestServer(t)
	priv, keys := testSigner(t)
	img := testFirmwareImage(2*1024, "")
	target := signedTarget(priv, img, "2.0.0", "Test Model")
	target.Install = false
	srv.with(func(s *testServer) { s.images[target.SHA256], s.fw = img, target })
	cfg := fwTestConfig(srv.addr, "rfid-0001", keys)
	cfg.FirmwareUpdate.MaxDeferPeriod = 150 * time.Millisecond
	a, inst := newFirmwareAgent(t, cfg)
	startAgent(t, a)

	// Idle, but not allowed to install.
	waitFor(t, 10*time.Second, "the download", func() bool { return reportedStep(srv, cfg.DeviceID, fwStep{coap.FWDownloaded, 0}) })
	waitReports(t, srv, cfg.DeviceID, 5)
	if calls := inst.Calls(); len(calls) != 0 {
		t.Fatalf("installer calls %q without Install, want none", calls)
	}

	// Allowed, but in use.
	a.setInUse(true)
	waitFor(t, 5*time.Second, "a report of the device in use", func() bool {
		r := srv.reports(cfg.DeviceID)
		return r[len(r)-1].State == coap.StateInUse
	})
	srv.with(func(s *testServer) {
		allowed := *target
		allowed.Install = true
		s.fw = &allowed
	})
	waitFor(t, 10*time.Second, "a report of the deferral", func() bool {
		return reportedStep(srv, cfg.DeviceID, fwStep{coap.FWDownloaded, coap.FWResultDeferred})
	})
	waitReports(t, srv, cfg.DeviceID, 5)
	if calls := inst.Calls(); len(calls) != 0 {
		t.Fatalf("installer calls %q while in use, want none", calls)
	}

	// Idle again.
	a.setInUse(false)
	waitFor(t, 10*time.Second, "the update", func() bool { return reportedStep(srv, cfg.DeviceID, fwStep{coap.FWIdle, coap.FWResultSuccess}) })
	checkSteps(t, srv, cfg.DeviceID, []fwStep{
		{coap.FWIdle, 0}, {coap.FWDownloading, 0}, {coap.FWDownloaded, 0}, {coap.FWDownloaded, coap.FWResultDeferred},
		{coap.FWUpdating, 0}, {coap.FWIdle, coap.FWResultSuccess},
	})
	if got := inst.Calls(); !slices.Equal(got, []string{"install 2.0.0", "selftest 2.0.0"}) {
		t.Errorf("installer calls %q, want an install and a self-test", got)
	}
}

// TestFirmwareCancelled: a desired state that drops the image, or names
// another, before the install cancels the update (result 10) and deletes
// the staged image; another image is then fetched and installed.
func TestFirmwareCancelled(t *testing.T) {
	priv, keys := testSigner(t)
	img := testFirmwareImage(6*1024, "")
	next := testFirmwareImage(2*1024, "next")
	tests := []struct {
		name string
		// hold keeps the device in the state in which it is cancelled.
		hold      func(s *testServer, t *coap.FirmwareTarget)
		heldState int
		// then is the desired `fw` that cancels: nil, or another image.
		then *coap.FirmwareTarget
	}{
		{
			name:      "withdrawn while downloading",
			hold:      func(s *testServer, _ *coap.FirmwareTarget) { s.fwSilent = func(num int64) bool { return num >= 2 } },
			heldState: coap.FWDownloading,
		},
		{
			name:      "replaced while downloaded",
			hold:      func(_ *testServer, t *coap.FirmwareTarget) { t.Install = false },
			heldState: coap.FWDownloaded,
			then:      signedTarget(priv, next, "3.0.0", "Test Model"),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := startTestServer(t)
			target := signedTarget(priv, img, "2.0.0", "Test Model")
			srv.with(func(s *testServer) {
				s.images[target.SHA256], s.fw = img, target
				tc.hold(s, target)
			})
			cfg := fwTestConfig(srv.addr, "rfid-0001", keys)
			cfg.StateDir = t.TempDir()
			a, inst := newFirmwareAgent(t, cfg)
			startAgent(t, a)
			waitFor(t, 10*time.Second, fmt.Sprintf("state %d", tc.heldState), func() bool {
				return reportedStep(srv, cfg.DeviceID, fwStep{tc.heldState, 0})
			})
			if entries, _ := os.ReadDir(filepath.Join(cfg.StateDir, FirmwareDir)); len(entries) != 1 {
				t.Errorf("%d files in the image directory before the cancellation, want the staged image", len(entries))
			}
			srv.with(func(s *testServer) {
				s.fw = tc.then
				if tc.then != nil {
					s.images[tc.then.SHA256] = next
				}
			})
			cancelled := fwStep{coap.FWIdle, coap.FWResultCancelled}
			waitFor(t, 10*time.Second, "a report of the cancellation", func() bool { return reportedStep(srv, cfg.DeviceID, cancelled) })

			held := []fwStep{{coap.FWIdle, 0}, {coap.FWDownloading, 0}}
			if tc.heldState == coap.FWDownloaded {
				held = append(held, fwStep{coap.FWDownloaded, 0})
			}
			if tc.then == nil {
				waitReports(t, srv, cfg.DeviceID, 3)
				checkSteps(t, srv, cfg.DeviceID, append(held, cancelled))
				if entries, _ := os.ReadDir(filepath.Join(cfg.StateDir, FirmwareDir)); len(entries) != 0 {
					t.Errorf("%d files in the image directory after the cancellation, want none", len(entries))
				}
				if calls := inst.Calls(); len(calls) != 0 {
					t.Errorf("installer calls %q, want none", calls)
				}
				return
			}
			waitUpdated(t, srv, a, "3.0.0")
			checkSteps(t, srv, cfg.DeviceID, slices.Concat(held, []fwStep{cancelled}, stepsSuccess[1:]))
			if got := inst.Calls(); !slices.Equal(got, []string{"install 3.0.0", "selftest 3.0.0"}) {
				t.Errorf("installer calls %q, want 3.0.0 installed and tested", got)
			}
		})
	}
}

// TestFirmwareSelfTestFails: with the simulator's installer, an image whose
// directive fails every self-test is rolled back: result 8, the version
// unchanged, and the image is not tried again.
func TestFirmwareSelfTestFails(t *testing.T) {
	srv := startTestServer(t)
	priv, keys := testSigner(t)
	img := testFirmwareImage(3*1024, "MFW1\n"+SimDirective+"1\n")
	target := signedTarget(priv, img, "2.0.0", "Test Model")
	srv.with(func(s *testServer) { s.images[target.SHA256], s.fw = img, target })
	cfg := fwTestConfig(srv.addr, "rfid-0001", keys)
	cfg.StateDir = t.TempDir()
	a, err := New(cfg, testLogger(t)) // the simulated installer
	if err != nil {
		t.Fatal(err)
	}
	startAgent(t, a)
	failed := fwStep{coap.FWIdle, coap.FWResultFailed}
	waitFor(t, 10*time.Second, "a report of the failed update", func() bool { return reportedStep(srv, cfg.DeviceID, failed) })
	gets := len(srv.firmwareRequests())
	waitReports(t, srv, cfg.DeviceID, 5)

	checkSteps(t, srv, cfg.DeviceID, []fwStep{{coap.FWIdle, 0}, {coap.FWDownloading, 0}, {coap.FWDownloaded, 0}, {coap.FWUpdating, 0}, failed})
	if n := len(srv.firmwareRequests()); n != gets || gets != 3 {
		t.Errorf("%d firmware requests, then %d more; want 3, then none", gets, n-gets)
	}
	for _, r := range srv.registrations() {
		if r.Reg.Firmware != "1.0.0" {
			t.Errorf("registered with fw %q, want 1.0.0 only", r.Reg.Firmware)
		}
	}
	for _, r := range srv.reports(cfg.DeviceID) {
		if r.Firmware != "1.0.0" {
			t.Errorf("report seq %d carries fw %q, want 1.0.0", r.Seq, r.Firmware)
		}
	}
	if st := a.Firmware(); st != (FirmwareStatus{Running: "1.0.0", State: coap.FWIdle, Result: coap.FWResultFailed, Installs: 1}) {
		t.Errorf("Firmware() = %+v, want 1.0.0, idle, failed", st)
	}
}

// TestFirmwareLinkLost: a download whose block requests keep failing ends
// with result 4; the agent tries the same image again after a while, and
// then succeeds.
func TestFirmwareLinkLost(t *testing.T) {
	srv := startTestServer(t)
	priv, keys := testSigner(t)
	img := testFirmwareImage(2*1024, "")
	target := signedTarget(priv, img, "2.0.0", "Test Model")
	var answer atomic.Bool
	srv.with(func(s *testServer) {
		s.images[target.SHA256], s.fw = img, target
		s.fwSilent = func(int64) bool { return !answer.Load() }
	})
	cfg := fwTestConfig(srv.addr, "rfid-0001", keys)
	cfg.RequestTimeout = 20 * time.Millisecond
	a, _ := newFirmwareAgent(t, cfg)
	a.fw.retryAfter = 100 * time.Millisecond
	startAgent(t, a)
	lost := fwStep{coap.FWIdle, coap.FWResultLinkLost}
	waitFor(t, 10*time.Second, "a report of the lost connection", func() bool { return reportedStep(srv, cfg.DeviceID, lost) })
	if n := len(srv.firmwareRequests()); n != maxBlockFailures {
		t.Errorf("%d block requests before result 4, want %d", n, maxBlockFailures)
	}
	answer.Store(true)
	waitUpdated(t, srv, a, "2.0.0")
	checkSteps(t, srv, cfg.DeviceID, append([]fwStep{{coap.FWIdle, 0}, {coap.FWDownloading, 0}, lost}, stepsSuccess[1:]...))
}

// TestFirmwareServerBusy: a 5.03 with Max-Age holds the download in
// Downloading for that long, without counting as a failure.
func TestFirmwareServerBusy(t *testing.T) {
	srv := startTestServer(t)
	priv, keys := testSigner(t)
	img := testFirmwareImage(2*1024, "")
	target := signedTarget(priv, img, "2.0.0", "Test Model")
	srv.with(func(s *testServer) { s.images[target.SHA256], s.fw, s.fwBusy = img, target, 1 })
	a, _ := newFirmwareAgent(t, fwTestConfig(srv.addr, "rfid-0001", keys))
	startAgent(t, a)
	waitUpdated(t, srv, a, "2.0.0")
	if got, want := blockNums(srv.firmwareRequests()), []int64{0, 0, 1}; !slices.Equal(got, want) {
		t.Errorf("blocks requested %v, want %v (block 0 again after the wait)", got, want)
	}
	checkSteps(t, srv, "rfid-0001", stepsSuccess)
}

// TestFirmwareFinishesUpdateAfterRestart: an agent that stopped in
// Updating installs again if Install had not returned, runs the self-test,
// commits and registers with the new version, whatever the desired state
// says.
func TestFirmwareFinishesUpdateAfterRestart(t *testing.T) {
	priv, keys := testSigner(t)
	img := testFirmwareImage(1500, "")
	target := signedTarget(priv, img, "2.0.0", "Test Model")
	tests := []struct {
		name      string
		installed bool
		want      []string
	}{
		{name: "installed", installed: true, want: []string{"selftest 2.0.0"}},
		{name: "install interrupted", installed: false, want: []string{"install 2.0.0", "selftest 2.0.0"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := startTestServer(t) // desires no firmware
			cfg := fwTestConfig(srv.addr, "rfid-0001", keys)
			cfg.StateDir = t.TempDir()
			dir := filepath.Join(cfg.StateDir, FirmwareDir)
			if err := os.MkdirAll(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, target.SHA256), img, 0o600); err != nil {
				t.Fatal(err)
			}
			st := firmwareState{
				Running: "1.0.0", Configured: "1.0.0", State: coap.FWUpdating, Target: target,
				Offset: target.Size, BlockSize: 1024, Installed: tc.installed,
			}
			b, _ := json.Marshal(st)
			if err := os.WriteFile(filepath.Join(cfg.StateDir, FirmwareFile), b, 0o600); err != nil {
				t.Fatal(err)
			}
			a, inst := newFirmwareAgent(t, cfg)
			startAgent(t, a)
			waitFor(t, 10*time.Second, "a registration with the new version", func() bool {
				regs := srv.registrations()
				return len(regs) > 0 && regs[len(regs)-1].Reg.Firmware == "2.0.0"
			})
			if got := inst.Calls(); !slices.Equal(got, tc.want) {
				t.Errorf("installer calls %q, want %q", got, tc.want)
			}
			waitFor(t, 5*time.Second, "a report of the success", func() bool {
				return reportedStep(srv, cfg.DeviceID, fwStep{coap.FWIdle, coap.FWResultSuccess})
			})
		})
	}
}

// TestFirmwareStateFile checks what a restarted agent makes of its
// firmware.json.
func TestFirmwareStateFile(t *testing.T) {
	tests := []struct {
		name  string
		write func(dir string)
		want  FirmwareStatus
	}{
		{name: "none", write: func(string) {}, want: FirmwareStatus{Running: "1.0.0"}},
		{
			name: "updated",
			write: func(dir string) {
				b, _ := json.Marshal(firmwareState{Running: "2.0.0", Previous: "1.0.0", Configured: "1.0.0", Result: coap.FWResultSuccess})
				_ = os.WriteFile(filepath.Join(dir, FirmwareFile), b, 0o600)
			},
			want: FirmwareStatus{Running: "2.0.0", Result: coap.FWResultSuccess},
		},
		{
			name: "configured firmware changed",
			write: func(dir string) {
				b, _ := json.Marshal(firmwareState{Running: "2.0.0", Configured: "0.9.0", Result: coap.FWResultSuccess})
				_ = os.WriteFile(filepath.Join(dir, FirmwareFile), b, 0o600)
			},
			want: FirmwareStatus{Running: "1.0.0"},
		},
		{
			name:  "corrupt",
			write: func(dir string) { _ = os.WriteFile(filepath.Join(dir, FirmwareFile), []byte("{"), 0o600) },
			want:  FirmwareStatus{Running: "1.0.0"},
		},
		{
			name: "target that is not a file name",
			write: func(dir string) {
				b, _ := json.Marshal(firmwareState{Running: "1.0.0", Configured: "1.0.0", State: coap.FWDownloading,
					Target: &coap.FirmwareTarget{Version: "2", SHA256: "../../etc/passwd", Size: 10}})
				_ = os.WriteFile(filepath.Join(dir, FirmwareFile), b, 0o600)
			},
			want: FirmwareStatus{Running: "1.0.0"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := fwTestConfig(freeAddr(t), "rfid-0001", nil)
			cfg.StateDir = t.TempDir()
			tc.write(cfg.StateDir)
			a, err := New(cfg, testLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(t.Context())
			cancel() // open, then stop at once
			if err := a.Run(ctx); err != nil {
				t.Fatalf("Run() = %v", err)
			}
			if got := a.Firmware(); got != tc.want {
				t.Errorf("Firmware() = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestFirmwareTrustedKeysFile(t *testing.T) {
	_, keys := testSigner(t)
	dir := t.TempDir()
	good := filepath.Join(dir, "keys.pem")
	bad := filepath.Join(dir, "bad.pem")
	if err := os.WriteFile(good, keys, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("not pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		file string
		want string // in Run's error, "" for none
	}{
		{name: "good", file: good},
		{name: "missing", file: filepath.Join(dir, "missing.pem"), want: "firmware_update.trusted_keys_file: "},
		{name: "not keys", file: bad, want: "firmware_update.trusted_keys_file: "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := fwTestConfig(freeAddr(t), "rfid-0001", nil)
			cfg.FirmwareUpdate.TrustedKeysFile = tc.file
			a, err := New(cfg, testLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			err = a.Run(ctx)
			if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("Run() = %v, want %q", err, tc.want)
			}
			if tc.want == "" && len(a.fw.keys) != 1 {
				t.Errorf("%d trusted keys, want 1", len(a.fw.keys))
			}
		})
	}
}
