package telemetry

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

func TestLogHandler(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(LogHandler(slog.NewTextHandler(&buf, nil))).With("component", "test")
	tp := sdktrace.NewTracerProvider()
	ctx, span := tp.Tracer("t").Start(context.Background(), "op")
	log.InfoContext(ctx, "inside")
	span.End()
	log.InfoContext(context.Background(), "outside")

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	want := "trace_id=" + span.SpanContext().TraceID().String() + " span_id=" + span.SpanContext().SpanID().String()
	if len(lines) != 2 || !strings.Contains(lines[0], want) || !strings.Contains(lines[0], "component=test") {
		t.Errorf("log within a span = %q, want it to carry %q", lines[0], want)
	}
	if strings.Contains(lines[1], "trace_id") {
		t.Errorf("log without a span = %q, want no trace_id", lines[1])
	}
}

func TestSetupWithoutEnvironment(t *testing.T) {
	for _, k := range []string{"OTEL_TRACES_EXPORTER", "OTEL_METRICS_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "OTEL_TRACES_SAMPLER"} {
		t.Setenv(k, "")
	}
	if Configured("TRACES") || Configured("METRICS") {
		t.Fatal("Configured() = true with no OTEL_* variables set")
	}
	sdk, err := Setup(context.Background(), Config{ServiceName: "test", SampleRatio: 0.5, Prometheus: true})
	if err != nil {
		t.Fatal(err)
	}
	defer sdk.Shutdown(context.Background())
	rec := httptest.NewRecorder()
	sdk.Metrics.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	if !strings.Contains(string(body), `medfleet_build_info{`) || !strings.Contains(string(body), "go_goroutines") {
		t.Errorf("/metrics lacks medfleet_build_info or go_goroutines:\n%.2000s", body)
	}
	if _, err := Setup(context.Background(), Config{SampleRatio: 2}); err == nil {
		t.Error("Setup(SampleRatio 2) succeeded, want an error")
	}
}

func TestSetupOTLPToNowhere(t *testing.T) {
	// A collector that is not there must not make Setup or spans fail.
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
	sdk, err := Setup(context.Background(), Config{ServiceName: "test", SampleRatio: 1})
	if err != nil {
		t.Fatal(err)
	}
	_, span := sdk.Tracer.Tracer("t").Start(context.Background(), "op")
	span.End()
	ctx, cancel := context.WithTimeout(context.Background(), 3e9)
	defer cancel()
	_ = sdk.Shutdown(ctx) // the export fails; shutdown returns within its deadline
}
