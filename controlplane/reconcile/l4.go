package reconcile

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	xlbv1 "github.com/xlbproject/xlb/controlplane/api/xlb/v1"
	"github.com/xlbproject/xlb/dataplane/l4"
	"github.com/xlbproject/xlb/dataplane/limit"
)

// L4 drives the userspace layer-4 engine: the tcp and udp listeners the
// XDP engine does not serve.
type L4 struct {
	engine    *l4.Engine
	backends  *Backends
	placement Placement
	limits    *Limits
}

// NewL4 adapts engine, building its pools from backends and its limits
// from limits (nil: unlimited).
func NewL4(engine *l4.Engine, backends *Backends, placement Placement, limits *Limits) *L4 {
	return &L4{engine: engine, backends: backends, placement: placement, limits: limits}
}

func (a *L4) Name() string { return "l4" }

// Drain stops the engine (see l4.Engine.Drain).
func (a *L4) Drain(ctx context.Context) { a.engine.Drain(ctx) }

// Prepare compiles the tcp and udp listeners and stages them.
func (a *L4) Prepare(ctx context.Context, cfg *xlbv1.Config) (Staged, error) {
	lc, err := CompileL4(cfg, a.backends, a.placement, a.limits.Registry())
	if err != nil {
		return nil, err
	}
	return a.engine.Prepare(ctx, lc)
}

// CompileL4 turns the configuration's tcp and udp listeners that XDP does
// not serve into the userspace engine's values, with the limits of reg
// (nil: unlimited).
func CompileL4(cfg *xlbv1.Config, backends *Backends, placement Placement, reg *limit.Registry) (l4.Config, error) {
	var out l4.Config
	for i, lb := range cfg.GetLoadBalancers() {
		vip, err := netip.ParseAddr(lb.GetAddress())
		if err != nil {
			return out, fmt.Errorf("load_balancers[%d].address: %w", i, err)
		}
		for j, l := range lb.GetListeners() {
			var proto l4.Protocol
			switch l.GetProtocol() {
			case xlbv1.Protocol_tcp:
				proto = l4.TCP
			case xlbv1.Protocol_udp:
				proto = l4.UDP
			default:
				continue
			}
			if placement.inXDP(vip.Unmap(), l) {
				continue
			}
			path := fmt.Sprintf("load_balancers[%d].listeners[%d]", i, j)
			typ, servers, err := listenerServers(cfg, lb, l)
			if err != nil {
				return out, fmt.Errorf("%s.%w", path, err)
			}
			pc, err := compilePool(typ, servers, l)
			if err != nil {
				return out, fmt.Errorf("%s: %w", path, err)
			}
			list, err := compileACL(l)
			if err != nil {
				return out, fmt.Errorf("%s.%w", path, err)
			}
			lim, in, bwOut := listenerLimits(reg, lb, l)
			idleDefault := 900 * time.Second
			if proto == l4.UDP {
				idleDefault = 300 * time.Second
			}
			out.Listeners = append(out.Listeners, l4.Listener{
				Name:           listenerName(lb, l),
				Protocol:       proto,
				Addr:           netip.AddrPortFrom(vip.Unmap(), uint16(l.GetPort())),
				Registry:       backends.Registry(compileHealth(l)),
				Pool:           pc,
				ACL:            list,
				Stopped:        !enabled(lb.Enabled) || !enabled(l.Enabled),
				IdleTimeout:    duration(l.GetTimeouts().GetIdle(), idleDefault),
				ConnectTimeout: duration(l.GetTimeouts().GetConnect(), 5*time.Second),
				MaxSessions:    int(l.GetMaxSessions()),
				Limits:         lim,
				BandwidthIn:    in,
				BandwidthOut:   bwOut,
			})
		}
	}
	return out, nil
}
