package reliability

import (
	"errors"
	"math"
	"testing"
)

func TestRankRisk(t *testing.T) {
	battery := Fit{Beta: 3, Eta: 1000}     // wears out; the unit is old
	sensor := Fit{Beta: 1, Eta: 5000}      // random failures
	blower := Fit{Beta: 1.5, Eta: 20000}   // slow wear-out
	infant := Fit{Beta: 0.5, Eta: 100_000} // burn-in failures
	subjects := []Subject{
		{Model: "pump-a", FailureMode: "occlusion sensor", Fit: sensor, Age: 4000},
		{Model: "pump-a", FailureMode: "battery", Fit: battery, Age: 900},
		{Model: "cpap-b", FailureMode: "blower", Fit: blower, Age: 15000},
		{Model: "monitor-c", FailureMode: "display", Fit: infant, Age: 0},
		{Model: "monitor-c", FailureMode: "display, aged", Fit: infant, Age: 20000},
	}
	const horizon = 100.0
	got, err := RankRisk(subjects, horizon)
	if err != nil {
		t.Fatalf("RankRisk: %v", err)
	}
	// Expected order from the definition 1 - R(a+h)/R(a).
	p := func(f Fit, age float64) float64 { return 1 - f.Reliability(age+horizon)/f.Reliability(age) }
	want := []Risk{
		{"pump-a", "battery", 900, horizon, p(battery, 900)},             // 0.24
		{"monitor-c", "display", 0, horizon, p(infant, 0)},               // 0.031
		{"pump-a", "occlusion sensor", 4000, horizon, p(sensor, 4000)},   // 0.020
		{"cpap-b", "blower", 15000, horizon, p(blower, 15000)},           // 0.0065
		{"monitor-c", "display, aged", 20000, horizon, p(infant, 20000)}, // 0.0011
	}
	if len(got) != len(want) {
		t.Fatalf("RankRisk = %+v, want %+v", got, want)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Model != w.Model || g.FailureMode != w.FailureMode || g.Age != w.Age || g.Horizon != w.Horizon ||
			math.Abs(g.Probability-w.Probability) > 1e-12 {
			t.Errorf("rank %d = %+v, want %+v", i, g, w)
		}
	}
	// The exponential's risk does not depend on age.
	if got, want := p(sensor, 4000), 1-math.Exp(-horizon/5000); math.Abs(got-want) > 1e-12 {
		t.Errorf("sensor risk = %v, want %v", got, want)
	}
}

func TestRankRiskTies(t *testing.T) {
	f := Fit{Beta: 2, Eta: 1000}
	got, err := RankRisk([]Subject{
		{Model: "b", FailureMode: "x", Fit: f, Age: 10},
		{Model: "a", FailureMode: "y", Fit: f, Age: 10},
		{Model: "a", FailureMode: "x", Fit: f, Age: 10},
	}, 50)
	if err != nil {
		t.Fatalf("RankRisk: %v", err)
	}
	var order []string
	for _, r := range got {
		order = append(order, r.Model+"/"+r.FailureMode)
	}
	if want := []string{"a/x", "a/y", "b/x"}; len(order) != 3 || order[0] != want[0] || order[1] != want[1] || order[2] != want[2] {
		t.Errorf("tie order = %v, want %v", order, want)
	}
	if empty, err := RankRisk(nil, 50); err != nil || len(empty) != 0 {
		t.Errorf("RankRisk(nil) = %v, %v, want empty, nil", empty, err)
	}
}

func TestRankRiskErrors(t *testing.T) {
	ok := Subject{Model: "m", FailureMode: "f", Fit: Fit{Beta: 2, Eta: 100}, Age: 1}
	tests := []struct {
		name     string
		subjects []Subject
		horizon  float64
	}{
		{"zero horizon", []Subject{ok}, 0},
		{"NaN horizon", []Subject{ok}, math.NaN()},
		{"infinite horizon", []Subject{ok}, math.Inf(1)},
		{"negative age", []Subject{ok, {Model: "m", Fit: ok.Fit, Age: -1}}, 10},
		{"NaN age", []Subject{{Model: "m", Fit: ok.Fit, Age: math.NaN()}}, 10},
		{"invalid fit", []Subject{ok, {Model: "m", Fit: Fit{}, Age: 1}}, 10},
	}
	for _, tc := range tests {
		if _, err := RankRisk(tc.subjects, tc.horizon); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("%s: RankRisk error = %v, want ErrInvalidArgument", tc.name, err)
		}
	}
}
