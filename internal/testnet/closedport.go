// Package testnet has loopback helpers for tests.
package testnet

import (
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"
)

// ClosedTCPPort returns a loopback TCP address that refuses connections
// until the test ends.
//
// Listening on port 0 and closing the listener is not enough: the port is
// free again, another test may bind it, or a connect to it may pick the same
// port as its own source and connect to itself (TCP simultaneous open),
// which then answers instead of refusing. A socket bound but not listening
// keeps the port reserved, and the kernel never picks a bound port as a
// connection's source.
func ClosedTCPPort(t testing.TB) netip.AddrPort {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("closed port: socket: %v", err)
	}
	t.Cleanup(func() { _ = unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatalf("closed port: bind: %v", err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatalf("closed port: getsockname: %v", err)
	}
	in4, ok := sa.(*unix.SockaddrInet4)
	if !ok {
		t.Fatalf("closed port: bound to %T", sa)
	}
	return netip.AddrPortFrom(netip.AddrFrom4(in4.Addr), uint16(in4.Port))
}
