package snat

import (
	"fmt"
	"net/netip"
)

// Proto is a port space: tcp and udp ports, ICMP echo ids.
type Proto uint8

const (
	TCP Proto = iota
	UDP
	ICMP
	// NumProtos is the number of port spaces.
	NumProtos
)

var protoNames = [...]string{"tcp", "udp", "icmp"}

func (p Proto) String() string {
	if int(p) < len(protoNames) {
		return protoNames[p]
	}
	return fmt.Sprintf("proto(%d)", uint8(p))
}

// Block is a run of ports of one public IP and protocol.
type Block struct {
	IP    netip.Addr
	Proto Proto
	Start uint16 // first port
	Size  uint16
}

// End is the block's last port.
func (b Block) End() uint16 { return b.Start + b.Size - 1 }

// Contains reports whether port is one of the block's.
func (b Block) Contains(port uint16) bool { return port >= b.Start && port <= b.End() }

func (b Block) String() string {
	return fmt.Sprintf("%v/%v:%d-%d", b.IP, b.Proto, b.Start, b.End())
}

// HostKey names one host's blocks of one protocol.
type HostKey struct {
	Addr  netip.Addr
	Proto Proto
}

// space is one public IP and protocol's ports in units of 32: true is
// taken (by a host or a spare).
type space [units]bool

// alloc takes an aligned run of size ports and returns its first port.
func (s *space) alloc(size int) (uint16, bool) {
	n := size / unit
	for at := 0; at+n <= units; at += n {
		free := true
		for i := at; i < at+n; i++ {
			if s[i] {
				free = false
				break
			}
		}
		if free {
			for i := at; i < at+n; i++ {
				s[i] = true
			}
			return uint16(PortMin + at*unit), true
		}
	}
	return 0, false
}

func (s *space) free(start uint16, size uint16) {
	at := (int(start) - PortMin) / unit
	for i := at; i < at+int(size)/unit && i < units; i++ {
		s[i] = false
	}
}

// freeBlocks counts the aligned runs of size ports that are free.
func (s *space) freeBlocks(size int) int {
	n, c := size/unit, 0
	for at := 0; at+n <= units; at += n {
		free := true
		for i := at; i < at+n; i++ {
			if s[i] {
				free = false
				break
			}
		}
		if free {
			c++
		}
	}
	return c
}
