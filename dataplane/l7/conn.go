package l7

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/xlbproject/xlb/dataplane/limit"
)

// Connection states, for closing idle keep-alive connections safely: the
// closer only closes a connection it moves from idle to closed, and a
// connection only serves a request it moved from idle to active.
const (
	connIdle int32 = iota
	connActive
	connClosed
)

// clientConn is one client's HTTP/1.1 connection. Everything a request
// needs is here and reused, so a keep-alive request allocates nothing.
type clientConn struct {
	e      *Engine
	l      *listener
	c      clientSocket
	client netip.AddrPort
	ip     []byte           // the client's address as text (X-Forwarded-For)
	lm     *listenerMetrics // where the connection is counted active

	cr       countingReader
	cw       countingWriter
	rd       reader
	req      request
	reqHead  []byte // the current request's head; req points into it
	resp     response
	respHead []byte
	out      []byte // the request head for the backend, then the response head
	hostBuf  [256]byte

	state   atomic.Int32
	backend atomic.Pointer[backendConn] // in use, for forceClose

	reqBody  body
	respBody body
	pumpDone chan error  // the request body pump's result
	bodyRead atomic.Bool // the pump read the whole request body
	pumpErr  bool        // the pump failed reading the client

	ipStr     string
	logFields [9]zap.Field

	headerTimeout time.Duration
	outStart      int64     // c.cw.n when the request started
	outPending    int64     // bytes of the answer still buffered, when counted
	wdl           bool      // a write deadline is set on the client connection
	handedOff     bool      // the connection went to the h2 server
	lim           *limit.LB // holds one of its connections; nil: unlimited
}

// clientSocket is a client's connection: TCP, or TLS over TCP (tls.go).
type clientSocket interface {
	net.Conn
	io.ReaderFrom // splices WebSocket bytes where it can
	CloseWrite() error
}

// countingReader and countingWriter count the client's bytes for
// xlb_http_bytes_total.
// With a shaper they also pace the connection to the listener's bandwidth:
// a read or write that ran ahead of the rate sleeps it off, which holds
// the client's TCP to the rate without dropping anything.
type countingReader struct {
	c   net.Conn
	n   int64
	sh  *limit.Shaper
	now func() int64
}

func (r *countingReader) Read(p []byte) (int, error) {
	n, err := r.c.Read(p)
	r.n += int64(n)
	if r.sh != nil {
		if d := r.sh.Take(n, r.now()); d > 0 {
			time.Sleep(d)
		}
	}
	return n, err
}

type countingWriter struct {
	c   net.Conn
	n   int64
	sh  *limit.Shaper
	now func() int64
}

func (w *countingWriter) Write(p []byte) (int, error) {
	n, err := w.c.Write(p)
	w.n += int64(n)
	if w.sh != nil {
		if d := w.sh.Take(n, w.now()); d > 0 {
			time.Sleep(d)
		}
	}
	return n, err
}

// acceptLoop accepts until the socket is closed.
func (e *Engine) acceptLoop(l *listener) {
	var backoff time.Duration
	for {
		c, err := l.ln.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// EMFILE and friends: back off instead of spinning.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			e.log.Warn("l7 accept failed", zap.Stringer("address", l.addr), zap.Error(err))
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		st := l.state.Load()
		client := c.RemoteAddr().(*net.TCPAddr).AddrPort()
		if !st.cfg.ACL.Allowed(client.Addr().Unmap()) {
			st.metrics.fail(errACL)
			_ = c.SetLinger(0)
			_ = c.Close()
			continue
		}
		if !e.admit(st, c) {
			continue
		}
		if st.tls != nil {
			e.acceptTLS(l, st, c, client)
			continue
		}
		cc := e.newClientConn(l, newRawTCP(c), client, st)
		e.conns.add(cc)
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			cc.serve()
		}()
	}
}

// admit applies the load balancer's connection limits to a new connection:
// over them it gets a 503 and is closed, counted by reason. An admitted
// connection holds one unit of max_connections until it ends.
func (e *Engine) admit(st *listenerState, c *net.TCPConn) bool {
	ok, why := st.cfg.Limits.Admit(e.now())
	if ok {
		return true
	}
	reason := errMaxConns
	if why == limit.NewConnections {
		reason = errNewConns
	}
	st.metrics.fail(reason)
	st.metrics.request(503)
	// A fresh socket's send buffer takes the short page at once; the
	// deadline only guards the accept loop against a pathological peer.
	_ = c.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
	_, _ = c.Write(e.errs.page(503, false))
	_ = c.Close()
	return false
}

// newClientConn makes the state of an admitted connection of l under st.
func (e *Engine) newClientConn(l *listener, c clientSocket, client netip.AddrPort, st *listenerState) *clientConn {
	lm := st.metrics
	cc := &clientConn{e: e, l: l, c: c, client: client, lm: lm,
		ip: client.Addr().Unmap().AppendTo(nil), pumpDone: make(chan error, 1)}
	cc.cr.c, cc.cw.c = c, c
	cc.cr.now, cc.cw.now = e.now, e.now
	cc.lim = st.cfg.Limits
	cc.cr.sh, cc.cw.sh = st.cfg.BandwidthIn, st.cfg.BandwidthOut
	cc.rd.init(&cc.cr, e.bufs)
	cc.rd.onStart, cc.rd.onWait = cc.startRequest, cc.waitHead
	lm.active.Inc()
	return cc
}

// serve reads and proxies requests until the connection ends.
func (c *clientConn) serve() {
	defer c.finish()
	first := true
	for {
		c.state.Store(connIdle)
		if c.l.closing.Load() {
			return
		}
		st := c.l.state.Load()
		c.rd.shrink()
		c.headerTimeout = st.cfg.Timeouts.Header
		if c.rd.buffered() == 0 {
			_ = c.c.SetReadDeadline(time.Now().Add(st.cfg.Timeouts.Idle))
		}
		inBefore := c.cr.n - int64(c.rd.buffered())
		head, err := c.rd.readHead(MaxHeadBytes)
		if c.state.Load() == connClosed {
			return
		}
		if err != nil {
			switch {
			case errors.Is(err, errHeadTooLarge):
				c.reject(st, errHeadTooLarge.status, errBadRequest, false)
			case c.state.Load() != connActive:
				// Idle keep-alive connection closed or timed out: normal.
			case isTimeout(err):
				// Started a head and did not finish it in time (slowloris).
				c.reject(st, 408, errBadRequest, false)
			default:
				// A head cut short by the client: nothing to answer.
				st.metrics.fail(errBadRequest)
			}
			return
		}
		if first && isH2Preface(head) {
			c.handOffH2(head)
			return
		}
		first = false
		c.reqHead = append(c.reqHead[:0], head...)
		keep := c.handle(st)
		st.metrics.bytesIn.Add(float64(c.cr.n - int64(c.rd.buffered()) - inBefore))
		if !keep {
			return
		}
	}
}

// startRequest runs when the first bytes of a request arrive: the
// connection is busy from now on.
func (c *clientConn) startRequest() { c.state.CompareAndSwap(connIdle, connActive) }

// waitHead runs when a started head needs more reads: the rest must come
// within the header timeout (a slowloris guard). A head that arrives in one
// read, the usual case, never pays for this deadline.
func (c *clientConn) waitHead() { _ = c.c.SetReadDeadline(time.Now().Add(c.headerTimeout)) }

// closeIfIdle closes the connection if it waits for a request.
func (c *clientConn) closeIfIdle() {
	if c.state.CompareAndSwap(connIdle, connClosed) {
		_ = c.c.Close()
	}
}

// forceClose ends the connection whatever it does (Drain's deadline).
func (c *clientConn) forceClose() {
	c.state.Store(connClosed)
	_ = c.c.Close()
	if bc := c.backend.Load(); bc != nil {
		_ = bc.c.Close()
	}
}

func (c *clientConn) finish() {
	if !c.handedOff {
		_ = c.c.Close()
		c.lm.active.Dec()
		c.lim.Release() // the h2 server releases a handed-off one
	}
	c.rd.release()
	c.e.conns.remove(c)
}

// handle serves one request whose head is in c.reqHead. It reports whether
// the connection may serve another.
func (c *clientConn) handle(st *listenerState) bool {
	start := time.Now()
	c.outStart = c.cw.n
	req := &c.req
	if err := parseRequest(c.reqHead, req); err != nil {
		pe, _ := err.(*parseError)
		if pe == nil {
			pe = errMalformed
		}
		c.reject(st, pe.status, errBadRequest, false)
		return false
	}
	switch {
	case st.cfg.ACL != nil && !st.cfg.ACL.Allowed(c.client.Addr().Unmap()):
		// A reload changed the list under a keep-alive connection.
		st.metrics.fail(errACL)
		return false
	case st.cfg.Stopped:
		return c.rejectRequest(st, 503, errStopped, start)
	case !st.cfg.Limits.AllowRequest(c.e.now()):
		return c.rejectRequest(st, 503, errRequests, start)
	case string(req.method) == "CONNECT":
		return c.rejectRequest(st, 405, errBadRequest, start)
	case st.cfg.RedirectHTTPS != nil:
		return c.redirect(st, start)
	}
	host := normalizeHost(c.hostBuf[:0], req.host)
	t := st.router.route(host, req.path)
	return c.proxy(st, t, start)
}

// bodyBuffered reports whether the whole request body is already read: it
// can then be resent, and skipped after an error answer.
func (c *clientConn) bodyBuffered() bool {
	r := &c.req
	return r.framing == bodyNone || (r.framing == bodyLength && int64(c.rd.buffered()) >= r.contentLength)
}

// rejectRequest answers a parsed request with the proxy's own error page.
func (c *clientConn) rejectRequest(st *listenerState, code, reason int, start time.Time) bool {
	keep := !c.req.close && c.bodyBuffered()
	if keep && c.req.framing == bodyLength {
		c.rd.discard(int(c.req.contentLength))
	}
	st.metrics.duration.Observe(time.Since(start).Seconds())
	keep = c.reject(st, code, reason, keep)
	c.logRequest(st, code, "", start)
	return keep
}

// reject writes an error page and counts it with its reason.
func (c *clientConn) reject(st *listenerState, code, reason int, keep bool) bool {
	st.metrics.fail(reason)
	return c.writePage(st, code, keep)
}

// writePage writes the proxy's answer code and counts it.
func (c *clientConn) writePage(st *listenerState, code int, keep bool) bool {
	keep = keep && !c.l.closing.Load()
	st.metrics.request(code)
	page := c.e.errs.page(code, keep)
	if string(c.req.method) == "HEAD" {
		page = page[:len(page)-len(errorBody(code))] // the head only
	}
	st.metrics.bytesOut.Add(float64(len(page)))
	_, err := c.cw.Write(page)
	return keep && err == nil
}

// redirect answers with the https location of the request.
func (c *clientConn) redirect(st *listenerState, start time.Time) bool {
	r := st.cfg.RedirectHTTPS
	req := &c.req
	keep := !req.close && c.bodyBuffered() && !c.l.closing.Load()
	if keep && req.framing == bodyLength {
		c.rd.discard(int(req.contentLength))
	}
	host := normalizeHost(c.hostBuf[:0], req.host)
	if len(host) == 0 {
		host = st.cfg.Addr.Addr().AppendTo(c.hostBuf[:0])
	}
	out := c.out[:0]
	if r.Status == 308 {
		out = append(out, "HTTP/1.1 308 Permanent Redirect\r\n"...)
	} else {
		out = append(out, "HTTP/1.1 301 Moved Permanently\r\n"...)
	}
	out = append(out, "Location: https://"...)
	out = append(out, host...)
	if r.Port != 443 {
		out = append(out, ':')
		out = appendUint(out, uint64(r.Port))
	}
	out = append(out, req.target...)
	out = append(out, "\r\nContent-Length: 0\r\n"...)
	if !keep {
		out = append(out, "Connection: close\r\n"...)
	}
	out = append(out, "\r\n"...)
	c.out = out
	st.metrics.request(r.Status)
	st.metrics.duration.Observe(time.Since(start).Seconds())
	st.metrics.bytesOut.Add(float64(len(out)))
	_, err := c.cw.Write(out)
	c.logRequest(st, r.Status, "", start)
	return keep && err == nil
}

// logRequest writes the access log line, when the engine keeps one. The
// fields live in the connection, so a line costs two allocations (the host
// and path bytes zap keeps as they are).
func (c *clientConn) logRequest(st *listenerState, status int, backend string, start time.Time) {
	if c.e.access == nil {
		return
	}
	ce := c.e.access.Check(zap.InfoLevel, "request")
	if ce == nil {
		return
	}
	if c.ipStr == "" {
		c.ipStr = string(c.ip)
	}
	f := &c.logFields
	f[0] = zap.String("listener", st.cfg.Name)
	f[1] = zap.String("client", c.ipStr)
	f[2] = zap.ByteString("host", c.req.host)
	f[3] = zap.String("method", methodName(c.req.method))
	f[4] = zap.ByteString("path", c.req.target)
	f[5] = zap.Int("status", status)
	f[6] = zap.String("backend", backend)
	f[7] = zap.Duration("duration", time.Since(start))
	f[8] = zap.Int64("bytes", c.cw.n+c.outPending-c.outStart)
	ce.Write(f[:]...)
}

// methodName returns the common methods as constants, sparing a copy.
func methodName(m []byte) string {
	switch string(m) {
	case "GET":
		return "GET"
	case "HEAD":
		return "HEAD"
	case "POST":
		return "POST"
	case "PUT":
		return "PUT"
	case "DELETE":
		return "DELETE"
	case "OPTIONS":
		return "OPTIONS"
	case "PATCH":
		return "PATCH"
	}
	return string(m)
}

// clientWriter borrows a buffered writer onto the client connection.
func (c *clientConn) clientWriter() *bufio.Writer {
	bw := c.e.bufs.writers.Get().(*bufio.Writer)
	bw.Reset(&c.cw)
	return bw
}

func (c *clientConn) releaseWriter(bw *bufio.Writer) {
	bw.Reset(nil)
	c.e.bufs.writers.Put(bw)
}

func appendUint(dst []byte, v uint64) []byte {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			break
		}
	}
	return append(dst, b[i:]...)
}
