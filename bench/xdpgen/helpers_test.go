package xdpgen

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// requireBPF skips a test that needs to load BPF programs when not root,
// or fails it with CI=true, where it must run.
func requireBPF(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("loading BPF programs needs root, and CI runs as root")
		}
		t.Skip("loading BPF programs needs root")
	}
}

var (
	macA = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x0a}
	macB = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x0b}
)

func testSpec(src, dst string, proto Proto, size int) FrameSpec {
	return FrameSpec{
		SrcMAC: macA, DstMAC: macB,
		Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr(dst),
		SrcPort: 40000, DstPort: 9000, Proto: proto, Size: size,
	}
}

func mustFrame(t testing.TB, s FrameSpec) []byte {
	t.Helper()
	f, err := BuildFrame(s)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// frameInfo is what an independent decoder (gopacket) read from a frame.
type frameInfo struct {
	src, dst         netip.Addr
	sport, dport     uint16
	syn              bool
	udp              bool
	payloadLen       int
	srcMAC, dstMAC   net.HardwareAddr
	checksumsCorrect bool
}

// decode parses f with gopacket and checks its checksums by serializing
// the decoded layers again with ComputeChecksums: the bytes must be equal.
// Decoding stops at TCP/UDP: gopacket would otherwise read payloads by
// port (DHCP on 67, DNS on 53) and reject our filler bytes.
func decode(t testing.TB, f []byte) frameInfo {
	t.Helper()
	var (
		eth     layers.Ethernet
		ip4     layers.IPv4
		ip6     layers.IPv6
		udp     layers.UDP
		tcp     layers.TCP
		decoded []gopacket.LayerType
		d       frameInfo
	)
	parser := gopacket.NewDecodingLayerParser(layers.LayerTypeEthernet, &eth, &ip4, &ip6, &udp, &tcp)
	parser.IgnoreUnsupported = true
	if err := parser.DecodeLayers(f, &decoded); err != nil {
		t.Fatalf("gopacket: %v", err)
	}
	d.srcMAC, d.dstMAC = eth.SrcMAC, eth.DstMAC
	var nl gopacket.NetworkLayer
	ls := []gopacket.SerializableLayer{&eth}
	for _, lt := range decoded {
		switch lt {
		case layers.LayerTypeIPv4:
			nl = &ip4
			ls = append(ls, &ip4)
			d.src, _ = netip.AddrFromSlice(ip4.SrcIP.To4())
			d.dst, _ = netip.AddrFromSlice(ip4.DstIP.To4())
		case layers.LayerTypeIPv6:
			nl = &ip6
			ls = append(ls, &ip6)
			d.src, _ = netip.AddrFromSlice(ip6.SrcIP)
			d.dst, _ = netip.AddrFromSlice(ip6.DstIP)
		case layers.LayerTypeUDP:
			if err := udp.SetNetworkLayerForChecksum(nl); err != nil {
				t.Fatal(err)
			}
			ls = append(ls, &udp, gopacket.Payload(udp.Payload))
			d.sport, d.dport, d.udp, d.payloadLen = uint16(udp.SrcPort), uint16(udp.DstPort), true, len(udp.Payload)
		case layers.LayerTypeTCP:
			if err := tcp.SetNetworkLayerForChecksum(nl); err != nil {
				t.Fatal(err)
			}
			ls = append(ls, &tcp, gopacket.Payload(tcp.Payload))
			d.sport, d.dport, d.syn, d.payloadLen = uint16(tcp.SrcPort), uint16(tcp.DstPort), tcp.SYN && !tcp.ACK, len(tcp.Payload)
		}
	}
	if nl == nil || len(ls) < 4 {
		t.Fatalf("gopacket found no IP and TCP/UDP layers (%v) in %x", decoded, f)
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	d.checksumsCorrect = bytes.Equal(buf.Bytes(), f)
	if !d.checksumsCorrect {
		t.Logf("frame:       %x\nrecomputed:  %x", f, buf.Bytes())
	}
	return d
}

// onesSum is the one's complement sum (mod 0xffff, 0 and 0xffff equal) of
// the frame's L4 checksum coverage with its pseudo-header, and of the IPv4
// header: a correct checksum makes each sum 0. Incremental updates must
// leave both sums as they were.
func onesSum(f []byte, p Packet) (l4, ip uint32) {
	mod := func(s uint32) uint32 { return s % 0xffff }
	l4s := sum16(f[p.L4Off:p.L4Off+p.L4Len], uint32(p.L4Proto)+uint32(p.L4Len))
	if p.EtherType == etherTypeIPv4 {
		l4s = sum16(f[p.L3Off+12:p.L3Off+20], l4s)
		hlen := int(f[p.L3Off]&0xf) * 4
		ip = mod(sum16(f[p.L3Off:p.L3Off+hlen], 0))
	} else {
		l4s = sum16(f[p.L3Off+8:p.L3Off+40], l4s)
	}
	return mod(l4s), ip
}

func be16(b []byte) uint16 { return binary.BigEndian.Uint16(b) }
