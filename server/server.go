// Package server assembles medfleetd: it opens the store (embedded or
// external etcd), loads the inventory, and serves the gRPC API, the CoAP
// gateway and HTTP. It is the only package that wires the device side
// (coap/gateway) to the registry side (inventory); cmd/medfleetd turns flags
// into a Config and calls Run.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	grpccreds "google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	"github.com/medfleet/medfleet/access"
	"github.com/medfleet/medfleet/audit"
	"github.com/medfleet/medfleet/coap/gateway"
	"github.com/medfleet/medfleet/credentials"
	"github.com/medfleet/medfleet/firmware"
	"github.com/medfleet/medfleet/firmware/blob"
	"github.com/medfleet/medfleet/firmware/rollout"
	"github.com/medfleet/medfleet/internal/telemetry"
	"github.com/medfleet/medfleet/inventory"
	"github.com/medfleet/medfleet/inventory/facility"
	"github.com/medfleet/medfleet/inventory/location"
	"github.com/medfleet/medfleet/maintenance/program"
	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// Server is one medfleetd.
type Server struct {
	cfg Config
	log *slog.Logger
	tel *telemetry.SDK // nil: Run sets it up from the environment

	ready chan struct{}
	mu    sync.Mutex
	addrs Addrs
	inv   *inventory.Inventory
	gw    *gateway.Gateway
	creds *credentials.Store
	keys  *keys
	// facs and locations are the facility and the location engine.
	facs      *facilities
	locations *location.Engine
	// leading is whether this replica runs the controllers now.
	leading atomic.Bool
}

// Addrs are the addresses the server listens on, once it is ready.
type Addrs struct {
	GRPC net.Addr
	// CoAPDTLS is CoAP over DTLS; CoAP is plain CoAP, nil unless
	// coap.insecure.
	CoAPDTLS net.Addr
	CoAP     net.Addr
	HTTP     net.Addr
}

// Option changes how New builds a server.
type Option func(*Server)

// WithTelemetry makes the server use sdk (tests give one that records in
// memory). Without it, Run sets up OpenTelemetry from the OTEL_* variables
// and serves Prometheus metrics on /metrics.
func WithTelemetry(sdk *telemetry.SDK) Option { return func(s *Server) { s.tel = sdk } }

// New checks cfg and builds a server; it starts nothing.
func New(cfg Config, log *slog.Logger, opts ...Option) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: log, ready: make(chan struct{})}
	for _, o := range opts {
		o(s)
	}
	return s, nil
}

// Ready is closed when every listener is serving.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Addrs returns the bound addresses; valid after Ready.
func (s *Server) Addrs() Addrs {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addrs
}

// Inventory returns the server's inventory; valid after Ready.
func (s *Server) Inventory() *inventory.Inventory {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inv
}

// CreateEnrollment makes a one-time enrolment token for device, as the
// in-process fleet simulator needs; valid after Ready.
func (s *Server) CreateEnrollment(ctx context.Context, device string) (string, error) {
	s.mu.Lock()
	creds := s.creds
	s.mu.Unlock()
	_, tok, err := creds.CreateEnrollment(ctx, device, "system", 0)
	return tok, err
}

// ApplyFacility stores a facility document (YAML), as LocationService's
// ApplyFacility does; valid after Ready.
func (s *Server) ApplyFacility(ctx context.Context, yaml []byte) error {
	s.mu.Lock()
	facs := s.facs
	s.mu.Unlock()
	_, err := facs.Apply(ctx, string(yaml), "", false)
	return err
}

// Facility is the facility model in force; valid after Ready.
func (s *Server) Facility() *facility.Facility {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.locations.Facility()
}

// CACertificate is the PEM of the CA that signs medfleetd's certificate:
// what devices and clients trust. Valid after Ready.
func (s *Server) CACertificate() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keys.serverCA.PEM()
}

// GatewayStats returns the CoAP gateway's counters; zero before Ready.
func (s *Server) GatewayStats() gateway.Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gw == nil {
		return gateway.Stats{}
	}
	return s.gw.Stats()
}

// Run serves until ctx ends, then shuts down gracefully and returns.
//
// Shutdown order: the CoAP gateway stops first, so no report is
// acknowledged that the last checkpoint might miss; then the gRPC server
// drains its calls (bounded by shutdown_timeout) and HTTP stops; then the
// audit log commits what is pending and the inventory writes its last
// checkpoint; the etcd client and the embedded etcd close last.
func (s *Server) Run(ctx context.Context) error {
	start := time.Now()
	tel := s.tel
	if tel == nil {
		sdk, err := telemetry.Setup(ctx, telemetry.Config{ServiceName: "medfleetd", SampleRatio: s.cfg.Telemetry.TraceSampleRatio, Prometheus: true})
		if err != nil {
			return err
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := sdk.Shutdown(sctx); err != nil {
				s.log.Warn("telemetry shutdown", "err", err)
			}
		}()
		tel = sdk
	}

	k, err := loadKeys(s.cfg, time.Now())
	if err != nil {
		return err
	}
	store, err := openEtcd(ctx, s.cfg, s.log, tel.Providers)
	if err != nil {
		return err
	}
	defer store.Close()

	inv, err := inventory.New(s.cfg.Inventory, store.client, s.log.With("component", "inventory"), time.Now, tel.Providers)
	if err != nil {
		return err
	}
	users := access.New(store.client, s.log.With("component", "access"), time.Now)
	creds, err := credentials.New(s.cfg.Credentials, store.client, k.pskSecret, k.deviceCA, s.log.With("component", "credentials"), time.Now)
	if err != nil {
		return err
	}
	auditLog, err := audit.New(s.cfg.Audit, store.client, s.log.With("component", "audit"), time.Now)
	if err != nil {
		return err
	}
	prog, err := program.New(s.cfg.Maintenance, store.client, inv, s.log.With("component", "maintenance"), time.Now, tel.Providers)
	if err != nil {
		return err
	}
	images, err := blob.Open(s.cfg.FirmwareDir())
	if err != nil {
		return fmt.Errorf("firmware.dir: %w", err)
	}
	defer images.Close() // after the gateway, which serves from it, stopped
	signers, err := loadSigningKeys(s.cfg.Firmware.TrustedKeys)
	if err != nil {
		return err
	}
	fw := firmware.New(store.client, images, signers, s.cfg.Firmware.MaxImageSize, s.log.With("component", "firmware"))
	rollouts, err := rollout.New(s.cfg.Rollouts, store.client, inv, fw, s.log.With("component", "rollouts"), tel.Providers)
	if err != nil {
		return err
	}
	engine, err := location.New(s.cfg.Location, locationDirectory{inv}, s.log.With("component", "location"), time.Now)
	if err != nil {
		return err
	}
	if err := registerLocationMetrics(tel.Providers, engine); err != nil {
		return fmt.Errorf("location metrics: %w", err)
	}
	facs := newFacilities(store.client, engine, s.log.With("component", "facility"))
	relay := newAvailabilityRelay(engine)
	inv.OnAvailability(relay.note)
	inv.SetModelResolver(func(di string) (model, manufacturer, profile string, ok bool) {
		m, ok := prog.ModelByDI(di)
		return m.GetModel(), m.GetManufacturer(), m.GetProfile(), ok
	})
	loadCtx, cancel := context.WithTimeout(ctx, time.Minute)
	err = errors.Join(inv.Load(loadCtx), users.Load(loadCtx), creds.Load(loadCtx), prog.Load(loadCtx), fw.Load(loadCtx), facs.Load(loadCtx))
	if err == nil {
		err = rollouts.Load(loadCtx) // after the artifacts it offers
	}
	if err == nil {
		err = engine.Load(loadCtx, store.client) // after the facility and the devices
	}
	if err == nil {
		var created bool
		if created, err = users.Bootstrap(loadCtx, s.cfg.AdminTokenPath()); created {
			s.log.Info("created the first administrator, admin; its token is in the file", "file", s.cfg.AdminTokenPath())
		}
	}
	cancel()
	if err != nil {
		return err
	}
	backend := coapBackend{inv: inv, creds: creds, audit: auditLog, serverCA: k.serverCA, images: images, rollouts: rollouts,
		locations: engine, log: s.log.With("component", "coap")}
	gw, err := gateway.New(s.cfg.CoAP.Config, backend, s.log.With("component", "coap"), tel.Providers)
	if err != nil {
		return err
	}

	var lc net.ListenConfig
	grpcLn, err := lc.Listen(ctx, "tcp", s.cfg.GRPC.Listen)
	if err != nil {
		return fmt.Errorf("grpc.listen: %w", err)
	}
	defer grpcLn.Close()
	httpLn, err := lc.Listen(ctx, "tcp", s.cfg.HTTP.Listen)
	if err != nil {
		return fmt.Errorf("http.listen: %w", err)
	}
	defer httpLn.Close()
	dtlsCfg := gateway.DTLSConfig{Certificate: k.serverCert, DeviceCAs: k.deviceCA.Pool(), Credentials: creds, HandshakeTimeout: s.cfg.CoAP.HandshakeTimeout}
	dtlsLn, err := gw.ListenDTLS(s.cfg.CoAP.DTLSListen, dtlsCfg)
	if err != nil {
		return fmt.Errorf("coap.dtls_listen: %w", err)
	}
	var coapConn *net.UDPConn
	if s.cfg.CoAP.Insecure {
		s.log.Warn("INSECURE: plain CoAP is on (--insecure-coap): any host that reaches this port can report as any device", "listen", s.cfg.CoAP.Listen)
		coapAddr, err := net.ResolveUDPAddr("udp", s.cfg.CoAP.Listen)
		if err != nil {
			return fmt.Errorf("coap.listen: %w", err)
		}
		if coapConn, err = net.ListenUDP("udp", coapAddr); err != nil {
			return fmt.Errorf("coap.listen: %w", err)
		}
	}

	healthSrv := health.NewServer()
	storeHealth := &storeHealth{client: store.client, health: healthSrv, log: s.log.With("component", "etcd")}
	authz := &authorizer{insecure: s.cfg.GRPC.Insecure, users: users, audit: auditLog, log: s.log, store: storeHealth}
	grpcOpts := []grpc.ServerOption{
		grpc.StatsHandler(otelgrpc.NewServerHandler(otelgrpc.WithTracerProvider(tel.Tracer),
			otelgrpc.WithMeterProvider(tel.Meter), otelgrpc.WithPropagators(tel.Propagator))),
		grpc.ChainUnaryInterceptor(accessLog(s.log), authz.unary),
		grpc.ChainStreamInterceptor(authz.stream),
	}
	if s.cfg.GRPC.Insecure {
		s.log.Warn("INSECURE: gRPC is plaintext and unauthenticated (--insecure-grpc): every caller is an administrator", "listen", s.cfg.GRPC.Listen)
	} else {
		grpcOpts = append(grpcOpts, grpc.Creds(grpccreds.NewTLS(k.grpcTLS())))
	}
	grpcSrv := grpc.NewServer(grpcOpts...)
	recalls := &recallService{client: store.client, inv: inv, prog: prog, log: s.log.With("component", "recalls"), now: time.Now}
	devSvc := &deviceService{inv: inv, locations: engine, prog: prog, afterImport: recalls.rematch, log: s.log}
	pb.RegisterDeviceServiceServer(grpcSrv, devSvc)
	pb.RegisterRecallServiceServer(grpcSrv, recalls)
	pb.RegisterAccessServiceServer(grpcSrv, &accessService{users: users, clientCA: k.clientCA, log: s.log, now: time.Now})
	pb.RegisterCredentialServiceServer(grpcSrv, &credentialService{creds: creds, inv: inv, serverCA: k.serverCA, log: s.log})
	pb.RegisterAuditServiceServer(grpcSrv, &auditService{log: auditLog, slg: s.log})
	pb.RegisterMaintenanceServiceServer(grpcSrv, &maintenanceService{prog: prog, inv: inv, log: s.log})
	pb.RegisterFirmwareServiceServer(grpcSrv, &firmwareService{store: fw, log: s.log})
	pb.RegisterRolloutServiceServer(grpcSrv, &rolloutService{ctl: rollouts, prop: tel.Propagator, log: s.log})
	locSvc := &locationService{engine: engine, facilities: facs, inv: inv, log: s.log}
	pb.RegisterLocationServiceServer(grpcSrv, locSvc)
	healthpb.RegisterHealthServer(grpcSrv, healthSrv)
	reflection.Register(grpcSrv)
	web := &webAPI{loc: locSvc, dev: devSvc, users: users, insecure: s.cfg.GRPC.Insecure, audit: auditLog, log: s.log.With("component", "web")}
	httpSrv := &http.Server{Handler: s.httpHandler(storeHealth, inv, tel.Metrics, web), ReadHeaderTimeout: 10 * time.Second}

	s.mu.Lock()
	s.inv, s.gw, s.creds, s.keys = inv, gw, creds, k
	s.facs, s.locations = facs, engine
	s.addrs = Addrs{GRPC: grpcLn.Addr(), CoAPDTLS: dtlsLn.Addr(), HTTP: httpLn.Addr()}
	if coapConn != nil {
		s.addrs.CoAP = coapConn.LocalAddr()
	}
	s.mu.Unlock()

	// Two lifetimes: the inventory's checkpointer and the audit log outlive
	// the listeners, so that the last checkpoint covers everything they
	// accepted and every mutation they made is recorded.
	bgCtx, stopBg := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBg()
	invDone, auditDone, locDone := make(chan error, 1), make(chan error, 1), make(chan error, 1)
	go func() { invDone <- inv.Run(bgCtx) }()
	go func() { locDone <- engine.RunFlusher(bgCtx, store.client, time.Second) }()
	go func() { auditDone <- auditLog.Run(bgCtx) }()

	g, gctx := errgroup.WithContext(ctx)
	if store.embedded == nil {
		// Other replicas may write the devices and statuses: follow them.
		// The embedded etcd has no other writer, and following it would
		// only bring this replica's own checkpoints back.
		g.Go(func() error { return inv.Follow(gctx) })
	}
	g.Go(func() error { return storeHealth.run(gctx) })
	g.Go(func() error { return users.Run(gctx) })
	g.Go(func() error { return creds.Run(gctx) })
	// The scheduler samples and counts on every replica, so that their
	// answers agree; it opens work orders only on the leader.
	g.Go(func() error { return prog.Run(gctx) })
	g.Go(func() error { return fw.Run(gctx) })
	g.Go(func() error { return rollouts.Run(gctx) })
	g.Go(func() error { return facs.Run(gctx) })
	g.Go(func() error { return engine.Run(gctx) })
	g.Go(func() error { return relay.run(gctx) })
	// The controllers (rollouts, the maintenance scheduler's writes) run
	// on the elected leader only, their writes fenced by the leader key.
	// Liveness needs no controller: it is computed when read.
	g.Go(func() error {
		lead(gctx, store.client, s.log.With("component", "leader"), func(ctx context.Context, fence []clientv3.Cmp) {
			s.leading.Store(true)
			defer s.leading.Store(false)
			var wg sync.WaitGroup
			wg.Go(func() { prog.Lead(ctx, fence) })
			_ = rollouts.Lead(ctx, fence)
			wg.Wait()
		})
		return nil
	})
	g.Go(func() error { return gw.ServeDTLS(gctx, dtlsLn, dtlsCfg) })
	if coapConn != nil {
		g.Go(func() error { return gw.Serve(gctx, coapConn) })
	}
	g.Go(func() error {
		if err := grpcSrv.Serve(grpcLn); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			return fmt.Errorf("grpc: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		if err := httpSrv.Serve(httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		healthSrv.Shutdown() // NOT_SERVING while draining
		stopped := make(chan struct{})
		go func() { grpcSrv.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(s.cfg.ShutdownTimeout):
			grpcSrv.Stop()
		}
		sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
		defer cancel()
		return httpSrv.Shutdown(sctx)
	})

	s.log.Info("medfleetd ready", "grpc", grpcLn.Addr().String(), "coaps", dtlsLn.Addr().String(), "coap", s.addrs.CoAP,
		"http", httpLn.Addr().String(), "devices", inv.Len(), "took", time.Since(start).Round(time.Millisecond))
	close(s.ready)

	err = g.Wait()
	stopBg()
	if aerr := <-auditDone; aerr != nil {
		err = errors.Join(err, aerr)
	}
	if lerr := <-locDone; lerr != nil {
		s.log.Error("last flush of device locations failed: the devices' next sightings find them again", "err", lerr)
	}
	if cerr := <-invDone; cerr != nil {
		s.log.Error("last checkpoint failed: status since the previous one is lost until devices report again", "err", cerr)
		err = errors.Join(err, cerr)
	}
	cs, gs := inv.CheckpointStats(), gw.Stats()
	s.log.Info("medfleetd stopped", "uptime", time.Since(start).Round(time.Second),
		"reports", gs.Reports, "duplicates", gs.Duplicates, "registrations", gs.Registrations, "bad_requests", gs.BadRequests,
		"checkpoints", cs.Batches, "etcd_txns", cs.Txns, "statuses_written", cs.Statuses, "checkpoint_failures", cs.Failures)
	return err
}

// accessLog writes one line per RPC.
func accessLog(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := handler(ctx, req)
		log.InfoContext(ctx, "rpc", "method", info.FullMethod, "code", status.Code(err).String(), "dur", time.Since(start))
		return resp, err
	}
}
