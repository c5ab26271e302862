package netlab

import (
	"context"
	"fmt"
	"net"

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
func (l *Lab) Dial(ctx context.Context, host, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := l.Do(host, func() (err error) {
		// No fast fallback: it would dial from other goroutines.
		d := net.Dialer{FallbackDelay: -1}
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// Dialer returns Dial bound to host, e.g. for http.Transport.DialContext.
func (l *Lab) Dialer(host string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		return l.Dial(ctx, host, network, addr)
	}
}
