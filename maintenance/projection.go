package maintenance

import (
	"math"
	"slices"
	"time"
)

// MaxSamples bounds the samples a History keeps per device.
const MaxSamples = 48

// Sample is a device's cumulative usage (hours) at a time, with the
// indicators its plan's conditions watch, in the order of Model.Indicators.
type Sample struct {
	Time       time.Time
	UsageHours float64
	Values     []float64 // NaN: not reported
}

// History is a bounded record of a device's samples. When it is full, every
// second sample of the older half goes, so the record spans a long time at a
// coarser grain: a rate needs a long baseline more than fine detail.
// Samples change only through Add.
type History struct {
	Samples []Sample
	// rate caches the Theil-Sen estimate of Samples, which costs O(n²):
	// the due list asks for it far more often than samples arrive.
	rate *Rate
}

// Add appends a sample taken at least minGap after the last one. A usage
// below the last one (the server's counter never goes down, but a history
// restored from older data might) starts the history again.
func (h *History) Add(s Sample, minGap time.Duration) {
	h.rate = nil
	if n := len(h.Samples); n > 0 {
		last := h.Samples[n-1]
		if s.Time.Sub(last.Time) < minGap {
			return
		}
		if s.UsageHours < last.UsageHours {
			h.Samples = h.Samples[:0]
		}
	}
	if len(h.Samples) >= MaxSamples {
		half := len(h.Samples) / 2
		kept := h.Samples[:0]
		for i, x := range h.Samples {
			if i >= half || i%2 == 0 {
				kept = append(kept, x)
			}
		}
		h.Samples = kept
	}
	h.Samples = append(h.Samples, s)
}

// Rate is a usage rate in hours of use per day of calendar, with a band.
type Rate struct {
	PerDay, Low, High float64
	// Samples is how many samples it rests on; 0: the lifetime average.
	Samples int
}

// EstimateRate estimates the usage rate from the history by the Theil-Sen
// estimator: the median of the slopes between every pair of samples, which
// a few odd samples (a gap, a burst) do not move; the band is the 10th and
// 90th percentile of those slopes. With fewer than three samples over less
// than a day it falls back to the lifetime average (usage / age), with a
// band of half to twice that.
func EstimateRate(h *History, usageHours float64, age time.Duration) Rate {
	s := h.Samples
	if len(s) >= 3 && s[len(s)-1].Time.Sub(s[0].Time) >= 24*time.Hour {
		if h.rate != nil {
			return *h.rate
		}
		slopes := make([]float64, 0, len(s)*(len(s)-1)/2)
		for i := range s {
			for j := i + 1; j < len(s); j++ {
				days := s[j].Time.Sub(s[i].Time).Hours() / 24
				if days > 0 {
					slopes = append(slopes, (s[j].UsageHours-s[i].UsageHours)/days)
				}
			}
		}
		slices.Sort(slopes)
		h.rate = &Rate{PerDay: quantile(slopes, 0.5), Low: quantile(slopes, 0.1), High: quantile(slopes, 0.9), Samples: len(s)}
		return *h.rate
	}
	days := age.Hours() / 24
	if days < 1 {
		days = 1
	}
	r := usageHours / days
	return Rate{PerDay: r, Low: r / 2, High: r * 2}
}

// quantile of sorted values, linearly interpolated.
func quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	pos := q * float64(len(sorted)-1)
	lo := int(math.Floor(pos))
	hi := min(lo+1, len(sorted)-1)
	return sorted[lo] + (sorted[hi]-sorted[lo])*(pos-float64(lo))
}

// trend is the least-squares slope of indicator i per day over the
// history, and whether there were enough points.
func trend(h *History, i int) (perDay float64, ok bool) {
	var n, st, sv, stt, stv float64
	if len(h.Samples) == 0 {
		return 0, false
	}
	t0 := h.Samples[0].Time
	for _, s := range h.Samples {
		if i >= len(s.Values) || math.IsNaN(s.Values[i]) {
			continue
		}
		t := s.Time.Sub(t0).Hours() / 24
		v := s.Values[i]
		n, st, sv, stt, stv = n+1, st+t, sv+v, stt+t*t, stv+t*v
	}
	den := n*stt - st*st
	if n < 3 || den <= 0 {
		return 0, false
	}
	return (n*stv - st*sv) / den, true
}
