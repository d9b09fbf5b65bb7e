package gateway

import (
	"context"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/medfleet/medfleet/internal/telemetry"
)

func TestErrorKind(t *testing.T) {
	for _, tc := range []struct{ diag, want string }{
		{"seq: required", "seq"},
		{`record[3] "usage": unit "h", want "s"`, "usage"},
		{`record[0]: no name`, "record"},
		{`record[2] "alarm/occlusion": string value longer than 128 bytes`, "alarm"},
		{"content-format: 50 is not accepted", "content_format"},
		{"lt: \"1\" is not a lifetime", "lifetime"},
		{"rfid/1: EPC \"zz\" is not hex", "rfid"},
		{"profile: \"X\" is not a profile", "registration"},
		{"fw/result: 12 is not an integer in [0, 11]", "fw_update"},
		{"no colon at all", "other"},
		{"blower/pressure: more than 64 telemetry records", "other"},
		{`sha256: "ab" is not 64 lower-case hex digits`, "firmware"},
		{"block2: block 9 is past the end of an image of 300 bytes", "firmware"},
	} {
		if got := errorKind(tc.diag); got != tc.want {
			t.Errorf("errorKind(%q) = %q, want %q", tc.diag, got, tc.want)
		}
	}
}

func TestMetricsRecorded(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	in, err := newInstruments(telemetry.Providers{Tracer: tracenoop.NewTracerProvider(), Meter: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)), Propagator: telemetry.Propagator()})
	if err != nil {
		t.Fatal(err)
	}
	req := request{method: codes.POST, path: []string{"dp"}}
	for _, a := range []answer{{code: codes.Changed}, {code: codes.Changed, duplicate: true}, {code: codes.BadRequest, payload: []byte("seq: required")}} {
		ctx, span := in.start(context.Background(), req)
		in.end(ctx, span, req, "pump-1", a, time.Millisecond)
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	sums := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if s, ok := m.Data.(metricdata.Sum[int64]); ok {
				for _, dp := range s.DataPoints {
					key := m.Name
					for _, kv := range dp.Attributes.ToSlice() {
						key += " " + string(kv.Key) + "=" + kv.Value.String()
					}
					sums[key] += dp.Value
				}
			}
		}
	}
	for key, want := range map[string]int64{
		"medfleet.ingest.reports result=accepted":                                        1,
		"medfleet.ingest.reports result=duplicate":                                       1,
		"medfleet.ingest.reports result=rejected":                                        1,
		"medfleet.ingest.decode_errors kind=seq":                                         1,
		"medfleet.coap.requests coap.method=POST coap.response.code=2.04 coap.route=/dp": 2,
		"medfleet.coap.requests coap.method=POST coap.response.code=4.00 coap.route=/dp": 1,
	} {
		if sums[key] != want {
			t.Errorf("%s = %d, want %d (all: %v)", key, sums[key], want, sums)
		}
	}
}

// TestFirmwareMetrics: blocks and bytes served, the downloads in progress
// (a gauge read when collected), and refusals by route and code.
func TestFirmwareMetrics(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	in, err := newInstruments(telemetry.Providers{Tracer: tracenoop.NewTracerProvider(), Meter: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)), Propagator: telemetry.Propagator()})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_700_000_000, 0)
	ds := newDownloads(10, func() time.Time { return now })
	if err := in.observeDownloads(ds); err != nil {
		t.Fatal(err)
	}
	ds.admit(download{"10.0.0.1:5683", "aa"})
	ds.admit(download{"10.0.0.2:5683", "aa"})
	ds.admit(download{"10.0.0.3:5683", "aa"})
	ds.done(download{"10.0.0.3:5683", "aa"})
	ctx := context.Background()
	for _, n := range []int{1024, 1024, 333} {
		in.firmwareBlock(ctx, n)
	}
	req := request{method: codes.GET, path: []string{"fw", "ab"}}
	for _, a := range []answer{{code: codes.Content}, {code: codes.ServiceUnavailable}, {code: codes.BadRequest, payload: []byte(`sha256: "ab" is not 64 lower-case hex digits`)}} {
		ctx, span := in.start(ctx, req)
		in.end(ctx, span, req, "", a, time.Millisecond)
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	values := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			var points []metricdata.DataPoint[int64]
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				points = d.DataPoints
			case metricdata.Gauge[int64]:
				points = d.DataPoints
			}
			for _, dp := range points {
				key := m.Name
				for _, kv := range dp.Attributes.ToSlice() {
					key += " " + string(kv.Key) + "=" + kv.Value.String()
				}
				values[key] += dp.Value
			}
		}
	}
	for key, want := range map[string]int64{
		"medfleet.coap.firmware.blocks":           3,
		"medfleet.coap.firmware.bytes":            2381,
		"medfleet.coap.firmware.downloads.active": 2,
		"medfleet.coap.requests coap.method=GET coap.response.code=2.05 coap.route=/fw/{sha256}": 1,
		"medfleet.coap.requests coap.method=GET coap.response.code=5.03 coap.route=/fw/{sha256}": 1,
		"medfleet.ingest.decode_errors kind=firmware":                                            1,
	} {
		if got, ok := values[key]; !ok || got != want {
			t.Errorf("%s = %d (present %v), want %d (all: %v)", key, got, ok, want, values)
		}
	}
}

// BenchmarkTelemetry is the gateway's telemetry cost per request, span and
// metrics, with tracing off and at the default sampling (parent-based, 1 %).
func BenchmarkTelemetry(b *testing.B) {
	for _, v := range []struct {
		name   string
		tracer trace.TracerProvider
	}{
		{"tracing=off", tracenoop.NewTracerProvider()},
		{"tracing=default", sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0.01))))},
	} {
		b.Run(v.name, func(b *testing.B) {
			in, err := newInstruments(telemetry.Providers{Tracer: v.tracer, Meter: sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader())), Propagator: telemetry.Propagator()})
			if err != nil {
				b.Fatal(err)
			}
			req := request{method: codes.POST, path: []string{"dp"}}
			a := answer{code: codes.Changed}
			b.ReportAllocs()
			for b.Loop() {
				ctx, span := in.start(context.Background(), req)
				in.end(ctx, span, req, "pump-1", a, time.Millisecond)
			}
		})
	}
}
