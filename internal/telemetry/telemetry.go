// Package telemetry sets up OpenTelemetry for medfleetd and medfleetctl:
// tracer and meter providers configured by the standard OTEL_* environment
// variables, Prometheus exposition for /metrics, and a slog handler that
// stamps log lines with the active span.
//
// Packages that instrument themselves (coap/gateway, inventory, server) take
// a Providers and use only the OpenTelemetry API. medfleet-agent must not
// import this package: its OTLP gRPC exporter links gRPC.
package telemetry

import (
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// Providers is what an instrumented package needs.
type Providers struct {
	Tracer     trace.TracerProvider
	Meter      metric.MeterProvider
	Propagator propagation.TextMapPropagator
}

// Noop returns providers that record nothing.
func Noop() Providers {
	return Providers{Tracer: tracenoop.NewTracerProvider(), Meter: metricnoop.NewMeterProvider(), Propagator: Propagator()}
}

// Propagator is W3C trace context (traceparent, tracestate) and baggage.
func Propagator() propagation.TextMapPropagator {
	return propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
}

// ScopeName is the instrumentation scope of Medfleet's own telemetry.
const ScopeName = "github.com/medfleet/medfleet"
