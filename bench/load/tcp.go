package load

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"time"
)

// TCP modes.
const (
	TCPConnect    = "connect"
	TCPThroughput = "throughput"
)

// Default payloads.
const (
	DefaultConnectPayload    = 64
	DefaultThroughputPayload = 16 << 10
)

// TCP runs a TCP load test against an echo server at o.Addr (bench/serve TCPEcho).
//
// Mode connect measures connections: one op dials, writes Payload bytes, reads the
// echo and closes; Rate > 0 runs it open loop. Mode throughput keeps Connections
// connections streaming Payload-sized writes while reading the echo back; an op is
// one chunk echoed, its latency the chunk's round trip, and Result.Rate is the echoed
// bytes received per second. If ctx ends first, TCP returns what it measured so far
// together with ctx's error.
func TCP(ctx context.Context, o TCPOptions) (*Result, error) {
	switch {
	case o.Addr == "":
		return nil, errors.New("tcp: no address")
	case o.Connections < 0, o.Rate < 0, math.IsNaN(o.Rate), math.IsInf(o.Rate, 0), o.Duration < 0, o.Payload < 0, o.Timeout < 0, o.Warmup < 0:
		return nil, errors.New("tcp: negative connections, rate, duration, payload, timeout or warmup")
	}
	dial := o.Dial
	if dial == nil {
		dial = defaultDial
	}
	timeout := orDefault(o.Timeout, DefaultTimeout)
	switch o.Mode {
	case "", TCPConnect:
		return tcpConnect(ctx, o, dial, timeout)
	case TCPThroughput:
		if o.Rate > 0 {
			return nil, errors.New("tcp: rate applies to connect mode only")
		}
		return tcpThroughput(ctx, o, dial, timeout)
	}
	return nil, fmt.Errorf("tcp: mode %q: want %s or %s", o.Mode, TCPConnect, TCPThroughput)
}

func tcpConnect(ctx context.Context, o TCPOptions, dial Dialer, timeout time.Duration) (*Result, error) {
	payload := make([]byte, orDefaultInt(o.Payload, DefaultConnectPayload))
	for i := range payload {
		payload[i] = 'a' + byte(i%26)
	}
	p := &plan{
		workers:  connectionsFor(o.Connections, o.Rate),
		rate:     o.Rate,
		duration: runDuration(o.Duration, o.Ops),
		warmup:   o.Warmup,
		limit:    o.Ops,
		progress: o.Progress,
		unit:     "conn/s",
		newWorker: func(ctx context.Context, _ int) worker {
			return &connectWorker{ctx: ctx, addr: o.Addr, dial: dial, timeout: timeout, payload: payload, buf: make([]byte, len(payload)), reset: o.Reset}
		},
	}
	r := &Result{Kind: "tcp-connect", Target: o.Addr, Offered: o.Rate}
	out := p.run(ctx)
	out.fill(r)
	return r, ctx.Err()
}

// connectWorker: one op is connect, write the payload, read its echo, close.
type connectWorker struct {
	ctx     context.Context
	addr    string
	dial    Dialer
	timeout time.Duration
	payload []byte
	buf     []byte
	reset   bool
}

func (w *connectWorker) op(st *stats) errKind {
	ctx, cancel := context.WithTimeout(w.ctx, w.timeout)
	defer cancel()
	c, err := w.dial(ctx, "tcp", w.addr)
	if err != nil {
		return kindConnect
	}
	defer c.Close()
	st.conn()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) }) //nolint:errcheck
	defer stop()
	n, err := c.Write(w.payload)
	st.sentBytes(n)
	if err != nil {
		return classify(err, false)
	}
	n, err = io.ReadFull(c, w.buf)
	st.recvBytes(n)
	if err != nil {
		return classify(err, n > 0)
	}
	if l, ok := c.(interface{ SetLinger(int) error }); ok && w.reset {
		l.SetLinger(0) //nolint:errcheck // then Close sends a FIN, no harm
	}
	return kindNone
}

func (w *connectWorker) close() {}

func orDefaultInt(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}
