package program

import (
	"context"
	"math"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/medfleet/medfleet/inventory"
	"github.com/medfleet/medfleet/maintenance"
	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// DueQuery narrows the due list.
type DueQuery struct {
	Within                     time.Duration
	Profile, Model, Site, Unit string
}

// Due computes the due list: every task of every device in the program
// that is overdue or due within q.Within, most urgent first.
func (p *Program) Due(q DueQuery) []*pb.DueItem {
	now := p.now()
	models := p.modelsByString()
	open := p.openOrders()
	var items []*pb.DueItem
	p.eachDevice(models, func(s *inventory.Summary, m *pb.DeviceModel, d *maintenance.Device) {
		if q.Profile != "" && s.Profile != q.Profile || q.Model != "" && m.GetName() != "models/"+q.Model ||
			q.Site != "" && s.Site != q.Site || q.Unit != "" && s.Labels["unit"] != q.Unit {
			return
		}
		d.OpenOrders = open[s.ID]
		items = append(items, maintenance.Due(now, d, m, q.Within)...)
		if rem, ok := p.predicted[s.ID]; ok {
			if it := maintenance.PredictedFailure(now, d, m, rem, q.Within); it != nil {
				items = append(items, it)
			}
		}
	})
	maintenance.SortDue(items)
	return items
}

// eachDevice calls fn for every device in service life (not
// decommissioned) whose model is in the catalogue, with what the due
// arithmetic needs. fn runs with the device locked in the inventory.
func (p *Program) eachDevice(models map[string]*pb.DeviceModel, fn func(*inventory.Summary, *pb.DeviceModel, *maintenance.Device)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.inv.Range(func(s *inventory.Summary) bool {
		m, ok := models[s.Model]
		if !ok || s.Decommissioned {
			return true
		}
		rec, _, _ := p.records.Get(s.ID)
		fn(s, m, &maintenance.Device{ID: s.ID, CreateTime: s.CreateTime, UsageHours: s.UsageHours, LastSeen: s.LastSeen,
			Indicators: indicators(s, m), History: p.histories[s.ID], Record: rec})
		return true
	})
}

// indicators are the current values of the indicators m's conditions name.
func indicators(s *inventory.Summary, m *pb.DeviceModel) map[string]float64 {
	names := maintenance.Indicators(m)
	if len(names) == 0 {
		return nil
	}
	out := make(map[string]float64, len(names))
	for _, n := range names {
		if v, ok := indicator(s, n); ok {
			out[n] = v
		}
	}
	return out
}

func indicator(s *inventory.Summary, name string) (float64, bool) {
	if name == maintenance.IndicatorBattery {
		return s.Battery, !math.IsNaN(s.Battery)
	}
	if t, ok := strings.CutPrefix(name, maintenance.IndicatorTelemetry); ok {
		v, ok := s.Telemetry[t]
		return v, ok
	}
	if a, ok := strings.CutPrefix(name, maintenance.IndicatorAlarm); ok {
		v, ok := s.Alarms[a]
		return v, ok
	}
	return 0, false
}

// openOrders maps device -> task -> open work order name.
func (p *Program) openOrders() map[string]map[string]string {
	out := map[string]map[string]string{}
	p.orders.Range(func(_ string, o *pb.WorkOrder) bool {
		if !isOpen(o) {
			return true
		}
		dev := strings.TrimPrefix(o.GetDevice(), "devices/")
		if out[dev] == nil {
			out[dev] = map[string]string{}
		}
		for _, t := range orderTasks(o) {
			out[dev][t] = o.GetName()
		}
		return true
	})
	return out
}

func isOpen(o *pb.WorkOrder) bool {
	return o.GetState() == pb.WorkOrderState_WORK_ORDER_STATE_OPEN || o.GetState() == pb.WorkOrderState_WORK_ORDER_STATE_ASSIGNED
}

// orderTasks are the task ids an order holds open: its plan tasks, or
// "acceptance".
func orderTasks(o *pb.WorkOrder) []string {
	if o.GetType() == pb.WorkOrderType_WORK_ORDER_TYPE_ACCEPTANCE {
		return []string{maintenance.AcceptanceTask}
	}
	return o.GetTaskIds()
}

// Schedule samples usage for projection, sends upgraded devices back to
// needs_check, and opens a work order for every task whose due window has
// opened and that has none. It is idempotent: an order is opened only by
// creating the task's open key, so a restart or a second replica cannot
// open it twice.
func (p *Program) Schedule(ctx context.Context) { p.schedule(ctx, nil, true) }

// schedule is Schedule; it writes only when write is set, each write
// carrying fence.
func (p *Program) schedule(ctx context.Context, fence []clientv3.Cmp, write bool) {
	now := p.now()
	models := p.modelsByString()
	open := p.openOrders()
	type pending struct {
		item   *pb.DueItem
		task   *pb.MaintenanceTask
		model  *pb.DeviceModel
		device string
	}
	var toOpen []pending
	var upgraded []string
	tasks := map[[2]string]int64{}
	p.eachDevice(models, func(s *inventory.Summary, m *pb.DeviceModel, d *maintenance.Device) {
		if p.sample(s, m, now) {
			p.observeLife(s, m)
		}
		d.History = p.histories[s.ID]
		if r := d.Record; r.GetServiceState() == pb.ServiceState_SERVICE_STATE_IN_SERVICE &&
			r.GetAcceptedFirmware() != "" && s.Firmware != "" && s.Firmware != r.GetAcceptedFirmware() {
			upgraded = append(upgraded, s.ID)
		}
		d.OpenOrders = open[s.ID]
		for _, it := range maintenance.Due(now, d, m, maxWindowBefore(m)) {
			if it.GetOverdue() {
				tasks[[2]string{"overdue", riskOf(it)}]++
			} else if !it.GetDueTime().AsTime().After(now) {
				tasks[[2]string{"due", riskOf(it)}]++
			}
			if it.GetWorkOrder() != "" {
				continue
			}
			t := task(m, it.GetTaskId())
			if t != nil && it.GetDueTime().AsTime().Add(-time.Duration(t.GetWindowBeforeDays())*24*time.Hour).After(now) {
				continue // its window has not opened
			}
			toOpen = append(toOpen, pending{it, t, m, s.ID})
		}
	})
	orders := map[string]bool{}
	for _, byTask := range open {
		for _, o := range byTask {
			orders[o] = true
		}
	}
	nOpen := int64(len(orders))
	p.mu.Lock()
	p.counts = counts{tasks: tasks, openOrders: nOpen}
	p.mu.Unlock()
	if !write {
		return
	}
	for _, id := range upgraded {
		if err := p.updateRecord(ctx, id, fence, func(r *pb.DeviceMaintenance) {
			r.ServiceState = pb.ServiceState_SERVICE_STATE_NEEDS_CHECK
		}); err != nil {
			p.log.Warn("cannot mark an upgraded device for an acceptance check", "device", id, "err", err)
		} else {
			p.log.Info("firmware changed since acceptance: the device needs a check", "device", id)
		}
	}
	for _, o := range toOpen {
		wo := &pb.WorkOrder{Device: "devices/" + o.device, Type: pb.WorkOrderType_WORK_ORDER_TYPE_PREVENTIVE,
			TaskIds: []string{o.item.GetTaskId()}, Reason: o.item.GetReason(), Description: o.item.GetDetail(),
			DueTime: o.item.GetDueTime(), Creator: "system", HighRisk: o.model.GetHighRisk(), LifeSupport: o.model.GetLifeSupport()}
		after := 0
		if o.task == nil {
			wo.Type, wo.TaskIds = pb.WorkOrderType_WORK_ORDER_TYPE_ACCEPTANCE, nil
		} else {
			after = int(o.task.GetWindowAfterDays())
		}
		wo.WindowEndTime = timestamppb.New(o.item.GetDueTime().AsTime().Add(time.Duration(after) * 24 * time.Hour))
		if _, err := p.create(ctx, wo, fence); err != nil && ctx.Err() == nil {
			p.log.Warn("cannot open a scheduled work order", "device", o.device, "task", o.item.GetTaskId(), "err", err)
		}
	}
}

// sample records the device's usage and indicators in its history, and
// reports whether it took a sample (one per sample_interval).
func (p *Program) sample(s *inventory.Summary, m *pb.DeviceModel, now time.Time) bool {
	h := p.histories[s.ID]
	if h == nil {
		h = &maintenance.History{}
		p.histories[s.ID] = h
	}
	names := maintenance.Indicators(m)
	vals := make([]float64, len(names))
	for i, n := range names {
		v, ok := indicator(s, n)
		if !ok {
			v = nan
		}
		vals[i] = v
	}
	h.Add(maintenance.Sample{Time: now, UsageHours: s.UsageHours, Values: vals}, p.cfg.SampleInterval)
	return h.Samples[len(h.Samples)-1].Time.Equal(now)
}

func maxWindowBefore(m *pb.DeviceModel) time.Duration {
	d := 0
	for _, t := range m.GetTasks() {
		d = max(d, int(t.GetWindowBeforeDays()))
	}
	return time.Duration(d) * 24 * time.Hour
}

func task(m *pb.DeviceModel, id string) *pb.MaintenanceTask {
	for _, t := range m.GetTasks() {
		if t.GetId() == id {
			return t
		}
	}
	return nil
}

// updateRecord changes a device's record with a compare on its revision.
func (p *Program) updateRecord(ctx context.Context, device string, fence []clientv3.Cmp, change func(*pb.DeviceMaintenance)) error {
	cur, rev, ok := p.records.Get(device)
	r := &pb.DeviceMaintenance{Name: "devices/" + device + "/maintenance", ServiceState: pb.ServiceState_SERVICE_STATE_NEEDS_CHECK}
	if ok {
		r = proto.CloneOf(cur)
	}
	change(r)
	r.Etag = ""
	b, err := proto.Marshal(r)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	key := recordsPrefix + device
	resp, err := p.client.Txn(ctx).If(append(slices.Clone(fence), modRev(key, rev))...).Then(opPut(key, b)).Commit()
	if err != nil {
		return err
	}
	if !resp.Succeeded {
		return ErrConflict
	}
	p.records.Put(device, r, resp.Header.Revision)
	return nil
}
