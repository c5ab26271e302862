package l7

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

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
	net.Conn // TCP (h2c) or TLS (ALPN h2)
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
		_ = p.Conn.Close()
		p.lm.active.Dec()
		p.lim.Release()
	})
}

// h2Server serves a listener's HTTP/2 connections, h2c by prior knowledge
// and TLS with ALPN h2, with xlb's own HTTP/2 (h2conn.go): requests go
// through the same routing, persistence, headers, gzip, backends and
// metrics as HTTP/1.1.
type h2Server struct {
	e *Engine
	l *listener

	mu      sync.Mutex
	conns   map[*h2Conn]struct{}
	stopped bool
	wg      sync.WaitGroup // connections, with their streams
}

func (e *Engine) newH2Server(l *listener) *h2Server {
	return &h2Server{e: e, l: l, conns: map[*h2Conn]struct{}{}}
}

// offer serves pc on its own goroutine; false once the server has shut
// down (pc is then the caller's to close).
func (h *h2Server) offer(pc *prefacedConn) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stopped {
		return false
	}
	c := newH2Conn(h, pc)
	h.conns[c] = struct{}{}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		c.serve()
		h.mu.Lock()
		delete(h.conns, c)
		h.mu.Unlock()
	}()
	return true
}

// shutdown sends GOAWAY, lets streams finish until ctx ends, closes what is
// left and waits for every connection and stream.
func (h *h2Server) shutdown(ctx context.Context) {
	for _, c := range h.stop() {
		c.goAway(0) // outside h.mu: it may wait on a slow client's socket
	}
	done := make(chan struct{})
	go func() {
		h.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return
	case <-ctx.Done():
	}
	for _, c := range h.stop() {
		c.close()
	}
	<-done
}

// stop refuses new connections and returns the open ones.
func (h *h2Server) stop() []*h2Conn {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stopped = true
	cs := make([]*h2Conn, 0, len(h.conns))
	for c := range h.conns {
		cs = append(cs, c)
	}
	return cs
}

// streamWorkers run HTTP/2 streams. A worker outlives its stream and takes
// the next, so the stack a proxied request grows to is kept, not grown
// again for every request; at most maxIdle wait, and all stop with the
// engine.
type streamWorkers struct {
	next    chan streamJob
	stop    <-chan struct{}
	wg      *sync.WaitGroup
	idle    atomic.Int32
	maxIdle int32
}

type streamJob struct {
	s        *h2Stream
	tooLarge bool
}

func newStreamWorkers(stop <-chan struct{}, wg *sync.WaitGroup) *streamWorkers {
	return &streamWorkers{next: make(chan streamJob), stop: stop, wg: wg, maxIdle: 256}
}

// run hands the stream to an idle worker, or starts one.
func (w *streamWorkers) run(s *h2Stream, tooLarge bool) {
	j := streamJob{s, tooLarge}
	select {
	case w.next <- j:
	default:
		w.wg.Add(1)
		go w.work(j)
	}
}

func (w *streamWorkers) work(j streamJob) {
	defer w.wg.Done()
	for {
		j.s.serve(j.tooLarge)
		if w.idle.Add(1) > w.maxIdle {
			w.idle.Add(-1)
			return
		}
		select {
		case j = <-w.next:
			w.idle.Add(-1)
		case <-w.stop:
			w.idle.Add(-1)
			return
		}
	}
}
