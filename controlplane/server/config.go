package server

import (
	"context"
	"fmt"
	"net/netip"
	"slices"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	xlbv1 "github.com/xlbproject/xlb/controlplane/api/xlb/v1"
	"github.com/xlbproject/xlb/controlplane/store"
)

// The configuration RPCs: Apply, Get, Diff, ListVersions, Rollback,
// SetServerWeight.

func (s *Server) Apply(ctx context.Context, req *xlbv1.ApplyRequest) (*xlbv1.ApplyResponse, error) {
	if req.GetConfig() == nil {
		return nil, fieldError("config", "required")
	}
	v, changes, err := s.Change(ctx, req.GetConfig(), store.Record{Source: "api apply", Comment: req.GetComment()}, req.GetExpectedVersion())
	if err != nil {
		return nil, toStatus(err)
	}
	return &xlbv1.ApplyResponse{Version: v, Changes: changes}, nil
}

func (s *Server) Get(_ context.Context, req *xlbv1.GetRequest) (*xlbv1.GetResponse, error) {
	v := req.GetVersion()
	if v == 0 {
		cfg, cur := s.Running()
		if cfg == nil {
			return nil, status.Error(codes.Unavailable, "no configuration is running yet")
		}
		v = cur
	}
	cv, err := s.opts.Store.Get(v)
	if err != nil {
		return nil, toStatus(err)
	}
	return &xlbv1.GetResponse{Info: cv.GetInfo(), Config: redact(cv.GetConfig())}, nil
}

func (s *Server) Diff(_ context.Context, req *xlbv1.DiffRequest) (*xlbv1.DiffResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cfg, err := s.prepare(req.GetConfig())
	if err != nil {
		return nil, toStatus(err)
	}
	changes := Diff(s.running, cfg)
	return &xlbv1.DiffResponse{BaseVersion: s.version, Changes: changes, Text: DiffText(changes)}, nil
}

func (s *Server) ListVersions(context.Context, *xlbv1.ListVersionsRequest) (*xlbv1.ListVersionsResponse, error) {
	cur, list, err := s.opts.Store.List()
	if err != nil {
		return nil, toStatus(err)
	}
	return &xlbv1.ListVersionsResponse{Current: cur, Versions: list}, nil
}

func (s *Server) Rollback(ctx context.Context, req *xlbv1.RollbackRequest) (*xlbv1.ApplyResponse, error) {
	if req.GetVersion() == 0 {
		return nil, fieldError("version", "required: a kept version (xlbctl get --versions lists them)")
	}
	cv, err := s.opts.Store.Get(req.GetVersion())
	if err != nil {
		return nil, toStatus(err)
	}
	r := store.Record{Source: fmt.Sprintf("rollback to %d", req.GetVersion())}
	v, changes, err := s.Change(ctx, cv.GetConfig(), r, req.GetExpectedVersion())
	if err != nil {
		return nil, toStatus(err)
	}
	return &xlbv1.ApplyResponse{Version: v, Changes: changes}, nil
}

func (s *Server) SetServerWeight(ctx context.Context, req *xlbv1.SetServerWeightRequest) (*xlbv1.ApplyResponse, error) {
	addr, err := netip.ParseAddr(req.GetAddress())
	if err != nil {
		return nil, fieldError("address", fmt.Sprintf("%q is not an IP address", req.GetAddress()))
	}
	if req.GetPort() > 65535 {
		return nil, fieldError("port", fmt.Sprintf("%d is out of range 0..65535", req.GetPort()))
	}
	if req.GetWeight() > 100 {
		return nil, fieldError("weight", fmt.Sprintf("%d is out of range 0..100", req.GetWeight()))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running == nil {
		return nil, status.Error(codes.Unavailable, "no configuration is running yet")
	}
	cfg := proto.Clone(s.running).(*xlbv1.Config)
	lbPorts, groupPorts := backendPorts(cfg)
	n := 0
	// ports are the backend ports the pool's listeners give servers
	// without a port of their own.
	set := func(servers []*xlbv1.Server, ports []uint32) {
		for _, sv := range servers {
			a, err := netip.ParseAddr(sv.GetAddress())
			if err != nil || a.Unmap() != addr.Unmap() {
				continue
			}
			if p := req.GetPort(); p != 0 && sv.GetPort() != p && (sv.GetPort() != 0 || !slices.Contains(ports, p)) {
				continue
			}
			w := req.GetWeight()
			sv.Weight = &w
			n++
		}
	}
	all := req.GetLoadBalancer() == "" && req.GetServerGroup() == ""
	for _, lb := range cfg.GetLoadBalancers() {
		if all || lb.GetId() == req.GetLoadBalancer() {
			set(lb.GetServers(), lbPorts[lb.GetId()])
		}
	}
	for _, g := range cfg.GetServerGroups() {
		if all || g.GetId() == req.GetServerGroup() {
			set(g.GetServers(), groupPorts[g.GetId()])
		}
	}
	if n == 0 {
		return nil, status.Errorf(codes.NotFound, "no server at %s in the running configuration%s", target(req.GetAddress(), req.GetPort()), scope(req))
	}
	r := store.Record{Source: fmt.Sprintf("api set-weight %s %d", target(req.GetAddress(), req.GetPort()), req.GetWeight())}
	v, changes, err := s.changeLocked(ctx, cfg, r, req.GetExpectedVersion())
	if err != nil {
		return nil, toStatus(err)
	}
	return &xlbv1.ApplyResponse{Version: v, Changes: changes}, nil
}

// backendPorts lists, per load balancer default pool and per server group,
// the backend ports of the listeners that use it.
func backendPorts(cfg *xlbv1.Config) (lbs, groups map[string][]uint32) {
	lbs, groups = map[string][]uint32{}, map[string][]uint32{}
	for _, lb := range cfg.GetLoadBalancers() {
		for _, l := range lb.GetListeners() {
			bp := l.GetBackendPort()
			if l.GetServerGroup() == "" {
				lbs[lb.GetId()] = append(lbs[lb.GetId()], bp)
			} else {
				groups[l.GetServerGroup()] = append(groups[l.GetServerGroup()], bp)
			}
			for _, r := range l.GetRules() {
				groups[r.GetServerGroup()] = append(groups[r.GetServerGroup()], bp)
			}
		}
	}
	return lbs, groups
}

func target(addr string, port uint32) string {
	if port == 0 {
		return addr
	}
	return netip.AddrPortFrom(netip.MustParseAddr(addr), uint16(port)).String()
}

func scope(req *xlbv1.SetServerWeightRequest) string {
	switch {
	case req.GetLoadBalancer() != "" && req.GetServerGroup() != "":
		return fmt.Sprintf(" (load balancer %q, server group %q)", req.GetLoadBalancer(), req.GetServerGroup())
	case req.GetLoadBalancer() != "":
		return fmt.Sprintf(" (load balancer %q)", req.GetLoadBalancer())
	case req.GetServerGroup() != "":
		return fmt.Sprintf(" (server group %q)", req.GetServerGroup())
	}
	return ""
}
