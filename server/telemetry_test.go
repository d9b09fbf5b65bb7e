package server

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/medfleet/medfleet/coap"
	"github.com/medfleet/medfleet/internal/telemetry"
	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// TestTraces checks that a traced API call and a traced device report each
// make one connected trace through the server: CLI -> gRPC -> etcd, and
// device -> CoAP gateway -> checkpoint (the batch commit).
func TestTraces(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	// The server samples no root trace (ratio 0), so everything recorded
	// below was sampled by its caller: parent-based sampling at work.
	serverTP := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0))))
	clientTP := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	sdk := &telemetry.SDK{Providers: telemetry.Providers{Tracer: serverTP, Meter: sdkmetric.NewMeterProvider(), Propagator: telemetry.Propagator()}}
	cfg := testConfig(t, t.TempDir())
	ts := startServer(t, cfg, WithTelemetry(sdk))
	ctx := context.Background()

	// A CLI call: the client's root span, its gRPC client span, the server's
	// span and the etcd transaction, in one trace.
	conn, err := grpc.NewClient(ts.srv.Addrs().GRPC.String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithStatsHandler(otelgrpc.NewClientHandler(otelgrpc.WithTracerProvider(clientTP), otelgrpc.WithPropagators(telemetry.Propagator()))))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cliCtx, cliSpan := clientTP.Tracer("test").Start(ctx, "medfleetctl device create")
	if _, err := pb.NewDeviceServiceClient(conn).CreateDevice(cliCtx, &pb.CreateDeviceRequest{
		DeviceId: "pump-7", Device: &pb.Device{Profile: "infusion-pump", Model: "Alaris 8100"},
	}); err != nil {
		t.Fatal(err)
	}
	cliSpan.End()
	cliTrace := cliSpan.SpanContext().TraceID()
	rpcServer := findSpan(t, rec, cliTrace, "medfleet.v1.DeviceService/CreateDevice", trace.SpanKindServer)
	txn := findSpan(t, rec, cliTrace, "etcd Txn create", trace.SpanKindClient)
	if !descends(rec, txn, rpcServer) {
		t.Errorf("etcd Txn create (parent %v) is not under the CreateDevice server span %v", txn.Parent().SpanID(), rpcServer.SpanContext().SpanID())
	}

	// A device report carrying a traceparent in option 65020.
	devCtx, devSpan := clientTP.Tracer("test").Start(ctx, "device report")
	carrier := propagation.MapCarrier{}
	telemetry.Propagator().Inject(devCtx, carrier)
	tp := message.Option{ID: coap.OptionTraceparent, Value: []byte(carrier["traceparent"])}
	cc := dialCoAP(t, ts)
	reg, _ := (&coap.Registration{Profile: "infusion-pump", Model: "Alaris 8100"}).Encode(coap.FormatCBOR)
	if code, body, _ := post(t, cc, "/rd", coap.FormatCBOR, reg, append(query("ep=pump-7"), tp)...); code != codes.Created {
		t.Fatalf("POST /rd = %v %s", code, body)
	}
	if code, body, _ := post(t, cc, "/dp", coap.FormatSenMLCBOR, senml(t, &coap.Report{Seq: 1, Usage: f64(60)}), append(query("ep=pump-7"), tp)...); code != codes.Changed {
		t.Fatalf("POST /dp = %v %s", code, body)
	}
	devSpan.End()
	devTrace := devSpan.SpanContext().TraceID()
	gw := findSpan(t, rec, devTrace, "CoAP POST /dp", trace.SpanKindServer)
	if gw.Parent().SpanID() != devSpan.SpanContext().SpanID() {
		t.Errorf("CoAP POST /dp span's parent = %v, want the device's span %v", gw.Parent().SpanID(), devSpan.SpanContext().SpanID())
	}
	attrs := map[string]string{}
	for _, kv := range gw.Attributes() {
		attrs[string(kv.Key)] = kv.Value.String()
	}
	if attrs["medfleet.device.id"] != "pump-7" || attrs["coap.response.code"] != "2.04" || attrs["coap.route"] != "/dp" {
		t.Errorf("CoAP span attributes = %v, want device pump-7, code 2.04, route /dp", attrs)
	}
	var commit sdktrace.ReadOnlySpan
	deadline := time.Now().Add(5 * time.Second)
	for commit == nil && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		commit = lookupSpan(rec, devTrace, "inventory checkpoint", trace.SpanKindInternal)
	}
	if commit == nil {
		t.Fatalf("no checkpoint span in the report's trace; spans: %v", spanNames(rec))
	}
	findSpan(t, rec, devTrace, "etcd Txn checkpoint", trace.SpanKindClient)

	// A report without a traceparent is not traced at the default ratio (0 here).
	before := len(rec.Ended())
	if code, _, _ := post(t, cc, "/dp", coap.FormatSenMLCBOR, senml(t, &coap.Report{Seq: 2, Usage: f64(120)}), query("ep=pump-7")...); code != codes.Changed {
		t.Fatal("POST /dp failed")
	}
	time.Sleep(200 * time.Millisecond)
	for _, s := range rec.Ended()[before:] {
		if s.SpanContext().IsSampled() && s.Name() == "CoAP POST /dp" {
			t.Errorf("an untraced report was sampled at ratio 0: %v", s.Name())
		}
	}
}

func lookupSpan(rec *tracetest.SpanRecorder, tid trace.TraceID, name string, kind trace.SpanKind) sdktrace.ReadOnlySpan {
	for _, s := range rec.Ended() {
		if s.SpanContext().TraceID() == tid && s.Name() == name && s.SpanKind() == kind {
			return s
		}
	}
	return nil
}

func findSpan(t *testing.T, rec *tracetest.SpanRecorder, tid trace.TraceID, name string, kind trace.SpanKind) sdktrace.ReadOnlySpan {
	t.Helper()
	s := lookupSpan(rec, tid, name, kind)
	if s == nil {
		t.Fatalf("no %v span %q in trace %v; spans: %v", kind, name, tid, spanNames(rec))
	}
	return s
}

// descends reports whether span s has ancestor a among the recorded spans.
func descends(rec *tracetest.SpanRecorder, s, a sdktrace.ReadOnlySpan) bool {
	byID := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	for _, x := range rec.Ended() {
		byID[x.SpanContext().SpanID()] = x
	}
	for p := s.Parent().SpanID(); p.IsValid(); {
		if p == a.SpanContext().SpanID() {
			return true
		}
		parent, ok := byID[p]
		if !ok {
			return false
		}
		p = parent.Parent().SpanID()
	}
	return false
}

func spanNames(rec *tracetest.SpanRecorder) string {
	var names []string
	for _, s := range rec.Ended() {
		names = append(names, s.Name())
	}
	return strings.Join(names, ", ")
}
