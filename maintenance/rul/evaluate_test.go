package rul

import (
	"math"
	"testing"
)

func TestPHM08(t *testing.T) {
	e := math.E
	tests := []struct {
		d, want float64
	}{
		{0, 0},
		{-13, e - 1},   // early: exp(13/13) - 1
		{10, e - 1},    // late: exp(10/10) - 1
		{-26, e*e - 1}, // exp(2) - 1
		{20, e*e - 1},
		{-6.5, math.Sqrt(e) - 1},
	}
	for _, tc := range tests {
		if got := PHM08(tc.d); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("PHM08(%v) = %v, want %v", tc.d, got, tc.want)
		}
	}
	// Late costs more than early by as much.
	if PHM08(10) <= PHM08(-10) {
		t.Errorf("PHM08(10) = %v <= PHM08(-10) = %v", PHM08(10), PHM08(-10))
	}
}

func TestEvaluate(t *testing.T) {
	// d = 0, -13, +10: squares 0, 169, 100; costs 0, e-1, e-1.
	rmse, phm, err := Evaluate([]float64{10, 20, 35}, []float64{10, 33, 25})
	if err != nil {
		t.Fatal(err)
	}
	if want := math.Sqrt(269.0 / 3); math.Abs(rmse-want) > 1e-12 {
		t.Errorf("Evaluate RMSE = %v, want %v", rmse, want)
	}
	if want := 2 * (math.E - 1); math.Abs(phm-want) > 1e-12 {
		t.Errorf("Evaluate PHM08 = %v, want %v", phm, want)
	}
	if _, _, err := Evaluate([]float64{1}, []float64{1, 2}); err == nil {
		t.Errorf("Evaluate of 1 prediction for 2 values: no error")
	}
	if _, _, err := Evaluate(nil, nil); err == nil {
		t.Errorf("Evaluate of nothing: no error")
	}
}
