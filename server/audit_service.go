package server

import (
	"context"
	"log/slog"

	"github.com/medfleet/medfleet/audit"
	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// auditService implements medfleet.v1.AuditService: reading only.
type auditService struct {
	pb.UnimplementedAuditServiceServer
	log *audit.Log
	slg *slog.Logger
}

func (s *auditService) ListAuditRecords(ctx context.Context, req *pb.ListAuditRecordsRequest) (*pb.ListAuditRecordsResponse, error) {
	res, err := s.log.List(ctx, req.GetFilter(), req.GetStartSequence(), int(req.GetPageSize()), req.GetPageToken())
	if err != nil {
		return nil, grpcError(s.slg, "ListAuditRecords", err)
	}
	return &pb.ListAuditRecordsResponse{Records: res.Records, NextPageToken: res.NextPageToken,
		HeadSequence: res.HeadSequence, HeadHash: res.HeadHash}, nil
}
