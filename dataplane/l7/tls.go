package l7

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/xlbproject/xlb/dataplane/certs"
	"github.com/xlbproject/xlb/dataplane/vipsock"
)

// alpnTCP is what an https listener offers over TCP, preferred first.
var alpnTCP = []string{"h2", "http/1.1"}

// prepareTLS compiles an https state's certificates and binds the UDP
// socket of an HTTP/3 listener that has none yet.
func (e *Engine) prepareTLS(ctx context.Context, ch *Change, st *listenerState, old *listener) error {
	l := &st.cfg
	if l.TLS == nil {
		return nil
	}
	set := *l.TLS
	set.NextProtos = alpnTCP
	c, err := certs.Compile(set)
	if err != nil {
		return fmt.Errorf("listener %s: %w", l.Name, err)
	}
	st.tls = c
	if !l.HTTP3 {
		return nil
	}
	st.altSvc = []byte("Alt-Svc: " + altSvc(l.Addr.Port()) + "\r\n")
	if old != nil && old.h3 != nil {
		return nil
	}
	u, err := vipsock.ListenUDP(ctx, l.Addr.String())
	if err != nil {
		return fmt.Errorf("listener %s: binding udp %s for HTTP/3: %w", l.Name, l.Addr, err)
	}
	ch.udp[l.Addr] = u
	return nil
}

// altSvc advertises HTTP/3 on port for a day.
func altSvc(port uint16) string { return `h3=":` + strconv.Itoa(int(port)) + `"; ma=86400` }

// altSvcValue is the Alt-Svc field's value (without the name and CRLF).
func (st *listenerState) altSvcValue() string {
	return string(st.altSvc[len("Alt-Svc: ") : len(st.altSvc)-2])
}

// commitTLS gives the listener's handshakes the state's certificates (open
// connections keep theirs) and starts or stops HTTP/3 with the state.
// e.mu held.
func (e *Engine) commitTLS(ch *Change, l *listener, st *listenerState) {
	if st.tls != nil {
		if l.certs == nil {
			s, err := certs.NewStore(nil)
			if err != nil {
				// Only a failing random source gets here.
				e.log.Error("l7: TLS store", zap.String("listener", st.cfg.Name), zap.Error(err))
				return
			}
			l.certs = s
		}
		if err := l.certs.Set(st.tls); err != nil {
			e.log.Error("l7: TLS settings not applied", zap.String("listener", st.cfg.Name), zap.Error(err))
		}
	}
	switch {
	case st.cfg.HTTP3 && l.h3 == nil && ch.udp[l.addr] != nil:
		l.h3 = e.startH3(l, ch.udp[l.addr])
		delete(ch.udp, l.addr)
	case !st.cfg.HTTP3 && l.h3 != nil:
		h3 := l.h3
		l.h3 = nil
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			ctx, cancel := context.WithTimeout(e.ctx, st.cfg.Timeouts.Idle)
			defer cancel()
			h3.shutdown(ctx)
		}()
	}
}

// stopH3 ends the listener's HTTP/3 server, if it runs: GOAWAY, streams
// finish until ctx ends.
func (l *listener) stopH3(ctx context.Context) {
	if l.h3 != nil {
		l.h3.shutdown(ctx)
	}
}

// trackExpiry reports the expiry of every certificate in use. e.mu held.
func (e *Engine) trackExpiry() {
	all := map[string]time.Time{}
	for _, l := range e.listeners {
		st := l.state.Load()
		if st.cfg.TLS == nil {
			continue
		}
		for _, c := range st.cfg.TLS.Certificates {
			all[certID(c.ID, c.Leaf().Subject.CommonName)] = c.NotAfter
		}
		if ca := st.cfg.TLS.ClientCA; ca != nil {
			all[certID(ca.ID, "client CA")] = ca.NotAfter
		}
	}
	e.expiry.Set(all)
	e.expiry.Warn(e.log)
}

func certID(id, fallback string) string {
	if id != "" {
		return id
	}
	return fallback
}

// tlsJanitor rotates every https listener's session ticket keys each
// ticket lifetime (a ticket then decrypts for its whole life and no longer)
// and repeats the expiry warnings, until Drain.
func (e *Engine) tlsJanitor() {
	defer e.wg.Done()
	t := time.NewTicker(certs.TicketLifetime)
	defer t.Stop()
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-t.C:
		}
		e.mu.Lock()
		for _, l := range e.listeners {
			if l.certs == nil {
				continue
			}
			if err := l.certs.RotateTickets(); err != nil {
				e.log.Error("l7: session ticket key rotation", zap.Error(err))
			}
		}
		e.expiry.Warn(e.log)
		e.mu.Unlock()
	}
}

// acceptTLS completes an accepted connection's handshake on its own
// goroutine and serves it by ALPN: h2 on the listener's HTTP/2 server,
// anything else on the HTTP/1.1 path.
func (e *Engine) acceptTLS(l *listener, st *listenerState, c *net.TCPConn, client netip.AddrPort) {
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		tc := tls.Server(newRawTCP(c), l.certs.Config())
		ctx, cancel := context.WithTimeout(e.ctx, st.cfg.Timeouts.Header)
		err := tc.HandshakeContext(ctx)
		cancel()
		if err != nil {
			st.metrics.handshakes[hsFailed].Inc()
			e.log.Debug("l7 TLS handshake failed", zap.String("listener", st.cfg.Name),
				zap.Stringer("client", client), zap.Error(err))
			_ = c.Close()
			st.cfg.Limits.Release()
			return
		}
		_ = c.SetDeadline(time.Time{})
		cs := tc.ConnectionState()
		if cs.DidResume {
			st.metrics.handshakes[hsResumed].Inc()
		} else {
			st.metrics.handshakes[hsFull].Inc()
		}
		if l.closing.Load() {
			_ = tc.Close()
			st.cfg.Limits.Release()
			return
		}
		if cs.NegotiatedProtocol == "h2" {
			st.metrics.active.Inc()
			pc := &prefacedConn{Conn: tc, client: client, ip: client.Addr().Unmap().AppendTo(nil), lm: st.metrics, lim: st.cfg.Limits}
			if !l.h2.offer(pc) {
				pc.closed()
				_ = tc.Close()
			}
			return
		}
		cc := e.newClientConn(l, tlsSocket{tc}, client, st)
		e.conns.add(cc)
		cc.serve()
	}()
}

// tlsSocket is a TLS connection as the HTTP/1.1 path uses it.
type tlsSocket struct{ *tls.Conn }

// ReadFrom copies through user space: TLS cannot splice.
func (t tlsSocket) ReadFrom(r io.Reader) (int64, error) { return io.Copy(t.Conn, r) }
