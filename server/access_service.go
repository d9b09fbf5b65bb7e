package server

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/medfleet/medfleet/access"
	"github.com/medfleet/medfleet/internal/pki"
	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// accessService implements medfleet.v1.AccessService.
type accessService struct {
	pb.UnimplementedAccessServiceServer
	users *access.Store
	// clientCA signs users' certificates; nil when the operator brought
	// their own client CA, whose key medfleetd does not hold.
	clientCA *pki.CA
	log      *slog.Logger
	now      func() time.Time
}

func (s *accessService) GetCaller(ctx context.Context, _ *pb.GetCallerRequest) (*pb.Caller, error) {
	p := principalFrom(ctx)
	return &pb.Caller{User: p.Name(), Role: p.Role, Site: p.Site, AuthenticatedBy: p.Method}, nil
}

func (s *accessService) CreateUser(ctx context.Context, req *pb.CreateUserRequest) (*pb.User, error) {
	u, err := s.users.CreateUser(ctx, req.GetUserId(), req.GetUser(), principalFrom(ctx).Name())
	return u, grpcError(s.log, "CreateUser", err)
}

func (s *accessService) GetUser(_ context.Context, req *pb.GetUserRequest) (*pb.User, error) {
	id, err := parseUserName("name", req.GetName())
	if err != nil {
		return nil, err
	}
	u, err := s.users.GetUser(id)
	return u, grpcError(s.log, "GetUser", err)
}

func (s *accessService) ListUsers(_ context.Context, req *pb.ListUsersRequest) (*pb.ListUsersResponse, error) {
	users, next, err := s.users.ListUsers(int(req.GetPageSize()), req.GetPageToken())
	if err != nil {
		return nil, grpcError(s.log, "ListUsers", err)
	}
	return &pb.ListUsersResponse{Users: users, NextPageToken: next}, nil
}

func (s *accessService) DeleteUser(ctx context.Context, req *pb.DeleteUserRequest) (*emptypb.Empty, error) {
	id, err := parseUserName("name", req.GetName())
	if err != nil {
		return nil, err
	}
	if id == principalFrom(ctx).User {
		return nil, status.Error(codes.FailedPrecondition, "a user cannot delete themselves: ask another administrator")
	}
	return &emptypb.Empty{}, grpcError(s.log, "DeleteUser", s.users.DeleteUser(ctx, id))
}

func (s *accessService) CreateToken(ctx context.Context, req *pb.CreateTokenRequest) (*pb.CreateTokenResponse, error) {
	id, err := parseUserName("parent", req.GetParent())
	if err != nil {
		return nil, err
	}
	if err := req.GetTtl().CheckValid(); req.GetTtl() != nil && err != nil {
		return nil, invalidArgument("ttl", err.Error())
	}
	t, bearer, err := s.users.CreateToken(ctx, id, req.GetToken(), req.GetTtl().AsDuration())
	if err != nil {
		return nil, grpcError(s.log, "CreateToken", err)
	}
	return &pb.CreateTokenResponse{Token: t, Secret: bearer}, nil
}

func (s *accessService) ListTokens(_ context.Context, req *pb.ListTokensRequest) (*pb.ListTokensResponse, error) {
	id := "-"
	if req.GetParent() != "users/-" {
		var err error
		if id, err = parseUserName("parent", req.GetParent()); err != nil {
			return nil, err
		}
	}
	tokens, next, err := s.users.ListTokens(id, int(req.GetPageSize()), req.GetPageToken())
	if err != nil {
		return nil, grpcError(s.log, "ListTokens", err)
	}
	return &pb.ListTokensResponse{Tokens: tokens, NextPageToken: next}, nil
}

func (s *accessService) DeleteToken(ctx context.Context, req *pb.DeleteTokenRequest) (*emptypb.Empty, error) {
	parts := strings.Split(req.GetName(), "/")
	if len(parts) != 4 || parts[0] != "users" || parts[2] != "tokens" || access.ValidID(parts[1]) != nil || parts[3] == "" {
		return nil, invalidArgument("name", "want users/{user}/tokens/{token}, got "+quote(req.GetName()))
	}
	return &emptypb.Empty{}, grpcError(s.log, "DeleteToken", s.users.DeleteToken(ctx, parts[1], parts[3]))
}

func (s *accessService) SignUserCertificate(_ context.Context, req *pb.SignUserCertificateRequest) (*pb.SignUserCertificateResponse, error) {
	id, err := parseUserName("name", req.GetName())
	if err != nil {
		return nil, err
	}
	if s.clientCA == nil {
		return nil, status.Error(codes.FailedPrecondition, "medfleetd uses a client CA it does not hold the key of (grpc.client_ca): sign user certificates with that CA")
	}
	if _, err := s.users.GetUser(id); err != nil {
		return nil, grpcError(s.log, "SignUserCertificate", err)
	}
	validity := 90 * 24 * time.Hour
	if v := req.GetValidity(); v != nil {
		if validity = v.AsDuration(); validity < time.Hour || validity > 398*24*time.Hour {
			return nil, invalidArgument("validity", "between 1h and 398 days")
		}
	}
	cert, err := s.clientCA.SignCSR(req.GetCsr(), id, s.now(), validity)
	if err != nil {
		return nil, invalidArgument("csr", err.Error())
	}
	return &pb.SignUserCertificateResponse{Certificate: string(pki.CertPEM(cert.Raw)), CaCertificate: string(s.clientCA.PEM())}, nil
}

// parseUserName returns the id in "users/{user}".
func parseUserName(field, name string) (string, error) {
	id, ok := strings.CutPrefix(name, "users/")
	if !ok {
		return "", invalidArgument(field, "want users/{user}, got "+quote(name))
	}
	if err := access.ValidID(id); err != nil {
		return "", invalidArgument(field, err.Error())
	}
	return id, nil
}
