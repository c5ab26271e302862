package reconcile

import (
	"fmt"
	"net/netip"
	"time"

	xlbv1 "github.com/xlbproject/xlb/controlplane/api/xlb/v1"
	"github.com/xlbproject/xlb/dataplane/acl"
	"github.com/xlbproject/xlb/dataplane/health"
	"github.com/xlbproject/xlb/dataplane/pool"
)

// The compile helpers turn pieces of a validated, defaulted configuration
// into the engines' plain values. Validation has already rejected anything
// these could trip on; an error here means the two disagree, and names the
// field so that is easy to find.

// listenerName labels a listener in metrics and logs: "lb-web/tcp/80".
func listenerName(lb *xlbv1.LoadBalancer, l *xlbv1.Listener) string {
	return fmt.Sprintf("%s/%s/%d", lb.GetId(), l.GetProtocol(), l.GetPort())
}

// listenerServers returns the servers a listener forwards to: its server
// group's, or the load balancer's default pool.
func listenerServers(cfg *xlbv1.Config, lb *xlbv1.LoadBalancer, l *xlbv1.Listener) (xlbv1.ServerGroup_Type, []*xlbv1.Server, error) {
	if l.GetServerGroup() == "" {
		return xlbv1.ServerGroup_vserver, lb.GetServers(), nil
	}
	for _, g := range cfg.GetServerGroups() {
		if g.GetId() == l.GetServerGroup() {
			return g.GetType(), g.GetServers(), nil
		}
	}
	return 0, nil, fmt.Errorf("server_group %q not found", l.GetServerGroup())
}

func compilePool(typ xlbv1.ServerGroup_Type, servers []*xlbv1.Server, l *xlbv1.Listener) (pool.Config, error) {
	pc := pool.Config{Scheduler: compileScheduler(l.GetScheduler())}
	if typ == xlbv1.ServerGroup_master_slave {
		pc.Type = pool.MasterSlave
	}
	if p := l.GetPersistence(); p.GetType() == xlbv1.Persistence_source_ip {
		pc.Persistence = p.GetTimeout().AsDuration()
	}
	for i, s := range servers {
		addr, err := netip.ParseAddr(s.GetAddress())
		if err != nil {
			return pc, fmt.Errorf("servers[%d].address: %w", i, err)
		}
		port := s.GetPort()
		if port == 0 {
			port = l.GetBackendPort()
		}
		srv := pool.Server{Addr: addr.Unmap(), Port: uint16(port), Weight: int(s.GetWeight())}
		switch s.GetRole() {
		case xlbv1.Server_master:
			srv.Role = pool.Master
		case xlbv1.Server_slave:
			srv.Role = pool.Slave
		}
		pc.Servers = append(pc.Servers, srv)
	}
	return pc, nil
}

func compileScheduler(s xlbv1.Scheduler) pool.Kind {
	switch s {
	case xlbv1.Scheduler_rr:
		return pool.RR
	case xlbv1.Scheduler_wlc:
		return pool.WLC
	case xlbv1.Scheduler_maglev:
		return pool.Maglev
	}
	return pool.WRR
}

// compileHealth returns the listener's check; the zero Spec means none.
func compileHealth(l *xlbv1.Listener) health.Spec {
	hc := l.GetHealthCheck()
	if hc == nil || (hc.Enabled != nil && !hc.GetEnabled()) {
		return health.Spec{}
	}
	s := health.Spec{
		Port:     uint16(hc.GetPort()),
		Host:     hc.GetHost(),
		Path:     hc.GetPath(),
		Timeout:  hc.GetTimeout().AsDuration(),
		Interval: hc.GetInterval().AsDuration(),
		Rise:     int(hc.GetHealthyThreshold()),
		Fall:     int(hc.GetUnhealthyThreshold()),
		Request:  hc.GetRequest(),
		Response: hc.GetResponse(),
	}
	switch hc.GetType() {
	case xlbv1.HealthCheck_http:
		s.Type = health.HTTP
	case xlbv1.HealthCheck_udp:
		s.Type = health.UDP
	default:
		s.Type = health.TCP
	}
	for _, c := range hc.GetCodes() {
		switch c {
		case xlbv1.HttpCode_http_2xx:
			s.Codes |= health.HTTP2xx
		case xlbv1.HttpCode_http_3xx:
			s.Codes |= health.HTTP3xx
		case xlbv1.HttpCode_http_4xx:
			s.Codes |= health.HTTP4xx
		case xlbv1.HttpCode_http_5xx:
			s.Codes |= health.HTTP5xx
		}
	}
	return s.Normalize()
}

// compileACL returns the listener's access list; nil allows everyone.
func compileACL(l *xlbv1.Listener) (*acl.List, error) {
	a := l.GetAcl()
	if a == nil || (a.Enabled != nil && !a.GetEnabled()) {
		return nil, nil
	}
	prefixes, err := acl.ParseEntries(a.GetCidrs())
	if err != nil {
		return nil, fmt.Errorf("acl.cidrs: %w", err)
	}
	mode := acl.Allow
	if a.GetMode() == xlbv1.Acl_deny {
		mode = acl.Deny
	}
	list, err := acl.New(mode, prefixes)
	if err != nil {
		return nil, fmt.Errorf("acl: %w", err)
	}
	return list, nil
}

func enabled(b *bool) bool { return b == nil || *b }

func duration(d interface{ AsDuration() time.Duration }, def time.Duration) time.Duration {
	if v := d.AsDuration(); v > 0 {
		return v
	}
	return def
}
