package server

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/medfleet/medfleet/internal/telemetry"
	"github.com/medfleet/medfleet/inventory"
	"github.com/medfleet/medfleet/inventory/facility"
	"github.com/medfleet/medfleet/inventory/location"
	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// locationService implements medfleet.v1.LocationService.
type locationService struct {
	pb.UnimplementedLocationServiceServer
	engine     *location.Engine
	facilities *facilities
	inv        *inventory.Inventory
	log        *slog.Logger
}

// facilityError turns the problems of a facility document into one
// InvalidArgument with a field violation per problem, each naming its line.
func facilityError(err error) error {
	var lines []*facility.LineError
	var joined interface{ Unwrap() []error }
	if errors.As(err, &joined) {
		for _, e := range joined.Unwrap() {
			var le *facility.LineError
			if errors.As(e, &le) {
				lines = append(lines, le)
			}
		}
	} else {
		var le *facility.LineError
		if errors.As(err, &le) {
			lines = append(lines, le)
		}
	}
	if len(lines) == 0 {
		return nil
	}
	var msgs []string
	br := &errdetails.BadRequest{}
	for _, le := range lines {
		msgs = append(msgs, le.Error())
		br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{Field: "yaml", Description: le.Error()})
	}
	s := status.New(codes.InvalidArgument, "yaml: "+strings.Join(msgs, "; "))
	if d, err := s.WithDetails(br); err == nil {
		s = d
	}
	return s.Err()
}

func (s *locationService) ApplyFacility(ctx context.Context, req *pb.ApplyFacilityRequest) (*pb.Facility, error) {
	if req.GetYaml() == "" {
		return nil, invalidArgument("yaml", "required")
	}
	f, err := s.facilities.Apply(ctx, req.GetYaml(), req.GetEtag(), req.GetValidateOnly())
	if ferr := facilityError(err); ferr != nil {
		return nil, ferr
	}
	if errors.Is(err, errFacilityConflict) {
		return nil, status.Error(codes.Aborted, err.Error())
	}
	return f, grpcError(s.log, "ApplyFacility", err)
}

func (s *locationService) GetFacility(context.Context, *pb.GetFacilityRequest) (*pb.Facility, error) {
	f, err := s.facilities.Get()
	return f, grpcError(s.log, "GetFacility", err)
}

// deviceID reads "devices/{id}", an id, or "tags/{EPC}".
func (s *locationService) deviceID(ctx context.Context, name string) (string, error) {
	if epc, ok := strings.CutPrefix(name, "tags/"); ok {
		tag, err := inventory.NormalizeTag(epc)
		if err != nil {
			return "", invalidArgument("device", err.Error())
		}
		id, ok := s.inv.DeviceByTag(tag)
		if !ok {
			return "", status.Errorf(codes.NotFound, "no device carries tag %s", tag)
		}
		name = id
	}
	id := strings.TrimPrefix(name, "devices/")
	if id == "" {
		return "", invalidArgument("device", "required: devices/{device}, a device id or tags/{EPC}")
	}
	if p := principalFrom(ctx); p != nil && p.Site != "" {
		d, err := s.inv.Get(id)
		if err != nil || !inScope(ctx, d) {
			return "", status.Errorf(codes.NotFound, "devices/%s not found", id)
		}
	}
	return id, nil
}

func (s *locationService) Locate(ctx context.Context, req *pb.LocateRequest) (*pb.DeviceLocation, error) {
	id, err := s.deviceID(ctx, req.GetDevice())
	if err != nil {
		return nil, err
	}
	l, err := s.engine.Locate(id)
	return l, grpcError(s.log, "Locate", err)
}

func (s *locationService) FindNearest(ctx context.Context, req *pb.FindNearestRequest) (*pb.FindNearestResponse, error) {
	if req.GetLimit() < 0 {
		return nil, invalidArgument("limit", "negative")
	}
	near, err := s.engine.Nearest(location.Query{Profile: req.GetProfile(), Model: req.GetModel(), Near: req.GetNear(),
		Availability: req.GetAvailability(), Limit: int(req.GetLimit()), IncludeStale: req.GetIncludeStale()})
	if err != nil {
		return nil, grpcError(s.log, "FindNearest", err)
	}
	resp := &pb.FindNearestResponse{}
	p := principalFrom(ctx)
	for _, n := range near {
		if p != nil && p.Site != "" && n.Location.GetPlace().GetSite() != p.Site {
			continue
		}
		resp.Devices = append(resp.Devices, &pb.NearbyDevice{Location: n.Location, DistanceM: n.Metres})
	}
	return resp, nil
}

func (s *locationService) WatchLocations(req *pb.WatchLocationsRequest, stream pb.LocationService_WatchLocationsServer) error {
	w := s.engine.Watch(req.GetUnit(), req.GetProfile())
	defer w.Close()
	p := principalFrom(stream.Context())
	for {
		select {
		case <-stream.Context().Done():
			return nil
		case <-w.Dropped():
			return status.Error(codes.ResourceExhausted, location.ErrSlow.Error())
		case ev := <-w.Events():
			if p != nil && p.Site != "" && ev.GetLocation() != nil && ev.GetLocation().GetPlace().GetSite() != p.Site {
				continue
			}
			if err := stream.Send(ev); err != nil {
				return err
			}
		}
	}
}

func (s *locationService) ListLocationHistory(ctx context.Context, req *pb.ListLocationHistoryRequest) (*pb.ListLocationHistoryResponse, error) {
	id, err := s.deviceID(ctx, req.GetDevice())
	if err != nil {
		return nil, err
	}
	var from, to time.Time
	if req.GetStartTime() != nil {
		from = req.GetStartTime().AsTime()
	}
	if req.GetEndTime() != nil {
		to = req.GetEndTime().AsTime()
	}
	changes, err := s.engine.History(id, from, to)
	if err != nil {
		return nil, grpcError(s.log, "ListLocationHistory", err)
	}
	start, end, next, err := pageOf(len(changes), int(req.GetPageSize()), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	return &pb.ListLocationHistoryResponse{Changes: changes[start:end], NextPageToken: next}, nil
}

func (s *locationService) CheckIn(ctx context.Context, req *pb.CheckInRequest) (*pb.DeviceLocation, error) {
	id, err := s.deviceID(ctx, req.GetDevice())
	if err != nil {
		return nil, err
	}
	l, err := s.engine.CheckIn(id, req.GetZone(), principalFrom(ctx).Name(), time.Now())
	return l, grpcError(s.log, "CheckIn", err)
}

func (s *locationService) SetAvailability(ctx context.Context, req *pb.SetAvailabilityRequest) (*pb.DeviceLocation, error) {
	id, err := s.deviceID(ctx, req.GetDevice())
	if err != nil {
		return nil, err
	}
	if _, err := s.inv.SetAvailability(ctx, id, req.GetAvailability()); err != nil {
		return nil, grpcError(s.log, "SetAvailability", err)
	}
	l, err := s.engine.Locate(id)
	return l, grpcError(s.log, "SetAvailability", err)
}

func (s *locationService) ListParLevels(ctx context.Context, req *pb.ListParLevelsRequest) (*pb.ListParLevelsResponse, error) {
	return &pb.ListParLevelsResponse{Levels: s.engine.ParLevels(req.GetUnit(), req.GetBelowOnly())}, nil
}

// locationDirectory is the inventory as the location engine sees it.
type locationDirectory struct{ inv *inventory.Inventory }

func (d locationDirectory) DeviceByTag(epc string) (string, bool) { return d.inv.DeviceByTag(epc) }

func (d locationDirectory) Device(id string) (location.Device, bool) {
	var out location.Device
	ok := d.inv.Lookup(id, func(s *inventory.Summary) {
		out = location.Device{Profile: s.Profile, Model: s.Model, Availability: s.Availability, Decommissioned: s.Decommissioned}
	})
	return out, ok
}

// pageOf cuts a page of n items: offsets as page tokens.
func pageOf(n, size int, token string) (start, end int, next string, err error) {
	switch {
	case size < 0:
		return 0, 0, "", invalidArgument("page_size", "negative")
	case size == 0:
		size = 100
	case size > 1000:
		size = 1000
	}
	if token != "" {
		start, err = strconv.Atoi(token)
		if err != nil || start < 0 || start > n {
			return 0, 0, "", invalidArgument("page_token", "not a token this list returned")
		}
	}
	end = min(start+size, n)
	if end < n {
		next = strconv.Itoa(end)
	}
	return start, end, next, nil
}

// availabilityRelay hands the inventory's availability changes to the
// location engine on a goroutine of its own: the inventory reports them
// with the device locked, and the engine, which reads devices under its
// own lock, must not be entered from there.
type availabilityRelay struct {
	engine *location.Engine
	mu     sync.Mutex
	queued map[string]time.Time
	wake   chan struct{}
}

func newAvailabilityRelay(engine *location.Engine) *availabilityRelay {
	return &availabilityRelay{engine: engine, queued: map[string]time.Time{}, wake: make(chan struct{}, 1)}
}

// note queues a change without blocking.
func (r *availabilityRelay) note(device string, _ pb.Availability, at time.Time) {
	r.mu.Lock()
	r.queued[device] = at
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

func (r *availabilityRelay) run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-r.wake:
		}
		r.mu.Lock()
		queued := r.queued
		r.queued = map[string]time.Time{}
		r.mu.Unlock()
		for dev, at := range queued {
			r.engine.AvailabilityChanged(dev, at)
		}
	}
}

// registerLocationMetrics exports how many devices are located, fresh or
// stale, and the moves so far; read at each scrape.
func registerLocationMetrics(tel telemetry.Providers, e *location.Engine) error {
	m := tel.Meter.Meter(telemetry.ScopeName + "/location")
	if _, err := m.Int64ObservableGauge("medfleet.location.devices", metric.WithUnit("{device}"),
		metric.WithDescription("Devices with a location, by freshness: fresh (evidence within location.stale_after) or stale."),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			s := e.Stats()
			o.Observe(int64(s.Located-s.Stale), metric.WithAttributes(attribute.String("freshness", "fresh")))
			o.Observe(int64(s.Stale), metric.WithAttributes(attribute.String("freshness", "stale")))
			return nil
		})); err != nil {
		return err
	}
	_, err := m.Int64ObservableCounter("medfleet.location.moves", metric.WithUnit("{move}"),
		metric.WithDescription("Moves of devices from zone to zone, by any source, since start."),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(int64(e.Stats().Moves))
			return nil
		}))
	return err
}
