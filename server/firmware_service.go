package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/medfleet/medfleet/firmware"
	"github.com/medfleet/medfleet/firmware/manifest"
	"github.com/medfleet/medfleet/firmware/rollout"
	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// loadSigningKeys reads the trusted firmware signing keys (PEM); without a
// file there are none, and every upload is refused.
func loadSigningKeys(path string) (manifest.Keys, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("firmware.trusted_keys: %w", err)
	}
	keys, err := manifest.ParsePublicKeys(b)
	if err != nil {
		return nil, fmt.Errorf("firmware.trusted_keys: %s: %w", path, err)
	}
	return keys, nil
}

// maxChunk bounds one message of an upload.
const maxChunk = 1 << 20

// firmwareService implements medfleet.v1.FirmwareService.
type firmwareService struct {
	pb.UnimplementedFirmwareServiceServer
	store *firmware.Store
	log   *slog.Logger
}

func (s *firmwareService) UploadArtifact(stream pb.FirmwareService_UploadArtifactServer) error {
	ctx := stream.Context()
	first, err := stream.Recv()
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "metadata: no first message: %v", err)
	}
	meta := first.GetMetadata()
	if meta == nil {
		return invalidArgument("metadata", "the first message must carry the metadata, the next ones the bytes")
	}
	streamAuditTarget(ctx, "", "version="+meta.GetVersion())
	body := &uploadReader{stream: stream}
	a, err := s.store.Upload(ctx, meta, body, principalFrom(ctx).Name())
	if body.err != nil {
		return body.err
	}
	if err != nil {
		return grpcError(s.log, "UploadArtifact", err)
	}
	streamAuditTarget(ctx, a.GetName(), "version="+a.GetVersion()+" key="+a.GetSigningKeyId())
	return stream.SendAndClose(a)
}

// uploadReader reads the bytes of an upload from its stream; err is a
// gRPC status for the caller when the stream itself went wrong.
type uploadReader struct {
	stream pb.FirmwareService_UploadArtifactServer
	buf    []byte
	err    error
}

func (r *uploadReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		m, err := r.stream.Recv()
		if errors.Is(err, io.EOF) {
			return 0, io.EOF
		}
		if err != nil {
			r.err = err
			return 0, err
		}
		if m.GetMetadata() != nil {
			r.err = invalidArgument("metadata", "only the first message carries metadata")
			return 0, r.err
		}
		if len(m.GetChunk()) > maxChunk {
			r.err = invalidArgument("chunk", "larger than 1 MiB")
			return 0, r.err
		}
		r.buf = m.GetChunk()
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

func (s *firmwareService) GetArtifact(_ context.Context, req *pb.GetArtifactRequest) (*pb.Artifact, error) {
	a, err := s.store.Get(req.GetName())
	return a, grpcError(s.log, "GetArtifact", err)
}

func (s *firmwareService) ListArtifacts(_ context.Context, req *pb.ListArtifactsRequest) (*pb.ListArtifactsResponse, error) {
	if req.GetPageSize() < 0 {
		return nil, invalidArgument("page_size", "negative")
	}
	as, next, err := s.store.List(req.GetModel(), int(req.GetPageSize()), req.GetPageToken())
	if err != nil {
		return nil, grpcError(s.log, "ListArtifacts", err)
	}
	return &pb.ListArtifactsResponse{Artifacts: as, NextPageToken: next}, nil
}

func (s *firmwareService) DeleteArtifact(ctx context.Context, req *pb.DeleteArtifactRequest) (*emptypb.Empty, error) {
	return &emptypb.Empty{}, grpcError(s.log, "DeleteArtifact", s.store.Delete(ctx, req.GetName()))
}

func (s *firmwareService) GetFirmwarePolicy(_ context.Context, req *pb.GetFirmwarePolicyRequest) (*pb.FirmwarePolicy, error) {
	p, err := s.store.Policy(req.GetModel())
	return p, grpcError(s.log, "GetFirmwarePolicy", err)
}

func (s *firmwareService) UpdateFirmwarePolicy(ctx context.Context, req *pb.UpdateFirmwarePolicyRequest) (*pb.FirmwarePolicy, error) {
	p, err := s.store.UpdatePolicy(ctx, req.GetPolicy())
	return p, grpcError(s.log, "UpdateFirmwarePolicy", err)
}

func (s *firmwareService) ListFirmwarePolicies(context.Context, *pb.ListFirmwarePoliciesRequest) (*pb.ListFirmwarePoliciesResponse, error) {
	return &pb.ListFirmwarePoliciesResponse{Policies: s.store.Policies()}, nil
}

// rolloutService implements medfleet.v1.RolloutService.
type rolloutService struct {
	pb.UnimplementedRolloutServiceServer
	ctl  *rollout.Controller
	prop propagation.TextMapPropagator
	log  *slog.Logger
}

func (s *rolloutService) CreateRollout(ctx context.Context, req *pb.CreateRolloutRequest) (*pb.Rollout, error) {
	carrier := propagation.MapCarrier{}
	if trace.SpanContextFromContext(ctx).IsValid() {
		s.prop.Inject(ctx, carrier)
	}
	r, err := s.ctl.Create(ctx, req.GetRolloutId(), req.GetRollout(), principalFrom(ctx).Name(), carrier["traceparent"], req.GetValidateOnly())
	return r, grpcError(s.log, "CreateRollout", err)
}

func (s *rolloutService) GetRollout(_ context.Context, req *pb.GetRolloutRequest) (*pb.Rollout, error) {
	r, err := s.ctl.Get(req.GetName())
	return r, grpcError(s.log, "GetRollout", err)
}

func (s *rolloutService) ListRollouts(_ context.Context, req *pb.ListRolloutsRequest) (*pb.ListRolloutsResponse, error) {
	rs, next, err := s.ctl.List(req.GetState(), int(req.GetPageSize()), req.GetPageToken())
	if err != nil {
		return nil, grpcError(s.log, "ListRollouts", err)
	}
	return &pb.ListRolloutsResponse{Rollouts: rs, NextPageToken: next}, nil
}

func (s *rolloutService) ListRolloutDevices(_ context.Context, req *pb.ListRolloutDevicesRequest) (*pb.ListRolloutDevicesResponse, error) {
	ds, next, err := s.ctl.Devices(req.GetRollout(), req.GetState(), int(req.GetWave()), int(req.GetPageSize()), req.GetPageToken())
	if err != nil {
		return nil, grpcError(s.log, "ListRolloutDevices", err)
	}
	return &pb.ListRolloutDevicesResponse{Devices: ds, NextPageToken: next}, nil
}

func (s *rolloutService) PauseRollout(ctx context.Context, req *pb.PauseRolloutRequest) (*pb.Rollout, error) {
	r, err := s.ctl.Pause(ctx, req.GetName(), req.GetReason(), req.GetEtag(), principalFrom(ctx).Name())
	return r, grpcError(s.log, "PauseRollout", err)
}

func (s *rolloutService) ResumeRollout(ctx context.Context, req *pb.ResumeRolloutRequest) (*pb.Rollout, error) {
	r, err := s.ctl.Resume(ctx, req.GetName(), req.GetEtag(), principalFrom(ctx).Name())
	return r, grpcError(s.log, "ResumeRollout", err)
}

func (s *rolloutService) AbortRollout(ctx context.Context, req *pb.AbortRolloutRequest) (*pb.Rollout, error) {
	r, err := s.ctl.Abort(ctx, req.GetName(), req.GetReason(), req.GetEtag(), principalFrom(ctx).Name())
	return r, grpcError(s.log, "AbortRollout", err)
}
