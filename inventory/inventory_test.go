package inventory

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/medfleet/medfleet/coap"
	"github.com/medfleet/medfleet/internal/etcdtest"
	"github.com/medfleet/medfleet/internal/telemetry"
	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newTestInventory(t *testing.T, etcd *etcdtest.Etcd, clk *clock) *Inventory {
	t.Helper()
	cfg := DefaultConfig()
	inv, err := New(cfg, etcd.Client, discard(), clk.Now, telemetry.Noop())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := inv.Load(context.Background()); err != nil {
		t.Fatalf("Load: %v", err)
	}
	return inv
}

func f64(v float64) *float64 { return &v }

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

func TestRegistryLifecycle(t *testing.T) {
	etcd := etcdtest.Start(t, "")
	clk := &clock{t: time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)}
	inv := newTestInventory(t, etcd, clk)
	ctx := context.Background()

	in := &pb.Device{Profile: "infusion-pump", Model: "Alaris 8100", Manufacturer: "BD", Serial: "A1", Labels: map[string]string{"unit": "4-west"}}
	got, err := inv.Create(ctx, "pump-1", in, "req-1")
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if got.GetName() != "devices/pump-1" || got.GetEtag() == "" || got.GetCreateTime() == nil {
		t.Errorf("Create() = %v, want name devices/pump-1 with etag and create_time", got)
	}

	// The same request_id returns the same device instead of failing.
	again, err := inv.Create(ctx, "pump-1", in, "req-1")
	if err != nil {
		t.Fatalf("Create(retry): %v", err)
	}
	if diff := cmp.Diff(got, again, protocmp.Transform()); diff != "" {
		t.Errorf("Create(retry) differs (-first +retry):\n%s", diff)
	}
	if _, err := inv.Create(ctx, "pump-1", in, "req-2"); !errors.Is(err, ErrAlreadyExists) {
		t.Errorf("Create(new request, same id) = %v, want ErrAlreadyExists", err)
	}

	// Update with a stale etag fails; with the current one it succeeds.
	upd := &pb.Device{Model: "Alaris 8015", Labels: map[string]string{"unit": "5-east"}}
	if _, err := inv.Update(ctx, "pump-1", upd, []string{"model"}, "1"); !errors.Is(err, ErrConflict) {
		t.Errorf("Update(stale etag) = %v, want ErrConflict", err)
	}
	u, err := inv.Update(ctx, "pump-1", upd, []string{"model", "labels"}, got.GetEtag())
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	if u.GetModel() != "Alaris 8015" || u.GetLabels()["unit"] != "5-east" || u.GetSerial() != "A1" || u.GetEtag() == got.GetEtag() {
		t.Errorf("Update() = %v, want model and labels changed, serial kept, new etag", u)
	}
	if _, err := inv.Update(ctx, "pump-1", upd, []string{"status"}, ""); !isField(err, "update_mask") {
		t.Errorf("Update(mask status) = %v, want a field error on update_mask", err)
	}

	// Decommissioned devices leave the default list.
	if _, err := inv.Create(ctx, "cpap-1", &pb.Device{Profile: "cpap", Model: "AirSense 11"}, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := inv.Decommission(ctx, "cpap-1", ""); err != nil {
		t.Fatalf("Decommission: %v", err)
	}
	if _, err := inv.Decommission(ctx, "cpap-1", ""); !errors.Is(err, ErrDecommissioned) {
		t.Errorf("Decommission(twice) = %v, want ErrDecommissioned", err)
	}
	list, err := inv.List(ListRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Devices) != 1 || list.TotalSize != 1 {
		t.Errorf("List() = %d devices (total %d), want 1 (decommissioned hidden)", len(list.Devices), list.TotalSize)
	}
	list, _ = inv.List(ListRequest{ShowDecommissioned: true})
	if len(list.Devices) != 2 {
		t.Errorf("List(show_decommissioned) = %d devices, want 2", len(list.Devices))
	}

	// A restart sees the same registry.
	inv2 := newTestInventory(t, etcd, clk)
	reloaded, err := inv2.Get("pump-1")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(u, reloaded, protocmp.Transform()); diff != "" {
		t.Errorf("Get after reload differs (-before +after):\n%s", diff)
	}
}

func isField(err error, field string) bool {
	var fe *FieldError
	return errors.As(err, &fe) && fe.Field == field
}

func TestCreateValidation(t *testing.T) {
	etcd := etcdtest.Start(t, "")
	inv := newTestInventory(t, etcd, &clock{t: time.Now()})
	tests := []struct {
		name      string
		id        string
		device    *pb.Device
		requestID string
		wantField string
	}{
		{name: "no id", id: "", device: &pb.Device{Profile: "cpap", Model: "m"}, wantField: "device_id"},
		{name: "bad id", id: "pump 1", device: &pb.Device{Profile: "cpap", Model: "m"}, wantField: "device_id"},
		{name: "no device", id: "d1", wantField: "device"},
		{name: "no profile", id: "d1", device: &pb.Device{Model: "m"}, wantField: "device.profile"},
		{name: "bad profile", id: "d1", device: &pb.Device{Profile: "CPAP", Model: "m"}, wantField: "device.profile"},
		{name: "no model", id: "d1", device: &pb.Device{Profile: "cpap"}, wantField: "device.model"},
		{name: "control char", id: "d1", device: &pb.Device{Profile: "cpap", Model: "m", Serial: "a\x00b"}, wantField: "device.serial"},
		{name: "bad label key", id: "d1", device: &pb.Device{Profile: "cpap", Model: "m", Labels: map[string]string{"Unit": "x"}}, wantField: "device.labels"},
		{name: "long request id", id: "d1", device: &pb.Device{Profile: "cpap", Model: "m"}, requestID: fmt.Sprintf("%065d", 0), wantField: "request_id"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := inv.Create(context.Background(), tc.id, tc.device, tc.requestID)
			if !isField(err, tc.wantField) {
				t.Errorf("Create(%q) = %v, want a field error on %s", tc.id, err, tc.wantField)
			}
		})
	}
	if n := inv.Len(); n != 0 {
		t.Errorf("Len() = %d after invalid creates, want 0", n)
	}
}

func TestReportsAndCheckpoints(t *testing.T) {
	etcd := etcdtest.Start(t, "")
	clk := &clock{t: time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)}
	inv := newTestInventory(t, etcd, clk)
	ctx := context.Background()

	if _, err := inv.Report(ctx, "pump-1", &coap.Report{Seq: 1}); !errors.Is(err, ErrNotRegistered) {
		t.Errorf("Report(unknown) = %v, want ErrNotRegistered", err)
	}
	reg := &coap.Registration{Profile: "infusion-pump", Model: "Alaris 8100", Serial: "A1", Firmware: "1.2.0"}
	d, err := inv.Register(ctx, "pump-1", reg, 60*time.Second)
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	if d.Seq != 0 || d.Interval != 10 {
		t.Errorf("Register() desired = %+v, want seq 0, interval 10", d)
	}

	reports := []struct {
		seq   uint64
		usage float64
		dup   bool
	}{
		{seq: 1, usage: 100},
		{seq: 2, usage: 160},
		{seq: 2, usage: 160, dup: true}, // retransmitted
		{seq: 1, usage: 100, dup: true}, // replayed
		{seq: 4, usage: 220},            // 3 lost: cumulative counters lose nothing
		{seq: 5, usage: 30},             // counter reset
	}
	for _, r := range reports {
		clk.Add(time.Second)
		res, err := inv.Report(ctx, "pump-1", &coap.Report{Seq: r.seq, Usage: f64(r.usage), State: coap.StateInUse})
		if err != nil {
			t.Fatalf("Report(seq %d): %v", r.seq, err)
		}
		if res.Duplicate != r.dup {
			t.Errorf("Report(seq %d).Duplicate = %v, want %v", r.seq, res.Duplicate, r.dup)
		}
	}
	got, _ := inv.Get("pump-1")
	st := got.GetStatus()
	if st.GetUsageSeconds() != 250 || st.GetUsageResets() != 1 || st.GetLastSeq() != 5 || st.GetReportsDuplicate() != 2 || st.GetReportsAccepted() != 4 {
		t.Errorf("status = usage %v, resets %d, last_seq %d, dup %d, accepted %d; want 250, 1, 5, 2, 4",
			st.GetUsageSeconds(), st.GetUsageResets(), st.GetLastSeq(), st.GetReportsDuplicate(), st.GetReportsAccepted())
	}
	if st.GetClinicalState() != pb.ClinicalState_CLINICAL_STATE_IN_USE || st.GetConnectivity() != pb.Connectivity_CONNECTIVITY_ONLINE || st.GetFirmwareVersion() != "1.2.0" {
		t.Errorf("status = %v, want in use, online, fw 1.2.0", st)
	}

	if err := inv.Checkpoint(ctx); err != nil {
		t.Fatalf("Checkpoint: %v", err)
	}
	if s := inv.CheckpointStats(); s.Txns != 1 || s.Statuses != 1 {
		t.Errorf("CheckpointStats() = %+v, want 1 txn of 1 status", s)
	}
	// Nothing changed: nothing written.
	if err := inv.Checkpoint(ctx); err != nil || inv.CheckpointStats().Txns != 1 {
		t.Errorf("second Checkpoint wrote again: %+v, %v", inv.CheckpointStats(), err)
	}

	// A restarted inventory has the checkpointed status and keeps dropping replays.
	inv2 := newTestInventory(t, etcd, clk)
	res, err := inv2.Report(ctx, "pump-1", &coap.Report{Seq: 5, Usage: f64(30)})
	if err != nil || !res.Duplicate || res.Desired.Seq != 5 {
		t.Errorf("Report(seq 5) after restart = %+v, %v; want a duplicate acknowledged with seq 5", res, err)
	}
	got2, _ := inv2.Get("pump-1")
	if got2.GetStatus().GetUsageSeconds() != 250 {
		t.Errorf("usage after restart = %v, want 250", got2.GetStatus().GetUsageSeconds())
	}

	// Liveness: lifetime 60 s + 15 s grace.
	clk.Add(74 * time.Second)
	if g, _ := inv2.Get("pump-1"); g.GetStatus().GetConnectivity() != pb.Connectivity_CONNECTIVITY_ONLINE {
		t.Errorf("connectivity 74 s after last contact = %v, want online", g.GetStatus().GetConnectivity())
	}
	clk.Add(2 * time.Second)
	if g, _ := inv2.Get("pump-1"); g.GetStatus().GetConnectivity() != pb.Connectivity_CONNECTIVITY_OFFLINE {
		t.Errorf("connectivity 76 s after last contact = %v, want offline", g.GetStatus().GetConnectivity())
	}
	if _, err := inv2.Report(ctx, "pump-1", &coap.Report{Seq: 6}); !errors.Is(err, ErrNotRegistered) {
		t.Errorf("Report after expiry = %v, want ErrNotRegistered", err)
	}
	if _, err := inv2.UpdateRegistration(ctx, "pump-1", &coap.Registration{}); !errors.Is(err, ErrNotRegistered) {
		t.Errorf("UpdateRegistration after expiry = %v, want ErrNotRegistered", err)
	}

	// Re-registration with a new model updates the registry.
	if _, err := inv2.Register(ctx, "pump-1", &coap.Registration{Profile: "infusion-pump", Model: "Alaris 8015"}, time.Minute); err != nil {
		t.Fatal(err)
	}
	if g, _ := inv2.Get("pump-1"); g.GetModel() != "Alaris 8015" || g.GetStatus().GetUsageSeconds() != 250 {
		t.Errorf("after re-registration: model %q usage %v, want Alaris 8015 and 250", g.GetModel(), g.GetStatus().GetUsageSeconds())
	}
	if err := inv2.Deregister(ctx, "pump-1"); err != nil {
		t.Fatal(err)
	}
	if g, _ := inv2.Get("pump-1"); g.GetStatus().GetConnectivity() != pb.Connectivity_CONNECTIVITY_OFFLINE {
		t.Errorf("connectivity after deregistration = %v, want offline", g.GetStatus().GetConnectivity())
	}

	// Decommissioned devices are refused.
	if _, err := inv2.Decommission(ctx, "pump-1", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := inv2.Register(ctx, "pump-1", reg, time.Minute); !errors.Is(err, ErrDecommissioned) {
		t.Errorf("Register(decommissioned) = %v, want ErrDecommissioned", err)
	}
}

func TestCheckpointBatches(t *testing.T) {
	etcd := etcdtest.Start(t, "")
	clk := &clock{t: time.Now()}
	inv := newTestInventory(t, etcd, clk)
	ctx := context.Background()
	const n = 300
	for i := range n {
		id := fmt.Sprintf("dev-%04d", i)
		if _, err := inv.Register(ctx, id, &coap.Registration{Profile: "cpap", Model: "AirSense 11"}, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if err := inv.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	before := inv.CheckpointStats()
	// Many reports from every device between two checkpoints: one status
	// write per device, in ceil(300/128) = 3 transactions.
	for seq := uint64(1); seq <= 5; seq++ {
		for i := range n {
			if _, err := inv.Report(ctx, fmt.Sprintf("dev-%04d", i), &coap.Report{Seq: seq, Usage: f64(float64(seq) * 10)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := inv.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	after := inv.CheckpointStats()
	if txns, statuses := after.Txns-before.Txns, after.Statuses-before.Statuses; txns != 3 || statuses != n {
		t.Errorf("checkpoint of %d devices x 5 reports = %d txns, %d statuses; want 3, %d", n, txns, statuses, n)
	}
}

func TestListPagingAndFilter(t *testing.T) {
	etcd := etcdtest.Start(t, "")
	clk := &clock{t: time.Now()}
	inv := newTestInventory(t, etcd, clk)
	ctx := context.Background()
	for i := range 25 {
		profile := []string{"infusion-pump", "cpap", "rfid-reader"}[i%3]
		id := fmt.Sprintf("d-%02d", i)
		if _, err := inv.Create(ctx, id, &pb.Device{Profile: profile, Model: "m" + profile, Labels: map[string]string{"unit": fmt.Sprintf("u%d", i%2)}}, ""); err != nil {
			t.Fatal(err)
		}
		if i < 5 {
			if _, err := inv.Register(ctx, id, &coap.Registration{}, time.Minute); err != nil {
				t.Fatal(err)
			}
		}
	}
	tests := []struct {
		filter string
		want   int
	}{
		{filter: "", want: 25},
		{filter: `profile = "cpap"`, want: 8},
		{filter: `profile != "cpap"`, want: 17},
		{filter: `connectivity = ONLINE`, want: 5},
		{filter: `connectivity = OFFLINE AND profile = "infusion-pump"`, want: 7},
		{filter: `labels.unit = "u1" AND profile = "rfid-reader"`, want: 4},
		{filter: `model = "mcpap"`, want: 8},
	}
	for _, tc := range tests {
		t.Run(tc.filter, func(t *testing.T) {
			var ids []string
			token := ""
			for pages := 0; ; pages++ {
				if pages > 30 {
					t.Fatal("paging does not end")
				}
				res, err := inv.List(ListRequest{PageSize: 3, PageToken: token, Filter: tc.filter})
				if err != nil {
					t.Fatalf("List(%q): %v", tc.filter, err)
				}
				if res.TotalSize != tc.want {
					t.Errorf("List(%q).TotalSize = %d, want %d", tc.filter, res.TotalSize, tc.want)
				}
				for _, d := range res.Devices {
					ids = append(ids, d.GetName())
				}
				if token = res.NextPageToken; token == "" {
					break
				}
			}
			if len(ids) != tc.want {
				t.Errorf("List(%q) over all pages = %d devices, want %d", tc.filter, len(ids), tc.want)
			}
			for i := 1; i < len(ids); i++ {
				if ids[i-1] >= ids[i] {
					t.Errorf("List(%q) order: %s before %s", tc.filter, ids[i-1], ids[i])
				}
			}
		})
	}

	res, _ := inv.List(ListRequest{PageSize: 2})
	if _, err := inv.List(ListRequest{PageSize: 2, PageToken: res.NextPageToken, Filter: `profile = "cpap"`}); !isField(err, "page_token") {
		t.Errorf("List(token with another filter) = %v, want a field error on page_token", err)
	}
	if _, err := inv.List(ListRequest{PageToken: "garbage"}); !isField(err, "page_token") {
		t.Errorf("List(garbage token) = %v, want a field error on page_token", err)
	}
	if _, err := inv.List(ListRequest{PageSize: -1}); !isField(err, "page_size") {
		t.Errorf("List(page_size -1) = %v, want a field error on page_size", err)
	}
	if res, _ := inv.List(ListRequest{PageSize: 5000}); len(res.Devices) != 25 {
		t.Errorf("List(page_size 5000) = %d devices, want all 25 (clamped to 1000)", len(res.Devices))
	}
}

func TestRegisterDeviceCreatedElsewhere(t *testing.T) {
	etcd := etcdtest.Start(t, "")
	inv := newTestInventory(t, etcd, &clock{t: time.Now()})
	// Another replica creates the device after this inventory loaded, and
	// this one does not follow etcd: Register finds it in etcd.
	other := newTestInventory(t, etcd, &clock{t: time.Now()})
	if _, err := other.Create(context.Background(), "pump-9", &pb.Device{Profile: "infusion-pump", Model: "m", Serial: "S9"}, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := inv.Register(context.Background(), "pump-9", &coap.Registration{Profile: "infusion-pump", Model: "m"}, time.Minute); err != nil {
		t.Fatalf("Register(device created by another replica) = %v", err)
	}
	if d, err := inv.Get("pump-9"); err != nil || d.GetSerial() != "S9" {
		t.Errorf("Get after Register = %v, %v; want the other replica's device with serial S9", d, err)
	}
}
