package rul

import (
	"fmt"
	"math"
)

// The features of an observation are computed from the unit's inputs (its
// standardised selected channels and the health index) over trailing
// windows of observations ending at it, so that a feature at observation t
// of a training unit is what Predict computes for the history that ends at
// t. Changing them changes what a stored model means: bump modelVersion.
var (
	meanWindows  = []int{5, 10, 20, 30, 50}
	slopeWindows = []int{10, 20, 30, 50}
	ewmaAlphas   = []float64{0.1, 0.3}
)

// extremaWindow is the window of the minimum, maximum and standard
// deviation features.
const extremaWindow = 30

// baselineWindow is the number of first observations of a unit whose mean
// is its baseline. The drift feature, the slower moving average
// (ewmaAlphas[0]) minus the baseline, takes out the unit's own initial offset (units start with
// different wear and manufacturing variation), which the other features
// cannot: trees do not subtract one feature from another.
const baselineWindow = 10

// perInput is the number of features of each input: last value, means,
// slopes, moving averages, minimum, maximum, standard deviation, drift.
var perInput = 1 + len(meanWindows) + len(slopeWindows) + len(ewmaAlphas) + 4

// numFeatures is the number of features of units with the given number of
// inputs: perInput for each, then the unit's age.
func numFeatures(inputs int) int { return inputs*perInput + 1 }

// featureNames names the features of inputs, in order.
func featureNames(inputs []string) []string {
	var names []string
	for _, in := range inputs {
		names = append(names, in+".last")
		for _, w := range meanWindows {
			names = append(names, fmt.Sprintf("%s.mean%d", in, w))
		}
		for _, w := range slopeWindows {
			names = append(names, fmt.Sprintf("%s.slope%d", in, w))
		}
		for _, a := range ewmaAlphas {
			names = append(names, fmt.Sprintf("%s.ewma%g", in, a))
		}
		names = append(names,
			fmt.Sprintf("%s.min%d", in, extremaWindow),
			fmt.Sprintf("%s.max%d", in, extremaWindow),
			fmt.Sprintf("%s.std%d", in, extremaWindow),
			in+".drift")
	}
	return append(names, "age")
}

// series is a unit's inputs, ready for features: times[t], z[k][t] for
// input k, and the moving averages ewma[k][a][t] for ewmaAlphas[a].
type series struct {
	times []float64
	z     [][]float64
	ewma  [][][]float64
}

// newSeries computes the moving averages of the inputs z observed at times.
func newSeries(times []float64, z [][]float64) *series {
	s := &series{times: times, z: z, ewma: make([][][]float64, len(z))}
	for k, zk := range z {
		s.ewma[k] = make([][]float64, len(ewmaAlphas))
		for a, alpha := range ewmaAlphas {
			e := make([]float64, len(zk))
			for t, v := range zk {
				if t == 0 {
					e[t] = v
				} else {
					e[t] = alpha*v + (1-alpha)*e[t-1]
				}
			}
			s.ewma[k][a] = e
		}
	}
	return s
}

// featuresAt writes the features of observation t to dst, which has
// numFeatures(len(s.z)) elements.
func (s *series) featuresAt(t int, dst []float64) {
	i := 0
	for k, z := range s.z {
		dst[i] = z[t]
		i++
		for _, w := range meanWindows {
			lo := max(0, t-w+1)
			var sum float64
			for _, v := range z[lo : t+1] {
				sum += v
			}
			dst[i] = sum / float64(t+1-lo)
			i++
		}
		for _, w := range slopeWindows {
			dst[i] = slope(s.times[max(0, t-w+1):t+1], z[max(0, t-w+1):t+1])
			i++
		}
		for a := range ewmaAlphas {
			dst[i] = s.ewma[k][a][t]
			i++
		}
		win := z[max(0, t-extremaWindow+1) : t+1]
		lo, hi, sum, sq := win[0], win[0], 0.0, 0.0
		for _, v := range win {
			lo, hi = min(lo, v), max(hi, v)
			sum += v
			sq += v * v
		}
		n := float64(len(win))
		mean := sum / n
		dst[i], dst[i+1], dst[i+2] = lo, hi, math.Sqrt(max(0, sq/n-mean*mean))
		i += 3
		base := z[:min(t+1, baselineWindow)]
		var bsum float64
		for _, v := range base {
			bsum += v
		}
		dst[i] = s.ewma[k][0][t] - bsum/float64(len(base))
		i++
	}
	dst[i] = s.times[t]
}

// slope is the least-squares slope of y over x; 0 for fewer than two
// points.
func slope(x, y []float64) float64 {
	n := float64(len(x))
	if len(x) < 2 {
		return 0
	}
	var mx, my float64
	for i := range x {
		mx += x[i]
		my += y[i]
	}
	mx, my = mx/n, my/n
	var sxx, sxy float64
	for i := range x {
		dx := x[i] - mx
		sxx += dx * dx
		sxy += dx * (y[i] - my)
	}
	if sxx == 0 {
		return 0
	}
	return sxy / sxx
}
