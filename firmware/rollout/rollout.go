// Package rollout installs firmware artifacts on fleets in stages: waves
// (a canary, then percentages) with success and error thresholds and soak
// times, a constant or exponential rate, maintenance windows per site, and
// never an install on a device in clinical use.
//
// Everything a rollout is lives in etcd: the rollout record
// (/medfleet/v1/rollouts/{id}) and one record per device
// (/medfleet/v1/rollout-devices/{id}/{device}). Every replica follows both
// with a watch, to answer devices' desired state (Offer); only the
// controller (Step, on the elected leader) changes device records, so a
// restarted or new leader continues from exactly what etcd holds, and a
// device that succeeded is never offered the image again.
package rollout

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/medfleet/medfleet/firmware"
	"github.com/medfleet/medfleet/internal/etcdview"
	"github.com/medfleet/medfleet/internal/telemetry"
	"github.com/medfleet/medfleet/internal/token"
	"github.com/medfleet/medfleet/inventory"
	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// Keys in etcd.
const (
	prefixRollouts = "/medfleet/v1/rollouts/"        // {id} -> Rollout
	prefixDevices  = "/medfleet/v1/rollout-devices/" // {id}/{device} -> RolloutDevice
)

// Errors of the package, for the server to map.
var (
	ErrNotFound = errors.New("rollout: not found")
	ErrExists   = errors.New("rollout: already exists")
	// ErrState: the rollout's state does not allow the change.
	ErrState    = errors.New("rollout: not allowed in this state")
	ErrConflict = errors.New("rollout: changed since it was read")
	// ErrBusy: a device is in another unfinished rollout.
	ErrBusy = errors.New("rollout: device in another rollout")
)

// maxTxnOps bounds the operations of one etcd transaction.
const maxTxnOps = 128

// Config tunes the controller.
type Config struct {
	// Tick is how often the controller looks at unfinished rollouts.
	Tick time.Duration `yaml:"tick"`
}

// DefaultConfig returns the defaults documented in docs/operations.md.
func DefaultConfig() Config { return Config{Tick: time.Second} }

// Validate checks the configuration; errors name the field by its path.
func (c Config) Validate() error {
	if c.Tick < 10*time.Millisecond || c.Tick > time.Minute {
		return fmt.Errorf("rollouts.tick: %v is outside 10ms..1m", c.Tick)
	}
	return nil
}

// Controller runs rollouts.
type Controller struct {
	cfg      Config
	client   *clientv3.Client
	inv      *inventory.Inventory
	fw       *firmware.Store
	rollouts *etcdview.View[*pb.Rollout]
	devices  *etcdview.View[*pb.RolloutDevice] // key {id}/{device}
	log      *slog.Logger
	now      func() time.Time
	tracer   trace.Tracer
	prop     propagation.TextMapPropagator

	// offers is what devices are offered, rebuilt from the views on every
	// tick by every replica.
	offers atomic.Pointer[offerIndex]
	// create serialises CreateRollout, so that one replica never puts a
	// device in two rollouts.
	create sync.Mutex
	// mu guards counts, for the metrics.
	mu     sync.Mutex
	counts metricCounts
}

// New builds a controller; Run follows etcd and, with Lead, runs rollouts.
func New(cfg Config, client *clientv3.Client, inv *inventory.Inventory, fw *firmware.Store, log *slog.Logger, tel telemetry.Providers) (*Controller, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Controller{
		cfg: cfg, client: client, inv: inv, fw: fw, log: log, now: time.Now,
		rollouts: etcdview.New(client, prefixRollouts, etcdview.Proto[pb.Rollout], log),
		devices:  etcdview.New(client, prefixDevices, etcdview.Proto[pb.RolloutDevice], log),
		tracer:   tel.Tracer.Tracer(telemetry.ScopeName + "/rollout"),
		prop:     tel.Propagator,
	}
	c.offers.Store(&offerIndex{})
	fw.SetUsers(c.users)
	if err := c.registerMetrics(tel); err != nil {
		return nil, fmt.Errorf("rollout: metrics: %w", err)
	}
	return c, nil
}

// Load reads rollouts and their devices once, before serving.
func (c *Controller) Load(ctx context.Context) error {
	if _, err := c.rollouts.Load(ctx); err != nil {
		return err
	}
	if _, err := c.devices.Load(ctx); err != nil {
		return err
	}
	c.reindex()
	return nil
}

// Run follows etcd and rebuilds the offers every tick until ctx ends. It
// changes nothing in etcd: Lead does.
func (c *Controller) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return c.rollouts.Run(ctx) })
	g.Go(func() error { return c.devices.Run(ctx) })
	g.Go(func() error {
		t := time.NewTicker(c.cfg.Tick)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
				c.reindex()
			}
		}
	})
	return g.Wait()
}

// Lead runs the controller's steps every tick until ctx ends (leadership
// lost, or shutdown). fence, when set, is added to every transaction: a
// deposed leader's writes then fail.
func (c *Controller) Lead(ctx context.Context, fence []clientv3.Cmp) error {
	t := time.NewTicker(c.cfg.Tick)
	defer t.Stop()
	for {
		c.Step(ctx, fence)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// users lists the unfinished rollouts of an artifact.
func (c *Controller) users(sha string) []string {
	var out []string
	c.rollouts.Range(func(id string, r *pb.Rollout) bool {
		if !finished(r) && r.GetArtifact() == "artifacts/"+sha {
			out = append(out, "rollouts/"+id)
		}
		return true
	})
	slices.Sort(out)
	return out
}

func finished(r *pb.Rollout) bool {
	s := r.GetState()
	return s == pb.RolloutState_ROLLOUT_STATE_COMPLETED || s == pb.RolloutState_ROLLOUT_STATE_ABORTED
}

func terminal(s pb.ExecutionState) bool {
	switch s {
	case pb.ExecutionState_EXECUTION_STATE_SUCCEEDED, pb.ExecutionState_EXECUTION_STATE_FAILED,
		pb.ExecutionState_EXECUTION_STATE_TIMED_OUT, pb.ExecutionState_EXECUTION_STATE_CANCELED,
		pb.ExecutionState_EXECUTION_STATE_SKIPPED:
		return true
	}
	return false
}

// busyDevices maps each device in an unfinished rollout to that rollout.
func (c *Controller) busyDevices() map[string]string {
	active := map[string]bool{}
	c.rollouts.Range(func(id string, r *pb.Rollout) bool {
		if !finished(r) {
			active[id] = true
		}
		return true
	})
	busy := map[string]string{}
	c.devices.Range(func(k string, d *pb.RolloutDevice) bool {
		id, _, _ := strings.Cut(k, "/")
		if active[id] && !terminal(d.GetState()) {
			busy[d.GetDevice()] = id
		}
		return true
	})
	return busy
}

// Create checks a rollout, chooses its devices and starts it. traceparent
// is the creating request's trace context, which the rollout keeps.
func (c *Controller) Create(ctx context.Context, id string, r *pb.Rollout, creator, traceparent string, validateOnly bool) (*pb.Rollout, error) {
	if r == nil {
		return nil, fieldErr("rollout", "required")
	}
	r = proto.Clone(r).(*pb.Rollout)
	if id == "" {
		id = token.ID(10)
	} else if !idPattern.MatchString(id) {
		return nil, fieldErr("rollout_id", "%q is not an id: 1-63 characters of [a-z0-9-], starting with a letter or digit", id)
	}
	sha, err := firmware.ParseArtifactName(r.GetArtifact())
	if err != nil {
		return nil, fieldErr("rollout.artifact", "%v", err)
	}
	art, ok := c.fw.Artifact(sha)
	if !ok {
		return nil, fmt.Errorf("%w: %s", firmware.ErrNotFound, r.GetArtifact())
	}
	for _, m := range art.GetModels() {
		if err := c.fw.Allowed(m, art.GetVersion()); err != nil {
			return nil, err
		}
	}
	if err := normalize(r); err != nil {
		return nil, err
	}
	c.create.Lock()
	defer c.create.Unlock()
	if _, _, exists := c.rollouts.Get(id); exists {
		return nil, fmt.Errorf("%w: rollouts/%s", ErrExists, id)
	}
	busy := c.busyDevices()
	var (
		devices []*pb.RolloutDevice
		clash   []string
	)
	now := timestamppb.New(c.now())
	err = c.inv.Select(r.GetTarget().GetFilter(), func(s *inventory.Summary) bool {
		if !slices.Contains(art.GetModels(), s.Model) {
			return true
		}
		if other, ok := busy[s.ID]; ok {
			clash = append(clash, s.ID+" (rollouts/"+other+")")
			return true
		}
		d := &pb.RolloutDevice{Device: s.ID, State: pb.ExecutionState_EXECUTION_STATE_QUEUED, FromVersion: s.Firmware, UpdateTime: now}
		if s.Firmware == art.GetVersion() {
			d.State, d.Detail = pb.ExecutionState_EXECUTION_STATE_SKIPPED, "already runs "+art.GetVersion()
		}
		devices = append(devices, d)
		return true
	})
	if err != nil {
		var fe *inventory.FieldError
		if errors.As(err, &fe) {
			return nil, fieldErr("rollout.target.filter", "%s", fe.Reason)
		}
		return nil, err
	}
	if len(clash) > 0 {
		if len(clash) > 5 {
			clash = append(clash[:5], fmt.Sprintf("and %d more", len(clash)-5))
		}
		return nil, fmt.Errorf("%w: %s; abort that rollout or narrow the target", ErrBusy, strings.Join(clash, ", "))
	}
	if len(devices) == 0 {
		return nil, fieldErr("rollout.target", "no device of models %v matches", art.GetModels())
	}
	assignWaves(id, r.Waves, devices)

	r.Name, r.Version, r.State, r.PauseReason, r.PauseDetail, r.CurrentWave = "rollouts/"+id, art.GetVersion(), pb.RolloutState_ROLLOUT_STATE_RUNNING, 0, "", 0
	r.Creator, r.CreateTime, r.UpdateTime, r.EndTime, r.Etag, r.Traceparent = creator, now, now, nil, "", traceparent
	r.Waves[0].State, r.Waves[0].StartTime = pb.WaveState_WAVE_STATE_RUNNING, now
	r.History = []*pb.RolloutEvent{{Time: now, State: r.State, Detail: fmt.Sprintf("created by %s for %d devices; wave 1 started", creator, len(devices))}}
	r.Counts, r.FailuresByResult = countAll(r, devices)
	if validateOnly {
		return r, nil
	}
	// The device records first, the rollout last: until the rollout exists
	// nothing reads them, and a failed creation leaves records that the
	// next creation of the same id overwrites.
	ops := make([]clientv3.Op, 0, len(devices))
	for _, d := range devices {
		val, err := proto.Marshal(d)
		if err != nil {
			return nil, err
		}
		ops = append(ops, clientv3.OpPut(prefixDevices+id+"/"+d.GetDevice(), string(val)))
	}
	for chunk := range slices.Chunk(ops, maxTxnOps) {
		if _, err := c.client.Txn(ctx).Then(chunk...).Commit(); err != nil {
			return nil, err
		}
	}
	val, err := proto.Marshal(r)
	if err != nil {
		return nil, err
	}
	key := prefixRollouts + id
	resp, err := c.client.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).Then(clientv3.OpPut(key, string(val))).Commit()
	if err != nil {
		return nil, err
	}
	if !resp.Succeeded {
		return nil, fmt.Errorf("%w: rollouts/%s", ErrExists, id)
	}
	for _, d := range devices {
		c.devices.Put(id+"/"+d.GetDevice(), d, resp.Header.Revision-1)
	}
	c.rollouts.Put(id, r, resp.Header.Revision)
	c.log.Info("rollout created", "rollout", id, "artifact", r.GetArtifact(), "version", r.GetVersion(), "devices", len(devices), "creator", creator)
	return withEtag(r, resp.Header.Revision), nil
}

// assignWaves spreads devices over the waves in an order that is random
// but fixed by the rollout id: a canary is not always the same devices.
func assignWaves(id string, waves []*pb.Wave, devices []*pb.RolloutDevice) {
	key := func(d *pb.RolloutDevice) uint64 {
		h := fnv.New64a()
		h.Write([]byte(id))
		h.Write([]byte{0})
		h.Write([]byte(d.GetDevice()))
		return h.Sum64()
	}
	slices.SortFunc(devices, func(a, b *pb.RolloutDevice) int {
		return cmp.Or(cmp.Compare(key(a), key(b)), cmp.Compare(a.GetDevice(), b.GetDevice()))
	})
	n, taken := len(devices), 0
	for i, w := range waves {
		end := n
		if w.GetDevices() > 0 {
			end = min(n, taken+int(w.GetDevices()))
		} else if i < len(waves)-1 {
			end = max(taken, min(n, int(math.Ceil(float64(n)*w.GetCumulativePercent()/100))))
		}
		for _, d := range devices[taken:end] {
			d.Wave = int32(i)
		}
		taken = end
	}
	slices.SortFunc(devices, func(a, b *pb.RolloutDevice) int { return cmp.Compare(a.GetDevice(), b.GetDevice()) })
}

func withEtag(r *pb.Rollout, rev int64) *pb.Rollout {
	r = proto.Clone(r).(*pb.Rollout)
	r.Etag = strconv.FormatInt(rev, 10)
	return r
}

// ParseName returns the id of "rollouts/{id}".
func ParseName(name string) (string, error) {
	id, ok := strings.CutPrefix(name, "rollouts/")
	if !ok || !idPattern.MatchString(id) {
		return "", fieldErr("name", "%q is not rollouts/{id}", name)
	}
	return id, nil
}

// Get returns a rollout by name.
func (c *Controller) Get(name string) (*pb.Rollout, error) {
	id, err := ParseName(name)
	if err != nil {
		return nil, err
	}
	r, rev, ok := c.rollouts.Get(id)
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	return withEtag(r, rev), nil
}

// List returns rollouts, newest first, optionally in one state.
func (c *Controller) List(state pb.RolloutState, pageSize int, pageToken string) ([]*pb.Rollout, string, error) {
	type entry struct {
		r   *pb.Rollout
		rev int64
	}
	var all []entry
	c.rollouts.Range(func(id string, r *pb.Rollout) bool {
		if state == 0 || r.GetState() == state {
			_, rev, _ := c.rollouts.Get(id)
			all = append(all, entry{r, rev})
		}
		return true
	})
	slices.SortFunc(all, func(a, b entry) int {
		return cmp.Or(b.r.GetCreateTime().AsTime().Compare(a.r.GetCreateTime().AsTime()), cmp.Compare(a.r.GetName(), b.r.GetName()))
	})
	start, end, next, err := pageBounds(len(all), pageSize, pageToken)
	if err != nil {
		return nil, "", err
	}
	out := make([]*pb.Rollout, 0, end-start)
	for _, e := range all[start:end] {
		out = append(out, withEtag(e.r, e.rev))
	}
	return out, next, nil
}

// Devices lists a rollout's devices in id order, optionally in one state
// or wave (index + 1).
func (c *Controller) Devices(name string, state pb.ExecutionState, wave int, pageSize int, pageToken string) ([]*pb.RolloutDevice, string, error) {
	id, err := ParseName(name)
	if err != nil {
		return nil, "", err
	}
	if _, _, ok := c.rollouts.Get(id); !ok {
		return nil, "", fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	var all []*pb.RolloutDevice
	for _, d := range c.devicesOf(id) {
		if (state == 0 || d.GetState() == state) && (wave == 0 || int(d.GetWave()) == wave-1) {
			all = append(all, d)
		}
	}
	start, end, next, err := pageBounds(len(all), pageSize, pageToken)
	if err != nil {
		return nil, "", err
	}
	out := make([]*pb.RolloutDevice, 0, end-start)
	for _, d := range all[start:end] {
		out = append(out, proto.Clone(d).(*pb.RolloutDevice))
	}
	return out, next, nil
}

// devicesOf returns a rollout's device records, in device order.
func (c *Controller) devicesOf(id string) []*pb.RolloutDevice {
	var out []*pb.RolloutDevice
	prefix := id + "/"
	c.devices.Range(func(k string, d *pb.RolloutDevice) bool {
		if strings.HasPrefix(k, prefix) {
			out = append(out, d)
		}
		return true
	})
	slices.SortFunc(out, func(a, b *pb.RolloutDevice) int { return cmp.Compare(a.GetDevice(), b.GetDevice()) })
	return out
}

func pageBounds(n, size int, token string) (start, end int, next string, err error) {
	switch {
	case size < 0:
		return 0, 0, "", fieldErr("page_size", "negative")
	case size == 0:
		size = 50
	case size > 1000:
		size = 1000
	}
	if token != "" {
		start, err = strconv.Atoi(token)
		if err != nil || start < 0 || start > n {
			return 0, 0, "", fieldErr("page_token", "not a token this list returned")
		}
	}
	end = min(start+size, n)
	if end < n {
		next = strconv.Itoa(end)
	}
	return start, end, next, nil
}

// Pause stops offering the image and withholds permission to install.
func (c *Controller) Pause(ctx context.Context, name, reason, etag, actor string) (*pb.Rollout, error) {
	return c.modify(ctx, name, etag, func(r *pb.Rollout, now *timestamppb.Timestamp) error {
		if finished(r) {
			return fmt.Errorf("%w: %s is %s", ErrState, name, stateName(r.GetState()))
		}
		if r.GetState() == pb.RolloutState_ROLLOUT_STATE_PAUSED && r.GetPauseReason() != pb.PauseReason_PAUSE_REASON_WINDOW_CLOSED &&
			r.GetPauseReason() != pb.PauseReason_PAUSE_REASON_CLINICAL_HOLD {
			return nil // already held by a person or a threshold
		}
		setState(r, now, pb.RolloutState_ROLLOUT_STATE_PAUSED, pb.PauseReason_PAUSE_REASON_MANUAL, "paused by "+actor+": "+reason)
		return nil
	})
}

// Resume continues a rollout paused by a person or by an error threshold;
// the failures seen so far are accepted.
func (c *Controller) Resume(ctx context.Context, name, etag, actor string) (*pb.Rollout, error) {
	return c.modify(ctx, name, etag, func(r *pb.Rollout, now *timestamppb.Timestamp) error {
		switch {
		case r.GetState() != pb.RolloutState_ROLLOUT_STATE_PAUSED:
			return fmt.Errorf("%w: %s is %s, not paused", ErrState, name, stateName(r.GetState()))
		case r.GetPauseReason() == pb.PauseReason_PAUSE_REASON_VERSION_BLOCKED:
			return fmt.Errorf("%w: %s installs a blocked version; it can only be aborted", ErrState, name)
		case r.GetPauseReason() == pb.PauseReason_PAUSE_REASON_WINDOW_CLOSED, r.GetPauseReason() == pb.PauseReason_PAUSE_REASON_CLINICAL_HOLD:
			return fmt.Errorf("%w: %s waits by itself (%s); it resumes when that ends", ErrState, name, reasonName(r.GetPauseReason()))
		}
		for _, w := range r.GetWaves() {
			if w.GetState() == pb.WaveState_WAVE_STATE_FAILED {
				w.State = pb.WaveState_WAVE_STATE_RUNNING
				w.AcknowledgedFailures = w.GetCounts().GetFailed() + w.GetCounts().GetTimedOut()
			}
		}
		setState(r, now, pb.RolloutState_ROLLOUT_STATE_RUNNING, 0, "resumed by "+actor)
		return nil
	})
}

// Abort ends a rollout; the controller then cancels its devices that had
// not started installing.
func (c *Controller) Abort(ctx context.Context, name, reason, etag, actor string) (*pb.Rollout, error) {
	return c.modify(ctx, name, etag, func(r *pb.Rollout, now *timestamppb.Timestamp) error {
		if finished(r) {
			return fmt.Errorf("%w: %s is already %s", ErrState, name, stateName(r.GetState()))
		}
		setState(r, now, pb.RolloutState_ROLLOUT_STATE_ABORTED, 0, "aborted by "+actor+": "+reason)
		r.EndTime = now
		return nil
	})
}

// modify changes a rollout record in a transaction on its revision: a
// concurrent change by the controller is retried, one by a person (etag)
// is ErrConflict.
func (c *Controller) modify(ctx context.Context, name, etag string, change func(*pb.Rollout, *timestamppb.Timestamp) error) (*pb.Rollout, error) {
	id, err := ParseName(name)
	if err != nil {
		return nil, err
	}
	var want int64
	if etag != "" {
		if want, err = strconv.ParseInt(etag, 10, 64); err != nil {
			return nil, fieldErr("etag", "%q is not an etag this server returned", etag)
		}
	}
	key := prefixRollouts + id
	for range 5 {
		resp, err := c.client.Get(ctx, key)
		if err != nil {
			return nil, err
		}
		if len(resp.Kvs) == 0 {
			return nil, fmt.Errorf("%w: %s", ErrNotFound, name)
		}
		kv := resp.Kvs[0]
		if etag != "" && kv.ModRevision != want {
			return nil, fmt.Errorf("%w: %s", ErrConflict, name)
		}
		r, err := etcdview.Proto[pb.Rollout](kv.Value)
		if err != nil {
			return nil, err
		}
		if err := change(r, timestamppb.New(c.now())); err != nil {
			return nil, err
		}
		val, err := proto.Marshal(r)
		if err != nil {
			return nil, err
		}
		txn, err := c.client.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", kv.ModRevision)).Then(clientv3.OpPut(key, string(val))).Commit()
		if err != nil {
			return nil, err
		}
		if txn.Succeeded {
			c.rollouts.Put(id, r, txn.Header.Revision)
			c.reindex()
			return withEtag(r, txn.Header.Revision), nil
		}
		if etag != "" {
			return nil, fmt.Errorf("%w: %s", ErrConflict, name)
		}
	}
	return nil, fmt.Errorf("%w: %s changes too often; try again", ErrConflict, name)
}

// maxHistory bounds a rollout's history.
const maxHistory = 100

// setState changes a rollout's state and records it.
func setState(r *pb.Rollout, now *timestamppb.Timestamp, s pb.RolloutState, reason pb.PauseReason, detail string) {
	r.State, r.PauseReason, r.PauseDetail = s, reason, ""
	if s == pb.RolloutState_ROLLOUT_STATE_PAUSED {
		r.PauseDetail = detail
	}
	record(r, now, detail)
}

// record appends an event to a rollout's history.
func record(r *pb.Rollout, now *timestamppb.Timestamp, detail string) {
	r.History = append(r.History, &pb.RolloutEvent{Time: now, State: r.GetState(), PauseReason: r.GetPauseReason(), Detail: detail})
	if n := len(r.History); n > maxHistory {
		r.History = slices.Delete(r.History, 1, n-maxHistory+1) // keep the creation
	}
	r.UpdateTime = now
}

func stateName(s pb.RolloutState) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "ROLLOUT_STATE_"))
}

func reasonName(p pb.PauseReason) string {
	return strings.ToLower(strings.TrimPrefix(p.String(), "PAUSE_REASON_"))
}
