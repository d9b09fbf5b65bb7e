package inventory

import (
	"context"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"

	"github.com/medfleet/medfleet/coap"
	"github.com/medfleet/medfleet/internal/etcdtest"
	"github.com/medfleet/medfleet/internal/telemetry"
	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// BenchmarkReport is the inventory's share of one report: the device's lock,
// the usage fold, the status update and marking it dirty, over a fleet of
// 10,000 devices.
func BenchmarkReport(b *testing.B) {
	etcd := etcdtest.Start(b, "")
	inv, err := New(DefaultConfig(), etcd.Client, discard(), time.Now, telemetry.Noop())
	if err != nil {
		b.Fatal(err)
	}
	const fleet = 10000
	ids := make([]string, fleet)
	for i := range ids {
		ids[i] = fmt.Sprintf("pump-%05d", i)
		if _, err := inv.Register(context.Background(), ids[i], &coap.Registration{Profile: "infusion-pump", Model: "Alaris 8100"}, time.Hour); err != nil {
			b.Fatal(err)
		}
	}
	battery := 80.0
	ctx := context.Background()
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		usage := float64(n)
		seq := uint64(n/fleet + 1)
		if _, err := inv.Report(ctx, ids[n%fleet], &coap.Report{Seq: seq, Usage: &usage, State: coap.StateInUse, Battery: &battery}); err != nil {
			b.Fatal(err)
		}
		n++
	}
}

// fleetOf writes n devices (registry and status) straight to etcd, in
// transactions of 128 keys, as a restarted medfleetd would find them.
func fleetOf(b *testing.B, etcd *etcdtest.Etcd, n int) {
	b.Helper()
	st, _ := proto.Marshal(&pb.DeviceStatus{UsageSeconds: 3600, LastSeq: 42, FirmwareVersion: "12.1.0", LifetimeSeconds: 300})
	var ops []clientv3.Op
	flush := func() {
		if _, err := etcd.Client.Txn(context.Background()).Then(ops...).Commit(); err != nil {
			b.Fatal(err)
		}
		ops = ops[:0]
	}
	for i := range n {
		id := fmt.Sprintf("pump-%06d", i)
		d, _ := proto.Marshal(&pb.Device{Profile: []string{"infusion-pump", "cpap", "rfid-reader"}[i%3], Model: "Alaris 8100", Serial: id, Labels: map[string]string{"unit": fmt.Sprintf("u%d", i%40)}})
		ops = append(ops, clientv3.OpPut(deviceKey(id), string(d)), clientv3.OpPut(statusKey(id), string(st)))
		if len(ops) >= 128 {
			flush()
		}
	}
	if len(ops) > 0 {
		flush()
	}
}

// BenchmarkLoad100k is the inventory's share of a restart with 100,000
// devices: reading both prefixes from etcd into memory.
func BenchmarkLoad100k(b *testing.B) {
	etcd := etcdtest.Start(b, "")
	fleetOf(b, etcd, 100000)
	b.ResetTimer()
	for b.Loop() {
		inv, err := New(DefaultConfig(), etcd.Client, discard(), time.Now, telemetry.Noop())
		if err != nil {
			b.Fatal(err)
		}
		if err := inv.Load(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkList100k is one ListDevices page of 100 over 100,000 devices,
// without a filter and with one.
func BenchmarkList100k(b *testing.B) {
	etcd := etcdtest.Start(b, "")
	fleetOf(b, etcd, 100000)
	inv, err := New(DefaultConfig(), etcd.Client, discard(), time.Now, telemetry.Noop())
	if err != nil {
		b.Fatal(err)
	}
	if err := inv.Load(context.Background()); err != nil {
		b.Fatal(err)
	}
	for _, filter := range []string{"", `profile = "cpap" AND labels.unit = "u7"`} {
		b.Run(fmt.Sprintf("filter=%q", filter), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := inv.List(ListRequest{PageSize: 100, Filter: filter}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
