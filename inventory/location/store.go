package location

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"

	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// prefix of the location records in etcd: {device} -> LocationRecord.
const prefix = "/medfleet/v1/locations/"

// maxTxnOps bounds the puts of one transaction.
const maxTxnOps = 128

// Load reads every device's location and history from etcd.
func (e *Engine) Load(ctx context.Context, client *clientv3.Client) error {
	resp, err := client.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return fmt.Errorf("location: load: %w", err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, kv := range resp.Kvs {
		var rec pb.LocationRecord
		if err := proto.Unmarshal(kv.Value, &rec); err != nil {
			e.log.Error("undecodable location record ignored", "key", string(kv.Key), "err", err)
			continue
		}
		dev := strings.TrimPrefix(string(kv.Key), prefix)
		c := rec.GetCurrent()
		t := &track{history: rec.GetHistory(), source: c.GetSource(), confidence: c.GetConfidence(), detail: c.GetDetail(),
			since: c.GetSinceTime().AsTime(), seen: c.GetSeenTime().AsTime(), stale: c.GetStale()}
		if z := c.GetPlace().GetZone(); z != "" {
			t.zone = z
			set := e.byZone[z]
			if set == nil {
				set = map[string]struct{}{}
				e.byZone[z] = set
			}
			set[dev] = struct{}{}
		}
		e.tracks[dev] = t
	}
	e.recountAll(e.now())
	return nil
}

// Flush writes the locations that changed since the last flush, maxTxnOps
// to a transaction. A crash loses at most the moves since: the next
// sightings find the devices again.
func (e *Engine) Flush(ctx context.Context, client *clientv3.Client) error {
	now := e.now()
	e.mu.Lock()
	var ops []clientv3.Op
	var devs []string
	for dev, t := range e.tracks {
		if !t.dirty {
			continue
		}
		e.trimHistory(t, now)
		rec := &pb.LocationRecord{Current: e.view(dev, t, now), History: t.history}
		rec.Current.Profile, rec.Current.Model, rec.Current.Availability = "", "", 0 // the inventory's, not ours
		b, err := proto.Marshal(rec)
		if err != nil {
			e.mu.Unlock()
			return err
		}
		ops = append(ops, clientv3.OpPut(prefix+dev, string(b)))
		devs = append(devs, dev)
		t.dirty = false
	}
	e.mu.Unlock()
	for i, chunk := range slices.Collect(slices.Chunk(ops, maxTxnOps)) {
		if _, err := client.Txn(ctx).Then(chunk...).Commit(); err != nil {
			// Mark what was not written dirty again, for the next flush.
			e.mu.Lock()
			for _, dev := range devs[i*maxTxnOps:] {
				if t := e.tracks[dev]; t != nil {
					t.dirty = true
				}
			}
			e.mu.Unlock()
			return err
		}
	}
	return nil
}

// RunFlusher flushes every interval until ctx ends, then once more.
func (e *Engine) RunFlusher(ctx context.Context, client *clientv3.Client, every time.Duration) error {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			return e.Flush(fctx, client)
		case <-tick.C:
			if err := e.Flush(ctx, client); err != nil && ctx.Err() == nil {
				e.log.Warn("cannot write device locations; retrying", "err", err)
			}
		}
	}
}
