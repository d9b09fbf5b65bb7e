package main

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestBucketRoundTrip(t *testing.T) {
	for _, v := range []int64{0, 1, 255, 256, 257, 511, 512, 1000, 123456, 1e9, 3.6e12} {
		i := bucketOf(v)
		lo, w := bucketRange(i)
		if v < lo || v >= lo+w {
			t.Errorf("bucketOf(%d) = %d covering [%d, %d), want it to hold %d", v, i, lo, lo+w, v)
		}
		if float64(w)/float64(max(lo, 1)) > 1.0/128 && v >= linearTop {
			t.Errorf("bucket %d: width %d over lower bound %d is above 1/128", i, w, lo)
		}
	}
}

func TestHistogramQuantiles(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	tests := []struct {
		name string
		gen  func() time.Duration
	}{
		{"uniform 0-10ms", func() time.Duration { return time.Duration(rng.Int64N(int64(10 * time.Millisecond))) }},
		{"exponential mean 1ms", func() time.Duration { return time.Duration(rng.ExpFloat64() * float64(time.Millisecond)) }},
		{"lognormal around 200µs", func() time.Duration {
			return time.Duration(math.Exp(rng.NormFloat64()*1.5) * float64(200*time.Microsecond))
		}},
		{"bimodal 100µs and 2s", func() time.Duration {
			if rng.IntN(3) == 0 {
				return 2*time.Second + time.Duration(rng.Int64N(int64(time.Second)))
			}
			return time.Duration(rng.Int64N(int64(100 * time.Microsecond)))
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var h histogram
			exact := make([]time.Duration, 200_000)
			for i := range exact {
				exact[i] = tc.gen()
				h.Record(exact[i])
			}
			slices.Sort(exact)
			for _, q := range []float64{0.5, 0.9, 0.99, 0.999, 1} {
				want := exact[int(math.Ceil(q*float64(len(exact))))-1]
				got := h.Quantile(q)
				if rel := math.Abs(float64(got-want)) / float64(want); rel > 0.01 {
					t.Errorf("Quantile(%v) = %v, want %v within 1%% (off by %.2f%%)", q, got, want, 100*rel)
				}
			}
			if h.Max() != exact[len(exact)-1] || h.Count() != uint64(len(exact)) {
				t.Errorf("Max, Count = %v, %d; want %v, %d", h.Max(), h.Count(), exact[len(exact)-1], len(exact))
			}
		})
	}
}

func TestHistogramEmpty(t *testing.T) {
	var h histogram
	if got := h.Quantile(0.99); got != 0 {
		t.Errorf("Quantile(0.99) of nothing = %v, want 0", got)
	}
}
