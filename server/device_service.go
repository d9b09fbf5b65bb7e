package server

import (
	"context"
	"log/slog"
	"strings"

	"github.com/medfleet/medfleet/coap"
	"github.com/medfleet/medfleet/inventory"
	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// deviceService implements medfleet.v1.DeviceService over the inventory.
type deviceService struct {
	pb.UnimplementedDeviceServiceServer
	inv *inventory.Inventory
	log *slog.Logger
}

func (s *deviceService) CreateDevice(ctx context.Context, req *pb.CreateDeviceRequest) (*pb.Device, error) {
	d, err := s.inv.Create(ctx, req.GetDeviceId(), req.GetDevice(), req.GetRequestId())
	return d, grpcError(s.log, "CreateDevice", err)
}

func (s *deviceService) GetDevice(_ context.Context, req *pb.GetDeviceRequest) (*pb.Device, error) {
	id, err := parseDeviceName("name", req.GetName())
	if err != nil {
		return nil, err
	}
	d, err := s.inv.Get(id)
	return d, grpcError(s.log, "GetDevice", err)
}

func (s *deviceService) ListDevices(_ context.Context, req *pb.ListDevicesRequest) (*pb.ListDevicesResponse, error) {
	res, err := s.inv.List(inventory.ListRequest{
		PageSize:           int(req.GetPageSize()),
		PageToken:          req.GetPageToken(),
		Filter:             req.GetFilter(),
		ShowDecommissioned: req.GetShowDecommissioned(),
	})
	if err != nil {
		return nil, grpcError(s.log, "ListDevices", err)
	}
	return &pb.ListDevicesResponse{Devices: res.Devices, NextPageToken: res.NextPageToken, TotalSize: int32(res.TotalSize)}, nil
}

func (s *deviceService) UpdateDevice(ctx context.Context, req *pb.UpdateDeviceRequest) (*pb.Device, error) {
	if req.GetDevice() == nil {
		return nil, invalidArgument("device", "required")
	}
	id, err := parseDeviceName("device.name", req.GetDevice().GetName())
	if err != nil {
		return nil, err
	}
	d, err := s.inv.Update(ctx, id, req.GetDevice(), req.GetUpdateMask().GetPaths(), req.GetDevice().GetEtag())
	return d, grpcError(s.log, "UpdateDevice", err)
}

func (s *deviceService) DeleteDevice(ctx context.Context, req *pb.DeleteDeviceRequest) (*pb.Device, error) {
	id, err := parseDeviceName("name", req.GetName())
	if err != nil {
		return nil, err
	}
	d, err := s.inv.Decommission(ctx, id, req.GetEtag())
	return d, grpcError(s.log, "DeleteDevice", err)
}

// parseDeviceName returns the id in "devices/{device}".
func parseDeviceName(field, name string) (string, error) {
	id, ok := strings.CutPrefix(name, "devices/")
	if !ok {
		return "", invalidArgument(field, "want devices/{device}, got "+quote(name))
	}
	if err := coap.ValidateDeviceID(id); err != nil {
		return "", invalidArgument(field, err.Error())
	}
	return id, nil
}

func quote(s string) string {
	if len(s) > 80 {
		s = s[:80] + "..."
	}
	return `"` + s + `"`
}
