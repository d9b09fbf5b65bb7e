package agent

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	b := backoff{min: time.Second, max: time.Minute, rnd: rand.New(rand.NewPCG(1, 2))}
	ceilings := []time.Duration{1, 2, 4, 8, 16, 32, 60, 60, 60}
	for round := range 2 {
		for i, c := range ceilings {
			ceiling := c * time.Second
			if got := b.next(); got <= 0 || got > ceiling {
				t.Fatalf("round %d, failure %d: next() = %v, want in (0, %v]", round, i+1, got, ceiling)
			}
		}
		b.reset()
	}
}

func TestJitter(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 1000 {
		if got := jitter(r, 5*time.Minute); got < 4*time.Minute || got > 6*time.Minute {
			t.Fatalf("jitter(5m) = %v, want within 20 %%", got)
		}
	}
	if got := jitter(r, 0); got != 0 {
		t.Errorf("jitter(0) = %v, want 0", got)
	}
}
