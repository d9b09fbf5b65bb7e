package reliability

import (
	"cmp"
	"math"
	"slices"
)

// KMPoint is the Kaplan–Meier estimate at one distinct observed time.
type KMPoint struct {
	Time     float64
	AtRisk   int // units still under observation just before Time
	Failures int // failures at Time
	Censored int // suspensions at Time
	// Survival is the estimated probability of surviving past Time.
	Survival float64
	// StdErr is Greenwood's standard error of Survival; Survival ± z StdErr,
	// clipped to [0, 1], is the usual normal-approximation band. It is 0
	// once Survival is 0.
	StdErr float64
}

// KaplanMeier is the product-limit estimate of the survival function
// (Kaplan and Meier, JASA 53, 1958), the distribution-free check of a
// parametric fit:
//
//	S(t) = Π_{t_i <= t} (1 - d_i/n_i)
//	Var S(t) = S(t)² Σ_{t_i <= t} d_i / (n_i (n_i - d_i))   (Greenwood)
//
// with d_i failures among the n_i units at risk at the i-th distinct time.
// A suspension at the same time as a failure counts as at risk for it (it
// outlived the failure). KaplanMeier returns one point per distinct time,
// suspensions included, in increasing order; nil for no observations.
// It returns an [*ObservationError] for a time that is not positive and
// finite.
func KaplanMeier(obs []Observation) ([]KMPoint, error) {
	for i, o := range obs {
		if !(o.Time > 0) || math.IsInf(o.Time, 1) {
			return nil, &ObservationError{Index: i, Time: o.Time, Err: ErrInvalidTime}
		}
	}
	if len(obs) == 0 {
		return nil, nil
	}
	sorted := slices.Clone(obs)
	slices.SortFunc(sorted, func(a, b Observation) int { return cmp.Compare(a.Time, b.Time) })

	var out []KMPoint
	atRisk := len(sorted)
	s, greenwood := 1.0, 0.0
	for i := 0; i < len(sorted); {
		p := KMPoint{Time: sorted[i].Time, AtRisk: atRisk}
		for ; i < len(sorted) && sorted[i].Time == p.Time; i++ {
			if sorted[i].Failed {
				p.Failures++
			} else {
				p.Censored++
			}
		}
		if d, n := float64(p.Failures), float64(atRisk); p.Failures > 0 {
			s *= 1 - d/n
			if p.Failures < atRisk {
				greenwood += d / (n * (n - d))
			}
		}
		p.Survival = s
		if s > 0 {
			p.StdErr = s * math.Sqrt(greenwood)
		}
		out = append(out, p)
		atRisk -= p.Failures + p.Censored
	}
	return out, nil
}
