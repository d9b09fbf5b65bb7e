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

	"github.com/medfleet/medfleet/agent"
	"github.com/medfleet/medfleet/coap"
	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// BenchmarkSightingToWatchUnderLoad measures, through the whole path, the
// time from a reader's report that moves a tagged pump (sent over CoAP) to
// the WatchLocations event that says so, while a simulated fleet of 10,000
// devices reports once a second to the same server in the same process.
// One probe reader moves the pump between two antennas every 250 ms, for
// b.N moves (dwell 0: every report is a move).
//
//	go test ./server -run XXX -bench SightingToWatchUnderLoad -benchtime 120x
func BenchmarkSightingToWatchUnderLoad(b *testing.B) {
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
	const tag = "3034ED000000000000000001"
	if _, err := ts.srv.Inventory().Create(ctx, "probe-pump", &pb.Device{Profile: "infusion-pump", Model: "P", RfidTag: tag}, ""); err != nil {
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
	defer func() { stopSim(); <-simDone }()
	waitFor(b, 3*time.Minute, "the fleet registered", func() bool { return ts.srv.GatewayStats().Registrations >= 10_000 })
	time.Sleep(5 * time.Second) // steady reporting

	watch, err := pb.NewLocationServiceClient(ts.conn).WatchLocations(ctx, &pb.WatchLocationsRequest{})
	if err != nil {
		b.Fatal(err)
	}
	var (
		mu   sync.Mutex
		sent []time.Time // when the k-th move was sent
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
			now := time.Now()
			mu.Lock()
			if k := len(lat); k < len(sent) {
				lat = append(lat, now.Sub(sent[k]))
			}
			mu.Unlock()
		}
	}()

	cc, err := udp.Dial(ts.srv.Addrs().CoAP.String())
	if err != nil {
		b.Fatal(err)
	}
	defer cc.Close()
	reg, _ := (&coap.Registration{Profile: coap.ProfileRFIDReader, Model: "R"}).Encode(coap.FormatCBOR)
	if code := postQuery(b, cc, "/rd", coap.FormatCBOR, reg, "ep=sim-rfid-0013"); code != codes.Created {
		b.Fatalf("probe reader registration: %v", code)
	}
	b.ResetTimer()
	for i := range b.N {
		antenna := "1" // 4w-clean
		if i%2 == 1 {
			antenna = "2" // 4w-soiled
		}
		r := &coap.Report{Seq: uint64(i + 1), Sightings: []coap.Sighting{{Antenna: antenna, EPC: tag, RSSI: -45}}}
		body, err := coap.EncodePack(coap.FormatSenMLCBOR, r.Pack())
		if err != nil {
			b.Fatal(err)
		}
		mu.Lock()
		sent = append(sent, time.Now())
		mu.Unlock()
		if code := postQuery(b, cc, "/dp", coap.FormatSenMLCBOR, body, "ep=sim-rfid-0013"); code != codes.Changed {
			b.Fatalf("probe report: %v", code)
		}
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
