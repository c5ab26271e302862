package reconcile

import (
	"context"
	"fmt"
	"net/netip"
	"sync"

	xlbv1 "github.com/xlbproject/xlb/controlplane/api/xlb/v1"
	"github.com/xlbproject/xlb/dataplane/health"
	"github.com/xlbproject/xlb/dataplane/pool"
)

// Health drives the health checker: one target per (server, check) of every
// listener, and routes each state change to the Backend objects of the
// engines' pools.
type Health struct {
	mgr      *health.Manager
	backends *Backends
	cancel   func()

	mu     sync.Mutex
	routes map[health.Key][]backendRef

	runDone chan struct{}
}

// backendRef finds one Backend a check result applies to.
type backendRef struct {
	reg *pool.Registry
	id  string
}

// NewHealth adapts mgr, subscribes to its state changes and starts checking;
// Drain stops it.
func NewHealth(mgr *health.Manager, backends *Backends) *Health {
	h := &Health{mgr: mgr, backends: backends, routes: map[health.Key][]backendRef{}, runDone: make(chan struct{})}
	h.cancel = mgr.OnChange(h.route)
	go func() {
		defer close(h.runDone)
		_ = mgr.Run(context.Background()) // returns when Drain closes mgr
	}()
	return h
}

func (h *Health) Name() string { return "health" }

// Drain stops every checker.
func (h *Health) Drain(context.Context) {
	h.cancel()
	_ = h.mgr.Close()
	<-h.runDone
}

func (h *Health) route(ev health.Event) {
	h.mu.Lock()
	refs := h.routes[ev.Key]
	h.mu.Unlock()
	for _, r := range refs {
		if b := r.reg.Lookup(r.id); b != nil {
			b.SetUp(ev.New == health.Up)
		}
	}
}

// Prepare compiles the targets; the manager validates them at Commit, so
// they are validated here first.
func (h *Health) Prepare(_ context.Context, cfg *xlbv1.Config) (Staged, error) {
	targets, routes, err := h.compile(cfg)
	if err != nil {
		return nil, err
	}
	return &healthChange{h: h, targets: targets, routes: routes}, nil
}

func (h *Health) compile(cfg *xlbv1.Config) ([]health.Target, map[health.Key][]backendRef, error) {
	var targets []health.Target
	routes := map[health.Key][]backendRef{}
	for i, lb := range cfg.GetLoadBalancers() {
		for j, l := range lb.GetListeners() {
			spec := compileHealth(l)
			if spec == (health.Spec{}) {
				continue
			}
			path := fmt.Sprintf("load_balancers[%d].listeners[%d]", i, j)
			if err := spec.Validate(); err != nil {
				return nil, nil, fmt.Errorf("%s.health_check: %w", path, err)
			}
			servers, err := checkedServers(cfg, lb, l)
			if err != nil {
				return nil, nil, fmt.Errorf("%s.%w", path, err)
			}
			reg := h.backends.Registry(spec)
			for k, s := range servers {
				addr, err := netip.ParseAddr(s.GetAddress())
				if err != nil {
					return nil, nil, fmt.Errorf("%s servers[%d].address: %w", path, k, err)
				}
				port := s.GetPort()
				if port == 0 {
					port = l.GetBackendPort()
				}
				ap := netip.AddrPortFrom(addr.Unmap(), uint16(port))
				t := health.Target{Owner: listenerName(lb, l), Addr: ap, Spec: spec}
				targets = append(targets, t)
				ref := backendRef{reg: reg, id: pool.BackendID(ap.Addr(), ap.Port())}
				routes[t.Key()] = appendUnique(routes[t.Key()], ref)
			}
		}
	}
	return targets, routes, nil
}

// checkedServers are the servers a listener can send to: its group (or the
// default pool) and the groups of its forwarding rules, all checked with
// the listener's health check.
func checkedServers(cfg *xlbv1.Config, lb *xlbv1.LoadBalancer, l *xlbv1.Listener) ([]*xlbv1.Server, error) {
	_, servers, err := listenerServers(cfg, lb, l)
	if err != nil {
		return nil, err
	}
	for i, r := range l.GetRules() {
		found := false
		for _, g := range cfg.GetServerGroups() {
			if g.GetId() == r.GetServerGroup() {
				servers = append(servers, g.GetServers()...)
				found = true
				break
			}
		}
		if !found {
			return nil, fmt.Errorf("rules[%d].server_group %q not found", i, r.GetServerGroup())
		}
	}
	return servers, nil
}

func appendUnique(refs []backendRef, r backendRef) []backendRef {
	for _, x := range refs {
		if x == r {
			return refs
		}
	}
	return append(refs, r)
}

type healthChange struct {
	h       *Health
	targets []health.Target
	routes  map[health.Key][]backendRef
}

func (c *healthChange) Commit() {
	c.h.mu.Lock()
	c.h.routes = c.routes
	c.h.mu.Unlock()
	// Targets were validated in Prepare; Set only fails after Close.
	_ = c.h.mgr.Set(c.targets)
	c.h.resync()
}

func (c *healthChange) Abort() {}

// resync applies the checkers' current verdicts to the backends, so a pool
// built for a reload starts from what the checks already know.
func (h *Health) resync() {
	for _, st := range h.mgr.Snapshot() {
		h.route(health.Event{Key: st.Key, New: st.State})
	}
}
