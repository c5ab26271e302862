package xdpgen

import (
	"bytes"
	"net"
	"net/netip"
	"testing"
)

// FuzzBuildFrame builds frames from arbitrary specs: a spec BuildFrame
// accepts must give a frame that Parse and gopacket both read back, with
// correct checksums.
func FuzzBuildFrame(f *testing.F) {
	f.Add([]byte{10, 0, 0, 1}, []byte{10, 0, 0, 2}, uint16(40000), uint16(9000), uint8(UDP), 60)
	f.Add([]byte{192, 0, 2, 1}, []byte{198, 51, 100, 1}, uint16(0), uint16(65535), uint8(SYN), 1514)
	f.Add(netip.MustParseAddr("fd00::1").AsSlice(), netip.MustParseAddr("fd00::2").AsSlice(), uint16(1), uint16(2), uint8(UDP), 0)
	f.Add(netip.MustParseAddr("2001:db8::1").AsSlice(), netip.MustParseAddr("2001:db8::2").AsSlice(), uint16(1), uint16(2), uint8(SYN), 75)
	f.Add([]byte{10, 0, 0, 1}, netip.MustParseAddr("fd00::2").AsSlice(), uint16(1), uint16(2), uint8(UDP), 60)
	f.Add([]byte{10, 0, 0, 1}, []byte{10, 0, 0, 2}, uint16(1), uint16(2), uint8(7), 59)
	f.Fuzz(func(t *testing.T, src, dst []byte, sport, dport uint16, proto uint8, size int) {
		s := FrameSpec{
			SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2},
			SrcPort: sport, DstPort: dport, Proto: Proto(proto), Size: size,
		}
		s.Src, _ = netip.AddrFromSlice(src)
		s.Dst, _ = netip.AddrFromSlice(dst)
		frame, err := BuildFrame(s)
		if err != nil {
			return
		}
		if len(frame) < MinFrameSize || len(frame) > MaxFrameSize || (size != 0 && len(frame) != size) {
			t.Fatalf("frame of %d bytes for size %d", len(frame), size)
		}
		p, v := Parse(frame)
		if v != ParseOK || p.SrcPort != sport || p.DstPort != dport {
			t.Fatalf("Parse = %+v, %v", p, v)
		}
		d := decode(t, frame)
		if !d.checksumsCorrect || d.src != s.Src || d.dst != s.Dst || d.sport != sport || d.dport != dport {
			t.Fatalf("gopacket read %+v", d)
		}
	})
}

// FuzzParseMatchesBPF runs xdp_gen (rotating ports and IPv4 sources) on
// arbitrary frames and holds it to the Go parser: a frame Parse accepts as
// TCP or UDP has exactly its source port (and IPv4 source) rewritten with
// the checksums' one's complement sums unchanged, and any other frame is
// sent untouched. This checks parse.h and csum.h against parse.go.
func FuzzParseMatchesBPF(f *testing.F) {
	seeds := [][]byte{
		mustFrame(f, testSpec("10.0.0.1", "10.0.0.2", UDP, 60)),
		mustFrame(f, testSpec("10.0.0.1", "10.0.0.2", SYN, 99)),
		mustFrame(f, testSpec("fd00::1", "fd00::2", UDP, 80)),
		mustFrame(f, testSpec("fd00::1", "fd00::2", SYN, 0)),
		vlanTag(mustFrame(f, testSpec("10.0.0.1", "10.0.0.2", UDP, 60)), etherTypeVLAN),
		vlanTag(vlanTag(mustFrame(f, testSpec("fd00::1", "fd00::2", SYN, 0)), etherTypeVLAN), etherTypeQinQ),
		edit(mustFrame(f, testSpec("10.0.0.1", "10.0.0.2", UDP, 80)), func(b []byte) { b[14] = 0x46 }),
		edit(mustFrame(f, testSpec("10.0.0.1", "10.0.0.2", UDP, 60)), func(b []byte) { b[40], b[41] = 0, 0 }),
		edit(mustFrame(f, testSpec("10.0.0.1", "10.0.0.2", UDP, 60)), func(b []byte) { b[20] = 0x20 }),
		make([]byte, 14),
	}
	for _, s := range seeds {
		f.Add(s)
	}
	const flows, srcAddrs, sportBase = 5, 3, 1000
	tmpl := testSpec("10.9.0.1", "10.0.0.2", UDP, 60)
	tmpl.SrcPort = sportBase
	g := newTestGen(f, GeneratorConfig{Frame: mustFrame(f, tmpl), Flows: flows, SrcAddrs: srcAddrs, noRestore: true})
	srcBase := tmpl.Src.As4()

	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) < ethHeaderLen || len(in) > MaxFrameSize {
			return // BPF_PROG_TEST_RUN takes 14 bytes up to a page
		}
		ret, out, seq := g.runOnce(t, in)
		if ret != xdpRedirect {
			t.Fatalf("verdict %d", ret)
		}
		if len(out) != len(in) {
			t.Fatalf("length %d -> %d", len(in), len(out))
		}
		p, v := Parse(in)
		if v != ParseOK || (p.L4Proto != protoUDP && p.L4Proto != protoTCP) {
			if !bytes.Equal(in, out) {
				t.Fatalf("Parse says %v (proto %d) but the program changed the frame\n in %x\nout %x", v, p.L4Proto, in, out)
			}
			return
		}
		// Expected: every byte equal except the rewritten fields.
		want := bytes.Clone(in)
		want[p.L4Off], want[p.L4Off+1] = byte((sportBase+seq%flows)>>8), byte(sportBase+seq%flows)
		ipv4 := p.EtherType == etherTypeIPv4
		if ipv4 {
			src := srcBase
			src[3] += byte(seq / flows % srcAddrs)
			copy(want[p.L3Off+ipv4SrcOff:], src[:])
		}
		csumOff := p.L4Off + tcpChecksumOff
		if p.L4Proto == protoUDP {
			csumOff = p.L4Off + udpChecksumOff
		}
		// The checksums are the program's; the sums below judge them.
		copy(want[csumOff:csumOff+2], out[csumOff:csumOff+2])
		if ipv4 {
			copy(want[p.L3Off+ipv4ChecksumOff:p.L3Off+ipv4ChecksumOff+2], out[p.L3Off+ipv4ChecksumOff:])
		}
		if !bytes.Equal(out, want) {
			t.Fatalf("seq %d: rewrite differs\n got %x\nwant %x", seq, out, want)
		}
		inL4, inIP := onesSum(in, p)
		outL4, outIP := onesSum(out, p)
		if inIP != outIP {
			t.Fatalf("IPv4 header checksum sum %#x -> %#x", inIP, outIP)
		}
		if p.L4Proto == protoUDP && be16(in[csumOff:]) == 0 {
			if be16(out[csumOff:]) != 0 {
				t.Fatal("UDP checksum 0 (none) was changed")
			}
		} else if inL4 != outL4 {
			t.Fatalf("L4 checksum sum %#x -> %#x", inL4, outL4)
		}
	})
}
