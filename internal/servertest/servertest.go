// Package servertest runs a real medfleetd in the test process, with its
// embedded etcd in a temporary directory and every listener on a free
// loopback port, for tests outside package server.
package servertest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/medfleet/medfleet/internal/etcdtest"
	"github.com/medfleet/medfleet/server"
)

// Config returns a configuration for a test server: data in a temporary
// directory, all listeners on 127.0.0.1 with ports the system picks, plain
// CoAP and plaintext, unauthenticated gRPC besides DTLS. SecureConfig is
// the production posture.
func Config(t testing.TB) server.Config {
	t.Helper()
	cfg := SecureConfig(t)
	cfg.GRPC.Insecure, cfg.CoAP.Insecure = true, true
	return cfg
}

// SecureConfig is Config with TLS and authentication on gRPC and DTLS only
// for devices, as medfleetd runs by default. The first administrator's
// token is in cfg.AdminTokenPath() once the server is ready.
func SecureConfig(t testing.TB) server.Config {
	t.Helper()
	cfg := server.DefaultConfig()
	cfg.DataDir = t.TempDir()
	clientURL, peerURL := etcdtest.FreeURL(t), etcdtest.FreeURL(t)
	cfg.Etcd.ListenClient, cfg.Etcd.ListenPeer = clientURL.String(), peerURL.String()
	cfg.GRPC.Listen, cfg.CoAP.Listen, cfg.CoAP.DTLSListen, cfg.HTTP.Listen = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	return cfg
}

// Start runs a server with cfg until the test ends, and returns it once it
// is ready (its addresses in Addrs).
func Start(t testing.TB, cfg server.Config, opts ...server.Option) *server.Server {
	t.Helper()
	srv, _ := StartStoppable(t, cfg, opts...)
	return srv
}

// StartStoppable is Start with a function that stops the server and waits
// for it, once; the test's end calls it too. A test restarts a server by
// stopping it and starting another on the same cfg.
func StartStoppable(t testing.TB, cfg server.Config, opts ...server.Option) (*server.Server, func()) {
	t.Helper()
	srv, err := server.New(cfg, slog.New(slog.DiscardHandler), opts...)
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(20 * time.Second):
				t.Error("medfleetd did not stop within 20s")
			}
		})
	}
	t.Cleanup(stop)
	select {
	case <-srv.Ready():
	case err := <-done:
		t.Fatalf("Run: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("medfleetd not ready after 30s")
	}
	return srv, stop
}

// Dial connects to a secure server's API over TLS as its first
// administrator.
func Dial(t testing.TB, cfg server.Config, srv *server.Server) *grpc.ClientConn {
	t.Helper()
	caPEM, err := os.ReadFile(cfg.CAPath())
	if err != nil {
		t.Fatal(err)
	}
	tok, err := os.ReadFile(cfg.AdminTokenPath())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	cc, err := grpc.NewClient(srv.Addrs().GRPC.String(),
		grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})),
		grpc.WithPerRPCCredentials(bearer(strings.TrimSpace(string(tok)))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// bearer sends a token with every call.
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}
func (bearer) RequireTransportSecurity() bool { return true }
