package agent

import (
	"math/rand/v2"
	"time"
)

// backoff is exponential backoff with full jitter: the n-th consecutive
// failure waits a uniformly random time in [0, min(max, min*2^n)). Full
// jitter spreads a fleet that lost its server at the same instant, so that
// it does not come back at the same instant either.
type backoff struct {
	min, max time.Duration
	failures int
	rnd      *rand.Rand
}

// next returns the wait after one more failure.
func (b *backoff) next() time.Duration {
	ceiling := b.min
	for i := 0; i < b.failures && ceiling < b.max; i++ {
		ceiling *= 2
	}
	ceiling = min(ceiling, b.max)
	b.failures++
	return time.Duration(b.rnd.Int64N(int64(ceiling)) + 1)
}

// reset forgets the failures after a success.
func (b *backoff) reset() { b.failures = 0 }

// jitter returns d plus or minus up to a fifth of it, for the long waits
// (refusal, Max-Age) that many devices may start at the same time.
func jitter(rnd *rand.Rand, d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	spread := int64(d) / 5
	if spread == 0 {
		return d
	}
	return d + time.Duration(rnd.Int64N(2*spread+1)-spread)
}
