package l7

import (
	"bufio"
	"compress/gzip"
	"errors"
	"io"
	"time"

	"go.uber.org/zap"

	"github.com/xlbproject/xlb/dataplane/pool"
)

// pickAttempts bounds the picks spent skipping ejected or excluded backends.
const pickAttempts = 8

// aLongTimeAgo is a deadline in the past: it unblocks a pending read.
var aLongTimeAgo = time.Unix(1, 0)

// exResult is how one attempt at a backend ended.
type exResult uint8

const (
	exKeep  exResult = iota // answered; the client connection may continue
	exClose                 // answered (or failed); close the client connection
	exRetry                 // failed before anything was sent back: try another backend
)

// idempotent reports the idempotent methods of RFC 9110 9.2.2: a failed
// attempt may be repeated without changing the outcome.
func idempotent(m []byte) bool {
	switch string(m) {
	case "GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE":
		return true
	}
	return false
}

// pick chooses a backend: the cookie's if it is still eligible, else the
// scheduler's, skipping backends passive health ejected and the one a retry
// excludes. If every pick is skipped the last one is used anyway: a
// backend under suspicion beats a certain 503.
func (e *Engine) pick(p *pool.Pool, prefer string, exclude *pool.Backend, now int64) (*pool.Backend, *upstream, error) {
	var b *pool.Backend
	var u *upstream
	for i := range pickAttempts {
		var err error
		if i == 0 && prefer != "" {
			b, err = p.PickPreferred(prefer, 0)
		} else {
			b, err = p.Pick(0)
		}
		if err != nil {
			return nil, nil, err
		}
		u = e.ups.get(b)
		if b != exclude && !u.ejected(now) {
			return b, u, nil
		}
	}
	return b, u, nil
}

// passiveFail records a backend failure for passive health.
func (e *Engine) passiveFail(st *listenerState, u *upstream) {
	if u.failed(e.now(), e.opts.PassiveFailures, e.opts.PassiveCooldown) {
		st.metrics.ejected(u.b.ID())
		e.log.Warn("l7 backend ejected by passive health",
			zap.String("listener", st.cfg.Name), zap.String("backend", u.b.ID()),
			zap.Int("failures", e.opts.PassiveFailures), zap.Duration("cooldown", e.opts.PassiveCooldown))
	}
}

// connect returns a pooled connection to u or dials one. check forces a
// liveness check of a pooled connection (requests that cannot be retried).
func (e *Engine) connect(st *listenerState, u *upstream, check bool) (*backendConn, error) {
	if bc := e.ups.idleConn(u, e.now(), check); bc != nil {
		return bc, nil
	}
	return e.ups.dial(e.ctx, u, st.cfg.Timeouts.Connect)
}

// proxy forwards the parsed request to a backend of t and the response
// back, retrying once on another backend when that is safe.
func (c *clientConn) proxy(st *listenerState, t *target, start time.Time) bool {
	req := &c.req
	ps := st.persist
	var cs cookieState
	var prefer string
	var app []byte
	if ps.mode != PersistNone {
		cs, prefer, app = ps.requestCookie(req.hdrs)
		if cs == cookieForged {
			st.metrics.fail(errForgedCookie)
		}
	}
	// A body already read is sent with the head: the request can then be
	// replayed on another backend, and the connection kept after an error.
	buffered := c.bodyBuffered()
	retryable := buffered && !req.upgradeWS && idempotent(req.method)
	c.out = appendRequestHead(c.out[:0], st, req, c.ip)
	if buffered && req.framing == bodyLength {
		n := int(req.contentLength)
		c.out = append(c.out, c.rd.buf[c.rd.r:c.rd.r+n]...)
		c.rd.discard(n)
	}
	var exclude *pool.Backend
	for attempt := 0; ; attempt++ {
		b, u, err := c.e.pick(t.pool, prefer, exclude, c.e.now())
		if err != nil {
			return c.answerError(st, 503, errNoBackend, "", start, buffered) == exKeep
		}
		b.Acquire()
		u.lastUsed.Store(c.e.now())
		res := c.exchange(st, u, retryable && attempt == 0, buffered, start, cs, prefer, app)
		b.Release()
		if res != exRetry {
			return res == exKeep
		}
		exclude = b
	}
}

// answerError answers with an error page; reason < 0 is already counted.
// bodyDone says the request body is consumed, so the connection may stay.
func (c *clientConn) answerError(st *listenerState, code, reason int, backend string, start time.Time, bodyDone bool) exResult {
	if reason >= 0 {
		st.metrics.fail(reason)
	}
	st.metrics.duration.Observe(time.Since(start).Seconds())
	keep := c.writePage(st, code, bodyDone && !c.req.close)
	c.logRequest(st, code, backend, start)
	if keep {
		return exKeep
	}
	return exClose
}

// exchange makes one attempt at backend u.
func (c *clientConn) exchange(st *listenerState, u *upstream, canRetry, buffered bool, start time.Time,
	cs cookieState, prefer string, app []byte) exResult {
	e := c.e
	req := &c.req
	bc, err := e.connect(st, u, !canRetry)
	if err != nil {
		e.passiveFail(st, u)
		code, reason := 502, errBackendConnect
		if isTimeout(err) {
			code, reason = 504, errBackendTimeout
		}
		st.metrics.fail(reason)
		if canRetry {
			return exRetry
		}
		e.log.Debug("l7 backend connect failed", zap.String("backend", u.b.ID()), zap.Error(err))
		return c.answerError(st, code, -1, u.b.ID(), start, buffered)
	}
	c.backend.Store(bc)
	defer c.backend.Store(nil)

	ustart := time.Now()
	// A head with a large buffered body could fill the socket of a backend
	// that does not read: bound that write.
	bigWrite := len(c.out) > smallBuf
	if bigWrite {
		_ = bc.c.SetWriteDeadline(ustart.Add(st.cfg.Timeouts.Request))
	}
	_, err = bc.rs.Write(c.out)
	if bigWrite && err == nil {
		err = bc.c.SetWriteDeadline(time.Time{})
	}
	if err != nil {
		bc.close()
		if bc.reused {
			u.flush() // found closed: its pool mates are likely dead too
			if canRetry {
				return exRetry
			}
		}
		e.passiveFail(st, u)
		return c.answerError(st, 502, errBackendConnect, u.b.ID(), start, buffered)
	}
	pumping := !buffered
	if pumping {
		c.startPump(bc, st.cfg.Timeouts.Idle)
	}
	_ = bc.c.SetReadDeadline(ustart.Add(st.cfg.Timeouts.Request))
	resp := &c.resp
	for {
		head, err := bc.rd.readHead(MaxHeadBytes)
		if err == nil {
			c.respHead = append(c.respHead[:0], head...)
			err = parseResponse(c.respHead, resp)
		}
		if err != nil {
			bc.close()
			if pumping && !c.stopPump(bc) && c.pumpErr {
				// The client went away while sending its body.
				st.metrics.fail(errBadRequest)
				return exClose
			}
			if bc.reused && canRetry && isClosedBeforeResponse(err) {
				u.flush()
				return exRetry
			}
			e.passiveFail(st, u)
			code, reason := 502, errBadGateway
			if isTimeout(err) {
				code, reason = 504, errBackendTimeout
			}
			return c.answerError(st, code, reason, u.b.ID(), start, buffered)
		}
		if resp.status >= 200 || resp.status == 101 {
			break
		}
		// An interim response: 100 Continue goes to a client that asked.
		if req.minor == 1 && (resp.status != 100 || req.expect100) {
			if _, err := c.cw.Write(c.respHead); err != nil {
				bc.close()
				if pumping {
					c.stopPump(bc)
				}
				return exClose
			}
		}
	}
	st.metrics.upstreamDuration.Observe(time.Since(ustart).Seconds())
	st.metrics.upstreamResponse(resp.status)
	if resp.status >= 500 {
		e.passiveFail(st, u)
	} else {
		u.succeeded()
	}
	if resp.status == 101 {
		if req.upgradeWS && resp.upgradeWS && !pumping {
			c.websocket(st, bc, start)
			return exClose
		}
		bc.close()
		if pumping {
			c.stopPump(bc)
		}
		return c.answerError(st, 502, errBadGateway, u.b.ID(), start, false)
	}
	return c.respond(st, bc, pumping, start, cs, prefer, app)
}

// respond writes the backend's response to the client and settles both
// connections.
func (c *clientConn) respond(st *listenerState, bc *backendConn, pumping bool, start time.Time,
	cs cookieState, prefer string, app []byte) exResult {
	e := c.e
	req, resp := &c.req, &c.resp
	id := bc.up.b.ID()
	isHead := string(req.method) == "HEAD"
	hasBody := resp.hasBody(isHead)
	framing := bodyNone
	if hasBody {
		framing = resp.framing
	}
	c.respBody.init(&bc.rd, framing, resp.contentLength)
	keep := !req.close && !c.l.closing.Load() && !e.draining.Load()

	gz := gzipNo
	var bufp *[]byte
	var probe []byte
	probed := false // the whole body is in probe
	var rerr, werr error
	if hasBody {
		gz = decideGzip(st.cfg.Gzip, req.acceptGzip, isHead, resp)
		bufp = e.bufs.copy.Get().(*[]byte)
		defer e.bufs.copy.Put(bufp)
	}
	if gz == gzipProbe {
		// Unknown length: read up to the threshold to decide.
		var err error
		if gz, probe, probed, err = probeGzip(&c.respBody, *bufp); err != nil {
			bc.close()
			if pumping {
				c.stopPump(bc)
			}
			e.passiveFail(st, bc.up)
			return c.answerError(st, 502, errBadGateway, id, start, !pumping)
		}
	}

	// The head: the backend's status and fields, minus the hop-by-hop ones,
	// plus persistence, compression and our own framing.
	chunked := false
	out := append(c.out[:0], "HTTP/1.1 "...)
	out = appendUint(out, uint64(resp.status))
	out = append(out, ' ')
	out = append(out, resp.reason...)
	out = append(out, "\r\n"...)
	var sc *serverCookie
	if st.persist.mode != PersistNone {
		sc = st.persist.cookies[id]
	}
	sawCookie := false
	for i := range resp.hdrs {
		f := &resp.hdrs[i]
		switch {
		case f.kind.hopByHop(), namedIn(resp.connTokens, f.name):
			continue
		case f.kind == hSetCookie:
			var was bool
			out = append(out, f.name...)
			out = append(out, ": "...)
			out, was = st.persist.appendSetCookieValue(out, f.value, sc)
			out = append(out, "\r\n"...)
			sawCookie = sawCookie || was
			continue
		}
		out = appendField(out, f.name, f.value)
	}
	if sc != nil {
		mark := len(out)
		var ok bool
		out = append(out, "Set-Cookie: "...)
		if out, ok = st.persist.appendBinding(out, sc, cs, prefer, id, app, sawCookie); ok {
			out = append(out, "\r\n"...)
		} else {
			out = out[:mark]
		}
	}
	switch {
	case gz == gzipYes:
		out = append(out, "Content-Encoding: gzip\r\n"...)
		out = appendVary(out, resp)
		chunked = req.minor == 1
		keep = keep && chunked
	case probed:
		out = append(out, "Content-Length: "...)
		out = appendUint(out, uint64(len(probe)))
		out = append(out, "\r\n"...)
	case resp.framing == bodyLength && resp.status >= 200 && resp.status != 204:
		out = append(out, "Content-Length: "...)
		out = appendUint(out, uint64(resp.contentLength))
		out = append(out, "\r\n"...)
	case hasBody:
		chunked = req.minor == 1
		keep = keep && chunked
	}
	if chunked {
		out = append(out, "Transfer-Encoding: chunked\r\n"...)
	}
	out = append(out, st.altSvc...)
	if !keep {
		out = append(out, "Connection: close\r\n"...)
	} else if req.minor == 0 {
		out = append(out, "Connection: keep-alive\r\n"...)
	}
	out = append(out, "\r\n"...)
	c.out = out

	bw := c.clientWriter()
	_, werr = bw.Write(out)
	if werr == nil && hasBody {
		var dst io.Writer = bw
		if chunked {
			dst = chunkedWriter{bw}
		}
		switch {
		case probed:
			_, werr = dst.Write(probe)
		case gz == gzipYes:
			zw := e.gzip.get(dst)
			if _, werr = zw.Write(probe); werr == nil {
				werr, rerr = c.copyBody(zw, &c.respBody, *bufp, bc, st.cfg.Timeouts.Idle, bw, zw)
			}
			if werr == nil && rerr == nil {
				werr = zw.Close()
			}
			e.gzip.put(zw)
		default:
			werr, rerr = c.copyBody(dst, &c.respBody, *bufp, bc, st.cfg.Timeouts.Idle, bw, nil)
		}
		if chunked && werr == nil && rerr == nil {
			werr = chunkedWriter{bw}.close()
		}
	}
	// The backend's answer is all read: its connection goes back to the
	// pool before the client's last bytes go out, so the client's next
	// request finds it there.
	reusable := rerr == nil && !resp.close && c.respBody.done && bc.rd.buffered() == 0
	returned := false
	if reusable && !pumping {
		c.backend.Store(nil)
		e.ups.put(bc, e.now())
		returned = true
	}
	// Counted before the last bytes go out: a client holding its answer
	// finds it in the metrics and the log.
	if rerr == nil && werr == nil {
		c.outPending = int64(bw.Buffered())
		c.countResponse(st, resp.status, id, start)
		c.outPending = 0
		werr = bw.Flush()
	}
	c.releaseWriter(bw)
	if c.wdl {
		_ = c.c.SetWriteDeadline(time.Time{})
		c.wdl = false
	}

	pumpOK := true
	if pumping {
		pumpOK = c.stopPump(bc)
	}
	switch {
	case returned:
	case reusable && pumpOK:
		_ = bc.c.SetWriteDeadline(time.Time{})
		e.ups.put(bc, e.now())
	default:
		bc.close()
	}
	if rerr != nil {
		// The backend failed inside the body: the client has a truncated
		// answer, which the closed connection tells it.
		st.metrics.fail(errBadGateway)
		e.passiveFail(st, bc.up)
	}
	if rerr != nil || werr != nil {
		c.countResponse(st, resp.status, id, start)
	}
	if !keep || werr != nil || rerr != nil || !pumpOK {
		return exClose
	}
	return exKeep
}

// copyBody copies a decoded body to dst. Before a read has to wait on the
// backend, what is written so far goes out (zw, the compressor, if any, then
// bw), so streamed answers stream; and the deadlines move forward. A small
// buffered body pays for neither.
func (c *clientConn) copyBody(dst io.Writer, src *body, buf []byte, bc *backendConn, idle time.Duration,
	bw *bufio.Writer, zw *gzip.Writer) (werr, rerr error) {
	var last time.Time
	for {
		if src.wouldBlock() {
			if zw != nil {
				if werr = zw.Flush(); werr != nil {
					return werr, nil
				}
			}
			if werr = bw.Flush(); werr != nil {
				return werr, nil
			}
			if now := time.Now(); now.Sub(last) > time.Second {
				_ = bc.c.SetReadDeadline(now.Add(idle))
				_ = c.c.SetWriteDeadline(now.Add(idle))
				c.wdl, last = true, now
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

// startPump streams the request body to the backend while the response is
// read, so a backend that answers as it reads (an echo, an upload that
// fails early) never deadlocks against the proxy.
func (c *clientConn) startPump(bc *backendConn, idle time.Duration) {
	c.bodyRead.Store(false)
	c.pumpErr = false
	c.reqBody.init(&c.rd, c.req.framing, c.req.contentLength)
	go c.pump(bc, idle)
}

func (c *clientConn) pump(bc *backendConn, idle time.Duration) {
	bufp := c.e.bufs.copy.Get().(*[]byte)
	defer c.e.bufs.copy.Put(bufp)
	buf := *bufp
	body := &c.reqBody
	chunked := body.framing == bodyChunked
	var bw *bufio.Writer
	if chunked {
		bw = c.e.bufs.writers.Get().(*bufio.Writer)
		bw.Reset(&bc.rs)
		defer func() {
			bw.Reset(nil)
			c.e.bufs.writers.Put(bw)
		}()
	}
	var last time.Time
	for {
		if body.wouldBlock() {
			if now := time.Now(); now.Sub(last) > time.Second {
				_ = c.c.SetReadDeadline(now.Add(idle))
				_ = bc.c.SetWriteDeadline(now.Add(idle))
				last = now
			}
		}
		n, rerr := body.Read(buf)
		if body.done {
			c.bodyRead.Store(true)
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
				c.pumpDone <- werr
				return
			}
		}
		if errors.Is(rerr, io.EOF) {
			var werr error
			if chunked {
				if werr = (chunkedWriter{bw}).close(); werr == nil {
					werr = bw.Flush()
				}
			}
			c.pumpDone <- werr
			return
		}
		if rerr != nil {
			// The client failed: end the exchange (the response read fails).
			c.pumpErr = true
			_ = bc.c.Close()
			c.pumpDone <- rerr
			return
		}
	}
}

// stopPump waits for the pump once the response has ended or failed. A pump
// still reading the client (the backend answered before the body was all
// sent) is cut off. It reports whether the whole body went to the backend.
func (c *clientConn) stopPump(bc *backendConn) bool {
	if !c.bodyRead.Load() {
		_ = c.c.SetReadDeadline(aLongTimeAgo)
	}
	_ = bc.c.SetWriteDeadline(time.Now().Add(time.Second))
	err := <-c.pumpDone
	return err == nil && c.bodyRead.Load()
}

// namedIn reports whether name is one of the Connection field's tokens.
func namedIn(tokens [][]byte, name []byte) bool {
	for _, t := range tokens {
		if equalFoldBytes(t, name) {
			return true
		}
	}
	return false
}

// countResponse records a proxied answer in the metrics and the access log.
func (c *clientConn) countResponse(st *listenerState, status int, backend string, start time.Time) {
	st.metrics.request(status)
	st.metrics.duration.Observe(time.Since(start).Seconds())
	st.metrics.bytesOut.Add(float64(c.cw.n + c.outPending - c.outStart))
	c.logRequest(st, status, backend, start)
}

// appendRequestHead renders the request head sent to a backend: always
// HTTP/1.1, hop-by-hop fields dropped, the configured headers set, the
// persistence cookie stripped, and the framing the proxy will use.
func appendRequestHead(dst []byte, st *listenerState, req *request, clientIP []byte) []byte {
	h := &st.cfg.Headers
	dst = append(dst, req.method...)
	dst = append(dst, ' ')
	dst = append(dst, req.target...)
	dst = append(dst, " HTTP/1.1\r\nHost: "...)
	if len(req.host) > 0 {
		dst = append(dst, req.host...)
	} else {
		dst = st.cfg.Addr.AppendTo(dst)
	}
	dst = append(dst, "\r\n"...)
	for i := range req.hdrs {
		f := &req.hdrs[i]
		switch f.kind {
		case hHost:
			continue
		case hXForwardedFor:
			if h.XForwardedFor {
				continue // rendered below, with the client appended
			}
		case hXForwardedProto:
			if h.XForwardedProto {
				continue
			}
		case hXLBIP:
			if h.LBIP {
				continue
			}
		case hXLBID:
			if h.LBID {
				continue
			}
		case hCookie:
			dst = st.persist.appendCookieField(dst, f)
			continue
		default:
			if f.kind.hopByHop() {
				continue
			}
		}
		if namedIn(req.connTokens, f.name) {
			continue
		}
		dst = appendField(dst, f.name, f.value)
	}
	if h.XForwardedFor {
		dst = append(dst, "X-Forwarded-For: "...)
		for i := range req.hdrs {
			if f := &req.hdrs[i]; f.kind == hXForwardedFor && len(f.value) > 0 {
				dst = append(dst, f.value...)
				dst = append(dst, ", "...)
			}
		}
		dst = append(dst, clientIP...)
		dst = append(dst, "\r\n"...)
	}
	if h.XForwardedProto {
		dst = append(dst, st.xfProto...)
	}
	if h.LBIP {
		dst = append(dst, st.lbIP...)
	}
	if h.LBID {
		dst = append(dst, st.lbID...)
	}
	if req.upgradeWS {
		dst = append(dst, "Connection: Upgrade\r\nUpgrade: websocket\r\n"...)
	}
	switch req.framing {
	case bodyLength:
		dst = append(dst, "Content-Length: "...)
		dst = appendUint(dst, uint64(req.contentLength))
		dst = append(dst, "\r\n"...)
	case bodyChunked:
		dst = append(dst, "Transfer-Encoding: chunked\r\n"...)
	}
	return append(dst, "\r\n"...)
}
