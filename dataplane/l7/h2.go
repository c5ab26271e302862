package l7

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"sync"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/xlbproject/xlb/dataplane/limit"
)

// h2Preface is what an HTTP/2 client with prior knowledge sends first, as
// the HTTP/1 head reader delimits it (the "SM\r\n\r\n" rest follows).
const h2Preface = "PRI * HTTP/2.0\r\n\r\n"

func isH2Preface(head []byte) bool { return string(head) == h2Preface }

// handOffH2 gives the connection to the listener's h2 server, with the
// bytes already read replayed first.
func (c *clientConn) handOffH2(head []byte) {
	pending := make([]byte, 0, len(head)+c.rd.buffered())
	pending = append(pending, head...)
	pending = append(pending, c.rd.buf[c.rd.r:c.rd.w]...)
	c.rd.discard(c.rd.buffered())
	st := c.l.state.Load()
	c.lm.bytesIn.Add(float64(c.cr.n))
	pc := &prefacedConn{Conn: c.c, pending: pending, client: c.client, ip: c.ip, lm: c.lm, lim: c.lim}
	c.handedOff = c.l.h2.offer(pc)
	if !c.handedOff {
		st.metrics.fail(errStopped)
	}
}

// prefacedConn is a client connection handed to the h2 server with the
// bytes the HTTP/1 reader had already taken from it.
type prefacedConn struct {
	net.Conn // TCP (h2c) or TLS (ALPN h2); never a *tls.Conn to net/http, so it speaks h2 by prior knowledge
	pending  []byte
	client   netip.AddrPort
	ip       []byte
	lm       *listenerMetrics // counted active since accept
	lim      *limit.LB        // holds one of its connections since accept
	once     sync.Once
}

func (p *prefacedConn) Read(b []byte) (int, error) {
	if len(p.pending) > 0 {
		n := copy(b, p.pending)
		p.pending = p.pending[n:]
		return n, nil
	}
	return p.Conn.Read(b)
}

// closed ends the connection's active count once.
func (p *prefacedConn) closed() {
	p.once.Do(func() {
		p.lm.active.Dec()
		p.lim.Release()
	})
}

// chanListener feeds the h2 server the connections handed off to it.
type chanListener struct {
	addr net.Addr
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }

// offer hands c over; false once the listener is closed.
func (l *chanListener) offer(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.done:
		return false
	}
}

// h2Server serves a listener's h2c connections with net/http's HTTP/2
// server; requests go through the same routing, persistence, headers, gzip,
// backends and metrics as HTTP/1.1.
type h2Server struct {
	e   *Engine
	l   *listener
	srv *http.Server
	ln  *chanListener

	mu       sync.Mutex
	stopped  bool
	handlers sync.WaitGroup
}

type connCtxKey struct{}

func (e *Engine) newH2Server(l *listener) *h2Server {
	h := &h2Server{e: e, l: l, ln: newChanListener(net.TCPAddrFromAddrPort(l.addr))}
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	errLog, _ := zap.NewStdLogAt(e.log.Named("h2"), zapcore.DebugLevel)
	h.srv = &http.Server{
		Handler:   h,
		Protocols: &protos,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, connCtxKey{}, c)
		},
		ConnState: func(c net.Conn, s http.ConnState) {
			if pc, ok := c.(*prefacedConn); ok && (s == http.StateClosed || s == http.StateHijacked) {
				pc.closed()
			}
		},
		// Frames no larger than the protocol's default: a client that sends
		// bigger ones without being told it may is refused (FRAME_SIZE_ERROR).
		HTTP2:          &http.HTTP2Config{MaxReadFrameSize: 16 << 10},
		IdleTimeout:    l.state.Load().cfg.Timeouts.Idle,
		MaxHeaderBytes: MaxHeadBytes,
		ErrorLog:       errLog,
	}
	return h
}

func (h *h2Server) offer(c *prefacedConn) bool { return h.ln.offer(c) }

func (h *h2Server) serve() { _ = h.srv.Serve(h.ln) }

// shutdown sends GOAWAY, lets streams finish until ctx ends, closes what is
// left and waits for every handler.
func (h *h2Server) shutdown(ctx context.Context) {
	if err := h.srv.Shutdown(ctx); err != nil {
		_ = h.srv.Close()
	}
	_ = h.ln.Close()
	h.mu.Lock()
	h.stopped = true
	h.mu.Unlock()
	h.handlers.Wait()
}

func (h *h2Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	if h.stopped {
		h.mu.Unlock()
		writeErrorH2(w, http.StatusServiceUnavailable)
		return
	}
	h.handlers.Add(1)
	h.mu.Unlock()
	defer h.handlers.Done()
	pc, _ := r.Context().Value(connCtxKey{}).(*prefacedConn)
	if pc == nil {
		writeErrorH2(w, http.StatusInternalServerError)
		return
	}
	x := &h2Exchange{e: h.e, l: h.l, st: h.l.state.Load(), w: w, r: r, ip: pc.ip, proto: "h2"}
	x.serve()
	if x.abort {
		// The backend failed inside the body: reset the stream so the
		// client sees the answer is truncated.
		panic(http.ErrAbortHandler)
	}
}

func writeErrorH2(w http.ResponseWriter, code int) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(errorBody(code)))
}
