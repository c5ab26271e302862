package l7

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
)

// errStreamReset ends a stream's work when the client reset it or the
// connection ended.
var errStreamReset = errors.New("http2: stream reset")

// h2Stream is one request on an HTTP/2 connection: the read loop fills its
// request and body, a worker runs its exchange and writes its response. It
// is the exchange's streamIO.
type h2Stream struct {
	c  *h2Conn
	id uint32
	x  h2Exchange

	// Read loop only: content-length checking and the trailers.
	declLen int64 // -1: no content-length
	gotLen  int64

	// Under c.mu: where the stream is in its life (RFC 9113 §5.1).
	remoteDone bool // END_STREAM or RST_STREAM received
	localDone  bool // the response ended or the stream was reset
	closer     io.Closer
	// reset: RST_STREAM either way, or the connection went. Set under c.mu
	// and read anywhere; setters then wake c.w.cond under c.w.mu.
	reset atomic.Bool

	// The request body, under bmu: what the read loop received and the
	// pump has not read, and the receive window (RFC 9113 §6.9).
	bmu       sync.Mutex
	bcond     sync.Cond
	bbuf      []byte // bbuf[boff:] is unread
	boff      int
	bdone     bool  // END_STREAM: EOF after bbuf
	berr      error // reset, or the exchange closed the body
	recvWin   int64
	unacked   int64 // body bytes read and not yet returned to the window
	expect100 bool  // send 100 Continue at the first read

	// The response, built by the worker: fields, then the encoded head,
	// sent with the first body bytes or at the end.
	fields   []h2Field
	lower    []byte // the fields' names in lower case
	head     []byte // encoded header block, not sent yet
	headBuf  []byte // head's buffer, kept for the next response
	headSent bool
	sentData bool
	// Flow control of what we send, under c.w.mu.
	sendWin int64
	// Where the stream's last DATA frame is in c.w.buf, while c.w.gen is
	// lastGen: the end of the response sets END_STREAM on it rather than
	// sending an empty frame. Under c.w.mu.
	lastData int
	lastGen  uint64

	// The request's names and values, and its cookies joined.
	arena  []byte
	cookie []byte
}

// reuse clears a stream for its next request, keeping its buffers.
func (s *h2Stream) reuse() {
	x := &s.x
	req, resp := x.req, x.resp
	req.reset()
	resp.reset()
	out, respHead := x.out[:0], x.respHead[:0]
	fields, lower, headBuf, arena, cookie, bbuf := s.fields[:0], s.lower[:0], s.headBuf[:0], s.arena[:0], s.cookie[:0], s.bbuf[:0]
	if cap(bbuf) > 16<<10 {
		bbuf = nil // a large upload's buffer is not kept for every stream
	}
	*s = h2Stream{fields: fields, lower: lower, headBuf: headBuf, arena: arena, cookie: cookie, bbuf: bbuf}
	s.x.req, s.x.resp, s.x.out, s.x.respHead = req, resp, out, respHead
}

// h2Field is one response field: an xlb name or a backend's.
type h2Field struct {
	name  string // set for xlb's own fields
	bname []byte // the backend's name otherwise
	value []byte
}

func (f *h2Field) is(name string) bool {
	if f.name != "" {
		return strings.EqualFold(f.name, name)
	}
	return bytes.EqualFold(f.bname, []byte(name))
}

func (s *h2Stream) addField(name, value []byte) {
	s.fields = append(s.fields, h2Field{bname: name, value: value})
}

func (s *h2Stream) addHeader(name string, value []byte) {
	s.fields = append(s.fields, h2Field{name: name, value: value})
}

func (s *h2Stream) setHeader(name string, value []byte) {
	kept := s.fields[:0]
	for _, f := range s.fields {
		if !f.is(name) {
			kept = append(kept, f)
		}
	}
	s.fields = append(kept, h2Field{name: name, value: value})
}

func (s *h2Stream) resetHeaders() { s.fields = s.fields[:0] }

// writeHeader encodes the response head; it goes out with the first body
// bytes, or alone with END_STREAM.
func (s *h2Stream) writeHeader(status int) {
	if s.head != nil || s.headSent {
		return
	}
	b := appendStatus(s.headBuf[:0], status)
	for i := range s.fields {
		f := &s.fields[i]
		s.lower = s.lower[:0]
		if f.name != "" {
			s.lower = appendLower(s.lower, []byte(f.name))
		} else {
			s.lower = appendLower(s.lower, f.bname)
		}
		if h2ConnectionSpecific(s.lower) {
			continue
		}
		b = appendHpackField(b, s.lower, f.value)
	}
	s.head, s.headBuf = b, b
	s.fields = s.fields[:0]
}

// sendHeadLocked appends the head if it has not gone yet (a 200 if the
// exchange wrote none). c.w.mu held.
func (s *h2Stream) sendHeadLocked(end bool) {
	if s.headSent {
		return
	}
	if s.head == nil {
		s.writeHeader(http.StatusOK)
	}
	w := &s.c.w
	w.buf = appendHeaders(w.buf, s.id, s.head, end, w.maxFrame)
	s.head, s.headSent = nil, true
}

// Write sends body bytes as DATA frames as far as the windows allow,
// waiting for WINDOW_UPDATE when they are spent.
func (s *h2Stream) Write(p []byte) (int, error) {
	w := &s.c.w
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	var stalled time.Time
	for {
		if err := s.writeErrLocked(); err != nil {
			return n, err
		}
		s.sendHeadLocked(false)
		if len(p) == 0 {
			return n, nil
		}
		k := min(int64(len(p)), s.sendWin, w.connWin, int64(w.maxFrame))
		if k <= 0 {
			// Let the client see what it has, then wait for its window,
			// as long as the idle timeout: a client that never opens it
			// does not hold the stream and its backend for ever.
			w.flushLocked()
			if s.writeErrLocked() != nil || (s.sendWin > 0 && w.connWin > 0) {
				continue
			}
			now := time.Now()
			if stalled.IsZero() {
				stalled = now
			} else if now.Sub(stalled) >= w.idle {
				w.mu.Unlock()
				s.c.resetStream(s.id, http2.ErrCodeCancel)
				w.mu.Lock()
				return n, errStreamReset
			}
			t := time.AfterFunc(w.idle-now.Sub(stalled), func() {
				w.mu.Lock()
				w.cond.Broadcast()
				w.mu.Unlock()
			})
			w.cond.Wait()
			t.Stop()
			continue
		}
		stalled = time.Time{}
		s.lastData, s.lastGen = len(w.buf), w.gen
		w.buf = appendData(w.buf, s.id, p[:k], false, w.maxFrame)
		s.sendWin -= k
		w.connWin -= k
		s.sentData = true
		p = p[k:]
		n += int(k)
		if len(w.buf) > h2HighWater {
			w.flushLocked()
		}
	}
}

// writeErrLocked is why the stream cannot send any more. c.w.mu held.
func (s *h2Stream) writeErrLocked() error {
	if s.c.w.err != nil {
		return s.c.w.err
	}
	if s.reset.Load() {
		return errStreamReset
	}
	return nil
}

func (s *h2Stream) flush() error {
	w := &s.c.w
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := s.writeErrLocked(); err != nil {
		return err
	}
	if s.head != nil {
		s.sendHeadLocked(false)
	}
	w.flushSoonLocked()
	return s.writeErrLocked()
}

// end finishes the response: END_STREAM, or RST_STREAM when the exchange
// cut it short.
func (s *h2Stream) end(abort bool) {
	w := &s.c.w
	w.mu.Lock()
	if s.writeErrLocked() == nil {
		switch {
		case abort:
			w.buf = appendRSTStream(w.buf, s.id, http2.ErrCodeInternal)
		case !s.headSent:
			s.sendHeadLocked(true)
		case s.sentData && s.lastGen == w.gen && s.lastData+4 < len(w.buf):
			// The last DATA frame has not left yet: it ends the stream.
			w.buf[s.lastData+4] |= byte(http2.FlagDataEndStream)
		default:
			w.buf = appendData(w.buf, s.id, nil, true, w.maxFrame)
		}
		w.flushSoonLocked()
	}
	w.mu.Unlock()
	s.c.localEnd(s, abort)
}

func (s *h2Stream) body() io.ReadCloser {
	if s.x.req.framing == bodyNone {
		return nil
	}
	return (*h2Body)(s)
}

func (s *h2Stream) watch(c io.Closer) {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	if s.reset.Load() {
		_ = c.Close()
		return
	}
	s.closer = c
}

func (s *h2Stream) unwatch() bool {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	s.closer = nil
	return !s.reset.Load()
}

func (s *h2Stream) gone() bool { return s.reset.Load() }

// h2Body is the request body as the exchange's pump reads it.
type h2Body h2Stream

func (b *h2Body) Read(p []byte) (int, error) {
	s := (*h2Stream)(b)
	s.bmu.Lock()
	if s.expect100 {
		s.expect100 = false
		s.bmu.Unlock()
		s.c.w.queue(func(buf []byte) []byte {
			return appendHeaders(buf, s.id, appendStatus(nil, 100), false, h2MaxFrameLen)
		})
		s.bmu.Lock()
	}
	for s.boff == len(s.bbuf) && !s.bdone && s.berr == nil {
		s.bcond.Wait()
	}
	if s.boff == len(s.bbuf) {
		err := s.berr
		s.bmu.Unlock()
		if err == nil {
			err = io.EOF
		}
		return 0, err
	}
	n := copy(p, s.bbuf[s.boff:])
	s.boff += n
	if s.boff == len(s.bbuf) {
		s.bbuf, s.boff = s.bbuf[:0], 0
	}
	// Give the stream's window back in pieces, or at once when the buffer
	// is empty and the client may be waiting for it.
	s.unacked += int64(n)
	var credit int64
	if !s.bdone && (s.unacked >= h2StreamWin/4 || len(s.bbuf) == 0) {
		credit, s.unacked = s.unacked, 0
		s.recvWin += credit
	}
	s.bmu.Unlock()
	if credit > 0 {
		s.c.w.queue(func(buf []byte) []byte { return appendWindowUpdate(buf, s.id, uint32(credit)) })
	}
	s.c.creditConn(int64(n))
	return n, nil
}

// Close ends the body for the exchange: what arrives later is dropped.
func (b *h2Body) Close() error {
	(*h2Stream)(b).failBody(io.ErrClosedPipe)
	return nil
}

// push adds received body bytes: false when the window did not allow them
// (a FLOW_CONTROL_ERROR). Bytes the exchange will not read are dropped
// and their window returned at once, as are padding's.
func (s *h2Stream) push(data []byte, flowLen int64, end bool) bool {
	s.bmu.Lock()
	if flowLen > s.recvWin {
		s.bmu.Unlock()
		return false
	}
	s.recvWin -= flowLen
	dropped := flowLen - int64(len(data))
	if s.berr != nil || s.x.req.framing == bodyNone {
		dropped = flowLen
	} else {
		if s.boff > 0 && len(s.bbuf)+len(data) > cap(s.bbuf) {
			s.bbuf = s.bbuf[:copy(s.bbuf, s.bbuf[s.boff:])]
			s.boff = 0
		}
		s.bbuf = append(s.bbuf, data...)
	}
	if end {
		s.bdone = true
	}
	var credit int64
	if !end {
		credit = dropped // after END_STREAM the stream's window is moot
		s.recvWin += credit
	}
	s.bcond.Broadcast()
	s.bmu.Unlock()
	if credit > 0 {
		s.c.w.queue(func(buf []byte) []byte { return appendWindowUpdate(buf, s.id, uint32(credit)) })
	}
	s.c.creditConn(dropped)
	return true
}

// failBody ends the body with err (a reset, the exchange closing it): what
// was not read is dropped and given back to the connection's window.
func (s *h2Stream) failBody(err error) {
	s.bmu.Lock()
	if s.berr == nil {
		s.berr = err
	}
	unread := int64(len(s.bbuf) - s.boff)
	s.bbuf, s.boff = s.bbuf[:0], 0
	s.bcond.Broadcast()
	s.bmu.Unlock()
	s.c.creditConn(unread)
}

// newStream takes a finished stream to reuse, with its buffers, or makes
// one.
func (c *h2Conn) newStream(id uint32, st *listenerState) *h2Stream {
	var s *h2Stream
	c.mu.Lock()
	if n := len(c.free); n > 0 {
		s = c.free[n-1]
		c.free = c.free[:n-1]
	}
	c.mu.Unlock()
	if s == nil {
		s = &h2Stream{}
	}
	s.reuse()
	s.c, s.id, s.declLen, s.recvWin = c, id, -1, h2StreamWin
	s.bcond.L = &s.bmu
	s.x.e, s.x.l, s.x.st, s.x.ip, s.x.proto, s.x.rw = c.srv.e, c.srv.l, st, c.pc.ip, "h2", s
	return s
}

// serve runs on a stream worker: the exchange, then the response's
// end.
func (s *h2Stream) serve(tooLarge bool) {
	x := &s.x
	if tooLarge {
		x.start = time.Now()
		x.answer(431, errBadRequest, "")
	} else {
		x.serve()
	}
	s.end(x.abort)
	c := s.c
	c.mu.Lock()
	c.running--
	c.free = append(c.free, s)
	c.mu.Unlock()
	c.workers.Done()
}
