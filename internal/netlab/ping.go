package netlab

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// pingTimeout bounds one echo when ctx has no earlier deadline.
const pingTimeout = time.Second

// Ping sends one ICMP (or ICMPv6) echo request from host to addr and waits
// for the matching reply, up to a second or ctx's deadline. It needs no
// ping binary: it uses a raw socket inside the namespace.
func (l *Lab) Ping(ctx context.Context, from, addr string) error {
	dst, err := netip.ParseAddr(addr)
	if err != nil {
		return fmt.Errorf("netlab: ping: %w", err)
	}
	dst = dst.Unmap()
	network, echoReq, echoReply := "ip4:icmp", byte(8), byte(0)
	if dst.Is6() {
		network, echoReq, echoReply = "ip6:ipv6-icmp", 128, 129
	}
	pc, err := l.ListenPacket(from, network, "")
	if err != nil {
		return fmt.Errorf("netlab: ping from %s: %w", from, err)
	}
	defer pc.Close()

	var token [12]byte
	if _, err := rand.Read(token[:]); err != nil {
		return err
	}
	msg := make([]byte, 8+len(token))
	msg[0] = echoReq
	copy(msg[4:8], token[:4]) // identifier and sequence number
	copy(msg[8:], token[:])
	if dst.Is4() {
		binary.BigEndian.PutUint16(msg[2:], checksum(msg))
	} // ICMPv6: the kernel fills in the checksum.

	deadline := time.Now().Add(pingTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := pc.SetDeadline(deadline); err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { pc.SetDeadline(time.Now()) })
	defer stop()
	if _, err := pc.WriteTo(msg, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
		return fmt.Errorf("netlab: ping %s from %s: %w", addr, from, err)
	}
	buf := make([]byte, 1500)
	for {
		n, src, err := pc.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				err = ctx.Err()
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				err = errors.New("no reply")
			}
			return fmt.Errorf("netlab: ping %s from %s: %w", addr, from, err)
		}
		// Raw sockets see every ICMP message; keep only our reply.
		ip, ok := src.(*net.IPAddr)
		if !ok || n < len(msg) || buf[0] != echoReply {
			continue
		}
		if a, ok := netip.AddrFromSlice(ip.IP); !ok || a.Unmap() != dst {
			continue
		}
		if bytes.Equal(buf[4:n], msg[4:]) {
			return nil
		}
	}
}

// WaitReachable pings addr from host until a reply comes or ctx ends.
func (l *Lab) WaitReachable(ctx context.Context, from, addr string) error {
	for {
		err := l.Ping(ctx, from, addr)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("netlab: %s not reachable from %s: %w (last: %v)", addr, from, ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// checksum is the Internet checksum (RFC 1071).
func checksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
