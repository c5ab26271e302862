package l7

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/xlbproject/xlb/dataplane/pool"
)

// streamIO is the client side of one HTTP/2 or HTTP/3 request as the
// exchange uses it: xlb's own HTTP/2 server and quic-go's HTTP/3 server
// each provide one.
type streamIO interface {
	// addField adds a response field as the backend named it, addHeader
	// one of xlb's; setHeader replaces the fields of that name;
	// resetHeaders drops them all. None may be called after writeHeader.
	addField(name, value []byte)
	addHeader(name string, value []byte)
	setHeader(name string, value []byte)
	resetHeaders()
	writeHeader(status int)
	// Write sends response body bytes; flush pushes out what is buffered.
	io.Writer
	flush() error
	// body is the request body, nil when it has none.
	body() io.ReadCloser
	// watch closes c if the client resets the stream or leaves, until
	// unwatch, which reports whether that had not happened.
	watch(c io.Closer)
	unwatch() bool
	// gone reports that the client reset the stream or left.
	gone() bool
}

// h2Exchange proxies one HTTP/2 or HTTP/3 request. The request arrives in
// the same parsed form as an HTTP/1.1 one, so routing, persistence and the
// backend request head are shared; the response goes out through the
// stream.
type h2Exchange struct {
	e  *Engine
	l  *listener
	st *listenerState
	rw streamIO
	ip []byte // the client's address as text
	// proto is "h2" or "h3", for the access log.
	proto string

	start    time.Time
	req      request
	out      []byte
	resp     response
	respHead []byte
	respBody body
	bytesIn  atomic.Int64 // request body bytes (the pump adds)
	bytesOut int64
	body     io.ReadCloser // nil: no request body
	num      [20]byte      // a Content-Length's digits
	bodyRead atomic.Bool
	abort    bool // the response was cut short: abort the stream
}

func (x *h2Exchange) serve() {
	x.start = time.Now()
	x.body = x.rw.body()
	st := x.st
	if !x.valid() {
		x.answer(http.StatusBadRequest, errBadRequest, "")
		return
	}
	switch {
	case st.cfg.Stopped:
		x.answer(http.StatusServiceUnavailable, errStopped, "")
		return
	case !st.cfg.Limits.AllowRequest(x.e.now()):
		x.answer(http.StatusServiceUnavailable, errRequests, "")
		return
	case string(x.req.method) == http.MethodConnect:
		x.answer(http.StatusMethodNotAllowed, errBadRequest, "")
		return
	case st.cfg.RedirectHTTPS != nil:
		x.redirect()
		return
	}
	var hostBuf [256]byte
	t := st.router.route(normalizeHost(hostBuf[:0], x.req.host), x.req.path)
	ps := st.persist
	var cs cookieState
	var prefer string
	var app []byte
	if ps.mode != PersistNone {
		cs, prefer, app = ps.requestCookie(x.req.hdrs)
		if cs == cookieForged {
			st.metrics.fail(errForgedCookie)
		}
	}
	buffered := x.req.framing == bodyNone
	retryable := buffered && idempotent(x.req.method)
	x.out = appendRequestHead(x.out[:0], st, &x.req, x.ip)
	var exclude *pool.Backend
	for attempt := 0; ; attempt++ {
		b, u, err := x.e.pick(t.pool, prefer, exclude, x.e.now())
		if err != nil {
			x.answer(http.StatusServiceUnavailable, errNoBackend, "")
			return
		}
		b.Acquire()
		u.lastUsed.Store(x.e.now())
		res := x.exchange(u, retryable && attempt == 0, buffered, cs, prefer, app)
		b.Release()
		if res != exRetry {
			return
		}
		exclude = b
	}
}

// valid checks what the HTTP/1.1 parser would: an origin-form target (or
// "*") and a well-formed host.
func (x *h2Exchange) valid() bool {
	t := x.req.target
	if len(t) == 0 || (t[0] != '/' && string(t) != "*") {
		return false
	}
	return validHost(x.req.host)
}

// setTarget sets the request's target and the path routing uses.
func (r *request) setTarget(target []byte) {
	r.target, r.path = target, target
	if i := bytes.IndexByte(target, '?'); i >= 0 {
		r.path = target[:i]
	}
}

// appendCookie joins one more HTTP/2 or HTTP/3 cookie field into the one
// HTTP/1.1 sends.
func appendCookie(dst, v []byte) []byte {
	if len(dst) > 0 {
		dst = append(dst, "; "...)
	}
	return append(dst, v...)
}

// writeErrorStream answers with xlb's error page.
func writeErrorStream(rw streamIO, code int) {
	rw.setHeader("Content-Type", []byte("text/plain; charset=utf-8"))
	rw.setHeader("Cache-Control", []byte("no-store"))
	rw.writeHeader(code)
	_, _ = rw.Write([]byte(errorBody(code)))
}

// addH2Field adds one HTTP/2 or HTTP/3 request field to the parsed form;
// cookie fields, which those may split, are joined by the caller.
func (r *request) addH2Field(name, value []byte) {
	kind := classify(name)
	r.hdrs = append(r.hdrs, header{name: name, value: value, kind: kind})
	if kind == hAcceptEncoding {
		r.acceptGzip = r.acceptGzip || acceptsGzip(value)
	}
}

func (x *h2Exchange) answer(code, reason int, backend string) {
	if reason >= 0 {
		x.st.metrics.fail(reason)
	}
	x.st.metrics.request(code)
	writeErrorStream(x.rw, code)
	x.bytesOut += int64(len(errorBody(code)))
	x.finish(code, backend)
}

func (x *h2Exchange) redirect() {
	rd := x.st.cfg.RedirectHTTPS
	var hostBuf [256]byte
	host := string(normalizeHost(hostBuf[:0], x.req.host))
	if host == "" {
		host = x.st.cfg.Addr.Addr().String()
	}
	loc := "https://" + host
	if rd.Port != 443 {
		loc += ":" + strconv.Itoa(int(rd.Port))
	}
	x.rw.setHeader("Location", append([]byte(loc), x.req.target...))
	x.rw.writeHeader(rd.Status)
	x.st.metrics.request(rd.Status)
	x.finish(rd.Status, "")
}

func (x *h2Exchange) finish(status int, backend string) {
	lm := x.st.metrics
	lm.duration.Observe(time.Since(x.start).Seconds())
	lm.bytesIn.Add(float64(x.bytesIn.Load()))
	lm.bytesOut.Add(float64(x.bytesOut))
	if x.e.access != nil {
		x.e.access.Info("request",
			zap.String("listener", x.st.cfg.Name),
			zap.ByteString("client", x.ip),
			zap.String("proto", x.proto),
			zap.ByteString("host", x.req.host),
			zap.ByteString("method", x.req.method),
			zap.ByteString("path", x.req.target),
			zap.Int("status", status),
			zap.String("backend", backend),
			zap.Duration("duration", time.Since(x.start)),
			zap.Int64("bytes", x.bytesOut),
		)
	}
}

func (x *h2Exchange) exchange(u *upstream, canRetry, buffered bool, cs cookieState, prefer string, app []byte) exResult {
	e, st := x.e, x.st
	id := u.b.ID()
	bc, err := e.connect(st, u, !canRetry)
	if err != nil {
		e.passiveFail(st, u)
		code, reason := http.StatusBadGateway, errBackendConnect
		if isTimeout(err) {
			code, reason = http.StatusGatewayTimeout, errBackendTimeout
		}
		st.metrics.fail(reason)
		if canRetry {
			return exRetry
		}
		x.answer(code, -1, id)
		return exClose
	}
	// A client that resets the stream ends the backend exchange too.
	x.rw.watch(bc.c)
	stop := x.rw.unwatch
	ustart := time.Now()
	if _, err := bc.rs.Write(x.out); err != nil {
		stop()
		bc.close()
		if bc.reused {
			u.flush()
			if canRetry {
				return exRetry
			}
		}
		e.passiveFail(st, u)
		x.answer(http.StatusBadGateway, errBackendConnect, id)
		return exClose
	}
	var pumpDone chan error
	if !buffered {
		pumpDone = make(chan error, 1)
		go x.pump(bc, pumpDone)
	}
	waitPump := func() bool {
		if pumpDone == nil {
			return true
		}
		if !x.bodyRead.Load() {
			_ = x.body.Close() // unblocks the pump's read
		}
		_ = bc.c.SetWriteDeadline(time.Now().Add(time.Second))
		err := <-pumpDone
		return err == nil && x.bodyRead.Load()
	}
	_ = bc.c.SetReadDeadline(ustart.Add(st.cfg.Timeouts.Request))
	resp := &x.resp
	for {
		head, err := bc.rd.readHead(MaxHeadBytes)
		if err == nil {
			x.respHead = append(x.respHead[:0], head...)
			err = parseResponse(x.respHead, resp)
		}
		if err != nil {
			stop()
			bc.close()
			waitPump()
			if x.rw.gone() {
				return exClose // the client left
			}
			if bc.reused && canRetry && isClosedBeforeResponse(err) {
				u.flush()
				return exRetry
			}
			e.passiveFail(st, u)
			code, reason := http.StatusBadGateway, errBadGateway
			if isTimeout(err) {
				code, reason = http.StatusGatewayTimeout, errBackendTimeout
			}
			x.answer(code, reason, id)
			return exClose
		}
		if resp.status >= 200 || resp.status == 101 {
			break
		}
		// Interim responses: net/http's server sends 100 Continue itself.
	}
	st.metrics.upstreamDuration.Observe(time.Since(ustart).Seconds())
	st.metrics.upstreamResponse(resp.status)
	if resp.status >= 500 {
		e.passiveFail(st, u)
	} else {
		u.succeeded()
	}
	if resp.status == 101 {
		stop()
		bc.close()
		waitPump()
		x.answer(http.StatusBadGateway, errBadGateway, id)
		return exClose
	}

	isHead := string(x.req.method) == http.MethodHead
	hasBody := resp.hasBody(isHead)
	framing := bodyNone
	if hasBody {
		framing = resp.framing
	}
	x.respBody.init(&bc.rd, framing, resp.contentLength)
	var sc *serverCookie
	ps := st.persist
	if ps.mode != PersistNone {
		sc = ps.cookies[id]
	}
	sawCookie := false
	for i := range resp.hdrs {
		f := &resp.hdrs[i]
		switch {
		case f.kind.hopByHop(), namedIn(resp.connTokens, f.name):
		case f.kind == hSetCookie:
			v, was := ps.appendSetCookieValue(nil, f.value, sc)
			sawCookie = sawCookie || was
			x.rw.addField(f.name, v)
		default:
			x.rw.addField(f.name, f.value)
		}
	}
	if v, ok := ps.appendBinding(nil, sc, cs, prefer, id, app, sawCookie); ok {
		x.rw.addHeader("Set-Cookie", v)
	}
	gz := gzipNo
	var probe []byte
	probed := false
	var bufp *[]byte
	if hasBody {
		gz = decideGzip(st.cfg.Gzip, x.req.acceptGzip, isHead, resp)
		bufp = e.bufs.copy.Get().(*[]byte)
		defer e.bufs.copy.Put(bufp)
	}
	if gz == gzipProbe {
		var err error
		if gz, probe, probed, err = probeGzip(&x.respBody, *bufp); err != nil {
			stop()
			bc.close()
			waitPump()
			x.rw.resetHeaders()
			e.passiveFail(st, u)
			x.answer(http.StatusBadGateway, errBadGateway, id)
			return exClose
		}
	}
	switch {
	case gz == gzipYes:
		x.rw.setHeader("Content-Encoding", []byte("gzip"))
		if !resp.varyAE {
			x.rw.addHeader("Vary", []byte("Accept-Encoding"))
		}
	case probed:
		x.rw.setHeader("Content-Length", strconv.AppendInt(x.num[:0], int64(len(probe)), 10))
	case resp.framing == bodyLength && resp.status >= 200 && resp.status != 204:
		x.rw.setHeader("Content-Length", strconv.AppendInt(x.num[:0], resp.contentLength, 10))
	}
	if st.altSvc != nil {
		x.rw.setHeader("Alt-Svc", []byte(st.altSvcValue()))
	}
	x.rw.writeHeader(resp.status)
	cw := &countWriter{w: x.rw}
	var werr, rerr error
	if hasBody {
		switch {
		case probed:
			_, werr = cw.Write(probe)
		case gz == gzipYes:
			zw := e.gzip.get(cw)
			if _, werr = zw.Write(probe); werr == nil {
				werr, rerr = x.copyBody(zw, cw, *bufp, bc)
			}
			if werr == nil && rerr == nil {
				werr = zw.Close()
			}
			e.gzip.put(zw)
		default:
			werr, rerr = x.copyBody(cw, cw, *bufp, bc)
		}
	}
	x.bytesOut += cw.n
	pumpOK := waitPump()
	reuse := stop() && werr == nil && rerr == nil && pumpOK && !resp.close && x.respBody.done && bc.rd.buffered() == 0
	if reuse {
		_ = bc.c.SetWriteDeadline(time.Time{})
		e.ups.put(bc, e.now())
	} else {
		bc.close()
	}
	if rerr != nil {
		st.metrics.fail(errBadGateway)
		e.passiveFail(st, u)
		x.abort = true
	}
	st.metrics.request(resp.status)
	x.finish(resp.status, id)
	return exClose
}

// countWriter counts and flushes: a response with no more bytes waiting at
// the backend is pushed out, so streams stream.
type countWriter struct {
	w streamIO
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func (c *countWriter) flush() error { return c.w.flush() }

func (x *h2Exchange) copyBody(dst io.Writer, cw *countWriter, buf []byte, bc *backendConn) (werr, rerr error) {
	idle := x.st.cfg.Timeouts.Idle
	src := &x.respBody
	var last time.Time
	for {
		if src.wouldBlock() {
			// About to wait on the backend: send what we have.
			if f, ok := dst.(interface{ Flush() error }); ok {
				if werr = f.Flush(); werr != nil {
					return werr, nil
				}
			}
			if werr = cw.flush(); werr != nil {
				return werr, nil
			}
			if now := time.Now(); now.Sub(last) > time.Second {
				_ = bc.c.SetReadDeadline(now.Add(idle))
				last = now
			}
		}
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr = dst.Write(buf[:n]); werr != nil {
				return werr, nil
			}
		}
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// pump streams the request body to the backend (see clientConn.startPump).
func (x *h2Exchange) pump(bc *backendConn, done chan<- error) {
	bufp := x.e.bufs.copy.Get().(*[]byte)
	defer x.e.bufs.copy.Put(bufp)
	buf := *bufp
	chunked := x.req.framing == bodyChunked
	bw := bufio.NewWriterSize(bc.c, writerBuf)
	var sent int64
	for {
		n, rerr := x.body.Read(buf)
		x.bytesIn.Add(int64(n))
		sent += int64(n)
		if errors.Is(rerr, io.EOF) || (!chunked && sent >= x.req.contentLength && rerr == nil) {
			x.bodyRead.Store(true)
		}
		if n > 0 {
			var werr error
			if chunked {
				if _, werr = (chunkedWriter{bw}).Write(buf[:n]); werr == nil {
					werr = bw.Flush()
				}
			} else {
				_, werr = bc.rs.Write(buf[:n])
			}
			if werr != nil {
				done <- werr
				return
			}
		}
		if x.bodyRead.Load() && (errors.Is(rerr, io.EOF) || !chunked) {
			var werr error
			if chunked {
				if werr = (chunkedWriter{bw}).close(); werr == nil {
					werr = bw.Flush()
				}
			}
			done <- werr
			return
		}
		if rerr != nil {
			_ = bc.c.Close()
			done <- rerr
			return
		}
	}
}
