package server

import (
	"errors"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/xlbproject/xlb/controlplane/config"
	"github.com/xlbproject/xlb/controlplane/store"
)

// toStatus maps the change path's errors to gRPC statuses: every
// validation problem becomes a field violation naming its path.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	var errs config.Errors
	var fe *config.FieldError
	var ee *EngineError
	switch {
	case errors.As(err, &errs):
		return invalid(errs)
	case errors.As(err, &fe):
		return invalid(config.Errors{fe})
	case errors.Is(err, ErrConflict):
		return status.Error(codes.Aborted, err.Error())
	case errors.Is(err, store.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.As(err, &ee):
		return status.Error(codes.FailedPrecondition, err.Error())
	}
	return status.Error(codes.Internal, err.Error())
}

func invalid(errs config.Errors) error {
	br := &errdetails.BadRequest{}
	for _, e := range errs {
		desc := e.Msg
		if e.Hint != "" {
			desc += "; " + e.Hint
		}
		br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{Field: e.Path, Description: desc})
	}
	st := status.New(codes.InvalidArgument, "invalid configuration:\n"+errs.Error())
	if withDetails, err := st.WithDetails(br); err == nil {
		st = withDetails
	}
	return st.Err()
}

// fieldError is one invalid request field.
func fieldError(path, msg string) error {
	return invalid(config.Errors{{Path: path, Msg: msg}})
}
