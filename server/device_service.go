package server

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/medfleet/medfleet/coap"
	"github.com/medfleet/medfleet/inventory"
	"github.com/medfleet/medfleet/inventory/location"
	"github.com/medfleet/medfleet/inventory/udi"
	"github.com/medfleet/medfleet/maintenance/program"
	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// deviceService implements medfleet.v1.DeviceService over the inventory.
type deviceService struct {
	pb.UnimplementedDeviceServiceServer
	inv *inventory.Inventory
	// For ImportDevices and ExportDevices: where devices are and when they
	// were last inspected. Either may be nil.
	locations *location.Engine
	prog      *program.Program
	// afterImport runs after an import changed devices: recall matching.
	afterImport func(context.Context)
	log         *slog.Logger
}

// inScope reports whether the caller may see d: callers confined to a
// site see only that site's devices.
func inScope(ctx context.Context, d *pb.Device) bool {
	p := principalFrom(ctx)
	return p == nil || p.Site == "" || d.GetSite() == p.Site
}

// get returns a device the caller may see; others are NotFound, so that
// a confined caller cannot learn which ids exist elsewhere.
func (s *deviceService) get(ctx context.Context, field, name string) (string, *pb.Device, error) {
	id, err := parseDeviceName(field, name)
	if err != nil {
		return "", nil, err
	}
	d, err := s.inv.Get(id)
	if err == nil && !inScope(ctx, d) {
		err = fmt.Errorf("device %s: %w", id, inventory.ErrNotFound)
	}
	return id, d, err
}

func (s *deviceService) CreateDevice(ctx context.Context, req *pb.CreateDeviceRequest) (*pb.Device, error) {
	if site := principalFrom(ctx).Site; site != "" {
		switch dev := req.GetDevice(); {
		case dev == nil:
		case dev.GetSite() == "":
			dev.Site = site
		case dev.GetSite() != site:
			return nil, status.Errorf(codes.PermissionDenied, "device.site: you may create devices of site %s only", site)
		}
	}
	id := req.GetDeviceId()
	if id == "" {
		var err error
		if id, err = newDeviceID(req.GetDevice()); err != nil {
			return nil, err
		}
	}
	d, err := s.inv.Create(ctx, id, req.GetDevice(), req.GetRequestId())
	return d, grpcError(s.log, "CreateDevice", err)
}

// newDeviceID makes the id of a device created without one: of its asset
// tag, else of its UDI's device identifier and serial number; "" when it
// has neither, which Create refuses.
func newDeviceID(d *pb.Device) (string, error) {
	if t := d.GetAssetTag(); t != "" {
		return idFromAssetTag(t), nil
	}
	if d.GetUdi() == "" {
		return "", nil
	}
	u, err := udi.Parse(d.GetUdi())
	if err != nil {
		return "", invalidArgument("device.udi", strings.TrimPrefix(err.Error(), "udi: "))
	}
	if u.Serial == "" {
		return "", invalidArgument("device_id", "required: the UDI has no serial number (21) to make one of")
	}
	return idFromAssetTag(u.DI + "-" + u.Serial), nil
}

func (s *deviceService) GetDevice(ctx context.Context, req *pb.GetDeviceRequest) (*pb.Device, error) {
	_, d, err := s.get(ctx, "name", req.GetName())
	return d, grpcError(s.log, "GetDevice", err)
}

func (s *deviceService) ListDevices(ctx context.Context, req *pb.ListDevicesRequest) (*pb.ListDevicesResponse, error) {
	res, err := s.inv.List(inventory.ListRequest{
		PageSize:           int(req.GetPageSize()),
		PageToken:          req.GetPageToken(),
		Filter:             req.GetFilter(),
		ShowDecommissioned: req.GetShowDecommissioned(),
		Site:               principalFrom(ctx).Site,
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
	id, _, err := s.get(ctx, "device.name", req.GetDevice().GetName())
	if err != nil {
		return nil, grpcError(s.log, "UpdateDevice", err)
	}
	if site := principalFrom(ctx).Site; site != "" && req.GetDevice().GetSite() != site &&
		(slices.Contains(req.GetUpdateMask().GetPaths(), "site") || slices.Contains(req.GetUpdateMask().GetPaths(), "*")) {
		return nil, status.Errorf(codes.PermissionDenied, "device.site: you may not move a device out of site %s", site)
	}
	d, err := s.inv.Update(ctx, id, req.GetDevice(), req.GetUpdateMask().GetPaths(), req.GetDevice().GetEtag())
	return d, grpcError(s.log, "UpdateDevice", err)
}

func (s *deviceService) DeleteDevice(ctx context.Context, req *pb.DeleteDeviceRequest) (*pb.Device, error) {
	id, _, err := s.get(ctx, "name", req.GetName())
	if err != nil {
		return nil, grpcError(s.log, "DeleteDevice", err)
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
