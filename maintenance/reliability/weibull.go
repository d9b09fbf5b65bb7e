package reliability

import (
	"errors"
	"fmt"
	"math"
)

// DefaultConfidence is the two-sided confidence level of the bounds that
// FitWeibull reports. [Fit.WithConfidence] gives bounds at another level.
const DefaultConfidence = 0.90

var (
	// ErrNoFailures: the data hold no failure, so nothing bounds the life
	// from above and there is no maximum-likelihood estimate.
	ErrNoFailures = errors.New("reliability: no failures")
	// ErrTooFewFailureTimes: every failure happened at the same age, so the
	// spread of the failures, which the shape parameter describes, is
	// unknown.
	ErrTooFewFailureTimes = errors.New("reliability: fewer than 2 distinct failure times")
	// ErrInvalidTime is wrapped by [ObservationError].
	ErrInvalidTime = errors.New("reliability: time is not a positive finite number")
	// ErrUnrepresentable: the estimates do not fit in float64, which takes
	// data spread over hundreds of orders of magnitude.
	ErrUnrepresentable = errors.New("reliability: estimates out of float64 range")
	// ErrInvalidArgument is wrapped by the errors of functions given a
	// parameter out of its domain; the message names the parameter.
	ErrInvalidArgument = errors.New("reliability: invalid argument")
)

// ObservationError is an observation that cannot be used: its time is zero,
// negative, infinite or NaN.
type ObservationError struct {
	Index int // position in the input
	Time  float64
	Err   error // ErrInvalidTime
}

func (e *ObservationError) Error() string {
	return fmt.Sprintf("reliability: observation %d: time %v is not a positive finite number", e.Index, e.Time)
}

func (e *ObservationError) Unwrap() error { return e.Err }

// Observation is one unit's life: the age at which it failed (Failed), or
// the age it has reached without failing (right-censored, a suspension:
// still in service, or removed for a reason other than this failure mode).
// Age is measured in the caller's unit (operating hours, days, cycles) from
// the unit's installation or last replacement of the part.
type Observation struct {
	Time   float64
	Failed bool
}

// Bounds is a two-sided confidence interval.
type Bounds struct {
	Lower, Upper float64
}

// Fit is a two-parameter Weibull distribution fitted by maximum likelihood:
//
//	R(t) = exp(-(t/Eta)^Beta)
//
// Beta (shape) says how the hazard changes with age: below 1 it falls
// (infant mortality), at 1 it is constant (random failures, exponential
// life), above 1 it rises (wear-out). Eta (scale, characteristic life) is
// the age by which 63.2 % of units have failed.
//
// The standard errors come from the observed Fisher information (the
// negative Hessian of the log-likelihood at the estimate), and the bounds
// treat ln Beta and ln Eta as normal (Nelson, Applied Life Data Analysis,
// 1982; ReliaSoft's "Fisher matrix bounds"), so that they stay positive.
// They are asymptotic: with few failures they are too narrow.
type Fit struct {
	Beta, Eta float64

	BetaSE, EtaSE float64
	CovBetaEta    float64 // covariance of the estimates of Beta and Eta

	Confidence float64 // two-sided level of BetaBounds, EtaBounds and ReliabilityBounds
	BetaBounds Bounds
	EtaBounds  Bounds

	// LogLikelihood is the maximised log-likelihood, densities in the
	// caller's time unit: the sum of ln f(t) over failures and ln R(t)
	// over suspensions.
	LogLikelihood float64
	Failures      int
	Suspensions   int
}

// FitWeibull fits a two-parameter Weibull distribution to failures and
// right-censored observations by maximum likelihood.
//
// With r failures among n observations, the log-likelihood is
//
//	l(b, e) = r ln b - r b ln e + (b-1) Σ_fail ln t_i - Σ_all (t_i/e)^b
//
// Setting its derivatives to zero and eliminating e gives the profile
// equation for the shape (Cohen, Technometrics 7, 1965; NIST/SEMATECH
// e-Handbook 8.4.1.2):
//
//	g(b) = Σ_all t^b ln t / Σ_all t^b - 1/b - (1/r) Σ_fail ln t = 0
//
// and then e = (Σ_all t^b / r)^(1/b). g increases strictly from -∞, and
// its limit as b grows is ln max(t) - mean(ln t_fail), which is positive
// once there are two distinct failure times, so the root exists and is
// unique. FitWeibull brackets it and polishes it by Newton's method,
// falling back to bisection whenever a Newton step leaves the bracket.
// The sums are taken over ln t - ln max(t), so that t^b neither overflows
// nor underflows whatever the time unit.
//
// Errors: an [*ObservationError] wrapping [ErrInvalidTime] for a time that
// is not positive and finite, [ErrNoFailures], [ErrTooFewFailureTimes], and
// [ErrUnrepresentable] when an estimate overflows float64.
func FitWeibull(obs []Observation) (Fit, error) {
	n := len(obs)
	u := make([]float64, n) // ln t
	uMax := math.Inf(-1)
	r := 0
	for i, o := range obs {
		if !(o.Time > 0) || math.IsInf(o.Time, 1) {
			return Fit{}, &ObservationError{Index: i, Time: o.Time, Err: ErrInvalidTime}
		}
		u[i] = ln(o.Time)
		uMax = max(uMax, u[i])
		if o.Failed {
			r++
		}
	}
	if r == 0 {
		return Fit{}, ErrNoFailures
	}

	p := profile{d: make([]float64, n), w: make([]float64, n), r: float64(r)}
	dF := make([]float64, 0, r) // d of the failures
	sumF, firstF, distinct := 0.0, math.NaN(), false
	for i, o := range obs {
		p.d[i] = u[i] - uMax
		if o.Failed {
			dF = append(dF, p.d[i])
			sumF += p.d[i]
			if math.IsNaN(firstF) {
				firstF = p.d[i]
			} else if p.d[i] != firstF {
				distinct = true
			}
		}
	}
	// Distinctness is checked on the logarithms, which the solver sees:
	// two failure times so close that their logarithms round to the same
	// number carry no information on the spread either.
	if !distinct {
		return Fit{}, ErrTooFewFailureTimes
	}
	p.meanF = sumF / p.r

	beta, err := p.solve(menon(dF))
	if err != nil {
		return Fit{}, err
	}

	// ln eta = ln max(t) + ln(Σ w / r) / beta, with w = exp(beta d).
	sw := 0.0
	for i, d := range p.d {
		p.w[i] = math.Exp(beta * d)
		sw += p.w[i]
	}
	shift := math.Log(sw/p.r) / beta // ln eta - ln max(t)
	logEta := uMax + shift

	// Observed information in (ln eta, beta). With z = (t/eta)^beta and
	// L = ln(t/eta), and Σ z = r at the estimate:
	//
	//	I(ln e, ln e) = r b²
	//	I(ln e, b)    = -b Σ z L
	//	I(b, b)       = r/b² + Σ z L²
	//
	// Its determinant is r² + b² (r Σ z L² - (Σ z L)²) = r² + b² r Σ z (L - L̄)²
	// with L̄ = Σ z L / r, which is positive and computed without
	// cancellation.
	var szl, szl2, sumLF float64
	for i, d := range p.d {
		z := p.w[i] * p.r / sw
		l := d - shift
		szl += z * l
		szl2 += z * l * l
		if obs[i].Failed {
			sumLF += l
		}
	}
	lBar := szl / p.r
	spread := 0.0
	for i, d := range p.d {
		z := p.w[i] * p.r / sw
		dl := d - shift - lBar
		spread += z * dl * dl
	}
	det := p.r*p.r + beta*beta*p.r*spread
	varLogEta := (p.r/(beta*beta) + szl2) / det
	varBeta := p.r * beta * beta / det
	covBetaLogEta := beta * szl / det

	sumUF := 0.0
	for i, o := range obs {
		if o.Failed {
			sumUF += u[i]
		}
	}

	eta := math.Exp(logEta)
	f := Fit{
		Beta:       beta,
		Eta:        eta,
		BetaSE:     math.Sqrt(varBeta),
		EtaSE:      eta * math.Sqrt(varLogEta),
		CovBetaEta: eta * covBetaLogEta,
		// l = r ln b + Σ_fail (b L_i - ln t_i) - Σ_all z_i, and Σ z = r.
		LogLikelihood: p.r*math.Log(beta) + beta*sumLF - sumUF - p.r,
		Failures:      r,
		Suspensions:   n - r,
	}
	f.setBounds(DefaultConfidence)
	for _, v := range []float64{
		f.Beta, f.Eta, f.BetaSE, f.EtaSE, f.CovBetaEta, f.LogLikelihood,
		f.BetaBounds.Lower, f.BetaBounds.Upper, f.EtaBounds.Lower, f.EtaBounds.Upper,
	} {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return Fit{}, ErrUnrepresentable
		}
	}
	if !(f.Eta > 0 && f.Beta > 0) {
		return Fit{}, ErrUnrepresentable
	}
	return f, nil
}

// profile is the shape equation g(b) of FitWeibull over d = ln t - ln max(t).
type profile struct {
	d     []float64 // ln t - ln max(t), all observations; d <= 0
	w     []float64 // scratch: exp(b d)
	r     float64   // number of failures
	meanF float64   // mean of d over failures
}

// eval returns g(b) and g'(b). With weights w = exp(b d), g is the
// weighted mean of d minus 1/b minus the failures' mean, and g' is the
// weighted variance of d plus 1/b².
func (p *profile) eval(b float64) (g, dg float64) {
	var sw, swd float64
	for i, d := range p.d {
		w := math.Exp(b * d)
		p.w[i] = w
		sw += w
		swd += w * d
	}
	// sw >= 1: the largest observation has d = 0 and w = 1.
	m := swd / sw
	v := 0.0
	for i, d := range p.d {
		v += p.w[i] * (d - m) * (d - m)
	}
	return m - 1/b - p.meanF, v/sw + 1/(b*b)
}

// Limits of the shape search. Real shapes lie between 0.1 and 20; the wide
// range only keeps pathological inputs from looping.
const (
	minBeta = 1e-300
	maxBeta = 1e300
)

// solve finds the root of g, starting from b.
func (p *profile) solve(b float64) (float64, error) {
	// Bracket the root: g(lo) < 0 < g(hi).
	lo, hi := b, b
	for {
		g, _ := p.eval(lo)
		if g == 0 {
			return lo, nil
		}
		if g < 0 {
			break
		}
		hi = lo
		if lo /= 2; lo < minBeta {
			return 0, ErrUnrepresentable
		}
	}
	for {
		g, _ := p.eval(hi)
		if g == 0 {
			return hi, nil
		}
		if g > 0 {
			break
		}
		lo = hi
		if hi *= 2; hi > maxBeta {
			return 0, ErrUnrepresentable
		}
	}

	const tol = 4 * 0x1p-52
	b = mid(lo, hi)
	for range 500 {
		g, dg := p.eval(b)
		if g == 0 {
			return b, nil
		}
		if g < 0 {
			lo = b
		} else {
			hi = b
		}
		next := b - g/dg
		if !(next > lo && next < hi) {
			next = mid(lo, hi)
		}
		if math.Abs(next-b) <= tol*b || hi-lo <= tol*hi {
			return next, nil
		}
		b = next
	}
	return b, nil
}

// mid is the bisection point of a bracket: geometric while it spans more
// than a factor of four, since shapes range over decades, then arithmetic.
func mid(lo, hi float64) float64 {
	if hi > 4*lo {
		return math.Sqrt(lo) * math.Sqrt(hi)
	}
	return lo + (hi-lo)/2
}

// menon is a starting shape: Menon's estimate π/√6 / sd(ln t) over the
// failures (Technometrics 5, 1963), which ignores the suspensions but is
// of the right order. d holds ln t of the failures, shifted.
func menon(d []float64) float64 {
	mean := 0.0
	for _, x := range d {
		mean += x
	}
	mean /= float64(len(d))
	ss := 0.0
	for _, x := range d {
		ss += (x - mean) * (x - mean)
	}
	b := math.Pi / math.Sqrt(6) / math.Sqrt(ss/float64(len(d)-1))
	if !(b > 1e-3 && b < 1e3) {
		return 1
	}
	return b
}

// WithConfidence returns f with its bounds at the two-sided confidence
// level c, 0 < c < 1 (0.95 for 95 %).
func (f Fit) WithConfidence(c float64) (Fit, error) {
	if !(c > 0 && c < 1) {
		return Fit{}, fmt.Errorf("%w: confidence %v is not in (0, 1)", ErrInvalidArgument, c)
	}
	f.setBounds(c)
	return f, nil
}

func (f *Fit) setBounds(c float64) {
	z := zTwoSided(c)
	f.Confidence = c
	f.BetaBounds = logNormalBounds(f.Beta, f.BetaSE, z)
	f.EtaBounds = logNormalBounds(f.Eta, f.EtaSE, z)
}

// zTwoSided is the standard normal quantile for a two-sided level c:
// Φ⁻¹((1+c)/2).
func zTwoSided(c float64) float64 { return math.Sqrt2 * math.Erfinv(c) }

// logNormalBounds bounds a positive estimate x with standard error se
// taking ln x as normal: x exp(∓z se/x).
func logNormalBounds(x, se, z float64) Bounds {
	k := math.Exp(z * se / x)
	return Bounds{Lower: x / k, Upper: x * k}
}

// cumHazard is H(t) = (t/Eta)^Beta, 0 for t <= 0.
func (f Fit) cumHazard(t float64) float64 {
	if t <= 0 {
		return 0
	}
	return math.Pow(t/f.Eta, f.Beta)
}

// Reliability is R(t) = exp(-(t/Eta)^Beta), the probability that a new
// unit survives to age t.
func (f Fit) Reliability(t float64) float64 { return math.Exp(-f.cumHazard(t)) }

// CDF is F(t) = 1 - R(t), the probability that a new unit fails by age t.
func (f Fit) CDF(t float64) float64 { return -math.Expm1(-f.cumHazard(t)) }

// PDF is the density f(t) = h(t) R(t).
func (f Fit) PDF(t float64) float64 {
	if t < 0 {
		return 0
	}
	return f.Hazard(t) * f.Reliability(t)
}

// Hazard is the instantaneous failure rate at age t,
// h(t) = (Beta/Eta) (t/Eta)^(Beta-1): failures per unit time among the
// units that reached age t. At t = 0 it is +Inf for Beta < 1.
func (f Fit) Hazard(t float64) float64 {
	if t < 0 {
		return 0
	}
	return f.Beta / f.Eta * math.Pow(t/f.Eta, f.Beta-1)
}

// BLife is the age by which a fraction p of the units have failed:
// BLife(0.10) is the B10 life. It is 0 for p <= 0 and +Inf for p >= 1.
func (f Fit) BLife(p float64) float64 {
	switch {
	case p <= 0:
		return 0
	case p >= 1:
		return math.Inf(1)
	}
	return f.Eta * math.Pow(-math.Log1p(-p), 1/f.Beta)
}

// MeanLife is the mean time to failure, Eta Γ(1 + 1/Beta).
func (f Fit) MeanLife() float64 { return f.Eta * math.Gamma(1+1/f.Beta) }

// ConditionalReliability is the probability that a unit that has survived
// to age survives t more: R(age+t) / R(age). A negative age counts as 0.
func (f Fit) ConditionalReliability(t, age float64) float64 {
	return math.Exp(-f.conditionalHazard(t, age))
}

// conditionalFailure is 1 - ConditionalReliability, accurate when small.
func (f Fit) conditionalFailure(t, age float64) float64 {
	return -math.Expm1(-f.conditionalHazard(t, age))
}

// conditionalHazard is H(age+t) - H(age), computed as
// H(age) ((1 + t/age)^Beta - 1) in logarithms, which neither cancels when
// t is small beside age nor overflows when H(age) alone would.
func (f Fit) conditionalHazard(t, age float64) float64 {
	age = max(age, 0)
	switch {
	case t <= 0:
		return 0
	case age == 0:
		return f.cumHazard(t)
	}
	lh := f.Beta*(ln(age)-ln(f.Eta)) + ln(math.Expm1(f.Beta*math.Log1p(t/age)))
	if math.IsNaN(lh) { // +Inf + -Inf at the extremes of float64
		return f.cumHazard(age+t) - f.cumHazard(age)
	}
	return math.Exp(lh)
}

// ReplacementInterval is the age at which reliability falls to target:
// Eta (-ln target)^(1/Beta). Replacing at that age keeps the fraction of
// units that fail in service at 1 - target. It is +Inf for target <= 0 and
// 0 for target >= 1.
func (f Fit) ReplacementInterval(target float64) float64 {
	switch {
	case target <= 0:
		return math.Inf(1)
	case target >= 1:
		return 0
	}
	return f.Eta * math.Pow(-ln(target), 1/f.Beta)
}

// ReliabilityBounds bounds R(t) at the fit's confidence level by the
// Fisher-matrix method (Nelson 1982; ReliaSoft): u = Beta (ln t - ln Eta)
// is taken as normal with the variance the delta method gives from the
// covariance of the estimates, and R = exp(-exp(u)) is evaluated at u's
// bounds.
func (f Fit) ReliabilityBounds(t float64) Bounds {
	if t <= 0 {
		return Bounds{Lower: 1, Upper: 1}
	}
	u := f.Beta * (ln(t) - ln(f.Eta))
	// du/dBeta = u/Beta, du/d(ln Eta) = -Beta.
	varLogEta := (f.EtaSE / f.Eta) * (f.EtaSE / f.Eta)
	covBetaLogEta := f.CovBetaEta / f.Eta
	du := u / f.Beta
	varU := du*du*f.BetaSE*f.BetaSE + f.Beta*f.Beta*varLogEta - 2*du*f.Beta*covBetaLogEta
	k := zTwoSided(f.Confidence) * math.Sqrt(max(varU, 0))
	return Bounds{Lower: math.Exp(-math.Exp(u + k)), Upper: math.Exp(-math.Exp(u - k))}
}

// ln is the natural logarithm, exact for subnormal x too, which
// math.Log on amd64 is not (it gives -709.09 for both 5e-324 and 1e-323).
func ln(x float64) float64 {
	if x > 0 && x < 0x1p-1022 {
		return math.Log(x*0x1p64) - 64*math.Ln2
	}
	return math.Log(x)
}

// valid reports whether f describes a distribution: positive finite
// parameters.
func (f Fit) valid() bool {
	return f.Beta > 0 && f.Eta > 0 && !math.IsInf(f.Beta, 1) && !math.IsInf(f.Eta, 1)
}

func (f Fit) check() error {
	if !f.valid() {
		return fmt.Errorf("%w: fit has beta %v, eta %v; both must be positive and finite", ErrInvalidArgument, f.Beta, f.Eta)
	}
	return nil
}
