package server

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/udp"
	udpclient "github.com/plgd-dev/go-coap/v3/udp/client"
	"google.golang.org/grpc"
	grpccodes "google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/medfleet/medfleet/agent"
	"github.com/medfleet/medfleet/coap"
	"github.com/medfleet/medfleet/inventory/facility"
	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// BenchmarkSightingToWatchUnderLoad measures, through the whole path, the
// time from a reader's report that moves a tagged pump (sent over CoAP) to
// the WatchLocations event that says so, while 10,000 devices report once
// a second to the same server. One probe reader moves the pump between two
// antennas every 250 ms, for b.N moves (dwell 0: every report is a move).
//
// By default the server and a simulated fleet (agent.Simulator) run in this
// process:
//
//	go test ./server -run XXX -bench SightingToWatchUnderLoad -benchtime 120x
//
// With MEDFLEET_PROBE_GRPC and MEDFLEET_PROBE_COAP it probes a medfleetd
// of its own process instead (insecure gRPC and CoAP, the sample facility,
// location.dwell 0), which another process loads: scripts/sighting-latency.sh.
func BenchmarkSightingToWatchUnderLoad(b *testing.B) {
	ctx := context.Background()
	const tag = "3034ED000000000000000001"
	probe := &pb.Device{Profile: "infusion-pump", Model: "P", RfidTag: tag}
	var (
		conn     *grpc.ClientConn
		coapAddr string
	)
	if addr := os.Getenv("MEDFLEET_PROBE_GRPC"); addr != "" {
		coapAddr = os.Getenv("MEDFLEET_PROBE_COAP")
		var err error
		if conn, err = grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials())); err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		_, err = pb.NewDeviceServiceClient(conn).CreateDevice(ctx, &pb.CreateDeviceRequest{DeviceId: "probe-pump", Device: probe})
		if err != nil && status.Code(err) != grpccodes.AlreadyExists {
			b.Fatal(err)
		}
	} else {
		ts := inProcessLoad(b, probe)
		conn, coapAddr = ts.conn, ts.srv.Addrs().CoAP.String()
	}

	watch, err := pb.NewLocationServiceClient(conn).WatchLocations(ctx, &pb.WatchLocationsRequest{})
	if err != nil {
		b.Fatal(err)
	}
	// The probe reader's antennas 1 and 2 watch two zones of 4 West.
	doc, err := os.ReadFile("../examples/facility/hospital.yaml")
	if err != nil {
		b.Fatal(err)
	}
	fac, err := facility.Parse(doc)
	if err != nil {
		b.Fatal(err)
	}
	zone := map[string]string{}
	for _, a := range []string{"1", "2"} {
		if zone[a], _ = fac.ReaderZone("sim-rfid-0013", a); zone[a] == "" {
			b.Fatalf("sim-rfid-0013 antenna %s has no zone", a)
		}
	}
	type move struct {
		at   time.Time
		zone string
	}
	var (
		mu   sync.Mutex
		sent []move // the moves sent, in order
		next int    // the first move without its event
		lat  []time.Duration
	)
	got := make(chan struct{})
	go func() {
		defer close(got)
		for len(lat) < b.N {
			ev, err := watch.Recv()
			if err != nil {
				return
			}
			if ev.GetKind() != pb.LocationEvent_KIND_MOVED || ev.GetLocation().GetDevice() != "devices/probe-pump" {
				continue
			}
			now, z := time.Now(), ev.GetLocation().GetPlace().GetZone()
			mu.Lock()
			for k := next; k < len(sent); k++ { // a lost event skips its move
				if sent[k].zone == z {
					if k != next {
						b.Logf("moves %d to %d had no event", next, k-1)
					}
					lat, next = append(lat, now.Sub(sent[k].at)), k+1
					break
				}
			}
			if len(sent) > 0 && (next == 0 || sent[next-1].zone != z) {
				b.Logf("event to %s at %v matches no move", z, ev.GetLocation().GetSinceTime().AsTime())
			}
			mu.Unlock()
		}
	}()

	cc, err := udp.Dial(coapAddr)
	if err != nil {
		b.Fatal(err)
	}
	defer cc.Close()
	reg, _ := (&coap.Registration{Profile: coap.ProfileRFIDReader, Model: "R"}).Encode(coap.FormatCBOR)
	if code := postQuery(b, cc, "/rd", coap.FormatCBOR, reg, "ep=sim-rfid-0013"); code != codes.Created {
		b.Fatalf("probe reader registration: %v", code)
	}
	sight := func(seq uint64, antenna string) {
		r := &coap.Report{Seq: seq, Sightings: []coap.Sighting{{Antenna: antenna, EPC: tag, RSSI: -45}}}
		body, err := coap.EncodePack(coap.FormatSenMLCBOR, r.Pack())
		if err != nil {
			b.Fatal(err)
		}
		if code := postQuery(b, cc, "/dp", coap.FormatSenMLCBOR, body, "ep=sim-rfid-0013"); code != codes.Changed {
			b.Fatalf("probe report: %v", code)
		}
	}
	// Sequence numbers continue across the runs of this function (b.N = 1
	// first) against one server: a repeated one would be a duplicate.
	seq := uint64(time.Now().UnixMicro())
	// Place the pump at antenna 2 first: every timed report is then a move.
	sight(seq, "2")
	time.Sleep(time.Second)
	b.ResetTimer()
	for i := range b.N {
		antenna := "1"
		if i%2 == 1 {
			antenna = "2"
		}
		mu.Lock()
		sent = append(sent, move{time.Now(), zone[antenna]})
		mu.Unlock()
		sight(seq+uint64(i)+1, antenna)
		time.Sleep(250 * time.Millisecond)
	}
	select {
	case <-got:
	case <-time.After(10 * time.Second):
	}
	b.StopTimer()
	mu.Lock()
	defer mu.Unlock()
	if len(lat) == 0 {
		b.Fatal("no move events")
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(len(lat)), "moves")
}

// inProcessLoad starts a server with the sample facility, dwell 0, the
// probe pump, and 10,000 simulated devices reporting once a second, all in
// this process, and waits until they report steadily.
func inProcessLoad(b *testing.B, probe *pb.Device) *testServer {
	cfg := testConfig(b, b.TempDir())
	cfg.Inventory.ReportInterval = time.Second
	cfg.Location.Dwell = 0
	ts := startServer(b, cfg)
	ctx := context.Background()
	doc, err := os.ReadFile("../examples/facility/hospital.yaml")
	if err != nil {
		b.Fatal(err)
	}
	if err := ts.srv.ApplyFacility(ctx, doc); err != nil {
		b.Fatal(err)
	}
	if _, err := ts.srv.Inventory().Create(ctx, "probe-pump", probe, ""); err != nil {
		b.Fatal(err)
	}
	// The load: 10,000 devices, no facility of their own (prefix "load").
	sim, err := agent.NewSimulator(agent.SimConfig{Server: ts.srv.Addrs().CoAP.String(), Insecure: true, Devices: 10_000,
		IDPrefix: "load", Interval: time.Second, Lifetime: time.Minute, TimeScale: 1, Seed: 5}, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	simCtx, stopSim := context.WithCancel(ctx)
	simDone := make(chan error, 1)
	go func() { simDone <- sim.Run(simCtx) }()
	b.Cleanup(func() { stopSim(); <-simDone })
	waitFor(b, 3*time.Minute, "the fleet registered", func() bool { return ts.srv.GatewayStats().Registrations >= 10_000 })
	time.Sleep(5 * time.Second) // steady reporting
	return ts
}

func postQuery(tb testing.TB, cc *udpclient.Conn, path string, cf message.MediaType, body []byte, q string) codes.Code {
	tb.Helper()
	var err error
	for range 3 { // an overloaded server may miss a request and its retransmissions
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		var resp *pool.Message
		resp, err = cc.Post(ctx, path, cf, bytes.NewReader(body), message.Option{ID: message.URIQuery, Value: []byte(q)})
		cancel()
		if err == nil {
			return resp.Code()
		}
	}
	tb.Fatalf("POST %s: %v", path, err)
	return 0
}
