package reliability

import (
	"fmt"
	"math"
)

// Verdict is what AssessInterval concludes about a preventive-maintenance
// interval.
type Verdict string

const (
	// VerdictPMNotEffective: the fit shows no wear-out (Beta <= 1, or the
	// lower confidence bound on Beta <= 1, so wear-out is not shown), and
	// replacing units on a schedule does not lower the failure rate of the
	// units in service: a replaced unit is no less likely to fail than the
	// one it replaces. Use condition monitoring, or run to failure, for
	// this failure mode.
	VerdictPMNotEffective Verdict = "pm-not-effective"
	// VerdictTooShort: the interval is shorter than TooShortRatio times the
	// age at which reliability falls to the target; units are replaced
	// while they still have much life left.
	VerdictTooShort Verdict = "too-short"
	// VerdictAdequate: between TooShortRatio and 1 times that age.
	VerdictAdequate Verdict = "adequate"
	// VerdictTooLong: longer than that age; more units fail before their
	// scheduled replacement than the target allows.
	VerdictTooLong Verdict = "too-long"
)

// TooShortRatio is the fraction of the recommended interval below which
// AssessInterval calls an interval too short.
const TooShortRatio = 0.5

// Assessment is AssessInterval's answer.
type Assessment struct {
	Verdict           Verdict
	Interval          float64 // the interval assessed
	TargetReliability float64
	// RecommendedInterval is the age at which reliability falls to the
	// target ([Fit.ReplacementInterval]); 0 when the verdict is
	// VerdictPMNotEffective, since no schedule helps.
	RecommendedInterval float64
	// FailureFraction is the expected fraction of units that fail before
	// reaching Interval: F(Interval).
	FailureFraction float64
	Reason          string // one line for people
}

// AssessInterval says whether replacing (or restoring to as-new) a part
// every interval time units suits a fit of its failures, for a target
// reliability between replacements such as 0.90.
//
// Scheduled replacement only pays when the hazard rises with age, so
// AssessInterval first asks whether the fit shows wear-out: the lower
// confidence bound on Beta, at the fit's confidence level, must exceed 1.
// A fit built by hand from known parameters, without standard errors,
// is judged on Beta alone. Without wear-out the verdict is
// VerdictPMNotEffective. With it, the interval is compared with the age at
// which reliability falls to the target: longer is VerdictTooLong, shorter
// than TooShortRatio times it VerdictTooShort, else VerdictAdequate.
//
// It returns an error wrapping [ErrInvalidArgument] for a fit without
// positive finite parameters, an interval that is not positive and finite,
// or a target outside (0, 1).
func AssessInterval(fit Fit, interval, targetReliability float64) (Assessment, error) {
	if err := fit.check(); err != nil {
		return Assessment{}, err
	}
	if !(interval > 0) || math.IsInf(interval, 1) {
		return Assessment{}, fmt.Errorf("%w: interval %v is not positive and finite", ErrInvalidArgument, interval)
	}
	if !(targetReliability > 0 && targetReliability < 1) {
		return Assessment{}, fmt.Errorf("%w: target reliability %v is not in (0, 1)", ErrInvalidArgument, targetReliability)
	}
	a := Assessment{
		Interval:          interval,
		TargetReliability: targetReliability,
		FailureFraction:   fit.CDF(interval),
	}

	betaLow := fit.BetaBounds.Lower
	hasBounds := fit.BetaSE > 0
	switch {
	case fit.Beta <= 1:
		a.Verdict = VerdictPMNotEffective
		a.Reason = fmt.Sprintf("beta %.3g <= 1: no wear-out, scheduled replacement does not reduce failures", fit.Beta)
		return a, nil
	case hasBounds && betaLow <= 1:
		a.Verdict = VerdictPMNotEffective
		a.Reason = fmt.Sprintf("beta %.3g, but its %.3g%% lower bound %.3g <= 1: wear-out not shown, scheduled replacement may not reduce failures",
			fit.Beta, 100*fit.Confidence, betaLow)
		return a, nil
	}

	a.RecommendedInterval = fit.ReplacementInterval(targetReliability)
	ratio := interval / a.RecommendedInterval
	switch {
	case ratio > 1:
		a.Verdict = VerdictTooLong
	case ratio < TooShortRatio:
		a.Verdict = VerdictTooShort
	default:
		a.Verdict = VerdictAdequate
	}
	a.Reason = fmt.Sprintf("reliability falls to %g at %.4g; the interval %.4g is %.2f of that, %.3g%% of units fail before it",
		targetReliability, a.RecommendedInterval, interval, ratio, 100*a.FailureFraction)
	return a, nil
}

// OptimalAgeReplacement is the age-replacement policy of Barlow and
// Proschan (Mathematical Theory of Reliability, 1965, ch. 4): replace a
// unit when it fails, at cost costFailure, or when it reaches age T, at
// cost costPlanned, whichever comes first. Each replacement renews the
// unit, so by the renewal-reward theorem the long-run cost per unit time is
//
//	C(T) = (costPlanned R(T) + costFailure F(T)) / ∫_0^T R(t) dt
//
// (expected cost of a cycle over its expected length). Setting C'(T) = 0
// gives
//
//	h(T) ∫_0^T R(t) dt - F(T) = costPlanned / (costFailure - costPlanned)
//
// whose left side increases with T when the hazard h does, so the
// optimum is its unique root for Beta > 1. OptimalAgeReplacement finds it
// by bisection, with the integral by adaptive Simpson quadrature, and
// returns T and C(T).
//
// When scheduled replacement cannot pay (Beta <= 1, or costFailure <=
// costPlanned) it returns age +Inf, run to failure, with the cost rate
// costFailure / MeanLife. It also returns +Inf when the optimum lies so
// far out that no unit survives to it.
//
// It returns an error wrapping [ErrInvalidArgument] for a fit without
// positive finite parameters or costs that are not positive and finite.
func OptimalAgeReplacement(fit Fit, costPlanned, costFailure float64) (age, costRate float64, err error) {
	if err := fit.check(); err != nil {
		return 0, 0, err
	}
	for _, c := range []struct {
		name string
		v    float64
	}{{"planned cost", costPlanned}, {"failure cost", costFailure}} {
		if !(c.v > 0) || math.IsInf(c.v, 1) {
			return 0, 0, fmt.Errorf("%w: %s %v is not positive and finite", ErrInvalidArgument, c.name, c.v)
		}
	}
	runToFailure := costFailure / fit.MeanLife()
	if fit.Beta <= 1 || costFailure <= costPlanned {
		return math.Inf(1), runToFailure, nil
	}

	// Work in x = T/Eta: h(T) ∫R = Beta x^(Beta-1) I(x) with
	// I(x) = ∫_0^x exp(-s^Beta) ds.
	b := fit.Beta
	k := costPlanned / (costFailure - costPlanned)
	survival := func(s float64) float64 { return math.Exp(-math.Pow(s, b)) }
	cond := func(x float64) float64 {
		return b*math.Pow(x, b-1)*integrate(survival, 0, x) + math.Expm1(-math.Pow(x, b)) - k
	}

	// Beyond xMax, R(x) = exp(-x^Beta) is below 1e-325, zero in float64,
	// and C is flat at the run-to-failure rate.
	xMax := math.Pow(750, 1/b)
	lo, hi := 0.0, math.Min(1, xMax)
	for cond(hi) < 0 {
		if hi == xMax {
			return math.Inf(1), runToFailure, nil
		}
		lo, hi = hi, math.Min(2*hi, xMax)
	}
	for range 200 {
		m := lo + (hi-lo)/2
		if m <= lo || m >= hi {
			break
		}
		if cond(m) < 0 {
			lo = m
		} else {
			hi = m
		}
	}
	age = (lo + (hi-lo)/2) * fit.Eta
	return age, ageReplacementCost(fit, costPlanned, costFailure, age), nil
}

// ageReplacementCost is C(T) of OptimalAgeReplacement, integrated in
// units of Eta.
func ageReplacementCost(fit Fit, costPlanned, costFailure, t float64) float64 {
	b, x := fit.Beta, t/fit.Eta
	survival := func(s float64) float64 { return math.Exp(-math.Pow(s, b)) }
	h := math.Pow(x, b)
	return (costPlanned*math.Exp(-h) - costFailure*math.Expm1(-h)) / (fit.Eta * integrate(survival, 0, x))
}

// integrate is ∫_a^b f by adaptive Simpson quadrature (Kuncir, CACM 5,
// 1962; the Lyness error estimate with Richardson's correction), to a
// relative error of about 1e-13 for the bounded, smooth integrands here.
// Where an interval does not converge it stops halving at depth 50.
func integrate(f func(float64) float64, a, b float64) float64 {
	if !(b > a) {
		return 0
	}
	fa, fm, fb := f(a), f((a+b)/2), f(b)
	whole := (b - a) / 6 * (fa + 4*fm + fb)
	eps := max(1e-13*math.Abs(whole), 1e-300)
	return simpson(f, a, b, fa, fm, fb, whole, eps, 50)
}

func simpson(f func(float64) float64, a, b, fa, fm, fb, whole, eps float64, depth int) float64 {
	m := (a + b) / 2
	lm, rm := (a+m)/2, (m+b)/2
	flm, frm := f(lm), f(rm)
	left := (m - a) / 6 * (fa + 4*flm + fm)
	right := (b - m) / 6 * (fm + 4*frm + fb)
	delta := left + right - whole
	if depth <= 0 || math.Abs(delta) <= 15*eps {
		return left + right + delta/15
	}
	return simpson(f, a, m, fa, flm, fm, left, eps/2, depth-1) +
		simpson(f, m, b, fm, frm, fb, right, eps/2, depth-1)
}
