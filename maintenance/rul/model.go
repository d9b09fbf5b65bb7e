package rul

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
)

// Config is what Train learns with. Start from DefaultConfig: the zero
// value is not valid.
type Config struct {
	// Cap is the cap of the piecewise-linear target: a unit whose
	// remaining life is longer is taken to have Cap left, and no
	// prediction exceeds it. In the unit of Observation.Time.
	Cap float64 `yaml:"cap"`
	// MinCorrelation is the smallest absolute correlation with the capped
	// remaining life, over all training observations, of a channel that the
	// model keeps. Constant channels are always dropped.
	MinCorrelation float64 `yaml:"min_correlation"`
	// Ensemble is the number of boosters, each trained with its own seed,
	// whose predictions are averaged.
	Ensemble int `yaml:"ensemble"`
	// Trees is the number of trees of each booster.
	Trees int `yaml:"trees"`
	// Depth is the depth of each tree: at most 2^Depth leaves.
	Depth int `yaml:"depth"`
	// LearningRate shrinks each tree's contribution.
	LearningRate float64 `yaml:"learning_rate"`
	// Subsample is the fraction of the training observations each tree is
	// fitted to, drawn anew for every tree.
	Subsample float64 `yaml:"subsample"`
	// FeatureFraction is the fraction of the features each tree may split
	// on, drawn anew for every tree.
	FeatureFraction float64 `yaml:"feature_fraction"`
	// MinLeaf is the fewest training observations in a leaf.
	MinLeaf int `yaml:"min_leaf"`
	// Lambda is the L2 penalty on leaf values, in observations: a leaf of
	// n observations moves by their residual sum over n+Lambda.
	Lambda float64 `yaml:"lambda"`
	// Bins is the number of quantile bins per feature in which splits are
	// searched, 2 to 256.
	Bins int `yaml:"bins"`
	// Seed makes training deterministic: the same units, configuration and
	// seed give the same model.
	Seed uint64 `yaml:"seed"`
	// Workers is the number of goroutines that build histograms; 0 means
	// GOMAXPROCS. It does not change the model.
	Workers int `yaml:"workers"`
}

// DefaultConfig is the configuration chosen by cross-validation on the
// C-MAPSS FD003 training units (see CrossValidate).
func DefaultConfig() Config {
	return Config{
		Cap:             125,
		MinCorrelation:  0.1,
		Ensemble:        3,
		Trees:           400,
		Depth:           4,
		LearningRate:    0.05,
		Subsample:       0.7,
		FeatureFraction: 0.5,
		MinLeaf:         50,
		Lambda:          1,
		Bins:            64,
	}
}

// Validate reports the first field out of range, by its yaml name.
func (c Config) Validate() error {
	switch {
	case !(c.Cap > 0 && c.Cap <= maxValue):
		return fmt.Errorf("rul.cap: must be positive and at most %g, got %v", maxValue, c.Cap)
	case !(c.MinCorrelation >= 0 && c.MinCorrelation < 1):
		return fmt.Errorf("rul.min_correlation: must be in [0, 1), got %v", c.MinCorrelation)
	case c.Ensemble < 1 || c.Ensemble > 100:
		return fmt.Errorf("rul.ensemble: must be 1 to 100, got %d", c.Ensemble)
	case c.Trees < 1 || c.Trees > 100_000:
		return fmt.Errorf("rul.trees: must be 1 to 100000, got %d", c.Trees)
	case c.Depth < 1 || c.Depth > 16:
		return fmt.Errorf("rul.depth: must be 1 to 16, got %d", c.Depth)
	case !(c.LearningRate > 0 && c.LearningRate <= 1):
		return fmt.Errorf("rul.learning_rate: must be in (0, 1], got %v", c.LearningRate)
	case !(c.Subsample > 0 && c.Subsample <= 1):
		return fmt.Errorf("rul.subsample: must be in (0, 1], got %v", c.Subsample)
	case !(c.FeatureFraction > 0 && c.FeatureFraction <= 1):
		return fmt.Errorf("rul.feature_fraction: must be in (0, 1], got %v", c.FeatureFraction)
	case c.MinLeaf < 1:
		return fmt.Errorf("rul.min_leaf: must be positive, got %d", c.MinLeaf)
	case !(c.Lambda >= 0) || math.IsInf(c.Lambda, 0):
		return fmt.Errorf("rul.lambda: must not be negative, got %v", c.Lambda)
	case c.Bins < 2 || c.Bins > 256:
		return fmt.Errorf("rul.bins: must be 2 to 256, got %d", c.Bins)
	case c.Workers < 0:
		return fmt.Errorf("rul.workers: must not be negative, got %d", c.Workers)
	}
	return nil
}

var (
	// ErrTooFewUnits: Train needs at least two units.
	ErrTooFewUnits = errors.New("rul: too few training units")
	// ErrUntrained: a Model neither trained nor decoded.
	ErrUntrained = errors.New("rul: model not trained")
)

// Model predicts the remaining useful life of a unit from its history. It
// is safe for concurrent use once trained or decoded.
type Model struct {
	cap      float64
	channels []string  // kept, in the order of the first training unit
	mean     []float64 // of each kept channel over the training observations
	scale    []float64 // its standard deviation
	// The health index, an input beside the channels: a least-squares fit
	// of the capped remaining life on the standardised channels.
	hiWeights []float64
	hiBias    float64
	members   []booster
}

// Channels returns the names of the channels the model uses, which every
// history given to Predict must have.
func (m *Model) Channels() []string { return append([]string(nil), m.channels...) }

// Cap returns the cap of the target: the longest remaining life the model
// predicts.
func (m *Model) Cap() float64 { return m.cap }

// Train learns a model from run-to-failure histories: each unit's last
// observation is its failure, so that its remaining life at an observation
// is the last Time minus that observation's Time, capped at cfg.Cap. Every
// unit must have the channels of the first (others are ignored).
//
// Channels are kept when they vary and their absolute correlation with the
// capped remaining life is at least cfg.MinCorrelation. Every observation of
// every unit is a training example, with the trailing-window features of
// the history up to it.
//
// Training takes seconds on C-MAPSS-sized fleets; it stops early, with
// ctx's error, when ctx is done.
func Train(ctx context.Context, units []Unit, cfg Config) (*Model, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if len(units) < 2 {
		return nil, fmt.Errorf("%w: %d, want at least 2", ErrTooFewUnits, len(units))
	}
	names := units[0].Channels
	colsOf := make([][]int, len(units))
	var y []float64
	for i, u := range units {
		if err := u.check(); err != nil {
			return nil, err
		}
		cols, err := u.columns(names)
		if err != nil {
			return nil, err
		}
		colsOf[i] = cols
		y = append(y, targets(u, cfg.Cap)...)
	}

	m := &Model{cap: cfg.Cap}
	if err := m.selectChannels(units, colsOf, names, y, cfg.MinCorrelation); err != nil {
		return nil, err
	}
	// The kept channels' columns in each unit; they are among names,
	// which every unit has.
	for i, u := range units {
		colsOf[i], _ = u.columns(m.channels)
	}
	m.fitHealthIndex(units, colsOf, y)

	// The feature matrix, column by column.
	nf := numFeatures(len(m.channels) + 1)
	cols := make([][]float64, nf)
	for f := range cols {
		cols[f] = make([]float64, 0, len(y))
	}
	x := make([]float64, nf)
	for i, u := range units {
		s := m.series(u, colsOf[i])
		for t := range u.Observations {
			s.featuresAt(t, x)
			for f, v := range x {
				cols[f] = append(cols[f], v)
			}
		}
	}
	d := newDataset(cols, cfg.Bins)

	p := boostParams{
		trees: cfg.Trees, depth: cfg.Depth, minLeaf: cfg.MinLeaf,
		rate: cfg.LearningRate, subsample: cfg.Subsample,
		colsample: cfg.FeatureFraction, lambda: cfg.Lambda,
		workers: cfg.Workers,
	}
	if p.workers == 0 {
		p.workers = runtime.GOMAXPROCS(0)
	}
	for e := range cfg.Ensemble {
		rng := rand.New(rand.NewPCG(cfg.Seed, uint64(e)))
		b, err := fitBooster(ctx, d, y, p, rng)
		if err != nil {
			return nil, err
		}
		m.members = append(m.members, b)
	}
	return m, nil
}

// targets returns the capped remaining life at each observation of u.
func targets(u Unit, limit float64) []float64 {
	end := u.Observations[len(u.Observations)-1].Time
	y := make([]float64, len(u.Observations))
	for t, o := range u.Observations {
		y[t] = min(limit, end-o.Time)
	}
	return y
}

// selectChannels keeps the channels that vary and follow the remaining
// life y, and learns their mean and scale. NaN readings are left out.
func (m *Model) selectChannels(units []Unit, colsOf [][]int, names []string, y []float64, minCorr float64) error {
	for j, name := range names {
		var n, sx, sy, sxx, syy, sxy float64
		row := 0
		for i, u := range units {
			for _, o := range u.Observations {
				v, t := o.Values[colsOf[i][j]], y[row]
				row++
				if math.IsNaN(v) || math.IsInf(v, 0) {
					continue
				}
				n++
				sx += v
				sy += t
				sxx += v * v
				syy += t * t
				sxy += v * t
			}
		}
		if n < 2 {
			continue
		}
		mean := sx / n
		vx := sxx/n - mean*mean
		vy := syy/n - (sy/n)*(sy/n)
		// A channel that is constant but for rounding is constant.
		if vx <= 1e-12*(1+mean*mean) || vy <= 0 {
			continue
		}
		corr := (sxy/n - mean*sy/n) / math.Sqrt(vx*vy)
		// NaN: readings so large that their moments overflow.
		if math.IsNaN(corr) || math.Abs(corr) < minCorr || math.IsInf(vx, 0) {
			continue
		}
		m.channels = append(m.channels, name)
		m.mean = append(m.mean, mean)
		m.scale = append(m.scale, math.Sqrt(vx))
	}
	if len(m.channels) == 0 {
		return fmt.Errorf("%w: no channel varies with the remaining life (min_correlation %v)", ErrChannel, minCorr)
	}
	return nil
}

// fitHealthIndex fits the health index by ridge regression of y on the
// standardised channels.
func (m *Model) fitHealthIndex(units []Unit, colsOf [][]int, y []float64) {
	k := len(m.channels) + 1 // and the intercept, last
	ata := make([]float64, k*k)
	atb := make([]float64, k)
	a := make([]float64, k)
	row := 0
	for i, u := range units {
		z := m.standardise(u, colsOf[i])
		for t := range u.Observations {
			for c := range m.channels {
				a[c] = z[c][t]
			}
			a[k-1] = 1
			for p := range k {
				atb[p] += a[p] * y[row]
				for q := range k {
					ata[p*k+q] += a[p] * a[q]
				}
			}
			row++
		}
	}
	// A small ridge keeps collinear channels solvable; not on the
	// intercept.
	for p := range k - 1 {
		ata[p*k+p] += 1e-3 * float64(row)
	}
	w := solve(ata, atb, k)
	m.hiWeights, m.hiBias = w[:k-1], w[k-1]
}

// solve solves the symmetric positive definite system a x = b of order k
// by Gaussian elimination with partial pivoting; a and b are overwritten.
func solve(a, b []float64, k int) []float64 {
	for c := range k {
		p := c
		for r := c + 1; r < k; r++ {
			if math.Abs(a[r*k+c]) > math.Abs(a[p*k+c]) {
				p = r
			}
		}
		if a[p*k+c] == 0 {
			continue
		}
		for j := range k {
			a[c*k+j], a[p*k+j] = a[p*k+j], a[c*k+j]
		}
		b[c], b[p] = b[p], b[c]
		for r := c + 1; r < k; r++ {
			f := a[r*k+c] / a[c*k+c]
			for j := c; j < k; j++ {
				a[r*k+j] -= f * a[c*k+j]
			}
			b[r] -= f * b[c]
		}
	}
	x := make([]float64, k)
	for c := k - 1; c >= 0; c-- {
		if a[c*k+c] == 0 {
			continue
		}
		s := b[c]
		for j := c + 1; j < k; j++ {
			s -= a[c*k+j] * x[j]
		}
		x[c] = s / a[c*k+c]
	}
	return x
}

// standardise returns the kept channels of u, at its columns cols,
// standardised; a missing reading (NaN, ±Inf) repeats the last one, or is
// the training mean (0) before the first.
func (m *Model) standardise(u Unit, cols []int) [][]float64 {
	z := make([][]float64, len(cols))
	for c, j := range cols {
		zc := make([]float64, len(u.Observations))
		last := 0.0
		for t, o := range u.Observations {
			v := o.Values[j]
			if !math.IsNaN(v) && !math.IsInf(v, 0) {
				last = (v - m.mean[c]) / m.scale[c]
			}
			zc[t] = last
		}
		z[c] = zc
	}
	return z
}

// series returns the inputs of u: its standardised kept channels, at its
// columns cols, and the health index.
func (m *Model) series(u Unit, cols []int) *series {
	z := m.standardise(u, cols)
	hi := make([]float64, len(u.Observations))
	for t := range hi {
		s := m.hiBias
		for c, w := range m.hiWeights {
			s += w * z[c][t]
		}
		hi[t] = s
	}
	times := make([]float64, len(u.Observations))
	for t, o := range u.Observations {
		times[t] = o.Time
	}
	return newSeries(times, append(z, hi))
}

// Predict returns the remaining useful life of a unit after the last of
// its observations so far, between 0 and the cap. The unit needs the
// model's channels (by name, in any order; others are ignored); its first
// observation should be the start of its life, since Time is its age.
func (m *Model) Predict(history Unit) (float64, error) {
	if len(m.members) == 0 {
		return 0, ErrUntrained
	}
	if err := history.check(); err != nil {
		return 0, err
	}
	cols, err := history.columns(m.channels)
	if err != nil {
		return 0, err
	}
	s := m.series(history, cols)
	x := make([]float64, numFeatures(len(s.z)))
	s.featuresAt(len(history.Observations)-1, x)
	return m.predict(x), nil
}

// predict averages the members' predictions for the features x and clamps
// the result to [0, cap].
func (m *Model) predict(x []float64) float64 {
	var sum float64
	for i := range m.members {
		sum += m.members[i].predict(x)
	}
	return min(m.cap, max(0, sum/float64(len(m.members))))
}
