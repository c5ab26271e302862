package xdpgen

import (
	"encoding/binary"
	"fmt"
)

// Verdict is the outcome of Parse. The values and rules mirror
// bpf/include/parse.h (enum parse_verdict); FuzzParseMatchesBPF holds the two
// together.
type Verdict uint8

// Parse verdicts.
const (
	ParseOK          Verdict = iota
	ParseTruncated           // a header (or the IP packet) runs past the frame
	ParseMalformed           // a version or length field is inconsistent
	ParseUnsupported         // EtherType, VLAN depth or L4 protocol not handled
	ParseFragment            // an IPv4 fragment
)

func (v Verdict) String() string {
	switch v {
	case ParseOK:
		return "ok"
	case ParseTruncated:
		return "truncated"
	case ParseMalformed:
		return "malformed"
	case ParseUnsupported:
		return "unsupported"
	case ParseFragment:
		return "fragment"
	}
	return fmt.Sprintf("verdict(%d)", uint8(v))
}

// EtherTypes, IP protocol numbers and header sizes the parser knows.
const (
	etherTypeIPv4   = 0x0800
	etherTypeIPv6   = 0x86dd
	etherTypeVLAN   = 0x8100
	etherTypeQinQ   = 0x88a8
	protoICMP       = 1
	protoTCP        = 6
	protoUDP        = 17
	protoICMPv6     = 58
	ethHeaderLen    = 14
	vlanTagLen      = 4
	ipv4HeaderLen   = 20
	ipv6HeaderLen   = 40
	udpHeaderLen    = 8
	tcpHeaderLen    = 20
	icmpHeaderLen   = 8
	maxVLANs        = 2
	ipv4FragMask    = 0x3fff
	icmpEchoReply   = 0
	icmpEcho        = 8
	icmp6EchoReq    = 128
	icmp6EchoReply  = 129
	udpChecksumOff  = 6
	tcpChecksumOff  = 16
	ipv4ChecksumOff = 10
	ipv4SrcOff      = 12
)

// Packet is what Parse found: offsets into the frame and the flow fields.
type Packet struct {
	EtherType uint16 // of the L3 header, after any VLAN tags
	VLANs     int
	L3Off     int
	L4Off     int
	L4Len     int   // L4 header and payload, from the IP length field
	L4Proto   uint8 // also set with ParseUnsupported
	SrcPort   uint16
	DstPort   uint16 // for ICMP echo both ports are the echo id
}

// Parse walks Ethernet, up to two VLAN tags, IPv4 or IPv6 (no extension
// headers) and TCP, UDP, ICMP or ICMPv6 with exactly the checks of
// parse_packet in bpf/include/parse.h. The fields found before a failure
// are set.
func Parse(frame []byte) (Packet, Verdict) {
	var p Packet
	if len(frame) < ethHeaderLen {
		return p, ParseTruncated
	}
	off := ethHeaderLen
	et := binary.BigEndian.Uint16(frame[12:])
	for range maxVLANs {
		if et != etherTypeVLAN && et != etherTypeQinQ {
			break
		}
		if len(frame) < off+vlanTagLen {
			p.EtherType = et
			return p, ParseTruncated
		}
		et = binary.BigEndian.Uint16(frame[off+2:])
		off += vlanTagLen
		p.VLANs++
	}
	p.EtherType = et
	if et == etherTypeVLAN || et == etherTypeQinQ {
		return p, ParseUnsupported
	}
	p.L3Off = off
	var v Verdict
	switch et {
	case etherTypeIPv4:
		v = p.parseIPv4(frame)
	case etherTypeIPv6:
		v = p.parseIPv6(frame)
	default:
		return p, ParseUnsupported
	}
	if v != ParseOK {
		return p, v
	}
	switch {
	case p.L4Proto == protoUDP:
		return p, p.parseUDP(frame)
	case p.L4Proto == protoTCP:
		return p, p.parseTCP(frame)
	case p.L4Proto == protoICMP && et == etherTypeIPv4,
		p.L4Proto == protoICMPv6 && et == etherTypeIPv6:
		return p, p.parseICMP(frame)
	}
	return p, ParseUnsupported
}

func (p *Packet) parseIPv4(f []byte) Verdict {
	h := f[p.L3Off:]
	if len(h) < ipv4HeaderLen {
		return ParseTruncated
	}
	if h[0]>>4 != 4 || h[0]&0xf < 5 {
		return ParseMalformed
	}
	hlen := int(h[0]&0xf) * 4
	if len(h) < hlen {
		return ParseTruncated
	}
	tot := int(binary.BigEndian.Uint16(h[2:]))
	if tot < hlen {
		return ParseMalformed
	}
	if tot > len(h) {
		return ParseTruncated
	}
	p.L4Proto = h[9]
	p.L4Len = tot - hlen
	p.L4Off = p.L3Off + hlen
	if binary.BigEndian.Uint16(h[6:])&ipv4FragMask != 0 {
		return ParseFragment
	}
	return ParseOK
}

func (p *Packet) parseIPv6(f []byte) Verdict {
	h := f[p.L3Off:]
	if len(h) < ipv6HeaderLen {
		return ParseTruncated
	}
	if h[0]>>4 != 6 {
		return ParseMalformed
	}
	plen := int(binary.BigEndian.Uint16(h[4:]))
	if plen > len(h)-ipv6HeaderLen {
		return ParseTruncated
	}
	p.L4Proto = h[6]
	p.L4Len = plen
	p.L4Off = p.L3Off + ipv6HeaderLen
	return ParseOK
}

// The L4 parsers run only after the IP layer checked that L4Len bytes
// follow L4Off, so a length check implies the bytes are there.

func (p *Packet) parseUDP(f []byte) Verdict {
	if p.L4Len < udpHeaderLen {
		return ParseMalformed
	}
	h := f[p.L4Off:]
	if ulen := int(binary.BigEndian.Uint16(h[4:])); ulen < udpHeaderLen || ulen > p.L4Len {
		return ParseMalformed
	}
	p.SrcPort = binary.BigEndian.Uint16(h)
	p.DstPort = binary.BigEndian.Uint16(h[2:])
	return ParseOK
}

func (p *Packet) parseTCP(f []byte) Verdict {
	if p.L4Len < tcpHeaderLen {
		return ParseMalformed
	}
	h := f[p.L4Off:]
	if doff := int(h[12]>>4) * 4; doff < tcpHeaderLen || doff > p.L4Len {
		return ParseMalformed
	}
	p.SrcPort = binary.BigEndian.Uint16(h)
	p.DstPort = binary.BigEndian.Uint16(h[2:])
	return ParseOK
}

func (p *Packet) parseICMP(f []byte) Verdict {
	if p.L4Len < icmpHeaderLen {
		return ParseMalformed
	}
	h := f[p.L4Off:]
	t := h[0]
	echo := t == icmpEcho || t == icmpEchoReply
	if p.L4Proto == protoICMPv6 {
		echo = t == icmp6EchoReq || t == icmp6EchoReply
	}
	if echo {
		p.SrcPort = binary.BigEndian.Uint16(h[4:])
		p.DstPort = p.SrcPort
	}
	return ParseOK
}
