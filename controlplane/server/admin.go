package server

import (
	"context"
	"fmt"
	"net/netip"
	"slices"

	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	xlbv1 "github.com/xlbproject/xlb/controlplane/api/xlb/v1"
	"github.com/xlbproject/xlb/dataplane/pool"
)

// SetServerState sets the operator's state of every backend at
// address[:port] in every pool, and records it so that later applies and
// restarts keep it.
func (s *Server) SetServerState(_ context.Context, req *xlbv1.SetServerStateRequest) (*xlbv1.SetServerStateResponse, error) {
	addr, err := netip.ParseAddr(req.GetAddress())
	if err != nil {
		return nil, fieldError("address", fmt.Sprintf("%q is not an IP address", req.GetAddress()))
	}
	if req.GetPort() > 65535 {
		return nil, fieldError("port", fmt.Sprintf("%d is out of range 0..65535", req.GetPort()))
	}
	st, ok := adminState(req.GetState())
	if !ok {
		return nil, fieldError("state", "required: enabled, drain or disabled")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for _, b := range s.backends() {
		if b.Addr() != addr.Unmap() || (req.GetPort() != 0 && uint32(b.Port()) != req.GetPort()) {
			continue
		}
		b.SetAdmin(st)
		if !slices.Contains(ids, b.ID()) {
			ids = append(ids, b.ID())
		}
	}
	if len(ids) == 0 {
		return nil, status.Errorf(codes.NotFound, "no backend at %s in the running configuration", target(req.GetAddress(), req.GetPort()))
	}
	slices.Sort(ids)
	if err := s.opts.Store.SetAdminStates(ids, req.GetState()); err != nil {
		return nil, status.Errorf(codes.Internal, "the state is set but not saved (a restart forgets it): %v", err)
	}
	s.log.Info("backend state set", zap.Strings("backends", ids), zap.Stringer("state", st))
	return &xlbv1.SetServerStateResponse{Backends: ids}, nil
}

// restoreAdmin gives the backends of a new configuration the states the
// operator set (a backend new to the pools starts enabled).
func (s *Server) restoreAdmin() {
	states, err := s.opts.Store.AdminStates()
	if err != nil {
		s.log.Error("reading the backend states; backends stay enabled", zap.Error(err))
		return
	}
	for _, b := range s.backends() {
		want := pool.AdminEnabled
		if st, ok := states[b.ID()]; ok {
			want, _ = adminState(st)
		}
		b.SetAdmin(want)
	}
}

func (s *Server) backends() []*pool.Backend {
	if s.opts.Backends == nil {
		return nil
	}
	return s.opts.Backends.All()
}

func adminState(st xlbv1.AdminState) (pool.AdminState, bool) {
	switch st {
	case xlbv1.AdminState_enabled:
		return pool.AdminEnabled, true
	case xlbv1.AdminState_drain:
		return pool.AdminDrain, true
	case xlbv1.AdminState_disabled:
		return pool.AdminDisabled, true
	}
	return 0, false
}

func adminProto(st pool.AdminState) xlbv1.AdminState {
	switch st {
	case pool.AdminDrain:
		return xlbv1.AdminState_drain
	case pool.AdminDisabled:
		return xlbv1.AdminState_disabled
	}
	return xlbv1.AdminState_enabled
}
