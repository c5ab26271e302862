package l4

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/xlbproject/xlb/dataplane/pool"
)

// connectAttempts bounds how many backends one connection tries before it
// is dropped as connect_failed (HAProxy's retries with redispatch).
const connectAttempts = 3

// acceptLoop accepts until the socket is closed.
func (e *Engine) acceptLoop(l *listener) {
	var backoff time.Duration
	for {
		c, err := l.tcp.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// EMFILE and friends: back off instead of spinning.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			e.log.Warn("l4 accept failed", zap.Stringer("address", l.key.addr), zap.Error(err))
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		tc := &tcpConn{client: c}
		e.conns.add(tc)
		go func() {
			defer e.conns.remove(tc)
			e.serveTCP(l.state.Load(), tc)
		}()
	}
}

// tcpConn is one proxied connection.
type tcpConn struct {
	mu      sync.Mutex
	client  *net.TCPConn
	backend *net.TCPConn
	closed  bool
}

func (t *tcpConn) forceClose() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	_ = t.client.Close()
	if t.backend != nil {
		_ = t.backend.Close()
	}
}

// setBackend records the backend connection unless the connection was
// force-closed meanwhile.
func (t *tcpConn) setBackend(b *net.TCPConn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	t.backend = b
	return true
}

// reset refuses a client with an RST rather than a clean close, so a client
// is not misled into thinking it was served.
func reset(c *net.TCPConn) {
	_ = c.SetLinger(0)
	_ = c.Close()
}

func (e *Engine) serveTCP(st *listenerState, tc *tcpConn) {
	m := st.metrics
	client := tc.client.RemoteAddr().(*net.TCPAddr).AddrPort()
	src := client.Addr().Unmap()
	switch {
	case st.cfg.Stopped:
		m.drop(reasonStopped)
		reset(tc.client)
		return
	case !st.cfg.ACL.Allowed(src):
		m.drop(reasonACL)
		reset(tc.client)
		return
	}
	lim := st.cfg.Limits
	if ok, why := lim.Admit(e.now()); !ok {
		m.drop(limitReason(why))
		reset(tc.client)
		return
	}
	defer lim.Release()

	b, bc, reason := e.connectBackend(st, src, flowKey(client))
	if bc == nil {
		m.drop(reason)
		reset(tc.client)
		return
	}
	if !tc.setBackend(bc) {
		_ = bc.Close()
		return
	}
	b.Acquire()
	defer b.Release()
	m.conns.Inc()
	m.active.Inc()
	defer m.active.Dec()

	act := newActivity()
	idle := st.cfg.IdleTimeout
	errc := make(chan error, 2)
	go func() {
		_, err := pipe(bc, tc.client, idle, act, func(n int64) { m.bytesIn.Add(float64(n)) }, shaping{st.cfg.BandwidthIn, e.now})
		errc <- err
	}()
	go func() {
		_, err := pipe(tc.client, bc, idle, act, func(n int64) { m.bytesOut.Add(float64(n)) }, shaping{st.cfg.BandwidthOut, e.now})
		errc <- err
	}()
	// A clean end of one direction leaves the other running (half-close);
	// an error (reset, idle timeout) ends both.
	for range 2 {
		if err := <-errc; err != nil {
			_ = tc.client.Close()
			_ = bc.Close()
		}
	}
	_ = tc.client.Close()
	_ = bc.Close()
}

// connectBackend picks a backend and connects to it, trying up to
// connectAttempts backends. On failure it returns the drop reason.
func (e *Engine) connectBackend(st *listenerState, src netip.Addr, key uint64) (*pool.Backend, *net.TCPConn, string) {
	d := net.Dialer{Timeout: st.cfg.ConnectTimeout}
	if d.Timeout <= 0 {
		d.Timeout = 5 * time.Second
	}
	var last *pool.Backend
	for attempt := range connectAttempts {
		b, err := st.pool.PickSticky(src, key+uint64(attempt))
		if err != nil {
			return nil, nil, reasonNoBackend
		}
		if b == last {
			// The scheduler insists on a backend that just failed (sticky,
			// maglev or a single member): no point hammering it.
			break
		}
		last = b
		c, err := d.DialContext(context.Background(), "tcp", b.AddrPort().String())
		if err == nil {
			return b, c.(*net.TCPConn), ""
		}
		st.metrics.connFails.WithLabelValues(st.metrics.name, b.ID()).Inc()
		e.log.Debug("l4 backend connect failed", zap.String("listener", st.cfg.Name),
			zap.String("backend", b.ID()), zap.Error(err))
	}
	return nil, nil, reasonConnectFailed
}
