package fault

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// TestEtcdMemberKilledUnderLoad kills the etcd leader while the devices
// report and a writer creates and relabels devices through both replicas,
// and restarts it ten seconds later. Two members keep a quorum: ingest must
// go on, every write that returned OK must be visible through both
// replicas, and no report may be lost or counted twice.
func TestEtcdMemberKilledUnderLoad(t *testing.T) {
	s := startSystem(t, options{seed: 1})
	ctx := contextFor(t, 2*time.Minute)
	wctx, stopWriter := context.WithCancel(ctx)
	w := &writer{replicas: s.replicas, acked: map[string]int{}, failures: map[codes.Code]int{}}
	var wg sync.WaitGroup
	wg.Go(func() { w.run(wctx) })
	t.Cleanup(func() { stopWriter(); wg.Wait() })
	load(t, 2*time.Second, "writes and reports")

	victim := s.etcd.leader()
	before := acceptedReports(s.replicas)
	writesBefore := w.counts()
	s.etcd.kill(victim)
	killed := time.Now()
	t.Logf("killed %s, the etcd leader", s.etcd.members[victim].name)
	s.figures.add("killed %s, the etcd leader, for 10 s", s.etcd.members[victim].name)
	s.figures.add("etcd accepted writes again %v after its leader was killed", s.etcd.writable(10*time.Second).Round(10*time.Millisecond))
	load(t, 10*time.Second-time.Since(killed), "etcd leader down")
	during := acceptedReports(s.replicas) - before
	writesDuring := w.counts().minus(writesBefore)
	s.etcd.restart(victim)
	t.Logf("%s is back", s.etcd.members[victim].name)
	load(t, 5*time.Second, "etcd whole again")
	stopWriter()
	wg.Wait()

	s.figures.add("reports accepted while it was down: %.0f", during)
	s.figures.add("writes while it was down: %d OK, %d failed", writesDuring.ok, writesDuring.failed)
	total := w.counts()
	s.figures.add("writes in all: %d OK, %d failed %v; slowest OK write %v", total.ok, total.failed, w.failures, w.slowest.Round(time.Millisecond))
	// 200 devices report once a second, and reports touch only memory: a
	// new etcd leader does not hold them up.
	if during < fleetSize*10/2 {
		t.Errorf("%.0f reports accepted in the 10 s without the etcd leader, want at least %d", during, fleetSize*10/2)
	}
	if writesDuring.ok == 0 {
		t.Errorf("no write succeeded in the 10 s without the etcd leader (%d failed: %v); two members of three keep a quorum", writesDuring.failed, w.failures)
	}
	w.checkVisible(t)
	s.checkGroundTruth()
}

// writer creates devices and changes their labels through the replicas in
// turn, and remembers every write that returned OK.
type writer struct {
	replicas []*replica

	mu       sync.Mutex
	acked    map[string]int // device: highest "rev" label whose write returned OK
	ok       int
	failed   int
	failures map[codes.Code]int
	slowest  time.Duration // of the writes that returned OK
}

type writeCounts struct{ ok, failed int }

func (c writeCounts) minus(o writeCounts) writeCounts {
	return writeCounts{c.ok - o.ok, c.failed - o.failed}
}

func (w *writer) counts() writeCounts {
	w.mu.Lock()
	defer w.mu.Unlock()
	return writeCounts{w.ok, w.failed}
}

// run writes every 50 ms until ctx ends: a new device with rev 0, then a
// new rev for the device created before it, through the other replica, so
// that a replica must know what the other one wrote.
func (w *writer) run(ctx context.Context) {
	var created []string
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for i := 1; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		r := w.replicas[i%len(w.replicas)]
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		began := time.Now()
		var id string
		var err error
		if i%2 == 1 || len(created) == 0 {
			id = fmt.Sprintf("fault-w-%05d", i)
			_, err = r.devices().CreateDevice(cctx, &pb.CreateDeviceRequest{DeviceId: id, Device: &pb.Device{
				Profile: "infusion-pump", Model: "Fault Writer", Serial: id, Labels: map[string]string{"rev": "0"}}})
			if err == nil {
				created = append(created, id)
			}
		} else {
			id = created[len(created)-1]
			_, err = r.devices().UpdateDevice(cctx, &pb.UpdateDeviceRequest{
				Device:     &pb.Device{Name: "devices/" + id, Labels: map[string]string{"rev": strconv.Itoa(i)}},
				UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"labels"}},
			})
		}
		took := time.Since(began)
		cancel()
		if ctx.Err() != nil {
			return // the writer was stopped: the write's fate is unknown
		}
		w.mu.Lock()
		if err != nil {
			w.failed++
			w.failures[status.Code(err)]++
		} else {
			w.ok++
			w.slowest = max(w.slowest, took)
			rev := 0
			if i%2 == 0 {
				rev = i
			}
			w.acked[id] = max(w.acked[id], rev)
		}
		w.mu.Unlock()
	}
}

// checkVisible checks that every write that returned OK can be read back
// through every replica: the device exists, with a rev at least the one
// acknowledged (a later write that failed may still have been applied).
func (w *writer) checkVisible(t *testing.T) {
	t.Helper()
	w.mu.Lock()
	acked := maps.Clone(w.acked)
	w.mu.Unlock()
	if len(acked) == 0 {
		t.Fatal("the writer had no write acknowledged")
	}
	ids := slices.Sorted(maps.Keys(acked))
	for _, r := range w.replicas {
		eventually(t, 15*time.Second, 500*time.Millisecond, "every acknowledged write visible through "+r.name, func() (bool, string) {
			got, err := listDevices(r)
			if err != nil {
				return false, err.Error()
			}
			var missing []string
			for _, id := range ids {
				d, ok := got[id]
				if !ok {
					missing = append(missing, id+": absent")
					continue
				}
				if rev, _ := strconv.Atoi(d.GetLabels()["rev"]); rev < acked[id] {
					missing = append(missing, fmt.Sprintf("%s: rev %d, acknowledged %d", id, rev, acked[id]))
				}
			}
			return len(missing) == 0, fmt.Sprintf("%d of %d acknowledged writes not visible: %s", len(missing), len(ids),
				strings.Join(missing[:min(10, len(missing))], "; "))
		})
	}
}
