package netlab

import (
	"fmt"
	"strconv"
)

// Host names of the standard topologies.
const (
	HostClient  = "client"
	HostGateway = "gw"
	HostSwitch  = "sw" // holds the bridge of the backend segment
	HostClientA = "clientA"
	HostRouterA = "rtrA"
	HostClientB = "clientB"
	HostRouterB = "rtrB"
)

// Interface names of the standard topologies.
const (
	IfaceClient      = "eth0" // client, clientA, clientB
	IfaceBackend     = "eth0" // every backend
	IfaceGatewayUp   = "up0"  // gw towards client (ClientGatewayBackends)
	IfaceGatewayUpA  = "upA"  // gw towards rtrA (TwoUplinks)
	IfaceGatewayUpB  = "upB"  // gw towards rtrB (TwoUplinks)
	IfaceGatewayDown = "down0"
	IfaceRouterDown  = "down0" // router towards its client
	IfaceRouterUp    = "up0"   // router towards gw
	SwitchBridge     = "br0"
)

// Well-known addresses of the standard topologies.
const (
	VIP  = "198.18.0.10" // on gw's lo
	VIP6 = "2001:db8::10"

	// ClientGatewayBackends.
	ClientIP       = "198.18.1.2"
	ClientIP6      = "2001:db8:1::2"
	GatewayUpIP    = "198.18.1.1"
	GatewayUpIP6   = "2001:db8:1::1"
	ClientNet      = "198.18.1.0/24"
	ClientNet6     = "2001:db8:1::/64"
	GatewayDownIP  = "198.19.0.1" // both topologies
	GatewayDownIP6 = "2001:db8:19::1"
	BackendNet     = "198.19.0.0/24"
	BackendNet6    = "2001:db8:19::/64"

	// TwoUplinks.
	ClientAIP     = "198.18.1.2"
	RouterADownIP = "198.18.1.1"
	RouterAUpIP   = "198.18.10.2"
	GatewayUpAIP  = "198.18.10.1"
	ClientBIP     = "198.18.2.2"
	RouterBDownIP = "198.18.2.1"
	RouterBUpIP   = "198.18.20.2"
	GatewayUpBIP  = "198.18.20.1"
	// Tables of gw's source rules for its own upA/upB addresses.
	TableUpA = 10
	TableUpB = 20
)

// MaxBackends bounds the backends of a standard topology.
const MaxBackends = 100

// BackendHost is the name of backend i (1-based): "be1", "be2", ...
func BackendHost(i int) string { return "be" + strconv.Itoa(i) }

// BackendIP is backend i's address: 198.19.0.11 for be1, .12 for be2, ...
func BackendIP(i int) string { return fmt.Sprintf("198.19.0.%d", 10+i) }

// BackendIP6 is backend i's IPv6 address: 2001:db8:19::11 for be1, ...
func BackendIP6(i int) string { return fmt.Sprintf("2001:db8:19::%d", 10+i) }

// ClientGatewayBackends is a client, the gateway under test and n backends
// on one L2 segment (a bridge in the "sw" namespace):
//
//	client                gw                         sw            be1..beN
//	eth0 198.18.1.2/24 -- up0 198.18.1.1/24
//	     2001:db8:1::2/64     2001:db8:1::1/64
//	                      lo  198.18.0.10/32 (VIP)
//	                          2001:db8::10/128 (VIP6)
//	                      down0 198.19.0.1/24 ----- gw  ┐
//	                            2001:db8:19::1/64       br0 -- beI -- eth0 198.19.0.(10+I)/24
//	                                                          2001:db8:19::(10+I)/64
//
// client's default routes point to gw, the backends' to gw's down0. gw
// forwards (IPv4 and IPv6) with rp_filter off. Addresses are the constants
// above and BackendIP/BackendIP6.
func ClientGatewayBackends(n int) Topology {
	checkBackends(n)
	t := Topology{
		Hosts: []Host{
			{Name: HostClient, Gateways: []string{GatewayUpIP, GatewayUpIP6}},
			{
				Name:        HostGateway,
				LoAddrs:     []string{VIP + "/32", VIP6 + "/128"},
				Forward:     true,
				RPFilterOff: true,
			},
		},
		Links: []Link{{
			A: Endpoint{Host: HostClient, Name: IfaceClient, Addrs: []string{ClientIP + "/24", ClientIP6 + "/64"}},
			B: Endpoint{Host: HostGateway, Name: IfaceGatewayUp, Addrs: []string{GatewayUpIP + "/24", GatewayUpIP6 + "/64"}},
		}},
	}
	addBackendSegment(&t, n, false)
	return t
}

// TwoUplinks puts the gateway behind two routers, each with its own
// client, for symmetric-routing tests:
//
//	clientA                rtrA                                gw
//	eth0 198.18.1.2/24 -- down0 198.18.1.1/24
//	                      up0   198.18.10.2/24 ------------ upA 198.18.10.1/24
//	clientB                rtrB                                lo  198.18.0.10/32 (VIP)
//	eth0 198.18.2.2/24 -- down0 198.18.2.1/24                      2001:db8::10/128
//	                      up0   198.18.20.2/24 ------------ upB 198.18.20.1/24
//	                                                        down0 198.19.0.1/24 -- sw br0 -- be1..beN
//	                                                              2001:db8:19::1/64   (as ClientGatewayBackends)
//
// gw's only default route is via rtrA, so a reply to clientB leaves
// through rtrA (whose default route leads back to clientA, where it dies)
// unless the data plane keeps the flow symmetric. Only traffic sourced from
// gw's own upA/upB addresses is routed back out its interface, by rules
// "from 198.18.10.1 lookup 10" and "from 198.18.20.1 lookup 20", so that
// clientB can reach gw's upB address. The routers forward, route the VIP
// and the backend network via gw, and default to their client. rp_filter
// is off on every host.
func TwoUplinks(nBackends int) Topology {
	checkBackends(nBackends)
	router := func(name, client, up string) Host {
		return Host{
			Name:        name,
			Forward:     true,
			RPFilterOff: true,
			Routes: []Route{
				{Dst: VIP + "/32", Gw: up},
				{Dst: BackendNet, Gw: up},
			},
			Gateways: []string{client},
		}
	}
	t := Topology{
		Hosts: []Host{
			{Name: HostClientA, Gateways: []string{RouterADownIP}, RPFilterOff: true},
			router(HostRouterA, ClientAIP, GatewayUpAIP),
			{Name: HostClientB, Gateways: []string{RouterBDownIP}, RPFilterOff: true},
			router(HostRouterB, ClientBIP, GatewayUpBIP),
			{
				Name:        HostGateway,
				LoAddrs:     []string{VIP + "/32", VIP6 + "/128"},
				Forward:     true,
				RPFilterOff: true,
				Gateways:    []string{RouterAUpIP},
				Routes: []Route{
					{Gw: RouterAUpIP, Dev: IfaceGatewayUpA, Table: TableUpA},
					{Gw: RouterBUpIP, Dev: IfaceGatewayUpB, Table: TableUpB},
				},
				Rules: []Rule{
					{Priority: 1000, From: GatewayUpAIP, Table: TableUpA},
					{Priority: 1001, From: GatewayUpBIP, Table: TableUpB},
				},
			},
		},
		Links: []Link{
			{
				A: Endpoint{Host: HostClientA, Name: IfaceClient, Addrs: []string{ClientAIP + "/24"}},
				B: Endpoint{Host: HostRouterA, Name: IfaceRouterDown, Addrs: []string{RouterADownIP + "/24"}},
			},
			{
				A: Endpoint{Host: HostRouterA, Name: IfaceRouterUp, Addrs: []string{RouterAUpIP + "/24"}},
				B: Endpoint{Host: HostGateway, Name: IfaceGatewayUpA, Addrs: []string{GatewayUpAIP + "/24"}},
			},
			{
				A: Endpoint{Host: HostClientB, Name: IfaceClient, Addrs: []string{ClientBIP + "/24"}},
				B: Endpoint{Host: HostRouterB, Name: IfaceRouterDown, Addrs: []string{RouterBDownIP + "/24"}},
			},
			{
				A: Endpoint{Host: HostRouterB, Name: IfaceRouterUp, Addrs: []string{RouterBUpIP + "/24"}},
				B: Endpoint{Host: HostGateway, Name: IfaceGatewayUpB, Addrs: []string{GatewayUpBIP + "/24"}},
			},
		},
	}
	addBackendSegment(&t, nBackends, true)
	return t
}

// addBackendSegment adds sw with its bridge, gw's down0 and n backends.
func addBackendSegment(t *Topology, n int, rpFilterOff bool) {
	t.Hosts = append(t.Hosts, Host{
		Name:        HostSwitch,
		Bridges:     []Bridge{{Name: SwitchBridge}},
		RPFilterOff: rpFilterOff,
	})
	t.Links = append(t.Links, Link{
		A: Endpoint{Host: HostGateway, Name: IfaceGatewayDown, Addrs: []string{GatewayDownIP + "/24", GatewayDownIP6 + "/64"}},
		B: Endpoint{Host: HostSwitch, Name: HostGateway, Master: SwitchBridge},
	})
	for i := 1; i <= n; i++ {
		be := BackendHost(i)
		t.Hosts = append(t.Hosts, Host{
			Name:        be,
			Gateways:    []string{GatewayDownIP, GatewayDownIP6},
			RPFilterOff: rpFilterOff,
		})
		t.Links = append(t.Links, Link{
			A: Endpoint{Host: be, Name: IfaceBackend, Addrs: []string{BackendIP(i) + "/24", BackendIP6(i) + "/64"}},
			B: Endpoint{Host: HostSwitch, Name: be, Master: SwitchBridge},
		})
	}
}

func checkBackends(n int) {
	if n < 1 || n > MaxBackends {
		panic(fmt.Sprintf("netlab: backends must be 1..%d, got %d", MaxBackends, n))
	}
}
