package l7

import (
	"bufio"
	"errors"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.org/x/net/http2"
)

// h2Conn is one HTTP/2 connection (RFC 9113). Its read loop owns the
// framer, the HPACK decoder and the stream table's growth; requests run on
// the engine's stream workers, which write their own frames through w.
type h2Conn struct {
	srv *h2Server
	pc  *prefacedConn
	br  *bufio.Reader
	fr  *http2.Framer
	w   h2Writer
	// block is the header block being decoded (read loop only).
	block *h2Block

	// Read loop only.
	maxID uint32 // highest stream the client opened

	// The connection's receive window: what the client may still send,
	// and body bytes consumed (or dropped) not yet given back. Returned as
	// the exchanges read, so that a connection buffers at most h2ConnWin.
	recvWin   atomic.Int64
	recvUnack atomic.Int64

	mu      sync.Mutex
	streams map[uint32]*h2Stream
	// goingAway: GOAWAY sent or received; the connection ends when its
	// last stream does, once goneAway says our GOAWAY is queued.
	goingAway bool
	goneAway  bool
	closed    bool
	idle      *time.Timer
	workers   sync.WaitGroup
	running   int // streams whose worker has not finished (reset ones too)
	// free are streams whose worker has finished, out of the table: the
	// read loop reuses them, with their buffers, for new streams. Only
	// the read loop takes them, and it holds no stream between frames, so
	// none is reused while still referenced.
	free []*h2Stream
}

func newH2Conn(h *h2Server, pc *prefacedConn) *h2Conn {
	c := &h2Conn{srv: h, pc: pc, streams: map[uint32]*h2Stream{}}
	c.recvWin.Store(h2DefaultWindow)
	// The listener's bandwidth paces the connection both ways, as it does
	// an HTTP/1.1 one: the read loop and the writer sleep off what ran
	// ahead of the rate.
	st := h.l.state.Load()
	in := &countingReader{c: pc, sh: st.cfg.BandwidthIn, now: h.e.now}
	out := &countingWriter{c: pc, sh: st.cfg.BandwidthOut, now: h.e.now}
	c.br = bufio.NewReaderSize(in, 32<<10)
	c.fr = http2.NewFramer(nil, c.br)
	c.fr.SetMaxReadFrameSize(h2MaxFrameLen)
	c.block = newH2Block()
	c.fr.SetReuseFrames()
	c.w.init(pc, out, st.cfg.Timeouts.Idle)
	return c
}

// serve runs the connection until it ends, then waits for its streams.
func (c *h2Conn) serve() {
	defer c.finish()
	st := c.srv.l.state.Load()
	_ = c.pc.SetReadDeadline(time.Now().Add(st.cfg.Timeouts.Header))
	var preface [len(http2.ClientPreface)]byte
	if _, err := io.ReadFull(c.br, preface[:]); err != nil || string(preface[:]) != http2.ClientPreface {
		c.connError(http2.ErrCodeProtocol)
		return
	}
	c.w.queue(func(b []byte) []byte {
		b = appendSettings(b,
			http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: h2MaxStreams},
			http2.Setting{ID: http2.SettingInitialWindowSize, Val: h2StreamWin},
			http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: MaxHeadBytes},
		)
		return appendWindowUpdate(b, 0, h2ConnWin-h2DefaultWindow)
	})
	c.recvWin.Store(h2ConnWin)
	// The client's SETTINGS comes first (RFC 9113 §3.4).
	f, err := c.fr.ReadFrame()
	if err != nil {
		c.readError(err)
		return
	}
	if sf, ok := f.(*http2.SettingsFrame); !ok || sf.IsAck() {
		c.connError(http2.ErrCodeProtocol)
		return
	} else if !c.onSettings(sf) {
		return
	}
	c.armIdle(st.cfg.Timeouts.Idle)
	_ = c.pc.SetReadDeadline(time.Time{})
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			if !c.readError(err) {
				return
			}
			continue
		}
		if !c.onFrame(f) {
			return
		}
	}
}

// readError handles a framer error: false ends the connection.
func (c *h2Conn) readError(err error) bool {
	var se http2.StreamError
	var ce http2.ConnectionError
	switch {
	case errors.As(err, &se):
		return c.streamError(se.StreamID, se.Code)
	case errors.As(err, &ce):
		return c.connError(http2.ErrCode(ce))
	case errors.Is(err, http2.ErrFrameTooLarge):
		return c.connError(http2.ErrCodeFrameSize)
	case errors.Is(err, os.ErrDeadlineExceeded):
		// The connection set its read deadline to now to wake this loop
		// (wakeLocked): its last stream after GOAWAY has ended.
		c.mu.Lock()
		done := c.goneAway && len(c.streams) == 0
		c.mu.Unlock()
		if done {
			return false
		}
		_ = c.pc.SetReadDeadline(time.Time{})
		return true
	}
	return false // the client left, or the socket closed under us
}

func (c *h2Conn) protocolError() { c.srv.l.state.Load().metrics.fail(errBadRequest) }

// connError answers the client's error with GOAWAY code, which ends the
// connection; it returns false for the read loop to stop.
func (c *h2Conn) connError(code http2.ErrCode) bool {
	c.protocolError()
	c.goAway(code)
	return false
}

// malformed resets the stream of a malformed request (RFC 9113 §8.1.1),
// which never reaches a backend, and logs why.
func (c *h2Conn) malformed(id uint32, err error) bool {
	c.srv.e.log.Debug("l7 HTTP/2 malformed request", zap.String("listener", c.srv.l.state.Load().cfg.Name),
		zap.Stringer("client", c.pc.client), zap.Error(err))
	return c.streamError(id, http2.ErrCodeProtocol)
}

// streamError answers the client's error by resetting one stream; the
// connection goes on.
func (c *h2Conn) streamError(id uint32, code http2.ErrCode) bool {
	c.protocolError()
	c.resetStream(id, code)
	return true
}

// onFrame handles one frame; false ends the connection.
func (c *h2Conn) onFrame(f http2.Frame) bool {
	switch f := f.(type) {
	case *http2.HeadersFrame:
		c.block.start(f)
		return c.onFragment(f.HeaderBlockFragment(), f.HeadersEnded(), false)
	case *http2.ContinuationFrame:
		// The framer keeps CONTINUATIONs right after their HEADERS.
		return c.onFragment(f.HeaderBlockFragment(), f.HeadersEnded(), true)
	case *http2.DataFrame:
		return c.onData(f)
	case *http2.SettingsFrame:
		if f.IsAck() {
			return true
		}
		return c.onSettings(f)
	case *http2.PingFrame:
		if !f.IsAck() {
			data := f.Data
			c.w.queue(func(b []byte) []byte { return appendPingAck(b, data) })
		}
		return true
	case *http2.WindowUpdateFrame:
		return c.onWindowUpdate(f)
	case *http2.RSTStreamFrame:
		return c.onReset(f)
	case *http2.PriorityFrame:
		// Priorities are not acted on (RFC 9113 §5.3.2 deprecates them),
		// but a stream may not depend on itself.
		if f.StreamDep == f.StreamID {
			return c.streamError(f.StreamID, http2.ErrCodeProtocol)
		}
		return true
	case *http2.GoAwayFrame:
		c.mu.Lock()
		c.goingAway, c.goneAway = true, true
		done := len(c.streams) == 0
		c.mu.Unlock()
		return !done
	case *http2.PushPromiseFrame:
		// Clients do not push (RFC 9113 §8.4).
		return c.connError(http2.ErrCodeProtocol)
	}
	return true // unknown frame types are ignored (RFC 9113 §4.1)
}

func (c *h2Conn) onSettings(f *http2.SettingsFrame) bool {
	if err := f.ForeachSetting(http2.Setting.Valid); err != nil {
		var ce http2.ConnectionError
		code := http2.ErrCodeProtocol
		if errors.As(err, &ce) {
			code = http2.ErrCode(ce)
		}
		return c.connError(code)
	}
	ok := true
	c.w.mu.Lock()
	_ = f.ForeachSetting(func(s http2.Setting) error {
		switch s.ID {
		case http2.SettingInitialWindowSize:
			// Every open stream's window moves by the change (§6.9.2).
			delta := int64(s.Val) - c.w.initWin
			c.w.initWin = int64(s.Val)
			c.mu.Lock()
			for _, st := range c.streams {
				st.sendWin += delta
				if st.sendWin > h2MaxWindow {
					ok = false
				}
			}
			c.mu.Unlock()
		case http2.SettingMaxFrameSize:
			c.w.maxFrame = int(s.Val)
		}
		return nil
	})
	c.w.buf = appendSettingsAck(c.w.buf)
	c.w.cond.Broadcast()
	c.w.flushLocked()
	c.w.mu.Unlock()
	if !ok {
		return c.connError(http2.ErrCodeFlowControl)
	}
	return true
}

func (c *h2Conn) onWindowUpdate(f *http2.WindowUpdateFrame) bool {
	inc := int64(f.Increment)
	if f.StreamID == 0 {
		c.w.mu.Lock()
		c.w.connWin += inc
		over := c.w.connWin > h2MaxWindow
		c.w.cond.Broadcast()
		c.w.mu.Unlock()
		if over {
			return c.connError(http2.ErrCodeFlowControl)
		}
		return true
	}
	s, idle := c.stream(f.StreamID)
	if s == nil {
		if idle {
			return c.connError(http2.ErrCodeProtocol)
		}
		return true // a closed stream's: nothing to send any more
	}
	c.w.mu.Lock()
	s.sendWin += inc
	over := s.sendWin > h2MaxWindow
	c.w.cond.Broadcast()
	c.w.mu.Unlock()
	if over {
		return c.streamError(f.StreamID, http2.ErrCodeFlowControl)
	}
	return true
}

func (c *h2Conn) onReset(f *http2.RSTStreamFrame) bool {
	s, idle := c.stream(f.StreamID)
	if s == nil {
		if idle {
			return c.connError(http2.ErrCodeProtocol)
		}
		return true
	}
	c.cancel(s)
	return true
}

// stream looks a stream up; idle reports an id the client has not opened.
func (c *h2Conn) stream(id uint32) (s *h2Stream, idle bool) {
	c.mu.Lock()
	s = c.streams[id]
	c.mu.Unlock()
	return s, s == nil && id > c.maxID
}

func (c *h2Conn) onData(f *http2.DataFrame) bool {
	flowLen := int64(f.Header().Length)
	// The connection's window counts every DATA frame, even one for a
	// closed stream.
	if flowLen > c.recvWin.Load() {
		return c.connError(http2.ErrCodeFlowControl)
	}
	c.recvWin.Add(-flowLen)
	s, idle := c.stream(f.StreamID)
	switch {
	case s != nil && s.remoteClosed():
		return c.afterEndStream()
	case s == nil && idle:
		return c.connError(http2.ErrCodeProtocol)
	case s == nil:
		// Reset or finished: frames may still have been on the way.
		c.creditConn(flowLen)
		c.resetStream(f.StreamID, http2.ErrCodeStreamClosed)
		return true
	}
	data := f.Data()
	s.gotLen += int64(len(data))
	end := f.StreamEnded()
	if s.declLen >= 0 && (s.gotLen > s.declLen || end && s.gotLen != s.declLen) {
		// The body does not match its content-length (RFC 9113 §8.1.1).
		c.creditConn(flowLen)
		return c.streamError(f.StreamID, http2.ErrCodeProtocol)
	}
	if end {
		// Marked before the last bytes reach the pump, so that a response
		// that ends at once finds the stream closed on both sides.
		c.remoteEnd(s)
	}
	if !s.push(data, flowLen, end) {
		c.creditConn(flowLen)
		return c.streamError(f.StreamID, http2.ErrCodeFlowControl)
	}
	return true
}

// afterEndStream answers a frame the client sent on a stream after its
// END_STREAM: a connection error (RFC 9113 §5.1, "closed"), the same
// whether or not the response has ended yet.
func (c *h2Conn) afterEndStream() bool {
	return c.connError(http2.ErrCodeStreamClosed)
}

// creditConn gives n received bytes back to the connection's window, in
// batches of a quarter of it.
func (c *h2Conn) creditConn(n int64) {
	if n <= 0 || c.recvUnack.Add(n) < h2ConnWin/4 {
		return
	}
	if n = c.recvUnack.Swap(0); n > 0 {
		c.recvWin.Add(n)
		c.w.queue(func(b []byte) []byte { return appendWindowUpdate(b, 0, uint32(n)) })
	}
}

// remoteClosed reports that the client sent END_STREAM or reset.
func (s *h2Stream) remoteClosed() bool {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	return s.remoteDone
}

// remoteEnd marks the client's side finished.
func (c *h2Conn) remoteEnd(s *h2Stream) {
	c.mu.Lock()
	s.remoteDone = true
	if s.localDone {
		c.removeLocked(s)
	}
	c.mu.Unlock()
}

// localEnd marks the response finished. A client still sending is told to
// stop with RST_STREAM NO_ERROR (RFC 9113 §8.1).
func (c *h2Conn) localEnd(s *h2Stream, reset bool) {
	c.mu.Lock()
	s.localDone = true
	if s.remoteDone || reset || s.reset.Load() {
		c.removeLocked(s)
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	s.failBody(errStreamReset)
	c.resetStream(s.id, http2.ErrCodeNo)
}

// removeLocked takes a finished stream out of the table. c.mu held.
func (c *h2Conn) removeLocked(s *h2Stream) {
	if c.streams[s.id] != s {
		return
	}
	delete(c.streams, s.id)
	if len(c.streams) == 0 {
		if c.goneAway {
			c.wakeLocked()
		} else if c.idle != nil {
			c.idle.Reset(c.srv.l.state.Load().cfg.Timeouts.Idle)
		}
	}
}

// wakeLocked stops the read loop so that it sees the connection is done.
// c.mu held.
func (c *h2Conn) wakeLocked() {
	if !c.closed {
		_ = c.pc.SetReadDeadline(time.Now())
	}
}

// resetStream ends the stream's work, if it has any, and sends
// RST_STREAM: in that order, so that no frame of the stream follows it.
func (c *h2Conn) resetStream(id uint32, code http2.ErrCode) {
	if s, _ := c.stream(id); s != nil {
		c.cancel(s)
	}
	c.w.queue(func(b []byte) []byte { return appendRSTStream(b, id, code) })
}

// cancel ends a stream: the body reader and the backend exchange stop,
// windows waits end, and the stream leaves the table.
func (c *h2Conn) cancel(s *h2Stream) {
	c.mu.Lock()
	s.reset.Store(true)
	s.remoteDone = true
	closer := s.closer
	s.closer = nil
	c.removeLocked(s)
	c.mu.Unlock()
	if closer != nil {
		_ = closer.Close()
	}
	s.failBody(errStreamReset)
	c.w.mu.Lock()
	c.w.cond.Broadcast()
	c.w.mu.Unlock()
}

// goAway tells the client no more streams will be served; with an error
// code the connection then ends, without one when its streams have.
func (c *h2Conn) goAway(code http2.ErrCode) {
	c.mu.Lock()
	if c.goingAway && code == http2.ErrCodeNo {
		c.mu.Unlock()
		return
	}
	c.goingAway = true
	last := c.maxID
	c.mu.Unlock()
	c.w.queue(func(b []byte) []byte { return appendGoAway(b, last, code) })
	c.mu.Lock()
	c.goneAway = true
	if len(c.streams) == 0 {
		c.wakeLocked()
	}
	c.mu.Unlock()
}

// armIdle closes the connection gracefully once it has had no stream for
// the idle timeout.
func (c *h2Conn) armIdle(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.idle = time.AfterFunc(d, func() {
		c.mu.Lock()
		idle := len(c.streams) == 0 && !c.closed
		c.mu.Unlock()
		if idle {
			c.goAway(http2.ErrCodeNo)
		}
	})
}

// finish ends the connection: every stream is cancelled, the socket
// closed once the last frames are out, and the workers waited for.
func (c *h2Conn) finish() {
	c.w.drain()
	c.mu.Lock()
	c.closed = true
	if c.idle != nil {
		c.idle.Stop()
	}
	ss := make([]*h2Stream, 0, len(c.streams))
	for _, s := range c.streams {
		ss = append(ss, s)
	}
	c.mu.Unlock()
	for _, s := range ss {
		c.cancel(s)
	}
	c.w.mu.Lock()
	c.w.failLocked(errH2Closed)
	c.w.mu.Unlock()
	c.workers.Wait()
	c.pc.closed()
}

// close cuts the connection now (the end of a drain).
func (c *h2Conn) close() {
	c.w.mu.Lock()
	c.w.failLocked(errH2Closed)
	c.w.mu.Unlock()
}

// onFragment decodes a piece of the header block; its end is the request
// (or trailers).
func (c *h2Conn) onFragment(frag []byte, ended, continuation bool) bool {
	err := c.block.write(frag, continuation)
	if err == nil && ended {
		err = c.block.finish()
	}
	if err != nil {
		return c.connError(http2.ErrCode(err.(http2.ConnectionError)))
	}
	if !ended {
		return true
	}
	if b := c.block; b.invalid != nil {
		return c.malformed(b.stream, b.invalid)
	}
	return c.onHeaders(c.block)
}

func (c *h2Conn) onHeaders(f *h2Block) bool {
	id := f.stream
	if id%2 == 0 {
		return c.connError(http2.ErrCodeProtocol)
	}
	if s, _ := c.stream(id); s != nil {
		return c.onTrailers(s, f)
	}
	if id <= c.maxID {
		// A closed stream's id, or one going down (RFC 9113 §5.1.1).
		return c.connError(http2.ErrCodeProtocol)
	}
	c.maxID = id
	c.mu.Lock()
	refuse := c.goingAway
	// Streams the client reset leave the table at once, but their workers
	// take a moment to finish: the second bound keeps a client that opens
	// and resets streams in a loop from running workers without limit.
	full := len(c.streams) >= h2MaxStreams || c.running >= 2*h2MaxStreams
	c.mu.Unlock()
	switch {
	case refuse:
		c.w.queue(func(b []byte) []byte { return appendRSTStream(b, id, http2.ErrCodeRefusedStream) })
		return true
	case f.hasPrio && f.prio.StreamDep == id:
		return c.streamError(id, http2.ErrCodeProtocol)
	case full:
		// Retryable, also for a client that opened streams before our
		// SETTINGS reached it (RFC 9113 §5.1.2).
		return c.streamError(id, http2.ErrCodeRefusedStream)
	}
	st := c.srv.l.state.Load()
	s := c.newStream(id, st)
	tooLarge, err := s.fromFields(f)
	if err != nil {
		c.mu.Lock()
		c.free = append(c.free, s) // never in the table: free at once
		c.mu.Unlock()
		return c.malformed(id, err)
	}
	s.remoteDone = f.end
	s.bdone = s.remoteDone
	c.w.mu.Lock()
	s.sendWin = c.w.initWin
	c.w.mu.Unlock()
	c.mu.Lock()
	c.streams[id] = s
	c.running++
	if c.idle != nil {
		c.idle.Stop()
	}
	c.mu.Unlock()
	c.workers.Add(1)
	c.srv.e.h2workers.run(s, tooLarge)
	return true
}

// onTrailers takes a request's trailers: they end the body and are not
// forwarded.
func (c *h2Conn) onTrailers(s *h2Stream, f *h2Block) bool {
	if s.remoteClosed() {
		return c.afterEndStream()
	}
	pseudo := len(f.fields) > 0 && f.name(f.fields[0])[0] == ':'
	if !f.end || pseudo || (s.declLen >= 0 && s.gotLen != s.declLen) {
		return c.streamError(s.id, http2.ErrCodeProtocol)
	}
	c.remoteEnd(s)
	s.push(nil, 0, true)
	return true
}
