package server

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/medfleet/medfleet/agent"
	"github.com/medfleet/medfleet/coap"
	"github.com/medfleet/medfleet/firmware/manifest"
	"github.com/medfleet/medfleet/internal/telemetry"
	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// TestRolloutTrace: a rollout created in a traced call is one trace with
// the controller's offer and the device's side of the update: its block
// downloads and its firmware reports, which carry the trace context the
// desired state handed it (option 65020).
func TestRolloutTrace(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	serverTP := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0))))
	clientTP := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	sdk := &telemetry.SDK{Providers: telemetry.Providers{Tracer: serverTP, Meter: sdkmetric.NewMeterProvider(), Propagator: telemetry.Propagator()}}

	dir := t.TempDir()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	keys := filepath.Join(dir, "signing.pub")
	if err := os.WriteFile(keys, manifest.MarshalPublicKey(pub), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, filepath.Join(dir, "data"))
	cfg.Firmware.TrustedKeys = keys
	cfg.Rollouts.Tick = 50 * time.Millisecond
	cfg.Inventory.ReportInterval = time.Second
	ts := startServer(t, cfg, WithTelemetry(sdk))

	// One RFID reader (always idle), running 1.0.
	a, err := agent.New(agent.Config{Server: ts.srv.Addrs().CoAP.String(), Insecure: true, DeviceID: "reader-1",
		Profile: coap.ProfileRFIDReader, Model: "Impinj R700", Serial: "R1", Firmware: "1.0", Interval: time.Second,
		FirmwareUpdate: agent.FirmwareUpdate{TrustedKeys: manifest.MarshalPublicKey(pub)}}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() { stop(); <-done })

	conn, err := grpc.NewClient(ts.srv.Addrs().GRPC.String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithStatsHandler(otelgrpc.NewClientHandler(otelgrpc.WithTracerProvider(clientTP), otelgrpc.WithPropagators(telemetry.Propagator()))))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	img := bytes.Repeat([]byte("medfleet firmware 2.0\n"), 200) // 4,400 bytes: 5 blocks
	sum := sha256.Sum256(img)
	m := manifest.Manifest{Models: []string{"Impinj R700"}, Version: "2.0", SHA256: hex.EncodeToString(sum[:]), Size: uint64(len(img))}
	up, err := pb.NewFirmwareServiceClient(conn).UploadArtifact(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, req := range []*pb.UploadArtifactRequest{
		{Content: &pb.UploadArtifactRequest_Metadata{Metadata: &pb.ArtifactUpload{Version: "2.0", Models: m.Models, Signature: manifest.Sign(priv, m)}}},
		{Content: &pb.UploadArtifactRequest_Chunk{Chunk: img}},
	} {
		if err := up.Send(req); err != nil {
			t.Fatal(err)
		}
	}
	art, err := up.CloseAndRecv()
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "reader-1 registered", func() bool { _, err := ts.srv.Inventory().Get("reader-1"); return err == nil })

	cliCtx, cliSpan := clientTP.Tracer("test").Start(context.Background(), "medfleetctl rollout create")
	if _, err := pb.NewRolloutServiceClient(conn).CreateRollout(cliCtx, &pb.CreateRolloutRequest{RolloutId: "r1", Rollout: &pb.Rollout{
		Artifact: art.GetName(), Waves: []*pb.Wave{{CumulativePercent: 100}}}}); err != nil {
		t.Fatal(err)
	}
	cliSpan.End()
	waitFor(t, 30*time.Second, "reader-1 reported its update", func() bool {
		d, err := ts.srv.Inventory().Get("reader-1")
		return err == nil && d.GetStatus().GetFirmwareVersion() == "2.0" && d.GetStatus().GetFirmwareUpdateResult() == coap.FWResultSuccess
	})

	tid := cliSpan.SpanContext().TraceID()
	create := findSpan(t, rec, tid, "medfleet.v1.RolloutService/CreateRollout", trace.SpanKindServer)
	offer := findSpan(t, rec, tid, "rollout.offer", trace.SpanKindInternal)
	if !descends(rec, offer, create) {
		t.Errorf("rollout.offer is not under CreateRollout")
	}
	var blocks, reports int
	for _, s := range rec.Ended() {
		if s.SpanContext().TraceID() != tid || s.Parent().SpanID() != offer.SpanContext().SpanID() {
			continue
		}
		switch s.Name() {
		case "CoAP GET /fw/{sha256}":
			blocks++
		case "CoAP POST /dp":
			reports++
		}
	}
	if blocks < 5 || reports < 3 {
		t.Errorf("under rollout.offer: %d block downloads and %d firmware reports, want 5 and at least 3 (downloading, downloaded, updated); spans: %s",
			blocks, reports, spanNames(rec))
	}
}

func waitFor(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
