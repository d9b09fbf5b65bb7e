// Package etcdview keeps every key under an etcd prefix in memory, decoded,
// and follows changes with a watch: the read side of small, often-read
// registries such as credentials and tokens, which every request consults
// and which several medfleetd replicas may change.
package etcdview

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"
)

// View is the decoded contents of one prefix. Keys in its methods are
// relative to the prefix.
type View[T any] struct {
	client *clientv3.Client
	prefix string
	decode func([]byte) (T, error)
	log    *slog.Logger

	mu     sync.RWMutex
	items  map[string]item[T]
	loaded chan struct{}
	once   sync.Once
}

type item[T any] struct {
	value T
	rev   int64 // ModRevision
}

// New builds a view; it reads nothing until Run.
func New[T any](client *clientv3.Client, prefix string, decode func([]byte) (T, error), log *slog.Logger) *View[T] {
	return &View[T]{client: client, prefix: prefix, decode: decode, log: log, items: map[string]item[T]{}, loaded: make(chan struct{})}
}

// Load reads the prefix once. Run calls it; a caller that must see the
// contents before it serves calls it first.
func (v *View[T]) Load(ctx context.Context) (rev int64, err error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := v.client.Get(ctx, v.prefix, clientv3.WithPrefix())
	if err != nil {
		return 0, fmt.Errorf("etcdview %s: %w", v.prefix, err)
	}
	items := make(map[string]item[T], len(resp.Kvs))
	for _, kv := range resp.Kvs {
		val, err := v.decode(kv.Value)
		if err != nil {
			v.log.Error("undecodable value ignored", "key", string(kv.Key), "err", err)
			continue
		}
		items[strings.TrimPrefix(string(kv.Key), v.prefix)] = item[T]{val, kv.ModRevision}
	}
	v.mu.Lock()
	v.items = items
	v.mu.Unlock()
	v.once.Do(func() { close(v.loaded) })
	return resp.Header.Revision, nil
}

// Run loads the prefix and follows it until ctx ends. After a compaction or
// a broken watch it loads again.
func (v *View[T]) Run(ctx context.Context) error {
	for ctx.Err() == nil {
		rev, err := v.Load(ctx)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			v.log.Warn("cannot load; retrying", "prefix", v.prefix, "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		err = v.follow(ctx, rev+1)
		if ctx.Err() == nil {
			v.log.Warn("watch ended; loading again", "prefix", v.prefix, "err", err)
		}
	}
	return nil
}

func (v *View[T]) follow(ctx context.Context, from int64) error {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	for resp := range v.client.Watch(wctx, v.prefix, clientv3.WithPrefix(), clientv3.WithRev(from)) {
		if err := resp.Err(); err != nil {
			return err
		}
		for _, ev := range resp.Events {
			key := strings.TrimPrefix(string(ev.Kv.Key), v.prefix)
			if ev.Type == clientv3.EventTypeDelete {
				v.remove(key, ev.Kv.ModRevision)
				continue
			}
			val, err := v.decode(ev.Kv.Value)
			if err != nil {
				v.log.Error("undecodable value ignored", "key", string(ev.Kv.Key), "err", err)
				continue
			}
			v.Put(key, val, ev.Kv.ModRevision)
		}
	}
	return errors.New("watch channel closed")
}

// Put records a value the caller has just written at rev, so that it reads
// its own write before the watch delivers it. An older revision never
// replaces a newer one.
func (v *View[T]) Put(key string, val T, rev int64) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if cur, ok := v.items[key]; ok && cur.rev > rev {
		return
	}
	v.items[key] = item[T]{val, rev}
}

func (v *View[T]) remove(key string, rev int64) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if cur, ok := v.items[key]; ok && cur.rev > rev {
		return
	}
	delete(v.items, key)
}

// Delete records a deletion the caller made at rev.
func (v *View[T]) Delete(key string, rev int64) { v.remove(key, rev) }

// Get returns the value of key and its ModRevision.
func (v *View[T]) Get(key string) (T, int64, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	it, ok := v.items[key]
	return it.value, it.rev, ok
}

// Range calls fn for every key until it returns false, in no order.
func (v *View[T]) Range(fn func(key string, val T) bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	for k, it := range v.items {
		if !fn(k, it.value) {
			return
		}
	}
}

// Len is the number of keys.
func (v *View[T]) Len() int {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return len(v.items)
}

// Loaded is closed after the first load.
func (v *View[T]) Loaded() <-chan struct{} { return v.loaded }

// Proto decodes a value stored as the protobuf message T: the decode
// function of a view over such values.
func Proto[T any, P interface {
	*T
	proto.Message
}](b []byte) (P, error) {
	m := P(new(T))
	return m, proto.Unmarshal(b, m)
}
