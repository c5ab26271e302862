package xdp_test

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/xlbproject/xlb/dataplane/snat"
	. "github.com/xlbproject/xlb/dataplane/xdp"
	"github.com/xlbproject/xlb/internal/netlab"
)

// The NAT fixtures: private hosts on the gateway's backend side
// (198.19.0.0/27), the outside on its client side.
var (
	snatPublic  = netip.MustParseAddr("203.0.113.20")
	snatPublic2 = netip.MustParseAddr("203.0.113.21")
	eipPublic   = netip.MustParseAddr("203.0.113.30")
	eipPrivate  = netip.MustParseAddr("198.19.0.12")
	outsideIP   = netip.MustParseAddr("198.18.1.100")
	eipHostMAC  = net.HardwareAddr{2, 0, 0, 0, 0, 0x12}
)

func (f *fixture) natConfig(publics ...netip.Addr) Config {
	cfg := f.cfg
	cfg.SNATPools = []SNATPool{{
		Name:      "egress",
		PublicIPs: publics,
		Sources:   []netip.Prefix{netip.MustParsePrefix("198.19.0.0/27")}, // 32 hosts: 1024-port blocks, one each
	}}
	cfg.EIPs = []EIP{{Public: eipPublic, Private: eipPrivate}}
	return cfg
}

func newNATFixture(t testing.TB) *fixture {
	f := newFixture(t)
	for _, n := range []struct {
		ip, dev string
		mac     net.HardwareAddr
	}{
		{outsideIP.String(), netlab.IfaceGatewayUp, f.clientHW},
		{eipPrivate.String(), netlab.IfaceGatewayDown, eipHostMAC},
	} {
		if out, err := f.lab.Run(context.Background(), netlab.HostGateway, "ip", "neigh", "replace", n.ip,
			"lladdr", n.mac.String(), "dev", n.dev, "nud", "permanent"); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
	}
	apply(t, f.e, f.natConfig(snatPublic))
	return f
}

// fromPrivate is a packet of be1 (a pool host) to the outside.
func (f *fixture) fromPrivate(p pkt) pkt {
	p.srcMAC, p.dstMAC, p.src, p.dst = f.beMAC, f.gwDnMAC, be1IP, outsideIP
	return p
}

// fromOutside is a packet of the outside host to dst.
func (f *fixture) fromOutside(p pkt, dst netip.Addr) pkt {
	p.srcMAC, p.dstMAC, p.src, p.dst = f.clientHW, f.gwUpMAC, outsideIP, dst
	return p
}

func ipOf(ip net.IP) netip.Addr { a, _ := netip.AddrFromSlice(ip); return a.Unmap() }

func l4Ports(d decoded) (uint16, uint16) {
	if d.tcp != nil {
		return uint16(d.tcp.SrcPort), uint16(d.tcp.DstPort)
	}
	return uint16(d.udp.SrcPort), uint16(d.udp.DstPort)
}

func TestSNATFixtures(t *testing.T) {
	f := newNATFixture(t)

	// Outbound: the source becomes the public IP and a port of be1's
	// block, routed to the outside's MAC.
	v, out := f.run(frame(t, f.fromPrivate(pkt{sport: 40000, dport: 80, syn: true})), f.downIdx)
	d := decode(t, out)
	pub, pubPort := ipOf(d.ip.SrcIP), uint16(d.tcp.SrcPort)
	if v != xdpRedirect || pub != snatPublic || pubPort < 1024 || ipOf(d.ip.DstIP) != outsideIP || d.tcp.DstPort != 80 ||
		d.ip.TTL != 63 || !bytes.Equal(d.eth.DstMAC, f.clientHW) || !bytes.Equal(d.eth.SrcMAC, f.gwUpMAC) || d.sums != "" {
		t.Fatalf("outbound: verdict %d, %v:%d -> %v:%d ttl %d eth %v -> %v, bad checksums %q",
			v, d.ip.SrcIP, d.tcp.SrcPort, d.ip.DstIP, d.tcp.DstPort, d.ip.TTL, d.eth.SrcMAC, d.eth.DstMAC, d.sums)
	}
	block := blockOf(t, f.e, snat.TCP, be1IP)
	if pubPort < block[0] || pubPort > block[1] {
		t.Errorf("public port %d is outside be1's block %v", pubPort, block)
	}

	// The reply is translated back and sent to the hop be1's packet came
	// from.
	v, out = f.run(frame(t, f.fromOutside(pkt{sport: 80, dport: pubPort, syn: true, ack: true}, snatPublic)), f.upIndex)
	d = decode(t, out)
	if v != xdpRedirect || ipOf(d.ip.DstIP) != be1IP || d.tcp.DstPort != 40000 || ipOf(d.ip.SrcIP) != outsideIP || d.tcp.SrcPort != 80 ||
		!bytes.Equal(d.eth.DstMAC, f.beMAC) || !bytes.Equal(d.eth.SrcMAC, f.gwDnMAC) || d.sums != "" {
		t.Errorf("reply: verdict %d, %v:%d -> %v:%d eth %v -> %v, bad checksums %q",
			v, d.ip.SrcIP, d.tcp.SrcPort, d.ip.DstIP, d.tcp.DstPort, d.eth.SrcMAC, d.eth.DstMAC, d.sums)
	}

	// Another flow to the same destination gets another port (the
	// reuse of ports across destinations: TestSNATFixtureFullBlockFailsAndCounts).
	_, out = f.run(frame(t, f.fromPrivate(pkt{sport: 40002, dport: 80, syn: true})), f.downIdx)
	if d = decode(t, out); uint16(d.tcp.SrcPort) == pubPort || d.sums != "" {
		t.Errorf("a second flow to the same destination got port %d, which a flow holds", d.tcp.SrcPort)
	}

	// An ICMP error about the translated packet (an outside router's
	// "fragmentation needed", to the public IP) reaches be1, quoting be1's
	// own packet: path MTU discovery works through the SNAT.
	sent := frame(t, pkt{srcMAC: f.gwUpMAC, dstMAC: f.clientHW, src: snatPublic, dst: outsideIP, sport: pubPort, dport: 80, ack: true})
	v, out = f.run(icmpError(t, f.clientHW, f.gwUpMAC, netip.MustParseAddr("198.18.1.254"), snatPublic, sent[14:14+28]), f.upIndex)
	ie := decodeICMP(t, out)
	if v != xdpRedirect || ie.outerDst != be1IP || ie.innerSrc != netip.AddrPortFrom(be1IP, 40000) || ie.bad != "" || !bytes.Equal(ie.dstMAC, f.beMAC) {
		t.Errorf("icmp error to the public IP: verdict %d, to %v (%v), quoting %v, bad %q; want be1 quoting be1:40000", v, ie.outerDst, ie.dstMAC, ie.innerSrc, ie.bad)
	}

	// UDP, with and without a checksum.
	for _, zero := range []bool{false, true} {
		v, out = f.run(frame(t, f.fromPrivate(pkt{udp: true, sport: 5353, dport: 53, payload: []byte("q"), zeroUDPCsum: zero})), f.downIdx)
		d = decode(t, out)
		sp, _ := l4Ports(d)
		if v != xdpRedirect || ipOf(d.ip.SrcIP) != snatPublic || sp < 1024 || d.sums != "" || (zero && d.udp.Checksum != 0) {
			t.Errorf("udp (zero checksum %v): verdict %d, from %v:%d, checksum %#x, bad %q", zero, v, d.ip.SrcIP, sp, d.udp.Checksum, d.sums)
		}
	}

	// A TCP segment without SYN of no translation: dropped, counted.
	if v, _ = f.run(frame(t, f.fromPrivate(pkt{sport: 40009, dport: 80, ack: true})), f.downIdx); v != xdpDrop {
		t.Errorf("non-SYN without a translation: verdict %d, want drop", v)
	}
	// Between private hosts nothing is translated.
	east := frame(t, pkt{srcMAC: f.beMAC, dstMAC: f.gwDnMAC, src: be1IP, dst: netip.MustParseAddr("198.19.0.20"), sport: 1, dport: 2, syn: true})
	if v, out = f.run(east, f.downIdx); v != xdpPass || !bytes.Equal(out, east) {
		t.Errorf("private to private: verdict %d, changed %v; want pass, unchanged", v, !bytes.Equal(out, east))
	}

	if got := gatheredLabels(t, f.reg, "xlb_snat_dropped_total", map[string]string{"pool": "egress", "reason": "no_flow"}); got != 1 {
		t.Errorf("xlb_snat_dropped_total{reason=no_flow} = %v, want 1", got)
	}
}

func TestSNATFixtureICMPEcho(t *testing.T) {
	f := newNATFixture(t)
	v, out := f.run(echoFrame(t, f.beMAC, f.gwDnMAC, be1IP, outsideIP, layers.ICMPv4TypeEchoRequest, 77), f.downIdx)
	e := decodeEcho(t, out)
	if v != xdpRedirect || e.src != snatPublic || e.dst != outsideIP || e.id < 1024 || !e.sumOK {
		t.Fatalf("echo request: verdict %d, %v -> %v id %d, checksum ok %v", v, e.src, e.dst, e.id, e.sumOK)
	}
	block := blockOf(t, f.e, snat.ICMP, be1IP)
	if e.id < block[0] || e.id > block[1] {
		t.Errorf("echo id %d outside be1's icmp block %v", e.id, block)
	}
	v, out = f.run(echoFrame(t, f.clientHW, f.gwUpMAC, outsideIP, snatPublic, layers.ICMPv4TypeEchoReply, e.id), f.upIndex)
	r := decodeEcho(t, out)
	if v != xdpRedirect || r.dst != be1IP || r.id != 77 || !r.sumOK || !bytes.Equal(r.dstMAC, f.beMAC) {
		t.Errorf("echo reply: verdict %d, to %v (%v) id %d, checksum ok %v; want be1 and id 77", v, r.dst, r.dstMAC, r.id, r.sumOK)
	}
}

func TestEIPFixtures(t *testing.T) {
	f := newNATFixture(t)
	// Inbound: to the private address, ports kept.
	v, out := f.run(frame(t, f.fromOutside(pkt{sport: 5555, dport: 22, syn: true}, eipPublic)), f.upIndex)
	d := decode(t, out)
	if v != xdpRedirect || ipOf(d.ip.DstIP) != eipPrivate || d.tcp.DstPort != 22 || ipOf(d.ip.SrcIP) != outsideIP ||
		!bytes.Equal(d.eth.DstMAC, eipHostMAC) || d.sums != "" {
		t.Fatalf("eip inbound: verdict %d, %v:%d -> %v:%d (%v), bad %q", v, d.ip.SrcIP, d.tcp.SrcPort, d.ip.DstIP, d.tcp.DstPort, d.eth.DstMAC, d.sums)
	}
	// Its reply: from the public address, back to the hop it came from.
	v, out = f.run(frame(t, pkt{srcMAC: eipHostMAC, dstMAC: f.gwDnMAC, src: eipPrivate, dst: outsideIP, sport: 22, dport: 5555, syn: true, ack: true}), f.downIdx)
	d = decode(t, out)
	if v != xdpRedirect || ipOf(d.ip.SrcIP) != eipPublic || d.tcp.SrcPort != 22 || ipOf(d.ip.DstIP) != outsideIP ||
		!bytes.Equal(d.eth.DstMAC, f.clientHW) || !bytes.Equal(d.eth.SrcMAC, f.gwUpMAC) || d.sums != "" {
		t.Errorf("eip reply: verdict %d, %v:%d -> %v (%v), bad %q", v, d.ip.SrcIP, d.tcp.SrcPort, d.ip.DstIP, d.eth.DstMAC, d.sums)
	}
	// Outbound: the EIP, not the pool the address also lies in; port kept.
	v, out = f.run(frame(t, pkt{srcMAC: eipHostMAC, dstMAC: f.gwDnMAC, src: eipPrivate, dst: outsideIP, sport: 6000, dport: 443, syn: true}), f.downIdx)
	d = decode(t, out)
	if v != xdpRedirect || ipOf(d.ip.SrcIP) != eipPublic || d.tcp.SrcPort != 6000 || d.sums != "" || !bytes.Equal(d.eth.DstMAC, f.clientHW) {
		t.Errorf("eip outbound: verdict %d, %v:%d -> %v, bad %q", v, d.ip.SrcIP, d.tcp.SrcPort, d.ip.DstIP, d.sums)
	}
	v, out = f.run(frame(t, f.fromOutside(pkt{sport: 443, dport: 6000, syn: true, ack: true}, eipPublic)), f.upIndex)
	d = decode(t, out)
	if v != xdpRedirect || ipOf(d.ip.DstIP) != eipPrivate || d.tcp.DstPort != 6000 || d.sums != "" || !bytes.Equal(d.eth.DstMAC, eipHostMAC) {
		t.Errorf("eip outbound reply: verdict %d, -> %v:%d, bad %q", v, d.ip.DstIP, d.tcp.DstPort, d.sums)
	}
	// UDP inbound too.
	v, out = f.run(frame(t, f.fromOutside(pkt{udp: true, sport: 7, dport: 53, payload: []byte("x")}, eipPublic)), f.upIndex)
	if d = decode(t, out); v != xdpRedirect || ipOf(d.ip.DstIP) != eipPrivate || d.sums != "" {
		t.Errorf("eip udp inbound: verdict %d to %v, bad %q", v, d.ip.DstIP, d.sums)
	}
	if got := gatheredLabels(t, f.reg, "xlb_eip_new_translations_total", map[string]string{"public_ip": eipPublic.String()}); got != 3 {
		t.Errorf("xlb_eip_new_translations_total = %v, want 3", got)
	}
}

func TestSNATFixtureFullBlockFailsAndCounts(t *testing.T) {
	f := newNATFixture(t)
	// 1024 connections to one destination fill be1's one block (32 hosts
	// share one public IP: a block each, no spares).
	seen := map[uint16]bool{}
	for i := range 1024 {
		v, out := f.run(frame(t, f.fromPrivate(pkt{sport: uint16(10000 + i), dport: 9999, syn: true})), f.downIdx)
		if v != xdpRedirect {
			t.Fatalf("connection %d: verdict %d, want redirect", i, v)
		}
		d := decode(t, out)
		if seen[uint16(d.tcp.SrcPort)] {
			t.Fatalf("connection %d got port %d twice for one destination", i, d.tcp.SrcPort)
		}
		seen[uint16(d.tcp.SrcPort)] = true
	}
	if v, _ := f.run(frame(t, f.fromPrivate(pkt{sport: 20000, dport: 9999, syn: true})), f.downIdx); v != xdpDrop {
		t.Fatalf("connection 1025 to the same destination: verdict %d, want drop (no silent reuse)", v)
	}
	labels := map[string]string{"pool": "egress", "public_ip": snatPublic.String()}
	if got := gatheredLabels(t, f.reg, "xlb_snat_port_alloc_failures_total", labels); got != 1 {
		t.Errorf("xlb_snat_port_alloc_failures_total = %v, want 1", got)
	}
	// Another destination still has every port: one that a flow to the
	// first destination holds serves it too.
	v, out := f.run(frame(t, f.fromPrivate(pkt{sport: 20001, dport: 9998, syn: true})), f.downIdx)
	if v != xdpRedirect {
		t.Fatalf("another destination: verdict %d, want redirect", v)
	}
	if d := decode(t, out); !seen[uint16(d.tcp.SrcPort)] || d.sums != "" {
		t.Errorf("another destination got port %d, not one of the block's (all held by the first destination)", d.tcp.SrcPort)
	}
	// A second public IP adds capacity without a restart: the host's share
	// grows and the program takes a spare block.
	apply(t, f.e, f.natConfig(snatPublic, snatPublic2))
	v, out = f.run(frame(t, f.fromPrivate(pkt{sport: 20002, dport: 9999, syn: true})), f.downIdx)
	if v != xdpRedirect {
		t.Fatalf("after adding a public IP: verdict %d, want redirect", v)
	}
	if d := decode(t, out); seen[uint16(d.tcp.SrcPort)] && ipOf(d.ip.SrcIP) == snatPublic {
		t.Errorf("after adding a public IP the new flow reused %v:%d", d.ip.SrcIP, d.tcp.SrcPort)
	}
	// A sweep hands the taken spare to the host.
	hostLabels := map[string]string{"pool": "egress", "host": be1IP.String(), "protocol": "tcp"}
	for start := time.Now(); time.Since(start) < 5*time.Second; time.Sleep(100 * time.Millisecond) {
		if gatheredLabels(t, f.reg, "xlb_snat_host_ports_allocated", hostLabels) == 2048 {
			break
		}
	}
	if got := gatheredLabels(t, f.reg, "xlb_snat_host_ports_allocated", hostLabels); got != 2048 {
		t.Errorf("be1 holds %v tcp ports after taking a spare, want 2048", got)
	}
}

// blockOf reads the host's one block from the engine's plan.
func blockOf(t *testing.T, e *Engine, pr snat.Proto, host netip.Addr) [2]uint16 {
	t.Helper()
	bs := e.HostBlocks("egress", host, pr)
	if len(bs) != 1 || bs[0].Size != 1024 || bs[0].IP != snatPublic {
		t.Fatalf("%v holds %v for %v, want one 1024-port block of %v", host, bs, pr, snatPublic)
	}
	return [2]uint16{bs[0].Start, bs[0].End()}
}

func gatheredLabels(t *testing.T, reg *prometheus.Registry, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if have[k] != v {
					continue next
				}
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return -1
}

func echoFrame(t testing.TB, srcMAC, dstMAC net.HardwareAddr, src, dst netip.Addr, typ uint8, id uint16) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: srcMAC, DstMAC: dstMAC, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolICMPv4, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
	icmp := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(typ, 0), Id: id, Seq: 1}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true, FixLengths: true},
		eth, ip, icmp, gopacket.Payload([]byte("ping"))); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

type echoDecoded struct {
	dstMAC   net.HardwareAddr
	src, dst netip.Addr
	id       uint16
	sumOK    bool
}

func decodeEcho(t testing.TB, b []byte) echoDecoded {
	t.Helper()
	p := gopacket.NewPacket(b, layers.LayerTypeEthernet, gopacket.Default)
	eth, _ := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	ic, _ := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
	if eth == nil || ip == nil || ic == nil {
		t.Fatalf("not an ICMP echo: %v", p)
	}
	c := *ic
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true}, &c, gopacket.Payload(ic.Payload)); err != nil {
		t.Fatal(err)
	}
	var w layers.ICMPv4
	_ = w.DecodeFromBytes(buf.Bytes(), gopacket.NilDecodeFeedback)
	return echoDecoded{dstMAC: eth.DstMAC, src: ipOf(ip.SrcIP), dst: ipOf(ip.DstIP), id: ic.Id,
		sumOK: w.Checksum == ic.Checksum && checksumErrors(t, decoded{ip: ip}) == ""}
}

func TestSNATFixtureIdleReleaseAndGrace(t *testing.T) {
	f := newNATFixture(t)
	cfg := f.natConfig(snatPublic)
	cfg.SNATPools[0].Timeouts = SNATTimeouts{Idle: time.Second}
	apply(t, f.e, cfg)

	v, out := f.run(frame(t, f.fromPrivate(pkt{udp: true, sport: 5000, dport: 53, payload: []byte("q")})), f.downIdx)
	if v != xdpRedirect {
		t.Fatalf("udp outbound: verdict %d", v)
	}
	d := decode(t, out)
	port := uint16(d.udp.SrcPort)
	find := func() (Translation, bool) {
		ts, err := f.e.Translations()
		if err != nil {
			t.Fatal(err)
		}
		for _, tr := range ts {
			if tr.Private == netip.AddrPortFrom(be1IP, 5000) {
				return tr, true
			}
		}
		return Translation{}, false
	}
	// Released after the idle timeout (and at most a sweep more).
	start := time.Now()
	for time.Since(start) < 4*time.Second {
		if tr, ok := find(); ok && tr.Released {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	released := time.Since(start)
	if tr, ok := find(); !ok || !tr.Released || released < time.Second {
		t.Fatalf("after %v the translation is %+v (found %v), want released after the 1 s idle timeout", released, tr, ok)
	}
	// In its grace a reply is dropped (counted), not delivered.
	if v, _ := f.run(frame(t, f.fromOutside(pkt{udp: true, sport: 53, dport: port, payload: []byte("a")}, snatPublic)), f.upIndex); v != xdpDrop {
		t.Errorf("a reply to a released translation: verdict %d, want drop", v)
	}
	if got := gatheredLabels(t, f.reg, "xlb_snat_dropped_total", map[string]string{"pool": "egress", "reason": "released"}); got != 1 {
		t.Errorf("xlb_snat_dropped_total{reason=released} = %v, want 1", got)
	}
	// After the 5 s grace the entry is gone.
	for time.Since(start) < released+8*time.Second {
		if _, ok := find(); !ok {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if _, ok := find(); ok {
		t.Errorf("the released translation is still there %v after its release", time.Since(start)-released)
	} else if gone := time.Since(start) - released; gone < 4*time.Second {
		t.Errorf("the released translation went %v after its release, before the 5 s grace", gone)
	}
}
