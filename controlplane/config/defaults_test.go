package config_test

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	xlbv1 "github.com/xlbproject/xlb/controlplane/api/xlb/v1"
	"github.com/xlbproject/xlb/controlplane/config"
)

const defaultsYAML = `
server_groups:
  - id: web
    servers: [{address: 10.0.0.1}, {address: 10.0.0.2, weight: 0}, {address: 10.0.0.3, weight: 40}]
load_balancers:
  - id: lb
    address: 203.0.113.10
    servers: [{address: 10.0.0.9}]
    flood_protection: {syn: {total_pps: 1000}}
    listeners:
      - {protocol: tcp, port: 80}
      - {protocol: udp, port: 53}
      - {protocol: udp, port: 54, health_check: {request: ping, response: pong}}
      - {protocol: http, port: 8080, health_check: {type: http}, persistence: {type: insert_cookie}, redirect_https: {}}
      - {protocol: https, port: 443, backend_port: 8443, tls: {certificates: [www]}, acl: {mode: deny}}
      - {protocol: tcp, port: 22, persistence: {type: source_ip}, health_check: {interval: 10s, healthy_threshold: 5}}
snat_pools: [{id: out, public_ips: [203.0.113.20], sources: [10.0.0.0/24]}]
`

func TestDefaults(t *testing.T) {
	cfg := mustDecode(t, defaultsYAML)
	sec := func(d interface{ AsDuration() time.Duration }) time.Duration { return d.AsDuration() }
	n := cfg.Node
	lb := cfg.LoadBalancers[0]
	tcp, udp, udpChecked, http, https, ssh := lb.Listeners[0], lb.Listeners[1], lb.Listeners[2], lb.Listeners[3], lb.Listeners[4], lb.Listeners[5]
	g := cfg.ServerGroups[0]
	tests := []struct {
		what      string
		got, want any
	}{
		// servers
		{"unset weight", g.Servers[0].GetWeight(), uint32(100)},
		{"weight 0 stays 0", g.Servers[1].GetWeight(), uint32(0)},
		{"weight 40", g.Servers[2].GetWeight(), uint32(40)},
		{"default pool weight", lb.Servers[0].GetWeight(), uint32(100)},
		{"group type", g.Type, xlbv1.ServerGroup_vserver},
		// node
		{"xdp_mode", n.XdpMode, xlbv1.XdpMode_auto},
		{"control", n.Control.Listen, "unix:///run/xlb/xlb.sock"},
		{"metrics", n.Metrics.Listen, "127.0.0.1:9100"},
		{"state_dir", n.StateDir, "/var/lib/xlb"},
		{"max_flows", n.Conntrack.MaxFlows, uint32(1048576)},
		{"tcp established", sec(n.Conntrack.TcpEstablishedTimeout), 900 * time.Second},
		{"tcp closing", sec(n.Conntrack.TcpClosingTimeout), 10 * time.Second},
		{"udp", sec(n.Conntrack.UdpTimeout), 300 * time.Second},
		{"announce", n.Announce.Mode, xlbv1.Announce_none},
		{"route table", n.Announce.RouteTable, uint32(200)},
		// load balancer
		{"lb enabled", lb.GetEnabled(), true},
		{"flood enabled", lb.FloodProtection.GetEnabled(), true},
		{"blackhole hold", sec(lb.FloodProtection.BlackholeHold), 60 * time.Second},
		{"limits", config.EffectiveLimits(lb) == nil, true},
		// tcp listener
		{"tcp enabled", tcp.GetEnabled(), true},
		{"tcp backend_port", tcp.BackendPort, uint32(80)},
		{"tcp scheduler", tcp.Scheduler, xlbv1.Scheduler_wrr},
		{"tcp forward_mode", tcp.ForwardMode, xlbv1.Listener_nat},
		{"tcp persistence", tcp.Persistence.GetType(), xlbv1.Persistence_none},
		{"tcp check", tcp.HealthCheck.GetType(), xlbv1.HealthCheck_tcp},
		{"tcp check enabled", tcp.HealthCheck.GetEnabled(), true},
		{"tcp check timeout", sec(tcp.HealthCheck.Timeout), 5 * time.Second},
		{"tcp check interval", sec(tcp.HealthCheck.Interval), 2 * time.Second},
		{"tcp healthy", tcp.HealthCheck.GetHealthyThreshold(), uint32(3)},
		{"tcp unhealthy", tcp.HealthCheck.GetUnhealthyThreshold(), uint32(3)},
		{"tcp idle", sec(tcp.Timeouts.Idle), 900 * time.Second},
		{"tcp connect", sec(tcp.Timeouts.Connect), 5 * time.Second},
		{"tcp no request timeout", tcp.Timeouts.Request == nil, true},
		// udp listeners
		{"udp without check: none", udp.HealthCheck.GetEnabled(), false},
		{"udp forward_mode", udp.ForwardMode, xlbv1.Listener_nat},
		{"udp idle", sec(udp.Timeouts.Idle), 300 * time.Second},
		{"udp no connect timeout", udp.Timeouts.Connect == nil, true},
		{"udp max_sessions", udp.MaxSessions, uint32(100000)},
		{"tcp no max_sessions", tcp.MaxSessions, uint32(0)},
		{"udp check type", udpChecked.HealthCheck.GetType(), xlbv1.HealthCheck_udp},
		{"udp check enabled", udpChecked.HealthCheck.GetEnabled(), true},
		{"udp check timeout", sec(udpChecked.HealthCheck.Timeout), 10 * time.Second},
		{"udp check interval", sec(udpChecked.HealthCheck.Interval), 5 * time.Second},
		// http listener
		{"http check path", http.HealthCheck.Path, "/"},
		{"http check codes", len(http.HealthCheck.Codes), 2},
		{"http check 2xx", http.HealthCheck.Codes[0], xlbv1.HttpCode_http_2xx},
		{"http check 3xx", http.HealthCheck.Codes[1], xlbv1.HttpCode_http_3xx},
		{"http check timeout", sec(http.HealthCheck.Timeout), 5 * time.Second},
		{"http check interval", sec(http.HealthCheck.Interval), 2 * time.Second},
		{"http no forward_mode", http.ForwardMode, xlbv1.Listener_FORWARD_MODE_UNSPECIFIED},
		{"http idle", sec(http.Timeouts.Idle), 60 * time.Second},
		{"http request", sec(http.Timeouts.Request), 60 * time.Second},
		{"cookie", http.Persistence.Cookie, "XLBSERVERID"},
		{"cookie timeout", sec(http.Persistence.Timeout), 1800 * time.Second},
		{"redirect port", http.RedirectHttps.Port, uint32(443)},
		{"redirect status", http.RedirectHttps.Status, uint32(301)},
		// https listener
		{"https check", https.HealthCheck.GetType(), xlbv1.HealthCheck_tcp},
		{"https backend_port kept", https.BackendPort, uint32(8443)},
		{"https min version", https.Tls.MinVersion, "1.2"},
		{"acl enabled", https.Acl.GetEnabled(), true},
		// partly written check
		{"source_ip timeout", sec(ssh.Persistence.Timeout), 300 * time.Second},
		{"written interval kept", sec(ssh.HealthCheck.Interval), 10 * time.Second},
		{"written threshold kept", ssh.HealthCheck.GetHealthyThreshold(), uint32(5)},
		{"other threshold defaulted", ssh.HealthCheck.GetUnhealthyThreshold(), uint32(3)},
		// snat
		{"snat tcp_fin", sec(cfg.SnatPools[0].Timeouts.TcpFin), 240 * time.Second},
		{"snat tcp_rst", sec(cfg.SnatPools[0].Timeouts.TcpRst), 15 * time.Second},
		{"snat idle", sec(cfg.SnatPools[0].Timeouts.Idle), 240 * time.Second},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %v, want %v", tt.what, tt.got, tt.want)
		}
	}
}

func TestWithDefaultsCopiesAndIsIdempotent(t *testing.T) {
	raw, err := config.Decode([]byte(defaultsYAML))
	if err != nil {
		t.Fatal(err)
	}
	before := proto.Clone(raw)
	once := config.WithDefaults(raw)
	if !proto.Equal(raw, before) {
		t.Error("WithDefaults modified its argument")
	}
	if twice := config.WithDefaults(once); !proto.Equal(once, twice) {
		t.Errorf("defaults applied twice differ:\n%v\n%v", once, twice)
	}
	if config.WithDefaults(nil).GetNode().GetStateDir() != "/var/lib/xlb" {
		t.Error("WithDefaults(nil) has no node defaults")
	}
}

func TestPresets(t *testing.T) {
	tests := []struct {
		spec            string
		conns, new, rps uint64
	}{
		{"slb.s1.small", 5000, 3000, 1000},
		{"slb.s2.small", 50000, 5000, 5000},
		{"slb.s2.medium", 100000, 10000, 10000},
		{"slb.s3.small", 200000, 20000, 20000},
		{"slb.s3.medium", 500000, 50000, 30000},
		{"slb.s3.large", 1000000, 100000, 50000},
	}
	if got := config.PresetNames(); len(got) != len(tests) {
		t.Errorf("PresetNames() = %v", got)
	}
	for _, tt := range tests {
		cfg, err := config.Load([]byte("load_balancers: [{id: lb, address: 203.0.113.10, spec: "+tt.spec+"}]"), ".")
		if err != nil {
			t.Fatalf("%s: %v", tt.spec, err)
		}
		l := config.EffectiveLimits(cfg.LoadBalancers[0])
		if l.GetMaxConnections() != tt.conns || l.GetNewConnectionsPerSecond() != tt.new || l.GetRequestsPerSecond() != tt.rps {
			t.Errorf("%s = %v, want %d/%d/%d", tt.spec, l, tt.conns, tt.new, tt.rps)
		}
	}
	explicit := &xlbv1.LoadBalancer{Limits: &xlbv1.Limits{MaxConnections: 7}}
	l := config.EffectiveLimits(explicit)
	if l.GetMaxConnections() != 7 {
		t.Errorf("explicit limits = %v", l)
	}
	l.MaxConnections = 8
	if explicit.Limits.MaxConnections != 7 {
		t.Error("EffectiveLimits returned the load balancer's own message")
	}
	if l := config.EffectiveLimits(&xlbv1.LoadBalancer{}); l != nil {
		t.Errorf("no spec, no limits = %v, want nil (unlimited)", l)
	}
}
