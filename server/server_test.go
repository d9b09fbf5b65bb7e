package server

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/udp"
	udpclient "github.com/plgd-dev/go-coap/v3/udp/client"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	grpccodes "google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/medfleet/medfleet/coap"
	"github.com/medfleet/medfleet/internal/etcdtest"
	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// testServer is a real medfleetd on loopback with its embedded etcd.
type testServer struct {
	srv    *Server
	cancel context.CancelFunc
	done   chan error
	client pb.DeviceServiceClient
	conn   *grpc.ClientConn
}

func testConfig(t testing.TB, dataDir string) Config {
	cfg := DefaultConfig()
	cfg.DataDir = dataDir
	clientURL, peerURL := etcdtest.FreeURL(t), etcdtest.FreeURL(t)
	cfg.Etcd.ListenClient, cfg.Etcd.ListenPeer = clientURL.String(), peerURL.String()
	cfg.GRPC.Listen, cfg.CoAP.Listen, cfg.CoAP.DTLSListen, cfg.HTTP.Listen = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.Inventory.CheckpointInterval = 50 * time.Millisecond
	// These tests speak the protocol and the API themselves; security_test.go
	// tests the secure posture.
	cfg.GRPC.Insecure, cfg.CoAP.Insecure = true, true
	return cfg
}

func startServer(t testing.TB, cfg Config, opts ...Option) *testServer {
	t.Helper()
	return startServerLog(t, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), opts...)
}

// startServerLog starts a server that logs to log. Its client speaks TLS
// with the first administrator's token unless cfg is insecure.
func startServerLog(t testing.TB, cfg Config, log *slog.Logger, opts ...Option) *testServer {
	t.Helper()
	srv, err := New(cfg, log, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ts := &testServer{srv: srv, cancel: cancel, done: make(chan error, 1)}
	go func() { ts.done <- srv.Run(ctx) }()
	select {
	case <-srv.Ready():
	case err := <-ts.done:
		t.Fatalf("Run: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("server not ready after 30s")
	}
	if cfg.GRPC.Insecure {
		ts.conn, err = grpc.NewClient(srv.Addrs().GRPC.String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
	} else {
		ts.conn = dialTLS(t, cfg, srv.Addrs().GRPC.String(), adminToken(t, cfg), nil)
	}
	ts.client = pb.NewDeviceServiceClient(ts.conn)
	t.Cleanup(ts.stop)
	return ts
}

func (ts *testServer) stop() {
	if ts.cancel == nil {
		return
	}
	ts.conn.Close()
	ts.cancel()
	<-ts.done
	ts.cancel = nil
}

func dialCoAP(t *testing.T, ts *testServer) *udpclient.Conn {
	t.Helper()
	cc, err := udp.Dial(ts.srv.Addrs().CoAP.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

func query(q ...string) []message.Option {
	opts := make([]message.Option, len(q))
	for i, s := range q {
		opts[i] = message.Option{ID: message.URIQuery, Value: []byte(s)}
	}
	return opts
}

func post(t *testing.T, cc *udpclient.Conn, path string, cf message.MediaType, body []byte, opts ...message.Option) (codes.Code, []byte, *pool.Message) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := cc.Post(ctx, path, cf, bytes.NewReader(body), opts...)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	payload, _ := resp.ReadBody()
	return resp.Code(), payload, resp
}

func senml(t *testing.T, r *coap.Report) []byte {
	t.Helper()
	b, err := coap.EncodePack(coap.FormatSenMLCBOR, r.Pack())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func f64(v float64) *float64 { return &v }

func TestDeviceAPI(t *testing.T) {
	ts := startServer(t, testConfig(t, t.TempDir()))
	ctx := context.Background()

	created, err := ts.client.CreateDevice(ctx, &pb.CreateDeviceRequest{
		DeviceId:  "pump-4471",
		Device:    &pb.Device{Profile: "infusion-pump", Model: "Alaris 8100", Manufacturer: "BD", Serial: "8100-4471"},
		RequestId: "0b1c",
	})
	if err != nil {
		t.Fatalf("CreateDevice: %v", err)
	}
	if created.GetName() != "devices/pump-4471" {
		t.Errorf("CreateDevice().Name = %q, want devices/pump-4471", created.GetName())
	}

	invalid := []struct {
		name      string
		call      func() error
		wantField string
	}{
		{"create without id", func() error {
			_, err := ts.client.CreateDevice(ctx, &pb.CreateDeviceRequest{Device: &pb.Device{Profile: "cpap", Model: "m"}})
			return err
		}, "device_id"},
		{"create without profile", func() error {
			_, err := ts.client.CreateDevice(ctx, &pb.CreateDeviceRequest{DeviceId: "x", Device: &pb.Device{Model: "m"}})
			return err
		}, "device.profile"},
		{"get bad name", func() error {
			_, err := ts.client.GetDevice(ctx, &pb.GetDeviceRequest{Name: "pump-4471"})
			return err
		}, "name"},
		{"list bad filter", func() error {
			_, err := ts.client.ListDevices(ctx, &pb.ListDevicesRequest{Filter: "colour = red"})
			return err
		}, "filter"},
		{"list bad token", func() error {
			_, err := ts.client.ListDevices(ctx, &pb.ListDevicesRequest{PageToken: "nope"})
			return err
		}, "page_token"},
		{"update without mask", func() error {
			_, err := ts.client.UpdateDevice(ctx, &pb.UpdateDeviceRequest{Device: &pb.Device{Name: "devices/pump-4471"}})
			return err
		}, "update_mask"},
	}
	for _, tc := range invalid {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			st := status.Convert(err)
			if st.Code() != grpccodes.InvalidArgument || !strings.HasPrefix(st.Message(), tc.wantField+":") {
				t.Fatalf("%s = %v, want InvalidArgument naming %s", tc.name, err, tc.wantField)
			}
			var found bool
			for _, d := range st.Details() {
				if br, ok := d.(*errdetails.BadRequest); ok && len(br.GetFieldViolations()) == 1 && br.GetFieldViolations()[0].GetField() == tc.wantField {
					found = true
				}
			}
			if !found {
				t.Errorf("%s: no BadRequest field violation for %s in %v", tc.name, tc.wantField, st.Details())
			}
		})
	}

	codeTests := []struct {
		name string
		call func() error
		want grpccodes.Code
	}{
		{"get unknown", func() error {
			_, err := ts.client.GetDevice(ctx, &pb.GetDeviceRequest{Name: "devices/nope"})
			return err
		}, grpccodes.NotFound},
		{"create twice", func() error {
			_, err := ts.client.CreateDevice(ctx, &pb.CreateDeviceRequest{DeviceId: "pump-4471", Device: &pb.Device{Profile: "cpap", Model: "m"}})
			return err
		}, grpccodes.AlreadyExists},
		{"update stale etag", func() error {
			_, err := ts.client.UpdateDevice(ctx, &pb.UpdateDeviceRequest{
				Device:     &pb.Device{Name: "devices/pump-4471", Model: "x", Etag: "1"},
				UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"model"}},
			})
			return err
		}, grpccodes.Aborted},
	}
	for _, tc := range codeTests {
		if err := tc.call(); status.Code(err) != tc.want {
			t.Errorf("%s = %v, want %v", tc.name, err, tc.want)
		}
	}

	upd, err := ts.client.UpdateDevice(ctx, &pb.UpdateDeviceRequest{
		Device:     &pb.Device{Name: "devices/pump-4471", Labels: map[string]string{"unit": "4-west"}, Etag: created.GetEtag()},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"labels"}},
	})
	if err != nil || upd.GetLabels()["unit"] != "4-west" || upd.GetModel() != "Alaris 8100" {
		t.Fatalf("UpdateDevice(labels) = %v, %v; want the label set and the model kept", upd, err)
	}
	list, err := ts.client.ListDevices(ctx, &pb.ListDevicesRequest{Filter: `labels.unit = "4-west"`})
	if err != nil || len(list.GetDevices()) != 1 {
		t.Fatalf("ListDevices(labels.unit) = %v, %v; want pump-4471", list, err)
	}
	if _, err := ts.client.DeleteDevice(ctx, &pb.DeleteDeviceRequest{Name: "devices/pump-4471"}); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.client.DeleteDevice(ctx, &pb.DeleteDeviceRequest{Name: "devices/pump-4471"}); status.Code(err) != grpccodes.FailedPrecondition {
		t.Errorf("DeleteDevice(twice) = %v, want FailedPrecondition", err)
	}

	hc, err := healthpb.NewHealthClient(ts.conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || hc.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("Health.Check() = %v, %v; want SERVING", hc, err)
	}

	// Server reflection lists the API, so grpcurl and friends work.
	stream, err := reflectionpb.NewServerReflectionClient(ts.conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	rr, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var services []string
	for _, s := range rr.GetListServicesResponse().GetService() {
		services = append(services, s.GetName())
	}
	if !slices.Contains(services, "medfleet.v1.DeviceService") || !slices.Contains(services, "grpc.health.v1.Health") {
		t.Errorf("reflection ListServices = %v, want medfleet.v1.DeviceService and grpc.health.v1.Health", services)
	}
}

func TestCoAPProtocol(t *testing.T) {
	dataDir := t.TempDir()
	cfg := testConfig(t, dataDir)
	ts := startServer(t, cfg)
	cc := dialCoAP(t, ts)
	ctx := context.Background()

	// Discovery.
	gctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	resp, err := cc.Get(gctx, "/.well-known/core")
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	links, _ := resp.ReadBody()
	if resp.Code() != codes.Content || !strings.Contains(string(links), `</rd>`) || !strings.Contains(string(links), `</dp>`) {
		t.Errorf("GET /.well-known/core = %v %q, want 2.05 listing </rd> and </dp>", resp.Code(), links)
	}

	// Registration, CBOR.
	reg, _ := (&coap.Registration{Profile: "infusion-pump", Model: "Alaris 8100", Serial: "S1", Firmware: "12.1.0"}).Encode(coap.FormatCBOR)
	code, body, msg := post(t, cc, "/rd", coap.FormatCBOR, reg, query("ep=pump-1", "lt=60")...)
	if code != codes.Created {
		t.Fatalf("POST /rd = %v %s, want 2.01", code, body)
	}
	loc, _ := msg.Options().LocationPath()
	if loc != "/rd/pump-1" {
		t.Errorf("POST /rd Location-Path = %q, want /rd/pump-1", loc)
	}

	// Reports: SenML-CBOR and SenML-JSON; a duplicate is acknowledged and ignored.
	code, body, _ = post(t, cc, "/dp", coap.FormatSenMLCBOR, senml(t, &coap.Report{Seq: 1, Usage: f64(3600), State: coap.StateInUse}), query("ep=pump-1")...)
	if code != codes.Changed {
		t.Fatalf("POST /dp = %v %s, want 2.04", code, body)
	}
	if d, err := coap.DecodeDesired(coap.FormatCBOR, body); err != nil || d.Seq != 1 || d.Interval != 10 {
		t.Errorf("POST /dp desired = %+v, %v; want seq 1, interval 10", d, err)
	}
	jsonPack := []byte(`[{"bn":"","n":"seq","v":2},{"n":"usage","u":"s","v":5400},{"n":"state","vs":"idle"},{"n":"battery","u":"%EL","v":81}]`)
	code, body, _ = post(t, cc, "/dp", coap.FormatSenMLJSON, jsonPack, append(query("ep=pump-1"), message.Option{ID: message.Accept, Value: []byte{byte(coap.FormatJSON)}})...)
	if code != codes.Changed || !strings.Contains(string(body), `"seq":2`) {
		t.Errorf("POST /dp (SenML-JSON, Accept JSON) = %v %s, want 2.04 with JSON seq 2", code, body)
	}
	post(t, cc, "/dp", coap.FormatSenMLCBOR, senml(t, &coap.Report{Seq: 2, Usage: f64(5400)}), query("ep=pump-1")...)

	// Malformed input: 4.00 (or 4.13/4.15) with a diagnostic, and nothing changes.
	bad := []struct {
		name     string
		path     string
		cf       message.MediaType
		body     []byte
		query    []string
		wantCode codes.Code
		wantDiag string
	}{
		{"not CBOR", "/dp", coap.FormatSenMLCBOR, []byte{0xff, 0x00}, []string{"ep=pump-1"}, codes.BadRequest, "payload"},
		{"no seq", "/dp", coap.FormatSenMLJSON, []byte(`[{"n":"usage","v":99999}]`), []string{"ep=pump-1"}, codes.BadRequest, "seq: required"},
		{"negative usage", "/dp", coap.FormatSenMLJSON, []byte(`[{"n":"seq","v":3},{"n":"usage","v":-5}]`), []string{"ep=pump-1"}, codes.BadRequest, "usage"},
		{"bad state", "/dp", coap.FormatSenMLJSON, []byte(`[{"n":"seq","v":3},{"n":"state","vs":"asleep"}]`), []string{"ep=pump-1"}, codes.BadRequest, "state"},
		{"no ep", "/dp", coap.FormatSenMLJSON, []byte(`[{"n":"seq","v":3}]`), nil, codes.BadRequest, "ep"},
		{"wrong format", "/dp", coap.FormatJSON, []byte(`{}`), []string{"ep=pump-1"}, codes.UnsupportedMediaType, "content-format"},
		{"too large", "/dp", coap.FormatSenMLJSON, bytes.Repeat([]byte(" "), coap.MaxPayload+1), []string{"ep=pump-1"}, codes.RequestEntityTooLarge, "payload"},
		{"registration bad lt", "/rd", coap.FormatCBOR, reg, []string{"ep=pump-2", "lt=1"}, codes.BadRequest, "lt"},
		{"registration no profile", "/rd", coap.FormatJSON, []byte(`{"model":"x"}`), []string{"ep=pump-2"}, codes.BadRequest, "profile"},
		{"unknown path", "/telemetry", coap.FormatSenMLJSON, nil, nil, codes.NotFound, "no resource"},
		{"unregistered device", "/dp", coap.FormatSenMLJSON, []byte(`[{"n":"seq","v":1}]`), []string{"ep=ghost"}, codes.NotFound, "not registered"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			code, body, _ := post(t, cc, tc.path, tc.cf, tc.body, query(tc.query...)...)
			if code != tc.wantCode || !strings.Contains(string(body), tc.wantDiag) {
				t.Errorf("POST %s (%s) = %v %q, want %v with a diagnostic mentioning %q", tc.path, tc.name, code, body, tc.wantCode, tc.wantDiag)
			}
		})
	}

	// A Block1 upload is refused whatever its size: block 0 of 1024 bytes, more to come.
	block1 := message.Option{ID: message.Block1, Value: []byte{0x0e}}
	if code, body, _ := post(t, cc, "/dp", coap.FormatSenMLJSON, []byte(`[{"n":"seq","v":3}]`), append(query("ep=pump-1"), block1)...); code != codes.RequestEntityTooLarge {
		t.Errorf("POST /dp with Block1 = %v %q, want 4.13", code, body)
	}
	// An Accept the server does not offer.
	if code, body, _ := post(t, cc, "/dp", coap.FormatSenMLJSON, []byte(`[{"n":"seq","v":3}]`), append(query("ep=pump-1"), message.Option{ID: message.Accept, Value: []byte{112}})...); code != codes.NotAcceptable {
		t.Errorf("POST /dp with Accept 112 = %v %q, want 4.06", code, body)
	}

	d, err := ts.client.GetDevice(ctx, &pb.GetDeviceRequest{Name: "devices/pump-1"})
	if err != nil {
		t.Fatal(err)
	}
	st := d.GetStatus()
	if st.GetUsageSeconds() != 5400 || st.GetLastSeq() != 2 || st.GetReportsDuplicate() != 1 || st.GetBatteryPercent() != 81 ||
		st.GetClinicalState() != pb.ClinicalState_CLINICAL_STATE_IDLE || st.GetConnectivity() != pb.Connectivity_CONNECTIVITY_ONLINE ||
		st.GetFirmwareVersion() != "12.1.0" || d.GetModel() != "Alaris 8100" {
		t.Errorf("device after reports and bad input = %v", d)
	}
	if _, err := ts.client.GetDevice(ctx, &pb.GetDeviceRequest{Name: "devices/pump-2"}); status.Code(err) != grpccodes.NotFound {
		t.Errorf("GetDevice(pump-2) after refused registrations = %v, want NotFound", err)
	}

	// Heartbeat and deregistration.
	if code, body, _ := post(t, cc, "/rd/pump-1", coap.FormatCBOR, nil); code != codes.Changed {
		t.Errorf("POST /rd/pump-1 = %v %s, want 2.04", code, body)
	}
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	resp, err = cc.Delete(dctx, "/rd/pump-1")
	cancel()
	if err != nil || resp.Code() != codes.Deleted {
		t.Fatalf("DELETE /rd/pump-1 = %v, %v; want 2.02", resp, err)
	}
	if code, _, _ := post(t, cc, "/rd/pump-1", coap.FormatCBOR, nil); code != codes.NotFound {
		t.Errorf("POST /rd/pump-1 after DELETE = %v, want 4.04", code)
	}

	// Everything survives a restart of medfleetd.
	ts.stop()
	ts2 := startServer(t, cfg)
	d2, err := ts2.client.GetDevice(ctx, &pb.GetDeviceRequest{Name: "devices/pump-1"})
	if err != nil {
		t.Fatal(err)
	}
	if d2.GetStatus().GetUsageSeconds() != 5400 || d2.GetStatus().GetLastSeq() != 2 {
		t.Errorf("after restart: usage %v, last_seq %d; want 5400, 2", d2.GetStatus().GetUsageSeconds(), d2.GetStatus().GetLastSeq())
	}
}
