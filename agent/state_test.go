package agent

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func TestStateRoundTrip(t *testing.T) {
	dir := t.TempDir()
	want := State{
		DeviceID: "cpap-0001", Profile: "cpap", Usage: 3600, Alarms: map[string]float64{"high-leak": 2},
		Counters: map[string]float64{NameFilterHours: 12.5}, LastSeq: 10, AckedSeq: 8, Pending: 2, Dropped: 1,
		SimTime: time.Date(2026, 3, 2, 23, 0, 0, 0, time.UTC), Stopped: true, SavedAt: time.Date(2026, 3, 2, 23, 0, 1, 0, time.UTC),
	}
	for _, sync := range []bool{false, true} {
		if err := writeState(dir, want, sync); err != nil {
			t.Fatal(err)
		}
		got, err := ReadState(dir)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("ReadState() = %+v, want %+v", got, want)
		}
	}
	if got := want.Acknowledged(); got {
		t.Errorf("Acknowledged() with 2 pending = true")
	}
	info, err := os.Stat(filepath.Join(dir, StateFile))
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", info.Mode().Perm())
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*.tmp")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

func TestReadStateMissing(t *testing.T) {
	if _, err := ReadState(t.TempDir()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadState(empty dir) = %v, want fs.ErrNotExist", err)
	}
}

// TestAgentCorruptState checks that an unreadable device.json is moved
// aside and the agent still starts.
func TestAgentCorruptState(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, StateFile), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(freeAddr(t), "pump-0006", "infusion-pump")
	cfg.StateDir = dir
	a, err := New(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.open(); err != nil {
		t.Fatalf("open() with a corrupt state file = %v, want nil", err)
	}
	_ = a.queue.Close()
	if aside, _ := filepath.Glob(filepath.Join(dir, StateFile+".corrupt-*")); len(aside) != 1 {
		t.Errorf("files moved aside: %v, want 1", aside)
	}
}
