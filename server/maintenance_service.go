package server

import (
	"context"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/medfleet/medfleet/inventory"
	"github.com/medfleet/medfleet/maintenance/program"
	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// maintenanceService implements medfleet.v1.MaintenanceService over the
// maintenance program.
type maintenanceService struct {
	pb.UnimplementedMaintenanceServiceServer
	prog *program.Program
	inv  *inventory.Inventory
	log  *slog.Logger
}

// deviceInScope refuses a device outside a site-confined caller's site,
// as NotFound, as the device service does.
func (s *maintenanceService) deviceInScope(ctx context.Context, device string) error {
	if p := principalFrom(ctx); p == nil || p.Site == "" {
		return nil
	}
	d, err := s.inv.Get(strings.TrimPrefix(device, "devices/"))
	if err != nil || !inScope(ctx, d) {
		return status.Errorf(codes.NotFound, "%s not found", device)
	}
	return nil
}

// orderInScope is deviceInScope for the device of a work order.
func (s *maintenanceService) orderInScope(ctx context.Context, id string) error {
	o, err := s.prog.WorkOrder(id)
	if err != nil {
		return grpcError(s.log, "maintenance", err)
	}
	return s.deviceInScope(ctx, o.GetDevice())
}

func (s *maintenanceService) ApplyDeviceModel(ctx context.Context, req *pb.ApplyDeviceModelRequest) (*pb.DeviceModel, error) {
	m, err := s.prog.ApplyModel(ctx, req.GetModelId(), req.GetDeviceModel())
	return m, grpcError(s.log, "ApplyDeviceModel", err)
}

func (s *maintenanceService) GetDeviceModel(_ context.Context, req *pb.GetDeviceModelRequest) (*pb.DeviceModel, error) {
	id, ok := strings.CutPrefix(req.GetName(), "models/")
	if !ok || id == "" {
		return nil, invalidArgument("name", "want models/{model}, got "+quote(req.GetName()))
	}
	m, err := s.prog.Model(id)
	return m, grpcError(s.log, "GetDeviceModel", err)
}

func (s *maintenanceService) ListDeviceModels(_ context.Context, req *pb.ListDeviceModelsRequest) (*pb.ListDeviceModelsResponse, error) {
	models := s.prog.Models()
	page, next, err := offsetPage(len(models), int(req.GetPageSize()), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	return &pb.ListDeviceModelsResponse{DeviceModels: models[page.from:page.to], NextPageToken: next}, nil
}

func (s *maintenanceService) ListDueItems(ctx context.Context, req *pb.ListDueItemsRequest) (*pb.ListDueItemsResponse, error) {
	within := 30 * 24 * time.Hour
	if w := req.GetWithin(); w != nil {
		if err := w.CheckValid(); err != nil || w.AsDuration() < 0 || w.AsDuration() > 3650*24*time.Hour {
			return nil, invalidArgument("within", "between 0 and 3650 days")
		}
		within = w.AsDuration()
	}
	site := req.GetSite()
	if p := principalFrom(ctx); p != nil && p.Site != "" {
		if site != "" && site != p.Site {
			return nil, invalidArgument("site", "you are confined to site "+p.Site)
		}
		site = p.Site
	}
	items := s.prog.Due(program.DueQuery{Within: within, Profile: req.GetProfile(), Model: req.GetModel(), Site: site, Unit: req.GetUnit()})
	page, next, err := offsetPage(len(items), int(req.GetPageSize()), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	return &pb.ListDueItemsResponse{Items: items[page.from:page.to], NextPageToken: next, TotalSize: int32(len(items))}, nil
}

func (s *maintenanceService) GetDeviceMaintenance(ctx context.Context, req *pb.GetDeviceMaintenanceRequest) (*pb.DeviceMaintenance, error) {
	id, err := parseDeviceName("name", strings.TrimSuffix(req.GetName(), "/maintenance"))
	if err != nil {
		return nil, err
	}
	if err := s.deviceInScope(ctx, "devices/"+id); err != nil {
		return nil, err
	}
	if _, err := s.inv.Get(id); err != nil {
		return nil, grpcError(s.log, "GetDeviceMaintenance", err)
	}
	return s.prog.Record(id), nil
}

func (s *maintenanceService) CreateWorkOrder(ctx context.Context, req *pb.CreateWorkOrderRequest) (*pb.WorkOrder, error) {
	if err := s.deviceInScope(ctx, req.GetWorkOrder().GetDevice()); err != nil {
		return nil, err
	}
	o, err := s.prog.CreateWorkOrder(ctx, req.GetWorkOrder(), principalFrom(ctx).Name())
	return o, grpcError(s.log, "CreateWorkOrder", err)
}

func (s *maintenanceService) GetWorkOrder(ctx context.Context, req *pb.GetWorkOrderRequest) (*pb.WorkOrder, error) {
	id, err := workOrderID(req.GetName())
	if err != nil {
		return nil, err
	}
	if err := s.orderInScope(ctx, id); err != nil {
		return nil, err
	}
	o, err := s.prog.WorkOrder(id)
	return o, grpcError(s.log, "GetWorkOrder", err)
}

func (s *maintenanceService) ListWorkOrders(ctx context.Context, req *pb.ListWorkOrdersRequest) (*pb.ListWorkOrdersResponse, error) {
	orders := s.prog.WorkOrders(req.GetDevice(), req.GetState())
	if p := principalFrom(ctx); p != nil && p.Site != "" {
		orders = slices.DeleteFunc(orders, func(o *pb.WorkOrder) bool { return s.deviceInScope(ctx, o.GetDevice()) != nil })
	}
	page, next, err := offsetPage(len(orders), int(req.GetPageSize()), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	return &pb.ListWorkOrdersResponse{WorkOrders: orders[page.from:page.to], NextPageToken: next}, nil
}

func (s *maintenanceService) AssignWorkOrder(ctx context.Context, req *pb.AssignWorkOrderRequest) (*pb.WorkOrder, error) {
	id, err := workOrderID(req.GetName())
	if err != nil {
		return nil, err
	}
	if err := s.orderInScope(ctx, id); err != nil {
		return nil, err
	}
	o, err := s.prog.Assign(ctx, id, req.GetAssignee(), req.GetEtag())
	return o, grpcError(s.log, "AssignWorkOrder", err)
}

func (s *maintenanceService) CompleteWorkOrder(ctx context.Context, req *pb.CompleteWorkOrderRequest) (*pb.WorkOrder, error) {
	id, err := workOrderID(req.GetName())
	if err != nil {
		return nil, err
	}
	if err := s.orderInScope(ctx, id); err != nil {
		return nil, err
	}
	c := program.Completion{Results: req.GetResults(), Parts: req.GetParts(), FailureCode: req.GetFailureCode(),
		MinutesSpent: req.GetMinutesSpent(), By: principalFrom(ctx).Name()}
	if t := req.GetCompleteTime(); t != nil {
		c.Time = t.AsTime()
	}
	o, err := s.prog.Complete(ctx, id, c, req.GetEtag())
	return o, grpcError(s.log, "CompleteWorkOrder", err)
}

func (s *maintenanceService) CancelWorkOrder(ctx context.Context, req *pb.CancelWorkOrderRequest) (*pb.WorkOrder, error) {
	id, err := workOrderID(req.GetName())
	if err != nil {
		return nil, err
	}
	if err := s.orderInScope(ctx, id); err != nil {
		return nil, err
	}
	o, err := s.prog.Cancel(ctx, id, req.GetReason(), req.GetEtag())
	return o, grpcError(s.log, "CancelWorkOrder", err)
}

func (s *maintenanceService) GetComplianceReport(_ context.Context, req *pb.GetComplianceReportRequest) (*pb.ComplianceReport, error) {
	if req.GetStartTime() == nil || req.GetEndTime() == nil {
		return nil, invalidArgument("start_time", "start_time and end_time are required")
	}
	r, err := s.prog.Compliance(req.GetStartTime().AsTime(), req.GetEndTime().AsTime())
	return r, grpcError(s.log, "GetComplianceReport", err)
}

func (s *maintenanceService) GetReliabilityReport(_ context.Context, req *pb.GetReliabilityReportRequest) (*pb.ReliabilityReport, error) {
	id, ok := strings.CutPrefix(req.GetModel(), "models/")
	if !ok || id == "" {
		return nil, invalidArgument("model", "want models/{model}, got "+quote(req.GetModel()))
	}
	r, err := s.prog.Reliability(id, req.GetTargetReliability())
	return r, grpcError(s.log, "GetReliabilityReport", err)
}

func (s *maintenanceService) TrainFailureModel(ctx context.Context, req *pb.TrainFailureModelRequest) (*pb.FailureModel, error) {
	id, ok := strings.CutPrefix(req.GetModel(), "models/")
	if !ok || id == "" {
		return nil, invalidArgument("model", "want models/{model}, got "+quote(req.GetModel()))
	}
	fm, err := s.prog.TrainFailureModel(ctx, id)
	return fm, grpcError(s.log, "TrainFailureModel", err)
}

func workOrderID(name string) (string, error) {
	id, ok := strings.CutPrefix(name, "workOrders/")
	if !ok || id == "" || strings.Contains(id, "/") {
		return "", invalidArgument("name", "want workOrders/{id}, got "+quote(name))
	}
	return id, nil
}

type span struct{ from, to int }

// offsetPage pages through a list the server computed whole: the token is
// the offset of the next page.
func offsetPage(n, size int, token string) (span, string, error) {
	switch {
	case size < 0:
		return span{}, "", invalidArgument("page_size", "negative")
	case size == 0:
		size = 100
	case size > 1000:
		size = 1000
	}
	from := 0
	if token != "" {
		v, err := strconv.Atoi(token)
		if err != nil || v < 0 {
			return span{}, "", invalidArgument("page_token", "not a token from a previous page")
		}
		from = min(v, n)
	}
	to := min(from+size, n)
	next := ""
	if to < n {
		next = strconv.Itoa(to)
	}
	return span{from, to}, next, nil
}
