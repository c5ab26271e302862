package xdpgen

import (
	"encoding/binary"
	"slices"
	"testing"
)

// vlanTag inserts a VLAN tag of type tpid after the MAC addresses.
func vlanTag(f []byte, tpid uint16) []byte {
	tag := binary.BigEndian.AppendUint16(nil, tpid)
	tag = append(tag, 0, 7) // TCI: VLAN 7
	return slices.Concat(f[:12], tag, f[12:])
}

func edit(f []byte, fn func([]byte)) []byte {
	g := slices.Clone(f)
	fn(g)
	return g
}

func TestParse(t *testing.T) {
	udp4 := mustFrame(t, testSpec("10.0.0.1", "10.0.0.2", UDP, 60))
	syn4 := mustFrame(t, testSpec("10.0.0.1", "10.0.0.2", SYN, 60))
	udp6 := mustFrame(t, testSpec("fd00::1", "fd00::2", UDP, 80))
	icmp4 := edit(udp4, func(f []byte) {
		f[23] = protoICMP
		f[34], f[35] = icmpEcho, 0
		binary.BigEndian.PutUint16(f[38:], 0x1234) // echo id
	})
	icmp6 := edit(udp6, func(f []byte) {
		f[20] = protoICMPv6
		f[54] = icmp6EchoReply
		binary.BigEndian.PutUint16(f[58:], 0x4321)
	})
	tests := []struct {
		name      string
		frame     []byte
		want      Verdict
		wantPorts [2]uint16
		wantVLANs int
	}{
		{"udp4", udp4, ParseOK, [2]uint16{40000, 9000}, 0},
		{"syn4", syn4, ParseOK, [2]uint16{40000, 9000}, 0},
		{"udp6", udp6, ParseOK, [2]uint16{40000, 9000}, 0},
		{"icmp4 echo", icmp4, ParseOK, [2]uint16{0x1234, 0x1234}, 0},
		{"icmp4 unreachable", edit(icmp4, func(f []byte) { f[34] = 3 }), ParseOK, [2]uint16{}, 0},
		{"icmp6 echo reply", icmp6, ParseOK, [2]uint16{0x4321, 0x4321}, 0},
		{"icmp over ipv6", edit(udp6, func(f []byte) { f[20] = protoICMP }), ParseUnsupported, [2]uint16{}, 0},
		{"one vlan", vlanTag(udp4, etherTypeVLAN), ParseOK, [2]uint16{40000, 9000}, 1},
		{"qinq", vlanTag(vlanTag(udp4, etherTypeVLAN), etherTypeQinQ), ParseOK, [2]uint16{40000, 9000}, 2},
		{"three vlans", vlanTag(vlanTag(vlanTag(udp4, etherTypeVLAN), etherTypeVLAN), etherTypeVLAN), ParseUnsupported, [2]uint16{}, 2},
		{"vlan tag cut", vlanTag(udp4, etherTypeVLAN)[:16], ParseTruncated, [2]uint16{}, 0},
		{"arp", edit(udp4, func(f []byte) { f[12], f[13] = 0x08, 0x06 }), ParseUnsupported, [2]uint16{}, 0},
		{"short ethernet", udp4[:13], ParseTruncated, [2]uint16{}, 0},
		{"short ipv4", udp4[:33], ParseTruncated, [2]uint16{}, 0},
		{"ipv4 version 5", edit(udp4, func(f []byte) { f[14] = 0x55 }), ParseMalformed, [2]uint16{}, 0},
		{"ihl 4", edit(udp4, func(f []byte) { f[14] = 0x44 }), ParseMalformed, [2]uint16{}, 0},
		{"ihl past frame", edit(udp4, func(f []byte) { f[14] = 0x4f })[:60], ParseTruncated, [2]uint16{}, 0},
		{"total length below header", edit(udp4, func(f []byte) { binary.BigEndian.PutUint16(f[16:], 19) }), ParseMalformed, [2]uint16{}, 0},
		{"total length past frame", edit(udp4, func(f []byte) { binary.BigEndian.PutUint16(f[16:], 47) }), ParseTruncated, [2]uint16{}, 0},
		{"padding after packet", edit(udp4, func(f []byte) {
			binary.BigEndian.PutUint16(f[16:], 28)
			binary.BigEndian.PutUint16(f[38:], 8)
		}), ParseOK, [2]uint16{40000, 9000}, 0},
		{"first fragment", edit(udp4, func(f []byte) { f[20] = 0x20 }), ParseFragment, [2]uint16{}, 0},
		{"later fragment", edit(udp4, func(f []byte) { f[20], f[21] = 0, 8 }), ParseFragment, [2]uint16{}, 0},
		{"udp length 7", edit(udp4, func(f []byte) { binary.BigEndian.PutUint16(f[38:], 7) }), ParseMalformed, [2]uint16{}, 0},
		{"udp length past ip", edit(udp4, func(f []byte) { binary.BigEndian.PutUint16(f[38:], 27) }), ParseMalformed, [2]uint16{}, 0},
		{"udp in 4 bytes", edit(udp4, func(f []byte) { binary.BigEndian.PutUint16(f[16:], 24) }), ParseMalformed, [2]uint16{}, 0},
		{"tcp data offset 4", edit(syn4, func(f []byte) { f[46] = 0x40 }), ParseMalformed, [2]uint16{}, 0},
		{"tcp data offset past ip", edit(syn4, func(f []byte) { f[46] = 0x70 }), ParseMalformed, [2]uint16{}, 0},
		{"sctp", edit(udp4, func(f []byte) { f[23] = 132 }), ParseUnsupported, [2]uint16{}, 0},
		{"ipv6 version 4", edit(udp6, func(f []byte) { f[14] = 0x40 }), ParseMalformed, [2]uint16{}, 0},
		{"ipv6 payload past frame", edit(udp6, func(f []byte) { binary.BigEndian.PutUint16(f[18:], 27) }), ParseTruncated, [2]uint16{}, 0},
		{"ipv6 extension header", edit(udp6, func(f []byte) { f[20] = 0 }), ParseUnsupported, [2]uint16{}, 0},
		{"short ipv6", udp6[:50], ParseTruncated, [2]uint16{}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, v := Parse(tt.frame)
			if v != tt.want {
				t.Fatalf("verdict %v, want %v (%+v)", v, tt.want, p)
			}
			if got := [2]uint16{p.SrcPort, p.DstPort}; v == ParseOK && got != tt.wantPorts {
				t.Errorf("ports %v, want %v", got, tt.wantPorts)
			}
			if p.VLANs != tt.wantVLANs {
				t.Errorf("vlans %d, want %d", p.VLANs, tt.wantVLANs)
			}
		})
	}
}
