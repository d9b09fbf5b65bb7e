package agent

import (
	"context"
	"sync"
	"time"
)

// ticker drives the periodic work of go-coap client connections
// (retransmissions, expiry) from one goroutine, however many connections
// there are: a simulator of ten thousand devices would otherwise run ten
// thousand goroutines that do nothing but tick. Whoever starts run owns
// that goroutine: Agent.Run for a lone agent, Simulator.Run for a fleet.
type ticker struct {
	every time.Duration

	mu    sync.Mutex
	next  uint64
	funcs map[uint64]tickFunc
}

type tickFunc struct {
	stop <-chan struct{}
	f    func(time.Time) bool
}

func newTicker(every time.Duration) *ticker {
	return &ticker{every: every, funcs: map[uint64]tickFunc{}}
}

// runner returns a go-coap periodic runner (options.WithPeriodicRunner)
// whose functions run on t until they return false or stop is closed.
func (t *ticker) runner(stop <-chan struct{}) func(func(time.Time) bool) {
	return func(f func(time.Time) bool) {
		t.mu.Lock()
		defer t.mu.Unlock()
		t.next++
		t.funcs[t.next] = tickFunc{stop: stop, f: f}
	}
}

// run ticks until ctx is done.
func (t *ticker) run(ctx context.Context) {
	tk := time.NewTicker(t.every)
	defer tk.Stop()
	var due []uint64
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tk.C:
			due = t.tick(now, due[:0])
		}
	}
}

// tick calls every registered function once; due is scratch space, returned
// for the next tick.
func (t *ticker) tick(now time.Time, due []uint64) []uint64 {
	t.mu.Lock()
	for id := range t.funcs {
		due = append(due, id)
	}
	t.mu.Unlock()
	for _, id := range due {
		t.mu.Lock()
		tf, ok := t.funcs[id]
		t.mu.Unlock()
		if !ok {
			continue
		}
		keep := true
		select {
		case <-tf.stop:
			keep = false
		default:
			keep = tf.f(now)
		}
		if !keep {
			t.mu.Lock()
			delete(t.funcs, id)
			t.mu.Unlock()
		}
	}
	return due
}

// len is the number of registered functions.
func (t *ticker) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.funcs)
}
