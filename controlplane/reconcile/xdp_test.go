package reconcile

import (
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/xlbproject/xlb/controlplane/config"
	"github.com/xlbproject/xlb/dataplane/xdp"
)

func TestCompileXDPSnatPoolsAndEIPs(t *testing.T) {
	cfg, err := config.Load([]byte(`
snat_pools:
  - id: egress
    public_ips: [203.0.113.20, 203.0.113.21]
    sources: [10.0.0.0/24, 10.0.1.7]
    interface: eth0
    timeouts: {tcp_rst: 2s}
eips:
  - {public_ip: 203.0.113.30, private_ip: 10.0.1.10, interface: eth1}
`), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	xc, err := CompileXDP(cfg, NewBackends())
	if err != nil {
		t.Fatal(err)
	}
	if len(xc.SNATPools) != 1 {
		t.Fatalf("compiled %d pools, want 1", len(xc.SNATPools))
	}
	p := xc.SNATPools[0]
	want := xdp.SNATPool{
		Name:      "egress",
		PublicIPs: []netip.Addr{netip.MustParseAddr("203.0.113.20"), netip.MustParseAddr("203.0.113.21")},
		Sources:   []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24"), netip.MustParsePrefix("10.0.1.7/32")},
		Interface: "eth0",
		Timeouts:  xdp.SNATTimeouts{TCPFin: 240 * time.Second, TCPRst: 2 * time.Second, Idle: 240 * time.Second},
	}
	if p.Name != want.Name || p.Interface != want.Interface || p.Timeouts != want.Timeouts ||
		len(p.PublicIPs) != 2 || p.PublicIPs[1] != want.PublicIPs[1] || len(p.Sources) != 2 || p.Sources[1] != want.Sources[1] {
		t.Errorf("compiled pool %+v, want %+v", p, want)
	}
	if len(xc.EIPs) != 1 || xc.EIPs[0] != (xdp.EIP{Public: netip.MustParseAddr("203.0.113.30"), Private: netip.MustParseAddr("10.0.1.10"), Interface: "eth1"}) {
		t.Errorf("compiled EIPs %+v", xc.EIPs)
	}

	// The example configuration compiles too.
	example, err := config.LoadFile("../../configs/example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if xc, err := CompileXDP(example, NewBackends()); err != nil || len(xc.SNATPools) == 0 || len(xc.EIPs) == 0 {
		t.Errorf("example.yaml: %d pools, %d EIPs, %v", len(xc.SNATPools), len(xc.EIPs), err)
	}
}

func TestCompileXDPLimitsAndFloodProtection(t *testing.T) {
	cfg, err := config.Load([]byte(`
load_balancers:
  - id: lb-game
    address: 203.0.113.40
    bandwidth_mbps: 100
    limits: {max_connections: 1000, new_connections_per_second: 50}
    servers: [{address: 10.0.1.10}]
    flood_protection:
      syn: {per_source_pps: 10, total_pps: 1000}
      udp: {total_pps: 5000}
      clean_pps: 20000
      blackhole_pps: 100000
    listeners:
      - protocol: tcp
        port: 7000
        bandwidth_mbps: 40
        acl: {mode: allow, cidrs: [198.51.100.0/24]}
      - protocol: udp
        port: 7001
`), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	xc, err := CompileXDP(cfg, NewBackends())
	if err != nil {
		t.Fatal(err)
	}
	p, ok := xc.Limits["lb-game"]
	if !ok || p.MaxConnections != 1000 || p.NewConnsPerSecond != 50 || p.BandwidthBps != 100*bytesPerMbit {
		t.Errorf("limits %+v, want max 1000, 50/s, 100 Mbit/s", p)
	}
	for _, l := range xc.Listeners {
		if l.LB != "lb-game" {
			t.Errorf("listener %s counts against %q, want lb-game", l.Name, l.LB)
		}
		if l.Port == 7000 && p.Peaks[l.Name] != 40*bytesPerMbit {
			t.Errorf("peak of %s = %d, want 40 Mbit/s", l.Name, p.Peaks[l.Name])
		}
	}
	want := xdp.Flood{LB: "lb-game", VIP: netip.MustParseAddr("203.0.113.40"),
		SYN: xdp.FloodRate{PerSourcePPS: 10, TotalPPS: 1000}, UDP: xdp.FloodRate{TotalPPS: 5000},
		CleanPPS: 20000, BlackholePPS: 100000, BlackholeHold: 60 * time.Second}
	if len(xc.Floods) != 1 {
		t.Fatalf("compiled %d flood protections, want 1", len(xc.Floods))
	}
	got := xc.Floods[0]
	exempt := got.Exempt
	got.Exempt = nil
	if !reflect.DeepEqual(got, want) || len(exempt) != 1 || exempt[0] != netip.MustParsePrefix("198.51.100.0/24") {
		t.Errorf("flood protection %+v exempt %v, want %+v exempt the allow list", got, exempt, want)
	}
}
