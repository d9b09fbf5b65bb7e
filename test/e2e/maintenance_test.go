package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// TestMaintenance: a pump accumulates operating hours until a usage PM
// falls due; the scheduler opens its work order; a technician completes it
// through the CLI; the due list and the compliance report change.
func TestMaintenance(t *testing.T) {
	dir := t.TempDir()
	grpcAddr, coapAddr, httpAddr := freeTCP(t), freeUDP(t), freeTCP(t)
	config := filepath.Join(dir, "medfleetd.yaml")
	yaml := fmt.Sprintf(`data_dir: %s
etcd:
  listen_client: http://%s
  listen_peer: http://%s
grpc:
  listen: %s
coap:
  dtls_listen: %s
http:
  listen: %s
inventory:
  report_interval: 1s
  checkpoint_interval: 200ms
maintenance:
  schedule_interval: 300ms
  sample_interval: 300ms
`, filepath.Join(dir, "data"), freeTCP(t), freeTCP(t), grpcAddr, coapAddr, httpAddr)
	if err := os.WriteFile(config, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	server := start(t, dir, "medfleetd", "--config", config)
	waitHealthy(t, httpAddr)
	ctlEnv = []string{"MEDFLEET_CA_FILE=" + filepath.Join(dir, "data", "tls", "ca.crt"),
		"MEDFLEET_TOKEN_FILE=" + filepath.Join(dir, "data", "admin.token")}

	// A plan whose PM falls due every 2 operating hours.
	plan := filepath.Join(dir, "plan.yaml")
	if err := os.WriteFile(plan, []byte(`id: e2e-pump
model: E2E Pump 100
manufacturer: Medfleet
profile: infusion-pump
em_number: 15
high_risk: true
tasks:
  - id: pm
    kind: pm-inspection
    interval_days: 365
    interval_hours: 2
    window_after_days: 7
`), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, code := ctl(t, grpcAddr, "model", "apply", "-f", plan); code != 0 {
		t.Fatalf("medfleetctl model apply = exit %d: %s", code, out)
	}
	creds := filepath.Join(dir, "pump.json")
	if out, code := ctl(t, grpcAddr, "device", "enroll", "e2e-pm-pump", "--kind", "psk", "--out", creds); code != 0 {
		t.Fatalf("medfleetctl device enroll = exit %d: %s", code, out)
	}
	// 3,600 simulated seconds a second: an hour of infusion per second of
	// the pump's use.
	start(t, dir, "medfleet-agent e2e-pm-pump", "run", "--server", coapAddr, "--id", "e2e-pm-pump",
		"--profile", "infusion-pump", "--model", "E2E Pump 100", "--serial", "PM-1", "--fw", "1.0.0",
		"--state-dir", filepath.Join(dir, "pump"), "--interval", "1s", "--time-scale", "3600", "--credentials", creds)

	due := func() *pb.ListDueItemsResponse {
		out, code := ctl(t, grpcAddr, "maintenance", "due", "--within", "1d", "-o", "json")
		var r pb.ListDueItemsResponse
		if code != 0 || protojson.Unmarshal(out, &r) != nil {
			t.Fatalf("medfleetctl maintenance due = exit %d: %s", code, out)
		}
		return &r
	}
	// A new device needs its acceptance check; the scheduler opens it.
	orderOf := func(task string) (string, bool) {
		for _, it := range due().GetItems() {
			if it.GetTaskId() == task && it.GetWorkOrder() != "" {
				return it.GetWorkOrder(), true
			}
		}
		return "", false
	}
	var acceptance, pm string
	eventually(t, 30*time.Second, "an acceptance work order for the new pump", func() (bool, string) {
		var ok bool
		acceptance, ok = orderOf("acceptance")
		return ok, fmt.Sprint(due().GetItems())
	})
	if out, code := ctl(t, grpcAddr, "workorder", "complete", acceptance, "--pass", "acceptance"); code != 0 {
		t.Fatalf("medfleetctl workorder complete %s = exit %d: %s", acceptance, code, out)
	}

	// Hours accumulate until the usage PM is due, with its work order.
	eventually(t, 60*time.Second, "a usage PM due with a work order", func() (bool, string) {
		for _, it := range due().GetItems() {
			if it.GetTaskId() == "pm" && it.GetReason() == pb.DueReason_DUE_REASON_USAGE && it.GetWorkOrder() != "" {
				pm = it.GetWorkOrder()
				return true, ""
			}
		}
		return false, fmt.Sprint(due().GetItems())
	})
	if out, code := ctl(t, grpcAddr, "workorder", "complete", pm, "--pass", "pm", "--minutes", "30"); code != 0 {
		t.Fatalf("medfleetctl workorder complete %s = exit %d: %s", pm, code, out)
	}
	for _, it := range due().GetItems() {
		if it.GetWorkOrder() == pm {
			t.Errorf("the due list still shows the completed order %s: %v", pm, it)
		}
	}
	out, code := ctl(t, grpcAddr, "maintenance", "record", "e2e-pm-pump", "-o", "json")
	var rec pb.DeviceMaintenance
	if code != 0 || protojson.Unmarshal(out, &rec) != nil || rec.GetServiceState() != pb.ServiceState_SERVICE_STATE_IN_SERVICE ||
		len(rec.GetTasks()) != 1 || rec.GetTasks()[0].GetLastDoneUsageHours() < 2 {
		t.Errorf("maintenance record = exit %d %v, want in service with the pm done at 2 h or more", code, &rec)
	}

	// The compliance report counts the PM, on time; the window of a
	// scheduled PM ends 7 days after its due date, so the period reaches it.
	from, to := time.Now().UTC().AddDate(0, 0, -1).Format("2006-01-02"), time.Now().UTC().AddDate(0, 0, 10).Format("2006-01-02")
	out, code = ctl(t, grpcAddr, "maintenance", "report", "--from", from, "--to", to, "-o", "json")
	var report pb.ComplianceReport
	if code != 0 || protojson.Unmarshal(out, &report) != nil {
		t.Fatalf("medfleetctl maintenance report = exit %d: %s", code, out)
	}
	if o := report.GetOverall(); o.GetOnTime() < 1 || o.GetMissed() != 0 || report.GetHighRisk().GetOnTime() < 1 {
		b, _ := json.Marshal(o)
		t.Errorf("compliance = %s, want the completed PM on time, counted as high risk", b)
	}
	server.stop(t, syscall.SIGTERM)
}
