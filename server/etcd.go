package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3client"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"

	"github.com/medfleet/medfleet/internal/telemetry"
)

// etcdStore is the client the server uses, and the embedded etcd behind it
// when there is one.
type etcdStore struct {
	client   *clientv3.Client
	embedded *embed.Etcd // nil with an external cluster
	closing  *atomic.Bool
}

// openEtcd connects to the external cluster, or starts the embedded etcd and
// connects to it in process (no socket, no gRPC hop).
func openEtcd(ctx context.Context, cfg Config, log *slog.Logger, tel telemetry.Providers) (*etcdStore, error) {
	if len(cfg.Etcd.Endpoints) > 0 {
		c, err := clientv3.New(clientv3.Config{
			Endpoints:   cfg.Etcd.Endpoints,
			DialTimeout: cfg.Etcd.DialTimeout,
			Context:     ctx,
			Logger:      etcdLogger(new(atomic.Bool)),
			// Spans for every etcd RPC, children of the request that made it.
			DialOptions: []grpc.DialOption{grpc.WithStatsHandler(otelgrpc.NewClientHandler(
				otelgrpc.WithTracerProvider(tel.Tracer), otelgrpc.WithMeterProvider(tel.Meter), otelgrpc.WithPropagators(tel.Propagator)))},
		})
		if err != nil {
			return nil, fmt.Errorf("etcd: connect to %v: %w", cfg.Etcd.Endpoints, err)
		}
		// Fail fast when no member answers, rather than at the first request.
		sctx, cancel := context.WithTimeout(ctx, cfg.Etcd.DialTimeout)
		defer cancel()
		if _, err := c.Get(sctx, "/medfleet/v1/", clientv3.WithCountOnly()); err != nil {
			c.Close()
			return nil, fmt.Errorf("etcd: no answer from %v: %w", cfg.Etcd.Endpoints, err)
		}
		log.Info("using external etcd", "endpoints", cfg.Etcd.Endpoints)
		return &etcdStore{client: c}, nil
	}

	ecfg := embed.NewConfig()
	ecfg.Name = "medfleet"
	ecfg.Dir = filepath.Join(cfg.DataDir, "etcd")
	closing := new(atomic.Bool)
	ecfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(etcdLogger(closing))
	lc, err := url.Parse(cfg.Etcd.ListenClient)
	if err != nil {
		return nil, fmt.Errorf("etcd.listen_client: %w", err)
	}
	lp, err := url.Parse(cfg.Etcd.ListenPeer)
	if err != nil {
		return nil, fmt.Errorf("etcd.listen_peer: %w", err)
	}
	ecfg.ListenClientUrls, ecfg.AdvertiseClientUrls = []url.URL{*lc}, []url.URL{*lc}
	ecfg.ListenPeerUrls, ecfg.AdvertisePeerUrls = []url.URL{*lp}, []url.URL{*lp}
	ecfg.InitialCluster = ecfg.InitialClusterFromName(ecfg.Name)
	// Without auto-compaction every revision is kept and the quota fills.
	ecfg.AutoCompactionMode = embed.CompactorModePeriodic
	ecfg.AutoCompactionRetention = cfg.Etcd.CompactionRetention.String()
	ecfg.QuotaBackendBytes = cfg.Etcd.QuotaBytes

	start := time.Now()
	e, err := embed.StartEtcd(ecfg)
	if err != nil {
		return nil, fmt.Errorf("etcd: start embedded in %s: %w", ecfg.Dir, err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(60 * time.Second):
		e.Close()
		return nil, errors.New("etcd: embedded etcd not ready after 60s")
	case <-ctx.Done():
		e.Close()
		return nil, ctx.Err()
	}
	log.Info("embedded etcd ready", "dir", ecfg.Dir, "client_url", lc.String(), "took", time.Since(start).Round(time.Millisecond))
	return &etcdStore{client: v3client.New(e.Server), embedded: e, closing: closing}, nil
}

// etcdLogger logs the embedded etcd's errors to stderr as JSON, except while
// it closes, when it reports its own listeners' closing as errors.
func etcdLogger(closing *atomic.Bool) *zap.Logger {
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	core := zapcore.NewCore(enc, zapcore.Lock(os.Stderr), zapcore.ErrorLevel)
	return zap.New(closingFilter{Core: core, closing: closing})
}

type closingFilter struct {
	zapcore.Core
	closing *atomic.Bool
}

func (f closingFilter) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if f.closing.Load() {
		return ce
	}
	return f.Core.Check(e, ce)
}

func (f closingFilter) With(fields []zapcore.Field) zapcore.Core {
	return closingFilter{Core: f.Core.With(fields), closing: f.closing}
}

// Close closes the client, then the embedded etcd.
func (s *etcdStore) Close() {
	s.client.Close()
	if s.embedded != nil {
		s.closing.Store(true)
		s.embedded.Close()
	}
}
