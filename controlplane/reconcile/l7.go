package reconcile

import (
	"context"
	"fmt"
	"net/netip"

	xlbv1 "github.com/xlbproject/xlb/controlplane/api/xlb/v1"
	"github.com/xlbproject/xlb/dataplane/l7"
	"github.com/xlbproject/xlb/dataplane/limit"
	"github.com/xlbproject/xlb/dataplane/pool"
)

// L7 drives the HTTP proxy engine: every http and https listener (HTTP/3
// included). Certificates are parsed from the configuration's PEM at each
// Prepare, so a reload with a new certificate swaps it in.
type L7 struct {
	engine   *l7.Engine
	backends *Backends
	limits   *Limits
}

// NewL7 adapts engine, building its pools from backends, so that L7 pools
// share Backend objects (health, active counts) with the other engines,
// and its limits from limits (nil: unlimited).
func NewL7(engine *l7.Engine, backends *Backends, limits *Limits) *L7 {
	return &L7{engine: engine, backends: backends, limits: limits}
}

func (a *L7) Name() string { return "l7" }

// Drain stops the engine (see l7.Engine.Drain).
func (a *L7) Drain(ctx context.Context) { a.engine.Drain(ctx) }

// Prepare compiles the http listeners and stages them.
func (a *L7) Prepare(ctx context.Context, cfg *xlbv1.Config) (Staged, error) {
	lc, err := CompileL7(cfg, a.backends, a.limits.Registry())
	if err != nil {
		return nil, err
	}
	return a.engine.Prepare(ctx, lc)
}

// CompileL7 turns the configuration's http and https listeners into the
// HTTP engine's values, with the limits of reg (nil: unlimited). Errors
// name the field they come from.
func CompileL7(cfg *xlbv1.Config, backends *Backends, reg *limit.Registry) (l7.Config, error) {
	var out l7.Config
	tc := newTLSCompiler(cfg)
	for i, lb := range cfg.GetLoadBalancers() {
		var vip netip.Addr
		for j, l := range lb.GetListeners() {
			if p := l.GetProtocol(); p != xlbv1.Protocol_http && p != xlbv1.Protocol_https {
				continue // tcp/udp: the l4 engines
			}
			if !vip.IsValid() {
				v, err := netip.ParseAddr(lb.GetAddress())
				if err != nil {
					return out, fmt.Errorf("load_balancers[%d].address: %w", i, err)
				}
				vip = v.Unmap()
			}
			path := fmt.Sprintf("load_balancers[%d].listeners[%d]", i, j)
			hl, err := compileHTTPListener(cfg, lb, l, vip, backends)
			if err != nil {
				return out, fmt.Errorf("%s.%w", path, err)
			}
			hl.Limits, hl.BandwidthIn, hl.BandwidthOut = listenerLimits(reg, lb, l)
			if l.GetProtocol() == xlbv1.Protocol_https {
				if hl.TLS, err = tc.listener(l.GetTls()); err != nil {
					return out, fmt.Errorf("%s.tls.%w", path, err)
				}
				hl.HTTP3 = l.GetHttp3()
			}
			out.Listeners = append(out.Listeners, hl)
		}
	}
	return out, nil
}

// compileHTTPListener compiles one listener; errors start with the field
// name relative to the listener.
func compileHTTPListener(cfg *xlbv1.Config, lb *xlbv1.LoadBalancer, l *xlbv1.Listener, vip netip.Addr, backends *Backends) (l7.Listener, error) {
	typ, servers, err := listenerServers(cfg, lb, l)
	if err != nil {
		return l7.Listener{}, err
	}
	def, err := compilePool(typ, servers, l)
	if err != nil {
		return l7.Listener{}, err
	}
	def.Persistence = 0 // source-IP persistence is tcp only; cookies are the engine's
	list, err := compileACL(l)
	if err != nil {
		return l7.Listener{}, err
	}
	hl := l7.Listener{
		Name:     listenerName(lb, l),
		LB:       lb.GetId(),
		Addr:     netip.AddrPortFrom(vip, uint16(l.GetPort())),
		Registry: backends.Registry(compileHealth(l)),
		Default:  def,
		Groups:   map[string]pool.Config{},
		Gzip:     l.GetGzip(),
		ACL:      list,
		Stopped:  !enabled(lb.Enabled) || !enabled(l.Enabled),
		Timeouts: l7.Timeouts{
			Idle:    duration(l.GetTimeouts().GetIdle(), l7.DefaultIdleTimeout),
			Connect: duration(l.GetTimeouts().GetConnect(), l7.DefaultConnectTimeout),
			Request: duration(l.GetTimeouts().GetRequest(), l7.DefaultRequestTimeout),
		},
	}
	if h := l.GetHeaders(); h != nil {
		hl.Headers = l7.Headers{
			XForwardedFor:   h.GetXForwardedFor(),
			XForwardedProto: h.GetXForwardedProto(),
			LBIP:            h.GetLbIp(),
			LBID:            h.GetLbId(),
		}
	}
	switch p := l.GetPersistence(); p.GetType() {
	case xlbv1.Persistence_insert_cookie:
		hl.Persistence = l7.Persistence{Mode: l7.InsertCookie, Cookie: p.GetCookie(), Timeout: p.GetTimeout().AsDuration()}
	case xlbv1.Persistence_rewrite_cookie:
		hl.Persistence = l7.Persistence{Mode: l7.RewriteCookie, Cookie: p.GetCookie()}
	case xlbv1.Persistence_TYPE_UNSPECIFIED, xlbv1.Persistence_none:
	default:
		return l7.Listener{}, fmt.Errorf("persistence.type: %s is not available on http listeners", p.GetType())
	}
	if r := l.GetRedirectHttps(); r != nil {
		hl.RedirectHTTPS = &l7.Redirect{Port: uint16(r.GetPort()), Status: int(r.GetStatus())}
	}
	for k, r := range l.GetRules() {
		gid := r.GetServerGroup()
		if _, done := hl.Groups[gid]; !done {
			g := findGroup(cfg, gid)
			if g == nil {
				return l7.Listener{}, fmt.Errorf("rules[%d].server_group: %q not found", k, gid)
			}
			pc, err := compilePool(g.GetType(), g.GetServers(), l)
			if err != nil {
				return l7.Listener{}, fmt.Errorf("rules[%d] (server group %q): %w", k, gid, err)
			}
			pc.Persistence = 0
			hl.Groups[gid] = pc
		}
		hl.Rules = append(hl.Rules, l7.Rule{Domain: r.GetDomain(), Path: r.GetPath(), Group: gid})
	}
	return hl, nil
}

func findGroup(cfg *xlbv1.Config, id string) *xlbv1.ServerGroup {
	for _, g := range cfg.GetServerGroups() {
		if g.GetId() == id {
			return g
		}
	}
	return nil
}

// Compile-time check that the engine's change is a Staged.
var _ Staged = (*l7.Change)(nil)
