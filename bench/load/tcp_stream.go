package load

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// streamWindow bounds the bytes a throughput connection has in flight.
const streamWindow = 1 << 20

func tcpThroughput(ctx context.Context, o TCPOptions, dial Dialer, timeout time.Duration) (*Result, error) {
	payload := make([]byte, orDefaultInt(o.Payload, DefaultThroughputPayload))
	for i := range payload {
		payload[i] = 'a' + byte(i%26)
	}
	conns := orDefaultInt(o.Connections, DefaultConnections)
	duration := runDuration(o.Duration, o.Ops)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	now := time.Now()
	win := window{start: now, measure: now.Add(o.Warmup)}
	if duration > 0 {
		win.end = win.measure.Add(duration)
	}
	s := &streamRun{
		ctx: ctx, addr: o.Addr, dial: dial, timeout: timeout, payload: payload,
		win: win, limit: o.Ops, inflight: max(8, streamWindow/len(payload)),
	}
	var all []*stats
	readers := make([]*stats, conns)
	var wg sync.WaitGroup
	for i := range conns {
		rs, ws := newStats(), newStats()
		readers[i] = rs
		all = append(all, rs, ws)
		wg.Go(func() { s.worker(rs, ws) })
	}
	stopProgress := progressLoop(o.Progress, "", true, readers, win.measure)
	wg.Wait()
	stopProgress()
	finish := time.Now()
	if !win.end.IsZero() && finish.After(win.end) {
		finish = win.end
	}
	r := &Result{Kind: "tcp-throughput", Target: o.Addr}
	out := outcome{stats: all, window: max(finish.Sub(win.measure), 0)}
	out.fill(r)
	if r.Duration > 0 {
		r.Rate = float64(r.BytesReceived) / r.Duration.Seconds()
	}
	return r, ctx.Err()
}

// streamRun is what the connections of a throughput run share.
type streamRun struct {
	ctx      context.Context
	addr     string
	dial     Dialer
	timeout  time.Duration
	payload  []byte
	win      window
	limit    uint64
	claimed  atomic.Uint64
	inflight int // chunks
}

// more reports whether a writer should send another chunk.
func (s *streamRun) more(ws *stats) bool {
	now := time.Now()
	if s.ctx.Err() != nil || s.win.over(now) {
		return false
	}
	ws.measuring = !now.Before(s.win.measure)
	return !ws.measuring || s.limit == 0 || s.claimed.Add(1) <= s.limit
}

// worker keeps one connection streaming until the end, reconnecting after errors.
func (s *streamRun) worker(rs, ws *stats) {
	var backoff time.Duration
	for {
		now := time.Now()
		if s.ctx.Err() != nil || s.win.over(now) || (s.limit > 0 && s.claimed.Load() >= s.limit) {
			return
		}
		k := s.stream(rs, ws)
		if k == kindNone || s.ctx.Err() != nil {
			continue // a clean end: the loop's checks stop the worker
		}
		if !time.Now().Before(s.win.measure) {
			rs.errors[k]++
			rs.errs.Add(1)
		}
		// Do not spin on a refused or broken target.
		backoff = min(max(2*backoff, time.Millisecond), 100*time.Millisecond)
		select {
		case <-time.After(backoff):
		case <-s.ctx.Done():
		}
	}
}

// stream runs one connection: a writer goroutine sends chunks, stamping each send
// time into times, and this goroutine reads the echo and matches whole chunks to
// their stamps.
func (s *streamRun) stream(rs, ws *stats) errKind {
	ctx, cancel := context.WithTimeout(s.ctx, s.timeout)
	c, err := s.dial(ctx, "tcp", s.addr)
	cancel()
	if err != nil {
		return kindConnect
	}
	defer c.Close()
	ws.measuring = !time.Now().Before(s.win.measure)
	ws.conn()
	stop := context.AfterFunc(s.ctx, func() { c.SetDeadline(time.Unix(1, 0)) }) //nolint:errcheck
	defer stop()

	times := make(chan time.Time, s.inflight)
	werr := make(chan error, 1)
	go func() {
		defer close(times)
		for s.more(ws) {
			now := time.Now()
			times <- now                           // blocks while the window is full
			c.SetWriteDeadline(now.Add(s.timeout)) //nolint:errcheck
			n, err := c.Write(s.payload)
			ws.sentBytes(n)
			if err != nil {
				werr <- err
				return
			}
		}
		type closeWriter interface{ CloseWrite() error }
		if cw, ok := c.(closeWriter); ok {
			werr <- cw.CloseWrite() // the echo server ends its side after the rest
			return
		}
		werr <- nil
	}()

	buf := make([]byte, 64<<10)
	size := len(s.payload)
	got := 0 // bytes of the current chunk received
	var kind errKind
	for {
		c.SetReadDeadline(time.Now().Add(s.timeout)) //nolint:errcheck
		n, err := c.Read(buf)
		now := time.Now()
		rs.measuring = !now.Before(s.win.measure)
		rs.recvBytes(n)
		for got += n; got >= size; got -= size {
			sent, ok := <-times
			if !ok {
				kind = kindProtocol // more echoed than sent
				break
			}
			measuring := !sent.Before(s.win.measure)
			rs.account(kindNone, measuring, now.Sub(sent))
		}
		if kind != kindNone {
			break
		}
		if err != nil {
			if isEOF(err) {
				if _, pending := <-times; pending || got > 0 {
					kind = kindShortRead
				}
			} else {
				kind = classify(err, got > 0)
			}
			break
		}
	}
	c.Close() // unblocks the writer
	for range times {
	}
	if e := <-werr; e != nil && kind == kindNone {
		kind = classify(e, false)
	}
	return kind
}
