package maintenance

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

const (
	kindPM      = pb.TaskKind_TASK_KIND_PM_INSPECTION
	kindSafety  = pb.TaskKind_TASK_KIND_ELECTRICAL_SAFETY
	kindBattery = pb.TaskKind_TASK_KIND_BATTERY_REPLACEMENT
	kindFilter  = pb.TaskKind_TASK_KIND_FILTER
	kindBlower  = pb.TaskKind_TASK_KIND_BLOWER_SERVICE
)

// pumpPlan is a valid plan: calendar and usage, calendar only, calendar
// and condition.
func pumpPlan() *pb.DeviceModel {
	return &pb.DeviceModel{
		Name: "models/bd-alaris-8100", Model: "BD Alaris 8100", Manufacturer: "BD", Profile: "infusion-pump",
		EmNumber: 17, HighRisk: true,
		Tasks: []*pb.MaintenanceTask{
			{Id: "pm", Kind: kindPM, IntervalDays: 365, IntervalHours: 2000, WindowBeforeDays: 30, WindowAfterDays: 30},
			{Id: "esa", Kind: kindSafety, IntervalDays: 365, WindowBeforeDays: 30, WindowAfterDays: 30},
			{Id: "battery", Kind: kindBattery, IntervalDays: 730,
				Conditions: []*pb.Condition{{Indicator: "battery", Op: "<=", Threshold: 5}}},
		},
	}
}

func TestValidateModel(t *testing.T) {
	tests := []struct {
		name   string
		id     string // "" means "bd-alaris-8100"
		change func(m *pb.DeviceModel)
		field  string // "" means valid
	}{
		{name: "good plan", change: func(*pb.DeviceModel) {}},
		{name: "usage only", change: func(m *pb.DeviceModel) { m.Tasks[0].IntervalDays = 0 }},
		{name: "condition only", change: func(m *pb.DeviceModel) { m.Tasks[2].IntervalDays = 0 }},
		{name: "alarm and telemetry indicators", change: func(m *pb.DeviceModel) {
			m.Tasks[2].Conditions = append(m.Tasks[2].Conditions,
				&pb.Condition{Indicator: "alarm/occlusion", Op: ">=", Threshold: 10},
				&pb.Condition{Indicator: "telemetry/filter/hours", Op: ">=", Threshold: 250, TrendDays: 7})
		}},
		{name: "em number unset", change: func(m *pb.DeviceModel) { m.EmNumber = 0 }},
		{name: "em number 2 and 20", change: func(m *pb.DeviceModel) { m.EmNumber = 20 }},
		{name: "life support, high risk", change: func(m *pb.DeviceModel) { m.LifeSupport = true }},
		{name: "aem allowed", change: func(m *pb.DeviceModel) { m.AemAllowed = true }},

		{name: "bad model id", id: "BD Alaris", change: func(*pb.DeviceModel) {}, field: "model_id"},
		{name: "missing model", change: func(m *pb.DeviceModel) { m.Model = "  " }, field: "model"},
		{name: "em number 1", change: func(m *pb.DeviceModel) { m.EmNumber = 1 }, field: "em_number"},
		{name: "em number 21", change: func(m *pb.DeviceModel) { m.EmNumber = 21 }, field: "em_number"},
		{name: "em number negative", change: func(m *pb.DeviceModel) { m.EmNumber = -3 }, field: "em_number"},
		{name: "life support without high risk", change: func(m *pb.DeviceModel) { m.LifeSupport, m.HighRisk = true, false },
			field: "high_risk"},
		{name: "aem with life support", change: func(m *pb.DeviceModel) { m.LifeSupport, m.AemAllowed = true, true },
			field: "aem_allowed"},
		{name: "no tasks", change: func(m *pb.DeviceModel) { m.Tasks = nil }, field: "tasks"},
		{name: "bad task id", change: func(m *pb.DeviceModel) { m.Tasks[1].Id = "Electrical Safety" }, field: "tasks[1].id"},
		{name: "duplicate task id", change: func(m *pb.DeviceModel) { m.Tasks[2].Id = "pm" }, field: "tasks[2].id"},
		{name: "kind unspecified", change: func(m *pb.DeviceModel) { m.Tasks[0].Kind = 0 }, field: "tasks[0].kind"},
		{name: "unknown kind", change: func(m *pb.DeviceModel) { m.Tasks[1].Kind = 99 }, field: "tasks[1].kind"},
		{name: "no trigger", change: func(m *pb.DeviceModel) { m.Tasks[1].IntervalDays = 0 }, field: "tasks[1].interval_days"},
		{name: "negative interval days", change: func(m *pb.DeviceModel) { m.Tasks[0].IntervalDays = -365 },
			field: "tasks[0].interval_days"},
		{name: "negative interval hours", change: func(m *pb.DeviceModel) { m.Tasks[0].IntervalHours = -1 },
			field: "tasks[0].interval_hours"},
		{name: "interval days over a century", change: func(m *pb.DeviceModel) { m.Tasks[1].IntervalDays = 200000 },
			field: "tasks[1].interval_days"},
		{name: "window before over a century", change: func(m *pb.DeviceModel) {
			m.Tasks[0].IntervalDays, m.Tasks[0].WindowBeforeDays = 0, 36501
		}, field: "tasks[0].window_before_days"},
		{name: "window after over a century", change: func(m *pb.DeviceModel) {
			m.Tasks[0].IntervalDays, m.Tasks[0].WindowAfterDays = 0, 2147483647
		}, field: "tasks[0].window_after_days"},
		{name: "trend days over a century", change: func(m *pb.DeviceModel) { m.Tasks[2].Conditions[0].TrendDays = 1 << 30 },
			field: "tasks[2].conditions[0].trend_days"},
		{name: "a century", change: func(m *pb.DeviceModel) {
			m.Tasks[1].IntervalDays, m.Tasks[2].Conditions[0].TrendDays = 36500, 36500
		}},
		{name: "interval hours not a number", change: func(m *pb.DeviceModel) { m.Tasks[1].IntervalHours = math.NaN() },
			field: "tasks[1].interval_hours"},
		{name: "threshold not a number", change: func(m *pb.DeviceModel) { m.Tasks[2].Conditions[0].Threshold = math.NaN() },
			field: "tasks[2].conditions[0].threshold"},
		{name: "negative window before", change: func(m *pb.DeviceModel) { m.Tasks[1].WindowBeforeDays = -1 },
			field: "tasks[1].window_before_days"},
		{name: "negative window after", change: func(m *pb.DeviceModel) { m.Tasks[1].WindowAfterDays = -1 },
			field: "tasks[1].window_after_days"},
		{name: "window as long as interval", change: func(m *pb.DeviceModel) {
			m.Tasks[1].WindowBeforeDays, m.Tasks[1].WindowAfterDays = 200, 165
		}, field: "tasks[1].window_after_days"},
		{name: "bad indicator", change: func(m *pb.DeviceModel) { m.Tasks[2].Conditions[0].Indicator = "charge" },
			field: "tasks[2].conditions[0].indicator"},
		{name: "empty telemetry name", change: func(m *pb.DeviceModel) { m.Tasks[2].Conditions[0].Indicator = "telemetry/" },
			field: "tasks[2].conditions[0].indicator"},
		{name: "empty alarm code", change: func(m *pb.DeviceModel) { m.Tasks[2].Conditions[0].Indicator = "alarm/" },
			field: "tasks[2].conditions[0].indicator"},
		{name: "bad op", change: func(m *pb.DeviceModel) { m.Tasks[2].Conditions[0].Op = "<" },
			field: "tasks[2].conditions[0].op"},
		{name: "negative trend days", change: func(m *pb.DeviceModel) { m.Tasks[2].Conditions[0].TrendDays = -7 },
			field: "tasks[2].conditions[0].trend_days"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id := tc.id
			if id == "" {
				id = "bd-alaris-8100"
			}
			m := pumpPlan()
			tc.change(m)
			err := ValidateModel(id, m)
			if tc.field == "" {
				if err != nil {
					t.Fatalf("ValidateModel(%q) = %v, want nil", id, err)
				}
				return
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("ValidateModel(%q) = %v, want a *FieldError on %s", id, err, tc.field)
			}
			if fe.Field != tc.field || fe.Reason == "" {
				t.Errorf("ValidateModel(%q) = field %q (%q), want field %q", id, fe.Field, fe.Reason, tc.field)
			}
		})
	}
}

func TestValidateModelNil(t *testing.T) {
	var fe *FieldError
	if err := ValidateModel("x", nil); !errors.As(err, &fe) || fe.Field != "device_model" {
		t.Errorf("ValidateModel(x, nil) = %v, want a FieldError on device_model", err)
	}
}

func TestFieldErrorMessage(t *testing.T) {
	tests := []struct {
		err  *FieldError
		want string
	}{
		{&FieldError{Field: "tasks[1].kind", Reason: "required"}, "tasks[1].kind: required"},
		{&FieldError{Field: "tasks[1].kind", Reason: "required", Line: 12}, "line 12: tasks[1].kind: required"},
	}
	for _, tc := range tests {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
	}
}

func readExample(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "examples", "models", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestParseModelYAMLExamples(t *testing.T) {
	tests := []struct {
		file, id, model, profile string
		highRisk                 bool
		tasks                    []pb.TaskKind
		indicators               []string
	}{
		{file: "infusion-pump.yaml", id: "bd-alaris-8100", model: "BD Alaris 8100", profile: "infusion-pump", highRisk: true,
			tasks: []pb.TaskKind{kindPM, kindSafety, kindBattery}, indicators: []string{"battery"}},
		{file: "cpap.yaml", id: "resmed-airsense-11", model: "ResMed AirSense 11", profile: "cpap",
			tasks: []pb.TaskKind{kindFilter, kindBlower, kindPM}, indicators: []string{"telemetry/filter/hours"}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			id, m, err := ParseModelYAML(readExample(t, tc.file))
			if err != nil {
				t.Fatalf("ParseModelYAML(%s) = %v", tc.file, err)
			}
			if id != tc.id || m.GetModel() != tc.model || m.GetProfile() != tc.profile || m.GetHighRisk() != tc.highRisk {
				t.Errorf("ParseModelYAML(%s) = %q, %q, %q, high risk %v; want %q, %q, %q, %v",
					tc.file, id, m.GetModel(), m.GetProfile(), m.GetHighRisk(), tc.id, tc.model, tc.profile, tc.highRisk)
			}
			if m.GetLifeSupport() || m.GetAemAllowed() || m.GetEmNumber() < 12 {
				t.Errorf("ParseModelYAML(%s) = life support %v, aem %v, em %d; want false, false, >= 12",
					tc.file, m.GetLifeSupport(), m.GetAemAllowed(), m.GetEmNumber())
			}
			var kinds []pb.TaskKind
			for _, task := range m.GetTasks() {
				kinds = append(kinds, task.GetKind())
				if task.GetDescription() == "" {
					t.Errorf("task %s has no description", task.GetId())
				}
			}
			if !equal(kinds, tc.tasks) {
				t.Errorf("ParseModelYAML(%s) kinds = %v, want %v", tc.file, kinds, tc.tasks)
			}
			if got := Indicators(m); !equal(got, tc.indicators) {
				t.Errorf("Indicators(%s) = %q, want %q", tc.file, got, tc.indicators)
			}
			if err := ValidateModel(id, m); err != nil {
				t.Errorf("ValidateModel(%s) = %v", tc.file, err)
			}
		})
	}
}

func equal[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// The infusion pump plan's values, spelled out.
func TestParseModelYAMLPumpValues(t *testing.T) {
	_, m, err := ParseModelYAML(readExample(t, "infusion-pump.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	pm := m.GetTasks()[0]
	if pm.GetId() != "pm" || pm.GetIntervalDays() != 365 || pm.GetIntervalHours() != 2000 ||
		pm.GetWindowBeforeDays() != 30 || pm.GetWindowAfterDays() != 30 {
		t.Errorf("pm task = %v, want pm, 365 d, 2000 h, window 30/30", pm)
	}
	c := m.GetTasks()[2].GetConditions()
	if len(c) != 1 || c[0].GetIndicator() != "battery" || c[0].GetOp() != "<=" || c[0].GetThreshold() != 5 {
		t.Errorf("battery conditions = %v, want battery <= 5", c)
	}
}

const badPlanHead = `id: test-pump
model: Test Pump
em_number: 17
high_risk: true
tasks:
  - id: pm
    kind: pm-inspection
    interval_days: 365
`

func TestParseModelYAMLErrors(t *testing.T) {
	tests := []struct {
		name, yaml string
		field      string // "": not a FieldError; the message must then hold line
		line       int
	}{
		{name: "bad kind", yaml: badPlanHead + `  - id: esa
    kind: electrical
    interval_days: 365
`, field: "tasks[1].kind", line: 10},
		{name: "missing kind", yaml: badPlanHead + `  - id: esa
    interval_days: 365
`, field: "tasks[1].kind", line: 9},
		{name: "negative interval", yaml: badPlanHead + `  - id: esa
    kind: electrical-safety
    description: leakage
    interval_days: -365
`, field: "tasks[1].interval_days", line: 12},
		{name: "negative hours", yaml: badPlanHead + `  - id: esa
    kind: electrical-safety
    interval_hours: -1
    interval_days: 365
`, field: "tasks[1].interval_hours", line: 11},
		{name: "no trigger", yaml: badPlanHead + `  - id: esa
    kind: electrical-safety
`, field: "tasks[1].interval_days", line: 9},
		{name: "window too long", yaml: badPlanHead + `    window_before_days: 200
    window_after_days: 200
`, field: "tasks[0].window_after_days", line: 10},
		{name: "bad op", yaml: badPlanHead + `    conditions:
      - indicator: battery
        op: "<"
`, field: "tasks[0].conditions[0].op", line: 11},
		{name: "usage interval not a number", yaml: badPlanHead + "    interval_hours: .nan\n", field: "tasks[0].interval_hours", line: 9},
		{name: "em number", yaml: strings.Replace(badPlanHead, "em_number: 17", "em_number: 40", 1), field: "em_number", line: 3},
		{name: "bad id", yaml: strings.Replace(badPlanHead, "test-pump", "Test Pump", 1), field: "model_id", line: 1},
		{name: "unknown key", yaml: strings.Replace(badPlanHead, "high_risk", "highrisk", 1), line: 4},
		{name: "unknown task key", yaml: badPlanHead + "    interval_months: 12\n", line: 9},
		{name: "interval not a number", yaml: strings.Replace(badPlanHead, "365", "yearly", 1), line: 8},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id, m, err := ParseModelYAML([]byte(tc.yaml))
			if err == nil {
				t.Fatalf("ParseModelYAML(%s) = %q, %v, nil; want an error", tc.name, id, m)
			}
			if id != "" || m != nil {
				t.Errorf("ParseModelYAML(%s) = %q, %v with an error, want nothing", tc.name, id, m)
			}
			if tc.field == "" {
				if want := "line " + strconv.Itoa(tc.line); !strings.Contains(err.Error(), want) {
					t.Errorf("ParseModelYAML(%s) = %v, want it to name %s", tc.name, err, want)
				}
				return
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("ParseModelYAML(%s) = %v, want a *FieldError", tc.name, err)
			}
			if fe.Field != tc.field || fe.Line != tc.line {
				t.Errorf("ParseModelYAML(%s) = %q at line %d, want %q at line %d", tc.name, fe.Field, fe.Line, tc.field, tc.line)
			}
		})
	}
}

func TestKindNameRoundTrip(t *testing.T) {
	if len(pb.TaskKind_name) < 8 {
		t.Fatalf("TaskKind has %d values, want at least 8", len(pb.TaskKind_name))
	}
	for v := range pb.TaskKind_name {
		k := pb.TaskKind(v)
		if k == pb.TaskKind_TASK_KIND_UNSPECIFIED {
			continue
		}
		name := KindName(k)
		if strings.ContainsAny(name, "_ ") || strings.ToLower(name) != name {
			t.Errorf("KindName(%v) = %q, want lower case with dashes", k, name)
		}
		if got, ok := ParseKind(name); !ok || got != k {
			t.Errorf("ParseKind(%q) = %v, %v, want %v, true", name, got, ok, k)
		}
	}
	for _, s := range []string{"", "unspecified", "pm inspection", "pm", "TASK_KIND_PM_INSPECTION"} {
		if got, ok := ParseKind(s); ok {
			t.Errorf("ParseKind(%q) = %v, true, want false", s, got)
		}
	}
	if got := KindName(kindBattery); got != "battery-replacement" {
		t.Errorf("KindName(%v) = %q, want battery-replacement", kindBattery, got)
	}
}

func FuzzParseModelYAML(f *testing.F) {
	f.Add(readExample(f, "infusion-pump.yaml"))
	f.Add(readExample(f, "cpap.yaml"))
	f.Add([]byte(badPlanHead))
	f.Add([]byte(badPlanHead + "  - id: esa\n    kind: electrical\n"))
	f.Add([]byte("tasks: [{id: a, kind: filter, conditions: [{indicator: battery, op: '<='}]}]\nmodel: x\nid: x\n"))
	f.Add([]byte("id: &a x\nmodel: *a\n"))
	f.Add([]byte("---\n"))
	f.Add([]byte("~"))
	f.Add([]byte("tasks: 3"))
	f.Fuzz(func(t *testing.T, data []byte) {
		id, m, err := ParseModelYAML(data)
		if err != nil {
			var fe *FieldError
			if errors.As(err, &fe) && fe.Line < 0 {
				t.Errorf("ParseModelYAML = %v, a negative line", err)
			}
			return
		}
		if err := ValidateModel(id, m); err != nil {
			t.Errorf("ParseModelYAML accepted a plan that ValidateModel rejects: %v", err)
		}
		// A device put in service now is due no sooner than now, whatever
		// the plan's day counts.
		d := &Device{ID: "d", CreateTime: now, Record: inService()}
		for _, it := range Due(now, d, m, 200*365*day) {
			if it.GetDueTime().AsTime().Before(now) || it.GetOverdue() {
				t.Errorf("Due(new device) = %s at %v, overdue %v; want not before %v", it.GetTaskId(),
					it.GetDueTime().AsTime(), it.GetOverdue(), now)
			}
		}
	})
}
