package fault

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"

	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// replica is a medfleetd process on fixed loopback ports, so that it can
// be killed and started again where the proxy and the clients expect it.
type replica struct {
	t    *testing.T
	name string
	args []string
	log  string
	// grpc and http are TCP, coap and dtls UDP addresses.
	grpc, coap, dtls, http string
	proc                   *process
	conn                   *grpc.ClientConn
}

// replicaConfig is what every replica of a test shares.
type replicaConfig struct {
	etcd []string // client URLs
	// dataDir holds the TLS keys and the firmware images, which replicas
	// must share.
	dataDir      string
	firmwareKeys string // PEM file of trusted signing keys, or ""
}

// newReplica prepares a replica with ports of its own; it starts nothing.
func newReplica(t *testing.T, dir, name string, rc replicaConfig) *replica {
	t.Helper()
	r := &replica{t: t, name: name, log: filepath.Join(dir, name+".log"),
		grpc: freeTCP(t), coap: freeUDP(t), dtls: freeUDP(t), http: freeTCP(t)}
	r.args = []string{
		"--etcd-endpoints", strings.Join(rc.etcd, ","),
		"--data-dir", rc.dataDir,
		"--grpc-listen", r.grpc, "--insecure-grpc",
		"--coap-listen", r.coap, "--insecure-coap",
		"--coap-dtls-listen", r.dtls,
		"--http-listen", r.http,
		"--report-interval", "1s",
		"--checkpoint-interval", "1s",
	}
	if rc.firmwareKeys != "" {
		r.args = append(r.args, "--firmware-keys", rc.firmwareKeys)
	}
	// A replica that was down a while must be reachable at once when it is
	// back: gRPC's default backoff would wait up to two minutes.
	conn, err := grpc.NewClient(r.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
			MinConnectTimeout: time.Second,
		}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	r.conn = conn
	logTail(t, name, r.log)
	return r
}

// start runs the replica and waits until its /healthz answers 200.
func (r *replica) start() {
	r.t.Helper()
	r.proc = startProcess(r.t, r.name, r.log, medfleetd, r.args, nil)
	eventually(r.t, 30*time.Second, 100*time.Millisecond, r.name+" healthy", func() (bool, string) {
		if r.proc.exited() {
			r.t.Fatalf("%s exited while starting: %v", r.name, r.proc.err)
		}
		code, body, err := r.healthz()
		if err != nil {
			return false, err.Error()
		}
		return code == http.StatusOK, fmt.Sprintf("%d %s", code, body)
	})
}

// kill kills the replica with SIGKILL: no last checkpoint.
func (r *replica) kill() { r.proc.kill() }

// stop stops the replica with SIGTERM; it must exit 0.
func (r *replica) stop() {
	r.t.Helper()
	if err := r.proc.stop(20 * time.Second); err != nil {
		r.t.Errorf("%s: stop: %v", r.name, err)
	}
}

// target is the replica as the proxy routes to it.
func (r *replica) target() target { return target{name: r.name, coap: r.coap, http: r.http} }

func (r *replica) devices() pb.DeviceServiceClient { return pb.NewDeviceServiceClient(r.conn) }

// healthz is GET /healthz within a second.
func (r *replica) healthz() (int, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+r.http+"/healthz", nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b)), err
}

// leads reports whether /healthz says `leader true`. A body without a
// leader line is an error: the test cannot tell.
func (r *replica) leads() (bool, error) {
	_, body, err := r.healthz()
	if err != nil {
		return false, err
	}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		switch strings.TrimSpace(sc.Text()) {
		case "leader true":
			return true, nil
		case "leader false":
			return false, nil
		}
	}
	return false, fmt.Errorf("%s: /healthz has no leader line: %q", r.name, body)
}

// metric sums the samples of a counter or gauge on /metrics whose labels
// include every one of want.
func (r *replica) metric(name string, want map[string]string) (float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+r.http+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return 0, fmt.Errorf("%s /metrics: %w", r.name, err)
	}
	fam, ok := families[name]
	if !ok {
		return 0, fmt.Errorf("%s /metrics has no %s", r.name, name)
	}
	var sum float64
next:
	for _, m := range fam.GetMetric() {
		for k, v := range want {
			found := false
			for _, l := range m.GetLabel() {
				if l.GetName() == k && l.GetValue() == v {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.GetCounter() != nil:
			sum += m.GetCounter().GetValue()
		case m.GetGauge() != nil:
			sum += m.GetGauge().GetValue()
		}
	}
	return sum, nil
}

// acceptedReports sums medfleet_ingest_reports_total{result="accepted"}
// over the replicas that answer. A replica that restarted counts from 0.
func acceptedReports(replicas []*replica) float64 {
	var sum float64
	for _, r := range replicas {
		v, err := r.metric("medfleet_ingest_reports_total", map[string]string{"result": "accepted"})
		if err == nil {
			sum += v
		}
	}
	return sum
}

// listDevices reads every device through r's API, page by page.
func listDevices(r *replica) (map[string]*pb.Device, error) {
	out := map[string]*pb.Device{}
	token := ""
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		resp, err := r.devices().ListDevices(ctx, &pb.ListDevicesRequest{PageSize: 1000, PageToken: token})
		cancel()
		if err != nil {
			return nil, fmt.Errorf("%s: ListDevices: %w", r.name, err)
		}
		for _, d := range resp.GetDevices() {
			out[strings.TrimPrefix(d.GetName(), "devices/")] = d
		}
		if token = resp.GetNextPageToken(); token == "" {
			return out, nil
		}
	}
}
