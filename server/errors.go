package server

import (
	"context"
	"errors"
	"log/slog"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/medfleet/medfleet/access"
	"github.com/medfleet/medfleet/audit"
	"github.com/medfleet/medfleet/credentials"
	"github.com/medfleet/medfleet/firmware"
	"github.com/medfleet/medfleet/firmware/rollout"
	"github.com/medfleet/medfleet/inventory"
	"github.com/medfleet/medfleet/inventory/location"
	"github.com/medfleet/medfleet/maintenance"
	"github.com/medfleet/medfleet/maintenance/program"
)

// grpcError translates an error to a gRPC status: the one place where the
// API boundary does it. It walks the chain with errors.Is and errors.As, so
// wrapped errors map too. Unknown errors are logged once and become Internal.
func grpcError(log *slog.Logger, method string, err error) error {
	var (
		fe  *inventory.FieldError
		afe *access.FieldError
		cfe *credentials.FieldError
		ufe *audit.FieldError
		mfe *maintenance.FieldError
		ffe *firmware.FieldError
		rfe *rollout.FieldError
		lfe *location.FieldError
	)
	switch {
	case err == nil:
		return nil
	case errors.As(err, &fe):
		return invalidArgument(fe.Field, fe.Reason)
	case errors.As(err, &afe):
		return invalidArgument(afe.Field, afe.Reason)
	case errors.As(err, &cfe):
		return invalidArgument(cfe.Field, cfe.Reason)
	case errors.As(err, &ufe):
		return invalidArgument(ufe.Field, ufe.Reason)
	case errors.As(err, &mfe):
		return invalidArgument(mfe.Field, mfe.Reason)
	case errors.As(err, &ffe):
		return invalidArgument(ffe.Field, ffe.Reason)
	case errors.As(err, &rfe):
		return invalidArgument(rfe.Field, rfe.Reason)
	case errors.As(err, &lfe):
		return invalidArgument(lfe.Field, lfe.Reason)
	case errors.Is(err, location.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, inventory.ErrTransition):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, firmware.ErrNotFound), errors.Is(err, rollout.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, firmware.ErrExists), errors.Is(err, rollout.ErrExists):
		return status.Error(codes.AlreadyExists, err.Error())
	case errors.Is(err, firmware.ErrInUse), errors.Is(err, firmware.ErrPolicy), errors.Is(err, rollout.ErrState), errors.Is(err, rollout.ErrBusy):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, firmware.ErrConflict), errors.Is(err, rollout.ErrConflict):
		return status.Error(codes.Aborted, err.Error())
	case errors.Is(err, program.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, program.ErrState):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, program.ErrConflict):
		return status.Error(codes.Aborted, err.Error())
	case errors.Is(err, inventory.ErrNotFound), errors.Is(err, access.ErrNotFound), errors.Is(err, credentials.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, inventory.ErrAlreadyExists), errors.Is(err, access.ErrAlreadyExists):
		return status.Error(codes.AlreadyExists, err.Error())
	case errors.Is(err, inventory.ErrDecommissioned):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, inventory.ErrConflict), errors.Is(err, access.ErrConflict), errors.Is(err, credentials.ErrConflict):
		return status.Error(codes.Aborted, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	}
	if s, ok := status.FromError(err); ok {
		return s.Err() // already a status, e.g. from etcd's client: Unavailable
	}
	log.Error("request failed", "method", method, "err", err)
	return status.Error(codes.Internal, "internal error")
}

// invalidArgument is InvalidArgument naming the field, in the message and as
// a BadRequest field violation.
func invalidArgument(field, reason string) error {
	s := status.New(codes.InvalidArgument, field+": "+reason)
	if d, err := s.WithDetails(&errdetails.BadRequest{
		FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: field, Description: reason}},
	}); err == nil {
		s = d
	}
	return s.Err()
}
