package gateway

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"
	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/medfleet/medfleet/coap"
	"github.com/medfleet/medfleet/internal/telemetry"
)

// Attribute keys of the gateway's spans and metrics.
const (
	attrMethod   = attribute.Key("coap.method")
	attrRoute    = attribute.Key("coap.route")
	attrCode     = attribute.Key("coap.response.code")
	attrDevice   = attribute.Key("medfleet.device.id") // spans only: metrics stay bounded
	attrResult   = attribute.Key("result")
	attrKind     = attribute.Key("kind")
	traceparent  = "traceparent"
	routeUnknown = "other"
)

// instruments are the gateway's metrics and tracer.
type instruments struct {
	tracer     trace.Tracer
	propagator propagation.TextMapPropagator
	requests   metric.Int64Counter
	duration   metric.Float64Histogram
	reports    metric.Int64Counter
	decodeErrs metric.Int64Counter
	handshakes metric.Int64Counter
	sessions   metric.Int64UpDownCounter
	fwBlocks   metric.Int64Counter
	fwBytes    metric.Int64Counter
	meter      metric.Meter

	// attrs caches the measurement options of each attribute combination:
	// the combinations are few, and building a set per request allocates.
	attrs sync.Map // attrKey -> metric.MeasurementOption
}

type attrKey struct{ method, route, code, result, kind string }

// with returns the cached measurement option for k's non-empty fields.
func (in *instruments) with(k attrKey) metric.MeasurementOption {
	if o, ok := in.attrs.Load(k); ok {
		return o.(metric.MeasurementOption)
	}
	var kvs []attribute.KeyValue
	for _, a := range []struct {
		key attribute.Key
		val string
	}{{attrMethod, k.method}, {attrRoute, k.route}, {attrCode, k.code}, {attrResult, k.result}, {attrKind, k.kind}} {
		if a.val != "" {
			kvs = append(kvs, a.key.String(a.val))
		}
	}
	o, _ := in.attrs.LoadOrStore(k, metric.WithAttributeSet(attribute.NewSet(kvs...)))
	return o.(metric.MeasurementOption)
}

func newInstruments(p telemetry.Providers) (*instruments, error) {
	m := p.Meter.Meter(telemetry.ScopeName + "/coap/gateway")
	in := &instruments{tracer: p.Tracer.Tracer(telemetry.ScopeName + "/coap/gateway"), propagator: p.Propagator, meter: m}
	var err error
	if in.requests, err = m.Int64Counter("medfleet.coap.requests", metric.WithUnit("{request}"),
		metric.WithDescription("CoAP requests answered, by method, route and response code.")); err != nil {
		return nil, err
	}
	if in.duration, err = m.Float64Histogram("medfleet.coap.request.duration", metric.WithUnit("s"),
		metric.WithDescription("Time from a decoded CoAP request to its response, by method and route."),
		metric.WithExplicitBucketBoundaries(0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)); err != nil {
		return nil, err
	}
	if in.reports, err = m.Int64Counter("medfleet.ingest.reports", metric.WithUnit("{report}"),
		metric.WithDescription("Data pushes (POST /dp) by result: accepted, duplicate (seq already seen) or rejected.")); err != nil {
		return nil, err
	}
	for _, r := range []string{"accepted", "duplicate", "rejected"} { // every series exists from the start
		in.reports.Add(context.Background(), 0, in.with(attrKey{result: r}))
	}
	if in.decodeErrs, err = m.Int64Counter("medfleet.ingest.decode_errors", metric.WithUnit("{error}"),
		metric.WithDescription("Requests refused as malformed (4.00, 4.02, 4.06, 4.13, 4.15), by the kind of field at fault.")); err != nil {
		return nil, err
	}
	if in.handshakes, err = m.Int64Counter("medfleet.coap.dtls.handshakes", metric.WithUnit("{handshake}"),
		metric.WithDescription("DTLS handshakes by result: ok; failed (bad key or certificate, revoked, timed out); throttled (over coap.max_handshakes_per_second: the device retries).")); err != nil {
		return nil, err
	}
	if in.sessions, err = m.Int64UpDownCounter("medfleet.coap.dtls.sessions", metric.WithUnit("{session}"),
		metric.WithDescription("Open DTLS sessions by how the device authenticated: psk, cert, or enrol (server-only, enrolling).")); err != nil {
		return nil, err
	}
	for _, r := range []string{"ok", "failed", "throttled"} {
		in.handshakes.Add(context.Background(), 0, in.with(attrKey{result: r}))
	}
	for _, k := range []string{"psk", "cert", "enrol"} {
		in.sessions.Add(context.Background(), 0, in.with(attrKey{kind: k}))
	}
	if in.fwBlocks, err = m.Int64Counter("medfleet.coap.firmware.blocks", metric.WithUnit("{block}"),
		metric.WithDescription("Firmware blocks served (2.05 to GET /fw/{sha256}).")); err != nil {
		return nil, err
	}
	if in.fwBytes, err = m.Int64Counter("medfleet.coap.firmware.bytes", metric.WithUnit("By"),
		metric.WithDescription("Bytes of firmware images served, payloads only.")); err != nil {
		return nil, err
	}
	in.fwBlocks.Add(context.Background(), 0) // exported from the start
	in.fwBytes.Add(context.Background(), 0)
	return in, nil
}

// observeDownloads exports the firmware downloads in progress as a gauge,
// read (and idle downloads swept) when the metrics are collected.
func (in *instruments) observeDownloads(ds *downloads) error {
	_, err := in.meter.Int64ObservableGauge("medfleet.coap.firmware.downloads.active", metric.WithUnit("{download}"),
		metric.WithDescription("Firmware downloads in progress: a device's address and an image, from the first block until the last one or 30 s without a request; at most coap.max_downloads."),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(int64(ds.count()))
			return nil
		}))
	return err
}

// observePeers exports the plain-UDP read loop's peer table and rate
// limit, read when the metrics are collected: the read loop counts with
// atomics, which a flood of millions of datagrams a second can afford.
func (in *instruments) observePeers(g *Gateway) error {
	peers, err := in.meter.Int64ObservableGauge("medfleet.coap.peers", metric.WithUnit("{peer}"),
		metric.WithDescription("Peers (source address and port) whose state the plain-UDP read loop keeps: rate limit and last exchange; at most coap.max_peers."))
	if err != nil {
		return err
	}
	evicted, err := in.meter.Int64ObservableCounter("medfleet.coap.peers.evicted", metric.WithUnit("{peer}"),
		metric.WithDescription("Peers forgotten because the plain-UDP peer table was full (coap.max_peers): a flood from many source addresses, or a bound below the fleet."))
	if err != nil {
		return err
	}
	limited, err := in.meter.Int64ObservableCounter("medfleet.coap.rate_limited", metric.WithUnit("{datagram}"),
		metric.WithDescription("Plain-CoAP datagrams over their peer's rate (coap.max_requests_per_peer_per_second), by result: refused (a confirmable request answered 4.29, at most once a second a peer) or dropped."))
	if err != nil {
		return err
	}
	refusedOpt, droppedOpt := in.with(attrKey{result: "refused"}), in.with(attrKey{result: "dropped"})
	_, err = in.meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		o.ObserveInt64(peers, int64(g.peers.len()))
		o.ObserveInt64(evicted, int64(g.peers.evicted.Load()))
		o.ObserveInt64(limited, int64(g.rateRefused.Load()), refusedOpt)
		o.ObserveInt64(limited, int64(g.rateDropped.Load()), droppedOpt)
		return nil
	}, peers, evicted, limited)
	return err
}

func (in *instruments) firmwareBlock(ctx context.Context, bytes int) {
	in.fwBlocks.Add(ctx, 1)
	in.fwBytes.Add(ctx, int64(bytes))
}

func (in *instruments) handshake(ctx context.Context, ok bool) {
	r := "failed"
	if ok {
		r = "ok"
	}
	in.handshakes.Add(ctx, 1, in.with(attrKey{result: r}))
}

func (in *instruments) handshakeThrottled(ctx context.Context) {
	in.handshakes.Add(ctx, 1, in.with(attrKey{result: "throttled"}))
}

func (in *instruments) sessionOpened(ctx context.Context, kind string) {
	in.sessions.Add(ctx, 1, in.with(attrKey{kind: kind}))
}

func (in *instruments) sessionClosed(ctx context.Context, kind string) {
	in.sessions.Add(ctx, -1, in.with(attrKey{kind: kind}))
}

// start opens the server span of a request, as a child of the traceparent
// the device sent in option 65020, if any.
func (in *instruments) start(ctx context.Context, req request) (context.Context, trace.Span) {
	if tp := req.traceparent; tp != "" {
		ctx = in.propagator.Extract(ctx, propagation.MapCarrier{traceparent: tp})
	}
	route := routeOf(req.path)
	return in.tracer.Start(ctx, "CoAP "+req.method.String()+" "+route, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attrMethod.String(req.method.String()), attrRoute.String(route)))
}

// end records the outcome of a request on its span and in the metrics.
func (in *instruments) end(ctx context.Context, span trace.Span, req request, device string, a answer, took time.Duration) {
	route := routeOf(req.path)
	code := a.code.String()
	if c, ok := codeString(a.code); ok {
		code = c
	}
	method := req.method.String()
	in.requests.Add(ctx, 1, in.with(attrKey{method: method, route: route, code: code}))
	in.duration.Record(ctx, took.Seconds(), in.with(attrKey{method: method, route: route}))

	if refused(a.code) {
		in.decodeErrs.Add(ctx, 1, in.with(attrKey{kind: errorKind(string(a.payload))}))
	}
	if route == "/dp" && req.method == codes.POST {
		result := "rejected"
		switch {
		case a.code == codes.Changed && a.duplicate:
			result = "duplicate"
		case a.code == codes.Changed:
			result = "accepted"
		}
		in.reports.Add(ctx, 1, in.with(attrKey{result: result}))
	}

	if device != "" {
		span.SetAttributes(attrDevice.String(device))
	}
	span.SetAttributes(attrCode.String(code))
	if a.code >= codes.InternalServerError && !a.throttled {
		span.SetStatus(otelcodes.Error, string(a.payload))
	}
	span.End()
}

// routeOf is the route template of a path: a bounded set for metrics.
func routeOf(path []string) string {
	switch {
	case len(path) == 2 && path[0] == ".well-known" && path[1] == "core":
		return coap.PathCore
	case len(path) == 1 && path[0] == "rd":
		return coap.PathRegistration
	case len(path) == 2 && path[0] == "rd":
		return coap.PathRegistration + "/{device}"
	case len(path) == 1 && path[0] == "dp":
		return coap.PathData
	case len(path) == 1 && path[0] == "bs":
		return coap.PathBootstrap
	case isFirmware(path):
		return coap.PathFirmware + "/{sha256}"
	}
	return routeUnknown
}

// codeString writes a CoAP code the usual way, 2.04.
func codeString(c codes.Code) (string, bool) {
	if c == 0 {
		return "", false
	}
	return string([]byte{'0' + byte(c>>5), '.', '0' + byte(c&0x1f)/10, '0' + byte(c&0x1f)%10}), true
}

// errorKind classifies a refusal by the field its diagnostic names first
// ("seq: required", `record[2] "usage": ...`) into a bounded set.
func errorKind(diagnostic string) string {
	field, _, _ := strings.Cut(diagnostic, ": ")
	if strings.HasPrefix(field, "record[") {
		if _, name, ok := strings.Cut(field, " "); ok {
			field = strings.Trim(name, `"`)
		} else {
			return "record"
		}
	}
	switch {
	case field == "payload", field == "ep", field == "seq", field == "usage", field == "state", field == "battery", field == "accept":
		return field
	case field == "content-format":
		return "content_format"
	case field == "lt":
		return "lifetime"
	case field == "uri-path", field == "uri-query":
		return "uri"
	case field == "fw/state", field == "fw/result":
		return "fw_update"
	case field == "sha256", field == "block2":
		return "firmware"
	case field == "fw", field == "model", field == "serial", field == "profile", field == "udi":
		return "registration"
	case strings.HasPrefix(field, "wifi/"):
		return "wifi"
	case strings.HasPrefix(field, coap.PrefixAlarm):
		return "alarm"
	case strings.HasPrefix(field, coap.PrefixRFID):
		return "rfid"
	}
	return "other"
}
