package inventory

import (
	"context"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/medfleet/medfleet/coap"
	"github.com/medfleet/medfleet/internal/etcdtest"
	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// follow runs inv.Follow until the test ends.
func follow(t *testing.T, inv *Inventory) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = inv.Follow(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

// eventually polls cond for up to 10 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
	}
}

func statusOf(t *testing.T, inv *Inventory, id string) *pb.DeviceStatus {
	t.Helper()
	d, err := inv.Get(id)
	if err != nil {
		t.Fatalf("Get(%s): %v", id, err)
	}
	return d.GetStatus()
}

func report(t *testing.T, inv *Inventory, id string, seq uint64, usage float64) *coap.Desired {
	t.Helper()
	res, err := inv.Report(context.Background(), id, &coap.Report{Seq: seq, Usage: f64(usage)})
	if err != nil {
		t.Fatalf("Report(%s, seq %d): %v", id, seq, err)
	}
	return res.Desired
}

func etcdStatus(t *testing.T, etcd *etcdtest.Etcd, id string) *pb.DeviceStatus {
	t.Helper()
	resp, err := etcd.Client.Get(context.Background(), statusKey(id))
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("etcd status of %s: %v, %d keys", id, err, len(resp.Kvs))
	}
	st := &pb.DeviceStatus{}
	if err := proto.Unmarshal(resp.Kvs[0].Value, st); err != nil {
		t.Fatal(err)
	}
	return st
}

// TestReplicasShareState runs two inventories on one etcd, as two
// replicas do, with a device that reports to one, then the other.
func TestReplicasShareState(t *testing.T) {
	ctx := context.Background()
	etcd := etcdtest.Start(t, "")
	clk := &clock{t: time.Now()}
	a, b := newTestInventory(t, etcd, clk), newTestInventory(t, etcd, clk)
	follow(t, a)
	follow(t, b)

	// Registry: created on one, changed on the other, seen by both.
	if _, err := a.Create(ctx, "pump-1", &pb.Device{Profile: "infusion-pump", Model: "m", RfidTag: "E2801160600002040000AA01"}, ""); err != nil {
		t.Fatal(err)
	}
	eventually(t, "B sees the device A created", func() bool { _, err := b.Get("pump-1"); return err == nil })
	if _, err := b.Update(ctx, "pump-1", &pb.Device{Labels: map[string]string{"ward": "icu"}}, []string{"labels"}, ""); err != nil {
		t.Fatal(err)
	}
	eventually(t, "A sees B's update", func() bool { d, _ := a.Get("pump-1"); return d.GetLabels()["ward"] == "icu" })
	da, _ := a.Get("pump-1")
	db, _ := b.Get("pump-1")
	if da.GetEtag() != db.GetEtag() {
		t.Errorf("etags differ: A %s, B %s", da.GetEtag(), db.GetEtag())
	}
	if _, err := b.Create(ctx, "pump-2", &pb.Device{Profile: "infusion-pump", Model: "m", RfidTag: "E2801160600002040000AA01"}, ""); err == nil {
		t.Error("B created a device with A's device's RFID tag: the tag index did not follow")
	}

	// Status: reports on A, stored by A's checkpoint, then on B.
	if _, err := a.Register(ctx, "pump-1", &coap.Registration{Profile: "infusion-pump", Model: "m"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	for seq := uint64(1); seq <= 5; seq++ {
		d := report(t, a, "pump-1", seq, float64(seq)*60)
		if d.Stored == nil || *d.Stored != 0 {
			t.Fatalf("report %d: stored = %v, want 0 before any checkpoint", seq, d.Stored)
		}
	}
	if err := a.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if d := report(t, a, "pump-1", 5, 300); *d.Stored != 5 {
		t.Errorf("after the checkpoint stored = %d, want 5", *d.Stored)
	}
	eventually(t, "B sees seq 5", func() bool { return statusOf(t, b, "pump-1").GetLastSeq() == 5 })
	// The device moves to B (A died, say): B knows its registration and
	// continues, counting nothing twice.
	if d := report(t, b, "pump-1", 5, 300); *d.Stored != 5 || d.Seq != 5 {
		t.Errorf("B's answer to a resent seq 5 = seq %d stored %d, want 5 and 5", d.Seq, *d.Stored)
	}
	report(t, b, "pump-1", 6, 360)
	if err := b.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "A sees seq 6", func() bool { return statusOf(t, a, "pump-1").GetLastSeq() == 6 })
	for name, inv := range map[string]*Inventory{"A": a, "B": b} {
		st := statusOf(t, inv, "pump-1")
		if st.GetReportsAccepted() != 6 || st.GetUsageSeconds() != 360 || st.GetReportsDuplicate() != 1 {
			t.Errorf("%s: accepted %d, duplicates %d, usage %v; want 6, 1, 360", name, st.GetReportsAccepted(), st.GetReportsDuplicate(), st.GetUsageSeconds())
		}
	}

	// A person marks the device on B while it reports to A: both changes
	// survive, whichever checkpoint comes last.
	report(t, a, "pump-1", 7, 420)
	if _, err := b.SetAvailability(ctx, "pump-1", pb.Availability_AVAILABILITY_IN_MAINTENANCE); err != nil {
		t.Fatal(err)
	}
	if err := a.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "etcd has seq 7 and in_maintenance", func() bool {
		_ = a.Checkpoint(ctx)
		st := etcdStatus(t, etcd, "pump-1")
		return st.GetLastSeq() == 7 && st.GetAvailability() == pb.Availability_AVAILABILITY_IN_MAINTENANCE
	})
	eventually(t, "B sees both", func() bool {
		st := statusOf(t, b, "pump-1")
		return st.GetLastSeq() == 7 && st.GetAvailability() == pb.Availability_AVAILABILITY_IN_MAINTENANCE
	})
}

// TestCheckpointNeverOverwritesNewer is a replica that has not heard of
// another's newer status (it does not follow etcd here): its checkpoint is
// refused, it takes etcd's status, and etcd keeps the newer one.
func TestCheckpointNeverOverwritesNewer(t *testing.T) {
	ctx := context.Background()
	etcd := etcdtest.Start(t, "")
	clk := &clock{t: time.Now()}
	a := newTestInventory(t, etcd, clk)
	if _, err := a.Create(ctx, "pump-1", &pb.Device{Profile: "infusion-pump", Model: "m"}, ""); err != nil {
		t.Fatal(err)
	}
	b := newTestInventory(t, etcd, clk) // loads pump-1
	for _, inv := range []*Inventory{a, b} {
		if _, err := inv.Register(ctx, "pump-1", &coap.Registration{}, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	report(t, a, "pump-1", 1, 60)
	report(t, b, "pump-1", 1, 60)
	report(t, b, "pump-1", 2, 120)
	if err := b.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if got := a.CheckpointStats().Conflicts; got != 1 {
		t.Errorf("A's conflicts = %d, want 1", got)
	}
	if st := etcdStatus(t, etcd, "pump-1"); st.GetLastSeq() != 2 || st.GetUsageSeconds() != 120 {
		t.Errorf("etcd after A's stale checkpoint: seq %d usage %v, want B's 2 and 120", st.GetLastSeq(), st.GetUsageSeconds())
	}
	if st := statusOf(t, a, "pump-1"); st.GetLastSeq() != 2 {
		t.Errorf("A after the refused checkpoint: seq %d, want etcd's 2", st.GetLastSeq())
	}
	if d := report(t, a, "pump-1", 2, 120); *d.Stored != 2 {
		t.Errorf("A's stored = %d, want 2", *d.Stored)
	}
}

// TestHeldReportsGoFirst is a device that moved from a replica that died
// with reports 3 and 4 unstored: the other replica, at seq 2, refuses
// report 5 while the device says it holds 3, and takes 3, 4, 5 in order.
func TestHeldReportsGoFirst(t *testing.T) {
	ctx := context.Background()
	etcd := etcdtest.Start(t, "")
	inv := newTestInventory(t, etcd, &clock{t: time.Now()})
	if _, err := inv.Register(ctx, "pump-1", &coap.Registration{Profile: "infusion-pump", Model: "m"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	report(t, inv, "pump-1", 1, 60)
	report(t, inv, "pump-1", 2, 120)
	res, err := inv.Report(ctx, "pump-1", &coap.Report{Seq: 5, Held: 3, Usage: f64(300)})
	if err != nil || !res.OutOfOrder || res.Desired.Seq != 2 {
		t.Fatalf("Report(5, held 3) = %+v, %v; want out of order with seq 2", res, err)
	}
	if res, err := inv.Report(ctx, "pump-1", &coap.Report{Seq: 5, Held: 5, Usage: f64(300)}); err != nil || res.OutOfOrder {
		// held 5: the device no longer has 3 and 4 (its queue dropped
		// them); a gap it cannot fill is accepted.
		t.Fatalf("Report(5, held 5) = %+v, %v; want accepted", res, err)
	}
	st := statusOf(t, inv, "pump-1")
	if st.GetLastSeq() != 5 || st.GetReportsAccepted() != 3 || st.GetUsageSeconds() != 300 {
		t.Errorf("status = seq %d, accepted %d, usage %v; want 5, 3, 300", st.GetLastSeq(), st.GetReportsAccepted(), st.GetUsageSeconds())
	}
	for seq := uint64(3); seq <= 4; seq++ {
		if res, err := inv.Report(ctx, "pump-1", &coap.Report{Seq: seq, Held: 3}); err != nil || !res.Duplicate {
			t.Errorf("Report(%d) after 5 = %+v, %v; want a duplicate", seq, res, err)
		}
	}
}
