package reconcile

import (
	"context"

	xlbv1 "github.com/xlbproject/xlb/controlplane/api/xlb/v1"
	"github.com/xlbproject/xlb/controlplane/config"
	"github.com/xlbproject/xlb/dataplane/limit"
)

// bytesPerMbit converts the schema's Mbit/s into the shapers' bytes/s.
const bytesPerMbit = 1_000_000 / 8

// Limits applies the load balancers' limits (spec presets or explicit
// limits, bandwidth totals and listener peaks) to the objects in a
// limit.Registry that every engine's listeners point to. It is an engine of
// the reconciler so that new values take effect in the same commit as the
// listeners that use them; the objects themselves persist, so open
// connections stay counted across applies.
type Limits struct{ reg *limit.Registry }

// NewLimits returns the adapter of reg.
func NewLimits(reg *limit.Registry) *Limits { return &Limits{reg: reg} }

func (a *Limits) Name() string { return "limits" }

// Drain has nothing to stop: the limits are values.
func (a *Limits) Drain(context.Context) {}

// Registry is where the engines' compilers find each load balancer's
// limits; nil-safe for callers without limits.
func (a *Limits) Registry() *limit.Registry {
	if a == nil {
		return nil
	}
	return a.reg
}

// Prepare compiles the limits; nothing changes until Commit.
func (a *Limits) Prepare(_ context.Context, cfg *xlbv1.Config) (Staged, error) {
	return &limitsChange{reg: a.reg, params: compileLimits(cfg)}, nil
}

type limitsChange struct {
	reg    *limit.Registry
	params map[string]limit.Params
}

func (c *limitsChange) Commit() { c.reg.Set(c.params) }
func (c *limitsChange) Abort()  {}

// compileLimits returns every load balancer's limits by id.
func compileLimits(cfg *xlbv1.Config) map[string]limit.Params {
	out := map[string]limit.Params{}
	for _, lb := range cfg.GetLoadBalancers() {
		p := limit.Params{BandwidthBps: uint64(lb.GetBandwidthMbps()) * bytesPerMbit, Peaks: map[string]uint64{}}
		if l := config.EffectiveLimits(lb); l != nil {
			p.MaxConnections = l.GetMaxConnections()
			p.NewConnsPerSecond = l.GetNewConnectionsPerSecond()
			p.RequestsPerSecond = l.GetRequestsPerSecond()
		}
		for _, l := range lb.GetListeners() {
			if peak := l.GetBandwidthMbps(); peak > 0 {
				p.Peaks[listenerName(lb, l)] = uint64(peak) * bytesPerMbit
			}
		}
		out[lb.GetId()] = p
	}
	return out
}

// listenerLimits returns the limits and bandwidth shapers of listener l of
// lb: nil shapers when neither the listener nor the load balancer has a
// bandwidth, so unshaped traffic pays nothing.
func listenerLimits(reg *limit.Registry, lb *xlbv1.LoadBalancer, l *xlbv1.Listener) (*limit.LB, *limit.Shaper, *limit.Shaper) {
	if reg == nil {
		return nil, nil, nil
	}
	ll := reg.LB(lb.GetId())
	peak := uint64(l.GetBandwidthMbps()) * bytesPerMbit
	if peak == 0 && lb.GetBandwidthMbps() == 0 {
		return ll, nil, nil
	}
	in, out := ll.Bandwidth(listenerName(lb, l), peak)
	return ll, in, out
}
