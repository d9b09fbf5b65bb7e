package program

import (
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/medfleet/medfleet/inventory"
	"github.com/medfleet/medfleet/maintenance/rul"
	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

const (
	// trajectoriesPrefix/{model}/{work order}: a run-to-failure trajectory.
	trajectoriesPrefix = "/medfleet/v1/trajectories/"
	// failureModelsPrefix/{model}: a trained rul.Model, binary.
	failureModelsPrefix = "/medfleet/v1/failuremodels/"
	// maxLife bounds the observations kept of one device's current life;
	// older ones go first.
	maxLife = 512
	// minTrajectories is the fewest failures a model is trained from.
	minTrajectories = 5
)

// life is one device's telemetry since its last repair (or since it was
// first seen), for the failure model: observations at increasing operating
// hours, counted from the start of this life.
type life struct {
	channels []string
	start    float64 // usage hours when the life began
	hours    []float64
	values   []float64 // observation-major, len(hours)*len(channels)
}

// observe appends a reading when the device has run since the last one.
func (l *life) observe(s *inventory.Summary) {
	if l.channels == nil {
		l.channels = slices.Sorted(maps.Keys(s.Telemetry))
		if !math.IsNaN(s.Battery) {
			l.channels = append(l.channels, "battery")
		}
		l.start = s.UsageHours
	}
	h := s.UsageHours - l.start
	if n := len(l.hours); n > 0 && h <= l.hours[n-1] || len(l.channels) == 0 {
		return
	}
	if len(l.hours) == maxLife {
		l.hours, l.values = l.hours[1:], l.values[len(l.channels):]
	}
	l.hours = append(l.hours, h)
	for _, c := range l.channels {
		v, ok := s.Telemetry[c]
		if c == "battery" {
			v, ok = s.Battery, !math.IsNaN(s.Battery)
		}
		if !ok {
			v = nan
		}
		l.values = append(l.values, v)
	}
}

func (l *life) unit(id string) rul.Unit {
	u := rul.Unit{ID: id, Channels: l.channels}
	k := len(l.channels)
	for i, h := range l.hours {
		u.Observations = append(u.Observations, rul.Observation{Time: h, Values: l.values[i*k : (i+1)*k]})
	}
	return u
}

// observeLife records s in its life and refreshes its prediction; p.mu is
// held.
func (p *Program) observeLife(s *inventory.Summary, m *pb.DeviceModel) {
	if !m.GetPredictFailures() {
		return
	}
	l := p.lives[s.ID]
	if l == nil {
		l = &life{}
		p.lives[s.ID] = l
	}
	l.observe(s)
	fm := p.failureModels[strings.TrimPrefix(m.GetName(), "models/")]
	if fm == nil || len(l.hours) == 0 {
		delete(p.predicted, s.ID)
		return
	}
	if rem, err := fm.Predict(l.unit(s.ID)); err == nil {
		p.predicted[s.ID] = rem
	} else {
		delete(p.predicted, s.ID)
	}
}

// endLife stores a failed device's life as a trajectory, and starts a new
// one: the repair renews the part.
func (p *Program) endLife(ctx context.Context, o *pb.WorkOrder) {
	device := strings.TrimPrefix(o.GetDevice(), "devices/")
	d, err := p.inv.Get(device)
	if err != nil {
		return
	}
	m := p.modelsByString()[d.GetModel()]
	if !m.GetPredictFailures() {
		return
	}
	p.mu.Lock()
	l := p.lives[device]
	delete(p.lives, device)
	delete(p.predicted, device)
	p.mu.Unlock()
	if l == nil || len(l.hours) < 2 {
		return
	}
	tr := &pb.Trajectory{Device: o.GetDevice(), FailureCode: o.GetFailureCode(), WorkOrder: o.GetName(),
		Channels: l.channels, Hours: l.hours, Values: l.values}
	b, err := proto.Marshal(tr)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	key := trajectoriesPrefix + strings.TrimPrefix(m.GetName(), "models/") + "/" + strings.TrimPrefix(o.GetName(), "workOrders/")
	if _, err := p.client.Put(ctx, key, string(b)); err != nil {
		p.log.Warn("cannot store a run-to-failure trajectory", "device", device, "err", err)
	}
}

// TrainFailureModel trains a model's failure model from its stored
// trajectories. The target cap is the median life of the trajectories: no
// prediction says more than a typical device lives.
func (p *Program) TrainFailureModel(ctx context.Context, modelID string) (*pb.FailureModel, error) {
	m, err := p.Model(modelID)
	if err != nil {
		return nil, err
	}
	if !m.GetPredictFailures() {
		return nil, &FieldError{Field: "model", Reason: m.GetName() + " does not keep histories: set predict_failures in its plan"}
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	resp, err := p.client.Get(rctx, trajectoriesPrefix+modelID+"/", clientv3.WithPrefix())
	cancel()
	if err != nil {
		return nil, fmt.Errorf("maintenance: %w", err)
	}
	var units []rul.Unit
	var lives []float64
	for _, kv := range resp.Kvs {
		var tr pb.Trajectory
		if proto.Unmarshal(kv.Value, &tr) != nil || len(tr.GetChannels()) == 0 || len(tr.GetValues()) != len(tr.GetHours())*len(tr.GetChannels()) {
			continue
		}
		l := &life{channels: tr.GetChannels(), hours: tr.GetHours(), values: tr.GetValues()}
		units = append(units, l.unit(tr.GetWorkOrder()))
		lives = append(lives, tr.GetHours()[len(tr.GetHours())-1])
	}
	if len(units) < minTrajectories {
		return nil, fmt.Errorf("%w: %s has %d run-to-failure trajectories, at least %d are needed", ErrState, m.GetName(), len(units), minTrajectories)
	}
	sort.Float64s(lives)
	cfg := rul.DefaultConfig()
	cfg.Cap = lives[len(lives)/2]
	fm, err := rul.Train(ctx, units, cfg)
	if err != nil {
		return nil, &FieldError{Field: "model", Reason: err.Error()}
	}
	b, err := fm.MarshalBinary()
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := p.client.Put(wctx, failureModelsPrefix+modelID, string(b)); err != nil {
		return nil, fmt.Errorf("maintenance: %w", err)
	}
	p.mu.Lock()
	p.failureModels[modelID] = fm
	p.mu.Unlock()
	return &pb.FailureModel{Name: m.GetName() + "/failureModel", Trajectories: int32(len(units)), Channels: fm.Channels(),
		TrainTime: timestamppb.New(p.now())}, nil
}

// loadFailureModels reads the trained failure models.
func (p *Program) loadFailureModels(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := p.client.Get(ctx, failureModelsPrefix, clientv3.WithPrefix())
	if err != nil {
		return fmt.Errorf("maintenance: %w", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, kv := range resp.Kvs {
		fm := new(rul.Model)
		if err := fm.UnmarshalBinary(kv.Value); err != nil {
			p.log.Error("unreadable failure model ignored", "key", string(kv.Key), "err", err)
			continue
		}
		p.failureModels[strings.TrimPrefix(string(kv.Key), failureModelsPrefix)] = fm
	}
	return nil
}
