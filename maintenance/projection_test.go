package maintenance

import (
	"math"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)

// steady is a history of samples every step from t0 for span, at perDay
// hours of use a day, starting from usage0.
func steady(usage0, perDay float64, span, step time.Duration) *History {
	h := &History{}
	for d := time.Duration(0); d <= span; d += step {
		h.Add(Sample{Time: t0.Add(d), UsageHours: usage0 + perDay*d.Hours()/24}, 0)
	}
	return h
}

func TestHistoryAddMinGap(t *testing.T) {
	const gap = 10 * time.Minute
	h := &History{}
	for _, s := range []struct {
		after time.Duration
		kept  bool
	}{
		{0, true},
		{5 * time.Minute, false},  // too soon after the first
		{10 * time.Minute, true},  // exactly minGap after it
		{19 * time.Minute, false}, // 9 min after the last kept
		{-time.Hour, false},       // older than the last
		{25 * time.Minute, true},
	} {
		n := len(h.Samples)
		h.Add(Sample{Time: t0.Add(s.after), UsageHours: 1}, gap)
		if got := len(h.Samples) > n; got != s.kept {
			t.Errorf("Add(t0%+v) kept = %v, want %v", s.after, got, s.kept)
		}
	}
	if got := len(h.Samples); got != 3 {
		t.Errorf("len(Samples) = %d, want 3", got)
	}
}

func TestHistoryAddThins(t *testing.T) {
	h := &History{}
	const n = 1000
	var sizes []int
	for i := range n {
		h.Add(Sample{Time: t0.Add(time.Duration(i) * time.Hour), UsageHours: float64(i) / 3}, time.Hour)
		if len(h.Samples) > MaxSamples {
			t.Fatalf("after %d samples len = %d, want <= %d", i+1, len(h.Samples), MaxSamples)
		}
		sizes = append(sizes, len(h.Samples))
	}
	first, last := h.Samples[0], h.Samples[len(h.Samples)-1]
	if !first.Time.Equal(t0) || first.UsageHours != 0 {
		t.Errorf("first sample = %v, %v; want %v, 0", first.Time, first.UsageHours, t0)
	}
	if end := t0.Add((n - 1) * time.Hour); !last.Time.Equal(end) {
		t.Errorf("last sample = %v, want %v", last.Time, end)
	}
	if got := len(h.Samples); got < MaxSamples/2 {
		t.Errorf("len(Samples) = %d, want at least %d after thinning", got, MaxSamples/2)
	}
	for i := 1; i < len(h.Samples); i++ {
		if !h.Samples[i].Time.After(h.Samples[i-1].Time) {
			t.Fatalf("Samples[%d] at %v is not after Samples[%d] at %v", i, h.Samples[i].Time, i-1, h.Samples[i-1].Time)
		}
	}
	// The older half is coarser than the newer: the gap between the first
	// two samples is larger than between the last two.
	if early, late := h.Samples[1].Time.Sub(first.Time), last.Time.Sub(h.Samples[len(h.Samples)-2].Time); early <= late {
		t.Errorf("first gap %v, last gap %v: want the older samples thinner", early, late)
	}
	// It thinned (at MaxSamples), so the length went down at least once.
	thinned := false
	for i := 1; i < len(sizes); i++ {
		thinned = thinned || sizes[i] < sizes[i-1]
	}
	if !thinned {
		t.Errorf("history never thinned over %d samples", n)
	}
	// A rate over the thinned history is still exact.
	if r := EstimateRate(h, last.UsageHours, last.Time.Sub(t0)); math.Abs(r.PerDay-8) > 1e-9 {
		t.Errorf("EstimateRate(thinned) = %v, want 8", r.PerDay)
	}
}

func TestHistoryAddRestartsOnUsageDrop(t *testing.T) {
	h := steady(100, 8, 5*day, 12*time.Hour)
	if len(h.Samples) != 11 {
		t.Fatalf("len(Samples) = %d, want 11", len(h.Samples))
	}
	// Equal usage (a device not in use) keeps the history.
	last := h.Samples[len(h.Samples)-1]
	h.Add(Sample{Time: last.Time.Add(12 * time.Hour), UsageHours: last.UsageHours}, time.Hour)
	if len(h.Samples) != 12 {
		t.Fatalf("after the same usage len(Samples) = %d, want 12", len(h.Samples))
	}
	restart := Sample{Time: last.Time.Add(24 * time.Hour), UsageHours: 3}
	h.Add(restart, time.Hour)
	if len(h.Samples) != 1 || h.Samples[0].UsageHours != 3 || !h.Samples[0].Time.Equal(restart.Time) {
		t.Errorf("after a usage drop Samples = %v, want only %v", h.Samples, restart)
	}
}

func TestEstimateRate(t *testing.T) {
	tests := []struct {
		name              string
		h                 *History
		usage             float64
		age               time.Duration
		perDay, low, high float64
		samples           int
	}{
		{name: "steady 8 h/day over 10 days", h: steady(500, 8, 10*day, 6*time.Hour), usage: 580, age: 400 * day,
			perDay: 8, low: 8, high: 8, samples: 41},
		{name: "steady with a 5-day gap", h: gapped(8, 10*day, 6*time.Hour, 3*day, 8*day), usage: 580, age: 400 * day,
			perDay: 8, low: 8, high: 8, samples: 21},
		{name: "not in use", h: steady(500, 0, 3*day, 6*time.Hour), usage: 500, age: 400 * day, samples: 13},
		// Fallbacks: usage / age, band [r/2, 2r].
		{name: "no history", h: &History{}, usage: 300, age: 100 * day, perDay: 3, low: 1.5, high: 6},
		{name: "two samples", h: steady(0, 8, 10*day, 10*day), usage: 300, age: 100 * day, perDay: 3, low: 1.5, high: 6},
		{name: "many samples within a day", h: steady(0, 8, 20*time.Hour, time.Hour), usage: 300, age: 100 * day,
			perDay: 3, low: 1.5, high: 6},
		{name: "younger than a day", h: &History{}, usage: 5, age: 6 * time.Hour, perDay: 5, low: 2.5, high: 10},
		{name: "new", h: &History{}, usage: 0, age: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := EstimateRate(tc.h, tc.usage, tc.age)
			if math.Abs(got.PerDay-tc.perDay) > 1e-9 || math.Abs(got.Low-tc.low) > 1e-9 || math.Abs(got.High-tc.high) > 1e-9 ||
				got.Samples != tc.samples {
				t.Errorf("EstimateRate = %+v, want %v [%v, %v] on %d samples", got, tc.perDay, tc.low, tc.high, tc.samples)
			}
		})
	}
}

// gapped is steady but without samples in [from, to).
func gapped(perDay float64, span, step, from, to time.Duration) *History {
	h := &History{}
	for d := time.Duration(0); d <= span; d += step {
		if d >= from && d < to {
			continue
		}
		h.Add(Sample{Time: t0.Add(d), UsageHours: perDay * d.Hours() / 24}, 0)
	}
	return h
}

// leastSquares is the ordinary least-squares slope of usage per day, what
// EstimateRate does not use.
func leastSquares(h *History) float64 {
	var n, st, su, stt, stu float64
	for _, s := range h.Samples {
		x := s.Time.Sub(h.Samples[0].Time).Hours() / 24
		n, st, su, stt, stu = n+1, st+x, su+s.UsageHours, stt+x*x, stu+x*s.UsageHours
	}
	return (n*stu - st*su) / (n*stt - st*st)
}

// A single sample reported 8 h early (the counter is cumulative, so it can
// only be an odd sample that stays in order) barely moves the rate; it
// moves a least-squares fit more.
func TestEstimateRateOutlier(t *testing.T) {
	h := &History{}
	for d := range 11 {
		u := 8 * float64(d)
		if d == 8 {
			u = 72 // day 9's usage, a day early
		}
		h.Add(Sample{Time: t0.Add(time.Duration(d) * day), UsageHours: u}, 0)
	}
	r := EstimateRate(h, 80, 10*day)
	ls := leastSquares(h)
	if math.Abs(r.PerDay-8) > 0.01 {
		t.Errorf("EstimateRate with an outlier = %v, want 8 +- 0.01", r.PerDay)
	}
	if math.Abs(ls-8) < 0.1 {
		t.Fatalf("least squares with the outlier = %v: the outlier is too weak to test anything", ls)
	}
	if math.Abs(r.PerDay-8) >= math.Abs(ls-8) {
		t.Errorf("EstimateRate = %v, least squares = %v: want Theil-Sen closer to 8", r.PerDay, ls)
	}
	if r.Low > 8 || r.High < 8 || r.Low < 0 {
		t.Errorf("EstimateRate band = [%v, %v], want it around 8", r.Low, r.High)
	}
}

// Usage that varies from day to day gives a band around the median.
func TestEstimateRateBand(t *testing.T) {
	h := &History{}
	u := 0.0
	for d := range 15 {
		h.Add(Sample{Time: t0.Add(time.Duration(d) * day), UsageHours: u}, 0)
		u += []float64{4, 12}[d%2]
	}
	r := EstimateRate(h, u, 30*day)
	if !(r.Low <= r.PerDay && r.PerDay <= r.High) || r.Low >= r.High {
		t.Errorf("EstimateRate = %+v, want Low < High and Low <= PerDay <= High", r)
	}
	if math.Abs(r.PerDay-8) > 0.5 || r.Low < 4 || r.High > 12 {
		t.Errorf("EstimateRate = %+v, want about 8 within [4, 12]", r)
	}
}

func TestQuantile(t *testing.T) {
	tests := []struct {
		sorted []float64
		q      float64
		want   float64
	}{
		{nil, 0.5, 0},
		{[]float64{3}, 0.9, 3},
		{[]float64{1, 2, 3, 4}, 0.5, 2.5},
		{[]float64{1, 2, 3, 4, 5}, 0.1, 1.4},
		{[]float64{1, 2, 3, 4, 5}, 1, 5},
		{[]float64{1, 2, 3, 4, 5}, 0, 1},
	}
	for _, tc := range tests {
		if got := quantile(tc.sorted, tc.q); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("quantile(%v, %v) = %v, want %v", tc.sorted, tc.q, got, tc.want)
		}
	}
}

func TestTrend(t *testing.T) {
	nan := math.NaN()
	h := &History{}
	for d, v := range []float64{10, nan, 30, 40, 50} {
		h.Add(Sample{Time: t0.Add(time.Duration(d) * day), Values: []float64{v, 1}}, 0)
	}
	if got, ok := trend(h, 0); !ok || math.Abs(got-10) > 1e-9 {
		t.Errorf("trend(0) = %v, %v; want 10, true", got, ok)
	}
	if got, ok := trend(h, 1); !ok || got != 0 {
		t.Errorf("trend(1) = %v, %v; want 0, true", got, ok)
	}
	if got, ok := trend(h, 2); ok {
		t.Errorf("trend(2), an indicator not reported = %v, true; want false", got)
	}
	short := &History{Samples: h.Samples[:2]}
	if got, ok := trend(short, 0); ok {
		t.Errorf("trend on 2 samples = %v, true; want false", got)
	}
	if got, ok := trend(&History{}, 0); ok {
		t.Errorf("trend on no samples = %v, true; want false", got)
	}
}
