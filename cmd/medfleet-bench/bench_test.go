package main

import (
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/medfleet/medfleet/internal/servertest"
)

// TestAgainstMedfleetd runs the load against a real medfleetd (embedded
// etcd, real CoAP gateway) and checks the inventory: every report counted
// once, in order, with the device's own usage counter.
func TestAgainstMedfleetd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server")
	}
	srv := servertest.Start(t, servertest.Config(t))
	cfg := DefaultConfig()
	cfg.Server = srv.Addrs().CoAP.String()
	cfg.Devices, cfg.Rate, cfg.Duration = 50, 5, 3*time.Second
	cfg.PID = os.Getpid() // the server runs in this process
	res, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if res.Timeouts+res.Unfinished+res.Resets != 0 || res.Acked != res.Sent || res.Responses["2.04"] != res.Acked || len(res.Responses) != 1 {
		t.Errorf("timeouts %d, unfinished %d, resets %d, acked %d of %d, responses %v; want every report answered 2.04",
			res.Timeouts, res.Unfinished, res.Resets, res.Acked, res.Sent, res.Responses)
	}
	if res.Acked < 50*5*3*9/10 || res.Registrations != 50 {
		t.Errorf("acked %d, registrations %d; want at least 90%% of 750, 50", res.Acked, res.Registrations)
	}
	var reports uint64
	for _, d := range res.Devices {
		reports += d.Reports
		dev, err := srv.Inventory().Get(d.ID)
		if err != nil {
			t.Errorf("Inventory().Get(%q): %v", d.ID, err)
			continue
		}
		st := dev.GetStatus()
		if st.GetLastSeq() != d.Reports || d.LastSeq != d.Reports || math.Abs(st.GetUsageSeconds()-d.Usage) > 1e-6 {
			t.Errorf("%s: server last_seq %d, usage %v; device sent %d reports, last seq %d, usage %v",
				d.ID, st.GetLastSeq(), st.GetUsageSeconds(), d.Reports, d.LastSeq, d.Usage)
		}
	}
	if reports != res.Acked {
		t.Errorf("devices' reports add up to %d, want %d acked", reports, res.Acked)
	}
	if s := res.Server; s == nil || s.Err != "" || s.Samples < 3 || s.CPUPercent <= 0 || s.PeakRSSMiB <= 0 {
		t.Errorf("server usage = %+v, want CPU and RSS sampled", s)
	}
	var text strings.Builder
	if err := res.WriteText(&text); err != nil || !strings.Contains(text.String(), "2.04: ") {
		t.Errorf("WriteText = %v, %q; want the responses by code", err, text.String())
	}
}

func TestParseProc(t *testing.T) {
	stat := "4242 (med fleet) d) S 1 2 3 4 5 6 7 8 9 10 250 75 13 14 20 0 12 0 100 2000 300\n"
	if got, err := parseStat([]byte(stat)); err != nil || got != 325 {
		t.Errorf("parseStat(%q) = %d, %v; want 325 (utime 250 + stime 75)", stat, got, err)
	}
	if _, err := parseStat([]byte("4242 (x) S 1 2")); err == nil {
		t.Errorf("parseStat of a short line = nil error, want one")
	}
	status := "Name:\tmedfleetd\nVmPeak:\t 999 kB\nVmRSS:\t   20480 kB\nThreads: 9\n"
	if got, err := parseVmRSS(strings.NewReader(status)); err != nil || got != 20<<20 {
		t.Errorf("parseVmRSS = %d, %v; want %d", got, err, 20<<20)
	}
	if _, err := parseVmRSS(strings.NewReader("Name: x\n")); err == nil {
		t.Errorf("parseVmRSS without VmRSS = nil error, want one")
	}
}

func TestParseMachineStat(t *testing.T) {
	tests := []struct {
		name string
		stat string
		want uint64 // 0 for an error
	}{
		{"busy", "cpu  100 5 50 1000 20 3 2 1 0 0\ncpu0 50 2 25 500 10 1 1 0 0 0\n", 100 + 5 + 50 + 3 + 2 + 1},
		{"old kernel, 8 counters", "cpu 1 2 3 4 5 6 7 8\n", 1 + 2 + 3 + 6 + 7 + 8},
		{"short", "cpu 1 2 3\n", 0},
		{"not cpu", "intr 1 2 3 4 5 6 7 8 9\n", 0},
		{"not a number", "cpu 1 2 x 4 5 6 7 8\n", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseMachineStat([]byte(tc.stat))
			if (err != nil) != (tc.want == 0) || got != tc.want {
				t.Errorf("parseMachineStat(%q) = %d, %v; want %d", tc.stat, got, err, tc.want)
			}
		})
	}
}
