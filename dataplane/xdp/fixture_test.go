package xdp_test

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/xlbproject/xlb/dataplane/acl"
	"github.com/xlbproject/xlb/dataplane/limit"
	"github.com/xlbproject/xlb/dataplane/pool"
	. "github.com/xlbproject/xlb/dataplane/xdp"
	"github.com/xlbproject/xlb/internal/netlab"
)

// XDP verdicts.
const (
	xdpDrop     = 1
	xdpPass     = 2
	xdpRedirect = 4
)

// fixture runs the program with BPF_PROG_TEST_RUN inside the gateway of a
// one-backend lab, so bpf_fib_lookup resolves the backend as on a live
// gateway: bytes in, bytes and verdict out.
type fixture struct {
	t        testing.TB
	lab      *netlab.Lab
	e        *Engine
	reg      *prometheus.Registry
	upIndex  int
	downIdx  int
	gwUpMAC  net.HardwareAddr
	gwDnMAC  net.HardwareAddr
	beMAC    net.HardwareAddr
	clientHW net.HardwareAddr
	cfg      Config // what newFixture applied
}

var (
	vip      = netip.MustParseAddr(netlab.VIP)
	clientIP = netip.MustParseAddr(netlab.ClientIP)
	be1IP    = netip.MustParseAddr(netlab.BackendIP(1))
)

func newFixture(t testing.TB, tune ...func(*Options)) *fixture {
	lab := netlab.New(t, netlab.ClientGatewayBackends(1))
	f := &fixture{t: t, lab: lab, clientHW: net.HardwareAddr{2, 0, 0, 0, 0, 0xc1}}
	mac := func(host, ifname string) net.HardwareAddr {
		var hw net.HardwareAddr
		var idx int
		if err := lab.Do(host, func() error {
			ifc, err := net.InterfaceByName(ifname)
			if err == nil {
				hw, idx = ifc.HardwareAddr, ifc.Index
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if host == netlab.HostGateway && ifname == netlab.IfaceGatewayUp {
			f.upIndex = idx
		}
		if host == netlab.HostGateway && ifname == netlab.IfaceGatewayDown {
			f.downIdx = idx
		}
		return hw
	}
	f.gwUpMAC = mac(netlab.HostGateway, netlab.IfaceGatewayUp)
	f.gwDnMAC = mac(netlab.HostGateway, netlab.IfaceGatewayDown)
	f.beMAC = mac(netlab.BackendHost(1), netlab.IfaceBackend)
	// A resolved neighbour, so the FIB lookup succeeds deterministically.
	if out, err := lab.Run(context.Background(), netlab.HostGateway, "ip", "neigh", "replace", be1IP.String(),
		"lladdr", f.beMAC.String(), "dev", netlab.IfaceGatewayDown, "nud", "permanent"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if err := lab.Do(netlab.HostGateway, func() error {
		var err error
		opts := Options{Interfaces: []string{netlab.IfaceGatewayUp, netlab.IfaceGatewayDown}, BPFFS: privateBPFFS(t), MaxFlows: 4096}
		for _, fn := range tune {
			fn(&opts)
		}
		f.e, err = New(opts, nil)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.e.Drain(context.Background()) })
	f.reg = prometheus.NewRegistry()
	f.reg.MustRegister(f.e)

	deny, err := acl.New(acl.Deny, []netip.Prefix{netip.MustParsePrefix("198.18.1.0/24")})
	if err != nil {
		t.Fatal(err)
	}
	srv := []pool.Server{{Addr: be1IP, Port: 7000, Weight: 100}}
	reg := pool.NewRegistry()
	f.cfg = Config{Listeners: []Listener{
		{Name: "lb/tcp/7000", Protocol: TCP, VIP: vip, Port: 7000, Registry: reg, Pool: pool.Config{Servers: srv}},
		{Name: "lb/udp/7001", Protocol: UDP, VIP: vip, Port: 7001, Registry: reg, Pool: pool.Config{Servers: srv}},
		{Name: "lb/tcp/7002", Protocol: TCP, VIP: vip, Port: 7002, Registry: reg, Pool: pool.Config{Servers: srv}, ACL: deny},
		{Name: "lb/tcp/80", Protocol: TCP, VIP: vip, Port: 80, Pass: true, ACL: deny},
	}}
	apply(t, f.e, f.cfg)
	return f
}

// run feeds frame to the program as if received on ifindex.
func (f *fixture) run(frame []byte, ifindex int) (uint32, []byte) {
	f.t.Helper()
	var verdict uint32
	out := make([]byte, len(frame)+256)
	err := f.lab.Do(netlab.HostGateway, func() error {
		ctx := struct{ Data, DataEnd, DataMeta, IngressIfindex, RxQueue, EgressIfindex uint32 }{DataEnd: uint32(len(frame)), IngressIfindex: uint32(ifindex)}
		opts := ebpf.RunOptions{Data: frame, DataOut: out, Context: ctx}
		var err error
		verdict, err = f.e.Program().Run(&opts)
		out = out[:len(opts.DataOut)]
		return err
	})
	if err != nil {
		f.t.Fatalf("BPF_PROG_TEST_RUN: %v", err)
	}
	return verdict, out
}

type pkt struct {
	srcMAC, dstMAC net.HardwareAddr
	src, dst       netip.Addr
	sport, dport   uint16
	udp            bool
	syn, ack, fin  bool
	rst            bool
	frag           bool
	payload        []byte
	zeroUDPCsum    bool
}

func frame(t testing.TB, p pkt) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: p.srcMAC, DstMAC: p.dstMAC, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, SrcIP: p.src.AsSlice(), DstIP: p.dst.AsSlice(), Id: 7}
	if p.frag {
		ip.Flags = layers.IPv4MoreFragments
	}
	var l4 gopacket.SerializableLayer
	if p.udp {
		ip.Protocol = layers.IPProtocolUDP
		u := &layers.UDP{SrcPort: layers.UDPPort(p.sport), DstPort: layers.UDPPort(p.dport)}
		_ = u.SetNetworkLayerForChecksum(ip)
		l4 = u
	} else {
		ip.Protocol = layers.IPProtocolTCP
		tc := &layers.TCP{SrcPort: layers.TCPPort(p.sport), DstPort: layers.TCPPort(p.dport), SYN: p.syn, ACK: p.ack, FIN: p.fin, RST: p.rst, Seq: 1000, Window: 512}
		_ = tc.SetNetworkLayerForChecksum(ip)
		l4 = tc
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true, FixLengths: true},
		eth, ip, l4, gopacket.Payload(p.payload)); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	if p.udp && p.zeroUDPCsum {
		b[14+20+6], b[14+20+7] = 0, 0
	}
	return b
}

// decoded is what an independent parser makes of a frame, with every
// checksum recomputed and compared.
type decoded struct {
	eth  *layers.Ethernet
	ip   *layers.IPv4
	tcp  *layers.TCP
	udp  *layers.UDP
	sums string // "" when every checksum is right
}

func decode(t testing.TB, b []byte) decoded {
	t.Helper()
	p := gopacket.NewPacket(b, layers.LayerTypeEthernet, gopacket.Default)
	d := decoded{}
	d.eth, _ = p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	d.ip, _ = p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	d.tcp, _ = p.Layer(layers.LayerTypeTCP).(*layers.TCP)
	d.udp, _ = p.Layer(layers.LayerTypeUDP).(*layers.UDP)
	// gopacket also guesses application protocols from ports; only the
	// headers the program rewrites must parse.
	if d.eth == nil || d.ip == nil || (d.tcp == nil && d.udp == nil) {
		t.Fatalf("gopacket cannot parse the output's headers: %v", p.ErrorLayer())
	}
	d.sums = checksumErrors(t, d)
	return d
}

// checksumErrors re-serialises copies of the headers with gopacket's own
// checksum computation and compares the results.
func checksumErrors(t testing.TB, d decoded) string {
	var bad []string
	ip := *d.ip
	buf := gopacket.NewSerializeBuffer()
	if err := ip.SerializeTo(buf, gopacket.SerializeOptions{ComputeChecksums: true}); err != nil {
		t.Fatal(err)
	}
	want := layers.IPv4{}
	if err := want.DecodeFromBytes(buf.Bytes(), gopacket.NilDecodeFeedback); err != nil {
		t.Fatal(err)
	}
	if want.Checksum != d.ip.Checksum {
		bad = append(bad, "ipv4")
	}
	opts := gopacket.SerializeOptions{ComputeChecksums: true}
	if d.tcp != nil {
		c := *d.tcp
		_ = c.SetNetworkLayerForChecksum(d.ip)
		b := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(b, opts, &c, gopacket.Payload(d.tcp.Payload)); err != nil {
			t.Fatal(err)
		}
		var w layers.TCP
		_ = w.DecodeFromBytes(b.Bytes(), gopacket.NilDecodeFeedback)
		if w.Checksum != d.tcp.Checksum {
			bad = append(bad, "tcp")
		}
	}
	if d.udp != nil && d.udp.Checksum != 0 {
		c := *d.udp
		_ = c.SetNetworkLayerForChecksum(d.ip)
		b := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(b, opts, &c, gopacket.Payload(d.udp.Payload)); err != nil {
			t.Fatal(err)
		}
		var w layers.UDP
		_ = w.DecodeFromBytes(b.Bytes(), gopacket.NilDecodeFeedback)
		if w.Checksum != d.udp.Checksum {
			bad = append(bad, "udp")
		}
	}
	return strings.Join(bad, ",")
}

func (f *fixture) fromClient(p pkt) pkt {
	p.srcMAC, p.dstMAC, p.src, p.dst = f.clientHW, f.gwUpMAC, clientIP, vip
	return p
}

func (f *fixture) fromBackend(p pkt) pkt {
	p.srcMAC, p.dstMAC, p.src, p.dst = f.beMAC, f.gwDnMAC, be1IP, clientIP
	return p
}

func TestFixtures(t *testing.T) {
	f := newFixture(t)

	// New TCP flow: DNAT to the backend, routed to its MAC, TTL down by one.
	syn := frame(t, f.fromClient(pkt{sport: 40000, dport: 7000, syn: true}))
	v, out := f.run(syn, f.upIndex)
	d := decode(t, out)
	if v != xdpRedirect || d.ip.DstIP.String() != be1IP.String() || d.ip.SrcIP.String() != clientIP.String() ||
		d.tcp.DstPort != 7000 || d.ip.TTL != 63 || !bytes.Equal(d.eth.DstMAC, f.beMAC) || !bytes.Equal(d.eth.SrcMAC, f.gwDnMAC) || d.sums != "" {
		t.Errorf("new flow: verdict %d, %v:%d -> %v:%d ttl %d eth %v -> %v, bad checksums %q",
			v, d.ip.SrcIP, d.tcp.SrcPort, d.ip.DstIP, d.tcp.DstPort, d.ip.TTL, d.eth.SrcMAC, d.eth.DstMAC, d.sums)
	}

	// Reply: SNAT back to the VIP, out of the interface and to the hop the
	// client's packet came from.
	synack := frame(t, f.fromBackend(pkt{sport: 7000, dport: 40000, syn: true, ack: true}))
	v, out = f.run(synack, f.downIdx)
	d = decode(t, out)
	if v != xdpRedirect || d.ip.SrcIP.String() != vip.String() || d.tcp.SrcPort != 7000 || d.ip.DstIP.String() != clientIP.String() ||
		!bytes.Equal(d.eth.DstMAC, f.clientHW) || !bytes.Equal(d.eth.SrcMAC, f.gwUpMAC) || d.sums != "" {
		t.Errorf("reply: verdict %d, %v:%d -> %v eth %v -> %v, bad checksums %q",
			v, d.ip.SrcIP, d.tcp.SrcPort, d.ip.DstIP, d.eth.SrcMAC, d.eth.DstMAC, d.sums)
	}

	// Established, with a payload.
	ack := frame(t, f.fromClient(pkt{sport: 40000, dport: 7000, ack: true, payload: []byte("hello")}))
	v, out = f.run(ack, f.upIndex)
	if d = decode(t, out); v != xdpRedirect || d.sums != "" || string(d.tcp.Payload) != "hello" {
		t.Errorf("established: verdict %d, payload %q, bad checksums %q", v, d.tcp.Payload, d.sums)
	}
	if fl := flowOf(t, f.e, 40000); !fl.Established || fl.Closing {
		t.Errorf("after the handshake the flow is %+v, want established", fl)
	}

	// FIN, then RST on another flow: both mark the flow closing.
	v, _ = f.run(frame(t, f.fromClient(pkt{sport: 40000, dport: 7000, ack: true, fin: true})), f.upIndex)
	if fl := flowOf(t, f.e, 40000); v != xdpRedirect || !fl.Closing {
		t.Errorf("FIN: verdict %d, flow %+v, want it forwarded and the flow closing", v, fl)
	}
	f.run(frame(t, f.fromClient(pkt{sport: 40001, dport: 7000, syn: true})), f.upIndex)
	v, _ = f.run(frame(t, f.fromClient(pkt{sport: 40001, dport: 7000, rst: true})), f.upIndex)
	if fl := flowOf(t, f.e, 40001); v != xdpRedirect || !fl.Closing {
		t.Errorf("RST: verdict %d, flow %+v, want it forwarded and the flow closing", v, fl)
	}

	// A TCP segment of no known flow and without SYN: dropped, counted.
	if v, _ = f.run(frame(t, f.fromClient(pkt{sport: 40009, dport: 7000, ack: true})), f.upIndex); v != xdpDrop {
		t.Errorf("non-SYN of an unknown flow: verdict %d, want drop", v)
	}

	// UDP, with and without a checksum (0 means none and must stay 0).
	for _, zero := range []bool{false, true} {
		u := frame(t, f.fromClient(pkt{udp: true, sport: 5353, dport: 7001, payload: []byte("ping"), zeroUDPCsum: zero}))
		v, out = f.run(u, f.upIndex)
		d = decode(t, out)
		if v != xdpRedirect || d.ip.DstIP.String() != be1IP.String() || d.sums != "" || (zero && d.udp.Checksum != 0) {
			t.Errorf("udp (zero checksum %v): verdict %d to %v, checksum %#x, bad checksums %q", zero, v, d.ip.DstIP, d.udp.Checksum, d.sums)
		}
	}

	// UDP fragment to a VIP with udp listeners: dropped.
	if v, _ = f.run(frame(t, f.fromClient(pkt{udp: true, sport: 5354, dport: 7001, frag: true, payload: []byte("x")})), f.upIndex); v != xdpDrop {
		t.Errorf("udp fragment: verdict %d, want drop", v)
	}
	// ACL deny on a tcp listener and on an http (pass) listener.
	if v, _ = f.run(frame(t, f.fromClient(pkt{sport: 40002, dport: 7002, syn: true})), f.upIndex); v != xdpDrop {
		t.Errorf("acl deny (tcp): verdict %d, want drop", v)
	}
	if v, _ = f.run(frame(t, f.fromClient(pkt{sport: 40003, dport: 80, syn: true})), f.upIndex); v != xdpDrop {
		t.Errorf("acl deny (http): verdict %d, want drop", v)
	}
	// Unknown destination: passed untouched.
	other := frame(t, f.fromClient(pkt{sport: 40004, dport: 9999, syn: true}))
	v, out = f.run(other, f.upIndex)
	if v != xdpPass || !bytes.Equal(out, other) {
		t.Errorf("unknown destination: verdict %d, changed %v; want pass, unchanged", v, !bytes.Equal(out, other))
	}

	// ICMP errors about a tracked flow reach the right end, translated.
	f.run(frame(t, f.fromClient(pkt{sport: 40005, dport: 7000, syn: true})), f.upIndex)
	// "Fragmentation needed" from a client-side router about our reply
	// (VIP:7000 -> client:40005): the backend sent that reply.
	reply := frame(t, pkt{srcMAC: f.gwUpMAC, dstMAC: f.clientHW, src: vip, dst: clientIP, sport: 7000, dport: 40005, ack: true})
	v, out = f.run(icmpError(t, f.clientHW, f.gwUpMAC, netip.MustParseAddr(netlab.GatewayUpIP), vip, reply[14:14+28]), f.upIndex)
	ie := decodeICMP(t, out)
	if v != xdpRedirect || ie.outerDst != be1IP || ie.innerSrc != netip.AddrPortFrom(be1IP, 7000) || ie.bad != "" {
		t.Errorf("icmp to the VIP: verdict %d, to %v, quoting %v, bad checksums %q; want it at the backend quoting its own packet", v, ie.outerDst, ie.innerSrc, ie.bad)
	}
	// "Port unreachable" from the backend side about a packet we forwarded
	// (client:40005 -> be1:7000): the client sent it to VIP:7000.
	fwd := frame(t, pkt{src: clientIP, dst: be1IP, sport: 40005, dport: 7000, syn: true, srcMAC: f.gwDnMAC, dstMAC: f.beMAC})
	v, out = f.run(icmpError(t, f.beMAC, f.gwDnMAC, be1IP, clientIP, fwd[14:14+28]), f.downIdx)
	ie = decodeICMP(t, out)
	if v != xdpRedirect || ie.outerDst != clientIP || ie.innerDst != netip.AddrPortFrom(vip, 7000) || ie.bad != "" || !bytes.Equal(ie.dstMAC, f.clientHW) {
		t.Errorf("icmp to the client: verdict %d, to %v (%v), quoting %v, bad checksums %q; want it at the client quoting VIP:7000", v, ie.outerDst, ie.dstMAC, ie.innerDst, ie.bad)
	}

	for _, c := range []struct {
		listener, reason string
		want             float64
	}{
		{"lb/tcp/7000", "no_flow", 1},
		{"lb/udp/7001", "fragment", 1},
		{"lb/tcp/7002", "acl", 1},
		{"lb/tcp/80", "acl", 1},
	} {
		if got := gatheredReason(t, f.reg, c.listener, c.reason); got != c.want {
			t.Errorf("xlb_xdp_dropped_total{listener=%q,reason=%q} = %v, want %v", c.listener, c.reason, got, c.want)
		}
	}
}

func flowOf(t *testing.T, e *Engine, clientPort uint16) Flow {
	t.Helper()
	fs, err := e.Flows()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fs {
		if f.Client.Port() == clientPort {
			return f
		}
	}
	t.Fatalf("no flow from client port %d", clientPort)
	return Flow{}
}

func gatheredReason(t *testing.T, reg *prometheus.Registry, listener, reason string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "xlb_xdp_dropped_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var l, r string
			for _, lp := range m.GetLabel() {
				switch lp.GetName() {
				case "listener":
					l = lp.GetValue()
				case "reason":
					r = lp.GetValue()
				}
			}
			if l == listener && r == reason {
				return m.GetCounter().GetValue()
			}
		}
	}
	return -1
}

// icmpError builds an ICMP destination-unreachable frame quoting inner (an
// IPv4 header and 8 bytes of its payload).
func icmpError(t testing.TB, srcMAC, dstMAC net.HardwareAddr, src, dst netip.Addr, inner []byte) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: srcMAC, DstMAC: dstMAC, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolICMPv4, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
	icmp := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4CodeFragmentationNeeded), Seq: 1400}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true, FixLengths: true},
		eth, ip, icmp, gopacket.Payload(append([]byte(nil), inner...))); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

type icmpDecoded struct {
	dstMAC             net.HardwareAddr
	outerDst           netip.Addr
	innerSrc, innerDst netip.AddrPort
	bad                string
}

// decodeICMP reads an ICMP error and verifies the outer IP, ICMP and
// quoted IP checksums independently.
func decodeICMP(t testing.TB, b []byte) icmpDecoded {
	t.Helper()
	p := gopacket.NewPacket(b, layers.LayerTypeEthernet, gopacket.Default)
	eth, _ := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	ic, _ := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
	if eth == nil || ip == nil || ic == nil {
		t.Fatalf("not an ICMP error: %v", p)
	}
	var d icmpDecoded
	d.dstMAC = eth.DstMAC
	d.outerDst, _ = netip.AddrFromSlice(ip.DstIP)
	var bad []string
	if checksumErrors(t, decoded{ip: ip}) != "" {
		bad = append(bad, "ipv4")
	}
	c := *ic
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true}, &c, gopacket.Payload(ic.Payload)); err != nil {
		t.Fatal(err)
	}
	var w layers.ICMPv4
	_ = w.DecodeFromBytes(buf.Bytes(), gopacket.NilDecodeFeedback)
	if w.Checksum != ic.Checksum {
		bad = append(bad, "icmp")
	}
	var in layers.IPv4
	if err := in.DecodeFromBytes(ic.Payload, gopacket.NilDecodeFeedback); err != nil {
		t.Fatalf("quoted header: %v", err)
	}
	if checksumErrors(t, decoded{ip: &in}) != "" {
		bad = append(bad, "quoted ipv4")
	}
	q := ic.Payload[20:]
	s, _ := netip.AddrFromSlice(in.SrcIP)
	dd, _ := netip.AddrFromSlice(in.DstIP)
	d.innerSrc = netip.AddrPortFrom(s, uint16(q[0])<<8|uint16(q[1]))
	d.innerDst = netip.AddrPortFrom(dd, uint16(q[2])<<8|uint16(q[3]))
	d.bad = strings.Join(bad, ",")
	return d
}

// FuzzProgram feeds random frames, and well-formed frames built from
// random fields, through the program: it must never fail to run, and a
// frame it rewrites must leave with every checksum right. The frames go to
// the listeners, and (data[0] bits 1-2) out from a SNAT pool's host, in to
// the pool's public IP or to an EIP, and as ICMP echoes.
func FuzzProgram(f *testing.F) {
	fx := newNATFixture(f)
	// Every limiter on: the limited and policed paths run too.
	cfg := fx.natConfig(snatPublic)
	cfg.Listeners = slices.Clone(cfg.Listeners)
	for i := range cfg.Listeners {
		cfg.Listeners[i].LB = "lb"
	}
	cfg.Limits = map[string]limit.Params{"lb": {MaxConnections: 64, NewConnsPerSecond: 1000,
		BandwidthBps: 1 << 20, Peaks: map[string]uint64{"lb/tcp/7000": 1 << 18}}}
	cfg.Floods = []Flood{{LB: "lb", VIP: vip, SYN: FloodRate{PerSourcePPS: 100, TotalPPS: 1000},
		UDP: FloodRate{PerSourcePPS: 100, TotalPPS: 1000}, ICMP: FloodRate{PerSourcePPS: 10, TotalPPS: 100},
		Exempt: []netip.Prefix{netip.MustParsePrefix("198.18.1.0/24")}}}
	apply(f, fx.e, cfg)
	f.Add([]byte{0, 0x1b, 0x58, 0x9c, 0x40, 2, 1, 0}, false)
	f.Add([]byte{1, 0x1b, 0x59, 0x14, 0xe9, 0x10, 0, 5}, false)
	f.Add([]byte{0, 0x1b, 0x5a, 0x9c, 0x41, 2, 0, 0}, true)
	f.Add([]byte{2, 0x00, 0x50, 0x9c, 0x40, 2, 0, 0}, false)
	f.Add([]byte{3, 0x00, 0x35, 0x14, 0xe9, 0, 0, 0}, false)
	f.Add([]byte{4, 0x04, 0x00, 0x00, 0x50, 0x12, 0, 1}, false)
	f.Add([]byte{6, 0x00, 0x16, 0x15, 0xb3, 2, 0, 2}, false)
	f.Add([]byte{8 | 2, 0x00, 0x4d, 0, 0, 0, 0, 0}, false)
	f.Add([]byte{8 | 4, 0x04, 0x00, 0, 0, 0, 0, 0}, false)
	f.Fuzz(func(t *testing.T, data []byte, raw bool) {
		fx.t = t
		if raw {
			fr := append([]byte(nil), data...)
			if len(fr) < 14 {
				return
			}
			fx.run(fr, fx.upIndex)
			return
		}
		if len(data) < 8 {
			return
		}
		p := pkt{
			udp:   data[0]&1 == 1,
			dport: uint16(data[1])<<8 | uint16(data[2]),
			sport: uint16(data[3])<<8 | uint16(data[4]),
			syn:   data[5]&2 != 0, ack: data[5]&0x10 != 0, fin: data[5]&1 != 0, rst: data[5]&4 != 0,
			zeroUDPCsum: data[6]&1 == 1,
			payload:     data[8:],
		}
		ingress := fx.upIndex
		var in []byte
		switch dir := (data[0] >> 1) & 3; {
		case data[0]&8 != 0: // ICMP echo: request out of be1, or a reply in to the public IP
			if dir&1 == 1 {
				in = echoFrame(t, fx.beMAC, fx.gwDnMAC, be1IP, outsideIP, layers.ICMPv4TypeEchoRequest, p.dport)
				ingress = fx.downIdx
			} else {
				in = echoFrame(t, fx.clientHW, fx.gwUpMAC, outsideIP, snatPublic, layers.ICMPv4TypeEchoReply, p.dport)
			}
		case dir == 1: // a pool host to the outside
			in = frame(t, fx.fromPrivate(p))
			ingress = fx.downIdx
		case dir == 2: // the outside to the pool's public IP (replies)
			in = frame(t, fx.fromOutside(p, snatPublic))
		case dir == 3: // the outside to the EIP
			in = frame(t, fx.fromOutside(p, eipPublic))
		default:
			if p.dport%4 == 0 {
				p.dport = 7000 + uint16(data[7]%3) // mostly listener ports
			}
			in = frame(t, fx.fromClient(p))
		}
		v, out := fx.run(in, ingress)
		if v != xdpRedirect || bytes.Equal(in, out) {
			return
		}
		if data[0]&8 != 0 {
			if e := decodeEcho(t, out); !e.sumOK {
				t.Fatalf("rewritten echo with a bad checksum")
			}
			return
		}
		if d := decode(t, out); d.sums != "" {
			t.Fatalf("rewritten frame with bad %s checksum(s)", d.sums)
		}
	})
}
