package agent

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/medfleet/medfleet/coap"
)

// testConfig is a device that reports every 20 ms and retries fast; its
// simulated clock runs 600 times faster than the real one.
func testConfig(server, id, profile string) Config {
	return Config{
		Server: server, DeviceID: id, Profile: profile,
		Model: "Test Model", Serial: "SN-0001", Firmware: "1.0.0",
		Interval: 20 * time.Millisecond, TimeScale: 600, Seed: 7,
		RequestTimeout: time.Second, RetryMin: 10 * time.Millisecond, RetryMax: 80 * time.Millisecond,
		RefusedBackoff: time.Minute, Insecure: true,
	}
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// runningAgent is an agent running in the background of a test.
type runningAgent struct {
	t      *testing.T
	cancel context.CancelFunc
	done   chan error
}

// startAgent runs a (from New) until stop, or until the test ends.
func startAgent(t *testing.T, a *Agent) *runningAgent {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &runningAgent{t: t, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- a.Run(ctx) }()
	t.Cleanup(func() { r.stop() })
	return r
}

func runAgent(t *testing.T, cfg Config) *runningAgent {
	t.Helper()
	a, err := New(cfg, testLogger(t))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return startAgent(t, a)
}

// stop cancels the agent and returns what Run returned.
func (r *runningAgent) stop() error {
	r.t.Helper()
	r.cancel()
	select {
	case err, ok := <-r.done:
		if ok {
			close(r.done)
		}
		return err
	case <-time.After(10 * time.Second):
		r.t.Fatal("Run did not return 10 s after its context was cancelled")
		return nil
	}
}

// seqs returns the sequence numbers of reports.
func seqs(reports []*coap.Report) []uint64 {
	out := make([]uint64, len(reports))
	for i, r := range reports {
		out[i] = r.Seq
	}
	return out
}

// checkContiguous checks that reports carry the sequence numbers from, from+1, ...
func checkContiguous(t *testing.T, reports []*coap.Report, from uint64) {
	t.Helper()
	for i, r := range reports {
		if want := from + uint64(i); r.Seq != want {
			t.Fatalf("report %d has seq %d, want %d (seqs %v)", i, r.Seq, want, seqs(reports))
		}
	}
}

// usageTotal adds up usage the way the server does: deltas of the
// cumulative counter, a drop being a reset.
func usageTotal(reports []*coap.Report) (total float64, resets int) {
	var prev float64
	for i, r := range reports {
		if r.Usage == nil {
			continue
		}
		u := *r.Usage
		switch {
		case i == 0:
			total = u
		case u >= prev:
			total += u - prev
		default:
			total += u
			resets++
		}
		prev = u
	}
	return total, resets
}

func TestAgentRegistersAndReports(t *testing.T) {
	srv := startTestServer(t)
	cfg := testConfig(srv.addr, "pump-0001", coap.ProfileInfusionPump)
	cfg.StateDir = t.TempDir()
	cfg.TimeScale = 36000 // 20 ms is 12 simulated minutes: the pump goes in and out of use
	r := runAgent(t, cfg)
	waitFor(t, 5*time.Second, "10 reports", func() bool { return len(srv.reports(cfg.DeviceID)) >= 10 })
	// Stopping may cut off a report in flight, which the stop then sends
	// again: duplicates are counted before it.
	var dupes int
	srv.with(func(s *testServer) { dupes = s.dupes })
	if err := r.stop(); err != nil {
		t.Fatalf("Run() = %v, want nil", err)
	}

	regs := srv.registrations()
	if len(regs) != 1 {
		t.Fatalf("%d registrations, want 1: %+v", len(regs), regs)
	}
	want := testRegistration{
		ID: cfg.DeviceID, Lifetime: "300", Format: coap.FormatCBOR,
		Reg: coap.Registration{Model: cfg.Model, Serial: cfg.Serial, Firmware: cfg.Firmware, Profile: cfg.Profile},
	}
	if regs[0] != want {
		t.Errorf("registration = %+v, want %+v", regs[0], want)
	}
	reports := srv.reports(cfg.DeviceID)
	checkContiguous(t, reports, 1)
	var prev float64
	for _, rep := range reports {
		if rep.Firmware != cfg.Firmware || rep.Usage == nil || rep.State == "" || rep.Battery == nil {
			t.Fatalf("report %d = %+v, want fw, usage, state and battery", rep.Seq, rep)
		}
		if *rep.Usage < prev {
			t.Fatalf("report %d: usage %v after %v", rep.Seq, *rep.Usage, prev)
		}
		prev = *rep.Usage
	}
	srv.with(func(s *testServer) {
		if s.deletes != 1 || dupes != 0 {
			t.Errorf("deletes = %d, dupes before stopping = %d; want 1, 0", s.deletes, dupes)
		}
	})

	st, err := ReadState(cfg.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	last := reports[len(reports)-1]
	if !st.Stopped || !st.Acknowledged() || st.LastSeq != last.Seq || st.Usage != *last.Usage || st.Dropped != 0 {
		t.Errorf("state = %+v, want stopped, acknowledged, last_seq %d, usage %v", st, last.Seq, *last.Usage)
	}
	if total, _ := usageTotal(reports); total != st.Usage {
		t.Errorf("usage total at the server = %v, device counter %v", total, st.Usage)
	}
	for _, name := range []string{StateFile, queueFile} {
		info, err := os.Stat(filepath.Join(cfg.StateDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm() != 0o600 {
			t.Errorf("%s mode = %v, want 0600", name, info.Mode().Perm())
		}
	}
}

func TestAgentRegistersAgainOnNotFound(t *testing.T) {
	srv := startTestServer(t)
	cfg := testConfig(srv.addr, "rfid-0001", coap.ProfileRFIDReader)
	r := runAgent(t, cfg)
	waitFor(t, 5*time.Second, "3 reports", func() bool { return len(srv.reports(cfg.DeviceID)) >= 3 })
	srv.with(func(s *testServer) { delete(s.known, cfg.DeviceID) }) // the server forgot the device
	waitFor(t, 5*time.Second, "a second registration and 3 more reports", func() bool {
		return len(srv.registrations()) == 2 && len(srv.reports(cfg.DeviceID)) >= 6
	})
	if err := r.stop(); err != nil {
		t.Fatalf("Run() = %v, want nil", err)
	}
	checkContiguous(t, srv.reports(cfg.DeviceID), 1)
	if n := len(srv.registrations()); n != 2 {
		t.Errorf("%d registrations, want 2", n)
	}
}

func TestAgentDropsRefusedReport(t *testing.T) {
	srv := startTestServer(t)
	srv.with(func(s *testServer) { s.refuseSeq[2] = true })
	cfg := testConfig(srv.addr, "rfid-0002", coap.ProfileRFIDReader)
	cfg.StateDir = t.TempDir()
	r := runAgent(t, cfg)
	waitFor(t, 5*time.Second, "report 5", func() bool {
		rs := srv.reports(cfg.DeviceID)
		return len(rs) > 0 && rs[len(rs)-1].Seq >= 5
	})
	if err := r.stop(); err != nil {
		t.Fatalf("Run() = %v, want nil", err)
	}
	got := seqs(srv.reports(cfg.DeviceID))
	if got[0] != 1 || got[1] != 3 {
		t.Errorf("accepted seqs = %v, want 1, 3, 4, ...", got)
	}
	srv.with(func(s *testServer) {
		if len(s.refused[cfg.DeviceID]) != 1 {
			t.Errorf("report 2 refused %d times, want once", len(s.refused[cfg.DeviceID]))
		}
	})
	st, err := ReadState(cfg.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Dropped != 1 || !st.Acknowledged() {
		t.Errorf("state = %+v, want 1 dropped and nothing pending", st)
	}
}

func TestAgentQueuesWhileServerDown(t *testing.T) {
	srv := startTestServer(t)
	cfg := testConfig(srv.addr, "rfid-0003", coap.ProfileRFIDReader)
	cfg.StateDir = t.TempDir()
	r := runAgent(t, cfg)
	waitFor(t, 5*time.Second, "3 reports", func() bool { return len(srv.reports(cfg.DeviceID)) >= 3 })
	srv.stop()
	before := len(srv.reports(cfg.DeviceID))
	time.Sleep(15 * cfg.Interval) // reports queue up
	srv.start(srv.addr)
	waitFor(t, 5*time.Second, "the queued reports", func() bool { return len(srv.reports(cfg.DeviceID)) >= before+12 })
	if err := r.stop(); err != nil {
		t.Fatalf("Run() = %v, want nil", err)
	}

	reports := srv.reports(cfg.DeviceID)
	checkContiguous(t, reports, 1) // all of them, each once
	st, err := ReadState(cfg.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Acknowledged() || st.LastSeq != reports[len(reports)-1].Seq {
		t.Errorf("state = %+v, want everything acknowledged up to %d", st, reports[len(reports)-1].Seq)
	}
	total, resets := usageTotal(reports)
	if total != st.Usage || resets != 0 || total == 0 {
		t.Errorf("usage total at the server = %v (%d resets), device counter %v", total, resets, st.Usage)
	}
}

// TestAgentKeepsUnstoredReports is a server that accepts reports but says
// it has not stored them, then loses what it had not stored (a crash): the
// agent keeps them without sending them twice while the exchanges go well,
// sends them again, in order, after the failure, and lets them go once the
// server says they are stored.
func TestAgentKeepsUnstoredReports(t *testing.T) {
	srv := startTestServer(t)
	srv.with(func(s *testServer) { s.stored = map[string]uint64{} })
	cfg := testConfig(srv.addr, "pump-0007", coap.ProfileInfusionPump)
	cfg.StateDir = t.TempDir()
	r := runAgent(t, cfg)
	waitFor(t, 5*time.Second, "6 reports", func() bool { return len(srv.reports(cfg.DeviceID)) >= 6 })
	srv.with(func(s *testServer) {
		if s.dupes != 0 {
			t.Errorf("%d reports sent twice while every exchange succeeded", s.dupes)
		}
		s.stored[cfg.DeviceID] = 3
	})
	srv.stop()
	// The server comes back knowing only what it stored.
	srv.with(func(s *testServer) {
		s.last[cfg.DeviceID] = 3
		s.accepted[cfg.DeviceID] = s.accepted[cfg.DeviceID][:3]
	})
	time.Sleep(3 * cfg.Interval)
	srv.start(srv.addr)
	waitFor(t, 5*time.Second, "the unstored reports again", func() bool { return len(srv.reports(cfg.DeviceID)) >= 10 })
	checkContiguous(t, srv.reports(cfg.DeviceID), 1)
	srv.with(func(s *testServer) { s.stored[cfg.DeviceID] = s.last[cfg.DeviceID] })
	if err := r.stop(); err != nil {
		t.Fatalf("Run() = %v, want nil", err)
	}
	reports := srv.reports(cfg.DeviceID)
	checkContiguous(t, reports, 1)
	st, err := ReadState(cfg.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	if total, _ := usageTotal(reports); total != st.Usage {
		t.Errorf("usage total at the server = %v, device counter %v", total, st.Usage)
	}
	if st.AckedSeq < 3 || st.AckedSeq > reports[len(reports)-1].Seq {
		t.Errorf("acked seq = %d, want between 3 and %d", st.AckedSeq, reports[len(reports)-1].Seq)
	}
}

// TestAgentSendsHeldReportsFirst is a device whose requests reach another
// replica, which never saw the reports the first one accepted and lost,
// without any exchange failing: the held parameter lets the server refuse
// the new report, and the agent sends the lost ones first.
func TestAgentSendsHeldReportsFirst(t *testing.T) {
	srv := startTestServer(t)
	srv.with(func(s *testServer) { s.stored = map[string]uint64{} })
	cfg := testConfig(srv.addr, "pump-0008", coap.ProfileInfusionPump)
	r := runAgent(t, cfg)
	waitFor(t, 5*time.Second, "6 reports", func() bool { return len(srv.reports(cfg.DeviceID)) >= 6 })
	srv.with(func(s *testServer) {
		s.stored[cfg.DeviceID] = 3
		s.last[cfg.DeviceID] = 3 // what the other replica has: the stored ones
		s.accepted[cfg.DeviceID] = s.accepted[cfg.DeviceID][:3]
	})
	waitFor(t, 5*time.Second, "reports after the switch", func() bool { return len(srv.reports(cfg.DeviceID)) >= 9 })
	srv.with(func(s *testServer) { s.stored[cfg.DeviceID] = s.last[cfg.DeviceID] })
	if err := r.stop(); err != nil {
		t.Fatalf("Run() = %v, want nil", err)
	}
	checkContiguous(t, srv.reports(cfg.DeviceID), 1)
	srv.with(func(s *testServer) {
		if s.outOfOrder == 0 {
			t.Error("no report was refused as out of order: the test did not switch replicas under the agent")
		}
	})
}

func TestAgentRestartContinues(t *testing.T) {
	srv := startTestServer(t)
	cfg := testConfig(srv.addr, "rfid-0004", coap.ProfileRFIDReader)
	cfg.StateDir = t.TempDir()

	r := runAgent(t, cfg)
	waitFor(t, 5*time.Second, "3 reports", func() bool { return len(srv.reports(cfg.DeviceID)) >= 3 })
	if err := r.stop(); err != nil {
		t.Fatalf("first Run() = %v, want nil", err)
	}
	first, err := ReadState(cfg.StateDir)
	if err != nil {
		t.Fatal(err)
	}

	r = runAgent(t, cfg)
	waitFor(t, 5*time.Second, "3 more reports", func() bool { return len(srv.reports(cfg.DeviceID)) >= int(first.LastSeq)+3 })
	if err := r.stop(); err != nil {
		t.Fatalf("second Run() = %v, want nil", err)
	}
	second, err := ReadState(cfg.StateDir)
	if err != nil {
		t.Fatal(err)
	}

	reports := srv.reports(cfg.DeviceID)
	checkContiguous(t, reports, 1)
	if next := reports[first.LastSeq]; *next.Usage < first.Usage {
		t.Errorf("first report after the restart: usage %v, below %v before it", *next.Usage, first.Usage)
	}
	total, resets := usageTotal(reports)
	if total != second.Usage || resets != 0 {
		t.Errorf("usage total at the server = %v (%d resets), device counter %v", total, resets, second.Usage)
	}
	if n := len(srv.registrations()); n != 2 {
		t.Errorf("%d registrations, want 2", n)
	}
}

// TestAgentRecoversFromQueue starts an agent whose state file is older than
// its queue, as after a crash: numbering and counters continue from the
// newest queued report.
func TestAgentRecoversFromQueue(t *testing.T) {
	srv := startTestServer(t)
	addr := srv.addr
	srv.stop() // down from the start
	cfg := testConfig(addr, "rfid-0005", coap.ProfileRFIDReader)
	cfg.StateDir = t.TempDir()

	r := runAgent(t, cfg)
	time.Sleep(15 * cfg.Interval)
	if err := r.stop(); err != nil {
		t.Fatalf("first Run() = %v, want nil", err)
	}
	offline, err := ReadState(cfg.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	if offline.Pending < 3 || offline.AckedSeq != 0 || offline.Usage == 0 {
		t.Fatalf("state after running offline = %+v, want 3 or more pending", offline)
	}
	if err := os.Remove(filepath.Join(cfg.StateDir, StateFile)); err != nil {
		t.Fatal(err)
	}

	srv.start(addr)
	r = runAgent(t, cfg)
	waitFor(t, 5*time.Second, "the queued reports and 2 more", func() bool {
		return len(srv.reports(cfg.DeviceID)) >= int(offline.LastSeq)+2
	})
	if err := r.stop(); err != nil {
		t.Fatalf("second Run() = %v, want nil", err)
	}
	reports := srv.reports(cfg.DeviceID)
	checkContiguous(t, reports, 1)
	st, err := ReadState(cfg.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	total, resets := usageTotal(reports)
	if total != st.Usage || resets != 0 {
		t.Errorf("usage total at the server = %v (%d resets), device counter %v", total, resets, st.Usage)
	}
}

func TestAgentRenumbersAboveServerSeq(t *testing.T) {
	tests := []struct {
		name string
		// jump is when the server's sequence number jumps: before the
		// registration, or in the answer to a report.
		beforeRegistration bool
	}{
		{name: "at registration", beforeRegistration: true},
		{name: "in a report's answer"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := startTestServer(t)
			cfg := testConfig(srv.addr, "rfid-0006", coap.ProfileRFIDReader)
			if tc.beforeRegistration {
				srv.with(func(s *testServer) { s.last[cfg.DeviceID] = 1000 })
			}
			r := runAgent(t, cfg)
			if !tc.beforeRegistration {
				waitFor(t, 5*time.Second, "2 reports", func() bool { return len(srv.reports(cfg.DeviceID)) >= 2 })
				srv.with(func(s *testServer) { s.last[cfg.DeviceID] = 1000 })
			}
			waitFor(t, 5*time.Second, "report 1003", func() bool {
				rs := srv.reports(cfg.DeviceID)
				return len(rs) > 0 && rs[len(rs)-1].Seq >= 1003
			})
			// Stopping may cut off a report in flight, which the stop then
			// sends again: duplicates are counted before it.
			var dupes int
			srv.with(func(s *testServer) { dupes = s.dupes })
			if err := r.stop(); err != nil {
				t.Fatalf("Run() = %v, want nil", err)
			}
			reports := srv.reports(cfg.DeviceID)
			var above []*coap.Report
			for i, rep := range reports {
				if rep.Seq > 1000 {
					above = reports[i:]
					break
				}
			}
			checkContiguous(t, above, 1001)
			var prev float64
			for _, rep := range reports {
				if *rep.Usage < prev {
					t.Fatalf("usage went from %v to %v at seq %d", prev, *rep.Usage, rep.Seq)
				}
				prev = *rep.Usage
			}
			if dupes > 1 {
				t.Errorf("%d reports dropped as replays, want at most the one that met the jump", dupes)
			}
		})
	}
}

func TestAgentWaitsWhenRefused(t *testing.T) {
	tests := []struct {
		name   string
		code   codes.Code
		maxAge uint32
	}{
		{name: "forbidden", code: codes.Forbidden},
		{name: "bad registration", code: codes.BadRequest},
		{name: "too many requests", code: codes.TooManyRequests, maxAge: 60},
		{name: "service unavailable with max-age", code: codes.ServiceUnavailable, maxAge: 60},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := startTestServer(t)
			srv.with(func(s *testServer) { s.regCode, s.regMaxAge = tc.code, tc.maxAge })
			cfg := testConfig(srv.addr, "pump-0002", coap.ProfileInfusionPump)
			cfg.StateDir = t.TempDir()
			r := runAgent(t, cfg)
			waitFor(t, 5*time.Second, "a registration", func() bool { return len(srv.registrations()) >= 1 })
			time.Sleep(10 * cfg.Interval)
			start := time.Now()
			if err := r.stop(); err != nil {
				t.Fatalf("Run() = %v, want nil", err)
			}
			if d := time.Since(start); d > stopFlushTimeout+time.Second {
				t.Errorf("stop took %v", d)
			}
			if n := len(srv.registrations()); tc.maxAge == 0 && n != 1 {
				t.Errorf("%d registration attempts, want 1 (then a long wait)", n)
			} else if n > 2 {
				t.Errorf("%d registration attempts, want at most 2 (one more when stopping)", n)
			}
			st, err := ReadState(cfg.StateDir)
			if err != nil {
				t.Fatal(err)
			}
			if st.Pending < 3 || st.Dropped != 0 {
				t.Errorf("state = %+v, want the reports kept", st)
			}
		})
	}
}

func TestAgentHeartbeat(t *testing.T) {
	srv := startTestServer(t)
	cfg := testConfig(srv.addr, "cpap-0001", coap.ProfileCPAP)
	cfg.Interval = time.Hour
	a, err := New(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	a.heartbeatEvery = 20 * time.Millisecond
	r := startAgent(t, a)
	waitFor(t, 5*time.Second, "3 heartbeats", func() bool {
		n := 0
		srv.with(func(s *testServer) { n = s.heartbeats })
		return n >= 3
	})
	srv.with(func(s *testServer) { delete(s.known, cfg.DeviceID) }) // the next heartbeat meets a 4.04
	waitFor(t, 5*time.Second, "a second registration", func() bool { return len(srv.registrations()) == 2 })
	if err := r.stop(); err != nil {
		t.Fatalf("Run() = %v, want nil", err)
	}
	if got := seqs(srv.reports(cfg.DeviceID)); len(got) != 2 {
		t.Errorf("reports %v, want the first and the last", got)
	}
}

// TestAgentHeartbeatWhileReportsRefused checks that reports answered 4.00
// do not stand for contact (protocol section 5.3): the server does not renew
// the registration for them, so the agent must still heartbeat.
func TestAgentHeartbeatWhileReportsRefused(t *testing.T) {
	srv := startTestServer(t)
	srv.with(func(s *testServer) {
		for seq := range uint64(10000) {
			s.refuseSeq[seq+1] = true
		}
	})
	cfg := testConfig(srv.addr, "pump-0006", coap.ProfileInfusionPump)
	a, err := New(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	a.heartbeatEvery = 100 * time.Millisecond // 5 report intervals
	r := startAgent(t, a)
	waitFor(t, 3*time.Second, "2 heartbeats between refused reports", func() bool {
		n := 0
		srv.with(func(s *testServer) { n = s.heartbeats })
		return n >= 2
	})
	if err := r.stop(); err != nil {
		t.Fatalf("Run() = %v, want nil", err)
	}
	srv.with(func(s *testServer) {
		if len(s.refused[cfg.DeviceID]) < 5 {
			t.Errorf("%d reports refused, want them refused all along", len(s.refused[cfg.DeviceID]))
		}
	})
}

func TestAgentAdoptsServerInterval(t *testing.T) {
	srv := startTestServer(t)
	srv.with(func(s *testServer) { s.interval = 3600 })
	cfg := testConfig(srv.addr, "pump-0003", coap.ProfileInfusionPump)
	r := runAgent(t, cfg)
	waitFor(t, 5*time.Second, "the first report", func() bool { return len(srv.reports(cfg.DeviceID)) >= 1 })
	time.Sleep(10 * cfg.Interval)
	if n := len(srv.reports(cfg.DeviceID)); n != 1 {
		t.Errorf("%d reports within 10 intervals of 20 ms after the server asked for 1 h, want 1", n)
	}
	if err := r.stop(); err != nil {
		t.Fatalf("Run() = %v, want nil", err)
	}
}

func TestAgentRefusesOtherDevicesState(t *testing.T) {
	dir := t.TempDir()
	if err := writeState(dir, State{DeviceID: "someone-else"}, false); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(freeAddr(t), "pump-0004", coap.ProfileInfusionPump)
	cfg.StateDir = dir
	a, err := New(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Run(t.Context()); err == nil {
		t.Error("Run() = nil with the state of another device, want an error")
	}
}

func TestAgentRunTwice(t *testing.T) {
	a, err := New(testConfig(freeAddr(t), "pump-0005", coap.ProfileInfusionPump), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := a.Run(ctx); err != nil {
		t.Fatalf("first Run() = %v, want nil", err)
	}
	if err := a.Run(ctx); err == nil {
		t.Error("second Run() = nil, want an error")
	}
}

func TestSetSeq(t *testing.T) {
	r := coap.Report{Seq: 3, Usage: ptr(42.0), State: coap.StateIdle}
	pack, err := coap.EncodePack(coap.FormatSenMLCBOR, r.Pack())
	if err != nil {
		t.Fatal(err)
	}
	out, err := setSeq(1001, pack)
	if err != nil {
		t.Fatal(err)
	}
	p, err := coap.DecodePack(coap.FormatSenMLCBOR, out)
	if err != nil {
		t.Fatal(err)
	}
	got, err := coap.ParseReport(p)
	if err != nil {
		t.Fatal(err)
	}
	if got.Seq != 1001 || *got.Usage != 42 || got.State != coap.StateIdle {
		t.Errorf("setSeq(1001) = %+v, want seq 1001 and the rest unchanged", got)
	}
	if _, err := setSeq(1, []byte{0x80}); err == nil {
		t.Error("setSeq of an empty pack = nil error, want one")
	}
}
