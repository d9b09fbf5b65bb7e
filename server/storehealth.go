package server

import (
	"context"
	"log/slog"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// writesService is the name under which gRPC health reports whether this
// replica accepts writes: NOT_SERVING while etcd is unreachable. The
// server as a whole ("") stays SERVING then: reads answer from memory.
const writesService = "medfleet.v1.Writes"

// Probing etcd: a linearizable read (it needs a leader and a quorum) every
// probeInterval, each bounded by probeTimeout; probeFailures failures in a
// row make etcd unreachable, one success makes it reachable again.
const (
	probeInterval = time.Second
	probeTimeout  = 2 * time.Second
	probeFailures = 2
)

// storeHealth says whether etcd answers. While it does not, ingest goes on
// in memory (devices keep the reports the desired state does not call
// stored), reads answer from memory and say so, and writes are refused
// with Unavailable instead of waiting out their deadlines.
type storeHealth struct {
	client *clientv3.Client
	health *health.Server
	log    *slog.Logger

	mu       sync.Mutex
	failures int
	since    time.Time // when etcd stopped answering; zero while it answers
	lastErr  error
}

// unreachable says since when etcd has been unreachable, and why; a zero
// time while it answers.
func (h *storeHealth) unreachable() (since time.Time, cause error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.since, h.lastErr
}

func (h *storeHealth) run(ctx context.Context) error {
	h.health.SetServingStatus(writesService, healthpb.HealthCheckResponse_SERVING)
	t := time.NewTicker(probeInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		start := time.Now()
		pctx, cancel := context.WithTimeout(ctx, probeTimeout)
		_, err := h.client.Get(pctx, "/medfleet/v1/", clientv3.WithCountOnly(), clientv3.WithLimit(1))
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		h.note(start, err)
	}
}

// note records one probe's outcome and announces a change of state.
func (h *storeHealth) note(at time.Time, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err == nil {
		if !h.since.IsZero() {
			h.log.Info("etcd reachable again: writes accepted, statuses stored", "unreachable_for", time.Since(h.since).Round(time.Second))
			h.health.SetServingStatus(writesService, healthpb.HealthCheckResponse_SERVING)
		}
		h.failures, h.since, h.lastErr = 0, time.Time{}, nil
		return
	}
	h.failures++
	h.lastErr = err
	if h.failures == probeFailures {
		h.since = at.Add(-probeInterval * (probeFailures - 1))
		h.log.Error("etcd unreachable: refusing writes, answering reads from memory, devices keep their unstored reports", "err", err)
		h.health.SetServingStatus(writesService, healthpb.HealthCheckResponse_NOT_SERVING)
	}
}
