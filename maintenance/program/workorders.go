package program

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/medfleet/medfleet/maintenance"
	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

func modRev(key string, rev int64) clientv3.Cmp {
	return clientv3.Compare(clientv3.ModRevision(key), "=", rev)
}

func opPut(key string, b []byte) clientv3.Op { return clientv3.OpPut(key, string(b)) }

func openKey(o *pb.WorkOrder, task string) string {
	return openPrefix + strings.TrimPrefix(o.GetDevice(), "devices/") + "/" + task
}

// CreateWorkOrder opens an order by hand: a repair, an acceptance check,
// or preventive tasks ahead of the scheduler.
func (p *Program) CreateWorkOrder(ctx context.Context, o *pb.WorkOrder, creator string) (*pb.WorkOrder, error) {
	if o == nil {
		return nil, &FieldError{Field: "work_order", Reason: "required"}
	}
	device, ok := strings.CutPrefix(o.GetDevice(), "devices/")
	if !ok || device == "" {
		return nil, &FieldError{Field: "work_order.device", Reason: "want devices/{device}"}
	}
	d, err := p.inv.Get(device)
	if err != nil {
		return nil, fmt.Errorf("device %s: %w", device, ErrNotFound)
	}
	n := &pb.WorkOrder{Device: o.GetDevice(), Type: o.GetType(), TaskIds: o.GetTaskIds(), Description: o.GetDescription(),
		DueTime: o.GetDueTime(), FailureCode: o.GetFailureCode(), Major: o.GetMajor(), Assignee: o.GetAssignee(), Creator: creator,
		Reason: pb.DueReason_DUE_REASON_UNSPECIFIED}
	m := p.modelsByString()[d.GetModel()]
	n.HighRisk, n.LifeSupport = m.GetHighRisk(), m.GetLifeSupport()
	switch o.GetType() {
	case pb.WorkOrderType_WORK_ORDER_TYPE_PREVENTIVE:
		if m == nil {
			return nil, &FieldError{Field: "work_order.device", Reason: fmt.Sprintf("model %q has no maintenance plan", d.GetModel())}
		}
		if len(o.GetTaskIds()) == 0 {
			return nil, &FieldError{Field: "work_order.task_ids", Reason: "required for a preventive order"}
		}
		for i, id := range o.GetTaskIds() {
			if task(m, id) == nil {
				return nil, &FieldError{Field: fmt.Sprintf("work_order.task_ids[%d]", i), Reason: fmt.Sprintf("%q is not a task of %s", id, m.GetName())}
			}
		}
	case pb.WorkOrderType_WORK_ORDER_TYPE_REPAIR, pb.WorkOrderType_WORK_ORDER_TYPE_ACCEPTANCE, pb.WorkOrderType_WORK_ORDER_TYPE_RECALL:
		if len(o.GetTaskIds()) > 0 {
			return nil, &FieldError{Field: "work_order.task_ids", Reason: "only for a preventive order"}
		}
	default:
		return nil, &FieldError{Field: "work_order.type", Reason: "required: preventive, repair, acceptance or recall"}
	}
	if n.DueTime == nil {
		n.DueTime = timestamppb.New(p.now())
	}
	n.WindowEndTime = n.DueTime
	return p.create(ctx, n, nil)
}

// create writes a new order and the open keys of its tasks in one
// transaction that requires the keys to be absent: one open order per task.
func (p *Program) create(ctx context.Context, o *pb.WorkOrder, fence []clientv3.Cmp) (*pb.WorkOrder, error) {
	now := p.now()
	o = proto.CloneOf(o)
	id := newID(now)
	o.Name, o.State, o.CreateTime = "workOrders/"+id, pb.WorkOrderState_WORK_ORDER_STATE_OPEN, timestamppb.New(now)
	if o.GetAssignee() != "" {
		o.State = pb.WorkOrderState_WORK_ORDER_STATE_ASSIGNED
	}
	b, err := proto.Marshal(o)
	if err != nil {
		return nil, err
	}
	cmps := slices.Clone(fence)
	ops := []clientv3.Op{opPut(ordersPrefix+id, b)}
	if o.GetType() != pb.WorkOrderType_WORK_ORDER_TYPE_REPAIR {
		for _, t := range orderTasks(o) {
			k := openKey(o, t)
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(k), "=", 0))
			ops = append(ops, clientv3.OpPut(k, o.GetName()))
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := p.client.Txn(ctx).If(cmps...).Then(ops...).Commit()
	if err != nil {
		return nil, fmt.Errorf("maintenance: %w", err)
	}
	if !resp.Succeeded && len(fence) > 0 {
		return nil, fmt.Errorf("%w: a task of this order already has an open work order, or this replica no longer leads", ErrState)
	}
	if !resp.Succeeded {
		return nil, fmt.Errorf("%w: a task of this order already has an open work order", ErrState)
	}
	p.orders.Put(id, o, resp.Header.Revision)
	return orderEtag(o, resp.Header.Revision), nil
}

// WorkOrder returns an order by id.
func (p *Program) WorkOrder(id string) (*pb.WorkOrder, error) {
	o, rev, ok := p.orders.Get(id)
	if !ok {
		return nil, fmt.Errorf("work order %s: %w", id, ErrNotFound)
	}
	return orderEtag(o, rev), nil
}

// WorkOrders lists orders, newest first, optionally of one device and in
// one state.
func (p *Program) WorkOrders(device string, state pb.WorkOrderState) []*pb.WorkOrder {
	var out []*pb.WorkOrder
	p.orders.Range(func(_ string, o *pb.WorkOrder) bool {
		if (device == "" || o.GetDevice() == device) && (state == 0 || o.GetState() == state) {
			out = append(out, o)
		}
		return true
	})
	slices.SortFunc(out, func(a, b *pb.WorkOrder) int {
		return strings.Compare(b.GetName(), a.GetName())
	})
	return out
}

// Assign gives an open order to a technician.
func (p *Program) Assign(ctx context.Context, id, assignee, etag string) (*pb.WorkOrder, error) {
	if assignee == "" {
		return nil, &FieldError{Field: "assignee", Reason: "required"}
	}
	return p.transition(ctx, id, etag, func(o *pb.WorkOrder, _ *pb.DeviceMaintenance) error {
		if !isOpen(o) {
			return fmt.Errorf("%w: %s is %s", ErrState, o.GetName(), stateName(o.GetState()))
		}
		o.State, o.Assignee = pb.WorkOrderState_WORK_ORDER_STATE_ASSIGNED, assignee
		return nil
	})
}

// Cancel ends an open order without the work; the reason is required.
func (p *Program) Cancel(ctx context.Context, id, reason, etag string) (*pb.WorkOrder, error) {
	if strings.TrimSpace(reason) == "" {
		return nil, &FieldError{Field: "reason", Reason: "required: a cancelled order leaves a gap in the maintenance record"}
	}
	return p.transition(ctx, id, etag, func(o *pb.WorkOrder, _ *pb.DeviceMaintenance) error {
		if !isOpen(o) {
			return fmt.Errorf("%w: %s is %s", ErrState, o.GetName(), stateName(o.GetState()))
		}
		o.State, o.CancelReason = pb.WorkOrderState_WORK_ORDER_STATE_CANCELLED, reason
		return nil
	})
}

// Completion is what a technician records when the work is done.
type Completion struct {
	Results      []*pb.TaskResult
	Parts        []string
	FailureCode  string
	MinutesSpent int32
	Time         time.Time // zero: now
	By           string
}

// Complete closes an order. A preventive order resets its tasks' clocks to
// the completion time and the device's usage then; a repair records a
// failure (and a major one sends the device back to needs_check); an
// acceptance check that passed puts the device in service, one that failed
// takes it out.
func (p *Program) Complete(ctx context.Context, id string, c Completion, etag string) (*pb.WorkOrder, error) {
	o, err := p.complete(ctx, id, c, etag)
	if err == nil && o.GetType() == pb.WorkOrderType_WORK_ORDER_TYPE_REPAIR {
		p.endLife(ctx, o)
	}
	return o, err
}

func (p *Program) complete(ctx context.Context, id string, c Completion, etag string) (*pb.WorkOrder, error) {
	now := p.now()
	if c.Time.IsZero() {
		c.Time = now
	}
	if c.Time.After(now.Add(time.Minute)) {
		return nil, &FieldError{Field: "complete_time", Reason: "in the future"}
	}
	if c.MinutesSpent < 0 {
		return nil, &FieldError{Field: "minutes_spent", Reason: "negative"}
	}
	return p.transition(ctx, id, etag, func(o *pb.WorkOrder, r *pb.DeviceMaintenance) error {
		if !isOpen(o) {
			return fmt.Errorf("%w: %s is %s", ErrState, o.GetName(), stateName(o.GetState()))
		}
		for i, res := range c.Results {
			if res.GetTaskId() != maintenance.AcceptanceTask && !slices.Contains(o.GetTaskIds(), res.GetTaskId()) {
				return &FieldError{Field: fmt.Sprintf("results[%d].task_id", i), Reason: fmt.Sprintf("%q is not a task of this order", res.GetTaskId())}
			}
		}
		if o.GetType() == pb.WorkOrderType_WORK_ORDER_TYPE_REPAIR && c.FailureCode == "" && o.GetFailureCode() == "" {
			return &FieldError{Field: "failure_code", Reason: "required to complete a repair: the reliability model learns from it"}
		}
		usage, firmware := 0.0, ""
		if d, err := p.inv.Get(strings.TrimPrefix(o.GetDevice(), "devices/")); err == nil {
			usage, firmware = d.GetStatus().GetUsageSeconds()/3600, d.GetStatus().GetFirmwareVersion()
		}
		o.State, o.CompleteTime, o.CompletedBy = pb.WorkOrderState_WORK_ORDER_STATE_COMPLETED, timestamppb.New(c.Time), c.By
		o.Results, o.Parts, o.MinutesSpent, o.UsageHoursAtCompletion = c.Results, c.Parts, c.MinutesSpent, usage
		if c.FailureCode != "" {
			o.FailureCode = c.FailureCode
		}
		passed := !slices.ContainsFunc(c.Results, func(t *pb.TaskResult) bool { return !t.GetPassed() })
		switch o.GetType() {
		case pb.WorkOrderType_WORK_ORDER_TYPE_PREVENTIVE:
			for _, t := range o.GetTaskIds() {
				setTask(r, &pb.TaskState{TaskId: t, LastDoneTime: o.CompleteTime, LastDoneUsageHours: usage, LastWorkOrder: o.GetName()})
			}
			if !passed {
				r.ServiceState = pb.ServiceState_SERVICE_STATE_OUT_OF_SERVICE
			}
		case pb.WorkOrderType_WORK_ORDER_TYPE_REPAIR:
			r.Failures = append(r.Failures, &pb.Failure{Time: o.CompleteTime, UsageHours: usage, FailureCode: o.GetFailureCode(), WorkOrder: o.GetName()})
			if o.GetMajor() {
				r.ServiceState = pb.ServiceState_SERVICE_STATE_NEEDS_CHECK
			}
		case pb.WorkOrderType_WORK_ORDER_TYPE_ACCEPTANCE:
			r.ServiceState = pb.ServiceState_SERVICE_STATE_OUT_OF_SERVICE
			if passed {
				// A later firmware upgrade sends it back to needs_check.
				r.ServiceState, r.AcceptedFirmware = pb.ServiceState_SERVICE_STATE_IN_SERVICE, firmware
			}
		}
		return nil
	})
}

func setTask(r *pb.DeviceMaintenance, ts *pb.TaskState) {
	for i, t := range r.GetTasks() {
		if t.GetTaskId() == ts.GetTaskId() {
			r.Tasks[i] = ts
			return
		}
	}
	r.Tasks = append(r.Tasks, ts)
}

// transition changes an order and its device's record in one transaction
// that compares both revisions (and the etag, when given), and releases the
// open keys of an order that is no longer open.
func (p *Program) transition(ctx context.Context, id, etag string, change func(*pb.WorkOrder, *pb.DeviceMaintenance) error) (*pb.WorkOrder, error) {
	cur, rev, ok := p.orders.Get(id)
	if !ok {
		return nil, fmt.Errorf("work order %s: %w", id, ErrNotFound)
	}
	if etag != "" && etag != fmt.Sprint(rev) {
		return nil, fmt.Errorf("%w: work order %s has etag %d, not %s", ErrConflict, id, rev, etag)
	}
	o := proto.CloneOf(cur)
	o.Etag = ""
	device := strings.TrimPrefix(o.GetDevice(), "devices/")
	recCur, recRev, recOK := p.records.Get(device)
	r := &pb.DeviceMaintenance{Name: "devices/" + device + "/maintenance", ServiceState: pb.ServiceState_SERVICE_STATE_NEEDS_CHECK}
	if recOK {
		r = proto.CloneOf(recCur)
	}
	r.Etag = ""
	if err := change(o, r); err != nil {
		return nil, err
	}
	ob, err := proto.Marshal(o)
	if err != nil {
		return nil, err
	}
	rb, err := proto.Marshal(r)
	if err != nil {
		return nil, err
	}
	recKey := recordsPrefix + device
	ops := []clientv3.Op{opPut(ordersPrefix+id, ob), opPut(recKey, rb)}
	if !isOpen(o) {
		for _, t := range orderTasks(o) {
			ops = append(ops, clientv3.OpDelete(openKey(o, t)))
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := p.client.Txn(ctx).If(modRev(ordersPrefix+id, rev), modRev(recKey, recRev)).Then(ops...).Commit()
	if err != nil {
		return nil, fmt.Errorf("maintenance: %w", err)
	}
	if !resp.Succeeded {
		return nil, ErrConflict
	}
	p.orders.Put(id, o, resp.Header.Revision)
	p.records.Put(device, r, resp.Header.Revision)
	return orderEtag(o, resp.Header.Revision), nil
}

// Compliance reports on-time completion over [start, end).
func (p *Program) Compliance(start, end time.Time) (*pb.ComplianceReport, error) {
	if !start.Before(end) {
		return nil, &FieldError{Field: "end_time", Reason: "must be after start_time"}
	}
	return maintenance.Compliance(p.WorkOrders("", 0), start, end, p.now()), nil
}

func stateName(s pb.WorkOrderState) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "WORK_ORDER_STATE_"))
}
