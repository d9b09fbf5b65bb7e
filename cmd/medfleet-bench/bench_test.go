package main

import (
	"errors"
	"math"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/medfleet/medfleet/internal/servertest"
	"github.com/medfleet/medfleet/server"
)

// TestAgainstMedfleetd runs the load against a real medfleetd (embedded
// etcd, real CoAP gateway) and checks the inventory: every report counted
// once, in order, with the device's own usage counter.
func TestAgainstMedfleetd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server")
	}
	scfg := servertest.Config(t)
	scfg.Inventory.CheckpointInterval = 200 * time.Millisecond
	srv := servertest.Start(t, scfg)
	cfg := DefaultConfig()
	cfg.Server = srv.Addrs().CoAP.String()
	cfg.Devices, cfg.Rate, cfg.Duration = 50, 5, 3*time.Second
	cfg.PID = os.Getpid() // the server runs in this process
	cfg.Metrics = "http://" + srv.Addrs().HTTP.String() + "/metrics"
	res, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	checkAllAnswered(t, res, 50, 5*3)
	checkInventory(t, srv, res)
	if s := res.Server; s == nil || s.Err != "" || s.Samples < 3 || s.CPUPercent <= 0 || s.PeakRSSMiB <= 0 {
		t.Errorf("server usage = %+v, want CPU and RSS sampled", s)
	}
	// 250 reports/s offered, checkpoints every 200 ms: about 5 a second.
	if c := res.Counters; c == nil || c.Err != "" || c.ReportsAcceptedPerSecond < 200 || c.ReportsAcceptedPerSecond > 300 ||
		c.EtcdTxnsPerSecond["checkpoint"] < 2 || c.EtcdTxnsPerSecond["checkpoint"] > 10 {
		t.Errorf("server counters = %+v, want about 250 reports accepted and 5 checkpoint transactions a second", c)
	}
	var text strings.Builder
	if err := res.WriteText(&text); err != nil || !strings.Contains(text.String(), "2.04: ") {
		t.Errorf("WriteText = %v, %q; want the responses by code", err, text.String())
	}
}

// checkInventory checks that the server counted every report the devices
// had acknowledged, once, in order, with the device's own usage counter.
func checkInventory(t *testing.T, srv *server.Server, res *Result) {
	t.Helper()
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
}

// dtlsConfig is a DTLS run against srv: its DTLS listener, its gRPC API.
func dtlsConfig(srv *server.Server, devices int, rate float64, d time.Duration) Config {
	cfg := DefaultConfig()
	cfg.DTLS, cfg.Server, cfg.GRPC = true, srv.Addrs().CoAPDTLS.String(), srv.Addrs().GRPC.String()
	cfg.Devices, cfg.Rate, cfg.Duration = devices, rate, d
	return cfg
}

// TestAgainstMedfleetdDTLS is TestAgainstMedfleetd over DTLS: the devices
// are provisioned over gRPC, each shakes hands once, and the inventory
// counts every report once.
func TestAgainstMedfleetdDTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server")
	}
	srv := servertest.Start(t, servertest.Config(t))
	cfg := dtlsConfig(srv, 30, 5, 3*time.Second)
	var progress strings.Builder
	cfg.Progress = &progress
	res, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	checkAllAnswered(t, res, 30, 5*3)
	x := res.DTLS
	if x == nil {
		t.Fatal("Result.DTLS = nil, want the sessions")
	}
	if x.Handshakes != 30 || x.HandshakeFailures != 0 || x.SessionsDropped != 0 || x.Handshake.Count != 30 || x.Handshake.P50 <= 0 || x.ProvisioningS <= 0 {
		t.Errorf("DTLS = %+v; want 30 handshakes timed, none failed or dropped, provisioning timed", x)
	}
	checkInventory(t, srv, res)
	for _, d := range res.Devices {
		dev, err := srv.Inventory().Get(d.ID)
		if err != nil {
			continue // reported above
		}
		if dev.GetModel() != "Bench IP-100" || dev.GetSerial() == "" || dev.GetProfile() != cfg.Profile {
			t.Errorf("%s: profile %q, model %q, serial %q; want the registration's", d.ID, dev.GetProfile(), dev.GetModel(), dev.GetSerial())
		}
	}
	if want := "30 of 30 devices provisioned"; !strings.Contains(progress.String(), want) {
		t.Errorf("progress = %q, want %q", progress.String(), want)
	}
	var text strings.Builder
	if err := res.WriteText(&text); err != nil || !strings.Contains(text.String(), "30 done, 0 failed") {
		t.Errorf("WriteText = %v, %q; want the handshakes", err, text.String())
	}
}

// TestDTLSServerRestart stops medfleetd under a DTLS run and starts it
// again on the same data and ports: it has no session then, and every
// device must shake hands again and carry on, without losing a report or
// having one counted twice. A server that stops closes its sessions with a
// close_notify; a killed one says nothing, which a relay that drops every
// datagram during the restart plays: the devices then hear nothing until
// their exchanges time out.
func TestDTLSServerRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server")
	}
	for _, tc := range []struct {
		name   string
		silent bool
	}{
		{"close_notify", false},
		{"silent", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			scfg := servertest.Config(t)
			srv, stop := servertest.StartStoppable(t, scfg)
			// The second server listens where the first did.
			scfg.CoAP.DTLSListen, scfg.GRPC.Listen = srv.Addrs().CoAPDTLS.String(), srv.Addrs().GRPC.String()

			cfg := dtlsConfig(srv, 5, 5, 10*time.Second)
			// A lost session is noticed within 1.4-2.1 s, a handshake
			// through a relay that is down fails within 1 s.
			cfg.AckTimeout, cfg.MaxRetransmit, cfg.HandshakeTimeout = 200*time.Millisecond, 2, time.Second
			var r *relay
			if tc.silent {
				r = startRelay(t, cfg.Server)
				cfg.Server = r.addr()
			}
			type outcome struct {
				res *Result
				err error
			}
			done := make(chan outcome, 1)
			go func() {
				res, err := Run(t.Context(), cfg)
				done <- outcome{res, err}
			}()
			time.Sleep(1500 * time.Millisecond)
			if r != nil {
				r.down.Store(true)
			}
			stop()
			srv, _ = servertest.StartStoppable(t, scfg)
			if r != nil {
				r.down.Store(false)
			}
			// What the new server has of each device: what the old one kept.
			restarted := map[string]uint64{}
			for i := range cfg.Devices {
				id := deviceID(cfg.IDPrefix, i)
				dev, err := srv.Inventory().Get(id)
				if err != nil {
					t.Fatalf("Inventory().Get(%q) after the restart: %v", id, err)
				}
				restarted[id] = dev.GetStatus().GetLastSeq()
			}
			o := <-done
			if o.err != nil {
				t.Fatalf("Run: %v", o.err)
			}
			res := o.res
			if x := res.DTLS; x.Handshakes < 2*5 || x.SessionsDropped < 5 {
				t.Errorf("handshakes %d, sessions dropped %d; want every device's session dropped and a new one made (>= 10, >= 5)", x.Handshakes, x.SessionsDropped)
			}
			if tc.silent && res.Timeouts == 0 {
				t.Errorf("timeouts = 0; want the reports in flight during the restart unanswered")
			}
			for _, d := range res.Devices {
				if d.Reports <= restarted[d.ID]+5 {
					t.Errorf("%s: %d reports acked, %d of them before the restart; want it to carry on after", d.ID, d.Reports, restarted[d.ID])
				}
			}
			checkInventory(t, srv, res)
			if t.Failed() {
				var text strings.Builder
				res.WriteText(&text)
				t.Log(text.String())
			}
		})
	}
}

// relay forwards datagrams between devices and a server, each device on an
// upstream socket of its own, and drops every datagram while it is down.
type relay struct {
	conn   *net.UDPConn
	server *net.UDPAddr
	down   atomic.Bool

	mu    sync.Mutex
	peers map[string]*net.UDPConn // device address -> upstream socket
}

func startRelay(t *testing.T, server string) *relay {
	t.Helper()
	raddr, err := net.ResolveUDPAddr("udp", server)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	r := &relay{conn: c, server: raddr, peers: map[string]*net.UDPConn{}}
	var wg sync.WaitGroup
	wg.Go(func() { r.serve(&wg) })
	t.Cleanup(func() {
		c.Close()
		r.mu.Lock()
		for _, up := range r.peers {
			up.Close()
		}
		r.mu.Unlock()
		wg.Wait()
	})
	return r
}

func (r *relay) addr() string { return r.conn.LocalAddr().String() }

func (r *relay) serve(wg *sync.WaitGroup) {
	buf := make([]byte, 4096)
	for {
		n, peer, err := r.conn.ReadFromUDP(buf)
		if err != nil {
			return
		}
		if r.down.Load() {
			continue
		}
		r.mu.Lock()
		up := r.peers[peer.String()]
		if up == nil {
			if up, err = net.DialUDP("udp", nil, r.server); err != nil {
				r.mu.Unlock()
				continue
			}
			r.peers[peer.String()] = up
			wg.Go(func() { r.back(up, peer) })
		}
		r.mu.Unlock()
		up.Write(buf[:n])
	}
}

// back forwards what the server sends to peer.
func (r *relay) back(up *net.UDPConn, peer *net.UDPAddr) {
	buf := make([]byte, 4096)
	for {
		n, err := up.Read(buf)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err == nil && !r.down.Load() {
			r.conn.WriteToUDP(buf[:n], peer)
		} // other errors: "connection refused" while the server is down
	}
}

// checkAllAnswered checks that devices registered once each and every
// report sent was answered 2.04, at least 90 % of the perDevice each was
// due.
func checkAllAnswered(t *testing.T, res *Result, devices, perDevice int) {
	t.Helper()
	if res.Timeouts+res.Unfinished+res.Resets != 0 || res.Acked != res.Sent || res.Responses["2.04"] != res.Acked || len(res.Responses) != 1 {
		t.Errorf("timeouts %d, unfinished %d, resets %d, acked %d of %d, responses %v; want every report answered 2.04",
			res.Timeouts, res.Unfinished, res.Resets, res.Acked, res.Sent, res.Responses)
	}
	if want := uint64(devices * perDevice); res.Acked < want*9/10 || res.Registrations != uint64(devices) {
		t.Errorf("acked %d, registrations %d; want at least 90%% of %d, %d", res.Acked, res.Registrations, want, devices)
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
