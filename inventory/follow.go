package inventory

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"

	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// Several replicas share one etcd. Each keeps every device in memory and
// follows what the others write with two watches, on the registry and on
// the statuses. A device talks to one replica at a time, but it can move
// (its replica died, the load balancer re-routed it), so two replicas can
// hold different statuses of one device for a while. They settle on the
// one with the higher sequence number: reports carry cumulative counters
// and strictly increasing sequence numbers, so the status that has
// accepted the newer report has counted everything the other has.
// Checkpoints compare each status key's revision with the one this replica
// last saw, so that a replica that has not yet heard of a newer status
// never overwrites it; a failed compare merges etcd's copy and retries.

// Follow applies what other writers put under the registry and status
// prefixes, from the revision Load read at, until ctx ends. A broken watch
// resumes from the last revision it saw; after a compaction it reads the
// prefix again.
func (inv *Inventory) Follow(ctx context.Context) error {
	done := make(chan struct{}, 2)
	go func() { inv.follow(ctx, devicesPrefix, inv.applyDevice); done <- struct{}{} }()
	go func() { inv.follow(ctx, statusPrefix, inv.applyStatus); done <- struct{}{} }()
	<-done
	<-done
	return nil
}

func (inv *Inventory) follow(ctx context.Context, prefix string, apply func(id string, rev int64, value []byte)) {
	rev := inv.loadRev
	broken := false // logged once per outage
	for ctx.Err() == nil {
		if rev == 0 {
			var err error
			if rev, err = inv.reread(ctx, prefix, apply); err != nil {
				if ctx.Err() == nil {
					inv.log.Warn("cannot read etcd to follow other replicas; retrying", "prefix", prefix, "err", err)
					sleep(ctx, time.Second)
				}
				rev = 0
				continue
			}
		}
		var err error
		if rev, err = inv.watch(ctx, prefix, rev, apply); err != nil && ctx.Err() == nil {
			if !broken {
				inv.log.Warn("watch of other replicas' writes broken; resuming", "prefix", prefix, "revision", rev, "err", err)
			}
			broken = true
			sleep(ctx, time.Second)
		} else if broken && err == nil {
			inv.log.Info("watch of other replicas' writes resumed", "prefix", prefix, "revision", rev)
			broken = false
		}
	}
}

// watch follows prefix from after rev until the watch ends, and returns
// the revision to go on from (0 to read the prefix again) and the error
// that ended it: nil for a compaction, or for a watch that closed after
// events came, which the caller resumes at once.
func (inv *Inventory) watch(ctx context.Context, prefix string, rev int64, apply func(id string, rev int64, value []byte)) (int64, error) {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	flowing := false
	for resp := range inv.watcher.Watch(wctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1)) {
		if err := resp.Err(); err != nil {
			if errors.Is(err, rpctypes.ErrCompacted) {
				inv.log.Warn("watch fell behind a compaction; reading again", "prefix", prefix, "revision", rev)
				return 0, nil
			}
			return rev, err
		}
		flowing = true
		for _, ev := range resp.Events {
			if ev.Type == clientv3.EventTypePut {
				apply(strings.TrimPrefix(string(ev.Kv.Key), prefix), ev.Kv.ModRevision, ev.Kv.Value)
			}
		}
		rev = max(rev, resp.Header.Revision)
	}
	if flowing {
		return rev, nil
	}
	// Closed without an event or an error: etcd lost its leader, or the
	// client is closing.
	return rev, errors.New("watch closed")
}

// reread applies every key under prefix as it is now, and returns the
// revision it read at.
func (inv *Inventory) reread(ctx context.Context, prefix string, apply func(id string, rev int64, value []byte)) (int64, error) {
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	return inv.store.loadPrefix(rctx, prefix, 0, func(l loaded) error {
		apply(l.id, l.rev, l.msg)
		return nil
	})
}

// applyDevice takes a registry write made elsewhere: another replica's, or
// this one's own seen again through the watch (its revision is then not
// newer, and nothing happens).
func (inv *Inventory) applyDevice(id string, rev int64, value []byte) {
	d := &pb.Device{}
	if err := proto.Unmarshal(value, d); err != nil {
		inv.log.Error("undecodable device in etcd ignored", "device", id, "err", err)
		return
	}
	e, ok := inv.lookup(id)
	if !ok {
		inv.insert(id, d, rev, nil, 0)
		inv.readStatus(id) // its status may have come first, and been passed over
		return
	}
	e.wmu.Lock() // after any write of this replica in flight
	defer e.wmu.Unlock()
	e.mu.Lock()
	if rev <= e.rev {
		e.mu.Unlock()
		return
	}
	old := e.spec
	e.spec, e.rev = d, rev
	e.mu.Unlock()
	inv.reindex(id, old, d)
}

// applyStatus takes a status written elsewhere, if it is newer than the
// one in memory; if this replica's is newer, it is written again.
func (inv *Inventory) applyStatus(id string, rev int64, value []byte) {
	e, ok := inv.lookup(id)
	if !ok {
		return // its device comes through the other watch, which reads the status then
	}
	e.mu.Lock()
	seen := rev <= e.statusRev // this replica's own checkpoint, mostly
	e.mu.Unlock()
	if seen {
		return
	}
	st := &pb.DeviceStatus{}
	if err := proto.Unmarshal(value, st); err != nil {
		inv.log.Error("undecodable device status in etcd ignored", "device", id, "err", err)
		return
	}
	e.mu.Lock()
	if rev <= e.statusRev {
		e.mu.Unlock()
		return
	}
	e.statusRev = rev
	e.storedSeq = max(e.storedSeq, st.GetLastSeq())
	before := e.status.GetAvailability()
	merged := mergeStatus(e.status, st)
	e.status = merged
	// merged may be the status reports change in place: read it locked.
	lacking := !proto.Equal(merged, st)
	after, at := merged.GetAvailability(), merged.GetAvailabilityTime().AsTime()
	e.mu.Unlock()
	if lacking {
		inv.markDirty(context.Background(), id) // etcd lacks part of what this replica knows
	}
	if after != before && inv.onAvailability != nil {
		inv.onAvailability(id, after, at)
	}
}

// mergeStatus returns what two replicas' statuses of one device say
// together. The one that accepted the later report wins (reports carry
// cumulative counters, so it has counted everything the other has); at the
// same report, the one that saw the device later (registrations and
// heartbeats move only the last contact). Availability is also set by
// people on any replica: the later change of it wins, whichever status
// carries it.
func mergeStatus(local, remote *pb.DeviceStatus) *pb.DeviceStatus {
	base, other := local, remote
	if remote.GetLastSeq() > local.GetLastSeq() ||
		(remote.GetLastSeq() == local.GetLastSeq() && !remote.GetLastSeenTime().AsTime().Before(local.GetLastSeenTime().AsTime())) {
		base, other = remote, local
	}
	if other.GetAvailabilityTime().AsTime().After(base.GetAvailabilityTime().AsTime()) {
		base = proto.CloneOf(base)
		base.Availability, base.AvailabilityTime = other.GetAvailability(), other.GetAvailabilityTime()
	}
	return base
}

// fetch reads one device and its status from etcd into memory: a device
// another replica created that the watch has not brought yet.
func (inv *Inventory) fetch(ctx context.Context, id string) (*entry, error) {
	ctx, cancel := inv.ctx(ctx)
	defer cancel()
	resp, err := inv.store.kv.Get(ctx, deviceKey(id))
	if err != nil {
		return nil, fmt.Errorf("inventory: read %s: %w", id, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, ErrNotFound
	}
	inv.applyDevice(id, resp.Kvs[0].ModRevision, resp.Kvs[0].Value)
	e, ok := inv.lookup(id)
	if !ok {
		return nil, ErrNotFound
	}
	return e, nil
}

// readStatus reads one device's status from etcd into memory.
func (inv *Inventory) readStatus(id string) {
	ctx, cancel := inv.ctx(context.Background())
	defer cancel()
	resp, err := inv.store.kv.Get(ctx, statusKey(id))
	if err != nil {
		inv.log.Warn("cannot read a device's status; its next checkpoint or report brings it", "device", id, "err", err)
		return
	}
	if len(resp.Kvs) > 0 {
		inv.applyStatus(id, resp.Kvs[0].ModRevision, resp.Kvs[0].Value)
	}
}

// insert adds a device to memory unless it is there already. status may be
// nil: the device's status is read from etcd then, if it has one.
func (inv *Inventory) insert(id string, spec *pb.Device, rev int64, status *pb.DeviceStatus, statusRev int64) *entry {
	inv.mu.Lock()
	if e, ok := inv.devices[id]; ok {
		inv.mu.Unlock()
		return e
	}
	if status == nil {
		status = &pb.DeviceStatus{}
	}
	e := &entry{id: id, spec: spec, rev: rev, status: status, statusRev: statusRev, storedSeq: status.GetLastSeq()}
	inv.devices[id] = e
	i, _ := slices.BinarySearchFunc(inv.sorted, id, func(x *entry, id string) int { return strings.Compare(x.id, id) })
	inv.sorted = slices.Insert(inv.sorted, i, e)
	inv.mu.Unlock()
	inv.reindex(id, nil, spec)
	return e
}

// reindex moves a device's tags from its old registry part to its new one
// and counts a decommissioning.
func (inv *Inventory) reindex(id string, old, spec *pb.Device) {
	live := func(d *pb.Device) bool { return d != nil && d.GetDecommissionTime() == nil }
	tag := func(d *pb.Device) string {
		if !live(d) {
			return ""
		}
		return d.GetRfidTag()
	}
	asset := func(d *pb.Device) string {
		if !live(d) {
			return ""
		}
		return assetKey(d.GetAssetTag())
	}
	inv.tags.move(id, tag(old), tag(spec))
	inv.assets.move(id, asset(old), asset(spec))
	if (old == nil || live(old)) && !live(spec) {
		inv.decommissioned.Add(1)
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
