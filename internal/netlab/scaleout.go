package netlab

import (
	"fmt"
	"strconv"
)

// Host names of the ScaleOut topology (plus HostClient, HostSwitch and the
// backends).
const (
	HostRouter     = "rtr"  // the client side's ECMP router
	HostBackRouter = "brtr" // the backend side's ECMP router
)

// Addresses of the ScaleOut topology.
const (
	RouterDownIP     = "198.18.1.1"   // rtr towards the client (ClientIP is the client)
	RouterFrontIP    = "198.18.100.1" // rtr on the front segment
	FrontNet         = "198.18.100.0/24"
	BackRouterIP     = "198.18.200.1" // brtr on the back segment
	BackNet          = "198.18.200.0/24"
	BackRouterDownIP = "198.19.0.1" // brtr on the backend segment: the backends' gateway
)

// Bridges of the ScaleOut topology's switch (sw), besides SwitchBridge (the
// backend segment).
const (
	FrontBridge = "brf" // rtr and the nodes' up0
	BackBridge  = "brb" // brtr and the nodes' down0
)

// MaxNodes bounds the gateway nodes of ScaleOut.
const MaxNodes = 9

// NodeHost is the name of gateway node i (1-based): "n1", "n2", ...
func NodeHost(i int) string { return "n" + strconv.Itoa(i) }

// NodeFrontIP is node i's up0 address: 198.18.100.11 for n1, ...
func NodeFrontIP(i int) string { return fmt.Sprintf("198.18.100.%d", 10+i) }

// NodeBackIP is node i's down0 address: 198.18.200.11 for n1, ...
func NodeBackIP(i int) string { return fmt.Sprintf("198.18.200.%d", 10+i) }

// NodeFrontPort and NodeBackPort are the switch ports node i's up0 and
// down0 plug into.
func NodeFrontPort(i int) string { return "f-" + NodeHost(i) }
func NodeBackPort(i int) string  { return "b-" + NodeHost(i) }

// ScaleOut is nodes gateway nodes between two ECMP routers, as in a
// scale-out deployment: the client's router (rtr) and the backends' router
// (brtr) each reach every node over a shared segment, so that a dead node
// is noticed by BFD, not by a carrier change:
//
//	client ── rtr ══ brf ══ n1..nN ══ brb ══ brtr ── br0 ── be1..beM
//	          198.18.100.0/24 (up0)    198.18.200.0/24 (down0)
//
// client eth0 198.18.1.2/24, default via rtr (198.18.1.1). Node i: up0
// 198.18.100.(10+i), down0 198.18.200.(10+i), the VIP on lo, default via
// rtr, the backend network via brtr. brtr's down0 198.19.0.1/24 is the
// backends' gateway (BackendIP as in ClientGatewayBackends). The routers
// have no route to the VIP or to the client network: the routing daemons
// the test runs install them (ECMP over the nodes that announce them). The
// routers and nodes forward with rp_filter off, and the routers hash a
// flow's 5-tuple to choose among equal paths. That is
// fib_multipath_hash_policy=1 on a real router, but within one machine a
// packet keeps the hash its sender's socket gave it (random, and changed
// when TCP retransmits), which policy 1 takes as is; the custom policy 3
// with the 5-tuple's fields always hashes the headers. The three bridges
// live in sw.
func ScaleOut(nodes, backends int) Topology {
	checkBackends(backends)
	if nodes < 1 || nodes > MaxNodes {
		panic(fmt.Sprintf("netlab: nodes must be 1..%d, got %d", MaxNodes, nodes))
	}
	router := func(name string) Host {
		return Host{Name: name, Forward: true, RPFilterOff: true,
			Sysctls: map[string]string{"net.ipv4.fib_multipath_hash_policy": "3",
				// source and destination address, protocol, ports
				"net.ipv4.fib_multipath_hash_fields": "0x37"}}
	}
	t := Topology{
		Hosts: []Host{
			{Name: HostClient, Gateways: []string{RouterDownIP}},
			router(HostRouter),
			router(HostBackRouter),
			{Name: HostSwitch, Bridges: []Bridge{{Name: FrontBridge}, {Name: BackBridge}, {Name: SwitchBridge}}, RPFilterOff: true},
		},
		Links: []Link{
			{
				A: Endpoint{Host: HostClient, Name: IfaceClient, Addrs: []string{ClientIP + "/24"}},
				B: Endpoint{Host: HostRouter, Name: IfaceRouterDown, Addrs: []string{RouterDownIP + "/24"}},
			},
			{
				A: Endpoint{Host: HostRouter, Name: IfaceRouterUp, Addrs: []string{RouterFrontIP + "/24"}},
				B: Endpoint{Host: HostSwitch, Name: "f-" + HostRouter, Master: FrontBridge},
			},
			{
				A: Endpoint{Host: HostBackRouter, Name: IfaceRouterUp, Addrs: []string{BackRouterIP + "/24"}},
				B: Endpoint{Host: HostSwitch, Name: "b-" + HostBackRouter, Master: BackBridge},
			},
			{
				A: Endpoint{Host: HostBackRouter, Name: IfaceRouterDown, Addrs: []string{BackRouterDownIP + "/24"}},
				B: Endpoint{Host: HostSwitch, Name: HostBackRouter, Master: SwitchBridge},
			},
		},
	}
	for i := 1; i <= nodes; i++ {
		t.Hosts = append(t.Hosts, Host{
			Name:        NodeHost(i),
			LoAddrs:     []string{VIP + "/32"},
			Forward:     true,
			RPFilterOff: true,
			Routes:      []Route{{Dst: BackendNet, Gw: BackRouterIP}},
			Gateways:    []string{RouterFrontIP},
		})
		t.Links = append(t.Links,
			Link{
				A: Endpoint{Host: NodeHost(i), Name: IfaceGatewayUp, Addrs: []string{NodeFrontIP(i) + "/24"}},
				B: Endpoint{Host: HostSwitch, Name: NodeFrontPort(i), Master: FrontBridge},
			},
			Link{
				A: Endpoint{Host: NodeHost(i), Name: IfaceGatewayDown, Addrs: []string{NodeBackIP(i) + "/24"}},
				B: Endpoint{Host: HostSwitch, Name: NodeBackPort(i), Master: BackBridge},
			})
	}
	for i := 1; i <= backends; i++ {
		be := BackendHost(i)
		t.Hosts = append(t.Hosts, Host{Name: be, Gateways: []string{BackRouterDownIP}, RPFilterOff: true})
		t.Links = append(t.Links, Link{
			A: Endpoint{Host: be, Name: IfaceBackend, Addrs: []string{BackendIP(i) + "/24"}},
			B: Endpoint{Host: HostSwitch, Name: be, Master: SwitchBridge},
		})
	}
	return t
}
