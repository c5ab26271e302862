package reconcile

import (
	"net/netip"
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
