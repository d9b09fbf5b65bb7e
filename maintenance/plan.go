package maintenance

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/medfleet/medfleet/inventory/udi"
	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// FieldError is a plan field that cannot be used, named by its path
// ("tasks[1].interval_days"); Line is the YAML line when the plan came from
// a file.
type FieldError struct {
	Field, Reason string
	Line          int
}

func (e *FieldError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("line %d: %s: %s", e.Line, e.Field, e.Reason)
	}
	return e.Field + ": " + e.Reason
}

var idPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// Indicator prefixes a condition may name.
const (
	IndicatorTelemetry = "telemetry/"
	IndicatorAlarm     = "alarm/"
	IndicatorBattery   = "battery"
)

// maxDays bounds the day counts of a plan: a century is already a typo,
// and days beyond 106,751 overflow a time.Duration.
const maxDays = 36500

// ValidateModel checks a model and its plan.
func ValidateModel(id string, m *pb.DeviceModel) error {
	if !idPattern.MatchString(id) {
		return &FieldError{Field: "model_id", Reason: fmt.Sprintf("%q is not an id: 1-64 of [a-z0-9._-]", id)}
	}
	switch {
	case m == nil:
		return &FieldError{Field: "device_model", Reason: "required"}
	case strings.TrimSpace(m.GetModel()) == "":
		return &FieldError{Field: "model", Reason: "required: the model string devices report"}
	case m.GetEmNumber() != 0 && (m.GetEmNumber() < 2 || m.GetEmNumber() > 20):
		return &FieldError{Field: "em_number", Reason: fmt.Sprintf("%d is outside 2-20 (Fennigkoh-Smith)", m.GetEmNumber())}
	case m.GetLifeSupport() && !m.GetHighRisk():
		return &FieldError{Field: "high_risk", Reason: "life-support equipment is high risk"}
	case m.GetLifeSupport() && m.GetAemAllowed():
		return &FieldError{Field: "aem_allowed", Reason: "life-support equipment follows the manufacturer's plan (CMS S&C 14-07)"}
	case len(m.GetTasks()) == 0:
		return &FieldError{Field: "tasks", Reason: "a plan needs at least one task"}
	}
	if err := validateIdentity(m); err != nil {
		return err
	}
	seen := map[string]bool{}
	for i, t := range m.GetTasks() {
		f := fmt.Sprintf("tasks[%d].", i)
		switch {
		case !idPattern.MatchString(t.GetId()):
			return &FieldError{Field: f + "id", Reason: fmt.Sprintf("%q is not an id", t.GetId())}
		case seen[t.GetId()]:
			return &FieldError{Field: f + "id", Reason: fmt.Sprintf("%q is used twice", t.GetId())}
		case t.GetKind() == pb.TaskKind_TASK_KIND_UNSPECIFIED || pb.TaskKind_name[int32(t.GetKind())] == "":
			return &FieldError{Field: f + "kind", Reason: "required: " + strings.Join(taskKindNames(), ", ")}
		case t.GetIntervalDays() < 0:
			return &FieldError{Field: f + "interval_days", Reason: "negative"}
		case t.GetIntervalDays() > maxDays:
			return &FieldError{Field: f + "interval_days", Reason: fmt.Sprintf("more than %d days", maxDays)}
		case t.GetIntervalHours() < 0 || math.IsNaN(t.GetIntervalHours()):
			return &FieldError{Field: f + "interval_hours", Reason: "negative or not a number"}
		case t.GetIntervalDays() == 0 && t.GetIntervalHours() == 0 && len(t.GetConditions()) == 0:
			return &FieldError{Field: f + "interval_days", Reason: "a task needs a calendar or usage interval or a condition"}
		case t.GetWindowBeforeDays() < 0:
			return &FieldError{Field: f + "window_before_days", Reason: "negative"}
		case t.GetWindowAfterDays() < 0:
			return &FieldError{Field: f + "window_after_days", Reason: "negative"}
		case t.GetWindowBeforeDays() > maxDays:
			return &FieldError{Field: f + "window_before_days", Reason: fmt.Sprintf("more than %d days", maxDays)}
		case t.GetWindowAfterDays() > maxDays:
			return &FieldError{Field: f + "window_after_days", Reason: fmt.Sprintf("more than %d days", maxDays)}
		case t.GetIntervalDays() > 0 && t.GetWindowBeforeDays()+t.GetWindowAfterDays() >= t.GetIntervalDays():
			return &FieldError{Field: f + "window_after_days", Reason: "the due window must be shorter than the interval"}
		}
		seen[t.GetId()] = true
		for j, c := range t.GetConditions() {
			cf := fmt.Sprintf("%sconditions[%d].", f, j)
			ind := c.GetIndicator()
			if ind != IndicatorBattery && !(strings.HasPrefix(ind, IndicatorTelemetry) && len(ind) > len(IndicatorTelemetry)) &&
				!(strings.HasPrefix(ind, IndicatorAlarm) && len(ind) > len(IndicatorAlarm)) {
				return &FieldError{Field: cf + "indicator", Reason: fmt.Sprintf("%q: want telemetry/<name>, alarm/<code> or battery", ind)}
			}
			if c.GetOp() != ">=" && c.GetOp() != "<=" {
				return &FieldError{Field: cf + "op", Reason: fmt.Sprintf("%q: want >= or <=", c.GetOp())}
			}
			if math.IsNaN(c.GetThreshold()) {
				return &FieldError{Field: cf + "threshold", Reason: "not a number"}
			}
			if c.GetTrendDays() < 0 || c.GetTrendDays() > maxDays {
				return &FieldError{Field: cf + "trend_days", Reason: fmt.Sprintf("outside 0-%d", maxDays)}
			}
		}
	}
	return nil
}

var productCodePattern = regexp.MustCompile(`^[A-Z]{3}$`)

// validateIdentity checks what names a model outside the plan: its UDI
// device identifiers, FDA product code and model numbers.
func validateIdentity(m *pb.DeviceModel) error {
	if len(m.GetUdiDis()) > 64 {
		return &FieldError{Field: "udi_dis", Reason: "more than 64"}
	}
	for i, di := range m.GetUdiDis() {
		if err := udi.CheckGTIN(di); err != nil {
			return &FieldError{Field: fmt.Sprintf("udi_dis[%d]", i), Reason: strings.TrimPrefix(err.Error(), "udi: ")}
		}
		if slices.Index(m.GetUdiDis(), di) != i {
			return &FieldError{Field: fmt.Sprintf("udi_dis[%d]", i), Reason: di + " is listed twice"}
		}
	}
	if pc := m.GetProductCode(); pc != "" && !productCodePattern.MatchString(pc) {
		return &FieldError{Field: "product_code", Reason: fmt.Sprintf("%q is not an FDA product code: three capital letters", pc)}
	}
	if len(m.GetModelNumbers()) > 16 {
		return &FieldError{Field: "model_numbers", Reason: "more than 16"}
	}
	for i, n := range m.GetModelNumbers() {
		if n = strings.TrimSpace(n); n == "" || len(n) > 64 {
			return &FieldError{Field: fmt.Sprintf("model_numbers[%d]", i), Reason: "want 1 to 64 characters"}
		}
	}
	return nil
}

func taskKindNames() []string {
	var out []string
	for i := int32(1); pb.TaskKind_name[i] != ""; i++ {
		out = append(out, KindName(pb.TaskKind(i)))
	}
	return out
}

// KindName is the short name of a task kind: pm-inspection, battery-replacement...
func KindName(k pb.TaskKind) string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(k.String(), "TASK_KIND_")), "_", "-")
}

// ParseKind reads a short task kind name.
func ParseKind(s string) (pb.TaskKind, bool) {
	v, ok := pb.TaskKind_value["TASK_KIND_"+strings.ToUpper(strings.ReplaceAll(s, "-", "_"))]
	return pb.TaskKind(v), ok && v != 0
}

// modelFile is the YAML form of a model (examples/models/*.yaml).
type modelFile struct {
	ID           string `yaml:"id"`
	Model        string `yaml:"model"`
	Manufacturer string `yaml:"manufacturer"`
	Profile      string `yaml:"profile"`
	EMNumber     int32  `yaml:"em_number"`
	HighRisk     bool   `yaml:"high_risk"`
	LifeSupport  bool   `yaml:"life_support"`
	AEMAllowed   bool   `yaml:"aem_allowed"`
	// PredictFailures keeps telemetry histories for a learned
	// remaining-useful-life model.
	PredictFailures bool       `yaml:"predict_failures"`
	UDIDIs          []string   `yaml:"udi_dis"`
	ProductCode     string     `yaml:"product_code"`
	ModelNumbers    []string   `yaml:"model_numbers"`
	Tasks           []taskFile `yaml:"tasks"`
}

type taskFile struct {
	ID               string          `yaml:"id"`
	Kind             string          `yaml:"kind"`
	Description      string          `yaml:"description"`
	IntervalDays     int32           `yaml:"interval_days"`
	IntervalHours    float64         `yaml:"interval_hours"`
	Conditions       []conditionFile `yaml:"conditions"`
	WindowBeforeDays int32           `yaml:"window_before_days"`
	WindowAfterDays  int32           `yaml:"window_after_days"`
}

type conditionFile struct {
	Indicator string  `yaml:"indicator"`
	Op        string  `yaml:"op"`
	Threshold float64 `yaml:"threshold"`
	TrendDays int32   `yaml:"trend_days"`
}

// ParseModelYAML reads a model file. Unknown keys are errors; errors name
// the field and the line.
func ParseModelYAML(data []byte) (string, *pb.DeviceModel, error) {
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var f modelFile
	if err := dec.Decode(&f); err != nil {
		return "", nil, fmt.Errorf("model file: %w", err)
	}
	_ = yaml.Unmarshal(data, &root) // for line numbers; it decoded above
	m := &pb.DeviceModel{Model: f.Model, Manufacturer: f.Manufacturer, Profile: f.Profile, EmNumber: f.EMNumber,
		HighRisk: f.HighRisk, LifeSupport: f.LifeSupport, AemAllowed: f.AEMAllowed, PredictFailures: f.PredictFailures,
		UdiDis: f.UDIDIs, ProductCode: f.ProductCode, ModelNumbers: f.ModelNumbers}
	for i, t := range f.Tasks {
		kind, ok := ParseKind(t.Kind)
		if !ok {
			return "", nil, &FieldError{Field: fmt.Sprintf("tasks[%d].kind", i), Reason: fmt.Sprintf("%q: want one of %s", t.Kind, strings.Join(taskKindNames(), ", ")),
				Line: line(&root, "tasks", i, "kind")}
		}
		pt := &pb.MaintenanceTask{Id: t.ID, Kind: kind, Description: t.Description, IntervalDays: t.IntervalDays,
			IntervalHours: t.IntervalHours, WindowBeforeDays: t.WindowBeforeDays, WindowAfterDays: t.WindowAfterDays}
		for _, c := range t.Conditions {
			pt.Conditions = append(pt.Conditions, &pb.Condition{Indicator: c.Indicator, Op: c.Op, Threshold: c.Threshold, TrendDays: c.TrendDays})
		}
		m.Tasks = append(m.Tasks, pt)
	}
	if err := ValidateModel(f.ID, m); err != nil {
		var fe *FieldError
		if errors.As(err, &fe) {
			fe.Line = lineOf(&root, fe.Field)
		}
		return "", nil, err
	}
	return f.ID, m, nil
}

// lineOf finds the line of a field path such as "tasks[1].interval_days"
// (or its parent when the key is absent).
func lineOf(root *yaml.Node, path string) int {
	if path == "model_id" {
		path = "id"
	}
	parts := strings.Split(path, ".")
	var keys []any
	for _, p := range parts {
		name, idx, ok := strings.Cut(p, "[")
		keys = append(keys, name)
		if ok {
			var i int
			fmt.Sscanf(idx, "%d]", &i)
			keys = append(keys, i)
		}
	}
	return line(root, keys...)
}

// line walks a YAML document by map keys and sequence indexes and returns
// the line of the deepest node it reaches.
func line(root *yaml.Node, path ...any) int {
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	best := n.Line
	for _, p := range path {
		switch k := p.(type) {
		case string:
			if n.Kind != yaml.MappingNode {
				return best
			}
			found := false
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == k {
					best, n, found = n.Content[i].Line, n.Content[i+1], true
					break
				}
			}
			if !found {
				return best
			}
		case int:
			if n.Kind != yaml.SequenceNode || k >= len(n.Content) {
				return best
			}
			n = n.Content[k]
			best = n.Line
		}
	}
	return best
}
