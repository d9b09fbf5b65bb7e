package server

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/medfleet/medfleet/access"
	"github.com/medfleet/medfleet/inventory"
	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// rule is what calling one RPC takes.
type rule struct {
	perm access.Permission
	// public RPCs need no credential at all (health checks from load
	// balancers).
	public bool
	// mutation RPCs are audited, whether allowed or not.
	mutation bool
	// global RPCs act across sites: a caller confined to a site may not
	// call them even if its role grants the permission.
	global bool
}

// rules is the permission of every RPC the server serves: the one table
// that says who may do what. A method missing here is refused to everyone
// (TestEveryMethodHasARule keeps it complete).
var rules = map[string]rule{
	pb.DeviceService_CreateDevice_FullMethodName: {perm: access.DevicesWrite, mutation: true},
	pb.DeviceService_GetDevice_FullMethodName:    {perm: access.DevicesRead},
	pb.DeviceService_ListDevices_FullMethodName:  {perm: access.DevicesRead},
	pb.DeviceService_UpdateDevice_FullMethodName: {perm: access.DevicesWrite, mutation: true},
	pb.DeviceService_DeleteDevice_FullMethodName: {perm: access.DevicesWrite, mutation: true},
	// An import is site-scoped row by row.
	pb.DeviceService_ImportDevices_FullMethodName: {perm: access.DevicesWrite, mutation: true},
	pb.DeviceService_ExportDevices_FullMethodName: {perm: access.DevicesRead},

	pb.CredentialService_CreateEnrollment_FullMethodName:       {perm: access.CredentialsWrite, mutation: true},
	pb.CredentialService_IssueDeviceCredential_FullMethodName:  {perm: access.CredentialsWrite, mutation: true},
	pb.CredentialService_GetDeviceCredential_FullMethodName:    {perm: access.CredentialsRead},
	pb.CredentialService_RevokeDeviceCredential_FullMethodName: {perm: access.CredentialsWrite, mutation: true},

	pb.AccessService_GetCaller_FullMethodName:           {perm: access.Authenticated},
	pb.AccessService_CreateUser_FullMethodName:          {perm: access.UsersAdmin, mutation: true, global: true},
	pb.AccessService_GetUser_FullMethodName:             {perm: access.UsersAdmin, global: true},
	pb.AccessService_ListUsers_FullMethodName:           {perm: access.UsersAdmin, global: true},
	pb.AccessService_DeleteUser_FullMethodName:          {perm: access.UsersAdmin, mutation: true, global: true},
	pb.AccessService_CreateToken_FullMethodName:         {perm: access.UsersAdmin, mutation: true, global: true},
	pb.AccessService_ListTokens_FullMethodName:          {perm: access.UsersAdmin, global: true},
	pb.AccessService_DeleteToken_FullMethodName:         {perm: access.UsersAdmin, mutation: true, global: true},
	pb.AccessService_SignUserCertificate_FullMethodName: {perm: access.UsersAdmin, mutation: true, global: true},

	pb.AuditService_ListAuditRecords_FullMethodName: {perm: access.AuditRead, global: true},

	pb.MaintenanceService_ApplyDeviceModel_FullMethodName:     {perm: access.MaintenanceWrite, mutation: true, global: true},
	pb.MaintenanceService_GetDeviceModel_FullMethodName:       {perm: access.MaintenanceRead},
	pb.MaintenanceService_ListDeviceModels_FullMethodName:     {perm: access.MaintenanceRead},
	pb.MaintenanceService_ListDueItems_FullMethodName:         {perm: access.MaintenanceRead},
	pb.MaintenanceService_GetDeviceMaintenance_FullMethodName: {perm: access.MaintenanceRead},
	pb.MaintenanceService_CreateWorkOrder_FullMethodName:      {perm: access.MaintenanceWrite, mutation: true},
	pb.MaintenanceService_GetWorkOrder_FullMethodName:         {perm: access.MaintenanceRead},
	pb.MaintenanceService_ListWorkOrders_FullMethodName:       {perm: access.MaintenanceRead},
	pb.MaintenanceService_AssignWorkOrder_FullMethodName:      {perm: access.MaintenanceWrite, mutation: true},
	pb.MaintenanceService_CompleteWorkOrder_FullMethodName:    {perm: access.MaintenanceWrite, mutation: true},
	pb.MaintenanceService_CancelWorkOrder_FullMethodName:      {perm: access.MaintenanceWrite, mutation: true},
	pb.MaintenanceService_GetComplianceReport_FullMethodName:  {perm: access.MaintenanceRead, global: true},
	pb.MaintenanceService_GetReliabilityReport_FullMethodName: {perm: access.MaintenanceRead, global: true},
	pb.MaintenanceService_TrainFailureModel_FullMethodName:    {perm: access.MaintenanceWrite, mutation: true, global: true},

	pb.FirmwareService_UploadArtifact_FullMethodName:       {perm: access.FirmwareWrite, mutation: true, global: true},
	pb.FirmwareService_GetArtifact_FullMethodName:          {perm: access.FirmwareRead},
	pb.FirmwareService_ListArtifacts_FullMethodName:        {perm: access.FirmwareRead},
	pb.FirmwareService_DeleteArtifact_FullMethodName:       {perm: access.FirmwareWrite, mutation: true, global: true},
	pb.FirmwareService_GetFirmwarePolicy_FullMethodName:    {perm: access.FirmwareRead},
	pb.FirmwareService_UpdateFirmwarePolicy_FullMethodName: {perm: access.FirmwareWrite, mutation: true, global: true},
	pb.FirmwareService_ListFirmwarePolicies_FullMethodName: {perm: access.FirmwareRead},

	// Rollouts span sites: a caller confined to one may read them only.
	pb.RolloutService_CreateRollout_FullMethodName:      {perm: access.RolloutsWrite, mutation: true, global: true},
	pb.RolloutService_GetRollout_FullMethodName:         {perm: access.RolloutsRead},
	pb.RolloutService_ListRollouts_FullMethodName:       {perm: access.RolloutsRead},
	pb.RolloutService_ListRolloutDevices_FullMethodName: {perm: access.RolloutsRead},
	pb.RolloutService_PauseRollout_FullMethodName:       {perm: access.RolloutsWrite, mutation: true, global: true},
	pb.RolloutService_ResumeRollout_FullMethodName:      {perm: access.RolloutsWrite, mutation: true, global: true},
	pb.RolloutService_AbortRollout_FullMethodName:       {perm: access.RolloutsWrite, mutation: true, global: true},

	// Recalls concern every site; their matches are seen and decided
	// within the caller's site.
	pb.RecallService_ImportRecalls_FullMethodName:      {perm: access.MaintenanceWrite, mutation: true, global: true},
	pb.RecallService_GetRecall_FullMethodName:          {perm: access.MaintenanceRead},
	pb.RecallService_ListRecalls_FullMethodName:        {perm: access.MaintenanceRead},
	pb.RecallService_ListRecallMatches_FullMethodName:  {perm: access.MaintenanceRead},
	pb.RecallService_ConfirmRecallMatch_FullMethodName: {perm: access.MaintenanceWrite, mutation: true},
	pb.RecallService_DismissRecallMatch_FullMethodName: {perm: access.MaintenanceWrite, mutation: true},

	pb.LocationService_ApplyFacility_FullMethodName:       {perm: access.DevicesWrite, mutation: true, global: true},
	pb.LocationService_GetFacility_FullMethodName:         {perm: access.DevicesRead},
	pb.LocationService_Locate_FullMethodName:              {perm: access.DevicesRead},
	pb.LocationService_FindNearest_FullMethodName:         {perm: access.DevicesRead},
	pb.LocationService_WatchLocations_FullMethodName:      {perm: access.DevicesRead},
	pb.LocationService_ListLocationHistory_FullMethodName: {perm: access.DevicesRead},
	pb.LocationService_CheckIn_FullMethodName:             {perm: access.DevicesStatus, mutation: true},
	pb.LocationService_SetAvailability_FullMethodName:     {perm: access.DevicesStatus, mutation: true},
	pb.LocationService_ListParLevels_FullMethodName:       {perm: access.DevicesRead},

	"/grpc.health.v1.Health/Check":                                   {public: true},
	"/grpc.health.v1.Health/Watch":                                   {public: true},
	"/grpc.health.v1.Health/List":                                    {public: true},
	"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo":      {perm: access.Authenticated},
	"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": {perm: access.Authenticated},
}

// auditLog is where mutations are recorded.
type auditLog interface {
	Append(ctx context.Context, r *pb.AuditRecord) error
}

// authorizer authenticates every call, checks it against rules, and
// audits mutations.
type authorizer struct {
	insecure bool
	users    *access.Store
	audit    auditLog
	log      *slog.Logger
	// store, when set, says whether etcd answers (degraded).
	store *storeHealth
}

// staleHeader is the response header of a read answered while etcd is
// unreachable: the time since when it has been, RFC 3339.
const staleHeader = "medfleet-stale-since"

// degraded refuses a mutation while etcd is unreachable (it could not be
// stored), and marks a read's answer as coming from this replica's memory
// alone, by setHeader.
func (a *authorizer) degraded(method string, r rule, setHeader func(metadata.MD) error) error {
	if a.store == nil || r.public {
		return nil
	}
	since, cause := a.store.unreachable()
	if since.IsZero() {
		return nil
	}
	at := since.UTC().Format(time.RFC3339)
	if r.mutation {
		a.log.Warn("write refused: etcd unreachable", "method", method, "since", at)
		return status.Errorf(codes.Unavailable, "etcd unreachable since %s (%v): writes are refused until it is back; reads answer from this replica's memory", at, cause)
	}
	_ = setHeader(metadata.Pairs(staleHeader, at))
	return nil
}

type principalKey struct{}

// principalFrom returns the caller of an RPC; every non-public RPC has one.
func principalFrom(ctx context.Context) *access.Principal {
	p, _ := ctx.Value(principalKey{}).(*access.Principal)
	return p
}

// insecurePrincipal is every caller under --insecure-grpc.
var insecurePrincipal = &access.Principal{User: "anonymous", Role: pb.Role_ROLE_ADMIN, Method: "insecure"}

func (a *authorizer) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	r, p, err := a.check(ctx, info.FullMethod)
	if err != nil {
		if r.mutation && p != nil {
			a.record(ctx, p, info.FullMethod, req, err)
		}
		return nil, err
	}
	if err := a.degraded(info.FullMethod, r, func(md metadata.MD) error { return grpc.SetHeader(ctx, md) }); err != nil {
		return nil, err
	}
	if p != nil {
		ctx = context.WithValue(ctx, principalKey{}, p)
	}
	resp, err := handler(ctx, req)
	if r.mutation {
		a.record(ctx, p, info.FullMethod, req, err)
	}
	return resp, err
}

func (a *authorizer) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ctx := ss.Context()
	r, p, err := a.check(ctx, info.FullMethod)
	if err != nil {
		if r.mutation && p != nil {
			a.record(ctx, p, info.FullMethod, nil, err)
		}
		return err
	}
	if err := a.degraded(info.FullMethod, r, ss.SetHeader); err != nil {
		return err
	}
	var note *streamNote
	if p != nil {
		ctx = context.WithValue(ctx, principalKey{}, p)
	}
	if r.mutation {
		note = &streamNote{}
		ctx = context.WithValue(ctx, streamNoteKey{}, note)
	}
	err = handler(srv, &contextStream{ServerStream: ss, ctx: ctx})
	if r.mutation {
		a.record(ctx, p, info.FullMethod, note, err)
	}
	return err
}

// contextStream is a server stream with the principal in its context.
type contextStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *contextStream) Context() context.Context { return s.ctx }

// streamNote is what a streaming mutation tells the audit log: a stream
// has no single request to read the target from.
type streamNote struct{ target, detail string }

type streamNoteKey struct{}

// streamAuditTarget names what a streaming mutation acts on, for its
// audit record.
func streamAuditTarget(ctx context.Context, target, detail string) {
	if n, ok := ctx.Value(streamNoteKey{}).(*streamNote); ok {
		n.target, n.detail = target, detail
	}
}

// check authenticates the caller of method and authorises the call. The
// principal is returned when authentication succeeded, even if the call is
// then refused, so that the refusal can be audited.
func (a *authorizer) check(ctx context.Context, method string) (rule, *access.Principal, error) {
	r, ok := rules[method]
	if !ok {
		return r, nil, status.Errorf(codes.PermissionDenied, "%s is not in the permission table", method)
	}
	if r.public {
		return r, nil, nil
	}
	p, err := a.authenticate(ctx)
	if err != nil {
		return r, nil, err
	}
	return r, p, permit(r, p, method)
}

// authenticate finds the caller: a verified client certificate first, then
// a bearer token.
func (a *authorizer) authenticate(ctx context.Context) (*access.Principal, error) {
	if a.insecure {
		return insecurePrincipal, nil
	}
	if pr, ok := peer.FromContext(ctx); ok {
		if ti, ok := pr.AuthInfo.(credentials.TLSInfo); ok && len(ti.State.VerifiedChains) > 0 {
			cn := ti.State.VerifiedChains[0][0].Subject.CommonName
			p, err := a.users.Certificate(cn)
			if err != nil {
				return nil, status.Errorf(codes.Unauthenticated, "client certificate for %q: no such user", cn)
			}
			return p, nil
		}
	}
	md, _ := metadata.FromIncomingContext(ctx)
	auth := md.Get("authorization")
	if len(auth) == 0 {
		return nil, status.Error(codes.Unauthenticated, "no credential: send \"authorization: Bearer mft_...\" or a client certificate")
	}
	bearer, ok := strings.CutPrefix(auth[0], "Bearer ")
	if !ok {
		return nil, status.Error(codes.Unauthenticated, "authorization: want \"Bearer mft_...\"")
	}
	p, err := a.users.Authenticate(bearer)
	if err != nil {
		return nil, status.Error(codes.Unauthenticated, "token is unknown, expired or revoked")
	}
	return p, nil
}

// record appends the audit record of a mutation. The mutation has
// happened (or was refused) already; a failure to record it is an error an
// operator must see.
func (a *authorizer) record(ctx context.Context, p *access.Principal, method string, req any, err error) {
	rec := &pb.AuditRecord{
		Actor:     p.Name(),
		Role:      access.RoleName(p.Role),
		Action:    method,
		Target:    target(req),
		RequestId: requestID(ctx, req),
		Outcome:   status.Code(err).String(),
		Detail:    detail(req),
	}
	if pr, ok := peer.FromContext(ctx); ok {
		rec.Source = pr.Addr.String()
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if aerr := a.audit.Append(actx, rec); aerr != nil {
		a.log.Error("cannot append to the audit log", "action", method, "actor", rec.Actor, "target", rec.Target, "err", aerr)
	}
}

// target is the resource a request acts on.
func target(req any) string {
	switch r := req.(type) {
	case *streamNote:
		return r.target
	case *pb.CreateRolloutRequest:
		return r.GetRollout().GetArtifact()
	case *pb.UpdateFirmwarePolicyRequest:
		return "models/" + r.GetPolicy().GetModel() + "/firmwarePolicy"
	case *pb.CreateDeviceRequest:
		return "devices/" + r.GetDeviceId()
	case *pb.UpdateDeviceRequest:
		return r.GetDevice().GetName()
	case *pb.CreateUserRequest:
		return "users/" + r.GetUserId()
	case *pb.TrainFailureModelRequest:
		return r.GetModel()
	case *pb.ApplyDeviceModelRequest:
		return "models/" + r.GetModelId()
	case *pb.CreateWorkOrderRequest:
		return r.GetWorkOrder().GetDevice()
	case interface{ GetName() string }:
		return r.GetName()
	case interface{ GetParent() string }:
		return r.GetParent()
	case interface{ GetDevice() string }:
		return r.GetDevice()
	}
	return ""
}

// detail is a short, secret-free note on what a request changes.
func detail(req any) string {
	switch r := req.(type) {
	case *streamNote:
		return r.detail
	case *pb.CreateRolloutRequest:
		return "rollout_id=" + r.GetRolloutId()
	case *pb.SetAvailabilityRequest:
		return inventory.AvailabilityName(r.GetAvailability()) + ": " + r.GetReason()
	case *pb.CheckInRequest:
		return "zone=" + r.GetZone()
	case *pb.PauseRolloutRequest:
		return r.GetReason()
	case *pb.AbortRolloutRequest:
		return r.GetReason()
	case *pb.UpdateFirmwarePolicyRequest:
		var blocked []string
		for _, b := range r.GetPolicy().GetBlockedVersions() {
			blocked = append(blocked, b.GetVersion())
		}
		return fmt.Sprintf("min_version=%s blocked=%s", r.GetPolicy().GetMinVersion(), strings.Join(blocked, ","))
	case *pb.UpdateDeviceRequest:
		return "update_mask=" + strings.Join(r.GetUpdateMask().GetPaths(), ",")
	case *pb.IssueDeviceCredentialRequest:
		return "kind=" + strings.ToLower(strings.TrimPrefix(r.GetKind().String(), "CREDENTIAL_KIND_"))
	case *pb.CreateUserRequest:
		return fmt.Sprintf("role=%s site=%s", access.RoleName(r.GetUser().GetRole()), r.GetUser().GetSite())
	case *pb.CreateTokenRequest:
		return fmt.Sprintf("site=%s ttl=%s", r.GetToken().GetSite(), r.GetTtl().AsDuration())
	}
	return ""
}

// requestID is the caller's request id: the request's own field, or the
// x-request-id header.
func requestID(ctx context.Context, req any) string {
	if r, ok := req.(interface{ GetRequestId() string }); ok && r.GetRequestId() != "" {
		return r.GetRequestId()
	}
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get("x-request-id"); len(v) > 0 && len(v[0]) <= 64 {
		return v[0]
	}
	return ""
}
