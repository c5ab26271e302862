package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/xlbproject/xlb/internal/labsvc"
	"github.com/xlbproject/xlb/internal/netlab"
)

func TestXDPThroughXlbd(t *testing.T) {
	e := startXDP(t, 3, nodeConfig(xdpNode, threeServers, `
      - {protocol: tcp, port: 7000, scheduler: wrr}
      - {protocol: udp, port: 7001, scheduler: rr}
      - {protocol: tcp, port: 8080, scheduler: rr}
      - {protocol: tcp, port: 7002, backend_port: 7000, acl: {mode: deny, cidrs: [`+netlab.ClientIP+`]}}`))

	if got := e.count("tcp", 7000, 50); got["be1"] != 20 || got["be2"] != 20 || got["be3"] != 10 {
		t.Errorf("50 TCP connections with weights 100/100/50 went %v, want 20/20/10", got)
	}
	if got := e.count("udp", 7001, 30); got["be1"] != 10 || got["be2"] != 10 || got["be3"] != 10 {
		t.Errorf("30 UDP flows with rr went %v, want 10 each", got)
	}
	if name, err := e.who(netlab.HostClient, "tcp", 7002); err == nil {
		t.Errorf("a denied client was served by %s", name)
	}
	// The fast path, not the userspace engine, carried them, and the
	// backend saw the client's own address.
	if got := e.metric(`xlb_xdp_new_flows_total{listener="lb/tcp/7000"}`); got != 50 {
		t.Errorf("xlb_xdp_new_flows_total for tcp/7000 = %v, want 50", got)
	}
	if got := e.metric(`xlb_l4_connections_total{listener="lb/tcp/7000"}`); got > 0 {
		t.Errorf("the userspace engine served %v connections of an XDP listener", got)
	}
	if got := e.metric(`xlb_xdp_dropped_total{listener="lb/tcp/7002",reason="acl"}`); got < 1 {
		t.Errorf("acl drops = %v, want at least 1 (the SYN and its retries)", got)
	}
	if seen, err := labsvc.SeenAs(context.Background(), e.lab, netlab.HostClient, 8080); err != nil || seen.String() != netlab.ClientIP {
		t.Errorf("the backend saw the client as %v (%v), want %s", seen, err, netlab.ClientIP)
	}
}

func TestXDPConnectionsSurviveXlbdRestart(t *testing.T) {
	e := startXDP(t, 3, nodeConfig(xdpNode, threeServers, `
      - {protocol: tcp, port: 7000}
      - {protocol: udp, port: 7001}`))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	flows, err := labsvc.OpenLiveFlows(ctx, e.lab)
	if err != nil {
		t.Fatal(err)
	}
	defer flows.Close()

	e.restart()

	if err := flows.Check(ctx); err != nil {
		t.Errorf("after the restart: %v", err)
	}
	if got := e.count("tcp", 7000, 6); len(got) != 3 {
		t.Errorf("new connections after the restart went %v, want all three backends", got)
	}

	// xlbd cleanup detaches and unpins: the fast path is gone.
	if err := e.xlbd.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	bpffs := e.args[len(e.args)-1]
	out, err := e.lab.Run(ctx, netlab.HostGateway, xlbdBin, "cleanup", "--bpffs", bpffs)
	if err != nil {
		t.Fatalf("xlbd cleanup: %v\n%s", err, out)
	}
	for _, want := range []string{"link_up0", "link_down0", "flows"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("xlbd cleanup output lacks %q:\n%s", want, out)
		}
	}
	if err := flows.Check(ctx); err == nil {
		t.Error("the flows still flow after xlbd cleanup detached XDP")
	}
}

func TestXDPModeNativeFailsLoudlyAutoFallsBack(t *testing.T) {
	// auto on an interface that does not exist: a warning, and the
	// userspace engine serves the listener.
	e := start(t, 3, nodeConfig(`{xdp_mode: auto, interfaces: [nosuch0]}`, threeServers, `
      - {protocol: tcp, port: 7000}`))
	if got := e.count("tcp", 7000, 3); len(got) != 3 {
		t.Errorf("with XDP unavailable, 3 connections went %v, want the userspace engine to serve all backends", got)
	}
	if got := e.metric(`xlb_l4_connections_total{listener="lb/tcp/7000"}`); got != 3 {
		t.Errorf("userspace connections = %v, want 3", got)
	}

	// native on the same: xlbd refuses to start and says why.
	e.writeConfig(nodeConfig(`{xdp_mode: native, interfaces: [nosuch0]}`, threeServers, `
      - {protocol: tcp, port: 7000}`))
	out, err := e.lab.Run(context.Background(), netlab.HostGateway, xlbdBin, "run", "--config", e.cfgPath, "--metrics-listen", "127.0.0.1:0")
	if err == nil {
		t.Fatalf("xlbd started with xdp_mode native on a missing interface:\n%s", out)
	}
	if want := "node.xdp_mode native"; !strings.Contains(string(out), want) {
		t.Errorf("xlbd's refusal does not say %q:\n%s", want, out)
	}
}
