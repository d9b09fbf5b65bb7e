package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	piondtls "github.com/pion/dtls/v3"
	"github.com/plgd-dev/go-coap/v3/dtls"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	udpclient "github.com/plgd-dev/go-coap/v3/udp/client"
	clientv3 "go.etcd.io/etcd/client/v3"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc"
	grpccodes "google.golang.org/grpc/codes"
	grpccreds "google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/medfleet/medfleet/access"
	"github.com/medfleet/medfleet/audit/chain"
	"github.com/medfleet/medfleet/coap"
	"github.com/medfleet/medfleet/internal/pki"
	"github.com/medfleet/medfleet/internal/telemetry"
	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// secureConfig is testConfig with medfleetd's default posture: TLS and
// authentication on gRPC, DTLS only for devices.
func secureConfig(t testing.TB) Config {
	cfg := testConfig(t, t.TempDir())
	cfg.GRPC.Insecure, cfg.CoAP.Insecure = false, false
	return cfg
}

func adminToken(t testing.TB, cfg Config) string {
	t.Helper()
	b, err := os.ReadFile(cfg.AdminTokenPath())
	if err != nil {
		t.Fatalf("admin token: %v", err)
	}
	return strings.TrimSpace(string(b))
}

// bearer sends a token with every call.
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}
func (bearer) RequireTransportSecurity() bool { return true }

// dialTLS connects to medfleetd's API trusting its CA, with a token, a
// client certificate, both or neither.
func dialTLS(t testing.TB, cfg Config, addr, token string, cert *tls.Certificate) *grpc.ClientConn {
	t.Helper()
	caPEM, err := os.ReadFile(cfg.CAPath())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	tc := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
	if cert != nil {
		tc.Certificates = []tls.Certificate{*cert}
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(grpccreds.NewTLS(tc))}
	if token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(bearer(token)))
	}
	cc, err := grpc.NewClient(addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// dialDTLS opens a DTLS session to the gateway with the given options.
func dialDTLS(t *testing.T, ts *testServer, opts ...piondtls.ClientOption) (*udpclient.Conn, error) {
	t.Helper()
	opts = append([]piondtls.ClientOption{piondtls.WithCipherSuites(coap.CipherSuites...),
		piondtls.WithConnectionIDGenerator(piondtls.OnlySendCIDGenerator())}, opts...)
	cc, err := dtls.Dial(ts.srv.Addrs().CoAPDTLS.String(), dtls.NewDTLSClientOptions(opts...))
	if err == nil {
		t.Cleanup(func() { cc.Close() })
	}
	return cc, err
}

func pskOpts(identity string, key []byte) []piondtls.ClientOption {
	return []piondtls.ClientOption{
		piondtls.WithPSK(func([]byte) ([]byte, error) { return key, nil }),
		piondtls.WithPSKIdentityHint([]byte(identity)),
	}
}

// tryPost is post that returns transport errors (a failed handshake)
// instead of failing the test.
func tryPost(cc *udpclient.Conn, path string, cf coapFormat, body []byte, q ...string) (codes.Code, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	return tryPostCtx(ctx, cc, path, cf, body, q...)
}

func tryPostCtx(ctx context.Context, cc *udpclient.Conn, path string, cf coapFormat, body []byte, q ...string) (codes.Code, string, error) {
	resp, err := cc.Post(ctx, path, cf, bytes.NewReader(body), query(q...)...)
	if err != nil {
		return 0, "", err
	}
	b, _ := resp.ReadBody()
	return resp.Code(), string(b), nil
}

type coapFormat = message.MediaType

func registration(t *testing.T) []byte {
	b, err := (&coap.Registration{Profile: "infusion-pump", Model: "Alaris 8100", Serial: "S1"}).Encode(coap.FormatCBOR)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDTLSDevices(t *testing.T) {
	cfg := secureConfig(t)
	ts := startServer(t, cfg)
	if ts.srv.Addrs().CoAP != nil {
		t.Fatal("plain CoAP is served without coap.insecure")
	}
	creds := pb.NewCredentialServiceClient(ts.conn)
	ctx := t.Context()
	issue, err := creds.IssueDeviceCredential(ctx, &pb.IssueDeviceCredentialRequest{Device: "devices/pump-1", Kind: pb.CredentialKind_CREDENTIAL_KIND_PSK})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("psk device reports", func(t *testing.T) {
		cc, err := dialDTLS(t, ts, pskOpts("pump-1", issue.Psk)...)
		if err != nil {
			t.Fatal(err)
		}
		if code, body, err := tryPost(cc, "/rd", coap.FormatCBOR, registration(t), "ep=pump-1", "lt=60"); err != nil || code != codes.Created {
			t.Fatalf("POST /rd = %v %s %v, want 2.01", code, body, err)
		}
		if code, body, err := tryPost(cc, "/dp", coap.FormatSenMLCBOR, senml(t, &coap.Report{Seq: 1, Usage: f64(60)}), "ep=pump-1"); err != nil || code != codes.Changed {
			t.Fatalf("POST /dp = %v %s %v, want 2.04", code, body, err)
		}
		// Identity pump-1 speaking for pump-2: refused, and nothing recorded.
		for _, path := range []string{"/rd", "/dp"} {
			body, cf := registration(t), coap.FormatCBOR
			if path == "/dp" {
				body, cf = senml(t, &coap.Report{Seq: 1, Usage: f64(60)}), coap.FormatSenMLCBOR
			}
			code, diag, err := tryPost(cc, path, cf, body, "ep=pump-2", "lt=60")
			if err != nil || code != codes.Forbidden || !strings.Contains(diag, "pump-2") {
				t.Errorf("POST %s?ep=pump-2 as pump-1 = %v %q %v, want 4.03 naming pump-2", path, code, diag, err)
			}
		}
		if code, _, _ := tryPost(cc, "/rd/pump-2", coap.FormatCBOR, nil); code != codes.Forbidden {
			t.Errorf("POST /rd/pump-2 as pump-1 = %v, want 4.03", code)
		}
		if _, err := ts.srv.Inventory().Get("pump-2"); err == nil {
			t.Error("pump-2 exists after requests that were refused")
		}
	})

	t.Run("wrong key fails the handshake", func(t *testing.T) {
		cc, err := dialDTLS(t, ts, pskOpts("pump-1", []byte("not-the-key-not-the-key-not-the"))...)
		if err == nil {
			_, _, err = tryPost(cc, "/dp", coap.FormatSenMLCBOR, senml(t, &coap.Report{Seq: 2}), "ep=pump-1")
		}
		if err == nil {
			t.Fatal("a session with a wrong PSK answered")
		}
	})

	t.Run("certificate device reports", func(t *testing.T) {
		resp, err := creds.IssueDeviceCredential(ctx, &pb.IssueDeviceCredentialRequest{Device: "devices/cpap-1", Kind: pb.CredentialKind_CREDENTIAL_KIND_CERTIFICATE})
		if err != nil {
			t.Fatal(err)
		}
		pair, err := tls.X509KeyPair([]byte(resp.Certificate), []byte(resp.PrivateKey))
		if err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM([]byte(resp.CaCertificate))
		cc, err := dialDTLS(t, ts, piondtls.WithCertificates(pair), piondtls.WithRootCAs(pool), piondtls.WithServerName(coap.ServerName))
		if err != nil {
			t.Fatal(err)
		}
		reg, _ := (&coap.Registration{Profile: "cpap", Model: "AirSense 11"}).Encode(coap.FormatCBOR)
		if code, body, err := tryPost(cc, "/rd", coap.FormatCBOR, reg, "ep=cpap-1"); err != nil || code != codes.Created {
			t.Fatalf("POST /rd = %v %s %v, want 2.01", code, body, err)
		}
		if code, _, _ := tryPost(cc, "/rd", coap.FormatCBOR, reg, "ep=pump-1"); code != codes.Forbidden {
			t.Errorf("cpap-1's certificate registering pump-1 = %v, want 4.03", code)
		}
	})

	t.Run("revoked device is refused", func(t *testing.T) {
		cc, err := dialDTLS(t, ts, pskOpts("pump-1", issue.Psk)...)
		if err != nil {
			t.Fatal(err)
		}
		if code, _, err := tryPost(cc, "/dp", coap.FormatSenMLCBOR, senml(t, &coap.Report{Seq: 3}), "ep=pump-1"); err != nil || code != codes.Changed {
			t.Fatalf("POST /dp before revocation = %v %v", code, err)
		}
		if _, err := creds.RevokeDeviceCredential(ctx, &pb.RevokeDeviceCredentialRequest{Name: "devices/pump-1/credential"}); err != nil {
			t.Fatal(err)
		}
		// The open session is refused at its next request...
		if code, diag, _ := tryPost(cc, "/dp", coap.FormatSenMLCBOR, senml(t, &coap.Report{Seq: 4}), "ep=pump-1"); code != codes.Forbidden {
			t.Errorf("POST /dp on the session after revocation = %v %q, want 4.03", code, diag)
		}
		// ...and a new one at its handshake.
		cc2, err := dialDTLS(t, ts, pskOpts("pump-1", issue.Psk)...)
		if err == nil {
			_, _, err = tryPost(cc2, "/dp", coap.FormatSenMLCBOR, senml(t, &coap.Report{Seq: 5}), "ep=pump-1")
		}
		if err == nil {
			t.Error("a revoked PSK completed a handshake and a request")
		}
		if d, _ := ts.srv.Inventory().Get("pump-1"); d.GetStatus().GetLastSeq() != 3 {
			t.Errorf("pump-1 last_seq = %d, want 3: nothing after the revocation counts", d.GetStatus().GetLastSeq())
		}
	})

	t.Run("enrolment with a one-time token", func(t *testing.T) {
		e, err := creds.CreateEnrollment(ctx, &pb.CreateEnrollmentRequest{Device: "devices/pump-9", Ttl: durationpb.New(10 * time.Minute)})
		if err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM([]byte(e.CaCertificate))
		enrol := func(device string) (codes.Code, string, []byte) {
			cc, err := dialDTLS(t, ts, piondtls.WithRootCAs(pool), piondtls.WithServerName(coap.ServerName))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := (&coap.EnrolRequest{Token: e.Token, Kind: coap.KindPSK}).Encode()
			code, diag, err := tryPost(cc, "/bs", coap.FormatCBOR, body, "ep="+device)
			if err != nil {
				t.Fatalf("POST /bs: %v", err)
			}
			// A server-only session may do nothing else.
			if c, _, _ := tryPost(cc, "/rd", coap.FormatCBOR, registration(t), "ep="+device); c != codes.Forbidden {
				t.Errorf("POST /rd on an enrolment session = %v, want 4.03", c)
			}
			return code, diag, []byte(diag)
		}
		if code, diag, _ := enrol("pump-8"); code != codes.Forbidden {
			t.Errorf("enrolling pump-8 with pump-9's token = %v %q, want 4.03", code, diag)
		}
		code, diag, payload := enrol("pump-9")
		if code != codes.Changed {
			t.Fatalf("POST /bs = %v %q, want 2.04", code, diag)
		}
		resp, err := coap.DecodeEnrolResponse(payload)
		if err != nil {
			t.Fatal(err)
		}
		if code, _, _ := enrol("pump-9"); code != codes.Forbidden {
			t.Errorf("reusing the token = %v, want 4.03", code)
		}
		cc, err := dialDTLS(t, ts, pskOpts("pump-9", resp.PSK)...)
		if err != nil {
			t.Fatal(err)
		}
		if code, body, err := tryPost(cc, "/rd", coap.FormatCBOR, registration(t), "ep=pump-9"); err != nil || code != codes.Created {
			t.Fatalf("POST /rd with the enrolled PSK = %v %s %v", code, body, err)
		}
	})
}

// TestEveryMethodHasARule keeps the permission table complete: a method it
// does not name is refused to everybody, which a new RPC must not be by
// accident.
func TestEveryMethodHasARule(t *testing.T) {
	for _, m := range apiMethods(t) {
		if _, ok := rules[m.full]; !ok {
			t.Errorf("%s has no entry in rules (server/authz.go)", m.full)
		}
	}
}

type apiMethod struct {
	full  string
	input protoreflect.MessageType
	// stream: the server streams until the client ends the call.
	stream bool
}

func apiMethods(t *testing.T) []apiMethod {
	var out []apiMethod
	protoregistry.GlobalFiles.RangeFilesByPackage("medfleet.v1", func(fd protoreflect.FileDescriptor) bool {
		for i := 0; i < fd.Services().Len(); i++ {
			sd := fd.Services().Get(i)
			for j := 0; j < sd.Methods().Len(); j++ {
				md := sd.Methods().Get(j)
				mt, err := protoregistry.GlobalTypes.FindMessageByName(md.Input().FullName())
				if err != nil {
					t.Fatal(err)
				}
				out = append(out, apiMethod{full: "/" + string(sd.FullName()) + "/" + string(md.Name()), input: mt, stream: md.IsStreamingServer()})
			}
		}
		return true
	})
	if len(out) < 19 {
		t.Fatalf("found %d API methods; the registry walk is broken", len(out))
	}
	return out
}

// TestRoles walks the permission table: every role calls every RPC, and is
// refused with PermissionDenied exactly where its permissions say so.
func TestRoles(t *testing.T) {
	cfg := secureConfig(t)
	ts := startServer(t, cfg)
	ctx := t.Context()
	admin := pb.NewAccessServiceClient(ts.conn)
	roles := []pb.Role{pb.Role_ROLE_ADMIN, pb.Role_ROLE_BIOMED, pb.Role_ROLE_FACILITY, pb.Role_ROLE_AUTOMATION}
	conns := map[pb.Role]*grpc.ClientConn{}
	for _, r := range roles {
		id := access.RoleName(r) + "-user"
		if _, err := admin.CreateUser(ctx, &pb.CreateUserRequest{UserId: id, User: &pb.User{Role: r}}); err != nil {
			t.Fatal(err)
		}
		tok, err := admin.CreateToken(ctx, &pb.CreateTokenRequest{Parent: "users/" + id})
		if err != nil {
			t.Fatal(err)
		}
		conns[r] = dialTLS(t, cfg, ts.srv.Addrs().GRPC.String(), tok.Secret, nil)
	}
	for _, m := range apiMethods(t) {
		rule := rules[m.full]
		for _, r := range roles {
			t.Run(access.RoleName(r)+m.full, func(t *testing.T) {
				// An empty request: allowed calls fail validation or find
				// nothing, and change nothing.
				callCtx := ctx
				if m.stream { // an allowed watch runs until it is cancelled
					var cancel context.CancelFunc
					callCtx, cancel = context.WithTimeout(ctx, 300*time.Millisecond)
					defer cancel()
				}
				err := conns[r].Invoke(callCtx, m.full, m.input.New().Interface(), m.outputOf(t))
				code := status.Code(err)
				if access.Allows(r, rule.perm) {
					if code == grpccodes.PermissionDenied || code == grpccodes.Unauthenticated {
						t.Errorf("%s as %s = %v, want it allowed (%s)", m.full, access.RoleName(r), err, rule.perm)
					}
				} else if code != grpccodes.PermissionDenied {
					t.Errorf("%s as %s = %v, want PermissionDenied (%s)", m.full, access.RoleName(r), err, rule.perm)
				}
			})
		}
	}
	// No credential, or a wrong one: Unauthenticated.
	anon := dialTLS(t, cfg, ts.srv.Addrs().GRPC.String(), "", nil)
	if _, err := pb.NewDeviceServiceClient(anon).ListDevices(ctx, &pb.ListDevicesRequest{}); status.Code(err) != grpccodes.Unauthenticated {
		t.Errorf("ListDevices without a token = %v, want Unauthenticated", err)
	}
	wrong := dialTLS(t, cfg, ts.srv.Addrs().GRPC.String(), "mft_0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", nil)
	if _, err := pb.NewDeviceServiceClient(wrong).ListDevices(ctx, &pb.ListDevicesRequest{}); status.Code(err) != grpccodes.Unauthenticated {
		t.Errorf("ListDevices with an unknown token = %v, want Unauthenticated", err)
	}
}

func (m apiMethod) outputOf(t *testing.T) proto.Message {
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(strings.ReplaceAll(strings.TrimPrefix(m.full, "/"), "/", ".")))
	if err != nil {
		t.Fatal(err)
	}
	mt, err := protoregistry.GlobalTypes.FindMessageByName(d.(protoreflect.MethodDescriptor).Output().FullName())
	if err != nil {
		t.Fatal(err)
	}
	return mt.New().Interface()
}

// syncBuffer is a log sink that tests read while the server writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestTokensCertificatesScopeAndAudit(t *testing.T) {
	cfg := secureConfig(t)
	var logs syncBuffer
	ts := startServerLog(t, cfg, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	ctx := t.Context()
	addr := ts.srv.Addrs().GRPC.String()
	admin := pb.NewAccessServiceClient(ts.conn)

	// A biomed user confined to site north, with a token and a certificate.
	if _, err := admin.CreateUser(ctx, &pb.CreateUserRequest{UserId: "alice", User: &pb.User{Role: pb.Role_ROLE_BIOMED, Site: "north"}}); err != nil {
		t.Fatal(err)
	}
	tok, err := admin.CreateToken(ctx, &pb.CreateTokenRequest{Parent: "users/alice"})
	if err != nil {
		t.Fatal(err)
	}
	key, _ := pki.NewKey()
	csr, _ := pki.NewCSR(key, "whoever")
	signed, err := admin.SignUserCertificate(ctx, &pb.SignUserCertificateRequest{Name: "users/alice", Csr: csr})
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, _ := pki.KeyPEM(key)
	pair, err := tls.X509KeyPair([]byte(signed.Certificate), keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	byCert := dialTLS(t, cfg, addr, "", &pair)
	who, err := pb.NewAccessServiceClient(byCert).GetCaller(ctx, &pb.GetCallerRequest{})
	if err != nil || who.User != "users/alice" || who.AuthenticatedBy != "certificate" || who.Site != "north" {
		t.Fatalf("GetCaller by certificate = %v, %v", who, err)
	}

	// Site scope: alice sees north's devices only, and creates in north.
	devices := pb.NewDeviceServiceClient(ts.conn)
	for _, d := range []struct{ id, site string }{{"pump-n", "north"}, {"pump-s", "south"}} {
		if _, err := devices.CreateDevice(ctx, &pb.CreateDeviceRequest{DeviceId: d.id, Device: &pb.Device{Profile: "infusion-pump", Model: "M", Site: d.site}}); err != nil {
			t.Fatal(err)
		}
	}
	alice := pb.NewDeviceServiceClient(dialTLS(t, cfg, addr, tok.Secret, nil))
	list, err := alice.ListDevices(ctx, &pb.ListDevicesRequest{})
	if err != nil || len(list.Devices) != 1 || list.Devices[0].Name != "devices/pump-n" {
		t.Errorf("ListDevices as alice = %v, %v; want pump-n only", list, err)
	}
	if _, err := alice.GetDevice(ctx, &pb.GetDeviceRequest{Name: "devices/pump-s"}); status.Code(err) != grpccodes.NotFound {
		t.Errorf("GetDevice(pump-s) as alice = %v, want NotFound", err)
	}
	if _, err := alice.CreateDevice(ctx, &pb.CreateDeviceRequest{DeviceId: "x", Device: &pb.Device{Profile: "cpap", Model: "M", Site: "south"}}); status.Code(err) != grpccodes.PermissionDenied {
		t.Errorf("CreateDevice in south as alice = %v, want PermissionDenied", err)
	}
	if _, err := pb.NewAuditServiceClient(dialTLS(t, cfg, addr, tok.Secret, nil)).ListAuditRecords(ctx, &pb.ListAuditRecordsRequest{}); status.Code(err) != grpccodes.PermissionDenied {
		t.Errorf("ListAuditRecords by a site-confined user = %v, want PermissionDenied", err)
	}

	// Secrets never reach the log.
	for _, secret := range []string{tok.Secret, adminToken(t, cfg)} {
		if strings.Contains(logs.String(), secret[20:]) {
			t.Errorf("the log contains a token's secret")
		}
	}

	// The audit log holds the mutations and their refusals, and verifies.
	recs := listAudit(t, ts, "")
	want := map[string]bool{
		"users/admin " + pb.AccessService_CreateUser_FullMethodName + " users/alice OK":               false,
		"users/alice " + pb.DeviceService_CreateDevice_FullMethodName + " devices/x PermissionDenied": false,
	}
	for _, r := range recs.Records {
		delete(want, r.Actor+" "+r.Action+" "+r.Target+" "+r.Outcome)
	}
	for w := range want {
		t.Errorf("no audit record %q", w)
	}
	if err := verify(recs); err != nil {
		t.Fatalf("audit verify on an untouched log: %v", err)
	}

	// Tamper with one record in etcd: verification names it.
	ec, err := clientv3.New(clientv3.Config{Endpoints: []string{cfg.Etcd.ListenClient}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer ec.Close()
	victim := recs.Records[1]
	key2 := "/medfleet/v1/audit/records/" + strings.TrimPrefix(victim.Name, "auditRecords/")
	got, err := ec.Get(ctx, key2)
	if err != nil || len(got.Kvs) != 1 {
		t.Fatalf("audit record %s in etcd at %s: %v", victim.Name, key2, err)
	}
	var r pb.AuditRecord
	if err := proto.Unmarshal(got.Kvs[0].Value, &r); err != nil {
		t.Fatal(err)
	}
	r.Actor = "users/somebody-else"
	b, _ := proto.Marshal(&r)
	if _, err := ec.Put(ctx, key2, string(b)); err != nil {
		t.Fatal(err)
	}
	var broken *chain.BrokenError
	if err := verify(listAudit(t, ts, "")); !errors.As(err, &broken) || broken.Sequence != victim.Sequence {
		t.Errorf("verify after tampering with record %d = %v, want a BrokenError naming it", victim.Sequence, err)
	}
}

func listAudit(t *testing.T, ts *testServer, filter string) *pb.ListAuditRecordsResponse {
	t.Helper()
	out := &pb.ListAuditRecordsResponse{}
	req := &pb.ListAuditRecordsRequest{Filter: filter, PageSize: 2}
	for {
		resp, err := pb.NewAuditServiceClient(ts.conn).ListAuditRecords(t.Context(), req)
		if err != nil {
			t.Fatal(err)
		}
		out.Records = append(out.Records, resp.Records...)
		out.HeadSequence, out.HeadHash = resp.HeadSequence, resp.HeadHash
		if resp.NextPageToken == "" {
			return out
		}
		req.PageToken = resp.NextPageToken
	}
}

func verify(recs *pb.ListAuditRecordsResponse) error {
	v := chain.NewVerifier()
	for _, r := range recs.Records {
		if err := v.Add(r); err != nil {
			return err
		}
	}
	return v.Done(recs.HeadSequence, recs.HeadHash)
}

// TestHandshakeThrottle: beyond coap.max_handshakes_per_second a
// ClientHello is dropped (counted as throttled) and the device's own DTLS
// retransmission gets through once the rate allows.
func TestHandshakeThrottle(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	sdk := &telemetry.SDK{Providers: telemetry.Providers{Tracer: tracenoop.NewTracerProvider(),
		Meter: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)), Propagator: telemetry.Propagator()}}
	cfg := secureConfig(t)
	cfg.CoAP.MaxHandshakeRate = 1
	ts := startServer(t, cfg, WithTelemetry(sdk))
	issue, err := pb.NewCredentialServiceClient(ts.conn).IssueDeviceCredential(t.Context(),
		&pb.IssueDeviceCredentialRequest{Device: "devices/pump-1", Kind: pb.CredentialKind_CREDENTIAL_KIND_PSK})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		cc, err := dialDTLS(t, ts, pskOpts("pump-1", issue.Psk)...)
		if err != nil {
			t.Fatal(err)
		}
		if code, _, err := tryPostCtx(t.Context(), cc, "/rd", coap.FormatCBOR, registration(t), "ep=pump-1"); err != nil || code != codes.Created {
			t.Fatalf("registration %d: %v %v, want 2.01 (after the device's retransmission if throttled)", i, code, err)
		}
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(t.Context(), &rm); err != nil {
		t.Fatal(err)
	}
	throttled := int64(-1)
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != "medfleet.coap.dtls.handshakes" {
				continue
			}
			for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
				if v, _ := dp.Attributes.Value("result"); v.AsString() == "throttled" {
					throttled = dp.Value
				}
			}
		}
	}
	if throttled < 1 {
		t.Errorf("throttled handshakes = %d, want at least 1: two within a second at a rate of 1/s", throttled)
	}
}
