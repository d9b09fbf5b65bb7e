package reliability

import (
	"cmp"
	"fmt"
	"math"
	"slices"
)

// Subject is one failure mode of one device model to rank: its fit, and the
// age of the device (or of a typical device of the fleet) now.
type Subject struct {
	Model       string
	FailureMode string
	Fit         Fit
	Age         float64
}

// Risk is a Subject's probability of failing within the horizon.
type Risk struct {
	Model       string
	FailureMode string
	Age         float64
	Horizon     float64
	// Probability is P(fail before Age+Horizon | survived to Age),
	// 1 - Fit.ConditionalReliability(Horizon, Age).
	Probability float64
}

// RankRisk orders subjects by their probability of failing within horizon
// time units from their current age, highest first; ties by model, then
// failure mode. It returns an error wrapping [ErrInvalidArgument] for a
// horizon that is not positive and finite, or a subject with a negative or
// non-finite age or an invalid fit.
func RankRisk(subjects []Subject, horizon float64) ([]Risk, error) {
	if !(horizon > 0) || math.IsInf(horizon, 1) {
		return nil, fmt.Errorf("%w: horizon %v is not positive and finite", ErrInvalidArgument, horizon)
	}
	out := make([]Risk, 0, len(subjects))
	for i, s := range subjects {
		if err := s.Fit.check(); err != nil {
			return nil, fmt.Errorf("subject %d (%s, %s): %w", i, s.Model, s.FailureMode, err)
		}
		if !(s.Age >= 0) || math.IsInf(s.Age, 1) {
			return nil, fmt.Errorf("%w: subject %d (%s, %s): age %v is not a non-negative finite number",
				ErrInvalidArgument, i, s.Model, s.FailureMode, s.Age)
		}
		out = append(out, Risk{
			Model:       s.Model,
			FailureMode: s.FailureMode,
			Age:         s.Age,
			Horizon:     horizon,
			Probability: s.Fit.conditionalFailure(horizon, s.Age),
		})
	}
	slices.SortStableFunc(out, func(a, b Risk) int {
		return cmp.Or(
			cmp.Compare(b.Probability, a.Probability),
			cmp.Compare(a.Model, b.Model),
			cmp.Compare(a.FailureMode, b.FailureMode),
		)
	})
	return out, nil
}
