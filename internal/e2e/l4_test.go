package e2e

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/xlbproject/xlb/internal/netlab"
)

// lbConfig is a configuration with one load balancer on the lab's VIP whose
// listeners are given as YAML list items; servers is the default pool.
func lbConfig(servers, listeners string, extra ...string) string {
	return nodeConfig(`{xdp_mode: off}`, servers, listeners, extra...)
}

// xdpNode attaches XDP to the lab gateway's client and backend sides.
const xdpNode = `{xdp_mode: native, interfaces: [up0, down0]}`

// nodeConfig is lbConfig with the given node block.
func nodeConfig(node, servers, listeners string, extra ...string) string {
	cfg := fmt.Sprintf(`node: %s
load_balancers:
  - id: lb
    address: %s
    servers:
%s
    listeners:
%s
`, node, netlab.VIP, servers, listeners)
	for _, x := range extra {
		cfg += x
	}
	return cfg
}

const threeServers = `      - {address: 198.19.0.11, weight: 100}
      - {address: 198.19.0.12, weight: 100}
      - {address: 198.19.0.13, weight: 50}`

// fastTCPCheck makes health changes visible within a few seconds.
const fastTCPCheck = `{type: tcp, interval: 1s, timeout: 1s, healthy_threshold: 2, unhealthy_threshold: 2}`

func TestWeightsAndSchedulersThroughXlbd(t *testing.T) {
	e := start(t, 3, lbConfig(threeServers, `
      - {protocol: tcp, port: 7000, scheduler: wrr}
      - {protocol: udp, port: 7001, scheduler: rr}`))

	tcp := e.count("tcp", 7000, 50)
	if tcp["be1"] != 20 || tcp["be2"] != 20 || tcp["be3"] != 10 {
		t.Errorf("50 TCP connections with weights 100/100/50 went %v, want 20/20/10", tcp)
	}
	udp := e.count("udp", 7001, 48)
	if udp["be1"] != 16 || udp["be2"] != 16 || udp["be3"] != 16 {
		t.Errorf("48 UDP sessions with rr went %v, want 16 each", udp)
	}
	if got := e.metric(`xlb_l4_connections_total{listener="lb/tcp/7000"}`); got != 50 {
		t.Errorf("xlb_l4_connections_total for tcp = %v, want 50", got)
	}
}

func TestHealthDownBackendGetsNoNewConnections(t *testing.T) {
	e := start(t, 3, lbConfig(threeServers, `
      - {protocol: tcp, port: 7000, scheduler: rr, health_check: `+fastTCPCheck+`}`))
	be2 := `xlb_backend_up{backend="198.19.0.12:7000",check="tcp"}`

	if err := e.backends.ByName("be2").StopTCP(); err != nil {
		t.Fatal(err)
	}
	e.waitMetric(be2, 0, 10*time.Second)
	if got := e.count("tcp", 7000, 30); got["be2"] != 0 || got["be1"]+got["be3"] != 30 {
		t.Errorf("while be2 is down, 30 connections went %v, want none to be2", got)
	}

	if err := e.backends.ByName("be2").StartTCP(); err != nil {
		t.Fatal(err)
	}
	e.waitMetric(be2, 1, 10*time.Second)
	if got := e.count("tcp", 7000, 30); got["be2"] != 10 {
		t.Errorf("after be2 recovered, 30 rr connections went %v, want 10 to be2", got)
	}
}

func TestMasterSlaveFailoverAndFailback(t *testing.T) {
	e := start(t, 3, lbConfig(threeServers, `
      - {protocol: tcp, port: 7000, server_group: ms, health_check: `+fastTCPCheck+`}`, `
server_groups:
  - id: ms
    type: master_slave
    servers:
      - {address: 198.19.0.11, port: 7000, role: master}
      - {address: 198.19.0.12, port: 7000, role: slave}
`))
	master := `xlb_backend_up{backend="198.19.0.11:7000",check="tcp"}`
	if got := e.count("tcp", 7000, 10); got["be1"] != 10 {
		t.Fatalf("with the master up, 10 connections went %v, want all to be1", got)
	}
	if err := e.backends.ByName("be1").StopTCP(); err != nil {
		t.Fatal(err)
	}
	e.waitMetric(master, 0, 10*time.Second)
	if got := e.count("tcp", 7000, 10); got["be2"] != 10 {
		t.Errorf("with the master down, 10 connections went %v, want all to the slave be2", got)
	}
	if err := e.backends.ByName("be1").StartTCP(); err != nil {
		t.Fatal(err)
	}
	e.waitMetric(master, 1, 10*time.Second)
	if got := e.count("tcp", 7000, 10); got["be1"] != 10 {
		t.Errorf("after the master recovered, 10 connections went %v, want all back to be1", got)
	}
}

func TestACLRefusesDeniedSources(t *testing.T) {
	e := start(t, 3, lbConfig(threeServers, `
      - {protocol: tcp, port: 7000, acl: {mode: deny, cidrs: [`+netlab.ClientIP+`]}}
      - {protocol: tcp, port: 7002, backend_port: 7000, acl: {mode: allow, cidrs: [198.18.1.0/24]}}
      - {protocol: udp, port: 7001, acl: {mode: allow, cidrs: []}}`))

	if name, err := e.who(netlab.HostClient, "tcp", 7000); err == nil {
		t.Errorf("denied client served by %s", name)
	}
	if name, err := e.who(netlab.HostClient, "tcp", 7002); err != nil {
		t.Errorf("client on the allow list refused: %v", err)
	} else if name == "" {
		t.Error("client on the allow list got no answer")
	}
	if name, err := e.who(netlab.HostClient, "udp", 7001); err == nil {
		t.Errorf("empty allow list served %s, want everyone denied", name)
	}
	if got := e.metric(`xlb_l4_dropped_total{listener="lb/tcp/7000",reason="acl"}`); got != 1 {
		t.Errorf("tcp acl drops = %v, want 1", got)
	}
	if got := e.metric(`xlb_l4_dropped_total{listener="lb/udp/7001",reason="acl"}`); got != 1 {
		t.Errorf("udp acl drops = %v, want 1", got)
	}
}

func TestUDPSessionLimitDropsAndCounts(t *testing.T) {
	e := start(t, 3, lbConfig(threeServers, `
      - {protocol: udp, port: 7001, max_sessions: 5, timeouts: {idle: 60s}}`))
	served := 0
	for range 8 {
		if _, err := e.who(netlab.HostClient, "udp", 7001); err == nil {
			served++
		}
	}
	if served != 5 {
		t.Errorf("%d of 8 sessions served with max_sessions 5, want 5", served)
	}
	if got := e.metric(`xlb_l4_dropped_total{listener="lb/udp/7001",reason="session_limit"}`); got != 3 {
		t.Errorf("session_limit drops = %v, want 3", got)
	}
	if got := e.metric(`xlb_l4_active_connections{listener="lb/udp/7001"}`); got != 5 {
		t.Errorf("active sessions = %v, want 5", got)
	}
}

func TestReloadOnSIGHUP(t *testing.T) {
	e := start(t, 3, lbConfig(threeServers, `
      - {protocol: tcp, port: 7000, scheduler: rr}`))
	if got := e.metric("xlb_config_version"); got != 1 {
		t.Fatalf("xlb_config_version = %v, want 1", got)
	}

	// A bad file is rejected; the running configuration stays.
	e.writeConfig(lbConfig(threeServers, `
      - {protocol: tcp, port: 7000, scheduler: rr, wieght: 3}`))
	if err := e.xlbd.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	e.waitMetric(`xlb_config_reloads_total{result="invalid"}`, 1, 10*time.Second)
	if got := e.metric("xlb_config_version"); got != 1 {
		t.Errorf("version after a rejected reload = %v, want 1", got)
	}
	if got := e.count("tcp", 7000, 3); len(got) != 3 {
		t.Errorf("after the rejected reload 3 rr connections went %v, want one to each backend", got)
	}

	// A good file applies: be1 alone.
	e.writeConfig(lbConfig(`      - {address: 198.19.0.11}`, `
      - {protocol: tcp, port: 7000, scheduler: rr}`))
	if err := e.xlbd.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	e.waitMetric(`xlb_config_reloads_total{result="success"}`, 1, 10*time.Second)
	if got := e.metric("xlb_config_version"); got != 2 {
		t.Errorf("version after a good reload = %v, want 2", got)
	}
	if got := e.count("tcp", 7000, 5); got["be1"] != 5 {
		t.Errorf("after reloading to be1 only, 5 connections went %v", got)
	}
}
