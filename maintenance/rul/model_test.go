package rul

import (
	"bytes"
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// syntheticFleet makes n run-to-failure units of lives 150 to 300 cycles
// with channels:
//
//	load     operating setting, noise unrelated to wear
//	wear     the unit's own offset, plus a wear that grows in the last 120
//	         cycles as the square of the time into them, plus noise
//	flow     falls with the wear, plus noise
//	const    100 always
//
// The remaining life, capped at 125, follows from wear and flow over a
// few cycles.
func syntheticFleet(n int, seed uint64) []Unit {
	rng := rand.New(rand.NewPCG(seed, 11))
	channels := []string{"load", "wear", "flow", "const"}
	units := make([]Unit, n)
	for i := range units {
		life := 150 + rng.IntN(151)
		offset := 0.3 * rng.NormFloat64()
		u := Unit{ID: "u" + strconv.Itoa(i+1), Channels: slices.Clone(channels)}
		for c := 1; c <= life; c++ {
			into := max(0, float64(c-(life-120))) / 120
			w := offset + 3*into*into
			u.Observations = append(u.Observations, Observation{
				Time:   float64(c),
				Values: []float64{rng.Float64(), w + 0.2*rng.NormFloat64(), 10 - w + 0.2*rng.NormFloat64(), 100},
			})
		}
		units[i] = u
	}
	return units
}

// smallConfig trains fast for tests.
func smallConfig() Config {
	cfg := DefaultConfig()
	cfg.Ensemble, cfg.Trees, cfg.LearningRate, cfg.MinLeaf = 2, 60, 0.15, 20
	return cfg
}

func train(t testing.TB, units []Unit, cfg Config) *Model {
	t.Helper()
	m, err := Train(context.Background(), units, cfg)
	if err != nil {
		t.Fatalf("Train: %v", err)
	}
	return m
}

func cut(u Unit, n int) Unit {
	return Unit{ID: u.ID, Channels: u.Channels, Observations: u.Observations[:n]}
}

func TestTrainSynthetic(t *testing.T) {
	m := train(t, syntheticFleet(30, 1), smallConfig())
	if got := m.Channels(); !slices.Equal(got, []string{"wear", "flow"}) {
		t.Errorf("Channels() = %q, want [wear flow]: load is noise, const is constant", got)
	}
	// Held-out units cut at every 10th cycle of their last 150.
	var pred, truth []float64
	for _, u := range syntheticFleet(10, 2) {
		L := len(u.Observations)
		for r := 0; r < 150; r += 10 {
			p, err := m.Predict(cut(u, L-r))
			if err != nil {
				t.Fatal(err)
			}
			if p < 0 || p > m.Cap() {
				t.Errorf("Predict = %v, want within [0, %v]", p, m.Cap())
			}
			pred, truth = append(pred, p), append(truth, min(float64(r), 125))
		}
	}
	rmse, _, err := Evaluate(pred, truth)
	if err != nil {
		t.Fatal(err)
	}
	// The wear shows only in the last 120 cycles and is noisy: a
	// model that learned nothing would be off by ~45 (the spread of
	// the truth); one that reads the wear, by ~10.
	t.Logf("RMSE on held-out synthetic units: %.2f", rmse)
	if rmse > 15 {
		t.Errorf("RMSE on held-out synthetic units %.2f, want < 15", rmse)
	}
}

// The features of an observation of a training unit are those of the
// history that ends there: the model sees in training what Predict sees.
func TestFeaturesOfHistory(t *testing.T) {
	units := syntheticFleet(5, 3)
	m := train(t, units, smallConfig())
	u := units[0]
	cols, err := u.columns(m.channels)
	if err != nil {
		t.Fatal(err)
	}
	full := m.series(u, cols)
	nf := numFeatures(len(full.z))
	want, got := make([]float64, nf), make([]float64, nf)
	for _, n := range []int{1, 2, 7, 31, 80, len(u.Observations)} {
		full.featuresAt(n-1, want)
		m.series(cut(u, n), cols).featuresAt(n-1, got)
		if !slices.Equal(got, want) {
			t.Errorf("features of a %d-observation history differ from the full unit's at %d", n, n-1)
		}
		p, err := m.Predict(cut(u, n))
		if err != nil {
			t.Fatal(err)
		}
		if q := m.predict(want); p != q {
			t.Errorf("Predict of %d observations = %v, want %v", n, p, q)
		}
	}
	if names := featureNames(append(m.Channels(), "hi")); len(names) != nf {
		t.Errorf("%d feature names for %d features", len(names), nf)
	}
}

func TestFeatures(t *testing.T) {
	// One input, z = 2 t + 1 at times t = 0..39.
	var times, z []float64
	for i := range 40 {
		times = append(times, float64(i))
		z = append(z, 2*float64(i)+1)
	}
	s := newSeries(times, [][]float64{z})
	x := make([]float64, numFeatures(1))
	s.featuresAt(39, x)
	names := featureNames([]string{"z"})
	want := map[string]float64{
		"z.last":    79,
		"z.mean5":   75, // 71..79
		"z.mean50":  40, // all 40: 1..79
		"z.slope10": 2,  // exact
		"z.slope50": 2,  // exact
		"z.min30":   21, // t = 10
		"z.max30":   79, // t = 39
		"age":       39,
	}
	ewma := z[0]
	for _, v := range z[1:] {
		ewma = 0.1*v + 0.9*ewma
	}
	want["z.ewma0.1"] = ewma
	want["z.drift"] = ewma - 10 // minus the mean of the first 10, 1..19
	for name, w := range want {
		i := slices.Index(names, name)
		if i < 0 {
			t.Fatalf("no feature %q in %q", name, names)
		}
		if math.Abs(x[i]-w) > 1e-9 {
			t.Errorf("feature %s = %v, want %v", name, x[i], w)
		}
	}
	// A history of one observation has zero slopes.
	s.featuresAt(0, x)
	if i := slices.Index(names, "z.slope30"); x[i] != 0 {
		t.Errorf("slope of one observation = %v, want 0", x[i])
	}
}

func TestPredictChannels(t *testing.T) {
	units := syntheticFleet(8, 4)
	m := train(t, units, smallConfig())
	u := units[0]
	want, err := m.Predict(u)
	if err != nil {
		t.Fatal(err)
	}

	// Channels by name, in any order, extra ones ignored.
	r := Unit{ID: u.ID, Channels: []string{"extra", "flow", "wear"}}
	for _, o := range u.Observations {
		r.Observations = append(r.Observations, Observation{Time: o.Time, Values: []float64{42, o.Values[2], o.Values[1]}})
	}
	if got, err := m.Predict(r); err != nil || got != want {
		t.Errorf("Predict with channels reordered = %v, %v; want %v", got, err, want)
	}

	// A missing reading repeats the last one.
	nan := Unit{ID: u.ID, Channels: u.Channels}
	for i, o := range u.Observations {
		v := slices.Clone(o.Values)
		if i == len(u.Observations)-1 {
			v[1] = math.NaN()
		}
		nan.Observations = append(nan.Observations, Observation{Time: o.Time, Values: v})
	}
	if got, err := m.Predict(nan); err != nil || math.IsNaN(got) {
		t.Errorf("Predict with a missing reading = %v, %v; want a number", got, err)
	}

	tests := []struct {
		name string
		unit Unit
		want error
	}{
		{"empty", Unit{ID: "e", Channels: u.Channels}, ErrNoObservations},
		{"missing channel", Unit{ID: "m", Channels: []string{"wear"}, Observations: []Observation{{Time: 1, Values: []float64{1}}}}, ErrChannel},
		{"channel twice", Unit{ID: "d", Channels: []string{"wear", "wear"}, Observations: []Observation{{Time: 1, Values: []float64{1, 1}}}}, ErrChannel},
		{"short row", Unit{ID: "s", Channels: u.Channels, Observations: []Observation{{Time: 1, Values: []float64{1}}}}, ErrUnit},
		{"time order", Unit{ID: "t", Channels: u.Channels, Observations: []Observation{u.Observations[1], u.Observations[0]}}, ErrUnit},
	}
	for _, tc := range tests {
		if _, err := m.Predict(tc.unit); !errors.Is(err, tc.want) || !strings.Contains(err.Error(), `unit "`+tc.unit.ID+`"`) {
			t.Errorf("%s: Predict = %v, want %v naming the unit", tc.name, err, tc.want)
		}
	}
}

func TestUntrained(t *testing.T) {
	var m Model
	if _, err := m.Predict(syntheticFleet(1, 1)[0]); !errors.Is(err, ErrUntrained) {
		t.Errorf("Predict of a zero Model = %v, want %v", err, ErrUntrained)
	}
	if _, err := m.MarshalBinary(); !errors.Is(err, ErrUntrained) {
		t.Errorf("MarshalBinary of a zero Model = %v, want %v", err, ErrUntrained)
	}
}

func TestTrainErrors(t *testing.T) {
	units := syntheticFleet(3, 5)
	if _, err := Train(context.Background(), units[:1], smallConfig()); !errors.Is(err, ErrTooFewUnits) {
		t.Errorf("Train of 1 unit = %v, want %v", err, ErrTooFewUnits)
	}
	bad := smallConfig()
	bad.Depth = 0
	if _, err := Train(context.Background(), units, bad); err == nil || !strings.HasPrefix(err.Error(), "rul.depth:") {
		t.Errorf("Train with depth 0 = %v, want an error naming rul.depth", err)
	}
	noisy := smallConfig()
	noisy.MinCorrelation = 0.99
	if _, err := Train(context.Background(), units, noisy); !errors.Is(err, ErrChannel) {
		t.Errorf("Train with min_correlation 0.99 = %v, want %v", err, ErrChannel)
	}
	other := slices.Clone(units)
	other[1].Channels = []string{"a", "b", "c", "d"}
	if _, err := Train(context.Background(), other, smallConfig()); !errors.Is(err, ErrChannel) {
		t.Errorf("Train with a unit lacking channels = %v, want %v", err, ErrChannel)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Train(ctx, units, smallConfig()); !errors.Is(err, context.Canceled) {
		t.Errorf("Train with a canceled context = %v, want %v", err, context.Canceled)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Errorf("DefaultConfig().Validate() = %v", err)
	}
	tests := []struct {
		field string
		set   func(*Config)
	}{
		{"rul.cap", func(c *Config) { c.Cap = 0 }},
		{"rul.cap", func(c *Config) { c.Cap = math.NaN() }},
		{"rul.min_correlation", func(c *Config) { c.MinCorrelation = 1 }},
		{"rul.ensemble", func(c *Config) { c.Ensemble = 0 }},
		{"rul.trees", func(c *Config) { c.Trees = 0 }},
		{"rul.depth", func(c *Config) { c.Depth = 17 }},
		{"rul.learning_rate", func(c *Config) { c.LearningRate = 0 }},
		{"rul.subsample", func(c *Config) { c.Subsample = 1.5 }},
		{"rul.feature_fraction", func(c *Config) { c.FeatureFraction = 0 }},
		{"rul.min_leaf", func(c *Config) { c.MinLeaf = 0 }},
		{"rul.lambda", func(c *Config) { c.Lambda = -1 }},
		{"rul.bins", func(c *Config) { c.Bins = 257 }},
		{"rul.workers", func(c *Config) { c.Workers = -1 }},
	}
	for _, tc := range tests {
		c := DefaultConfig()
		tc.set(&c)
		if err := c.Validate(); err == nil || !strings.HasPrefix(err.Error(), tc.field+":") {
			t.Errorf("Validate() = %v, want an error naming %s", err, tc.field)
		}
	}
}

// The same units, configuration and seed give the same model, whatever
// the number of workers.
func TestTrainDeterministic(t *testing.T) {
	units := syntheticFleet(6, 6)
	cfg := smallConfig()
	cfg.Workers = 1
	a, _ := train(t, units, cfg).MarshalBinary()
	cfg.Workers = 2
	b, _ := train(t, units, cfg).MarshalBinary()
	cfg.Seed = 1
	c, _ := train(t, units, cfg).MarshalBinary()
	if !bytes.Equal(a, b) {
		t.Errorf("same seed, 1 and 2 workers: different models")
	}
	if bytes.Equal(a, c) {
		t.Errorf("seeds 0 and 1: the same model")
	}
}

func TestCrossValidate(t *testing.T) {
	units := syntheticFleet(12, 7)
	v, err := CrossValidate(context.Background(), units, smallConfig(), 3, 5)
	if err != nil {
		t.Fatal(err)
	}
	if v.Units != 12 || v.Predictions != 60 {
		t.Errorf("CrossValidate held out %d units, %d predictions; want 12, 60", v.Units, v.Predictions)
	}
	t.Logf("cross-validated RMSE %.2f, PHM08 per 100 %.1f", v.RMSE, v.PHM08)
	// Cuts go up to 150 cycles before failure, beyond the cap: a little
	// worse than TestTrainSynthetic.
	if v.RMSE > 20 || v.PHM08 <= 0 {
		t.Errorf("CrossValidate = RMSE %.2f, PHM08 %.1f; want RMSE < 20 and a positive score", v.RMSE, v.PHM08)
	}
	if _, err := CrossValidate(context.Background(), units, smallConfig(), 13, 5); err == nil {
		t.Errorf("CrossValidate with 13 folds of 12 units: no error")
	}
}

func BenchmarkPredict(b *testing.B) {
	units := syntheticFleet(20, 8)
	m := train(b, units, DefaultConfig())
	// A 300-cycle history with 24 channels, as C-MAPSS has.
	rng := rand.New(rand.NewPCG(1, 1))
	h := Unit{ID: "bench"}
	for j := range 20 {
		h.Channels = append(h.Channels, "x"+strconv.Itoa(j))
	}
	h.Channels = append(h.Channels, "load", "wear", "flow", "const")
	for c := 1; c <= 300; c++ {
		v := make([]float64, len(h.Channels))
		for j := range v {
			v[j] = rng.Float64()
		}
		h.Observations = append(h.Observations, Observation{Time: float64(c), Values: v})
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Predict(h); err != nil {
			b.Fatal(err)
		}
	}
}
