package etcdview

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/medfleet/medfleet/internal/etcdtest"
)

func TestViewFollowsWrites(t *testing.T) {
	e := etcdtest.Start(t, "")
	ctx := t.Context()
	if _, err := e.Client.Put(ctx, "/p/a", "1"); err != nil {
		t.Fatal(err)
	}
	v := New(e.Client, "/p/", func(b []byte) (string, error) { return string(b), nil }, slog.New(slog.DiscardHandler))
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- v.Run(rctx) }()
	defer func() { cancel(); <-done }()
	<-v.Loaded()
	if got, _, ok := v.Get("a"); !ok || got != "1" {
		t.Fatalf("Get(a) = %q, %v after load, want 1", got, ok)
	}
	if _, err := e.Client.Put(ctx, "/p/b", "2"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Client.Delete(ctx, "/p/a"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Client.Put(ctx, "/other", "x"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, _, hasA := v.Get("a")
		b, rev, hasB := v.Get("b")
		if !hasA && hasB && b == "2" {
			// A stale write (an older revision) must not replace the watched one.
			v.Put("b", "stale", rev-1)
			if got, _, _ := v.Get("b"); got != "2" {
				t.Fatalf("Get(b) = %q after a stale Put, want 2", got)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("view did not follow the writes: a=%v b=%q,%v", hasA, b, hasB)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if v.Len() != 1 {
		t.Errorf("Len = %d, want 1 (keys outside the prefix are not seen)", v.Len())
	}
}
