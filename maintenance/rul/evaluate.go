package rul

import (
	"fmt"
	"math"
)

// PHM08 is the cost of one prediction in the PHM08 challenge score
// (Saxena et al., 2008), with d = predicted - true remaining life:
//
//	exp(-d/13) - 1  when d < 0 (early: the unit is maintained too soon)
//	exp(d/10) - 1   when d >= 0 (late: it may fail first, which costs more)
func PHM08(d float64) float64 {
	if d < 0 {
		return math.Exp(-d/13) - 1
	}
	return math.Exp(d/10) - 1
}

// Evaluate scores predictions of remaining life against the truth, unit by
// unit: the root mean square error, and the PHM08 score, the sum of PHM08
// over the units. Lower is better for both. The slices must have the same,
// non-zero length.
func Evaluate(pred, truth []float64) (rmse, phm float64, err error) {
	if len(pred) != len(truth) {
		return 0, 0, fmt.Errorf("rul: evaluate: %d predictions for %d true values", len(pred), len(truth))
	}
	if len(pred) == 0 {
		return 0, 0, fmt.Errorf("rul: evaluate: no predictions")
	}
	var sq float64
	for i, p := range pred {
		d := p - truth[i]
		sq += d * d
		phm += PHM08(d)
	}
	return math.Sqrt(sq / float64(len(pred))), phm, nil
}
