package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/contrib/exporters/autoexport"
	"go.opentelemetry.io/otel/attribute"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
)

// Config is the part of telemetry that is not in OTEL_* variables.
type Config struct {
	// ServiceName is the default service.name; OTEL_SERVICE_NAME wins.
	ServiceName string
	// SampleRatio is the share of root traces kept (parent-based: a sampled
	// parent, such as a CLI call or a device that sent a traceparent, is
	// always followed). OTEL_TRACES_SAMPLER, when set, wins.
	SampleRatio float64
	// Prometheus makes Metrics serve the Prometheus exposition format.
	Prometheus bool
}

// SDK is the configured OpenTelemetry SDK of a process.
type SDK struct {
	Providers
	// Metrics serves /metrics when Config.Prometheus is set, else it is nil.
	Metrics  http.Handler
	shutdown []func(context.Context) error
}

// Configured reports whether the environment asks for an exporter of the
// given signal ("TRACES" or "METRICS"): nothing is exported otherwise.
func Configured(signal string) bool {
	for _, k := range []string{"OTEL_" + signal + "_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_" + signal + "_ENDPOINT"} {
		if os.Getenv(k) != "" {
			return true
		}
	}
	return false
}

// Setup builds tracer and meter providers from cfg and the standard OTEL_*
// environment variables (exporter, OTLP endpoint and protocol, service name,
// resource attributes). Traces and OTLP metrics are exported only when the
// environment configures an exporter; exports are batched and asynchronous,
// so a missing collector costs dropped batches, never a slower request.
func Setup(ctx context.Context, cfg Config) (*SDK, error) {
	if cfg.SampleRatio < 0 || cfg.SampleRatio > 1 {
		return nil, fmt.Errorf("telemetry: sample ratio %v is outside 0-1", cfg.SampleRatio)
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(semconv.ServiceName(cfg.ServiceName), semconv.ServiceVersion(Version())),
		resource.WithFromEnv(), // OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
		resource.WithTelemetrySDK(), resource.WithHost(), resource.WithProcessPID())
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("telemetry: resource: %w", err)
	}
	sdk := &SDK{}

	topts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	if os.Getenv("OTEL_TRACES_SAMPLER") == "" { // else the SDK reads it
		topts = append(topts, sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.SampleRatio))))
	}
	if Configured("TRACES") {
		exp, err := autoexport.NewSpanExporter(ctx)
		if err != nil {
			return nil, fmt.Errorf("telemetry: span exporter: %w", err)
		}
		if !autoexport.IsNoneSpanExporter(exp) {
			topts = append(topts, sdktrace.WithBatcher(exp))
		}
	}
	tp := sdktrace.NewTracerProvider(topts...)
	sdk.shutdown = append(sdk.shutdown, tp.Shutdown)

	mopts := []sdkmetric.Option{sdkmetric.WithResource(res)}
	if cfg.Prometheus {
		reg := prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		exp, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo())
		if err != nil {
			return nil, fmt.Errorf("telemetry: prometheus: %w", err)
		}
		mopts = append(mopts, sdkmetric.WithReader(exp))
		sdk.Metrics = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	}
	if Configured("METRICS") {
		r, err := autoexport.NewMetricReader(ctx)
		if err != nil {
			return nil, fmt.Errorf("telemetry: metric reader: %w", err)
		}
		if !autoexport.IsNoneMetricReader(r) {
			mopts = append(mopts, sdkmetric.WithReader(r))
		}
	}
	mp := sdkmetric.NewMeterProvider(mopts...)
	sdk.shutdown = append(sdk.shutdown, mp.Shutdown)

	sdk.Providers = Providers{Tracer: tp, Meter: mp, Propagator: Propagator()}
	if err := RegisterBuildInfo(mp); err != nil {
		return nil, err
	}
	return sdk, nil
}

// Shutdown flushes and stops the exporters.
func (s *SDK) Shutdown(ctx context.Context) error {
	var errs []error
	for _, f := range s.shutdown {
		errs = append(errs, f(ctx))
	}
	return errors.Join(errs...)
}

// Version is the module version the binary was built from, or "devel".
func Version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

// RegisterBuildInfo exports medfleet.build.info, always 1, with the version
// and Go version as attributes.
func RegisterBuildInfo(mp metric.MeterProvider) error {
	attrs := metric.WithAttributes(attribute.String("version", Version()), attribute.String("go.version", runtime.Version()))
	_, err := mp.Meter(ScopeName).Int64ObservableGauge("medfleet.build.info",
		metric.WithDescription("Build information: always 1, with the version as attributes."),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(1, attrs)
			return nil
		}))
	return err
}
