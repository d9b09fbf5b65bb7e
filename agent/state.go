package agent

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// StateFile is the name of the device state file in Config.StateDir.
const StateFile = "device.json"

// State is what an agent keeps in StateDir/device.json between runs, so that
// a restarted agent continues its sequence numbers and its counters (a
// counter that went backwards would look like a reset to the server). It is
// written atomically (temporary file, fsync, rename) after every exchange
// that settled reports, and when the agent stops.
//
// End-to-end tests read it with ReadState as the device's ground truth:
// after a graceful stop (Stopped), Usage is the usage counter carried by
// report LastSeq, and Acknowledged says whether the server acknowledged
// every report.
type State struct {
	// DeviceID and Profile name the device the directory belongs to; an
	// agent refuses a StateDir that holds another device.
	DeviceID string `json:"device_id"`
	Profile  string `json:"profile"`
	// Usage is the device's cumulative usage counter, whole seconds. The
	// agent advances it only when it takes a report (and it takes a last one
	// when it stops), so Usage is always the value carried by report LastSeq.
	Usage float64 `json:"usage"`
	// Alarms is the cumulative count per alarm code, as in report LastSeq.
	Alarms map[string]float64 `json:"alarms,omitempty"`
	// Counters are the profile's other cumulative counters, by SenML record
	// name (a CPAP's filter/hours).
	Counters map[string]float64 `json:"counters,omitempty"`
	// LastSeq is the sequence number of the newest report the agent took.
	LastSeq uint64 `json:"last_seq"`
	// AckedSeq is the highest settled sequence number: every report up to it
	// was accepted by the server, refused for good (4.00), or dropped from a
	// full queue.
	AckedSeq uint64 `json:"acked_seq"`
	// Pending is the number of reports still queued for the server.
	Pending int `json:"pending"`
	// Dropped counts the reports settled without the server accepting them:
	// refused (4.00) or dropped from a full queue, over the device's life.
	// Zero means that every report taken reached the server.
	Dropped uint64 `json:"dropped"`
	// SimTime is the simulated device clock when report LastSeq was taken.
	SimTime time.Time `json:"sim_time"`
	// Stopped is true when a graceful stop wrote the file, false for a
	// checkpoint of a running agent.
	Stopped bool      `json:"stopped"`
	SavedAt time.Time `json:"saved_at"`
}

// Acknowledged reports whether no report was waiting for the server when
// the state was saved.
func (s State) Acknowledged() bool { return s.Pending == 0 && s.AckedSeq >= s.LastSeq }

// ReadState reads the state file in dir. A missing file is an error that
// wraps fs.ErrNotExist.
func ReadState(dir string) (State, error) {
	var s State
	b, err := os.ReadFile(filepath.Join(dir, StateFile))
	if err != nil {
		return s, fmt.Errorf("agent: state: %w", err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return State{}, fmt.Errorf("agent: state: %s: %w", filepath.Join(dir, StateFile), err)
	}
	return s, nil
}

// writeState replaces the state file in dir atomically. With sync the
// contents and the rename are durable when it returns.
func writeState(dir string, s State, sync bool) (err error) {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("agent: state: %w", err)
	}
	b = append(b, '\n')
	path := filepath.Join(dir, StateFile)
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("agent: state: %w", err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if _, err := f.Write(b); err != nil {
		return fmt.Errorf("agent: state: %w", err)
	}
	if sync {
		if err := f.Sync(); err != nil {
			return fmt.Errorf("agent: state: fsync: %w", err)
		}
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("agent: state: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("agent: state: %w", err)
	}
	if sync {
		if err := syncDir(dir); err != nil {
			return fmt.Errorf("agent: state: fsync dir: %w", err)
		}
	}
	return nil
}
