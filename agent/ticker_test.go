package agent

import (
	"context"
	"sync"
	"testing"
	"time"
)

func TestTicker(t *testing.T) {
	tk := newTicker(time.Hour)
	var calls [3]int
	stop := make(chan struct{})
	never := make(chan struct{})
	tk.runner(never)(func(time.Time) bool { calls[0]++; return true })
	tk.runner(never)(func(time.Time) bool { calls[1]++; return calls[1] < 2 })
	tk.runner(stop)(func(time.Time) bool { calls[2]++; return true })

	due := tk.tick(time.Now(), nil)
	close(stop)
	for range 3 {
		due = tk.tick(time.Now(), due[:0])
	}
	if want := [3]int{4, 2, 1}; calls != want {
		t.Errorf("calls = %v, want %v", calls, want)
	}
	if n := tk.len(); n != 1 {
		t.Errorf("len() = %d, want 1 (the others returned false or were stopped)", n)
	}
}

func TestTickerRunStops(t *testing.T) {
	tk := newTicker(time.Millisecond)
	ticked := make(chan struct{}, 1)
	tk.runner(make(chan struct{}))(func(time.Time) bool {
		select {
		case ticked <- struct{}{}:
		default:
		}
		return true
	})
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() { tk.run(ctx) })
	select {
	case <-ticked:
	case <-time.After(5 * time.Second):
		t.Fatal("no tick within 5 s")
	}
	cancel()
	wg.Wait()
}
