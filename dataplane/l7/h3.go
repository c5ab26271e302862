package l7

import (
	"context"
	"net"
	"net/http"
	"sync"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"go.uber.org/zap"
)

// h3Server serves a listener's HTTP/3 on its UDP socket (the TCP port's
// number) with quic-go; requests take the HTTP/2 exchange: the same
// routing, persistence, headers, gzip, backends and metrics.
type h3Server struct {
	e   *Engine
	l   *listener
	udp *net.UDPConn
	srv *http3.Server

	mu       sync.Mutex
	stopped  bool
	handlers sync.WaitGroup
	done     chan struct{} // Serve returned
}

// h3Peer is what a QUIC connection's requests know of their client.
type h3Peer struct {
	ip []byte
}

type h3PeerKey struct{}

func (e *Engine) startH3(l *listener, udp *net.UDPConn) *h3Server {
	h := &h3Server{e: e, l: l, udp: udp, done: make(chan struct{})}
	idle := l.state.Load().cfg.Timeouts.Idle
	h.srv = &http3.Server{
		TLSConfig: l.certs.Config(),
		// No 0-RTT: early data can be replayed, and requests here are not
		// all idempotent.
		QUICConfig:     &quic.Config{MaxIdleTimeout: idle, Allow0RTT: false},
		Handler:        h,
		MaxHeaderBytes: MaxHeadBytes,
		IdleTimeout:    idle,
		ConnContext:    h.connContext,
	}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		defer close(h.done)
		if err := h.srv.Serve(udp); err != nil && err != http.ErrServerClosed {
			e.log.Warn("l7 HTTP/3 server stopped", zap.Stringer("address", l.addr), zap.Error(err))
		}
	}()
	e.log.Info("l7 HTTP/3 started", zap.String("listener", l.state.Load().cfg.Name), zap.Stringer("address", l.addr))
	return h
}

// connContext runs once per QUIC connection: the ACL, the active count and
// the handshake's result.
func (h *h3Server) connContext(ctx context.Context, c *quic.Conn) context.Context {
	st := h.l.state.Load()
	var client net.Addr = c.RemoteAddr()
	ua, _ := client.(*net.UDPAddr)
	peer := &h3Peer{}
	if ua != nil {
		ap := ua.AddrPort()
		if !st.cfg.ACL.Allowed(ap.Addr().Unmap()) {
			st.metrics.fail(errACL)
			_ = c.CloseWithError(0, "")
			return ctx
		}
		peer.ip = ap.Addr().Unmap().AppendTo(nil)
	}
	lm := st.metrics
	lm.active.Inc()
	context.AfterFunc(c.Context(), lm.active.Dec)
	go func() {
		select {
		case <-c.HandshakeComplete():
			if c.ConnectionState().TLS.DidResume {
				lm.handshakes[hsResumed].Inc()
			} else {
				lm.handshakes[hsFull].Inc()
			}
		case <-c.Context().Done():
			lm.handshakes[hsFailed].Inc()
		}
	}()
	return context.WithValue(ctx, h3PeerKey{}, peer)
}

func (h *h3Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	if h.stopped {
		h.mu.Unlock()
		writeErrorH2(w, http.StatusServiceUnavailable)
		return
	}
	h.handlers.Add(1)
	h.mu.Unlock()
	defer h.handlers.Done()
	peer, _ := r.Context().Value(h3PeerKey{}).(*h3Peer)
	if peer == nil {
		writeErrorH2(w, http.StatusInternalServerError)
		return
	}
	if r.ContentLength < 0 && bodiless(r.Method) {
		// HTTP/3 cannot tell at the head that no body follows; a GET's
		// body has no meaning, so it is not forwarded (HTTP/2 knows from
		// END_STREAM).
		r.Body = http.NoBody
	}
	x := &h2Exchange{e: h.e, l: h.l, st: h.l.state.Load(), w: w, r: r, ip: peer.ip, proto: "h3"}
	x.serve()
	if x.abort {
		panic(http.ErrAbortHandler)
	}
}

func bodiless(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return false
}

// shutdown sends GOAWAY, lets streams finish until ctx ends, closes the
// socket and waits for the handlers.
func (h *h3Server) shutdown(ctx context.Context) {
	_ = h.srv.Shutdown(ctx)
	_ = h.srv.Close()
	_ = h.udp.Close()
	<-h.done
	h.mu.Lock()
	h.stopped = true
	h.mu.Unlock()
	h.handlers.Wait()
}
