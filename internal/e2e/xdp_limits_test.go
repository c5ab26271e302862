package e2e

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/xlbproject/xlb/internal/netlab"
)

// A load balancer's limits and flood protection reach the XDP engine from
// xlbd's configuration: of twice max_connections, the limit is accepted,
// the rest dropped and counted; the VIP's flood state is exported.
func TestXDPLimitsThroughXlbd(t *testing.T) {
	e := startXDP(t, 3, nodeConfig(xdpNode, threeServers, `
      - {protocol: tcp, port: 7000, scheduler: rr}`, `
    limits: {max_connections: 5}
    flood_protection: {syn: {per_source_pps: 1000}, clean_pps: 100000}
`))
	var open []net.Conn
	defer func() {
		for _, c := range open {
			c.Close()
		}
	}()
	for range 10 {
		ctx, cancel := context.WithTimeout(context.Background(), 600*time.Millisecond)
		c, err := e.lab.Dial(ctx, netlab.HostClient, "tcp", net.JoinHostPort(netlab.VIP, "7000"))
		cancel()
		if err == nil {
			open = append(open, c)
		}
	}
	if len(open) != 5 {
		t.Errorf("%d of 10 connections accepted, want max_connections 5", len(open))
	}
	if got := e.metric(`xlb_xdp_limit_drops_total{lb="lb",reason="max_connections"}`); got < 5 {
		t.Errorf("max_connections drops = %v, want at least the 5 refused SYNs", got)
	}
	if got := e.metric(`xlb_xdp_limit_connections{lb="lb"}`); got != 5 {
		t.Errorf("xlb_xdp_limit_connections = %v, want 5", got)
	}
	if got := e.metric(`xlb_xdp_flood_state{lb="lb"}`); got != 0 {
		t.Errorf("xlb_xdp_flood_state = %v, want 0 (normal)", got)
	}
}
