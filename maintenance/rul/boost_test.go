package rul

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestQuantileEdges(t *testing.T) {
	tests := []struct {
		name    string
		sorted  []float64
		maxBins int
		want    []float64
	}{
		{"constant", []float64{2, 2, 2, 2}, 8, nil},
		{"few values", []float64{1, 1, 2, 4, 4, 4}, 8, []float64{1.5, 3}},
		{"quantiles", []float64{0, 1, 2, 3, 4, 5, 6, 7}, 4, []float64{1.5, 3.5, 5.5}},
		{"two bins", []float64{0, 0, 0, 1, 9, 9}, 2, []float64{0.5}},
		{"ties", []float64{0, 1, 1, 1, 1, 1, 1, 2}, 4, []float64{0.5, 1.5}},
	}
	for _, tc := range tests {
		if got := quantileEdges(tc.sorted, tc.maxBins); !slices.Equal(got, tc.want) {
			t.Errorf("%s: quantileEdges(%v, %d) = %v, want %v", tc.name, tc.sorted, tc.maxBins, got, tc.want)
		}
	}
}

func fit(t *testing.T, cols [][]float64, y []float64, p boostParams, seed uint64) booster {
	t.Helper()
	b, err := fitBooster(context.Background(), newDataset(cols, 64), y, p, rand.New(rand.NewPCG(seed, 0)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A single stump with no shrinkage finds a step exactly.
func TestBoostStump(t *testing.T) {
	var x, y []float64
	for i := range 400 {
		v := float64(i%20) / 20
		x = append(x, v)
		if v < 0.3 {
			y = append(y, 1)
		} else {
			y = append(y, 5)
		}
	}
	b := fit(t, [][]float64{x}, y, boostParams{trees: 1, depth: 1, minLeaf: 1, rate: 1, subsample: 1, colsample: 1}, 1)
	if len(b.trees) != 1 || len(b.trees[0]) != 3 {
		t.Fatalf("stump = %+v, want one tree of 3 nodes", b.trees)
	}
	root := b.trees[0][0]
	if root.feature != 0 || root.threshold != 0.275 {
		t.Errorf("stump splits feature %d at %v, want 0 at 0.275 (between 0.25 and 0.3)", root.feature, root.threshold)
	}
	for _, x := range []float64{0, 0.25, 0.3, 0.95} {
		want := 5.0
		if x < 0.3 {
			want = 1
		}
		if got := b.predict([]float64{x}); math.Abs(got-want) > 1e-9 {
			t.Errorf("stump(%v) = %v, want %v", x, got, want)
		}
	}
}

// syntheticRegression is y = 3 x0 + 10 [x1 > 0.5] + 2 x2 x3 + noise,
// with x4 irrelevant. x1 takes ten values, so that a bin edge falls on the
// step: with 64 quantile bins of a continuous x1, the bin around 0.5
// would hold points of both sides, off by 5 each.
func syntheticRegression(n int, seed uint64) (cols [][]float64, y []float64) {
	rng := rand.New(rand.NewPCG(seed, 7))
	cols = make([][]float64, 5)
	for range n {
		var x [5]float64
		for f := range x {
			x[f] = rng.Float64()
			if f == 1 {
				x[f] = float64(rng.IntN(10)) / 10
			}
			cols[f] = append(cols[f], x[f])
		}
		v := 3*x[0] + 2*x[2]*x[3] + 0.1*rng.NormFloat64()
		if x[1] > 0.5 {
			v += 10
		}
		y = append(y, v)
	}
	return cols, y
}

func TestBoostSynthetic(t *testing.T) {
	cols, y := syntheticRegression(4000, 1)
	p := boostParams{trees: 300, depth: 4, minLeaf: 10, rate: 0.1, subsample: 0.8, colsample: 0.8, lambda: 1, workers: 2}
	b := fit(t, cols, y, p, 1)

	// On fresh data, the error is close to the noise (0.1); a model that
	// missed a term would be off by more than 0.3 (the interaction's
	// standard deviation is 0.4, the step's 5).
	tc, ty := syntheticRegression(1000, 2)
	var sq float64
	x := make([]float64, 5)
	for i := range ty {
		for f := range x {
			x[f] = tc[f][i]
		}
		d := b.predict(x) - ty[i]
		sq += d * d
	}
	rmse := math.Sqrt(sq / float64(len(ty)))
	t.Logf("RMSE on fresh data %.3f", rmse)
	if rmse > 0.25 {
		t.Errorf("boosted trees on fresh data: RMSE %.3f, want < 0.25", rmse)
	}

	// The irrelevant feature hardly moves the prediction.
	var moved float64
	for i := range 100 {
		for f := range 4 {
			x[f] = tc[f][i]
		}
		x[4] = 0.1
		lo := b.predict(x)
		x[4] = 0.9
		moved += math.Abs(b.predict(x) - lo)
	}
	moved /= 100
	t.Logf("x4 moves the prediction by %.3f", moved)
	if moved > 0.1 {
		t.Errorf("boosted trees: x4 from 0.1 to 0.9 moves the prediction by %.3f on average, want < 0.1", moved)
	}
}

func TestBoostDeterministic(t *testing.T) {
	cols, y := syntheticRegression(1000, 3)
	p := boostParams{trees: 30, depth: 3, minLeaf: 5, rate: 0.1, subsample: 0.5, colsample: 0.6, lambda: 1}
	one := p
	one.workers = 1
	two := p
	two.workers = 2
	a, b, c := fit(t, cols, y, one, 5), fit(t, cols, y, two, 5), fit(t, cols, y, one, 6)
	x := []float64{0.2, 0.7, 0.4, 0.9, 0.1}
	if a.predict(x) != b.predict(x) {
		t.Errorf("same seed, 1 and 2 workers: %v != %v", a.predict(x), b.predict(x))
	}
	if a.predict(x) == c.predict(x) {
		t.Errorf("seeds 5 and 6 give the same prediction %v", a.predict(x))
	}
}

func TestBoostCanceled(t *testing.T) {
	cols, y := syntheticRegression(100, 3)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := fitBooster(ctx, newDataset(cols, 16), y, boostParams{trees: 10, depth: 2, minLeaf: 1, rate: 0.1, subsample: 1, colsample: 1}, rand.New(rand.NewPCG(1, 0)))
	if err != context.Canceled {
		t.Errorf("fitBooster with a canceled context = %v, want %v", err, context.Canceled)
	}
}
