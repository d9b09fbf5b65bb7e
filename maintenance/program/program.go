// Package program runs a hospital's equipment maintenance program over
// etcd: the model catalogue and plans, each device's maintenance record,
// work orders, and the scheduler that opens orders as tasks fall due. The
// arithmetic (due dates, projection, compliance) is package maintenance's.
//
// It imports maintenance, inventory, proto and internal packages; the
// server wires it to the API.
package program

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/medfleet/medfleet/internal/etcdview"
	"github.com/medfleet/medfleet/internal/telemetry"
	"github.com/medfleet/medfleet/internal/token"
	"github.com/medfleet/medfleet/inventory"
	"github.com/medfleet/medfleet/maintenance"
	"github.com/medfleet/medfleet/maintenance/rul"
	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

const (
	modelsPrefix  = "/medfleet/v1/models/"
	recordsPrefix = "/medfleet/v1/maintenance/"
	ordersPrefix  = "/medfleet/v1/workorders/"
	// openPrefix/{device}/{task} holds the name of the open order for a
	// task: the key whose creation makes the scheduler duplicate-free.
	openPrefix = "/medfleet/v1/workorders-open/"
)

// Expected outcomes.
var (
	ErrNotFound = errors.New("maintenance: not found")
	ErrConflict = errors.New("maintenance: changed concurrently; retry")
	// ErrState is a work order that cannot make that transition.
	ErrState = errors.New("maintenance: work order state does not allow this")
)

// FieldError is a request field that cannot be used.
type FieldError = maintenance.FieldError

// Config tunes the program.
type Config struct {
	// ScheduleInterval is how often the scheduler looks for tasks whose due
	// window has opened.
	ScheduleInterval time.Duration `yaml:"schedule_interval"`
	// SampleInterval is the spacing of the usage samples kept per device
	// for projection.
	SampleInterval time.Duration `yaml:"sample_interval"`
}

// DefaultConfig returns the defaults documented in docs/operations.md.
func DefaultConfig() Config {
	return Config{ScheduleInterval: time.Minute, SampleInterval: time.Hour}
}

// Validate names the bad field by its path.
func (c Config) Validate() error {
	switch {
	case c.ScheduleInterval < 100*time.Millisecond:
		return fmt.Errorf("maintenance.schedule_interval: %v is under 100ms", c.ScheduleInterval)
	case c.SampleInterval < 100*time.Millisecond:
		return fmt.Errorf("maintenance.sample_interval: %v is under 100ms", c.SampleInterval)
	}
	return nil
}

// Program is the maintenance program of one medfleetd.
type Program struct {
	cfg    Config
	client *clientv3.Client
	inv    *inventory.Inventory
	log    *slog.Logger
	now    func() time.Time

	models  *etcdview.View[*pb.DeviceModel]
	records *etcdview.View[*pb.DeviceMaintenance]
	orders  *etcdview.View[*pb.WorkOrder]

	mu        sync.Mutex
	histories map[string]*maintenance.History
	// Failure prediction, for models that ask for it: each device's
	// current life, the trained models by model id, and each device's
	// predicted remaining hours of use.
	lives         map[string]*life
	failureModels map[string]*rul.Model
	predicted     map[string]float64
	counts        counts
	// fence is set while this replica leads (Lead): the comparison every
	// write of the scheduler carries. Only the leader opens work orders.
	fence []clientv3.Cmp
}

// New builds a program; it starts nothing.
func New(cfg Config, client *clientv3.Client, inv *inventory.Inventory, log *slog.Logger, now func() time.Time, tel telemetry.Providers) (*Program, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p := &Program{cfg: cfg, client: client, inv: inv, log: log, now: now,
		models:    etcdview.New(client, modelsPrefix, etcdview.Proto[pb.DeviceModel], log),
		records:   etcdview.New(client, recordsPrefix, etcdview.Proto[pb.DeviceMaintenance], log),
		orders:    etcdview.New(client, ordersPrefix, etcdview.Proto[pb.WorkOrder], log),
		histories: map[string]*maintenance.History{},
		lives:     map[string]*life{}, failureModels: map[string]*rul.Model{}, predicted: map[string]float64{},
	}
	if err := p.registerMetrics(tel); err != nil {
		return nil, fmt.Errorf("maintenance: metrics: %w", err)
	}
	return p, nil
}

// Load reads the catalogue, the records and the orders.
func (p *Program) Load(ctx context.Context) error {
	for _, v := range []interface {
		Load(context.Context) (int64, error)
	}{p.models, p.records, p.orders} {
		if _, err := v.Load(ctx); err != nil {
			return err
		}
	}
	return p.loadFailureModels(ctx)
}

// Lead makes this replica the one whose scheduler opens work orders and
// marks records, until ctx ends (the leadership with it). Every such write
// carries fence, so that a deposed leader's late writes fail. Other
// replicas go on sampling and counting, so that their answers agree.
func (p *Program) Lead(ctx context.Context, fence []clientv3.Cmp) {
	p.mu.Lock()
	p.fence = fence
	p.mu.Unlock()
	p.schedule(ctx, fence, true)
	<-ctx.Done()
	p.mu.Lock()
	p.fence = nil
	p.mu.Unlock()
}

func (p *Program) leading() ([]clientv3.Cmp, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.fence, p.fence != nil
}

// Run follows changes and runs the scheduler until ctx ends; it writes
// only while this replica leads (Lead).
func (p *Program) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, v := range []interface{ Run(context.Context) error }{p.models, p.records, p.orders} {
		wg.Go(func() { v.Run(ctx) })
	}
	defer wg.Wait()
	t := time.NewTicker(p.cfg.ScheduleInterval)
	defer t.Stop()
	for {
		fence, ok := p.leading()
		p.schedule(ctx, fence, ok)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// ApplyModel creates or replaces a model and its plan.
func (p *Program) ApplyModel(ctx context.Context, id string, m *pb.DeviceModel) (*pb.DeviceModel, error) {
	if err := maintenance.ValidateModel(id, m); err != nil {
		return nil, err
	}
	for key, other := range p.modelsByString() {
		if key == m.GetModel() && other.GetName() != "models/"+id {
			return nil, &FieldError{Field: "model", Reason: fmt.Sprintf("%q is already the model string of %s", key, other.GetName())}
		}
	}
	for i, di := range m.GetUdiDis() {
		if other, ok := p.ModelByDI(di); ok && other.GetName() != "models/"+id {
			return nil, &FieldError{Field: fmt.Sprintf("udi_dis[%d]", i), Reason: fmt.Sprintf("%s is already a device identifier of %s", di, other.GetName())}
		}
	}
	m = proto.CloneOf(m)
	m.Name, m.UpdateTime, m.Etag = "models/"+id, timestamppb.New(p.now()), ""
	b, err := proto.Marshal(m)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := p.client.Put(ctx, modelsPrefix+id, string(b))
	if err != nil {
		return nil, fmt.Errorf("maintenance: %w", err)
	}
	p.models.Put(id, m, resp.Header.Revision)
	return modelEtag(m, resp.Header.Revision), nil
}

// Model returns a model by id.
func (p *Program) Model(id string) (*pb.DeviceModel, error) {
	m, rev, ok := p.models.Get(id)
	if !ok {
		return nil, fmt.Errorf("model %s: %w", id, ErrNotFound)
	}
	return modelEtag(m, rev), nil
}

// ModelByDI returns the model a GS1 device identifier belongs to.
func (p *Program) ModelByDI(di string) (*pb.DeviceModel, bool) {
	var found *pb.DeviceModel
	p.models.Range(func(_ string, m *pb.DeviceModel) bool {
		if slices.Contains(m.GetUdiDis(), di) {
			found = m
		}
		return found == nil
	})
	return found, found != nil
}

// Models returns every model, ordered by id.
func (p *Program) Models() []*pb.DeviceModel {
	var out []*pb.DeviceModel
	p.models.Range(func(_ string, m *pb.DeviceModel) bool { out = append(out, m); return true })
	slices.SortFunc(out, func(a, b *pb.DeviceModel) int { return strings.Compare(a.GetName(), b.GetName()) })
	return out
}

// modelsByString maps the model strings devices report to models.
func (p *Program) modelsByString() map[string]*pb.DeviceModel {
	out := map[string]*pb.DeviceModel{}
	p.models.Range(func(_ string, m *pb.DeviceModel) bool { out[m.GetModel()] = m; return true })
	return out
}

func modelEtag(m *pb.DeviceModel, rev int64) *pb.DeviceModel {
	m = proto.CloneOf(m)
	m.Etag = strconv.FormatInt(rev, 10)
	return m
}

func recordEtag(r *pb.DeviceMaintenance, rev int64) *pb.DeviceMaintenance {
	r = proto.CloneOf(r)
	r.Etag = strconv.FormatInt(rev, 10)
	return r
}

func orderEtag(o *pb.WorkOrder, rev int64) *pb.WorkOrder {
	o = proto.CloneOf(o)
	o.Etag = strconv.FormatInt(rev, 10)
	return o
}

// Record returns a device's maintenance record; a device never maintained
// has an empty one that needs an acceptance check.
func (p *Program) Record(device string) *pb.DeviceMaintenance {
	r, rev, ok := p.records.Get(device)
	if !ok {
		return &pb.DeviceMaintenance{Name: "devices/" + device + "/maintenance", ServiceState: pb.ServiceState_SERVICE_STATE_NEEDS_CHECK}
	}
	return recordEtag(r, rev)
}

// newID is a work order id: the date and 8 random characters.
func newID(now time.Time) string {
	return now.UTC().Format("20060102") + "-" + token.ID(8)
}

var nan = math.NaN()

// pmTasks are the ids of a model's scheduled inspection tasks: what a
// CMMS's "last PM date" stands for.
func pmTasks(m *pb.DeviceModel) []string {
	var ids []string
	for _, t := range m.GetTasks() {
		if t.GetKind() == pb.TaskKind_TASK_KIND_PM_INSPECTION {
			ids = append(ids, t.GetId())
		}
	}
	return ids
}

// LastPM is when a device's scheduled inspection was last done: the
// latest of its model's pm-inspection tasks; zero when never or unknown.
func (p *Program) LastPM(device, model string) time.Time {
	m := p.modelsByString()[model]
	var last time.Time
	for _, ts := range p.Record(device).GetTasks() {
		if slices.Contains(pmTasks(m), ts.GetTaskId()) && ts.GetLastDoneTime().AsTime().After(last) {
			last = ts.GetLastDoneTime().AsTime()
		}
	}
	return last
}

// ErrNoPlan is returned for a device whose model has no maintenance plan
// or whose plan has no scheduled inspection.
var ErrNoPlan = errors.New("no maintenance plan with a pm-inspection task")

// RecordLastPM takes a scheduled inspection done elsewhere (a CMMS's last
// PM date) into a device's record: each pm-inspection task of its model
// counts as done at `at`, unless the record has a later one. A device
// without a record is taken to be in service: it is already in use. It
// reports whether the record changed.
func (p *Program) RecordLastPM(ctx context.Context, device, model string, at time.Time) (bool, error) {
	tasks := pmTasks(p.modelsByString()[model])
	if len(tasks) == 0 {
		return false, fmt.Errorf("model %q: %w", model, ErrNoPlan)
	}
	if at.After(p.now()) {
		return false, &FieldError{Field: "last_pm_date", Reason: "in the future"}
	}
	cur, _, known := p.records.Get(device)
	stale := func(r *pb.DeviceMaintenance, id string) bool {
		i := slices.IndexFunc(r.GetTasks(), func(t *pb.TaskState) bool { return t.GetTaskId() == id })
		return i < 0 || r.GetTasks()[i].GetLastDoneTime().AsTime().Before(at)
	}
	if known && !slices.ContainsFunc(tasks, func(id string) bool { return stale(cur, id) }) {
		return false, nil
	}
	err := p.updateRecord(ctx, device, nil, func(r *pb.DeviceMaintenance) {
		if !known {
			r.ServiceState = pb.ServiceState_SERVICE_STATE_IN_SERVICE
		}
		for _, id := range tasks {
			if stale(r, id) {
				setTask(r, &pb.TaskState{TaskId: id, LastDoneTime: timestamppb.New(at), LastWorkOrder: "import"})
			}
		}
	})
	return err == nil, err
}
