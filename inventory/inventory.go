package inventory

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/medfleet/medfleet/coap"
	"github.com/medfleet/medfleet/internal/telemetry"
	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// Config tunes the inventory.
type Config struct {
	// CheckpointInterval is how often changed statuses are written to etcd.
	// A crash loses nothing a device still holds: devices keep every report
	// until the desired state says it is stored (protocol 8.4), so the
	// interval trades etcd writes against how soon reports are stored.
	CheckpointInterval time.Duration `yaml:"checkpoint_interval"`
	// MaxTxnOps bounds the keys in one etcd transaction (etcd's own limit is
	// 128 by default).
	MaxTxnOps int `yaml:"max_txn_ops"`
	// LivenessGrace is added to a registration's lifetime before the device
	// counts as offline.
	LivenessGrace time.Duration `yaml:"liveness_grace"`
	// ReportInterval is the report interval the server asks devices for.
	ReportInterval time.Duration `yaml:"report_interval"`
	// RequestTimeout bounds every etcd call.
	RequestTimeout time.Duration `yaml:"request_timeout"`
}

// DefaultConfig returns the defaults documented in docs/operations.md.
func DefaultConfig() Config {
	return Config{
		CheckpointInterval: 5 * time.Second,
		MaxTxnOps:          128,
		LivenessGrace:      15 * time.Second,
		ReportInterval:     10 * time.Second,
		RequestTimeout:     5 * time.Second,
	}
}

// Validate checks the configuration; errors name the field by its path.
func (c Config) Validate() error {
	switch {
	case c.CheckpointInterval < 10*time.Millisecond || c.CheckpointInterval > time.Minute:
		return fmt.Errorf("inventory.checkpoint_interval: %v is outside 10ms-1m", c.CheckpointInterval)
	case c.MaxTxnOps < 1 || c.MaxTxnOps > 10000:
		return fmt.Errorf("inventory.max_txn_ops: %d is outside 1-10000", c.MaxTxnOps)
	case c.LivenessGrace < 0:
		return fmt.Errorf("inventory.liveness_grace: negative")
	case c.ReportInterval < time.Second || c.ReportInterval > 24*time.Hour:
		return fmt.Errorf("inventory.report_interval: %v is outside 1s-24h", c.ReportInterval)
	case c.RequestTimeout <= 0:
		return fmt.Errorf("inventory.request_timeout: must be positive")
	}
	return nil
}

// Inventory holds every device in memory and keeps etcd up to date.
type Inventory struct {
	cfg   Config
	log   *slog.Logger
	now   func() time.Time
	store store

	createMu sync.Mutex // serialises creations, so an id enters the map once

	mu      sync.RWMutex
	devices map[string]*entry
	// sorted holds the same entries ordered by id: ListDevices pages
	// through it without a map lookup per device.
	sorted []*entry
	// decommissioned counts the decommissioned devices among them, so that
	// an unfiltered list knows its total without a scan.
	decommissioned atomic.Int64

	// dirty holds the devices whose status changed since the last
	// checkpoint, with the span context of a sampled report among those
	// changes (zero otherwise), so that the checkpoint joins its trace.
	dirtyMu sync.Mutex
	dirty   map[string]trace.SpanContext

	watcher clientv3.Watcher
	// loadRev is the revision Load read at; Follow goes on from it.
	loadRev int64

	checkpoints checkpointStats
	tel         *instruments
	// onAvailability hears availability changes (OnAvailability).
	onAvailability AvailabilityObserver
	// tags indexes live devices by the EPC of their RFID tag, assets by
	// their asset tag.
	tags, assets uniqueIndex
	// modelOf finds the catalogue model of a UDI device identifier
	// (SetModelResolver).
	modelOf ModelResolver
}

// entry is one device. mu guards spec, rev and status in memory; wmu
// serialises registry writes to etcd, so the Txn's revision compare and the
// in-memory update agree.
type entry struct {
	id     string
	wmu    sync.Mutex
	mu     sync.Mutex
	spec   *pb.Device // registry part; replaced, never mutated, once published
	rev    int64      // spec's etcd ModRevision: the etag
	status *pb.DeviceStatus
	// statusRev is the ModRevision of the status key as this replica last
	// saw it (0: none); a checkpoint writes the key only if it is unchanged.
	statusRev int64
	// storedSeq is the highest report seq etcd has (the desired state's
	// stored).
	storedSeq uint64
}

// New builds an inventory over an etcd client. It starts nothing: call Load,
// then Run.
func New(cfg Config, client *clientv3.Client, log *slog.Logger, now func() time.Time, tel telemetry.Providers) (*Inventory, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if client == nil {
		return nil, errors.New("inventory: no etcd client")
	}
	if now == nil {
		now = time.Now
	}
	inv := &Inventory{
		cfg:     cfg,
		log:     log,
		now:     now,
		devices: map[string]*entry{},
		tags:    uniqueIndex{m: map[string]string{}}, assets: uniqueIndex{m: map[string]string{}},
		dirty: map[string]trace.SpanContext{},
	}
	in, err := newInstruments(tel, inv)
	if err != nil {
		return nil, fmt.Errorf("inventory: metrics: %w", err)
	}
	inv.tel = in
	inv.store = store{kv: client.KV, lease: client.Lease, maxOps: cfg.MaxTxnOps, tel: in}
	inv.watcher = client.Watcher
	return inv, nil
}

// Load reads every device and status from etcd into memory.
func (inv *Inventory) Load(ctx context.Context) error {
	// The registry and the statuses are read side by side (decoding them
	// is most of a restart's work for the inventory), at one revision.
	rev, err := inv.store.revision(ctx)
	if err != nil {
		return err
	}
	devices := map[string]*entry{}
	type status struct {
		st  *pb.DeviceStatus
		rev int64
	}
	statuses := map[string]status{}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		_, err := inv.store.loadPrefix(gctx, devicesPrefix, rev, func(l loaded) error {
			d := &pb.Device{}
			if err := proto.Unmarshal(l.msg, d); err != nil {
				return fmt.Errorf("inventory: device %q in etcd: %w", l.id, err)
			}
			devices[l.id] = &entry{id: l.id, spec: d, rev: l.rev}
			return nil
		})
		return err
	})
	g.Go(func() error {
		_, err := inv.store.loadPrefix(gctx, statusPrefix, rev, func(l loaded) error {
			st := &pb.DeviceStatus{}
			if err := proto.Unmarshal(l.msg, st); err != nil {
				return fmt.Errorf("inventory: status of %q in etcd: %w", l.id, err)
			}
			statuses[l.id] = status{st, l.rev}
			return nil
		})
		return err
	})
	if err := g.Wait(); err != nil {
		return err
	}
	for id, e := range devices {
		s, ok := statuses[id] // none: the device has not reported yet
		if !ok {
			e.status = &pb.DeviceStatus{}
			continue
		}
		e.status, e.statusRev, e.storedSeq = s.st, s.rev, s.st.GetLastSeq()
	}
	// A status whose device never committed is ignored.
	sorted := make([]*entry, 0, len(devices))
	decommissioned := 0
	for _, e := range devices {
		sorted = append(sorted, e)
		if e.spec.GetDecommissionTime() != nil {
			decommissioned++
		}
	}
	slices.SortFunc(sorted, func(a, b *entry) int { return strings.Compare(a.id, b.id) })
	tags, assets := map[string]string{}, map[string]string{}
	for _, e := range sorted {
		if e.spec.GetDecommissionTime() != nil {
			continue
		}
		if t := e.spec.GetRfidTag(); t != "" {
			tags[t] = e.id
		}
		if t := e.spec.GetAssetTag(); t != "" {
			assets[assetKey(t)] = e.id
		}
	}
	inv.mu.Lock()
	inv.devices, inv.sorted = devices, sorted
	inv.loadRev = rev // the statuses were read at rev or later: Follow skips what they have
	inv.decommissioned.Store(int64(decommissioned))
	inv.mu.Unlock()
	inv.tags.reset(tags)
	inv.assets.reset(assets)
	inv.log.Info("inventory loaded", "devices", len(sorted))
	return nil
}

// Len is the number of devices, decommissioned ones included.
func (inv *Inventory) Len() int {
	inv.mu.RLock()
	defer inv.mu.RUnlock()
	return len(inv.sorted)
}

func (inv *Inventory) lookup(id string) (*entry, bool) {
	inv.mu.RLock()
	e, ok := inv.devices[id]
	inv.mu.RUnlock()
	return e, ok
}

func (inv *Inventory) ctx(parent context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(parent, inv.cfg.RequestTimeout)
}

// online reports whether a status has a live registration at now.
func (inv *Inventory) online(st *pb.DeviceStatus, now time.Time) bool {
	if st.GetLifetimeSeconds() == 0 || st.GetLastSeenTime() == nil {
		return false
	}
	deadline := st.GetLastSeenTime().AsTime().Add(time.Duration(st.GetLifetimeSeconds())*time.Second + inv.cfg.LivenessGrace)
	return now.Before(deadline)
}

// view returns a copy of a device for callers, with output-only fields set.
// e.mu must be held.
func (inv *Inventory) view(id string, e *entry, now time.Time) *pb.Device {
	d := proto.Clone(e.spec).(*pb.Device)
	d.Name = "devices/" + id
	d.Etag = strconv.FormatInt(e.rev, 10)
	d.Status = proto.Clone(e.status).(*pb.DeviceStatus)
	d.Status.UsageHours = e.status.GetUsageSeconds() / 3600
	d.Status.Connectivity = pb.Connectivity_CONNECTIVITY_OFFLINE
	if inv.online(e.status, now) {
		d.Status.Connectivity = pb.Connectivity_CONNECTIVITY_ONLINE
	}
	if d.GetDecommissionTime() != nil {
		d.Status.Availability = pb.Availability_AVAILABILITY_DECOMMISSIONED
	}
	return d
}

// markDirty queues a device's status for the next checkpoint. ctx carries
// the span of the change; a sampled one is remembered so that the
// checkpoint that commits it is part of the same trace.
func (inv *Inventory) markDirty(ctx context.Context, id string) {
	sc := trace.SpanContextFromContext(ctx)
	inv.dirtyMu.Lock()
	if sc.IsSampled() || !inv.dirty[id].IsSampled() {
		inv.dirty[id] = sc
	}
	inv.dirtyMu.Unlock()
}

func ts(t time.Time) *timestamppb.Timestamp { return timestamppb.New(t) }

// validateID wraps coap.ValidateDeviceID as a field error.
func validateID(field, id string) error {
	if err := coap.ValidateDeviceID(id); err != nil {
		return &FieldError{Field: field, Reason: err.Error()}
	}
	return nil
}
