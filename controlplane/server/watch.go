package server

import (
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	xlbv1 "github.com/xlbproject/xlb/controlplane/api/xlb/v1"
	"github.com/xlbproject/xlb/dataplane/health"
)

// WatchHealth streams the health checker's state changes until the client
// goes away or the checker stops. The subscription comes first and the
// snapshot second, so no change falls between the two.
func (s *Server) WatchHealth(req *xlbv1.WatchHealthRequest, stream grpc.ServerStreamingServer[xlbv1.HealthEvent]) error {
	if s.opts.Health == nil {
		return status.Error(codes.Unavailable, "no health checker runs")
	}
	events, cancel := s.opts.Health.Subscribe()
	defer cancel()
	if req.GetInitial() {
		for _, st := range s.opts.Health.Snapshot() {
			ev := &xlbv1.HealthEvent{
				Backend:   st.Key.Addr.String(),
				Check:     st.Key.String(),
				Listeners: st.Owners,
				NewState:  healthProto(st.State),
				LastError: st.LastError,
				Initial:   true,
			}
			if !st.Since.IsZero() {
				ev.Time = timestamppb.New(st.Since)
			}
			if err := stream.Send(ev); err != nil {
				return err
			}
		}
	}
	ctx := stream.Context()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-events:
			if !ok {
				return status.Error(codes.Unavailable, "the health checker stopped")
			}
			err := stream.Send(&xlbv1.HealthEvent{
				Backend:   ev.Addr.String(),
				Check:     ev.Key.String(),
				Listeners: ev.Owners,
				OldState:  healthProto(ev.Old),
				NewState:  healthProto(ev.New),
				Reason:    ev.Reason,
				LastError: ev.LastError,
				Time:      timestamppb.New(ev.Time),
			})
			if err != nil {
				return err
			}
		}
	}
}

func healthProto(s health.State) xlbv1.HealthState {
	switch s {
	case health.Up:
		return xlbv1.HealthState_up
	case health.Down:
		return xlbv1.HealthState_down
	}
	return xlbv1.HealthState_HEALTH_STATE_UNSPECIFIED
}
