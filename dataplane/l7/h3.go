package l7

import (
	"context"
	"io"
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
		writeErrorStream(&h3Stream{w: w, r: r}, http.StatusServiceUnavailable)
		return
	}
	h.handlers.Add(1)
	h.mu.Unlock()
	defer h.handlers.Done()
	peer, _ := r.Context().Value(h3PeerKey{}).(*h3Peer)
	if peer == nil {
		writeErrorStream(&h3Stream{w: w, r: r}, http.StatusInternalServerError)
		return
	}
	if r.ContentLength < 0 && bodiless(r.Method) {
		// HTTP/3 cannot tell at the head that no body follows; a GET's
		// body has no meaning, so it is not forwarded (HTTP/2 knows from
		// END_STREAM).
		r.Body = http.NoBody
	}
	x := &h2Exchange{e: h.e, l: h.l, st: h.l.state.Load(), rw: &h3Stream{w: w, r: r}, ip: peer.ip, proto: "h3"}
	x.req.fromHTTP(r)
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

// h3Stream is an HTTP/3 request as quic-go's server hands it over.
type h3Stream struct {
	w    http.ResponseWriter
	r    *http.Request
	stop func() bool
}

func (s *h3Stream) addField(name, value []byte) { s.w.Header().Add(string(name), string(value)) }
func (s *h3Stream) addHeader(name string, value []byte) {
	s.w.Header().Add(name, string(value))
}
func (s *h3Stream) setHeader(name string, value []byte) {
	s.w.Header().Set(name, string(value))
}
func (s *h3Stream) resetHeaders()               { clear(s.w.Header()) }
func (s *h3Stream) writeHeader(status int)      { s.w.WriteHeader(status) }
func (s *h3Stream) Write(p []byte) (int, error) { return s.w.Write(p) }
func (s *h3Stream) flush() error                { return http.NewResponseController(s.w).Flush() }

func (s *h3Stream) body() io.ReadCloser {
	if s.r.Body == nil || s.r.Body == http.NoBody || s.r.ContentLength == 0 {
		return nil
	}
	return s.r.Body
}

func (s *h3Stream) watch(c io.Closer) {
	s.stop = context.AfterFunc(s.r.Context(), func() { _ = c.Close() })
}

func (s *h3Stream) unwatch() bool { return s.stop() }
func (s *h3Stream) gone() bool    { return s.r.Context().Err() != nil }

// fromHTTP fills the parsed form from net/http's.
func (r *request) fromHTTP(hr *http.Request) {
	r.method = []byte(hr.Method)
	r.setTarget([]byte(hr.RequestURI))
	r.minor = 1
	r.host = []byte(hr.Host)
	var cookies []byte
	for name, vals := range hr.Header {
		nb := []byte(name)
		if classify(nb) == hCookie {
			for _, v := range vals {
				cookies = appendCookie(cookies, []byte(v))
			}
			continue
		}
		for _, v := range vals {
			r.addH2Field(nb, []byte(v))
		}
	}
	if cookies != nil {
		r.addH2Field([]byte("Cookie"), cookies)
	}
	switch {
	case hr.Body == nil || hr.Body == http.NoBody || hr.ContentLength == 0:
		r.framing = bodyNone
	case hr.ContentLength > 0:
		r.framing, r.contentLength = bodyLength, hr.ContentLength
	default:
		r.framing = bodyChunked
	}
}
