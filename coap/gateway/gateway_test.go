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
	g, err := New(DefaultConfig(), backend, slog.New(slog.DiscardHandler), telemetry.Noop())
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
	return conn.LocalAddr().String()
}
