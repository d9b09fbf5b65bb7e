package server

import (
	"context"
	"errors"
	"log/slog"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/medfleet/medfleet/credentials"
	"github.com/medfleet/medfleet/internal/pki"
	"github.com/medfleet/medfleet/inventory"
	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// credentialService implements medfleet.v1.CredentialService.
type credentialService struct {
	pb.UnimplementedCredentialServiceServer
	creds *credentials.Store
	inv   *inventory.Inventory
	// serverCA signs medfleetd's certificate: devices check it.
	serverCA *pki.CA
	log      *slog.Logger
}

// device checks that the caller may manage the credential of a device
// named by field: a device that is not decommissioned, and within the
// caller's site. A device may be enrolled before it first registers, but a
// caller confined to a site can only enrol devices already of its site.
func (s *credentialService) device(ctx context.Context, field, name string) (string, error) {
	id, err := parseDeviceName(field, strings.TrimSuffix(name, "/credential"))
	if err != nil {
		return "", err
	}
	d, err := s.inv.Get(id)
	switch {
	case errors.Is(err, inventory.ErrNotFound):
		if principalFrom(ctx).Site != "" {
			return "", status.Errorf(codes.NotFound, "device %s not found", id)
		}
		return id, nil
	case err != nil:
		return "", grpcError(s.log, "credentials", err)
	case !inScope(ctx, d):
		return "", status.Errorf(codes.NotFound, "device %s not found", id)
	case d.GetDecommissionTime() != nil:
		return "", status.Errorf(codes.FailedPrecondition, "device %s is decommissioned", id)
	}
	return id, nil
}

func (s *credentialService) CreateEnrollment(ctx context.Context, req *pb.CreateEnrollmentRequest) (*pb.CreateEnrollmentResponse, error) {
	id, err := s.device(ctx, "device", req.GetDevice())
	if err != nil {
		return nil, err
	}
	if err := req.GetTtl().CheckValid(); req.GetTtl() != nil && err != nil {
		return nil, invalidArgument("ttl", err.Error())
	}
	e, tok, err := s.creds.CreateEnrollment(ctx, id, principalFrom(ctx).Name(), req.GetTtl().AsDuration())
	if err != nil {
		return nil, grpcError(s.log, "CreateEnrollment", err)
	}
	return &pb.CreateEnrollmentResponse{Enrollment: e, Token: tok, CaCertificate: string(s.serverCA.PEM())}, nil
}

func (s *credentialService) IssueDeviceCredential(ctx context.Context, req *pb.IssueDeviceCredentialRequest) (*pb.IssueDeviceCredentialResponse, error) {
	id, err := s.device(ctx, "device", req.GetDevice())
	if err != nil {
		return nil, err
	}
	issuer := principalFrom(ctx).Name()
	resp := &pb.IssueDeviceCredentialResponse{CaCertificate: string(s.serverCA.PEM())}
	switch req.GetKind() {
	case pb.CredentialKind_CREDENTIAL_KIND_PSK:
		if len(req.GetCsr()) > 0 {
			return nil, invalidArgument("csr", "only with kind CREDENTIAL_KIND_CERTIFICATE")
		}
		resp.Credential, resp.Psk, err = s.creds.IssuePSK(ctx, id, issuer)
	case pb.CredentialKind_CREDENTIAL_KIND_CERTIFICATE:
		csr := req.GetCsr()
		if len(csr) == 0 { // the server makes the key and hands it over once
			var keyPEM []byte
			if csr, keyPEM, err = newCSR(id); err != nil {
				return nil, grpcError(s.log, "IssueDeviceCredential", err)
			}
			resp.PrivateKey = string(keyPEM)
		}
		var c *pb.DeviceCredential
		c, cert, ierr := s.creds.IssueCertificate(ctx, id, issuer, csr)
		if err = ierr; err == nil {
			resp.Credential, resp.Certificate = c, string(pki.CertPEM(cert.Raw))
		}
	default:
		return nil, invalidArgument("kind", "CREDENTIAL_KIND_PSK or CREDENTIAL_KIND_CERTIFICATE")
	}
	if err != nil {
		return nil, grpcError(s.log, "IssueDeviceCredential", err)
	}
	return resp, nil
}

func (s *credentialService) GetDeviceCredential(ctx context.Context, req *pb.GetDeviceCredentialRequest) (*pb.DeviceCredential, error) {
	id, err := s.credentialName(ctx, req.GetName())
	if err != nil {
		return nil, err
	}
	c, err := s.creds.Get(id)
	return c, grpcError(s.log, "GetDeviceCredential", err)
}

func (s *credentialService) RevokeDeviceCredential(ctx context.Context, req *pb.RevokeDeviceCredentialRequest) (*pb.DeviceCredential, error) {
	id, err := s.credentialName(ctx, req.GetName())
	if err != nil {
		return nil, err
	}
	c, err := s.creds.Revoke(ctx, id)
	return c, grpcError(s.log, "RevokeDeviceCredential", err)
}

// credentialName reads "devices/{device}/credential". Revoking works on a
// decommissioned device too.
func (s *credentialService) credentialName(ctx context.Context, name string) (string, error) {
	if !strings.HasSuffix(name, "/credential") {
		return "", invalidArgument("name", "want devices/{device}/credential, got "+quote(name))
	}
	id, err := parseDeviceName("name", strings.TrimSuffix(name, "/credential"))
	if err != nil {
		return "", err
	}
	// A caller confined to a site sees only credentials of its site's
	// devices; unregistered devices belong to no site.
	d, err := s.inv.Get(id)
	if err != nil && principalFrom(ctx).Site != "" || err == nil && !inScope(ctx, d) {
		return "", status.Errorf(codes.NotFound, "device %s not found", id)
	}
	return id, nil
}

// newCSR makes a key pair and a certificate request for a device.
func newCSR(device string) (csr, keyPEM []byte, err error) {
	key, err := pki.NewKey()
	if err != nil {
		return nil, nil, err
	}
	if csr, err = pki.NewCSR(key, device); err != nil {
		return nil, nil, err
	}
	keyPEM, err = pki.KeyPEM(key)
	return csr, keyPEM, err
}
