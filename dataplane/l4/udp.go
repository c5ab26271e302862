package l4

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/xlbproject/xlb/dataplane/limit"
	"github.com/xlbproject/xlb/dataplane/pool"
)

// maxDatagram is the largest UDP payload.
const maxDatagram = 65535

type sessionKey = netip.AddrPort

// udpListener is a UDP socket and its sessions, one per client address.
type udpListener struct {
	conn *net.UDPConn

	mu       sync.Mutex
	sessions map[sessionKey]*udpSession
}

func newUDPListener(c *net.UDPConn) *udpListener {
	return &udpListener{conn: c, sessions: make(map[sessionKey]*udpSession)}
}

// udpSession relays one client's datagrams to its backend and the backend's
// replies back, until it is idle for the listener's idle timeout.
type udpSession struct {
	l       *udpListener
	client  netip.AddrPort
	backend *pool.Backend
	conn    *net.UDPConn // connected to the backend
	act     *activity
	lim     *limit.LB // holds one of its connections
}

func (s *udpSession) forceClose() { _ = s.conn.Close() }

// readLoop reads client datagrams until the socket is closed, then ends the
// listener's sessions.
func (e *Engine) readLoop(l *listener) {
	u := l.udp
	defer u.closeSessions()
	buf := make([]byte, maxDatagram)
	for {
		n, client, err := u.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			e.log.Warn("l4 udp read failed", zap.Stringer("address", l.key.addr), zap.Error(err))
			continue
		}
		st := l.state.Load()
		s := e.session(u, st, client)
		if s == nil {
			continue
		}
		if _, err := s.conn.Write(buf[:n]); err != nil {
			// ICMP unreachable from the backend surfaces here.
			st.metrics.drop(reasonBackendError)
			continue
		}
		s.act.touch()
		st.metrics.pktsIn.Inc()
		st.metrics.bytesIn.Add(float64(n))
		// The listener's one read loop: pacing it paces all its clients.
		shaping{st.cfg.BandwidthIn, e.now}.pace(n)
	}
}

// session returns the client's session, creating it for a first datagram;
// nil means the datagram is dropped (and counted).
func (e *Engine) session(u *udpListener, st *listenerState, client netip.AddrPort) *udpSession {
	u.mu.Lock()
	s := u.sessions[client]
	n := len(u.sessions)
	u.mu.Unlock()
	if s != nil {
		return s
	}
	m := st.metrics
	src := client.Addr().Unmap()
	switch {
	case st.cfg.Stopped:
		m.drop(reasonStopped)
		return nil
	case !st.cfg.ACL.Allowed(src):
		m.drop(reasonACL)
		return nil
	case n >= st.maxSessions():
		m.drop(reasonSessionLimit)
		return nil
	}
	lim := st.cfg.Limits
	if ok, why := lim.Admit(e.now()); !ok {
		m.drop(limitReason(why))
		return nil
	}
	b, err := st.pool.PickSticky(src, flowKey(client))
	if err != nil {
		lim.Release()
		m.drop(reasonNoBackend)
		return nil
	}
	bc, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(b.AddrPort()))
	if err != nil {
		lim.Release()
		m.drop(reasonConnectFailed)
		e.log.Debug("l4 udp backend socket failed", zap.String("backend", b.ID()), zap.Error(err))
		return nil
	}
	s = &udpSession{l: u, client: client, backend: b, conn: bc, act: newActivity(), lim: lim}
	u.mu.Lock()
	u.sessions[client] = s
	u.mu.Unlock()
	b.Acquire()
	m.conns.Inc()
	m.active.Inc()
	e.conns.add(s)
	go e.relayReplies(s, st)
	return s
}

// relayReplies sends the backend's datagrams to the client until the session
// is idle or closed, then removes it.
func (e *Engine) relayReplies(s *udpSession, st *listenerState) {
	m := st.metrics
	defer func() {
		s.l.mu.Lock()
		if s.l.sessions[s.client] == s {
			delete(s.l.sessions, s.client)
		}
		s.l.mu.Unlock()
		_ = s.conn.Close()
		s.backend.Release()
		s.lim.Release()
		m.active.Dec()
		e.conns.remove(s)
	}()
	idle := st.cfg.IdleTimeout
	if idle <= 0 {
		idle = 300 * time.Second
	}
	buf := make([]byte, maxDatagram)
	for {
		_ = s.conn.SetReadDeadline(time.Now().Add(idle))
		n, err := s.conn.Read(buf)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) && !s.act.idleFor(idle) {
				continue // the client kept sending: not idle
			}
			if !errors.Is(err, os.ErrDeadlineExceeded) && !errors.Is(err, net.ErrClosed) {
				// ICMP errors from the backend: keep the session until idle.
				if isConnRefused(err) {
					m.drop(reasonBackendError)
					continue
				}
			}
			return
		}
		s.act.touch()
		if _, err := s.l.conn.WriteToUDPAddrPort(buf[:n], s.client); err != nil {
			return // the listener's socket is closed
		}
		m.pktsOut.Inc()
		m.bytesOut.Add(float64(n))
		shaping{st.cfg.BandwidthOut, e.now}.pace(n)
	}
}

func (u *udpListener) closeSessions() {
	u.mu.Lock()
	all := make([]*udpSession, 0, len(u.sessions))
	for _, s := range u.sessions {
		all = append(all, s)
	}
	u.mu.Unlock()
	for _, s := range all {
		s.forceClose()
	}
}
