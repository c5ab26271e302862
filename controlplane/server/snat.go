package server

import (
	"context"
	"fmt"

	xlbv1 "github.com/xlbproject/xlb/controlplane/api/xlb/v1"
)

// GetSnatStatus asks the SNAT engine when one runs; otherwise it says what
// the configuration holds, with no invented figures.
func (s *Server) GetSnatStatus(ctx context.Context, req *xlbv1.GetSnatStatusRequest) (*xlbv1.GetSnatStatusResponse, error) {
	if s.opts.Snat != nil {
		out, err := s.opts.Snat.SnatStatus(ctx)
		return out, toStatus(err)
	}
	cfg, _ := s.Running()
	if n := len(cfg.GetSnatPools()); n > 0 {
		return &xlbv1.GetSnatStatusResponse{
			Message: fmt.Sprintf("%d snat pool(s) configured; no SNAT engine reports port use in this xlbd", n),
		}, nil
	}
	return &xlbv1.GetSnatStatusResponse{Message: "no snat pools are configured"}, nil
}
