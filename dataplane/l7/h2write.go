package l7

import (
	"errors"
	"io"
	"net"
	"runtime"
	"sync"
	"time"
)

// errH2Closed ends what a stream was doing when its connection failed or
// closed.
var errH2Closed = errors.New("http2: connection closed")

// h2Writer is an HTTP/2 connection's output: every goroutine appends whole
// frames under mu, and whichever finds no write in progress writes out
// everything buffered, its own frames and those added meanwhile. Busy
// connections so send many streams' frames in one TLS record and one
// system call, and no goroutine is woken to write (RFC 9113 has no
// ordering between streams to keep, only within a header block).
type h2Writer struct {
	conn net.Conn
	out  io.Writer     // conn, paced to the listener's bandwidth when it has a limit
	idle time.Duration // a write that makes no progress for this long fails

	mu   sync.Mutex
	cond sync.Cond // flow-control windows grew, the buffer drained, or err was set
	buf  []byte    // frames waiting to be written
	// spare is the buffer being written, reused for the next round.
	spare    []byte
	writing  bool
	soon     bool   // a goroutine will flush once the runnable ones have run
	gen      uint64 // counts buffer swaps: an offset into buf is good while gen stays
	err      error  // the connection failed: nothing more is written
	deadline time.Time

	// Flow control of what we send (RFC 9113 §6.9): the connection's
	// window, and the peer's settings that size streams' windows and frames.
	connWin  int64
	initWin  int64
	maxFrame int
}

func (w *h2Writer) init(conn net.Conn, out io.Writer, idle time.Duration) {
	w.conn, w.out, w.idle = conn, out, idle
	w.cond.L = &w.mu
	w.connWin, w.initWin, w.maxFrame = h2DefaultWindow, h2DefaultWindow, h2MaxFrameLen
	w.buf = make([]byte, 0, 4096)
}

// h2HighWater is how much output may wait before appenders wait for it to
// drain: the buffer does not grow past what a slow client takes.
const h2HighWater = 128 << 10

// flushLocked writes out the buffer unless another goroutine is doing so,
// in which case that one writes what was appended; it waits only while the
// buffer is over its high-water mark. w.mu held.
func (w *h2Writer) flushLocked() {
	if w.writing {
		for w.writing && len(w.buf) > h2HighWater && w.err == nil {
			w.cond.Wait()
		}
		return
	}
	w.writing = true
	for len(w.buf) > 0 && w.err == nil {
		b := w.buf
		w.buf = w.spare[:0]
		w.gen++
		// The deadline moves only when half of it is spent: setting it
		// costs, and a write that makes no progress still fails within
		// the idle timeout (and at least half of it).
		now := time.Now()
		setDeadline := w.deadline.Sub(now) < w.idle/2
		if setDeadline {
			w.deadline = now.Add(w.idle)
		}
		w.mu.Unlock()
		var err error
		if setDeadline {
			err = w.conn.SetWriteDeadline(w.deadline)
		}
		if err == nil {
			_, err = w.out.Write(b)
		}
		w.mu.Lock()
		w.spare = b[:0]
		if err != nil {
			w.failLocked(err)
		}
		w.cond.Broadcast()
	}
	w.writing = false
	w.cond.Broadcast()
}

// flushSoonLocked writes out the buffer after letting the other runnable
// goroutines run: streams whose backends answered in the same poll append
// their frames meanwhile, and all leave in one TLS record and one system
// call, as an event loop sends a round's output at once. With nothing else
// to run, the yield returns at once. w.mu held; released while yielding.
func (w *h2Writer) flushSoonLocked() {
	if w.soon || w.writing {
		// That goroutine writes out what is appended now.
		if len(w.buf) > h2HighWater {
			w.flushLocked()
		}
		return
	}
	w.soon = true
	w.mu.Unlock()
	runtime.Gosched()
	w.mu.Lock()
	w.soon = false
	w.flushLocked()
	w.cond.Broadcast()
}

// drain writes out what is buffered, waiting for a write in progress to
// end first: the connection is about to close.
func (w *h2Writer) drain() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for (w.writing || w.soon) && w.err == nil {
		w.cond.Wait()
	}
	w.flushLocked()
}

// failLocked stops all output: waiting streams give up, the reader stops
// on the closed socket. w.mu held.
func (w *h2Writer) failLocked(err error) {
	if w.err == nil {
		w.err = err
		_ = w.conn.Close()
	}
	w.buf = w.buf[:0]
	w.cond.Broadcast()
}

// queue appends frames built by f and writes them out.
func (w *h2Writer) queue(f func(b []byte) []byte) {
	w.mu.Lock()
	if w.err == nil {
		w.buf = f(w.buf)
		w.flushLocked()
	}
	w.mu.Unlock()
}
