package main

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// histogram is a log-linear latency histogram in the manner of HdrHistogram:
// values below 256 ns have a bucket each; above that, every power of two is
// cut into 128 equal buckets. A bucket is at most 1/128 of its lower bound
// wide and a percentile is read as the bucket's midpoint, so a reported
// value is within 1/256 (0.4 %) of a recorded one. 4,608 buckets cover
// 1 ns to about 2^43 ns (2.4 h) in 36 KiB, whatever the number of samples:
// 10,000 devices at 1 report/s for an hour cost no more than one device.
//
// Record is safe for concurrent use (atomic counters); read the
// percentiles once the writers have stopped.
type histogram struct {
	counts [histBuckets]atomic.Uint64
	n      atomic.Uint64
	sum    atomic.Int64 // ns
	max    atomic.Int64 // ns
}

const (
	subBits     = 7
	subCount    = 1 << subBits // buckets per power of two
	linearTop   = 2 * subCount // values below this are exact
	maxShift    = 35
	histBuckets = linearTop + maxShift*subCount
)

// bucketOf returns the bucket of a value in ns.
func bucketOf(v int64) int {
	if v < linearTop {
		return int(max(v, 0))
	}
	shift := bits.Len64(uint64(v)) - (subBits + 1) // v>>shift is in [128, 256)
	if shift > maxShift {
		return histBuckets - 1
	}
	return linearTop + (shift-1)*subCount + int(v>>shift) - subCount
}

// bucketRange returns the lowest value of bucket i and its width, in ns.
func bucketRange(i int) (lo, width int64) {
	if i < linearTop {
		return int64(i), 1
	}
	shift := (i-linearTop)/subCount + 1
	top := int64((i-linearTop)%subCount + subCount)
	return top << shift, 1 << shift
}

// Record adds one latency.
func (h *histogram) Record(d time.Duration) {
	v := int64(d)
	h.counts[bucketOf(v)].Add(1)
	h.n.Add(1)
	h.sum.Add(v)
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			return
		}
	}
}

// Count returns the number of recorded values.
func (h *histogram) Count() uint64 { return h.n.Load() }

// Max returns the largest recorded value, exactly.
func (h *histogram) Max() time.Duration { return time.Duration(h.max.Load()) }

// Mean returns the mean of the recorded values, exactly.
func (h *histogram) Mean() time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	return time.Duration(h.sum.Load() / int64(n))
}

// Quantile returns the value at quantile q (0 < q ≤ 1): the smallest
// recorded value with at least q of all values at or below it, to within
// 0.4 %. It returns 0 for an empty histogram.
func (h *histogram) Quantile(q float64) time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(n)))
	rank = min(max(rank, 1), n)
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			lo, w := bucketRange(i)
			v := lo + w/2
			if w == 1 {
				v = lo
			}
			return time.Duration(min(v, h.max.Load()))
		}
	}
	return h.Max()
}
