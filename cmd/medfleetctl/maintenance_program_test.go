package main

import (
	"bytes"
	"encoding/csv"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/medfleet/medfleet/internal/servertest"
	medfleetv1 "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// prun runs a command line against s, as its first administrator.
func (s *testServer) prun(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	return runCLI(t, maps.Clone(s.env), args...)
}

// mustPrun is prun that fails the test unless the command exits 0.
func (s *testServer) mustPrun(t *testing.T, args ...string) string {
	t.Helper()
	code, stdout, stderr := s.prun(t, args...)
	if code != exitOK {
		t.Fatalf("medfleetctl %q = %d, want 0; stderr:\n%s", args, code, stderr)
	}
	return stdout
}

// mustPrunJSON is mustPrun with -o json, decoded into m.
func (s *testServer) mustPrunJSON(t *testing.T, m proto.Message, args ...string) {
	t.Helper()
	out := s.mustPrun(t, append([]string{"-o", "json"}, args...)...)
	if err := protojson.Unmarshal([]byte(out), m); err != nil {
		t.Fatalf("medfleetctl -o json %q: %v; output:\n%s", args, err, out)
	}
}

// startMaintenanceServer starts a secure medfleetd whose scheduler runs
// every interval (its first run is at start, before the test has devices).
func startMaintenanceServer(t *testing.T, interval time.Duration) *testServer {
	t.Helper()
	cfg := servertest.SecureConfig(t)
	cfg.Maintenance.ScheduleInterval = interval
	srv := servertest.Start(t, cfg)
	return &testServer{cfg: cfg, srv: srv, env: map[string]string{
		envServer:    srv.Addrs().GRPC.String(),
		envCAFile:    cfg.CAPath(),
		envTokenFile: cfg.AdminTokenPath(),
	}}
}

func TestDueCell(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		due     time.Time
		overdue bool
		want    string
	}{
		{now, false, "2026-03-01 (today)"},
		{now.Add(11 * time.Hour), false, "2026-03-01 (today)"},
		{now.Add(13 * time.Hour), false, "2026-03-02 (in 1d)"},
		{now.Add(3 * 24 * time.Hour), false, "2026-03-04 (in 3d)"},
		{now.Add(-13 * time.Hour), false, "2026-02-28 (1d ago)"},
		{now.Add(-5 * 24 * time.Hour), false, "2026-02-24 (5d ago)"},
		{now.Add(-36 * 24 * time.Hour), true, "2026-01-24 (36d overdue)"},
		{now.Add(-time.Hour), true, "2026-03-01 (0d overdue)"},
	}
	for _, tc := range tests {
		if got := dueCell(ts(tc.due), now, tc.overdue); got != tc.want {
			t.Errorf("dueCell(%v, overdue %v) = %q, want %q", tc.due, tc.overdue, got, tc.want)
		}
	}
	if got := dueCell(nil, now, false); got != "-" {
		t.Errorf("dueCell(nil) = %q, want -", got)
	}
}

// testDue is a due list as the server orders it: overdue first, then life
// support, high risk, by due time.
func testDue() *medfleetv1.ListDueItemsResponse {
	return &medfleetv1.ListDueItemsResponse{
		Items: []*medfleetv1.DueItem{
			{Device: "devices/pump-0003", Model: "models/bd-alaris-8100", TaskId: "esa", Kind: medfleetv1.TaskKind_TASK_KIND_ELECTRICAL_SAFETY,
				Reason: medfleetv1.DueReason_DUE_REASON_CALENDAR, Detail: "every 365 d; last 2025-01-24",
				DueTime: ts(testNow.Add(-36 * 24 * time.Hour)), Overdue: true, HighRisk: true, EmNumber: 17,
				WorkOrder: "workOrders/20251225-e5s6a7x8"},
			{Device: "devices/vent-0007", Model: "models/hamilton-c6", TaskId: "acceptance", Kind: medfleetv1.TaskKind_TASK_KIND_ACCEPTANCE,
				Reason: medfleetv1.DueReason_DUE_REASON_ACCEPTANCE, Detail: "acceptance check before use",
				DueTime: ts(testNow), HighRisk: true, LifeSupport: true},
			{Device: "devices/pump-0001", Model: "models/bd-alaris-8100", TaskId: "pm", Kind: medfleetv1.TaskKind_TASK_KIND_PM_INSPECTION,
				Reason: medfleetv1.DueReason_DUE_REASON_USAGE, Detail: "every 2000 h: 1874 h used, 11.2 h/day",
				DueTime: ts(testNow.Add(11 * 24 * time.Hour)), DueEarliestTime: ts(testNow.Add(9 * 24 * time.Hour)),
				DueLatestTime: ts(testNow.Add(15 * 24 * time.Hour)), HighRisk: true, EmNumber: 17},
			{Device: "devices/cpap-0002", Model: "models/resmed-airsense-11", TaskId: "filter", Kind: medfleetv1.TaskKind_TASK_KIND_FILTER,
				Reason: medfleetv1.DueReason_DUE_REASON_CONDITION, Detail: "telemetry/filter/hours 231, trending +4.1/day to >= 250 in 4.6 d",
				DueTime: ts(testNow.Add(4*24*time.Hour + 14*time.Hour)), EmNumber: 14},
		},
		TotalSize: 9,
	}
}

// testDueLocated is testDue with locations: the list groups by them.
func testDueLocated() *medfleetv1.ListDueItemsResponse {
	r := testDue()
	for i, loc := range []string{"4-west", "icu-2", "4-west", ""} {
		r.Items[i].Location = loc
	}
	r.TotalSize = 4
	return r
}

// testReport is a quarter's report with a missed and a late order.
func testReport() *medfleetv1.ComplianceReport {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	missed := &medfleetv1.WorkOrder{
		Name: "workOrders/20260102-m1s2d3x4", Device: "devices/vent-0007", Type: medfleetv1.WorkOrderType_WORK_ORDER_TYPE_PREVENTIVE,
		State: medfleetv1.WorkOrderState_WORK_ORDER_STATE_OPEN, TaskIds: []string{"pm"},
		DueTime: ts(time.Date(2026, 1, 15, 0, 0, 0, 0, time.UTC)), WindowEndTime: ts(time.Date(2026, 2, 14, 0, 0, 0, 0, time.UTC)),
		HighRisk: true, LifeSupport: true,
	}
	late := &medfleetv1.WorkOrder{
		Name: "workOrders/20260110-l4t5e6x7", Device: "devices/pump-0001", Type: medfleetv1.WorkOrderType_WORK_ORDER_TYPE_PREVENTIVE,
		State: medfleetv1.WorkOrderState_WORK_ORDER_STATE_COMPLETED, TaskIds: []string{"pm", "esa"},
		DueTime: ts(time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)), WindowEndTime: ts(time.Date(2026, 3, 3, 0, 0, 0, 0, time.UTC)),
		CompleteTime: ts(time.Date(2026, 3, 9, 14, 30, 0, 0, time.UTC)), HighRisk: true,
	}
	return &medfleetv1.ComplianceReport{
		StartTime:   ts(start),
		EndTime:     ts(start.AddDate(0, 3, 0)),
		Overall:     &medfleetv1.ComplianceFigures{Scheduled: 12, OnTime: 10, Late: 1, Missed: 1, OnTimePercent: 100 * 10.0 / 12},
		HighRisk:    &medfleetv1.ComplianceFigures{Scheduled: 6, OnTime: 4, Late: 1, Missed: 1, OnTimePercent: 100 * 4.0 / 6},
		LifeSupport: &medfleetv1.ComplianceFigures{Scheduled: 1, Missed: 1},
		Missed:      []*medfleetv1.WorkOrder{missed},
		Late:        []*medfleetv1.WorkOrder{late},
	}
}

// testRecord is a record with tasks done and a failure.
func testRecord() *medfleetv1.DeviceMaintenance {
	return &medfleetv1.DeviceMaintenance{
		Name:         "devices/pump-0001/maintenance",
		ServiceState: medfleetv1.ServiceState_SERVICE_STATE_IN_SERVICE,
		Tasks: []*medfleetv1.TaskState{
			{TaskId: "pm", LastDoneTime: ts(testNow.Add(-2 * time.Hour)), LastDoneUsageHours: 1874.25, LastWorkOrder: "workOrders/20260301-p0q1r2s3"},
			{TaskId: "battery", LastDoneTime: ts(testNow.Add(-400 * 24 * time.Hour)), LastDoneUsageHours: 310, LastWorkOrder: "workOrders/20250125-b1b2b3b4"},
		},
		Failures: []*medfleetv1.Failure{
			{Time: ts(testNow.Add(-60 * 24 * time.Hour)), UsageHours: 1502.5, FailureCode: "occlusion-sensor", WorkOrder: "workOrders/20251231-r1r2r3r4"},
		},
		AcceptedFirmware: "9.33.1",
		Etag:             "9121",
	}
}

func TestMaintenanceProgramGolden(t *testing.T) {
	tests := []struct {
		name  string
		write func(*bytes.Buffer) error
	}{
		{"maintenance_due.golden", func(b *bytes.Buffer) error { return writeDueTable(b, testDue(), testNow) }},
		{"maintenance_due_location.golden", func(b *bytes.Buffer) error { return writeDueTable(b, testDueLocated(), testNow) }},
		{"maintenance_due_empty.golden", func(b *bytes.Buffer) error {
			return writeDueTable(b, &medfleetv1.ListDueItemsResponse{}, testNow)
		}},
		{"maintenance_due.json.golden", func(b *bytes.Buffer) error { return writeJSON(b, testDue()) }},
		{"maintenance_report.golden", func(b *bytes.Buffer) error { return writeComplianceReport(b, testReport()) }},
		{"maintenance_report_clean.golden", func(b *bytes.Buffer) error {
			r := testReport()
			r.Missed, r.Late = nil, nil
			return writeComplianceReport(b, r)
		}},
		{"maintenance_report.csv.golden", func(b *bytes.Buffer) error { return writeComplianceCSV(b, testReport()) }},
		{"maintenance_report.json.golden", func(b *bytes.Buffer) error { return writeJSON(b, testReport()) }},
		{"maintenance_record.golden", func(b *bytes.Buffer) error { return writeDeviceMaintenance(b, testRecord(), testNow) }},
		{"maintenance_record_new.golden", func(b *bytes.Buffer) error {
			return writeDeviceMaintenance(b, &medfleetv1.DeviceMaintenance{Name: "devices/pump-0009/maintenance",
				ServiceState: medfleetv1.ServiceState_SERVICE_STATE_NEEDS_CHECK}, testNow)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := tc.write(&b); err != nil {
				t.Fatalf("write: %v", err)
			}
			checkGolden(t, tc.name, b.Bytes())
		})
	}
}

// TestComplianceCSV reads the CSV back: one header, a row per scope, a row
// per missed or late order, every row as long as the header.
func TestComplianceCSV(t *testing.T) {
	var b bytes.Buffer
	if err := writeComplianceCSV(&b, testReport()); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&b).ReadAll()
	if err != nil {
		t.Fatalf("csv: %v", err)
	}
	if len(rows) != 6 || !slices.Equal(rows[0], complianceCSVHeader) {
		t.Fatalf("CSV = %q, want the header and 5 rows", rows)
	}
	col := func(row []string, name string) string { return row[slices.Index(complianceCSVHeader, name)] }
	var records []string
	for _, r := range rows[1:] {
		records = append(records, col(r, "record"))
	}
	if want := []string{"overall", "high_risk", "life_support", "missed", "late"}; !slices.Equal(records, want) {
		t.Errorf("records = %q, want %q", records, want)
	}
	if got := col(rows[1], "on_time_percent"); got != "83.3" {
		t.Errorf("overall on_time_percent = %q, want 83.3", got)
	}
	if got := col(rows[5], "tasks"); got != "pm esa" {
		t.Errorf("late order tasks = %q, want %q", got, "pm esa")
	}
	if got := col(rows[4], "risk"); got != "life_support" {
		t.Errorf("missed order risk = %q, want life_support", got)
	}
}

// TestMaintenanceUsageErrors checks that bad command lines of the model,
// workorder and maintenance commands exit 2 before any RPC.
func TestMaintenanceUsageErrors(t *testing.T) {
	dir := t.TempDir()
	badYAML := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(badYAML, []byte("id: x\nmodel: X\ntasks:\n  - id: pm\n    kind: pm-inspection\n    interval_days: 30\n    window_after_days: 40\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		args       []string
		wantStderr string
	}{
		{"model without verb", []string{"model"}, "model: missing command, one of: apply, get, list"},
		{"apply without file", []string{"model", "apply"}, "-f: required"},
		{"apply missing file", []string{"model", "apply", "-f", filepath.Join(dir, "absent.yaml")}, `absent.yaml": no such file`},
		{"apply bad plan", []string{"model", "apply", "-f", badYAML}, badYAML + ": line 7: tasks[0].window_after_days: the due window must be shorter"},
		{"apply with argument", []string{"model", "apply", "plan.yaml"}, "model apply: want no arguments"},
		{"model get bad id", []string{"model", "get", "BD Alaris"}, `model id "BD Alaris"`},

		{"workorder without verb", []string{"workorder"}, "workorder: missing command, one of: assign, cancel, complete, create, get, list"},
		{"create without type", []string{"workorder", "create", "pump-1"}, "--type: required"},
		{"create bad type", []string{"workorder", "create", "pump-1", "--type", "inspection"}, `--type: want preventive, repair or acceptance, got "inspection"`},
		{"create preventive without task", []string{"workorder", "create", "pump-1", "--type", "preventive"}, "--task: required for a preventive order"},
		{"create repair with task", []string{"workorder", "create", "pump-1", "--type", "repair", "--task", "pm"}, "--task: only for a preventive order"},
		{"create acceptance major", []string{"workorder", "create", "pump-1", "--type", "acceptance", "--major"}, "--major: only for a repair"},
		{"create failure code", []string{"workorder", "create", "pump-1", "--type", "preventive", "--task", "pm", "--failure-code", "x"}, "--failure-code: only for a repair"},
		{"create bad due", []string{"workorder", "create", "pump-1", "--type", "repair", "--due", "next week"}, `--due: want a date (2026-03-31) or an RFC 3339 time`},
		{"create bad device", []string{"workorder", "create", "pump 1", "--type", "repair"}, `device id "pump 1"`},
		{"get bad id", []string{"workorder", "get", "workOrders/a/b"}, `work order id "workOrders/a/b"`},
		{"list bad state", []string{"workorder", "list", "--state", "done"}, `--state: want open, assigned, completed or cancelled, got "done"`},
		{"list bad device", []string{"workorder", "list", "--device", "devices/"}, `--device: device id "devices/"`},
		{"assign without assignee", []string{"workorder", "assign", "w-1"}, "workorder assign: want a work order id and an assignee, got 1"},
		{"assign blank assignee", []string{"workorder", "assign", "w-1", " "}, "want an assignee"},
		{"complete pass and fail", []string{"workorder", "complete", "w-1", "--pass", "pm", "--fail", "pm"}, `task "pm": given twice`},
		{"complete negative minutes", []string{"workorder", "complete", "w-1", "--minutes", "-5"}, "--minutes: must not be negative"},
		{"complete bad at", []string{"workorder", "complete", "w-1", "--at", "yesterday"}, "--at: want a date"},
		{"cancel without reason", []string{"workorder", "cancel", "w-1"}, "--reason: required"},

		{"due bad within", []string{"maintenance", "due", "--within", "a month"}, `invalid argument "a month" for "--within" flag: want a duration such as 90d or 720h`},
		{"due negative within", []string{"maintenance", "due", "--within", "-1h"}, `"--within" flag: must not be negative`},
		{"due negative limit", []string{"maintenance", "due", "--limit", "-1"}, "--limit: must not be negative"},
		{"due bad model", []string{"maintenance", "due", "--model", "BD Alaris"}, `--model: model id "BD Alaris"`},
		{"report without period", []string{"maintenance", "report"}, "--from and --to: required"},
		{"report without to", []string{"maintenance", "report", "--from", "2026-01-01"}, "--from and --to: required"},
		{"report bad from", []string{"maintenance", "report", "--from", "Q1", "--to", "2026-03-31"}, `--from: want a date`},
		{"report to before from", []string{"maintenance", "report", "--from", "2026-03-31", "--to", "2026-01-01"}, "--to: must be after --from"},
		{"report csv and json", []string{"-o", "json", "maintenance", "report", "--from", "2026-01-01", "--to", "2026-03-31", "--csv"}, "--csv and -o json"},
		{"report output csv", []string{"-o", "csv", "maintenance", "report", "--from", "2026-01-01", "--to", "2026-03-31"}, `--output: must be table or json, got "csv"`},
		{"record without device", []string{"maintenance", "record"}, "maintenance record: want one device id, got 0"},
		{"record bad device", []string{"maintenance", "record", "pump 1"}, `device id "pump 1"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"--server", unreachable}, tc.args...)
			code, stdout, stderr := runCLI(t, nil, args...)
			if code != exitUsage {
				t.Errorf("run(%q) exit code = %d, want %d (stderr %q)", args, code, exitUsage, stderr)
			}
			if !strings.HasPrefix(stderr, "medfleetctl: ") || !strings.Contains(stderr, tc.wantStderr) {
				t.Errorf("run(%q) stderr = %q, want medfleetctl: ...%s...", args, stderr, tc.wantStderr)
			}
			if !strings.Contains(stderr, "\nRun 'medfleetctl") {
				t.Errorf("run(%q) stderr = %q, want a hint to --help", args, stderr)
			}
			if stdout != "" {
				t.Errorf("run(%q) stdout = %q, want nothing", args, stdout)
			}
		})
	}
}

// rowOf returns the fields of the first line of a table that starts with
// prefix, or fails the test.
func rowOf(t *testing.T, table, prefix string) []string {
	t.Helper()
	for line := range strings.Lines(table) {
		if strings.HasPrefix(line, prefix) {
			return strings.Fields(line)
		}
	}
	t.Fatalf("no line starting with %q in\n%s", prefix, table)
	return nil
}

// keyValue returns the value of key in "key: value" output, or fails the
// test.
func keyValue(t *testing.T, out, key string) string {
	t.Helper()
	for line := range strings.Lines(out) {
		if k, v, ok := strings.Cut(line, ":"); ok && k == key {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no %q in\n%s", key+":", out)
	return ""
}

// createOrder creates a work order and returns its id.
func createOrder(t *testing.T, s *testServer, args ...string) string {
	t.Helper()
	var o medfleetv1.WorkOrder
	s.mustJSON(t, &o, append([]string{"workorder", "create"}, args...)...)
	if o.GetState() != medfleetv1.WorkOrderState_WORK_ORDER_STATE_OPEN && o.GetState() != medfleetv1.WorkOrderState_WORK_ORDER_STATE_ASSIGNED {
		t.Fatalf("workorder create %q: state %v, want open or assigned", args, o.GetState())
	}
	id, ok := strings.CutPrefix(o.GetName(), workOrdersPrefix)
	if !ok {
		t.Fatalf("workorder create %q: name %q", args, o.GetName())
	}
	return id
}

// TestMaintenanceLifecycle walks a device through the maintenance program
// of a real server: its plan, the acceptance check it needs, a major
// repair, and preventive orders done on time, late and not at all, as the
// compliance report counts them. The scheduler runs only at start, before
// there are devices, so every order is one the test opens.
func TestMaintenanceLifecycle(t *testing.T) {
	s := startMaintenanceServer(t, time.Hour)
	now := time.Now().UTC()
	s.mustRun(t, "model", "apply", "-f", testModelFile)
	s.mustRun(t, "device", "create", "pump-1", "--profile", "infusion-pump", "--model", testModelString, "--label", "unit=4-west")

	// A new device needs its acceptance check, today.
	due := s.mustPrun(t, "maintenance", "due")
	row := rowOf(t, due, "pump-1 ")
	if want := []string{"pump-1", "acceptance", "acceptance", "acceptance", now.Format(dateLayout), "(today)", "high", "-", "acceptance", "check", "before", "use"}; !slices.Equal(row, want) {
		t.Errorf("maintenance due row = %q, want %q", row, want)
	}
	if !strings.HasSuffix(due, "\n1 due item\n") {
		t.Errorf("maintenance due footer: want 1 due item, got\n%s", due)
	}
	// The annual tasks come into view within a year.
	var items medfleetv1.ListDueItemsResponse
	s.mustPrunJSON(t, &items, "maintenance", "due", "--within", "400d", "--unit", "4-west", "--model", "models/"+testModelID)
	var tasks []string
	for _, it := range items.GetItems() {
		tasks = append(tasks, it.GetTaskId())
	}
	if slices.Sort(tasks); !slices.Equal(tasks, []string{"acceptance", "esa", "pm"}) || items.GetTotalSize() != 3 {
		t.Errorf("maintenance due --within 400d: tasks %q, total %d; want acceptance, esa, pm", tasks, items.GetTotalSize())
	}
	if out := s.mustPrun(t, "maintenance", "due", "--within", "400d", "--limit", "2"); !strings.HasSuffix(out, "\n2 of 3 due items\n") {
		t.Errorf("maintenance due --limit 2 footer: want 2 of 3 due items, got\n%s", out)
	}
	if out := s.mustPrun(t, "maintenance", "due", "--profile", "cpap"); out != "0 due items\n" {
		t.Errorf("maintenance due --profile cpap = %q, want 0 due items", out)
	}
	rec := s.mustPrun(t, "maintenance", "record", "pump-1")
	if keyValue(t, rec, "service state") != "needs_check" {
		t.Errorf("maintenance record of a new device:\n%s\nwant service state needs_check", rec)
	}

	// The acceptance check, assigned at once, shows in the due list.
	acc := createOrder(t, s, "pump-1", "--type", "acceptance", "--assignee", "alice")
	if row := rowOf(t, s.mustPrun(t, "maintenance", "due"), "pump-1 "); !slices.Contains(row, acc) {
		t.Errorf("maintenance due row %q lacks the work order %s", row, acc)
	}
	list := s.mustRun(t, "workorder", "list", "--device", "pump-1")
	if row := rowOf(t, list, acc+" "); !slices.Equal(row[:6], []string{acc, "pump-1", "acceptance", "assigned", "acceptance", "high"}) {
		t.Errorf("workorder list row = %q, want %s pump-1 acceptance assigned acceptance high ...", row, acc)
	}
	if out := s.mustRun(t, "workorder", "list", "--state", "open"); out != "0 work orders\n" {
		t.Errorf("workorder list --state open = %q, want 0 work orders", out)
	}
	out := s.mustRun(t, "workorder", "complete", "workOrders/"+acc, "--pass", "acceptance", "--minutes", "20")
	for key, want := range map[string]string{"state": "completed", "results": "acceptance passed", "minutes": "20"} {
		if got := keyValue(t, out, key); got != want {
			t.Errorf("workorder complete: %s: %q, want %q", key, got, want)
		}
	}
	if got := keyValue(t, out, "completed"); !strings.HasSuffix(got, " by users/admin") {
		t.Errorf("workorder complete: completed: %q, want by users/admin and no verdict on timeliness", got)
	}
	rec = s.mustPrun(t, "maintenance", "record", "devices/pump-1")
	if keyValue(t, rec, "service state") != "in_service" || !strings.Contains(rec, "\nno failures recorded\n") {
		t.Errorf("maintenance record after the acceptance check:\n%s\nwant in_service and no failures", rec)
	}
	if out := s.mustPrun(t, "maintenance", "due"); out != "0 due items\n" {
		t.Errorf("maintenance due after the acceptance check = %q, want 0 due items", out)
	}
	code, _, stderr := s.run(t, "workorder", "complete", acc)
	if code != exitFailedPrecondition {
		t.Errorf("completing %s twice = %d, want %d (stderr %q)", acc, code, exitFailedPrecondition, stderr)
	}

	// A major repair records the failure and sends the device back to
	// needs_check.
	rep := createOrder(t, s, "pump-1", "--type", "repair", "--failure-code", "occlusion-sensor", "--major", "--description", "occlusion alarm at 0 psi")
	s.mustRun(t, "workorder", "assign", rep, "bob")
	var o medfleetv1.WorkOrder
	s.mustJSON(t, &o, "workorder", "complete", rep, "--part", "pressure sensor", "--minutes", "45")
	if o.GetCompletedBy() != "users/admin" || !slices.Equal(o.GetParts(), []string{"pressure sensor"}) || o.GetAssignee() != "bob" {
		t.Errorf("completed repair = %v, want completed by users/admin, part, assignee bob", &o)
	}
	rec = s.mustPrun(t, "maintenance", "record", "pump-1")
	if keyValue(t, rec, "service state") != "needs_check" {
		t.Errorf("maintenance record after a major repair:\n%s\nwant needs_check", rec)
	}
	if row := rowOf(t, rec, "occlusion-sensor "); row[len(row)-1] != rep {
		t.Errorf("failure row = %q, want it to end in %s", row, rep)
	}
	// The failure came after no operating hours: the reliability report
	// has its mode, says it was not fitted, and why.
	rel := s.mustPrun(t, "maintenance", "reliability", "test-pump")
	if row := rowOf(t, rel, "occlusion-sensor "); len(row) < 3 || !strings.Contains(rel, "1 failure(s) after no operating hours") {
		t.Errorf("maintenance reliability test-pump:\n%s\nwant occlusion-sensor, not fitted, with the reason", rel)
	}
	// Its plan keeps no histories: nothing to train a failure model from.
	if code, _, stderr := s.run(t, "maintenance", "train", "test-pump"); code != exitInvalidArgument || !strings.Contains(stderr, "predict_failures") {
		t.Errorf("maintenance train test-pump = %d, %s; want exit %d naming predict_failures", code, stderr, exitInvalidArgument)
	}

	// An acceptance check cancelled: the reason is kept; a cancelled order
	// cannot be cancelled again.
	acc2 := createOrder(t, s, "pump-1", "--type", "acceptance")
	s.mustJSON(t, &o, "workorder", "cancel", acc2, "--reason", "device sent to the vendor")
	if o.GetState() != medfleetv1.WorkOrderState_WORK_ORDER_STATE_CANCELLED || o.GetCancelReason() != "device sent to the vendor" {
		t.Errorf("cancelled order = %v, want cancelled with the reason", &o)
	}
	if code, _, stderr := s.run(t, "workorder", "cancel", acc2, "--reason", "again"); code != exitFailedPrecondition {
		t.Errorf("cancelling %s twice = %d, want %d (stderr %q)", acc2, code, exitFailedPrecondition, stderr)
	}

	// Preventive orders: pm due yesterday and done now (late), esa due
	// tomorrow and done now (on time), battery due yesterday and not done
	// (missed).
	yesterday, tomorrow := now.AddDate(0, 0, -1).Format(dateLayout), now.AddDate(0, 0, 1).Format(dateLayout)
	pm := createOrder(t, s, "pump-1", "--type", "preventive", "--task", "pm", "--due", yesterday)
	esa := createOrder(t, s, "pump-1", "--type", "preventive", "--task", "esa", "--due", tomorrow)
	battery := createOrder(t, s, "pump-1", "--type", "preventive", "--task", "battery", "--due", yesterday)
	if code, _, stderr := s.run(t, "workorder", "create", "pump-1", "--type", "preventive", "--task", "pm"); code != exitFailedPrecondition {
		t.Errorf("a second open order for pm = %d, want %d (stderr %q)", code, exitFailedPrecondition, stderr)
	}
	if code, _, stderr := s.run(t, "workorder", "complete", pm, "--pass", "esa"); code != exitInvalidArgument {
		t.Errorf("completing pm with a result for esa = %d, want %d (stderr %q)", code, exitInvalidArgument, stderr)
	}
	if out := s.mustRun(t, "workorder", "complete", pm, "--pass", "pm"); !strings.HasSuffix(keyValue(t, out, "completed"), ", late") {
		t.Errorf("pm completed after its due date:\n%s\nwant it marked late", out)
	}
	if out := s.mustRun(t, "workorder", "complete", esa, "--pass", "esa"); !strings.HasSuffix(keyValue(t, out, "completed"), ", on time") {
		t.Errorf("esa completed before its due date:\n%s\nwant it marked on time", out)
	}
	if row := rowOf(t, s.mustRun(t, "workorder", "list", "--state", "open"), battery+" "); !strings.HasSuffix(strings.Join(row, " "), "(1d overdue) -") {
		t.Errorf("open battery order row = %q, want it 1d overdue", row)
	}
	rec = s.mustPrun(t, "maintenance", "record", "pump-1")
	for _, task := range []string{"pm", "esa"} {
		if row := rowOf(t, rec, task+" "); row[len(row)-1] == "-" {
			t.Errorf("record row of %s = %q, want its work order", task, row)
		}
	}

	from, to := now.AddDate(0, 0, -2).Format(dateLayout), now.AddDate(0, 0, 2).Format(dateLayout)
	var r medfleetv1.ComplianceReport
	s.mustPrunJSON(t, &r, "maintenance", "report", "--from", from, "--to", to)
	want := &medfleetv1.ComplianceFigures{Scheduled: 3, OnTime: 1, Late: 1, Missed: 1, OnTimePercent: 100.0 / 3}
	for name, f := range map[string]*medfleetv1.ComplianceFigures{"overall": r.GetOverall(), "high_risk": r.GetHighRisk()} {
		if !proto.Equal(f, want) {
			t.Errorf("report %s = %v, want %v", name, f, want)
		}
	}
	if f := r.GetLifeSupport(); f.GetScheduled() != 0 || f.GetOnTimePercent() != 100 {
		t.Errorf("report life_support = %v, want nothing scheduled, 100 %%", f)
	}
	if len(r.GetMissed()) != 1 || r.GetMissed()[0].GetName() != workOrdersPrefix+battery || len(r.GetLate()) != 1 || r.GetLate()[0].GetName() != workOrdersPrefix+pm {
		t.Errorf("report missed %v, late %v; want %s missed and %s late", r.GetMissed(), r.GetLate(), battery, pm)
	}

	table := s.mustPrun(t, "maintenance", "report", "--from", from, "--to", to)
	if row := rowOf(t, table, "overall "); !slices.Equal(row, []string{"overall", "3", "1", "1", "1", "33.3"}) {
		t.Errorf("report overall row = %q, want overall 3 1 1 1 33.3", row)
	}
	if row := rowOf(t, table, "missed "); !slices.Equal(row[:5], []string{"missed", battery, "pump-1", "battery", "high"}) {
		t.Errorf("report missed row = %q", row)
	}
	if row := rowOf(t, table, "late "); len(row) != 7 || row[1] != pm {
		t.Errorf("report late row = %q, want %s with its window end and completion", row, pm)
	}

	rows, err := csv.NewReader(strings.NewReader(s.mustPrun(t, "maintenance", "report", "--from", from, "--to", to, "--csv"))).ReadAll()
	if err != nil {
		t.Fatalf("report --csv: %v", err)
	}
	var got []string
	for _, row := range rows[1:] {
		got = append(got, row[2]+" "+strings.Join(row[3:9], " "))
	}
	wantRows := []string{
		"overall 3 1 1 1 33.3 ",
		"high_risk 3 1 1 1 33.3 ",
		"life_support 0 0 0 0 100.0 ",
		"missed      " + workOrdersPrefix + battery,
		"late      " + workOrdersPrefix + pm,
	}
	if diff := cmp.Diff(wantRows, got); diff != "" {
		t.Errorf("report --csv rows mismatch (-want +got):\n%s", diff)
	}

	// Not found: exit 3.
	for _, args := range [][]string{
		{"workorder", "get", "20260101-absent00"},
		{"workorder", "complete", "absent"},
		{"workorder", "create", "absent", "--type", "repair"},
	} {
		if code, _, stderr := s.run(t, args...); code != exitNotFound || !strings.HasPrefix(stderr, "medfleetctl: not found: ") {
			t.Errorf("medfleetctl %q = %d, %q; want %d, not found", args, code, stderr, exitNotFound)
		}
	}
}

// TestMaintenanceDueScheduled lets the scheduler open the acceptance check
// of a new device: the due list shows the order, which is the system's.
func TestMaintenanceDueScheduled(t *testing.T) {
	s := startMaintenanceServer(t, 200*time.Millisecond)
	s.mustRun(t, "model", "apply", "-f", testModelFile)
	s.mustRun(t, "device", "create", "pump-2", "--profile", "infusion-pump", "--model", testModelString)

	var order string
	for deadline := time.Now().Add(10 * time.Second); order == ""; {
		var items medfleetv1.ListDueItemsResponse
		s.mustPrunJSON(t, &items, "maintenance", "due")
		if len(items.GetItems()) != 1 || items.GetItems()[0].GetTaskId() != "acceptance" {
			t.Fatalf("maintenance due = %v, want the acceptance check", &items)
		}
		order = items.GetItems()[0].GetWorkOrder()
		if order == "" {
			if time.Now().After(deadline) {
				t.Fatal("the scheduler opened no order for the acceptance check in 10s")
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	id := strings.TrimPrefix(order, workOrdersPrefix)
	if row := rowOf(t, s.mustPrun(t, "maintenance", "due"), "pump-2 "); !slices.Contains(row, id) {
		t.Errorf("maintenance due row %q lacks the work order %s", row, id)
	}
	get := s.mustRun(t, "workorder", "get", order)
	for key, want := range map[string]string{"type": "acceptance", "state": "open", "reason": "acceptance", "due": time.Now().UTC().Format(dateLayout) + " (today)"} {
		if got := keyValue(t, get, key); got != want {
			t.Errorf("workorder get %s: %s: %q, want %q", id, key, got, want)
		}
	}
	if got := keyValue(t, get, "created"); !strings.HasSuffix(got, " by system") {
		t.Errorf("workorder get %s: created: %q, want by system", id, got)
	}
	if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(id) + `\s+pump-2\s+acceptance\s+open\s`).MatchString(s.mustRun(t, "workorder", "list", "--state", "open")) {
		t.Errorf("workorder list --state open lacks %s", id)
	}
}
