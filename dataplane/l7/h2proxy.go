package l7

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/xlbproject/xlb/dataplane/pool"
)

// h2Exchange proxies one HTTP/2 request. The request is turned into the
// same parsed form as an HTTP/1.1 one, so routing, persistence and the
// backend request head are shared; the response goes out through net/http.
type h2Exchange struct {
	e  *Engine
	l  *listener
	st *listenerState
	w  http.ResponseWriter
	r  *http.Request
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
	bodyRead atomic.Bool
	abort    bool // the response was cut short: abort the stream
}

func (x *h2Exchange) serve() {
	x.start = time.Now()
	st := x.st
	if !x.parse() {
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
	case x.r.Method == http.MethodConnect:
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
	x.out = appendRequestHead(nil, st, &x.req, x.ip)
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

// parse turns the HTTP/2 request into the parsed HTTP/1.1 form.
func (x *h2Exchange) parse() bool {
	r := x.r
	req := &x.req
	req.method = []byte(r.Method)
	req.target = []byte(r.RequestURI)
	if len(req.target) == 0 || (req.target[0] != '/' && r.RequestURI != "*") {
		return false
	}
	req.path = req.target
	for i, c := range req.target {
		if c == '?' {
			req.path = req.target[:i]
			break
		}
	}
	req.minor = 1
	req.host = []byte(r.Host)
	if !validHost(req.host) {
		return false
	}
	var cookies []byte
	for name, vals := range r.Header {
		nb := []byte(name)
		kind := classify(nb)
		if kind == hCookie {
			// HTTP/2 may split cookies into several fields: one for HTTP/1.1.
			for _, v := range vals {
				if len(cookies) > 0 {
					cookies = append(cookies, "; "...)
				}
				cookies = append(cookies, v...)
			}
			continue
		}
		for _, v := range vals {
			req.hdrs = append(req.hdrs, header{name: nb, value: []byte(v), kind: kind})
			if kind == hAcceptEncoding {
				req.acceptGzip = req.acceptGzip || acceptsGzip([]byte(v))
			}
		}
	}
	if cookies != nil {
		req.hdrs = append(req.hdrs, header{name: []byte("Cookie"), value: cookies, kind: hCookie})
	}
	switch {
	case r.Body == nil || r.Body == http.NoBody:
		req.framing = bodyNone
	case r.ContentLength > 0:
		req.framing, req.contentLength = bodyLength, r.ContentLength
	case r.ContentLength == 0:
		req.framing = bodyNone
	default:
		req.framing = bodyChunked
	}
	return true
}

func (x *h2Exchange) answer(code, reason int, backend string) {
	if reason >= 0 {
		x.st.metrics.fail(reason)
	}
	x.st.metrics.request(code)
	writeErrorH2(x.w, code)
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
	x.w.Header().Set("Location", loc+x.r.RequestURI)
	x.w.WriteHeader(rd.Status)
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
			zap.String("host", x.r.Host),
			zap.String("method", x.r.Method),
			zap.String("path", x.r.RequestURI),
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
	stop := context.AfterFunc(x.r.Context(), func() { _ = bc.c.Close() })
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
			_ = x.r.Body.Close() // unblocks the pump's read
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
			if x.r.Context().Err() != nil {
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

	isHead := x.r.Method == http.MethodHead
	hasBody := resp.hasBody(isHead)
	framing := bodyNone
	if hasBody {
		framing = resp.framing
	}
	x.respBody.init(&bc.rd, framing, resp.contentLength)
	hdr := x.w.Header()
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
			hdr.Add("Set-Cookie", string(v))
		default:
			hdr.Add(string(f.name), string(f.value))
		}
	}
	if v, ok := ps.appendBinding(nil, sc, cs, prefer, id, app, sawCookie); ok {
		hdr.Add("Set-Cookie", string(v))
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
			clear(hdr)
			e.passiveFail(st, u)
			x.answer(http.StatusBadGateway, errBadGateway, id)
			return exClose
		}
	}
	switch {
	case gz == gzipYes:
		hdr.Set("Content-Encoding", "gzip")
		if !resp.varyAE {
			hdr.Add("Vary", "Accept-Encoding")
		}
	case probed:
		hdr.Set("Content-Length", strconv.Itoa(len(probe)))
	case resp.framing == bodyLength && resp.status >= 200 && resp.status != 204:
		hdr.Set("Content-Length", strconv.FormatInt(resp.contentLength, 10))
	}
	if st.altSvc != nil {
		hdr.Set("Alt-Svc", st.altSvcValue())
	}
	x.w.WriteHeader(resp.status)
	cw := &countWriter{w: x.w}
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
	w http.ResponseWriter
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func (c *countWriter) flush() error { return http.NewResponseController(c.w).Flush() }

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
		n, rerr := x.r.Body.Read(buf)
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
