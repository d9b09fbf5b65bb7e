package fault

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// TestEtcdQuorumLost kills two of the three etcd members for about 12 s:
// no write can be stored. Both replicas must notice and say so (/healthz
// 503 "degraded", gRPC health NOT_SERVING for writes), refuse writes at
// once with Unavailable, answer reads from memory marked stale, and go on
// accepting reports, which the devices keep because they are not stored.
// When the members return, everything must recover by itself, and no
// report may be lost or counted twice.
func TestEtcdQuorumLost(t *testing.T) {
	s := startSystem(t, options{seed: 5})
	ctx := contextFor(t, 2*time.Minute)
	load(t, 2*time.Second, "all well")

	before := acceptedReports(s.replicas)
	s.etcd.kill(0)
	s.etcd.kill(1)
	killed := time.Now()
	t.Logf("killed %s and %s: no quorum", s.etcd.members[0].name, s.etcd.members[1].name)
	for _, r := range s.replicas {
		eventually(t, 15*time.Second, 100*time.Millisecond, r.name+" says it is degraded", func() (bool, string) {
			code, body, err := r.healthz()
			return code == 503 && strings.Contains(body, "writes refused"), fmt.Sprintf("%d %q %v", code, body, err)
		})
	}
	s.figures.add("both replicas said degraded %v after the quorum was lost", time.Since(killed).Round(10*time.Millisecond))

	r := s.replicas[0]
	began := time.Now()
	_, err := r.devices().CreateDevice(ctx, &pb.CreateDeviceRequest{DeviceId: "fault-no-quorum",
		Device: &pb.Device{Profile: "infusion-pump", Model: "Fault Writer"}})
	refused := time.Since(began)
	if status.Code(err) != codes.Unavailable || refused > time.Second {
		t.Errorf("CreateDevice without quorum = %v after %v, want Unavailable at once", err, refused)
	}
	s.figures.add("a write was refused with %v in %v", status.Code(err), refused.Round(time.Millisecond))

	health := healthpb.NewHealthClient(r.conn)
	for service, want := range map[string]healthpb.HealthCheckResponse_ServingStatus{
		"":                   healthpb.HealthCheckResponse_SERVING,
		"medfleet.v1.Writes": healthpb.HealthCheckResponse_NOT_SERVING,
	} {
		resp, err := health.Check(ctx, &healthpb.HealthCheckRequest{Service: service})
		if err != nil || resp.GetStatus() != want {
			t.Errorf("health of %q without quorum = %v, %v; want %v", service, resp.GetStatus(), err, want)
		}
	}

	var md metadata.MD
	list, err := r.devices().ListDevices(ctx, &pb.ListDevicesRequest{PageSize: 10}, grpc.Header(&md))
	if err != nil || len(list.GetDevices()) == 0 || len(md.Get("medfleet-stale-since")) == 0 {
		t.Errorf("ListDevices without quorum = %d devices, %v, header %v; want devices from memory marked stale",
			len(list.GetDevices()), err, md)
	}

	load(t, 12*time.Second-time.Since(killed), "no etcd quorum")
	during := acceptedReports(s.replicas) - before
	s.figures.add("reports accepted in memory without quorum: %.0f", during)
	// Reports do not touch etcd: the devices report at their usual rate.
	if during < fleetSize*10/2 {
		t.Errorf("%.0f reports accepted in 12 s without an etcd quorum, want at least %d", during, fleetSize*10/2)
	}

	back := time.Now()
	s.etcd.restart(0)
	s.etcd.restart(1)
	for _, r := range s.replicas {
		eventually(t, 15*time.Second, 100*time.Millisecond, r.name+" accepts writes again", func() (bool, string) {
			code, body, err := r.healthz()
			return code == 200 && strings.Contains(body, "writes accepted"), fmt.Sprintf("%d %q %v", code, body, err)
		})
	}
	s.figures.add("both replicas accepted writes again %v after the members were started again", time.Since(back).Round(10*time.Millisecond))
	if _, err := r.devices().CreateDevice(ctx, &pb.CreateDeviceRequest{DeviceId: "fault-quorum-back",
		Device: &pb.Device{Profile: "infusion-pump", Model: "Fault Writer"}}); err != nil {
		t.Errorf("CreateDevice after recovery = %v", err)
	}
	s.checkGroundTruth()
}
