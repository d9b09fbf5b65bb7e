package fault

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/medfleet/medfleet/agent"
	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// fleetSize is the number of simulated devices of every scenario.
const fleetSize = 200

// fleet is an agent.Simulator running in the test process. Restarting it
// makes a new Simulator on the same state directory, as a restarted
// process would.
type fleet struct {
	t      *testing.T
	cfg    agent.SimConfig
	log    *slog.Logger
	sim    *agent.Simulator
	cancel context.CancelFunc
	done   chan error
}

// startFleet runs a simulator with cfg until the test ends.
func startFleet(t *testing.T, dir string, cfg agent.SimConfig) *fleet {
	t.Helper()
	logPath := filepath.Join(dir, "fleet.log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	// The file is closed after the simulator stopped: cleanups run last
	// registered first.
	t.Cleanup(func() { f.Close() })
	logTail(t, "fleet", logPath)
	fl := &fleet{t: t, cfg: cfg, log: slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelInfo}))}
	fl.start()
	t.Cleanup(fl.stop)
	return fl
}

func (f *fleet) start() {
	f.t.Helper()
	sim, err := agent.NewSimulator(f.cfg, f.log)
	if err != nil {
		f.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sim.Run(ctx) }()
	f.sim, f.cancel, f.done = sim, cancel, done
}

// stop stops every device gracefully (a last report, two seconds to
// deliver the queue, deregistration) and waits for them.
func (f *fleet) stop() {
	if f.cancel == nil {
		return
	}
	f.cancel()
	f.cancel = nil
	select {
	case err := <-f.done:
		if err != nil {
			f.t.Errorf("simulator: %v", err)
		}
	case <-time.After(30 * time.Second):
		f.t.Error("simulator did not stop within 30s")
	}
}

// restart stops the fleet and starts a new simulator on the same state.
func (f *fleet) restart() {
	f.t.Helper()
	f.stop()
	f.start()
}

// system is everything a scenario runs: the etcd cluster, two replicas
// sharing it, the proxy in front of them and the fleet behind it.
type system struct {
	t        *testing.T
	dir      string
	etcd     *etcdCluster
	replicas []*replica
	proxy    *proxy
	fleet    *fleet
	figures  *figures
}

// options vary a system between scenarios.
type options struct {
	seed uint64
	// firmwareKeys, when set, is PEM of the keys uploads must be signed
	// with; the devices trust them too.
	firmwareKeys []byte
}

// startSystem starts a whole system and returns once every device reports
// and every replica sees it.
func startSystem(t *testing.T, o options) *system {
	t.Helper()
	s := &system{t: t, dir: t.TempDir(), figures: newFigures(t)}
	began := time.Now()
	s.etcd = startEtcd(t, s.dir, 3)
	rc := replicaConfig{etcd: s.etcd.endpoints(), dataDir: filepath.Join(s.dir, "data")}
	if o.firmwareKeys != nil {
		rc.firmwareKeys = filepath.Join(s.dir, "firmware-keys.pem")
		if err := os.WriteFile(rc.firmwareKeys, o.firmwareKeys, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 2 {
		r := newReplica(t, s.dir, fmt.Sprintf("medfleetd%d", i), rc)
		// One after the other: the first creates the keys in the shared
		// data directory, which the second then reads.
		r.start()
		s.replicas = append(s.replicas, r)
	}
	s.proxy = startProxy(t, o.seed, s.replicas[0].target(), s.replicas[1].target())
	s.fleet = startFleet(t, s.dir, agent.SimConfig{
		Server:       s.proxy.addr(),
		Insecure:     true,
		Devices:      fleetSize,
		StateDir:     filepath.Join(s.dir, "fleet"),
		Interval:     time.Second,
		TimeScale:    60,
		Seed:         int64(o.seed),
		FirmwareKeys: o.firmwareKeys,
	})
	s.waitReporting(30 * time.Second)
	s.figures.add("set-up (etcd, replicas, %d devices reporting): %v", fleetSize, time.Since(began).Round(100*time.Millisecond))
	return s
}

// waitReporting waits until every replica lists the whole fleet, each
// device with a report accepted.
func (s *system) waitReporting(within time.Duration) {
	s.t.Helper()
	for _, r := range s.replicas {
		eventually(s.t, within, 250*time.Millisecond, r.name+" sees every device report", func() (bool, string) {
			got, err := listDevices(r)
			if err != nil {
				return false, err.Error()
			}
			reporting := 0
			for _, d := range got {
				if d.GetStatus().GetLastSeq() > 0 {
					reporting++
				}
			}
			return reporting >= fleetSize, fmt.Sprintf("%d devices, %d of them reporting", len(got), reporting)
		})
	}
}

// lastSeqs reads every device's last_seq through r.
func lastSeqs(r *replica) (map[string]uint64, error) {
	got, err := listDevices(r)
	if err != nil {
		return nil, err
	}
	out := map[string]uint64{}
	for id, d := range got {
		out[id] = d.GetStatus().GetLastSeq()
	}
	return out, nil
}

// truthWithin bounds how long the fleet may take, once quiet, to deliver
// what it queued and for every replica to show it.
const truthWithin = 60 * time.Second

// checkGroundTruth makes the devices stop making reports and waits until
// every replica shows exactly what the devices made: for every device, its
// newest sequence number, one accepted report for every report it made
// and did not drop itself (each device is new to this test's etcd), and
// the usage counter of its newest report. A lost report leaves
// reports_accepted too low; a report counted twice makes it too high.
func (s *system) checkGroundTruth() {
	s.t.Helper()
	s.fleet.sim.Quiesce()
	began := time.Now()
	deadline := began.Add(truthWithin)
	var diffs map[string][]mismatch
	for {
		truth := s.fleet.sim.Truth()
		diffs = map[string][]mismatch{}
		ok := len(truth) == fleetSize
		for _, r := range s.replicas {
			got, err := listDevices(r)
			if err != nil {
				diffs[r.name] = []mismatch{{err: err}}
				ok = false
				continue
			}
			if m := compare(truth, got); len(m) > 0 {
				diffs[r.name] = m
				ok = false
			}
		}
		if ok {
			s.figures.add("ground truth reached through %d replicas %v after the fleet went quiet", len(s.replicas), time.Since(began).Round(100*time.Millisecond))
			return
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	truth := s.fleet.sim.Truth()
	if len(truth) != fleetSize {
		s.t.Errorf("the simulator knows the truth of %d devices, want %d (not every device started)", len(truth), fleetSize)
	}
	for _, r := range s.replicas {
		m := diffs[r.name]
		if len(m) == 0 {
			continue
		}
		if m[0].err != nil {
			s.t.Errorf("ground truth through %s: %v", r.name, m[0].err)
			continue
		}
		var lost, twice, seq, usage, missing int
		var lostReports, twiceReports uint64
		for _, d := range m {
			switch {
			case d.got == nil:
				missing++
				continue
			case d.accepted() < d.wantAccepted():
				lost++
				lostReports += d.wantAccepted() - d.accepted()
			case d.accepted() > d.wantAccepted():
				twice++
				twiceReports += d.accepted() - d.wantAccepted()
			}
			if d.got.GetLastSeq() != d.want.LastSeq {
				seq++
			}
			if d.got.GetUsageSeconds() != d.want.UsageSeconds {
				usage++
			}
		}
		var lines []string
		for _, d := range m[:min(10, len(m))] {
			lines = append(lines, d.String())
		}
		s.t.Errorf("ground truth through %s not reached within %v of the fleet going quiet: %d of %d devices differ "+
			"(%d missing; %d with %d reports lost; %d with %d reports counted twice; %d with last_seq and %d with usage_seconds off). First ones:\n  %s",
			r.name, truthWithin, len(m), len(truth), missing, lost, lostReports, twice, twiceReports, seq, usage, strings.Join(lines, "\n  "))
	}
}

// mismatch is a device whose status differs from its truth.
type mismatch struct {
	id   string
	want agent.Truth
	got  *pb.DeviceStatus // nil: the replica does not list the device
	err  error            // the replica could not be read
}

func (m mismatch) wantAccepted() uint64 { return m.want.LastSeq - m.want.Dropped }
func (m mismatch) accepted() uint64     { return m.got.GetReportsAccepted() }

func (m mismatch) String() string {
	if m.got == nil {
		return fmt.Sprintf("%s: not listed; device made seq %d (%d dropped) usage %v", m.id, m.want.LastSeq, m.want.Dropped, m.want.UsageSeconds)
	}
	return fmt.Sprintf("%s: replica last_seq %d reports_accepted %d (duplicates %d) usage_seconds %v; device last_seq %d dropped %d (so %d accepted) usage %v",
		m.id, m.got.GetLastSeq(), m.got.GetReportsAccepted(), m.got.GetReportsDuplicate(), m.got.GetUsageSeconds(),
		m.want.LastSeq, m.want.Dropped, m.wantAccepted(), m.want.UsageSeconds)
}

// compare returns the devices whose status in got differs from truth, in
// id order.
func compare(truth map[string]agent.Truth, got map[string]*pb.Device) []mismatch {
	var out []mismatch
	for id, want := range truth {
		d, ok := got[id]
		if !ok {
			out = append(out, mismatch{id: id, want: want})
			continue
		}
		st := d.GetStatus()
		if st.GetLastSeq() != want.LastSeq || st.GetReportsAccepted() != want.LastSeq-want.Dropped || st.GetUsageSeconds() != want.UsageSeconds {
			out = append(out, mismatch{id: id, want: want, got: st})
		}
	}
	slices.SortFunc(out, func(a, b mismatch) int { return strings.Compare(a.id, b.id) })
	return out
}
