package config

import (
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	xlbv1 "github.com/xlbproject/xlb/controlplane/api/xlb/v1"
)

// Documented defaults (docs/configuration.md lists every one).
const (
	DefaultWeight         = 100
	DefaultControlListen  = "unix:///run/xlb/xlb.sock"
	DefaultMetricsListen  = "127.0.0.1:9100"
	DefaultStateDir       = "/var/lib/xlb"
	DefaultMaxFlows       = 1 << 20
	DefaultRouteTable     = 200
	DefaultCookieName     = "XLBSERVERID"
	DefaultTLSMinVersion  = "1.2"
	DefaultRedirectPort   = 443
	DefaultRedirectStatus = 301
	DefaultThreshold      = 3
	DefaultMaxSessions    = 100000
)

// WithDefaults returns a copy of cfg with every unset field that has a
// documented default filled in. cfg itself is not modified. Fields that are
// required (ids, addresses, protocols...) are left for Validate to report.
func WithDefaults(cfg *xlbv1.Config) *xlbv1.Config {
	out := &xlbv1.Config{}
	if cfg != nil {
		out = proto.Clone(cfg).(*xlbv1.Config)
	}
	if out.Node == nil {
		out.Node = &xlbv1.Node{}
	}
	defaultNode(out.Node)
	for _, g := range out.ServerGroups {
		if g.Type == xlbv1.ServerGroup_TYPE_UNSPECIFIED {
			g.Type = xlbv1.ServerGroup_vserver
		}
		defaultServers(g.Servers)
	}
	for _, lb := range out.LoadBalancers {
		defaultLoadBalancer(lb)
	}
	for _, p := range out.SnatPools {
		if p.Timeouts == nil {
			p.Timeouts = &xlbv1.SnatTimeouts{}
		}
		setDuration(&p.Timeouts.TcpFin, 240*time.Second)
		setDuration(&p.Timeouts.TcpRst, 15*time.Second)
		setDuration(&p.Timeouts.Idle, 240*time.Second)
	}
	return out
}

func defaultNode(n *xlbv1.Node) {
	if n.XdpMode == xlbv1.XdpMode_XDP_MODE_UNSPECIFIED {
		n.XdpMode = xlbv1.XdpMode_auto
	}
	if n.Control == nil {
		n.Control = &xlbv1.Control{}
	}
	setString(&n.Control.Listen, DefaultControlListen)
	if n.Metrics == nil {
		n.Metrics = &xlbv1.Metrics{}
	}
	setString(&n.Metrics.Listen, DefaultMetricsListen)
	setString(&n.StateDir, DefaultStateDir)
	if n.Conntrack == nil {
		n.Conntrack = &xlbv1.Conntrack{}
	}
	if n.Conntrack.MaxFlows == 0 {
		n.Conntrack.MaxFlows = DefaultMaxFlows
	}
	setDuration(&n.Conntrack.TcpEstablishedTimeout, 900*time.Second)
	setDuration(&n.Conntrack.TcpClosingTimeout, 10*time.Second)
	setDuration(&n.Conntrack.UdpTimeout, 300*time.Second)
	if n.Announce == nil {
		n.Announce = &xlbv1.Announce{}
	}
	if n.Announce.Mode == xlbv1.Announce_MODE_UNSPECIFIED {
		n.Announce.Mode = xlbv1.Announce_none
	}
	if n.Announce.RouteTable == 0 {
		n.Announce.RouteTable = DefaultRouteTable
	}
}

func defaultServers(servers []*xlbv1.Server) {
	for _, s := range servers {
		if s.Weight == nil {
			s.Weight = proto.Uint32(DefaultWeight)
		}
	}
}

func defaultLoadBalancer(lb *xlbv1.LoadBalancer) {
	if lb.Enabled == nil {
		lb.Enabled = proto.Bool(true)
	}
	defaultServers(lb.Servers)
	for _, l := range lb.Listeners {
		defaultListener(l)
	}
	if f := lb.FloodProtection; f != nil {
		if f.Enabled == nil {
			f.Enabled = proto.Bool(true)
		}
		setDuration(&f.BlackholeHold, 60*time.Second)
	}
}

func defaultListener(l *xlbv1.Listener) {
	layer4 := l.Protocol == xlbv1.Protocol_tcp || l.Protocol == xlbv1.Protocol_udp
	web := l.Protocol == xlbv1.Protocol_http || l.Protocol == xlbv1.Protocol_https
	if l.Enabled == nil {
		l.Enabled = proto.Bool(true)
	}
	if l.BackendPort == 0 {
		l.BackendPort = l.Port
	}
	if l.Scheduler == xlbv1.Scheduler_SCHEDULER_UNSPECIFIED {
		l.Scheduler = xlbv1.Scheduler_wrr
	}
	if layer4 && l.ForwardMode == xlbv1.Listener_FORWARD_MODE_UNSPECIFIED {
		l.ForwardMode = xlbv1.Listener_nat
	}
	if l.Protocol == xlbv1.Protocol_udp && l.MaxSessions == 0 {
		l.MaxSessions = DefaultMaxSessions
	}
	defaultPersistence(l)
	defaultHealthCheck(l)
	if l.Acl != nil && l.Acl.Enabled == nil {
		l.Acl.Enabled = proto.Bool(true)
	}
	if l.Tls != nil {
		setString(&l.Tls.MinVersion, DefaultTLSMinVersion)
	}
	if r := l.RedirectHttps; r != nil {
		if r.Port == 0 {
			r.Port = DefaultRedirectPort
		}
		if r.Status == 0 {
			r.Status = DefaultRedirectStatus
		}
	}
	if l.Timeouts == nil {
		l.Timeouts = &xlbv1.Timeouts{}
	}
	switch l.Protocol {
	case xlbv1.Protocol_tcp:
		setDuration(&l.Timeouts.Idle, 900*time.Second)
	case xlbv1.Protocol_udp:
		setDuration(&l.Timeouts.Idle, 300*time.Second)
	case xlbv1.Protocol_http, xlbv1.Protocol_https:
		setDuration(&l.Timeouts.Idle, 60*time.Second)
	}
	if l.Protocol != xlbv1.Protocol_udp { // a UDP session has no connection setup
		setDuration(&l.Timeouts.Connect, 5*time.Second)
	}
	if web {
		setDuration(&l.Timeouts.Request, 60*time.Second)
	}
}

func defaultPersistence(l *xlbv1.Listener) {
	if l.Persistence == nil {
		l.Persistence = &xlbv1.Persistence{Type: xlbv1.Persistence_none}
		return
	}
	p := l.Persistence
	switch p.Type {
	case xlbv1.Persistence_source_ip:
		setDuration(&p.Timeout, 300*time.Second)
	case xlbv1.Persistence_insert_cookie:
		setDuration(&p.Timeout, 1800*time.Second)
		setString(&p.Cookie, DefaultCookieName)
	}
}

// HealthCheckTimings returns the default timeout and interval of a listener
// protocol's checks: 5s/2s for tcp, http and https, 10s/5s for udp.
func HealthCheckTimings(p xlbv1.Protocol) (timeout, interval time.Duration) {
	if p == xlbv1.Protocol_udp {
		return 10 * time.Second, 5 * time.Second
	}
	return 5 * time.Second, 2 * time.Second
}

func defaultHealthCheck(l *xlbv1.Listener) {
	if l.HealthCheck == nil {
		l.HealthCheck = &xlbv1.HealthCheck{}
		// A udp check needs a request and a response only the user knows:
		// without a health_check block a udp listener has no check.
		if l.Protocol == xlbv1.Protocol_udp {
			l.HealthCheck.Enabled = proto.Bool(false)
		}
	}
	hc := l.HealthCheck
	if hc.Enabled == nil {
		hc.Enabled = proto.Bool(true)
	}
	if hc.Type == xlbv1.HealthCheck_TYPE_UNSPECIFIED {
		switch l.Protocol {
		case xlbv1.Protocol_udp:
			hc.Type = xlbv1.HealthCheck_udp
		case xlbv1.Protocol_tcp, xlbv1.Protocol_http, xlbv1.Protocol_https:
			hc.Type = xlbv1.HealthCheck_tcp
		}
	}
	timeout, interval := HealthCheckTimings(l.Protocol)
	setDuration(&hc.Timeout, timeout)
	setDuration(&hc.Interval, interval)
	if hc.HealthyThreshold == nil {
		hc.HealthyThreshold = proto.Uint32(DefaultThreshold)
	}
	if hc.UnhealthyThreshold == nil {
		hc.UnhealthyThreshold = proto.Uint32(DefaultThreshold)
	}
	if hc.Type == xlbv1.HealthCheck_http {
		setString(&hc.Path, "/")
		if len(hc.Codes) == 0 {
			hc.Codes = []xlbv1.HttpCode{xlbv1.HttpCode_http_2xx, xlbv1.HttpCode_http_3xx}
		}
	}
}

func setString(p *string, def string) {
	if *p == "" {
		*p = def
	}
}

// setDuration sets an absent duration. A present one, even 0s, is the
// user's and is left for Validate to judge.
func setDuration(p **durationpb.Duration, def time.Duration) {
	if *p == nil {
		*p = durationpb.New(def)
	}
}
