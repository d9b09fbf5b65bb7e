package server

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/medfleet/medfleet/coap"
	"github.com/medfleet/medfleet/internal/etcdtest"
	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// startExternalEtcd runs Debian's etcd-server binary on loopback and returns
// its client URL. The test is skipped where the binary is missing; .ci/run
// installs it.
func startExternalEtcd(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("etcd")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("etcd not on PATH in CI: .ci/run must install etcd-server")
		}
		t.Skip("etcd not on PATH (apt-get install etcd-server)")
	}
	client, peer := etcdtest.FreeURL(t), etcdtest.FreeURL(t)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin,
		"--name", "ext", "--data-dir", t.TempDir(),
		"--listen-client-urls", client.String(), "--advertise-client-urls", client.String(),
		"--listen-peer-urls", peer.String(), "--initial-advertise-peer-urls", peer.String(),
		"--initial-cluster", "ext="+peer.String(), "--log-level", "error")
	logFile, err := os.Create(filepath.Join(t.TempDir(), "etcd.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start etcd: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(logFile.Name())
			t.Logf("etcd's log:\n%s", b)
		}
		logFile.Close()
	})

	c, err := clientv3.New(clientv3.Config{Endpoints: []string{client.String()}, DialTimeout: time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		pctx, pcancel := context.WithTimeout(ctx, time.Second)
		_, err := c.Put(pctx, "/probe", "1")
		pcancel()
		if err == nil {
			return client.String()
		}
		if time.Now().After(deadline) {
			t.Fatalf("external etcd not ready after 20s: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestExternalEtcd(t *testing.T) {
	endpoint := startExternalEtcd(t)
	cfg := testConfig(t, t.TempDir()) // the data dir keeps only keys: nothing embedded
	cfg.Etcd.Endpoints = []string{endpoint}
	ts := startServer(t, cfg)
	cc := dialCoAP(t, ts)

	reg, _ := (&coap.Registration{Profile: "cpap", Model: "AirSense 11", Serial: "22"}).Encode(coap.FormatCBOR)
	if code, body, _ := post(t, cc, "/rd", coap.FormatCBOR, reg, query("ep=cpap-7", "lt=60")...); code != codes.Created {
		t.Fatalf("POST /rd = %v %s, want 2.01", code, body)
	}
	if code, body, _ := post(t, cc, "/dp", coap.FormatSenMLCBOR, senml(t, &coap.Report{Seq: 1, Usage: f64(28800)}), query("ep=cpap-7")...); code != codes.Changed {
		t.Fatalf("POST /dp = %v %s, want 2.04", code, body)
	}
	ts.stop()

	// A second server on the same cluster sees the device and its usage.
	ts2 := startServer(t, cfg)
	d, err := ts2.client.GetDevice(context.Background(), &pb.GetDeviceRequest{Name: "devices/cpap-7"})
	if err != nil {
		t.Fatal(err)
	}
	if d.GetModel() != "AirSense 11" || d.GetStatus().GetUsageHours() != 8 {
		t.Errorf("GetDevice(cpap-7) from external etcd = model %q, %v h; want AirSense 11, 8 h", d.GetModel(), d.GetStatus().GetUsageHours())
	}
}
