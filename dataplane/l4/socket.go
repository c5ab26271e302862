package l4

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"
)

// listenConfig binds with IP_FREEBIND so a listener can start before its VIP
// is on an interface (addresses move between nodes; configuration may be
// applied before the address), and SO_REUSEADDR so a restart can rebind while
// old connections sit in TIME_WAIT.
func listenConfig() net.ListenConfig {
	return net.ListenConfig{Control: func(network, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			if network == "tcp6" || network == "udp6" {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_IPV6, unix.IPV6_FREEBIND, 1)
			} else {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_FREEBIND, 1)
			}
			if serr == nil {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
}

func listenTCP(ctx context.Context, addr string) (*net.TCPListener, error) {
	lc := listenConfig()
	l, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return l.(*net.TCPListener), nil
}

func listenUDP(ctx context.Context, addr string) (*net.UDPConn, error) {
	lc := listenConfig()
	pc, err := lc.ListenPacket(ctx, "udp", addr)
	if err != nil {
		return nil, err
	}
	return pc.(*net.UDPConn), nil
}

// flowKey hashes a client's address and port for maglev; a fixed function so
// that every run maps a client the same way.
func flowKey(client netip.AddrPort) uint64 {
	const prime = 1099511628211
	h := uint64(14695981039346656037)
	a := client.Addr().As16()
	for _, b := range a {
		h = (h ^ uint64(b)) * prime
	}
	p := client.Port()
	h = (h ^ uint64(p>>8)) * prime
	h = (h ^ uint64(p&0xff)) * prime
	return h
}

// isConnRefused reports an ICMP port unreachable seen on a connected UDP socket.
func isConnRefused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }
