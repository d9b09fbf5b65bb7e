package server

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/udp"
	udpclient "github.com/plgd-dev/go-coap/v3/udp/client"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/medfleet/medfleet/coap"
	"github.com/medfleet/medfleet/internal/telemetry"
)

// discardExporter accepts spans and drops them: the cost measured is the
// SDK's, not a collector's.
type discardExporter struct{}

func (discardExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discardExporter) Shutdown(context.Context) error                             { return nil }

// BenchmarkIngest sends reports over real CoAP from 64 devices, each with its
// own socket, to a real medfleetd with metrics on, with tracing off and at
// the default sampling (parent-based, 1 % of roots, batched export). Run
// the variants in one invocation with a fixed count, so they do equal work:
//
//	go test ./server -run XXX -bench Ingest -benchtime 20000x -count 6
func BenchmarkIngest(b *testing.B) {
	variants := []struct {
		name   string
		tracer func() trace.TracerProvider
	}{
		{"tracing=off", func() trace.TracerProvider { return tracenoop.NewTracerProvider() }},
		{"tracing=default", func() trace.TracerProvider {
			return sdktrace.NewTracerProvider(sdktrace.WithBatcher(discardExporter{}),
				sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(DefaultConfig().Telemetry.TraceSampleRatio))))
		}},
	}
	for _, v := range variants {
		b.Run(v.name, func(b *testing.B) {
			sdk := &telemetry.SDK{Providers: telemetry.Providers{Tracer: v.tracer(), Meter: sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader())), Propagator: telemetry.Propagator()}}
			ts := startServer(b, testConfig(b, b.TempDir()), WithTelemetry(sdk))
			addr := ts.srv.Addrs().CoAP.String()
			benchmarkIngest(b, func(int) (*udpclient.Conn, error) { return udp.Dial(addr) })
		})
	}
}

// benchDevices is how many devices, each with its own session, the ingest
// benchmarks spread reports over.
const benchDevices = 64

// benchmarkIngest registers benchDevices devices, each on a connection
// from dial, and sends b.N reports spread over them.
func benchmarkIngest(b *testing.B, dial func(i int) (*udpclient.Conn, error)) {
	const devices = benchDevices
	conns := make([]*udpclient.Conn, devices)
	reg, _ := (&coap.Registration{Profile: "infusion-pump", Model: "Alaris 8100"}).Encode(coap.FormatCBOR)
	for i := range conns {
		cc, err := dial(i)
		if err != nil {
			b.Fatal(err)
		}
		defer cc.Close()
		conns[i] = cc
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		resp, err := cc.Post(ctx, "/rd", coap.FormatCBOR, bytes.NewReader(reg), query(fmt.Sprintf("ep=bench-%02d", i), "lt=3600")...)
		cancel()
		if err != nil || resp.Code() != codes.Created {
			b.Fatalf("register: %v", err)
		}
	}
	// Sequence numbers continue across runs on the same server, so that no
	// run is answered from the cheaper duplicate path.
	base := uint64(time.Now().UnixMicro())
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	var wg sync.WaitGroup
	for i, cc := range conns {
		n := b.N / devices
		if i < b.N%devices {
			n++
		}
		ep := []message.Option{{ID: message.URIQuery, Value: fmt.Appendf(nil, "ep=bench-%02d", i)}}
		wg.Go(func() {
			for seq := 1; seq <= n; seq++ {
				usage := float64(seq)
				body, _ := coap.EncodePack(coap.FormatSenMLCBOR, (&coap.Report{Seq: base + uint64(seq), Usage: &usage, State: coap.StateInUse}).Pack())
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				resp, err := cc.Post(ctx, "/dp", coap.FormatSenMLCBOR, bytes.NewReader(body), ep...)
				cancel()
				if err != nil || resp.Code() != codes.Changed {
					b.Errorf("report: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reports/s")
	// CPU time of the process (server and clients) per report: steadier than
	// wall time on a shared machine, since other processes do not add to it.
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/report")
}

// cpuTime is the user and system CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
