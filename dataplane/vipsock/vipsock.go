// Package vipsock binds the userspace engines' listening sockets to VIPs.
//
// Sockets are bound with IP_FREEBIND so a listener can start before its VIP
// is on an interface (addresses move between nodes, and configuration may be
// applied before the address is), and with SO_REUSEADDR so a restarted
// daemon can rebind while old connections sit in TIME_WAIT.
package vipsock

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

func control(network, _ string, c syscall.RawConn) error {
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
}

// ListenTCP listens on addr ("VIP:port").
func ListenTCP(ctx context.Context, addr string) (*net.TCPListener, error) {
	lc := net.ListenConfig{Control: control}
	l, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return l.(*net.TCPListener), nil
}

// udpReadBuffer is a UDP listener's receive buffer: one socket takes every
// client's datagrams, and the default (about 200 KiB, a few hundred small
// datagrams) overflows on a burst while the reader opens new sessions. The
// kernel caps it at net.core.rmem_max unless the process may exceed it.
const udpReadBuffer = 4 << 20

// ListenUDP binds a UDP socket to addr ("VIP:port").
func ListenUDP(ctx context.Context, addr string) (*net.UDPConn, error) {
	lc := net.ListenConfig{Control: control}
	pc, err := lc.ListenPacket(ctx, "udp", addr)
	if err != nil {
		return nil, err
	}
	c := pc.(*net.UDPConn)
	if err := setReadBuffer(c, udpReadBuffer); err != nil {
		c.Close()
		return nil, fmt.Errorf("udp %s: receive buffer: %w", addr, err)
	}
	return c, nil
}

// setReadBuffer sets SO_RCVBUFFORCE (root, or CAP_NET_ADMIN: past
// rmem_max), else SO_RCVBUF (capped by the kernel).
func setReadBuffer(c *net.UDPConn, n int) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, n); serr != nil {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, n)
		}
	})
	return errors.Join(err, serr)
}
