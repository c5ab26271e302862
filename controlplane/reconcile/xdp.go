package reconcile

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	xlbv1 "github.com/xlbproject/xlb/controlplane/api/xlb/v1"
	"github.com/xlbproject/xlb/dataplane/acl"
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
// passed to the kernel for the proxy. SNAT pools and EIPs are the XDP
// engine's alone.
func CompileXDP(cfg *xlbv1.Config, backends *Backends) (xdp.Config, error) {
	var out xdp.Config
	var err error
	if out.SNATPools, err = compileSNATPools(cfg.GetSnatPools()); err != nil {
		return out, err
	}
	if out.EIPs, err = compileEIPs(cfg.GetEips()); err != nil {
		return out, err
	}
	// The same limits the userspace engines get (limits.go); the XDP
	// engine keeps its own counts and buckets in BPF maps.
	out.Limits = compileLimits(cfg)
	for i, lb := range cfg.GetLoadBalancers() {
		vip, err := netip.ParseAddr(lb.GetAddress())
		if err != nil {
			return out, fmt.Errorf("load_balancers[%d].address: %w", i, err)
		}
		vip = vip.Unmap()
		if !vip.Is4() {
			continue
		}
		if fl, err := compileFlood(lb, vip); err != nil {
			return out, fmt.Errorf("load_balancers[%d].%w", i, err)
		} else if fl != nil {
			for _, o := range out.Floods {
				if o.VIP == vip {
					return out, fmt.Errorf("load_balancers[%d].flood_protection: VIP %v is protected by load balancer %s already", i, vip, o.LB)
				}
			}
			out.Floods = append(out.Floods, *fl)
		}
		for j, l := range lb.GetListeners() {
			path := fmt.Sprintf("load_balancers[%d].listeners[%d]", i, j)
			x := xdp.Listener{
				Name:    listenerName(lb, l),
				LB:      lb.GetId(),
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

func compileSNATPools(pools []*xlbv1.SnatPool) ([]xdp.SNATPool, error) {
	var out []xdp.SNATPool
	for i, p := range pools {
		path := fmt.Sprintf("snat_pools[%d]", i)
		sp := xdp.SNATPool{Name: p.GetId(), Interface: p.GetInterface()}
		for j, s := range p.GetPublicIps() {
			a, err := netip.ParseAddr(s)
			if err != nil {
				return nil, fmt.Errorf("%s.public_ips[%d]: %w", path, j, err)
			}
			sp.PublicIPs = append(sp.PublicIPs, a.Unmap())
		}
		for j, s := range p.GetSources() {
			pfx, err := parseSource(s)
			if err != nil {
				return nil, fmt.Errorf("%s.sources[%d]: %w", path, j, err)
			}
			sp.Sources = append(sp.Sources, pfx)
		}
		t := p.GetTimeouts()
		sp.Timeouts = xdp.SNATTimeouts{
			TCPFin: duration(t.GetTcpFin(), 240*time.Second),
			TCPRst: duration(t.GetTcpRst(), 15*time.Second),
			Idle:   duration(t.GetIdle(), 240*time.Second),
		}
		out = append(out, sp)
	}
	return out, nil
}

// parseSource reads an address or a CIDR (a bare address is one host).
func parseSource(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func compileEIPs(eips []*xlbv1.Eip) ([]xdp.EIP, error) {
	var out []xdp.EIP
	for i, e := range eips {
		pub, err := netip.ParseAddr(e.GetPublicIp())
		if err != nil {
			return nil, fmt.Errorf("eips[%d].public_ip: %w", i, err)
		}
		priv, err := netip.ParseAddr(e.GetPrivateIp())
		if err != nil {
			return nil, fmt.Errorf("eips[%d].private_ip: %w", i, err)
		}
		out = append(out, xdp.EIP{Public: pub.Unmap(), Private: priv.Unmap(), Interface: e.GetInterface()})
	}
	return out, nil
}

// compileFlood returns lb's flood protection (nil when off); the allow
// lists of its listeners are exempt.
func compileFlood(lb *xlbv1.LoadBalancer, vip netip.Addr) (*xdp.Flood, error) {
	f := lb.GetFloodProtection()
	if f == nil || !f.GetEnabled() {
		return nil, nil
	}
	rate := func(r *xlbv1.FloodRate) xdp.FloodRate {
		return xdp.FloodRate{PerSourcePPS: r.GetPerSourcePps(), TotalPPS: r.GetTotalPps()}
	}
	out := &xdp.Flood{
		LB: lb.GetId(), VIP: vip,
		SYN: rate(f.GetSyn()), UDP: rate(f.GetUdp()), ICMP: rate(f.GetIcmp()),
		CleanPPS: f.GetCleanPps(), CleanBPS: f.GetCleanBps(),
		BlackholePPS: f.GetBlackholePps(), BlackholeBPS: f.GetBlackholeBps(),
		BlackholeHold: duration(f.GetBlackholeHold(), 60*time.Second),
	}
	for j, l := range lb.GetListeners() {
		list, err := compileACL(l)
		if err != nil {
			return nil, fmt.Errorf("listeners[%d].%w", j, err)
		}
		if list != nil && list.Mode() == acl.Allow {
			out.Exempt = append(out.Exempt, list.Entries()...)
		}
	}
	return out, nil
}
