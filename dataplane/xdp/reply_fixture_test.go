package xdp_test

import (
	"bytes"
	"context"
	"net/netip"
	"testing"

	"github.com/xlbproject/xlb/dataplane/pool"
	. "github.com/xlbproject/xlb/dataplane/xdp"
	"github.com/xlbproject/xlb/internal/netlab"
)

// A backend's reply that reaches a node without the flow's state (ECMP on
// the backend side, or a flow that moved here from a dead node) is
// translated on maglev NAT listeners, where every node would make the same
// translation; elsewhere it is not this node's to touch.
func TestFixtureStatelessReplies(t *testing.T) {
	f := newFixture(t)
	// The client's neighbour resolved, so the FIB answers at once.
	if out, err := f.lab.Run(context.Background(), "gw", "ip", "neigh", "replace", clientIP.String(),
		"lladdr", f.clientHW.String(), "dev", "up0", "nud", "permanent"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	reg := pool.NewRegistry()
	srv := func(port uint16) []pool.Server { return []pool.Server{{Addr: be1IP, Port: port, Weight: 100}} }
	maglev := func(name string, proto Protocol, port, bport uint16) Listener {
		return Listener{Name: name, Protocol: proto, VIP: vip, Port: port, Registry: reg,
			Pool: pool.Config{Servers: srv(bport), Scheduler: pool.Maglev}}
	}
	rr := Listener{Name: "lb/tcp/7002", Protocol: TCP, VIP: vip, Port: 7002, Registry: reg, Pool: pool.Config{Servers: srv(7002)}}
	apply(t, f.e, Config{Listeners: []Listener{
		maglev("lb/tcp/7000", TCP, 7000, 7000),
		maglev("lb/udp/7001", UDP, 7001, 7001),
		// be1:7100 serves two VIP ports: a reply cannot say which.
		maglev("lb/tcp/7100", TCP, 7100, 7100),
		maglev("lb/tcp/7101", TCP, 7101, 7100),
		rr,
	}})

	// Mid-connection TCP data from the backend, no flow here.
	in := frame(t, f.fromBackend(pkt{sport: 7000, dport: 41000, ack: true, payload: []byte("reply")}))
	v, out := f.run(in, f.downIdx)
	d := decode(t, out)
	if v != xdpRedirect || d.ip.SrcIP.String() != vip.String() || d.tcp.SrcPort != 7000 ||
		d.ip.DstIP.String() != clientIP.String() || d.tcp.DstPort != 41000 || d.ip.TTL != 63 ||
		string(d.tcp.Payload) != "reply" || !bytes.Equal(d.eth.DstMAC, f.clientHW) || !bytes.Equal(d.eth.SrcMAC, f.gwUpMAC) || d.sums != "" {
		t.Errorf("tcp reply without state: verdict %d, %v:%d -> %v:%d ttl %d %q eth %v -> %v, bad checksums %q; want VIP:7000 -> client:41000 routed to the client",
			v, d.ip.SrcIP, d.tcp.SrcPort, d.ip.DstIP, d.tcp.DstPort, d.ip.TTL, d.tcp.Payload, d.eth.SrcMAC, d.eth.DstMAC, d.sums)
	}
	// UDP, with its checksum kept right.
	v, out = f.run(frame(t, f.fromBackend(pkt{udp: true, sport: 7001, dport: 5300, payload: []byte("pong")})), f.downIdx)
	if d = decode(t, out); v != xdpRedirect || d.ip.SrcIP.String() != vip.String() || d.udp.SrcPort != 7001 || d.udp.DstPort != 5300 || d.sums != "" {
		t.Errorf("udp reply without state: verdict %d, %v:%d -> :%d, bad checksums %q", v, d.ip.SrcIP, d.udp.SrcPort, d.udp.DstPort, d.sums)
	}
	// The ambiguous backend and the rr listener's: to the kernel, untouched.
	for _, sport := range []uint16{7100, 7002} {
		in := frame(t, f.fromBackend(pkt{sport: sport, dport: 41001, ack: true}))
		if v, out := f.run(in, f.downIdx); v != xdpPass || !bytes.Equal(out, in) {
			t.Errorf("reply from be1:%d without state: verdict %d, changed %v; want pass, unchanged", sport, v, !bytes.Equal(out, in))
		}
	}
	// A reply to the node itself (its health check of the backend): the
	// kernel's, untouched.
	own := f.fromBackend(pkt{sport: 7000, dport: 41004, syn: true, ack: true})
	own.dst = netip.MustParseAddr(netlab.GatewayDownIP)
	in = frame(t, own)
	if v, out := f.run(in, f.downIdx); v != xdpPass || !bytes.Equal(out, in) {
		t.Errorf("reply to the node's own address: verdict %d, changed %v; want pass, unchanged", v, !bytes.Equal(out, in))
	}
	for listener, want := range map[string]float64{"lb/tcp/7000": 1, "lb/udp/7001": 1, "lb/tcp/7100": 0, "lb/tcp/7101": 0, "lb/tcp/7002": 0} {
		if got := gathered(t, f.reg, "xlb_xdp_stateless_replies_total", listener); got != want {
			t.Errorf("xlb_xdp_stateless_replies_total{listener=%q} = %v, want %v", listener, got, want)
		}
	}

	// A state entry still wins: the flow's own reply entry translates.
	f.run(frame(t, f.fromClient(pkt{sport: 41002, dport: 7000, syn: true})), f.upIndex)
	f.run(frame(t, f.fromBackend(pkt{sport: 7000, dport: 41002, syn: true, ack: true})), f.downIdx)
	if got := gathered(t, f.reg, "xlb_xdp_stateless_replies_total", "lb/tcp/7000"); got != 1 {
		t.Errorf("a reply with state counted as stateless: %v, want still 1", got)
	}

	// tcp/7000 no longer maglev: its backend's replies are not translated.
	apply(t, f.e, Config{Listeners: []Listener{
		{Name: "lb/tcp/7000", Protocol: TCP, VIP: vip, Port: 7000, Registry: reg, Pool: pool.Config{Servers: srv(7000)}},
	}})
	in = frame(t, f.fromBackend(pkt{sport: 7000, dport: 41003, ack: true}))
	if v, out := f.run(in, f.downIdx); v != xdpPass || !bytes.Equal(out, in) {
		t.Errorf("after the listener left maglev: verdict %d, changed %v; want pass, unchanged", v, !bytes.Equal(out, in))
	}
}
