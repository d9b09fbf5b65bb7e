package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"

	medfleetv1 "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// TestInventoryAndRecalls runs the CMMS and recall commands against a real
// server: create a device from a scanned UDI, import the sample inventory
// (a dry run with bad rows first), export it, import recalls and decide on
// matches.
func TestInventoryAndRecalls(t *testing.T) {
	s := startServer(t)
	applyHospital(t, s)
	s.mustRun(t, "model", "apply", "-f", "../../examples/models/infusion-pump.yaml")
	dir := t.TempDir()

	// A UDI as a scanner types it, on stdin: the catalogue gives the model.
	var d medfleetv1.Device
	code, stdout, stderr := s.runStdin(t, "]C1011088540381002221X1\n", "-o", "json", "device", "create", "--udi", "-", "--asset-tag", "BME-9")
	if code != exitOK {
		t.Fatalf("device create --udi - = %d; stderr:\n%s", code, stderr)
	}
	if err := protojson.Unmarshal([]byte(stdout), &d); err != nil {
		t.Fatal(err)
	}
	if d.GetName() != "devices/bme-9" || d.GetModel() != "BD Alaris 8100" || d.GetSerial() != "X1" {
		t.Errorf("created %v", &d)
	}
	code, _, stderr = s.run(t, "device", "create", "--udi", "(01)10885403810023(21)X2")
	if code != exitInvalidArgument || !strings.Contains(stderr, "device.udi") || !strings.Contains(stderr, "check digit 3, want 2") {
		t.Errorf("bad check digit = %d, %q", code, stderr)
	}

	// Bad rows: each printed with its line, nothing applied, exit 5.
	sample, err := os.ReadFile("../../examples/cmms/inventory.csv")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(sample), "\n")
	lines[4] = strings.Replace(lines[4], "2026-", "26-", 1)
	bad := writeTestFile(t, dir, "bad.csv", strings.Join(lines, "\n"))
	code, stdout, stderr = s.run(t, "device", "import", "-f", bad)
	if code != exitInvalidArgument || !strings.Contains(stdout, "bad.csv: line 5: last_pm_date: ") ||
		!strings.Contains(stdout, "300 rows, 1 problem; nothing applied") || !strings.Contains(stderr, "nothing was applied") {
		t.Fatalf("import of bad rows = %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	out := s.mustRun(t, "device", "import", "-f", "../../examples/cmms/inventory.csv", "--dry-run")
	if !strings.HasSuffix(out, "300 rows, no problem; nothing applied (--dry-run)\n") {
		t.Errorf("dry run printed %q", out)
	}
	out = s.mustRun(t, "device", "import", "-f", "../../examples/cmms/inventory.csv")
	if !strings.HasSuffix(out, "300 rows: 300 created, 0 updated, 0 unchanged\n") || !strings.Contains(out, "warning: last_pm_date: not recorded") {
		t.Errorf("import printed %q", out)
	}

	// Export: the same rows, importable as they are.
	export := filepath.Join(dir, "export.csv")
	s.mustRun(t, "device", "export", "-f", export, "--profile", "infusion-pump")
	b, err := os.ReadFile(export)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), "\n"); n != 182 { // header, 180 pumps, bme-9
		t.Errorf("export has %d lines, want 182", n)
	}
	if out := s.mustRun(t, "device", "import", "-f", export); !strings.HasSuffix(out, "181 rows: 0 created, 0 updated, 181 unchanged\n") {
		t.Errorf("importing the export printed %q", out)
	}

	// Recalls.
	out = s.mustRun(t, "recall", "import", "-f", "../../examples/recalls/openfda-device-recall.json")
	if !strings.Contains(out, "6 recalls: 6 new, 0 changed, 0 unchanged") {
		t.Errorf("recall import printed %q", out)
	}
	list := s.mustRun(t, "recall", "list", "--state", "pending")
	if !strings.Contains(list, "Z-1432-2026") || strings.Contains(list, "Z-1389-2026") {
		t.Errorf("recall list --state pending:\n%s", list)
	}
	matches := s.mustRun(t, "recall", "matches", "--recall", "Z-1207-2026")
	if got := strings.Count(matches, "\n") - 1; got != 6 {
		t.Errorf("Z-1207-2026 has %d matches, want 6:\n%s", got, matches)
	}
	device := column(matches, "DEVICE")[0]
	out = s.mustRun(t, "recall", "confirm", "Z-1207-2026", device, "--note", "lot checked")
	if !strings.Contains(out, "confirmed; devices/"+device+" is out of service; work order workOrders/") {
		t.Errorf("recall confirm printed %q", out)
	}
	code, _, stderr = s.run(t, "recall", "dismiss", "Z-1207-2026", column(matches, "DEVICE")[1])
	if code != exitUsage || !strings.Contains(stderr, "--note: required") {
		t.Errorf("dismiss without --note = %d, %q", code, stderr)
	}
	if got := s.mustRun(t, "recall", "get", "Z-1207-2026"); !strings.Contains(got, "5 pending, 1 confirmed, 0 dismissed") ||
		!strings.Contains(got, "4505-4510") {
		t.Errorf("recall get:\n%s", got)
	}
}
