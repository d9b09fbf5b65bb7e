// Command medfleetd is Medfleet's control plane: the gRPC API, the CoAP
// gateway for devices and HTTP health, over an embedded or external etcd.
//
//	medfleetd [--config medfleetd.yaml] [--data-dir DIR] [--etcd-endpoints URLS]
//	          [--etcd-listen-client URL] [--etcd-listen-peer URL]
//	          [--grpc-listen ADDR] [--coap-dtls-listen ADDR] [--http-listen ADDR]
//	          [--tls-cert FILE --tls-key FILE] [--client-ca FILE]
//	          [--insecure-grpc] [--insecure-coap [--coap-listen ADDR]]
//	          [--firmware-keys FILE] [--facility FILE]
//	          [--simulate N] [--simulate-time-scale X] [--trace-sample-ratio R]
//	          [--log-level LEVEL]
//
// OpenTelemetry exporters are configured by the standard OTEL_* variables;
// nothing is exported unless they ask for it.
//
// Flags override the config file; docs/operations.md lists every setting.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"go.opentelemetry.io/otel"

	"github.com/medfleet/medfleet/agent"
	"github.com/medfleet/medfleet/internal/simfleet"
	"github.com/medfleet/medfleet/internal/telemetry"
	"github.com/medfleet/medfleet/server"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "medfleetd:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("medfleetd", flag.ContinueOnError)
	var (
		configFile    = fs.String("config", "", "YAML config file; flags override it")
		dataDir       = fs.String("data-dir", "", "directory of the embedded etcd's data (default ./medfleet-data)")
		endpoints     = fs.String("etcd-endpoints", "", "comma-separated endpoints of an external etcd cluster instead of the embedded one")
		etcdClient    = fs.String("etcd-listen-client", "", "embedded etcd's client URL, for etcdctl (default http://127.0.0.1:2379)")
		etcdPeer      = fs.String("etcd-listen-peer", "", "embedded etcd's peer URL (default http://127.0.0.1:2380)")
		grpcListen    = fs.String("grpc-listen", "", "gRPC API address (default 127.0.0.1:7443)")
		coapListen    = fs.String("coap-listen", "", "plain CoAP UDP address, with --insecure-coap (default :5683)")
		dtlsListen    = fs.String("coap-dtls-listen", "", "CoAP over DTLS UDP address (default :5684)")
		tlsCert       = fs.String("tls-cert", "", "the API's TLS certificate, PEM (default: issued by medfleetd's own CA in DATA_DIR/tls)")
		tlsKey        = fs.String("tls-key", "", "the key of --tls-cert, PEM")
		clientCA      = fs.String("client-ca", "", "CA that signs client certificates, PEM (default: medfleetd's own CA)")
		insecureGRPC  = fs.Bool("insecure-grpc", false, "INSECURE: plaintext gRPC without authentication; every caller is an administrator (development only)")
		insecureCoAP  = fs.Bool("insecure-coap", false, "INSECURE: also serve plain CoAP on --coap-listen, where devices are not authenticated")
		httpListen    = fs.String("http-listen", "", "HTTP address for /healthz (default :8080)")
		pprofOn       = fs.Bool("pprof", false, "serve Go's profiles under /debug/pprof/ on --http-listen, unauthenticated (trusted networks only)")
		facilityFile  = fs.String("facility", "", "facility YAML to apply at start (examples/facility/hospital.yaml); --simulate's devices then carry RFID tags and move through it")
		fwKeys        = fs.String("firmware-keys", "", "PEM file of the ed25519 public keys firmware uploads must be signed with (simulated devices trust them too)")
		simulate      = fs.Int("simulate", 0, "also run this many simulated devices in this process")
		simTimeScale  = fs.Float64("simulate-time-scale", 60, "simulated device seconds per real second")
		simInterval   = fs.Duration("simulate-interval", 5*time.Second, "report interval of the simulated devices until the server says otherwise")
		logLevel      = fs.String("log-level", "info", "debug, info, warn or error")
		reportIntvl   = fs.Duration("report-interval", 0, "report interval the server asks devices for (default 10s)")
		checkpointInt = fs.Duration("checkpoint-interval", 0, "how often changed device status is written to etcd (default 5s)")
		sampleRatio   = fs.Float64("trace-sample-ratio", 0, "share of root traces kept; sampled callers are always followed (default 0.01)")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	// Lines logged within a traced request carry its trace_id and span_id.
	log := slog.New(telemetry.LogHandler(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})))
	// Export failures (a collector that is down) are worth a warning, not
	// the SDK's default line on stderr.
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { log.Warn("opentelemetry export", "err", err) }))

	cfg := server.DefaultConfig()
	if *configFile != "" {
		if err := server.LoadConfigFile(*configFile, &cfg); err != nil {
			return err
		}
	}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "data-dir":
			cfg.DataDir = *dataDir
		case "etcd-endpoints":
			cfg.Etcd.Endpoints = strings.Split(*endpoints, ",")
		case "etcd-listen-client":
			cfg.Etcd.ListenClient = *etcdClient
		case "etcd-listen-peer":
			cfg.Etcd.ListenPeer = *etcdPeer
		case "grpc-listen":
			cfg.GRPC.Listen = *grpcListen
		case "coap-listen":
			cfg.CoAP.Listen = *coapListen
		case "coap-dtls-listen":
			cfg.CoAP.DTLSListen = *dtlsListen
		case "tls-cert":
			cfg.GRPC.TLSCert = *tlsCert
		case "tls-key":
			cfg.GRPC.TLSKey = *tlsKey
		case "client-ca":
			cfg.GRPC.ClientCA = *clientCA
		case "insecure-grpc":
			cfg.GRPC.Insecure = *insecureGRPC
		case "insecure-coap":
			cfg.CoAP.Insecure = *insecureCoAP
		case "http-listen":
			cfg.HTTP.Listen = *httpListen
		case "pprof":
			cfg.HTTP.Pprof = *pprofOn
		case "firmware-keys":
			cfg.Firmware.TrustedKeys = *fwKeys
		case "report-interval":
			cfg.Inventory.ReportInterval = *reportIntvl
		case "checkpoint-interval":
			cfg.Inventory.CheckpointInterval = *checkpointInt
		case "trace-sample-ratio":
			cfg.Telemetry.TraceSampleRatio = *sampleRatio
		}
	})
	if *simulate < 0 || *simTimeScale <= 0 {
		return errors.New("--simulate and --simulate-time-scale must be positive")
	}

	srv, err := server.New(cfg, log)
	if err != nil {
		return err
	}
	sigCtx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var facilityDoc []byte
	if *facilityFile != "" {
		if facilityDoc, err = os.ReadFile(*facilityFile); err != nil {
			return fmt.Errorf("--facility: %w", err)
		}
	}
	if *simulate == 0 && facilityDoc == nil {
		return srv.Run(sigCtx)
	}

	// With a simulated fleet, a signal stops the fleet first, so that its
	// devices deliver their last reports and deregister, and the server after.
	srvCtx, stopServer := context.WithCancel(context.Background())
	defer stopServer()
	errc := make(chan error, 1)
	go func() { errc <- srv.Run(srvCtx) }()
	select {
	case <-srv.Ready():
	case err := <-errc:
		return err
	case <-sigCtx.Done():
		stopServer()
		return <-errc
	}
	if facilityDoc != nil {
		if err := srv.ApplyFacility(sigCtx, facilityDoc); err != nil {
			stopServer()
			return errors.Join(fmt.Errorf("--facility %s: %w", *facilityFile, err), <-errc)
		}
		log.Info("facility applied", "file", *facilityFile, "zones", srv.Facility().Zones())
	}
	if *simulate == 0 {
		select {
		case err := <-errc:
			return err
		case <-sigCtx.Done():
			stopServer()
			return <-errc
		}
	}
	sim, err := newSimulator(sigCtx, srv, agent.SimConfig{
		Server:    loopback(srv.Addrs().CoAPDTLS),
		Devices:   *simulate,
		StateDir:  filepath.Join(cfg.DataDir, "simulator"),
		Interval:  *simInterval,
		TimeScale: *simTimeScale,
		// The simulated devices enrol themselves over DTLS, with tokens the
		// server makes for them, as a real device would with one from
		// medfleetctl.
		CA:     srv.CACertificate(),
		Enroll: srv.CreateEnrollment,
		// The simulated devices trust the keys the server trusts.
		FirmwareKeysFile: cfg.Firmware.TrustedKeys,
	}, log.With("component", "simulator"))
	if err != nil {
		stopServer()
		return errors.Join(err, <-errc)
	}
	log.Info("simulating devices", "devices", *simulate, "time_scale", *simTimeScale)
	simDone := make(chan error, 1)
	go func() { simDone <- sim.Run(sigCtx) }()
	select {
	case err := <-errc: // the server stopped on its own: stop the fleet too
		stop()
		return errors.Join(err, <-simDone)
	case simErr := <-simDone:
		stopServer()
		return errors.Join(simErr, <-errc)
	}
}

// newSimulator builds the simulated fleet. With a facility, its movable
// devices carry RFID tags (recorded in the registry) and walk through it,
// and the readers it places report them.
func newSimulator(ctx context.Context, srv *server.Server, sc agent.SimConfig, log *slog.Logger) (*agent.Simulator, error) {
	fac := srv.Facility()
	if fac.Zones() == 0 {
		return agent.NewSimulator(sc, log)
	}
	probe, err := agent.NewSimulator(sc, log) // to learn the fleet's devices
	if err != nil {
		return nil, err
	}
	devices := probe.Devices()
	sc.World = simfleet.World(fac, devices)
	if err := simfleet.TagDevices(ctx, srv.Inventory(), sc.World, devices); err != nil {
		return nil, err
	}
	return agent.NewSimulator(sc, log)
}

// loopback turns a wildcard listen address into one the simulator can send
// to in the same process.
func loopback(a net.Addr) string {
	ua, ok := a.(*net.UDPAddr)
	if !ok || ua.IP == nil || ua.IP.IsUnspecified() {
		_, port, _ := net.SplitHostPort(a.String())
		return net.JoinHostPort("127.0.0.1", port)
	}
	return ua.String()
}
