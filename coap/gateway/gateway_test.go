package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/udp"

	"github.com/medfleet/medfleet/coap"
	"github.com/medfleet/medfleet/internal/telemetry"
)

// failing is a Backend whose every call returns err, to check how the
// gateway maps backend outcomes to CoAP. (The server's tests cover the real
// backend, the inventory.)
type failing struct{ err error }

func (f failing) Register(context.Context, string, *coap.Registration, time.Duration) (*coap.Desired, error) {
	return nil, f.err
}
func (f failing) UpdateRegistration(context.Context, string, *coap.Registration) (*coap.Desired, error) {
	return nil, f.err
}
func (f failing) Deregister(context.Context, string) error { return f.err }
func (f failing) Report(context.Context, string, *coap.Report) (*coap.Desired, bool, error) {
	return nil, false, f.err
}
func (f failing) Enrol(context.Context, string, *coap.EnrolRequest) (*coap.EnrolResponse, error) {
	return nil, f.err
}
func (f failing) Firmware(context.Context, string) (Image, error) { return nil, f.err }

func TestFailureCodes(t *testing.T) {
	tests := []struct {
		err      error
		want     codes.Code
		wantDiag string
	}{
		{err: ErrNotRegistered, want: codes.NotFound, wantDiag: "register with POST /rd"},
		{err: fmt.Errorf("%w: the device is decommissioned", ErrForbidden), want: codes.Forbidden, wantDiag: "decommissioned"},
		{err: &coap.FieldError{Field: "ep", Err: errors.New("bad")}, want: codes.BadRequest, wantDiag: "ep: bad"},
		{err: context.DeadlineExceeded, want: codes.ServiceUnavailable, wantDiag: "retry later"},
		{err: errors.New("etcd: secret internals"), want: codes.InternalServerError, wantDiag: "internal error"},
	}
	for _, tc := range tests {
		t.Run(tc.err.Error(), func(t *testing.T) {
			addr := serve(t, failing{err: tc.err})
			cc, err := udp.Dial(addr)
			if err != nil {
				t.Fatal(err)
			}
			defer cc.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			body, _ := coap.EncodePack(coap.FormatSenMLCBOR, coap.Pack{coap.Float("seq", "", 1)})
			resp, err := cc.Post(ctx, "/dp", coap.FormatSenMLCBOR, bytes.NewReader(body), message.Option{ID: message.URIQuery, Value: []byte("ep=pump-1")})
			if err != nil {
				t.Fatal(err)
			}
			diag, _ := resp.ReadBody()
			if resp.Code() != tc.want || !strings.Contains(string(diag), tc.wantDiag) {
				t.Errorf("POST /dp with backend error %v = %v %q, want %v mentioning %q", tc.err, resp.Code(), diag, tc.want, tc.wantDiag)
			}
			if strings.Contains(string(diag), "secret") {
				t.Errorf("diagnostic %q leaks the internal error", diag)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{cfg: DefaultConfig()},
		{cfg: Config{ReadBuffer: -1, IdleTimeout: time.Minute, RequestTimeout: time.Second}, want: "coap.read_buffer"},
		{cfg: Config{IdleTimeout: time.Millisecond, RequestTimeout: time.Second}, want: "coap.idle_timeout"},
		{cfg: Config{IdleTimeout: time.Minute}, want: "coap.request_timeout"},
		{cfg: Config{IdleTimeout: time.Minute, RequestTimeout: time.Second, RetryAfter: 10 * time.Second}, want: "coap.max_pending_registrations"},
		{cfg: Config{IdleTimeout: time.Minute, RequestTimeout: time.Second, MaxPendingRegistrations: 1}, want: "coap.retry_after"},
		{cfg: Config{IdleTimeout: time.Minute, RequestTimeout: time.Second, MaxPendingRegistrations: 1, RetryAfter: 10 * time.Second, MaxHandshakeRate: 1}, want: "coap.max_downloads"},
		{cfg: func() Config { c := DefaultConfig(); c.PlainServer = "libcoap"; return c }(), want: "coap.plain_server"},
		{cfg: func() Config { c := DefaultConfig(); c.DTLSServer = ""; return c }(), want: "coap.dtls_server"},
	} {
		err := tc.cfg.Validate()
		if (tc.want == "") != (err == nil) || (err != nil && !strings.HasPrefix(err.Error(), tc.want)) {
			t.Errorf("Validate(%+v) = %v, want an error on %q", tc.cfg, err, tc.want)
		}
	}
}

// serve runs a gateway over backend on a loopback port until the test ends.
func serve(t *testing.T, backend Backend) string {
	t.Helper()
	return serveConfig(t, DefaultConfig(), backend)
}

func serveConfig(t *testing.T, cfg Config, backend Backend) string {
	t.Helper()
	_, conn := startGateway(t, cfg, backend)
	return conn.LocalAddr().String()
}

// startGateway is serveConfig that returns the gateway and its socket, for
// tests that look at its tables, counters and socket.
func startGateway(t *testing.T, cfg Config, backend Backend) (*Gateway, *net.UDPConn) {
	t.Helper()
	g, err := New(cfg, backend, slog.New(slog.DiscardHandler), telemetry.Noop())
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Serve(ctx, conn) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return g, conn
}

// blocking registers only when released, to hold registrations in progress.
type blocking struct {
	failing
	entered chan struct{}
	release chan struct{}
}

func (b blocking) Register(context.Context, string, *coap.Registration, time.Duration) (*coap.Desired, error) {
	b.entered <- struct{}{}
	<-b.release
	return &coap.Desired{}, nil
}

// TestAdmission: registrations beyond max_pending_registrations are
// answered 4.29 with a Max-Age within ±50 % of retry_after, at once.
func TestAdmission(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxPendingRegistrations, cfg.RetryAfter = 2, 10*time.Second
	b := blocking{entered: make(chan struct{}, 2), release: make(chan struct{})}
	addr := serveConfig(t, cfg, b)
	reg, _ := (&coap.Registration{Profile: "infusion-pump", Model: "M"}).Encode(coap.FormatCBOR)
	register := func(dev string) (codes.Code, uint32, error) {
		cc, err := udp.Dial(addr)
		if err != nil {
			return 0, 0, err
		}
		defer cc.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		resp, err := cc.Post(ctx, "/rd", coap.FormatCBOR, bytes.NewReader(reg), message.Option{ID: message.URIQuery, Value: []byte("ep=" + dev)})
		if err != nil {
			return 0, 0, err
		}
		maxAge, _ := resp.Options().GetUint32(message.MaxAge)
		return resp.Code(), maxAge, nil
	}
	type result struct {
		code codes.Code
		err  error
	}
	held := make(chan result, 2)
	for _, dev := range []string{"pump-1", "pump-2"} {
		go func() { c, _, err := register(dev); held <- result{c, err} }()
	}
	<-b.entered
	<-b.entered
	code, maxAge, err := register("pump-3")
	if err != nil || code != codes.TooManyRequests || maxAge < 5 || maxAge > 15 {
		t.Errorf("a third registration while two are in progress = %v, Max-Age %d, %v; want 4.29 with Max-Age 5-15", code, maxAge, err)
	}
	close(b.release)
	for range 2 {
		if r := <-held; r.err != nil || r.code != codes.Created {
			t.Errorf("a held registration = %v, %v; want 2.01", r.code, r.err)
		}
	}
}
