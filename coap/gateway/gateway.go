// Package gateway is the control plane's side of the device protocol: a
// go-coap UDP server that routes protocol v1 requests, decodes and checks
// what devices send, and hands it to a Backend.
//
// It imports coap, go-coap and the OpenTelemetry API (through
// internal/telemetry's Providers) only. The Backend interface is how the server
// wires it to the inventory without this package knowing about either; the
// server's adapter translates the inventory's errors into this package's.
package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/mux"
	coapnet "github.com/plgd-dev/go-coap/v3/net"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/udp"
	udpclient "github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/medfleet/medfleet/coap"
	"github.com/medfleet/medfleet/internal/telemetry"
)

// Backend is what the gateway needs from the rest of the control plane.
// Errors it returns are ErrNotRegistered, ErrForbidden, a *coap.FieldError,
// or anything else for a server fault.
type Backend interface {
	Register(ctx context.Context, device string, reg *coap.Registration, lifetime time.Duration) (*coap.Desired, error)
	UpdateRegistration(ctx context.Context, device string, reg *coap.Registration) (*coap.Desired, error)
	Deregister(ctx context.Context, device string) error
	// Report applies a data push. duplicate is true when the report's seq
	// was accepted before.
	Report(ctx context.Context, device string, r *coap.Report) (d *coap.Desired, duplicate bool, err error)
	// Enrol trades an enrolment token for device's credential (POST /bs).
	// ErrForbidden refuses the token.
	Enrol(ctx context.Context, device string, r *coap.EnrolRequest) (*coap.EnrolResponse, error)
	// Firmware opens the image with this SHA-256 (64 lower-case hex digits).
	// ErrNoImage when there is none.
	Firmware(ctx context.Context, sha256 string) (Image, error)
}

// Image is a firmware image, served block by block (GET /fw/{sha256}). It
// must not change while it is served: its name is its SHA-256.
type Image interface {
	io.ReaderAt
	Size() int64
}

type peerKey struct{}

// Peer returns the address of the device behind a Backend call, for the
// audit log.
func Peer(ctx context.Context) string {
	if a, ok := ctx.Value(peerKey{}).(net.Addr); ok {
		return a.String()
	}
	return ""
}

// Errors a Backend returns for expected outcomes.
var (
	// ErrNotRegistered: 4.04, the device must register again.
	ErrNotRegistered = errors.New("gateway: device not registered")
	// ErrForbidden: 4.03, e.g. a decommissioned device.
	ErrForbidden = errors.New("gateway: forbidden")
	// ErrNoImage: 4.04, no firmware image has that SHA-256.
	ErrNoImage = errors.New("gateway: no such firmware image")
)

// Config tunes the gateway.
type Config struct {
	// ReadBuffer is the socket's SO_RCVBUF, in bytes: the kernel default
	// drops datagrams when a fleet reconnects at once.
	ReadBuffer int `yaml:"read_buffer"`
	// IdleTimeout closes a peer's state after this long without traffic.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// RequestTimeout bounds the backend's work on a registration, which may
	// write etcd; reports touch only memory.
	RequestTimeout time.Duration `yaml:"request_timeout"`
	// MaxPendingRegistrations bounds registrations and enrolments in
	// progress (they write etcd); beyond it a device is answered 4.29 with
	// a Max-Age of about RetryAfter, so that a reconnect storm queues on the
	// devices instead of in the server.
	MaxPendingRegistrations int `yaml:"max_pending_registrations"`
	// RetryAfter is the mean Max-Age of a 4.29, jittered by ±50 %.
	RetryAfter time.Duration `yaml:"retry_after"`
	// MaxHandshakeRate bounds new DTLS handshakes per second (bursts of as
	// many); beyond it a ClientHello is dropped and the device's DTLS
	// retransmission tries again, so that a reconnect storm cannot starve
	// established sessions of CPU.
	MaxHandshakeRate float64 `yaml:"max_handshakes_per_second"`
	// MaxDownloads bounds the firmware downloads in progress. A download is
	// a device's address and an image, active from its first block until
	// its last block was served or no block was asked for 30 s. A new one
	// beyond the bound is answered 5.03 with a Max-Age of about RetryAfter;
	// the blocks of active downloads are always served.
	MaxDownloads int `yaml:"max_downloads"`
	// MaxPeerRate bounds the datagrams a second of one peer (a source
	// address and port) on the plain-UDP read loop, in bursts of
	// MaxPeerBurst. Over it, a confirmable request is answered 4.29 at most
	// once a second and everything else is dropped before it is parsed, so
	// that one source cannot take the read loop from the others. A device
	// has one request outstanding at a time (NSTART 1), so even draining
	// its queue or fetching firmware back to back it sends at most one per
	// round trip: the default, 1,000 a second, is a round trip of 1 ms,
	// shorter than Wi-Fi gives.
	MaxPeerRate float64 `yaml:"max_requests_per_peer_per_second"`
	// MaxPeerBurst is how many datagrams a peer may send at once; the
	// default lets a peer go at twice the rate for two seconds.
	MaxPeerBurst int `yaml:"max_requests_per_peer_burst"`
	// MaxPeers bounds the peers whose state the plain-UDP read loop keeps
	// (rate limit and last exchange). Beyond it the peer silent longest is
	// forgotten, so that datagrams from millions of spoofed source ports
	// cannot grow the heap; it should be well above the fleet.
	MaxPeers int `yaml:"max_peers"`
	// PlainServer serves plain CoAP (UDP without DTLS): "medfleet", the
	// gateway's own read loop on go-coap's codec (udp.go), or "go-coap",
	// go-coap's UDP server, which keeps every answer of every peer for
	// 247 s and scans them on each datagram (docs/benchmarks.md).
	PlainServer string `yaml:"plain_server"`
	// DTLSServer serves CoAP over DTLS: "medfleet", a goroutine of the
	// gateway's own per session (session.go), or "go-coap", go-coap's DTLS
	// server, which keeps every answer of every session for 247 s
	// (docs/benchmarks.md). pion/dtls does the DTLS under both.
	DTLSServer string `yaml:"dtls_server"`
}

// The servers of plain CoAP (Config.PlainServer) and of DTLS
// (Config.DTLSServer).
const (
	ServerMedfleet = "medfleet"
	ServerGoCoAP   = "go-coap"
)

// DefaultConfig returns the defaults documented in docs/operations.md.
func DefaultConfig() Config {
	return Config{ReadBuffer: 4 << 20, IdleTimeout: 10 * time.Minute, RequestTimeout: 5 * time.Second,
		MaxPendingRegistrations: 256, RetryAfter: 10 * time.Second, MaxHandshakeRate: 1000, MaxDownloads: 256,
		MaxPeerRate: 1000, MaxPeerBurst: 2000, MaxPeers: 100_000, PlainServer: ServerMedfleet, DTLSServer: ServerMedfleet}
}

// Validate checks the configuration; errors name the field by its path.
func (c Config) Validate() error {
	switch {
	case c.ReadBuffer < 0:
		return fmt.Errorf("coap.read_buffer: negative")
	case c.IdleTimeout < time.Second:
		return fmt.Errorf("coap.idle_timeout: %v is under 1s", c.IdleTimeout)
	case c.RequestTimeout <= 0:
		return fmt.Errorf("coap.request_timeout: must be positive")
	case c.MaxPendingRegistrations < 1:
		return fmt.Errorf("coap.max_pending_registrations: %d is under 1", c.MaxPendingRegistrations)
	case c.RetryAfter < 2*time.Second || c.RetryAfter > time.Hour:
		return fmt.Errorf("coap.retry_after: %v is outside 2s-1h", c.RetryAfter)
	case c.MaxHandshakeRate < 1:
		return fmt.Errorf("coap.max_handshakes_per_second: %v is under 1", c.MaxHandshakeRate)
	case c.MaxDownloads < 1:
		return fmt.Errorf("coap.max_downloads: %d is under 1", c.MaxDownloads)
	case !(c.MaxPeerRate >= 1): // NaN too
		return fmt.Errorf("coap.max_requests_per_peer_per_second: %v is under 1", c.MaxPeerRate)
	case c.MaxPeerBurst < 1:
		return fmt.Errorf("coap.max_requests_per_peer_burst: %d is under 1", c.MaxPeerBurst)
	case c.MaxPeers < 1:
		return fmt.Errorf("coap.max_peers: %d is under 1", c.MaxPeers)
	case c.PlainServer != ServerMedfleet && c.PlainServer != ServerGoCoAP:
		return fmt.Errorf("coap.plain_server: %q is neither %s nor %s", c.PlainServer, ServerMedfleet, ServerGoCoAP)
	case c.DTLSServer != ServerMedfleet && c.DTLSServer != ServerGoCoAP:
		return fmt.Errorf("coap.dtls_server: %q is neither %s nor %s", c.DTLSServer, ServerMedfleet, ServerGoCoAP)
	}
	return nil
}

// Stats counts what the gateway answered.
type Stats struct {
	Registrations, Reports, Duplicates, BadRequests, NotRegistered, Forbidden, ServerErrors uint64
	// RateLimited counts the datagrams of plain CoAP over their peer's
	// rate (coap.max_requests_per_peer_per_second): answered 4.29 or
	// dropped.
	RateLimited uint64
	// PeersEvicted counts the peers forgotten because the peer table was
	// full (coap.max_peers).
	PeersEvicted uint64
}

// Gateway serves protocol v1 over plain CoAP (UDP).
type Gateway struct {
	cfg     Config
	backend Backend
	log     *slog.Logger
	tel     *instruments
	// pending admits registrations and enrolments: a slot each.
	pending chan struct{}
	// downloads admits firmware downloads.
	downloads *downloads
	// peers is the plain-UDP read loop's state per peer.
	peers *peerTable

	registrations, reports, duplicates, badRequests, notRegistered, forbidden, serverErrors atomic.Uint64
	// rateRefused and rateDropped count the datagrams over their peer's
	// rate answered 4.29 and dropped.
	rateRefused, rateDropped atomic.Uint64
}

// New builds a gateway; it starts nothing.
func New(cfg Config, backend Backend, log *slog.Logger, tel telemetry.Providers) (*Gateway, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if backend == nil {
		return nil, errors.New("gateway: no backend")
	}
	in, err := newInstruments(tel)
	if err != nil {
		return nil, fmt.Errorf("gateway: metrics: %w", err)
	}
	dl := newDownloads(cfg.MaxDownloads, time.Now)
	if err := in.observeDownloads(dl); err != nil {
		return nil, fmt.Errorf("gateway: metrics: %w", err)
	}
	g := &Gateway{cfg: cfg, backend: backend, log: log, tel: in, pending: make(chan struct{}, cfg.MaxPendingRegistrations), downloads: dl,
		peers: newPeerTable(cfg.MaxPeers, cfg.MaxPeerRate, cfg.MaxPeerBurst)}
	if err := in.observePeers(g); err != nil {
		return nil, fmt.Errorf("gateway: metrics: %w", err)
	}
	return g, nil
}

// Stats returns counters of the answers so far.
func (g *Gateway) Stats() Stats {
	return Stats{
		Registrations: g.registrations.Load(), Reports: g.reports.Load(), Duplicates: g.duplicates.Load(),
		BadRequests: g.badRequests.Load(), NotRegistered: g.notRegistered.Load(), Forbidden: g.forbidden.Load(),
		ServerErrors: g.serverErrors.Load(), RateLimited: g.rateRefused.Load() + g.rateDropped.Load(), PeersEvicted: g.peers.evicted.Load(),
	}
}

// Serve answers requests on conn until ctx ends, then stops the server and
// returns. The caller owns conn's creation; Serve closes it.
func (g *Gateway) Serve(ctx context.Context, conn *net.UDPConn) error {
	if g.cfg.ReadBuffer > 0 {
		if err := conn.SetReadBuffer(g.cfg.ReadBuffer); err != nil {
			g.log.Warn("cannot set the CoAP socket's read buffer", "bytes", g.cfg.ReadBuffer, "err", err)
		}
	}
	if g.cfg.PlainServer == ServerMedfleet {
		return g.serveUDP(ctx, conn)
	}
	s := udp.NewServer(
		options.WithMux(mux.HandlerFunc(g.serveCOAP)),
		options.WithContext(ctx),
		options.WithErrors(func(err error) { g.log.Debug("coap", "err", err) }),
		options.WithInactivityMonitor(g.cfg.IdleTimeout, func(cc *udpclient.Conn) { _ = cc.Close() }),
		// go-coap's block-wise is off: it reassembles Block1 uploads in
		// memory with no size limit, and reports fit in one datagram.
		// Firmware downloads (Block2) are served by the handler itself, one
		// stateless block per request (fw.go).
		options.WithBlockwise(false, blockwise.SZX1024, time.Minute),
	)
	return serveUntil(ctx, func() error { return s.Serve(coapnet.NewUDPConn("udp", conn)) }, s.Stop, "gateway")
}

// serveUntil runs serve until ctx ends, then stops it and waits for it; an
// error of serve's own is returned with prefix.
func serveUntil(ctx context.Context, serve func() error, stop func(), prefix string) error {
	done := make(chan error, 1)
	go func() { done <- serve() }()
	select {
	case <-ctx.Done():
		stop()
		<-done
		return nil
	case err := <-done:
		return fmt.Errorf("%s: %w", prefix, err)
	}
}

// request is what a handler needs of a CoAP request.
type request struct {
	method codes.Code
	path   []string // segments
	query  map[string]string
	format message.MediaType
	hasCF  bool
	accept message.MediaType
	body   []byte
	// traceparent is the W3C trace context of option 65020, if any.
	traceparent string
	// nonConfirmable: the request is NON; its answer may be NON too.
	nonConfirmable bool
	// block2 is the Block2 option's value (RFC 7959), if hasBlock2.
	block2    uint32
	hasBlock2 bool
	peer      net.Addr
}

// answer is a response: a code and a payload in a content format.
type answer struct {
	duplicate bool // a report whose seq was accepted before
	code      codes.Code
	format    message.MediaType
	payload   []byte
	opts      []message.Option
	// endSession closes the DTLS session after the answer: its credential
	// is no longer valid.
	endSession bool
	// throttled marks a 5.03 the gateway chose to shed load (the download
	// cap): expected, so neither a server error nor an error in the log.
	throttled bool
}

// diagnostic is an error response with a text/plain diagnostic payload
// (RFC 7252 section 5.5.2).
func diagnostic(code codes.Code, format string, args ...any) answer {
	return answer{code: code, format: message.TextPlain, payload: []byte(fmt.Sprintf(format, args...))}
}

// serveCOAP answers a request go-coap's servers (DTLS, or plain UDP with
// coap.plain_server go-coap) hand over.
func (g *Gateway) serveCOAP(w mux.ResponseWriter, m *mux.Message) {
	req, a, done := g.serve(m, w.Conn().RemoteAddr())
	defer done()
	if req.nonConfirmable && isFirmware(req.path) {
		// A block asked for with a NON request goes back as a NON response
		// written here, and the response stays unset: go-coap then sends
		// nothing more and, unlike a piggy-backed answer, keeps no copy of
		// the block for 247 s (go-coap issue #586), which for an image of
		// thousands of blocks would cost megabytes a download and a scan of
		// them all on every request.
		if err := writeNon(w.Conn(), m, a); err != nil {
			g.log.Debug("coap: cannot send a firmware block", "err", err)
		}
	} else {
		var body io.ReadSeeker
		if a.payload != nil {
			body = bytes.NewReader(a.payload)
		}
		if err := w.SetResponse(a.code, a.format, body, a.opts...); err != nil {
			g.log.Warn("coap: cannot set response", "err", err)
		}
	}
	if a.endSession {
		cc := w.Conn()
		time.AfterFunc(time.Second, func() { _ = cc.Close() }) // after the answer went out
	}
}

// serve parses and routes a request from peer. done, called once the
// answer is sent, ends the request's span and logs it.
func (g *Gateway) serve(m *mux.Message, peer net.Addr) (request, answer, func()) {
	start := time.Now()
	req, a := parseRequest(m)
	req.peer = peer
	ctx, span := g.tel.start(m.Context(), req)
	device := ""
	if a.code == 0 {
		device, a = g.route(ctx, req)
	}
	if !a.throttled {
		g.count(a.code)
	}
	return req, a, func() {
		g.tel.end(ctx, span, req, device, a, time.Since(start))
		level := slog.LevelDebug
		if a.code >= codes.InternalServerError && !a.throttled {
			level = slog.LevelError
		}
		g.log.Log(ctx, level, "coap request", "method", req.method.String(), "path", "/"+strings.Join(req.path, "/"),
			"device", device, "code", a.code.String(), "dur", time.Since(start), "peer", peer.String())
	}
}

func (g *Gateway) count(c codes.Code) {
	switch {
	case refused(c):
		g.badRequests.Add(1)
	case c == codes.NotFound:
		g.notRegistered.Add(1)
	case c == codes.Forbidden:
		g.forbidden.Add(1)
	case c == codes.InternalServerError, c == codes.ServiceUnavailable:
		g.serverErrors.Add(1)
	}
}

// refused reports whether a code refuses a malformed request: the device
// must change what it sends.
func refused(c codes.Code) bool {
	switch c {
	case codes.BadRequest, codes.BadOption, codes.NotAcceptable, codes.RequestEntityTooLarge, codes.UnsupportedMediaType:
		return true
	}
	return false
}

// parseRequest reads what the handlers need, answering 4.00 or 4.13 when the
// request itself is unreadable or too large.
func parseRequest(m *mux.Message) (request, answer) {
	req := request{method: m.Code(), query: map[string]string{}, accept: coap.FormatCBOR, nonConfirmable: m.Type() == message.NonConfirmable}
	p, err := m.Path()
	if err != nil && !errors.Is(err, message.ErrOptionNotFound) {
		return req, diagnostic(codes.BadRequest, "uri-path: %v", err)
	}
	req.path = strings.FieldsFunc(p, func(r rune) bool { return r == '/' })
	qs, err := m.Queries()
	if err != nil && !errors.Is(err, message.ErrOptionNotFound) {
		return req, diagnostic(codes.BadRequest, "uri-query: %v", err)
	}
	for _, q := range qs {
		k, v, _ := strings.Cut(q, "=")
		if _, dup := req.query[k]; dup {
			return req, diagnostic(codes.BadRequest, "uri-query: %s given twice", k)
		}
		req.query[k] = v
	}
	if cf, err := m.ContentFormat(); err == nil {
		req.format, req.hasCF = cf, true
	}
	if tp, err := m.Options().GetString(coap.OptionTraceparent); err == nil && len(tp) <= 128 {
		req.traceparent = tp
	}
	if acc, err := m.Accept(); err == nil {
		switch {
		case isFirmware(req.path):
			if acc != formatImage {
				return req, diagnostic(codes.NotAcceptable, "accept: %d is not offered; images are %d (octet-stream)", acc, formatImage)
			}
		case acc != coap.FormatCBOR && acc != coap.FormatJSON:
			return req, diagnostic(codes.NotAcceptable, "accept: %d is not offered; use %d (CBOR) or %d (JSON)", acc, coap.FormatCBOR, coap.FormatJSON)
		}
		req.accept = acc
	}
	if v, err := m.Options().GetUint32(message.Block2); err == nil {
		req.block2, req.hasBlock2 = v, true
	} else if !errors.Is(err, message.ErrOptionNotFound) {
		return req, diagnostic(codes.BadOption, "block2: %v", err)
	}
	if m.HasOption(message.Block1) {
		a := diagnostic(codes.RequestEntityTooLarge, "payload: block-wise uploads are not accepted; send at most %d bytes in one request", coap.MaxPayload)
		a.opts = []message.Option{{ID: message.Size1, Value: uint32Bytes(coap.MaxPayload)}}
		return req, a
	}
	if m.Body() != nil {
		size, err := m.BodySize()
		if err != nil {
			return req, diagnostic(codes.BadRequest, "payload: %v", err)
		}
		if size > coap.MaxPayload {
			a := diagnostic(codes.RequestEntityTooLarge, "payload: %d bytes, at most %d", size, coap.MaxPayload)
			a.opts = []message.Option{{ID: message.Size1, Value: uint32Bytes(coap.MaxPayload)}}
			return req, a
		}
		// Read whole into a slice of its size (go-coap's ReadBody takes at
		// least 1 KiB).
		req.body = make([]byte, size)
		if _, err := m.Body().Seek(0, io.SeekStart); err != nil {
			return req, diagnostic(codes.BadRequest, "payload: %v", err)
		}
		if _, err := io.ReadFull(m.Body(), req.body); err != nil {
			return req, diagnostic(codes.BadRequest, "payload: %v", err)
		}
	}
	return req, answer{}
}

func uint32Bytes(v uint32) []byte {
	buf := make([]byte, 4)
	n, _ := message.EncodeUint32(buf, v)
	return buf[:n]
}

// route dispatches a request by path and method.
func (g *Gateway) route(ctx context.Context, req request) (device string, a answer) {
	p := req.path
	switch {
	case len(p) == 2 && p[0] == ".well-known" && p[1] == "core":
		if req.method != codes.GET {
			return "", notAllowed(req, "GET")
		}
		return "", answer{code: codes.Content, format: coap.FormatLinkFormat, payload: []byte(coreLinks)}
	case len(p) == 1 && p[0] == "rd":
		if req.method != codes.POST {
			return "", notAllowed(req, "POST")
		}
		return g.register(ctx, req)
	case len(p) == 2 && p[0] == "rd":
		switch req.method {
		case codes.POST:
			return p[1], g.updateRegistration(ctx, p[1], req)
		case codes.DELETE:
			return p[1], g.deregister(ctx, p[1], req)
		}
		return p[1], notAllowed(req, "POST, DELETE")
	case len(p) == 1 && p[0] == "dp":
		if req.method != codes.POST {
			return "", notAllowed(req, "POST")
		}
		return g.report(ctx, req)
	case len(p) == 1 && p[0] == "bs":
		if req.method != codes.POST {
			return "", notAllowed(req, "POST")
		}
		return g.enrol(ctx, req)
	case len(p) == 2 && p[0] == "fw":
		if req.method != codes.GET {
			return "", notAllowed(req, "GET")
		}
		return g.firmware(ctx, p[1], req)
	case len(p) >= 1 && p[0] == "fw":
		return "", diagnostic(codes.NotFound, "no resource /%s; fetch an image with GET /fw/{sha256}", strings.Join(p, "/"))
	}
	return "", diagnostic(codes.NotFound, "no resource /%s; see /.well-known/core", strings.Join(p, "/"))
}

// coreLinks lists the resources (RFC 6690).
const coreLinks = `</rd>;rt="core.rd";ct="60 50",</dp>;rt="medfleet.dp";ct="112 110",</bs>;rt="medfleet.bs";ct=60,</fw>;rt="medfleet.fw";ct=42`

func notAllowed(req request, allowed string) answer {
	return diagnostic(codes.MethodNotAllowed, "%s not allowed here; allowed: %s", req.method, allowed)
}

func (g *Gateway) register(ctx context.Context, req request) (string, answer) {
	device := req.query[coap.QueryEndpoint]
	if err := coap.ValidateDeviceID(device); err != nil {
		return device, diagnostic(codes.BadRequest, "ep: %v", err)
	}
	if a, ok := authorize(ctx, device); !ok {
		return device, a
	}
	lifetime := time.Duration(coap.DefaultLifetime) * time.Second
	if lt, ok := req.query[coap.QueryLifetime]; ok {
		n, err := strconv.ParseUint(lt, 10, 32)
		if err != nil || n < coap.MinLifetime || n > coap.MaxLifetime {
			return device, diagnostic(codes.BadRequest, "lt: %q is not a lifetime in seconds between %d and %d", lt, coap.MinLifetime, coap.MaxLifetime)
		}
		lifetime = time.Duration(n) * time.Second
	}
	reg, a := decodeRegistration(req)
	if reg == nil {
		return device, a
	}
	if err := reg.Validate(); err != nil {
		return device, diagnostic(codes.BadRequest, "%v", err)
	}
	release, busy, ok := g.admit()
	if !ok {
		return device, busy
	}
	defer release()
	ctx, cancel := context.WithTimeout(context.WithValue(ctx, peerKey{}, req.peer), g.cfg.RequestTimeout) // may write etcd
	defer cancel()
	d, err := g.backend.Register(ctx, device, reg, lifetime)
	if err != nil {
		return device, g.failure(device, err)
	}
	g.registrations.Add(1)
	a = g.desired(req, codes.Created, d)
	a.opts = append(a.opts,
		message.Option{ID: message.LocationPath, Value: []byte("rd")},
		message.Option{ID: message.LocationPath, Value: []byte(device)})
	return device, a
}

func (g *Gateway) updateRegistration(ctx context.Context, device string, req request) answer {
	if a, ok := authorize(ctx, device); !ok {
		return a
	}
	reg, a := decodeRegistration(req)
	if reg == nil {
		return a
	}
	ctx, cancel := context.WithTimeout(ctx, g.cfg.RequestTimeout) // may write etcd
	defer cancel()
	d, err := g.backend.UpdateRegistration(ctx, device, reg)
	if err != nil {
		return g.failure(device, err)
	}
	return g.desired(req, codes.Changed, d)
}

func (g *Gateway) deregister(ctx context.Context, device string, req request) answer {
	if a, ok := authorize(ctx, device); !ok {
		return a
	}
	ctx = context.WithValue(ctx, peerKey{}, req.peer)
	if err := g.backend.Deregister(ctx, device); err != nil {
		return g.failure(device, err)
	}
	return answer{code: codes.Deleted}
}

func (g *Gateway) report(ctx context.Context, req request) (string, answer) {
	device := req.query[coap.QueryEndpoint]
	if err := coap.ValidateDeviceID(device); err != nil {
		return device, diagnostic(codes.BadRequest, "ep: %v", err)
	}
	if a, ok := authorize(ctx, device); !ok {
		return device, a
	}
	if !req.hasCF {
		return device, diagnostic(codes.BadRequest, "content-format: required; use %d (SenML-CBOR) or %d (SenML-JSON)", coap.FormatSenMLCBOR, coap.FormatSenMLJSON)
	}
	if req.format != coap.FormatSenMLCBOR && req.format != coap.FormatSenMLJSON {
		return device, diagnostic(codes.UnsupportedMediaType, "content-format: %d is not accepted; use %d (SenML-CBOR) or %d (SenML-JSON)", req.format, coap.FormatSenMLCBOR, coap.FormatSenMLJSON)
	}
	pack, err := coap.DecodePack(req.format, req.body)
	if err != nil {
		return device, diagnostic(codes.BadRequest, "%v", err)
	}
	r, err := coap.ParseReport(pack)
	if err != nil {
		return device, diagnostic(codes.BadRequest, "%v", err)
	}
	if h, ok := req.query[coap.QueryHeld]; ok {
		held, err := strconv.ParseUint(h, 10, 64)
		if err != nil || held == 0 || held > r.Seq {
			return device, diagnostic(codes.BadRequest, "held: %q is not a seq from 1 to the report's seq %d", h, r.Seq)
		}
		r.Held = held
	}
	d, dup, err := g.backend.Report(ctx, device, r)
	if err != nil {
		return device, g.failure(device, err)
	}
	g.reports.Add(1)
	if dup {
		g.duplicates.Add(1)
	}
	a := g.desired(req, codes.Changed, d)
	a.duplicate = dup
	return device, a
}

// admit takes a registration slot, or answers 4.29 with a jittered Max-Age
// when every slot is taken. release gives the slot back.
func (g *Gateway) admit() (release func(), a answer, ok bool) {
	select {
	case g.pending <- struct{}{}:
		return func() { <-g.pending }, answer{}, true
	default:
	}
	a = diagnostic(codes.TooManyRequests, "busy: %d registrations in progress; retry after Max-Age", cap(g.pending))
	a.opts = []message.Option{g.retryAfter()}
	return nil, a, false
}

// retryAfter is the Max-Age option of a refusal for overload: about
// RetryAfter.
func (g *Gateway) retryAfter() message.Option { return maxAge(g.cfg.RetryAfter) }

// maxAge is the Max-Age option of a refusal: base (at least a second)
// jittered by ±50 %, in whole seconds and at least one, so that the
// devices refused together do not come back together.
func maxAge(base time.Duration) message.Option {
	base = max(base, time.Second)
	d := base/2 + time.Duration(rand.Int64N(int64(base)))
	return message.Option{ID: message.MaxAge, Value: uint32Bytes(uint32(max(time.Second, d) / time.Second))}
}

// authorize lets a DTLS session act only for the device it authenticated
// as, and only while that credential is current. Plain CoAP (no session)
// is not checked: it exists only with --insecure-coap.
func authorize(ctx context.Context, device string) (answer, bool) {
	s := sessionOf(ctx)
	switch {
	case s == nil:
		return answer{}, true
	case s.device == "":
		return diagnostic(codes.Forbidden, "forbidden: this session has no device credential; enrol with POST /bs first"), false
	case s.device != device:
		return diagnostic(codes.Forbidden, "forbidden: ep %s is not the authenticated identity %s", device, s.device), false
	case !s.creds.Current(s.device, s.generation):
		a := diagnostic(codes.Forbidden, "forbidden: the credential of %s was revoked or replaced; open a new DTLS session with the current one", device)
		a.endSession = true
		return a, false
	}
	return answer{}, true
}

// enrol trades an enrolment token for the device's credential. It needs a
// DTLS session that authenticated only the server: a device that has a
// credential does not enrol again, and plain CoAP would expose the key.
func (g *Gateway) enrol(ctx context.Context, req request) (string, answer) {
	device := req.query[coap.QueryEndpoint]
	if err := coap.ValidateDeviceID(device); err != nil {
		return device, diagnostic(codes.BadRequest, "ep: %v", err)
	}
	switch s := sessionOf(ctx); {
	case s == nil:
		return device, diagnostic(codes.Forbidden, "forbidden: enrolment needs DTLS (udp/%d)", coap.PortDTLS)
	case s.device != "":
		return device, diagnostic(codes.Forbidden, "forbidden: this session already authenticated %s", s.device)
	}
	if !req.hasCF {
		return device, diagnostic(codes.BadRequest, "content-format: required; use %d (CBOR)", coap.FormatCBOR)
	}
	if req.format != coap.FormatCBOR {
		return device, diagnostic(codes.UnsupportedMediaType, "content-format: %d is not accepted; use %d (CBOR)", req.format, coap.FormatCBOR)
	}
	er, err := coap.DecodeEnrolRequest(req.format, req.body)
	if err != nil {
		return device, diagnostic(codes.BadRequest, "%v", err)
	}
	release, busy, ok := g.admit()
	if !ok {
		return device, busy
	}
	defer release()
	ctx, cancel := context.WithTimeout(context.WithValue(ctx, peerKey{}, req.peer), g.cfg.RequestTimeout)
	defer cancel()
	resp, err := g.backend.Enrol(ctx, device, er)
	if err != nil {
		return device, g.failure(device, err)
	}
	b, err := resp.Encode()
	if err != nil {
		g.log.Error("coap: cannot encode the enrolment response", "err", err)
		return device, diagnostic(codes.InternalServerError, "internal error")
	}
	return device, answer{code: codes.Changed, format: coap.FormatCBOR, payload: b}
}

// decodeRegistration decodes an optional registration map; a nil result
// comes with the error answer.
func decodeRegistration(req request) (*coap.Registration, answer) {
	if len(req.body) == 0 {
		return &coap.Registration{}, answer{}
	}
	format := req.format
	if !req.hasCF {
		format = coap.FormatCBOR
	}
	if format != coap.FormatCBOR && format != coap.FormatJSON {
		return nil, diagnostic(codes.UnsupportedMediaType, "content-format: %d is not accepted; use %d (CBOR) or %d (JSON)", format, coap.FormatCBOR, coap.FormatJSON)
	}
	reg, err := coap.DecodeRegistration(format, req.body)
	if err != nil {
		return nil, diagnostic(codes.BadRequest, "%v", err)
	}
	return reg, answer{}
}

// desired encodes the desired state in the format the device accepts.
func (g *Gateway) desired(req request, code codes.Code, d *coap.Desired) answer {
	format := coap.FormatCBOR
	if req.accept == coap.FormatJSON {
		format = coap.FormatJSON
	}
	b, err := d.Encode(format)
	if err != nil {
		g.log.Error("coap: cannot encode desired state", "err", err)
		return diagnostic(codes.InternalServerError, "cannot encode the desired state")
	}
	return answer{code: code, format: format, payload: b}
}

// failure maps a backend error to an answer: the one place where the
// gateway translates errors to CoAP codes.
func (g *Gateway) failure(device string, err error) answer {
	var fe *coap.FieldError
	switch {
	case errors.Is(err, ErrNotRegistered):
		return diagnostic(codes.NotFound, "device %s is not registered: register with POST /rd", device)
	case errors.Is(err, ErrForbidden):
		return diagnostic(codes.Forbidden, "forbidden: %s", strings.TrimPrefix(err.Error(), ErrForbidden.Error()+": "))
	case errors.Is(err, ErrNoImage):
		return diagnostic(codes.NotFound, "no such firmware image: the server does not have it, or withdrew it")
	case errors.As(err, &fe):
		return diagnostic(codes.BadRequest, "%v", fe)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return diagnostic(codes.ServiceUnavailable, "the control plane is busy; retry later")
	}
	g.log.Error("coap: request failed", "device", device, "err", err)
	return diagnostic(codes.InternalServerError, "internal error")
}

// writeNon sends a as a NON response to the NON request m, straight to the
// peer's session: nothing in go-coap remembers it.
func writeNon(cc mux.Conn, m *mux.Message, a answer) error {
	uc, ok := cc.(*udpclient.Conn)
	if !ok {
		return fmt.Errorf("a %T is not a UDP or DTLS connection", cc)
	}
	resp := uc.AcquireMessage(m.Context())
	defer uc.ReleaseMessage(resp)
	resp.SetCode(a.code)
	resp.SetType(message.NonConfirmable)
	resp.SetMessageID(uc.GetMessageID())
	resp.SetToken(m.Token())
	for _, o := range a.opts {
		resp.AddOptionBytes(o.ID, o.Value)
	}
	resp.SetContentFormat(a.format)
	resp.SetBody(bytes.NewReader(a.payload))
	return uc.Session().WriteMessage(resp)
}
