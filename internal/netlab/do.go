package netlab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"

	"github.com/vishvananda/netns"
)

// Do runs fn on an OS thread switched into host's namespace, then switches
// the thread back (or discards it if that fails). Everything fn creates that
// is bound to a namespace (sockets, netlink handles, links) stays in host's
// namespace when used later from any goroutine. fn must not start
// goroutines that expect to be in the namespace, nor call t.FailNow; a panic
// in fn is re-raised in the caller.
func (l *Lab) Do(host string, fn func() error) error {
	h, err := l.host(host)
	if err != nil {
		return err
	}
	// Hold the read lock only while entering, so that Close cannot close
	// (and the kernel reuse) the namespace fd under us.
	return onLockedThread(func() error {
		l.mu.RLock()
		if l.closed {
			l.mu.RUnlock()
			return fmt.Errorf("netlab: lab is closed")
		}
		err := netns.Set(h.fd)
		l.mu.RUnlock()
		if err != nil {
			return fmt.Errorf("netlab: enter %s: %w", host, err)
		}
		return fn()
	})
}

// Listen is net.Listen inside host's namespace.
func (l *Lab) Listen(host, network, addr string) (net.Listener, error) {
	var ln net.Listener
	err := l.Do(host, func() (err error) {
		ln, err = net.Listen(network, addr)
		return err
	})
	return ln, err
}

// ListenPacket is net.ListenPacket inside host's namespace.
func (l *Lab) ListenPacket(host, network, addr string) (net.PacketConn, error) {
	var pc net.PacketConn
	err := l.Do(host, func() (err error) {
		pc, err = net.ListenPacket(network, addr)
		return err
	})
	return pc, err
}

// Dial connects from host's namespace. addr should hold a literal IP: name
// resolution runs on other goroutines, outside the namespace.
//
// A UDP socket gets the next source port of a range the lab walks through
// (udpPortFirst..udpPortLast), not the kernel's random pick: the kernel
// may hand a just-closed port out again, and a flow that repeats an
// earlier 5-tuple meets the load balancer's flow entry or session for it
// (a UDP flow lives for minutes), so tests that count where flows go
// would count one flow twice.
func (l *Lab) Dial(ctx context.Context, host, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := l.Do(host, func() (err error) {
		// No fast fallback: it would dial from other goroutines.
		d := net.Dialer{FallbackDelay: -1}
		if !strings.HasPrefix(network, "udp") {
			c, err = d.DialContext(ctx, network, addr)
			return err
		}
		for range 64 {
			d.LocalAddr = &net.UDPAddr{Port: l.nextUDPPort()}
			c, err = d.DialContext(ctx, network, addr)
			if !errors.Is(err, syscall.EADDRINUSE) {
				return err
			}
		}
		return err
	})
	return c, err
}

// The source ports Dial walks through for UDP, below the kernel's default
// ephemeral range (32768-60999) so that they rarely meet its own picks.
const (
	udpPortFirst = 20000
	udpPortLast  = 32767
)

func (l *Lab) nextUDPPort() int {
	n := l.udpPort.Add(1)
	return udpPortFirst + int(n%(udpPortLast-udpPortFirst+1))
}

// Dialer returns Dial bound to host, e.g. for http.Transport.DialContext.
func (l *Lab) Dialer(host string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		return l.Dial(ctx, host, network, addr)
	}
}
