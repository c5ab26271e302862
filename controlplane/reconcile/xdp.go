package reconcile

import (
	"context"
	"fmt"
	"net/netip"

	xlbv1 "github.com/xlbproject/xlb/controlplane/api/xlb/v1"
	"github.com/xlbproject/xlb/dataplane/xdp"
)

// Placement says which engine serves a listener. It is fixed when the
// daemon starts: XDP attached or not.
type Placement struct {
	// XDP is true when the XDP engine is attached: it then serves IPv4
	// tcp and udp listeners and filters traffic to http/https ones.
	XDP bool
}

// inXDP reports whether the XDP engine forwards this tcp/udp listener
// (otherwise the userspace L4 engine does).
func (p Placement) inXDP(vip netip.Addr, l *xlbv1.Listener) bool {
	proto := l.GetProtocol()
	return p.XDP && vip.Is4() && (proto == xlbv1.Protocol_tcp || proto == xlbv1.Protocol_udp)
}

// XDP drives the XDP engine.
type XDP struct {
	engine   *xdp.Engine
	backends *Backends
}

// NewXDP adapts engine.
func NewXDP(engine *xdp.Engine, backends *Backends) *XDP {
	return &XDP{engine: engine, backends: backends}
}

func (a *XDP) Name() string { return "xdp" }

// Drain stops the engine's goroutines; the program stays attached.
func (a *XDP) Drain(ctx context.Context) { a.engine.Drain(ctx) }

// Prepare compiles and stages the listeners.
func (a *XDP) Prepare(ctx context.Context, cfg *xlbv1.Config) (Staged, error) {
	xc, err := CompileXDP(cfg, a.backends)
	if err != nil {
		return nil, err
	}
	return a.engine.Prepare(ctx, xc)
}

// CompileXDP turns the IPv4 listeners into the XDP engine's values: tcp and
// udp listeners are forwarded, http and https ones only filtered (ACL) and
// passed to the kernel for the proxy.
func CompileXDP(cfg *xlbv1.Config, backends *Backends) (xdp.Config, error) {
	var out xdp.Config
	for i, lb := range cfg.GetLoadBalancers() {
		vip, err := netip.ParseAddr(lb.GetAddress())
		if err != nil {
			return out, fmt.Errorf("load_balancers[%d].address: %w", i, err)
		}
		vip = vip.Unmap()
		if !vip.Is4() {
			continue
		}
		for j, l := range lb.GetListeners() {
			path := fmt.Sprintf("load_balancers[%d].listeners[%d]", i, j)
			x := xdp.Listener{
				Name:    listenerName(lb, l),
				VIP:     vip,
				Port:    uint16(l.GetPort()),
				Stopped: !enabled(lb.Enabled) || !enabled(l.Enabled),
			}
			switch l.GetProtocol() {
			case xlbv1.Protocol_tcp:
				x.Protocol = xdp.TCP
			case xlbv1.Protocol_udp:
				x.Protocol = xdp.UDP
			default:
				x.Protocol, x.Pass = xdp.TCP, true
			}
			if x.ACL, err = compileACL(l); err != nil {
				return out, fmt.Errorf("%s.%w", path, err)
			}
			if !x.Pass {
				x.FullNAT = l.GetForwardMode() == xlbv1.Listener_fullnat
				typ, servers, err := listenerServers(cfg, lb, l)
				if err != nil {
					return out, fmt.Errorf("%s.%w", path, err)
				}
				if x.Pool, err = compilePool(typ, servers, l); err != nil {
					return out, fmt.Errorf("%s: %w", path, err)
				}
				x.Registry = backends.Registry(compileHealth(l))
			}
			out.Listeners = append(out.Listeners, x)
			if l.GetProtocol() == xlbv1.Protocol_https && l.GetHttp3() {
				// HTTP/3 shares the port over UDP: filtered and passed too.
				h3 := x
				h3.Protocol = xdp.UDP
				out.Listeners = append(out.Listeners, h3)
			}
		}
	}
	return out, nil
}
