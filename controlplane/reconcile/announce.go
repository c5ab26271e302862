package reconcile

import (
	"context"
	"fmt"
	"net/netip"

	xlbv1 "github.com/xlbproject/xlb/controlplane/api/xlb/v1"
	"github.com/xlbproject/xlb/dataplane/announce"
	"github.com/xlbproject/xlb/dataplane/pool"
)

// Announce drives the announcer: node.announce and every load balancer's
// VIP, each announced while one of its listeners has a healthy, enabled
// backend with a weight.
type Announce struct {
	engine   *announce.Engine
	backends *Backends
}

// NewAnnounce adapts engine; health comes from the backends' registries.
func NewAnnounce(engine *announce.Engine, backends *Backends) *Announce {
	return &Announce{engine: engine, backends: backends}
}

func (a *Announce) Name() string { return "announce" }

// Drain withdraws every VIP (see announce.Engine.Drain).
func (a *Announce) Drain(ctx context.Context) { a.engine.Drain(ctx) }

// Prepare compiles the announcement; Commit applies it.
func (a *Announce) Prepare(_ context.Context, cfg *xlbv1.Config) (Staged, error) {
	c, err := CompileAnnounce(cfg, a.backends)
	if err != nil {
		return nil, err
	}
	return &announceChange{e: a.engine, cfg: c}, nil
}

type announceChange struct {
	e   *announce.Engine
	cfg announce.Config
}

func (c *announceChange) Commit() { c.e.Apply(c.cfg) }
func (c *announceChange) Abort()  {}

// CompileAnnounce turns node.announce and the load balancers into the
// announcer's values.
func CompileAnnounce(cfg *xlbv1.Config, backends *Backends) (announce.Config, error) {
	a := cfg.GetNode().GetAnnounce()
	out := announce.Config{Table: a.GetRouteTable(), Priority: a.GetPriority()}
	switch a.GetMode() {
	case xlbv1.Announce_ecmp:
		out.Mode = announce.ECMP
	case xlbv1.Announce_active_standby:
		out.Mode = announce.ActiveStandby
	default:
		out.Mode = announce.None
	}
	for i, lb := range cfg.GetLoadBalancers() {
		vip, err := netip.ParseAddr(lb.GetAddress())
		if err != nil {
			return out, fmt.Errorf("load_balancers[%d].address: %w", i, err)
		}
		if !enabled(lb.Enabled) {
			continue // a stopped load balancer is not announced
		}
		var checks []serverCheck
		for j, l := range lb.GetListeners() {
			if !enabled(l.Enabled) {
				continue
			}
			typ, servers, err := listenerServers(cfg, lb, l)
			if err != nil {
				return out, fmt.Errorf("load_balancers[%d].listeners[%d].%w", i, j, err)
			}
			pc, err := compilePool(typ, servers, l)
			if err != nil {
				return out, fmt.Errorf("load_balancers[%d].listeners[%d]: %w", i, j, err)
			}
			checks = append(checks, serverCheck{reg: backends.Registry(compileHealth(l)), servers: pc.Servers})
		}
		out.VIPs = append(out.VIPs, announce.VIP{Addr: vip.Unmap(), Healthy: anyServing(checks)})
	}
	return out, nil
}

type serverCheck struct {
	reg     *pool.Registry
	servers []pool.Server
}

// anyServing reports whether some listener has a backend that takes new
// connections: up, enabled and with a weight. A backend no pool has built
// yet (just configured) counts as up, as the health checker starts it.
func anyServing(checks []serverCheck) func() bool {
	return func() bool {
		for _, c := range checks {
			for _, s := range c.servers {
				if s.Weight == 0 {
					continue
				}
				b := c.reg.Lookup(pool.BackendID(s.Addr, s.Port))
				if b == nil || (b.Up() && b.Admin() == pool.AdminEnabled) {
					return true
				}
			}
		}
		return false
	}
}
