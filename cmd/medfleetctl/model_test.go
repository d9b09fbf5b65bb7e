package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/testing/protocmp"

	medfleetv1 "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// testModelFile is a plan whose model string the integration tests give
// their devices.
const (
	testModelFile   = "testdata/model_test_pump.yaml"
	testModelID     = "test-pump"
	testModelString = "Test Pump 100"
)

// testPumpModel is a model as the server returns it, with a task of every
// kind of trigger.
func testPumpModel() *medfleetv1.DeviceModel {
	return &medfleetv1.DeviceModel{
		Name:         "models/bd-alaris-8100",
		Model:        "BD Alaris 8100",
		Manufacturer: "BD",
		Profile:      "infusion-pump",
		EmNumber:     17,
		HighRisk:     true,
		Tasks: []*medfleetv1.MaintenanceTask{
			{Id: "pm", Kind: medfleetv1.TaskKind_TASK_KIND_PM_INSPECTION, Description: "Major inspection: flow accuracy,\n  occlusion alarm.",
				IntervalDays: 365, IntervalHours: 2000, WindowBeforeDays: 30, WindowAfterDays: 30},
			{Id: "battery", Kind: medfleetv1.TaskKind_TASK_KIND_BATTERY_REPLACEMENT, IntervalDays: 730,
				Conditions:       []*medfleetv1.Condition{{Indicator: "battery", Op: "<=", Threshold: 5}},
				WindowBeforeDays: 30, WindowAfterDays: 30},
		},
		UpdateTime: ts(testNow.Add(-50 * time.Hour)),
		Etag:       "812",
	}
}

// testCPAPModel is a life-support-free model with a trend condition and a
// usage-only task.
func testCPAPModel() *medfleetv1.DeviceModel {
	return &medfleetv1.DeviceModel{
		Name:     "models/resmed-airsense-11",
		Model:    "ResMed AirSense 11",
		Profile:  "cpap",
		EmNumber: 14,
		Tasks: []*medfleetv1.MaintenanceTask{
			{Id: "filter", Kind: medfleetv1.TaskKind_TASK_KIND_FILTER, IntervalDays: 180, WindowBeforeDays: 7, WindowAfterDays: 7,
				Conditions: []*medfleetv1.Condition{{Indicator: "telemetry/filter/hours", Op: ">=", Threshold: 250, TrendDays: 7}}},
			{Id: "blower", Kind: medfleetv1.TaskKind_TASK_KIND_BLOWER_SERVICE, IntervalHours: 10000, WindowAfterDays: 30},
		},
	}
}

// testVentilatorModel is life support.
func testVentilatorModel() *medfleetv1.DeviceModel {
	return &medfleetv1.DeviceModel{
		Name: "models/hamilton-c6", Model: "Hamilton C6", Profile: "ventilator", HighRisk: true, LifeSupport: true,
		Tasks: []*medfleetv1.MaintenanceTask{{Id: "pm", Kind: medfleetv1.TaskKind_TASK_KIND_PM_INSPECTION, IntervalDays: 180}},
	}
}

func TestTaskTriggers(t *testing.T) {
	tests := []struct {
		name string
		task *medfleetv1.MaintenanceTask
		want string
	}{
		{"calendar", &medfleetv1.MaintenanceTask{IntervalDays: 365}, "every 365 d"},
		{"usage", &medfleetv1.MaintenanceTask{IntervalHours: 10000, WindowAfterDays: 30}, "every 10000 h; window +30 d"},
		{"fractional hours", &medfleetv1.MaintenanceTask{IntervalHours: 12.5}, "every 12.5 h"},
		{"window before only", &medfleetv1.MaintenanceTask{IntervalDays: 90, WindowBeforeDays: 7}, "every 90 d; window -7 d"},
		{
			"calendar, usage and window",
			&medfleetv1.MaintenanceTask{IntervalDays: 365, IntervalHours: 2000, WindowBeforeDays: 30, WindowAfterDays: 30},
			"every 365 d or 2000 h; window -30/+30 d",
		},
		{
			"calendar and trend condition",
			&medfleetv1.MaintenanceTask{IntervalDays: 365, IntervalHours: 2000, WindowBeforeDays: 30, WindowAfterDays: 30,
				Conditions: []*medfleetv1.Condition{{Indicator: "telemetry/filter/hours", Op: ">=", Threshold: 250, TrendDays: 7}}},
			"every 365 d or 2000 h, or telemetry/filter/hours >= 250 (trend 7 d); window -30/+30 d",
		},
		{
			"conditions only",
			&medfleetv1.MaintenanceTask{Conditions: []*medfleetv1.Condition{
				{Indicator: "battery", Op: "<=", Threshold: 5},
				{Indicator: "alarm/occlusion", Op: ">=", Threshold: 3},
			}},
			"when battery <= 5, or alarm/occlusion >= 3",
		},
		{"nothing", &medfleetv1.MaintenanceTask{}, "-"},
		{
			"control characters quoted",
			&medfleetv1.MaintenanceTask{Conditions: []*medfleetv1.Condition{{Indicator: "telemetry/x\x1b[2J", Op: ">=", Threshold: 1}}},
			`when "telemetry/x\x1b[2J" >= 1`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := taskTriggers(tc.task); got != tc.want {
				t.Errorf("taskTriggers() = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestParseModelID(t *testing.T) {
	tests := []struct {
		in, want string
		wantErr  bool
	}{
		{in: "bd-alaris-8100", want: "bd-alaris-8100"},
		{in: "models/bd-alaris-8100", want: "bd-alaris-8100"},
		{in: "a.b_c", want: "a.b_c"},
		{in: "BD-Alaris", wantErr: true},
		{in: "", wantErr: true},
		{in: "models/", wantErr: true},
		{in: "-x", wantErr: true},
		{in: "models/a/b", wantErr: true},
		{in: strings.Repeat("m", 65), wantErr: true},
	}
	for _, tc := range tests {
		got, err := parseModelID(tc.in)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("parseModelID(%q) = %q, %v; want %q, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

// TestReadModelFile checks that a bad plan file is reported with the file,
// the line and the field.
func TestReadModelFile(t *testing.T) {
	good, err := os.ReadFile(testModelFile)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		yaml    string
		wantErr string // "" for none; FILE stands for the file's path
	}{
		{name: "good", yaml: string(good)},
		{
			name:    "unknown key",
			yaml:    "id: x\nmodel: X\ntasks:\n  - id: pm\n    kind: pm-inspection\n    intervl_days: 365\n",
			wantErr: `FILE: line 6: tasks[0].intervl_days: unknown key "intervl_days"`,
		},
		{
			name:    "wrong type",
			yaml:    "id: x\nmodel: X\ntasks:\n  - id: pm\n    kind: pm-inspection\n    interval_days: yearly\n",
			wantErr: "FILE: line 6: tasks[0].interval_days: cannot unmarshal !!str `yearly` into int32",
		},
		{
			name:    "two problems, one line each",
			yaml:    "id: x\nmodel: X\ncolour: red\ntasks:\n  - id: pm\n    kind: pm-inspection\n    interval_days: yearly\n",
			wantErr: "FILE: line 3: colour: unknown key \"colour\"\nFILE: line 7: tasks[0].interval_days: cannot unmarshal",
		},
		{
			name:    "unknown kind",
			yaml:    "id: x\nmodel: X\ntasks:\n  - id: pm\n    interval_days: 365\n    kind: tune-up\n",
			wantErr: `FILE: line 6: tasks[0].kind: "tune-up": want one of pm-inspection`,
		},
		{
			name: "window longer than the interval",
			yaml: "id: x\nmodel: X\ntasks:\n  - id: pm\n    kind: pm-inspection\n    interval_days: 30\n" +
				"    window_before_days: 20\n    window_after_days: 20\n",
			wantErr: "FILE: line 8: tasks[0].window_after_days: the due window must be shorter than the interval",
		},
		{
			name:    "bad id",
			yaml:    "id: Pump One\nmodel: X\ntasks:\n  - id: pm\n    kind: pm-inspection\n    interval_days: 30\n",
			wantErr: `FILE: line 1: model_id: "Pump One" is not an id`,
		},
		{
			name:    "no tasks",
			yaml:    "id: x\nmodel: X\n",
			wantErr: "tasks: a plan needs at least one task",
		},
		{name: "empty", yaml: "", wantErr: "FILE: the file is empty"},
		{
			name:    "syntax error",
			yaml:    "id: x\nmodel: X\ntasks:\n  - id: pm\n   kind: [\n",
			wantErr: "FILE: ",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "plan.yaml")
			if err := os.WriteFile(path, []byte(tc.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			id, m, err := readModelFile(path)
			if tc.wantErr == "" {
				if err != nil || id == "" || len(m.GetTasks()) == 0 {
					t.Fatalf("readModelFile = %q, %d tasks, %v; want a model", id, len(m.GetTasks()), err)
				}
				return
			}
			want := strings.ReplaceAll(tc.wantErr, "FILE", path)
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("readModelFile error = %v, want one containing %q", err, want)
			}
		})
	}

	if _, _, err := readModelFile(filepath.Join(t.TempDir(), "absent.yaml")); err == nil || !strings.Contains(err.Error(), "absent.yaml") {
		t.Errorf("readModelFile of a missing file = %v, want an error naming it", err)
	}
}

// TestModelApplyDryRun checks the example plans, when the repository has
// them, and the test plan offline: they parse, and print as a model.
func TestModelApplyDryRun(t *testing.T) {
	files, _ := filepath.Glob("../../examples/models/*.yaml")
	files = append(files, testModelFile)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			code, stdout, stderr := runCLI(t, nil, "--server", unreachable, "-o", "json", "model", "apply", "-f", f, "--dry-run")
			if code != exitOK {
				t.Fatalf("model apply -f %s --dry-run = %d, want 0; stderr:\n%s", f, code, stderr)
			}
			var m medfleetv1.DeviceModel
			if err := protojson.Unmarshal([]byte(stdout), &m); err != nil {
				t.Fatalf("output: %v\n%s", err, stdout)
			}
			if !strings.HasPrefix(m.GetName(), modelsPrefix) || m.GetModel() == "" || len(m.GetTasks()) == 0 {
				t.Errorf("model apply --dry-run printed %v, want a named model with tasks", &m)
			}
		})
	}
}

func TestModelGolden(t *testing.T) {
	tests := []struct {
		name  string
		write func(*bytes.Buffer) error
	}{
		{"model_list.golden", func(b *bytes.Buffer) error {
			return writeModelTable(b, []*medfleetv1.DeviceModel{testPumpModel(), testVentilatorModel(), testCPAPModel()})
		}},
		{"model_list_empty.golden", func(b *bytes.Buffer) error { return writeModelTable(b, nil) }},
		{"model_get.golden", func(b *bytes.Buffer) error { return writeModel(b, testPumpModel(), testNow) }},
		{"model_get_cpap.golden", func(b *bytes.Buffer) error { return writeModel(b, testCPAPModel(), testNow) }},
		{"model_get.json.golden", func(b *bytes.Buffer) error { return writeJSON(b, testPumpModel()) }},
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

	// -o json loses nothing.
	raw, err := os.ReadFile(filepath.Join("testdata", "model_get.json.golden"))
	if err != nil {
		t.Fatal(err)
	}
	var got medfleetv1.DeviceModel
	if err := protojson.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(testPumpModel(), &got, protocmp.Transform()); diff != "" {
		t.Errorf("model_get.json.golden decodes differently (-want +got):\n%s", diff)
	}
}

// TestModelServer applies a plan to a real server and reads it back.
func TestModelServer(t *testing.T) {
	s := startServer(t)

	out := s.mustRun(t, "model", "apply", "-f", testModelFile)
	if name, risk := keyValue(t, out, "name"), keyValue(t, out, "risk"); name != "models/test-pump" || risk != "high" {
		t.Errorf("model apply: name %q, risk %q; want models/test-pump, high", name, risk)
	}
	for _, want := range []string{
		"\n3 tasks:\n",
		"  pm (pm-inspection)\n    due:  every 365 d or 2000 h; window -30/+30 d\n",
		"  battery (battery-replacement)\n    due:  every 730 d, or battery <= 5; window -30/+30 d\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("model apply output lacks %q:\n%s", want, out)
		}
	}

	var m medfleetv1.DeviceModel
	s.mustJSON(t, &m, "model", "get", "models/"+testModelID)
	if m.GetModel() != testModelString || !m.GetHighRisk() || len(m.GetTasks()) != 3 || m.GetEtag() == "" {
		t.Errorf("model get = %v, want %q, high risk, 3 tasks and an etag", &m, testModelString)
	}
	if got := keyValue(t, s.mustRun(t, "model", "get", testModelID), "etag"); got != m.GetEtag() {
		t.Errorf("model get: etag %q, want %q", got, m.GetEtag())
	}

	list := s.mustRun(t, "model", "list")
	lines := strings.Split(strings.TrimSuffix(list, "\n"), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "ID ") || lines[2] != "1 model" {
		t.Fatalf("model list =\n%s\nwant a header, one model and a count", list)
	}
	if f := strings.Fields(lines[1]); strings.Join(f, " ") != "test-pump Test Pump 100 infusion-pump 17 yes no 3" {
		t.Errorf("model list row = %q, want test-pump Test Pump 100 infusion-pump 17 yes no 3", lines[1])
	}
	var resp medfleetv1.ListDeviceModelsResponse
	s.mustJSON(t, &resp, "model", "list")
	if len(resp.GetDeviceModels()) != 1 || resp.GetDeviceModels()[0].GetName() != "models/test-pump" {
		t.Errorf("model list -o json = %v, want models/test-pump", &resp)
	}

	// Another model may not claim the same model string: the server says
	// invalid argument and names the field.
	other := filepath.Join(t.TempDir(), "other.yaml")
	data, err := os.ReadFile(testModelFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(other, []byte(strings.Replace(string(data), "id: test-pump", "id: test-pump-2", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := s.run(t, "model", "apply", "-f", other)
	if code != exitInvalidArgument || !strings.Contains(stderr, "model: ") {
		t.Errorf("model apply of a second model with the same model string = %d, %q; want %d naming model", code, stderr, exitInvalidArgument)
	}

	code, _, stderr = s.run(t, "model", "get", "absent")
	if code != exitNotFound || !strings.HasPrefix(stderr, "medfleetctl: not found: ") {
		t.Errorf("model get absent = %d, %q; want %d, not found", code, stderr, exitNotFound)
	}
}
