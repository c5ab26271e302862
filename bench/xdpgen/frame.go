package xdpgen

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// MinFrameSize is the shortest Ethernet frame without the FCS; shorter
// frames are padded by NICs, so a generator always sends at least this.
const MinFrameSize = 60

// MaxFrameSize keeps a frame within one page of the live-frame page pool
// and a standard 1500-byte MTU plus the Ethernet header.
const MaxFrameSize = 1514

// Proto is the kind of segment a frame carries.
type Proto uint8

// Frame protocols.
const (
	UDP Proto = iota + 1 // a UDP datagram
	SYN                  // a TCP segment with only SYN set
)

func (p Proto) String() string {
	switch p {
	case UDP:
		return "udp"
	case SYN:
		return "syn"
	}
	return fmt.Sprintf("proto(%d)", uint8(p))
}

// ParseProto accepts "udp" and "syn" (or "tcp").
func ParseProto(s string) (Proto, error) {
	switch strings.ToLower(s) {
	case "udp":
		return UDP, nil
	case "syn", "tcp":
		return SYN, nil
	}
	return 0, fmt.Errorf("unknown protocol %q (want udp or syn)", s)
}

// FrameSpec describes one Ethernet frame: IPv4 or IPv6 (by the addresses'
// family) carrying UDP or a TCP SYN.
type FrameSpec struct {
	SrcMAC, DstMAC   net.HardwareAddr
	Src, Dst         netip.Addr
	SrcPort, DstPort uint16
	Proto            Proto
	// Size is the frame length without the FCS; 0 means MinFrameSize.
	// The L4 payload fills it (a SYN then carries data, as SYN floods with
	// payload do); at MinFrameSize a TCP/IPv4 SYN carries 6 bytes.
	Size int
}

// headerLen is the frame's header length for the spec's families.
func (s FrameSpec) headerLen() int {
	n := ethHeaderLen + ipv4HeaderLen
	if s.Src.Is6() {
		n = ethHeaderLen + ipv6HeaderLen
	}
	if s.Proto == SYN {
		return n + tcpHeaderLen
	}
	return n + udpHeaderLen
}

func (s FrameSpec) validate() error {
	var errs []error
	if len(s.SrcMAC) != 6 {
		errs = append(errs, fmt.Errorf("source MAC %q: want 6 bytes", s.SrcMAC))
	}
	if len(s.DstMAC) != 6 {
		errs = append(errs, fmt.Errorf("destination MAC %q: want 6 bytes", s.DstMAC))
	}
	switch {
	case !s.Src.IsValid() || !s.Dst.IsValid():
		errs = append(errs, errors.New("source and destination addresses are required"))
	case s.Src.Is4In6() || s.Dst.Is4In6():
		errs = append(errs, errors.New("IPv4-mapped IPv6 addresses: use the IPv4 form"))
	case s.Src.Is4() != s.Dst.Is4():
		errs = append(errs, fmt.Errorf("source %s and destination %s are of different families", s.Src, s.Dst))
	}
	if s.Proto != UDP && s.Proto != SYN {
		errs = append(errs, fmt.Errorf("protocol %v: want udp or syn", s.Proto))
	}
	if s.Size != 0 && (s.Size < MinFrameSize || s.Size > MaxFrameSize) {
		errs = append(errs, fmt.Errorf("size %d: want %d to %d", s.Size, MinFrameSize, MaxFrameSize))
	} else if s.Src.IsValid() && s.Size != 0 && s.Size < s.headerLen() {
		errs = append(errs, fmt.Errorf("size %d: the headers alone take %d", s.Size, s.headerLen()))
	}
	return errors.Join(errs...)
}

// BuildFrame returns the frame with correct IPv4 header and L4 checksums.
// The payload is a fixed byte pattern, so equal specs give equal frames.
func BuildFrame(s FrameSpec) ([]byte, error) {
	if err := s.validate(); err != nil {
		return nil, fmt.Errorf("frame: %w", err)
	}
	size := max(s.Size, MinFrameSize, s.headerLen())
	f := make([]byte, size)
	copy(f[0:6], s.DstMAC)
	copy(f[6:12], s.SrcMAC)

	l3 := f[ethHeaderLen:]
	var l4 []byte
	var pseudo uint32 // pseudo-header sum without the L4 length
	proto := uint8(protoUDP)
	if s.Proto == SYN {
		proto = protoTCP
	}
	if s.Src.Is4() {
		binary.BigEndian.PutUint16(f[12:], etherTypeIPv4)
		l3[0] = 0x45
		binary.BigEndian.PutUint16(l3[2:], uint16(len(l3)))
		binary.BigEndian.PutUint16(l3[6:], 0x4000) // DF
		l3[8] = 64                                 // TTL
		l3[9] = proto
		src, dst := s.Src.As4(), s.Dst.As4()
		copy(l3[12:], src[:])
		copy(l3[16:], dst[:])
		binary.BigEndian.PutUint16(l3[ipv4ChecksumOff:], Checksum(l3[:ipv4HeaderLen], 0))
		l4 = l3[ipv4HeaderLen:]
		pseudo = sum16(src[:], sum16(dst[:], uint32(proto)))
	} else {
		binary.BigEndian.PutUint16(f[12:], etherTypeIPv6)
		l3[0] = 0x60
		binary.BigEndian.PutUint16(l3[4:], uint16(len(l3)-ipv6HeaderLen))
		l3[6] = proto
		l3[7] = 64 // hop limit
		src, dst := s.Src.As16(), s.Dst.As16()
		copy(l3[8:], src[:])
		copy(l3[24:], dst[:])
		l4 = l3[ipv6HeaderLen:]
		pseudo = sum16(src[:], sum16(dst[:], uint32(proto)))
	}
	binary.BigEndian.PutUint16(l4[0:], s.SrcPort)
	binary.BigEndian.PutUint16(l4[2:], s.DstPort)
	pseudo += uint32(len(l4))

	csumOff, hdr := udpChecksumOff, udpHeaderLen
	if s.Proto == SYN {
		csumOff, hdr = tcpChecksumOff, tcpHeaderLen
		binary.BigEndian.PutUint32(l4[4:], 1) // sequence number
		l4[12] = (tcpHeaderLen / 4) << 4      // data offset, no options
		l4[13] = 0x02                         // SYN
		binary.BigEndian.PutUint16(l4[14:], 64240)
	} else {
		binary.BigEndian.PutUint16(l4[4:], uint16(len(l4)))
	}
	for i := hdr; i < len(l4); i++ {
		l4[i] = byte(i - hdr)
	}
	c := Checksum(l4, pseudo)
	if c == 0 && s.Proto == UDP {
		c = 0xffff // 0 means "no checksum" in UDP
	}
	binary.BigEndian.PutUint16(l4[csumOff:], c)
	return f, nil
}

// Checksum is the Internet checksum (RFC 1071) of b, starting from the
// partial sum initial (e.g. a pseudo-header's).
func Checksum(b []byte, initial uint32) uint16 {
	s := sum16(b, initial)
	for s > 0xffff {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

// sum16 adds b as big-endian 16-bit words (odd tail padded with zero) to s
// without folding; callers fold. b up to 64 KiB cannot overflow 32 bits
// from a folded start.
func sum16(b []byte, s uint32) uint32 {
	for len(b) >= 2 {
		s += uint32(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint32(b[0]) << 8
	}
	return s
}
