package reliability

import (
	"errors"
	"math"
	"testing"
)

// assertSignificant checks that got, rounded to digits significant digits,
// is the published figure want.
func assertSignificant(t *testing.T, what string, got, want float64, digits int) {
	t.Helper()
	tol := 0.5e-12
	if want != 0 {
		e := math.Floor(math.Log10(math.Abs(want)))
		tol = 0.5 * math.Pow(10, e-float64(digits)+1) * (1 + 1e-9)
	}
	if !(math.Abs(got-want) <= tol) {
		t.Errorf("%s = %.10g, published %v", what, got, want)
	}
}

// TestKaplanMeierPublished checks KaplanMeier against Example 1 of the
// "Kaplan-Meier" page of the Python reliability library's documentation
// (reliability.readthedocs.io), which prints, to pandas' six significant
// digits, the estimate and its 95 % bounds (Greenwood variance, normal
// approximation, clipped to [0, 1]) for the automotive data, once with
// the 21 suspensions and once with the 10 failures alone.
func TestKaplanMeierPublished(t *testing.T) {
	type row struct {
		time       float64
		failed     bool
		remaining  int
		km, lo, hi float64
	}
	const z95 = 1.959963984540054
	tests := []struct {
		name string
		obs  []Observation
		want []row
	}{
		{
			name: "failures and suspensions", obs: automotiveObs,
			want: []row{
				{3961, false, 31, 1, 1, 1},
				{4007, false, 30, 1, 1, 1},
				{4734, false, 29, 1, 1, 1},
				{5248, true, 28, 0.964286, 0.895548, 1},
				{6054, false, 27, 0.964286, 0.895548, 1},
				{7298, false, 26, 0.964286, 0.895548, 1},
				{7454, true, 25, 0.925714, 0.826513, 1},
				{10190, false, 24, 0.925714, 0.826513, 1},
				{16890, true, 23, 0.885466, 0.76317, 1},
				{17200, true, 22, 0.845217, 0.705334, 0.985101},
				{23060, false, 21, 0.845217, 0.705334, 0.985101},
				{27160, false, 20, 0.845217, 0.705334, 0.985101},
				{28690, false, 19, 0.845217, 0.705334, 0.985101},
				{37100, false, 18, 0.845217, 0.705334, 0.985101},
				{38700, true, 17, 0.795499, 0.633417, 0.95758},
				{40060, false, 16, 0.795499, 0.633417, 0.95758},
				{45000, true, 15, 0.742465, 0.560893, 0.924037},
				{45670, false, 14, 0.742465, 0.560893, 0.924037},
				{49390, true, 13, 0.685353, 0.48621, 0.884496},
				{53000, false, 12, 0.685353, 0.48621, 0.884496},
				{67000, false, 11, 0.685353, 0.48621, 0.884496},
				{69040, true, 10, 0.616817, 0.396904, 0.836731},
				{69630, false, 9, 0.616817, 0.396904, 0.836731},
				{72280, true, 8, 0.539715, 0.300949, 0.778481},
				{77350, false, 7, 0.539715, 0.300949, 0.778481},
				{78470, false, 6, 0.539715, 0.300949, 0.778481},
				{91680, false, 5, 0.539715, 0.300949, 0.778481},
				{105700, false, 4, 0.539715, 0.300949, 0.778481},
				{106300, false, 3, 0.539715, 0.300949, 0.778481},
				{131900, true, 2, 0.269858, 0, 0.662446},
				{150400, false, 1, 0.269858, 0, 0.662446},
			},
		},
		{
			name: "failures only", obs: automotiveObs[:10],
			want: []row{
				{5248, true, 10, 0.9, 0.714061, 1},
				{7454, true, 9, 0.8, 0.552082, 1},
				{16890, true, 8, 0.7, 0.415974, 0.984026},
				{17200, true, 7, 0.6, 0.296364, 0.903636},
				{38700, true, 6, 0.5, 0.190102, 0.809898},
				{45000, true, 5, 0.4, 0.0963637, 0.703636},
				{49390, true, 4, 0.3, 0.0159742, 0.584026},
				{69040, true, 3, 0.2, 0, 0.447918},
				{72280, true, 2, 0.1, 0, 0.285939},
				{131900, true, 1, 0, 0, 0},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := KaplanMeier(tc.obs)
			if err != nil {
				t.Fatalf("KaplanMeier: %v", err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("KaplanMeier returned %d points, want %d", len(got), len(tc.want))
			}
			for i, w := range tc.want {
				p := got[i]
				failures := 0
				if w.failed {
					failures = 1
				}
				if p.Time != w.time || p.AtRisk != w.remaining || p.Failures != failures || p.Censored != 1-failures {
					t.Errorf("point %d = %+v, want time %v, at risk %d, failed %v", i, p, w.time, w.remaining, w.failed)
				}
				assertSignificant(t, "S", p.Survival, w.km, 6)
				assertSignificant(t, "lower", max(0, p.Survival-z95*p.StdErr), w.lo, 6)
				assertSignificant(t, "upper", min(1, p.Survival+z95*p.StdErr), w.hi, 6)
			}
		})
	}
}

func TestKaplanMeierTies(t *testing.T) {
	// Two failures and a suspension at 10: the suspension is at risk for
	// them. S(10) = 1 - 2/5; at 20, one failure among the 2 left.
	obs := []Observation{{20, true}, {10, true}, {10, false}, {30, false}, {10, true}}
	got, err := KaplanMeier(obs)
	if err != nil {
		t.Fatalf("KaplanMeier: %v", err)
	}
	want := []KMPoint{
		{Time: 10, AtRisk: 5, Failures: 2, Censored: 1, Survival: 0.6},
		{Time: 20, AtRisk: 2, Failures: 1, Survival: 0.3},
		{Time: 30, AtRisk: 1, Censored: 1, Survival: 0.3},
	}
	if len(got) != len(want) {
		t.Fatalf("KaplanMeier(%v) = %+v, want %+v", obs, got, want)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Time != w.Time || g.AtRisk != w.AtRisk || g.Failures != w.Failures || g.Censored != w.Censored ||
			math.Abs(g.Survival-w.Survival) > 1e-15 {
			t.Errorf("point %d = %+v, want %+v", i, g, w)
		}
	}
	// Greenwood at 20: 0.3² (2/(5·3) + 1/(2·1)).
	if se := 0.3 * math.Sqrt(2.0/15+0.5); math.Abs(got[1].StdErr-se) > 1e-15 {
		t.Errorf("StdErr at 20 = %v, want %v", got[1].StdErr, se)
	}
	// The input is not reordered.
	if obs[0].Time != 20 {
		t.Errorf("KaplanMeier sorted its input: %v", obs)
	}
}

func TestKaplanMeierErrors(t *testing.T) {
	if got, err := KaplanMeier(nil); got != nil || err != nil {
		t.Errorf("KaplanMeier(nil) = %v, %v, want nil, nil", got, err)
	}
	for _, bad := range []float64{0, -1, math.NaN(), math.Inf(1)} {
		_, err := KaplanMeier([]Observation{{5, true}, {bad, false}})
		var oe *ObservationError
		if !errors.Is(err, ErrInvalidTime) || !errors.As(err, &oe) || oe.Index != 1 {
			t.Errorf("KaplanMeier with time %v: error = %v, want *ObservationError at 1 wrapping ErrInvalidTime", bad, err)
		}
	}
}

// TestKaplanMeierAgreesWithFit is the check KaplanMeier exists for: on a
// large censored sample the Weibull fit stays inside the Kaplan–Meier
// band wherever units remain at risk.
func TestKaplanMeierAgreesWithFit(t *testing.T) {
	obs := weibullSample(newRand(3), 2000, 2.2, 700, math.Inf(1), 1500)
	f := mustFit(t, obs, DefaultConfidence)
	km, err := KaplanMeier(obs)
	if err != nil {
		t.Fatalf("KaplanMeier: %v", err)
	}
	const z = 3.0
	for _, p := range km {
		if p.AtRisk < 50 {
			break
		}
		if r := f.Reliability(p.Time); math.Abs(r-p.Survival) > z*p.StdErr+1e-3 {
			t.Errorf("at %v: Weibull R = %.4f, Kaplan–Meier %.4f ± %.4f", p.Time, r, p.Survival, p.StdErr)
		}
	}
}
