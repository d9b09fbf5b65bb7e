// Package etcdtest starts a real single-node etcd, embedded in the test
// process, for integration tests: no mocks of the store.
package etcdtest

import (
	"net"
	"net/url"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Etcd is an embedded etcd serving on loopback.
type Etcd struct {
	Server   *embed.Etcd
	Client   *clientv3.Client
	Endpoint string // http://127.0.0.1:port
	Dir      string
}

// Start starts etcd in dir (t.TempDir() when empty) and stops it when the
// test ends. Restarting a test server means calling Start again with the
// same dir after Stop.
func Start(t testing.TB, dir string) *Etcd {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	cfg := embed.NewConfig()
	cfg.Dir = dir
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	cfg.UnsafeNoFsync = true // tests do not survive power cuts
	client, peer := FreeURL(t), FreeURL(t)
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{client}, []url.URL{client}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{peer}, []url.URL{peer}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		t.Fatalf("embed.StartEtcd: %v", err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(20 * time.Second):
		e.Close()
		t.Fatal("embedded etcd not ready after 20s")
	}
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{client.String()}, DialTimeout: 5 * time.Second})
	if err != nil {
		e.Close()
		t.Fatalf("clientv3.New: %v", err)
	}
	et := &Etcd{Server: e, Client: c, Endpoint: client.String(), Dir: dir}
	t.Cleanup(et.Stop)
	return et
}

// Stop closes the client and the server; it may be called more than once.
func (e *Etcd) Stop() {
	if e.Client != nil {
		e.Client.Close()
		e.Client = nil
	}
	if e.Server != nil {
		e.Server.Close()
		e.Server = nil
	}
}

// FreeURL returns an http URL on a loopback port that was free a moment ago.
func FreeURL(t testing.TB) url.URL {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	defer l.Close()
	return url.URL{Scheme: "http", Host: l.Addr().String()}
}
