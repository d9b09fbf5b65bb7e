package program

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"

	"github.com/medfleet/medfleet/inventory"
	"github.com/medfleet/medfleet/maintenance/reliability"
	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// Reliability fits, per failure mode, a Weibull distribution to the
// operating hours between failures of a model's devices. A repair is taken
// to restore the part as new: each device contributes the hours from 0 (or
// its previous failure of the mode) to each failure, and the hours since its
// last failure as a right-censored observation; a device that never failed
// of that mode contributes its whole usage, censored.
func (p *Program) Reliability(modelID string, target float64) (*pb.ReliabilityReport, error) {
	m, err := p.Model(modelID)
	if err != nil {
		return nil, err
	}
	if target == 0 {
		target = 0.9
	}
	if target <= 0 || target >= 1 {
		return nil, &FieldError{Field: "target_reliability", Reason: "between 0 and 1"}
	}
	type device struct {
		usage    float64
		failures []*pb.Failure
	}
	var devices []device
	modes := map[string]bool{}
	p.inv.Range(func(s *inventory.Summary) bool {
		if s.Model != m.GetModel() {
			return true
		}
		rec, _, _ := p.records.Get(s.ID)
		for _, f := range rec.GetFailures() {
			modes[f.GetFailureCode()] = true
		}
		devices = append(devices, device{usage: s.UsageHours, failures: rec.GetFailures()})
		return true
	})
	task, interval := usageInterval(m)
	report := &pb.ReliabilityReport{Model: m.GetName(), TargetReliability: target}
	for _, mode := range slices.Sorted(maps.Keys(modes)) {
		var obs []reliability.Observation
		unfitted := 0 // failures with no operating hours since the previous one
		for _, d := range devices {
			last := 0.0
			for _, f := range d.failures {
				if f.GetFailureCode() != mode {
					continue
				}
				if f.GetUsageHours() <= last {
					unfitted++
					continue
				}
				obs = append(obs, reliability.Observation{Time: f.GetUsageHours() - last, Failed: true})
				last = f.GetUsageHours()
			}
			if d.usage > last {
				obs = append(obs, reliability.Observation{Time: d.usage - last})
			}
		}
		fm := fitMode(mode, obs, task, interval, target)
		if unfitted > 0 {
			fm.Error = strings.TrimPrefix(fm.Error+fmt.Sprintf("; %d failure(s) after no operating hours, not fitted", unfitted), "; ")
		}
		report.Modes = append(report.Modes, fm)
	}
	return report, nil
}

func fitMode(mode string, obs []reliability.Observation, task string, interval, target float64) *pb.FailureModeFit {
	out := &pb.FailureModeFit{FailureCode: mode}
	for _, o := range obs {
		if o.Failed {
			out.Failures++
		} else {
			out.Suspensions++
		}
	}
	fit, err := reliability.FitWeibull(obs)
	if err != nil {
		out.Error = err.Error()
		return out
	}
	out.Beta, out.BetaLower, out.BetaUpper = fit.Beta, fit.BetaBounds.Lower, fit.BetaBounds.Upper
	out.EtaHours, out.EtaLowerHours, out.EtaUpperHours = fit.Eta, fit.EtaBounds.Lower, fit.EtaBounds.Upper
	out.B10Hours = fit.BLife(0.10)
	if interval > 0 {
		a, err := reliability.AssessInterval(fit, interval, target)
		if err != nil {
			out.Error = err.Error()
			return out
		}
		out.TaskId, out.IntervalHours = task, interval
		out.Verdict, out.RecommendedIntervalHours, out.Reason = string(a.Verdict), a.RecommendedInterval, a.Reason
	}
	for _, v := range []*float64{&out.BetaLower, &out.BetaUpper, &out.EtaLowerHours, &out.EtaUpperHours, &out.B10Hours, &out.RecommendedIntervalHours} {
		if math.IsNaN(*v) || math.IsInf(*v, 0) {
			*v = 0
		}
	}
	return out
}

// usageInterval is the plan's usage interval to judge: the PM inspection's,
// else the first task that has one.
func usageInterval(m *pb.DeviceModel) (string, float64) {
	id, hours := "", 0.0
	for _, t := range m.GetTasks() {
		if t.GetIntervalHours() <= 0 {
			continue
		}
		if t.GetKind() == pb.TaskKind_TASK_KIND_PM_INSPECTION {
			return t.GetId(), t.GetIntervalHours()
		}
		if id == "" {
			id, hours = t.GetId(), t.GetIntervalHours()
		}
	}
	return id, hours
}
