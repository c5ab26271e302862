package load

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// A UDP datagram starts with this header, echoed back by the server: a magic, the
// worker's id, the sequence number and the scheduled send time (ns since the run's
// start). The answer thus names its request, so late or stray answers are told apart.
const (
	udpHeaderLen      = 24
	udpMagic          = 0x786c6275 // "xlbu"
	DefaultUDPPayload = 64
)

// UDP runs a request/response test against a UDP echo server at o.Addr (bench/serve
// UDPEcho). Ops counts datagrams answered within Timeout, Sent the datagrams sent
// (open loop: Unsent those the generator could not send before the end),
// Loss is 1 - Ops/Sent, and Errors["timeout"] the unanswered ones; Late counts answers
// that came after their timeout. Closed loop (Rate 0), each socket sends its next
// datagram when the previous one is answered or timed out; open loop, the sockets
// send on a fixed schedule whatever the answers, latency measured from the scheduled
// time. If ctx ends first, UDP returns what it measured so far together with ctx's
// error.
func UDP(ctx context.Context, o UDPOptions) (*Result, error) {
	switch {
	case o.Addr == "":
		return nil, errors.New("udp: no address")
	case o.Concurrency < 0, o.Rate < 0, math.IsNaN(o.Rate), math.IsInf(o.Rate, 0), o.Duration < 0, o.Payload < 0, o.Timeout < 0, o.Warmup < 0:
		return nil, errors.New("udp: negative concurrency, rate, duration, payload, timeout or warmup")
	case o.Payload > 65507:
		return nil, errors.New("udp: payload larger than a datagram")
	}
	dial := o.Dial
	if dial == nil {
		dial = defaultDial
	}
	u := &udpRun{
		addr:    o.Addr,
		dial:    dial,
		timeout: orDefault(o.Timeout, DefaultUDPTimeout),
		size:    max(orDefaultInt(o.Payload, DefaultUDPPayload), udpHeaderLen),
	}
	r := &Result{Kind: "udp", Target: o.Addr, Offered: o.Rate}
	var out outcome
	if o.Rate > 0 {
		conc := o.Concurrency
		if conc == 0 {
			conc = max(1, int(math.Ceil(o.Rate/50000)))
		}
		out = u.openLoop(ctx, o, conc)
	} else {
		p := &plan{
			workers:  orDefaultInt(o.Concurrency, DefaultConnections),
			duration: runDuration(o.Duration, o.Ops),
			warmup:   o.Warmup,
			limit:    o.Ops,
			progress: o.Progress,
			unit:     "resp/s",
		}
		p.newWorker = func(ctx context.Context, i int) worker { return u.newWorker(ctx, i, time.Now()) }
		out = p.run(ctx)
	}
	out.fill(r)
	if r.Sent > 0 {
		r.Loss = 1 - float64(r.Ops)/float64(r.Sent)
	}
	return r, ctx.Err()
}

// udpRun is what the sockets of a run share.
type udpRun struct {
	addr    string
	dial    Dialer
	timeout time.Duration
	size    int
}

// udpWorker owns one connected socket.
type udpWorker struct {
	u      *udpRun
	ctx    context.Context
	id     uint32
	origin time.Time // offsets in datagrams count from here
	conn   net.Conn
	out    []byte
	in     []byte
	seq    uint64
	unhook func() bool
}

func (u *udpRun) newWorker(ctx context.Context, id int, origin time.Time) *udpWorker {
	w := &udpWorker{u: u, ctx: ctx, id: uint32(id), origin: origin, out: make([]byte, u.size), in: make([]byte, 64<<10)}
	for i := udpHeaderLen; i < len(w.out); i++ {
		w.out[i] = 'a' + byte(i%26)
	}
	return w
}

func (w *udpWorker) connect(st *stats) error {
	ctx, cancel := context.WithTimeout(w.ctx, w.u.timeout)
	defer cancel()
	c, err := w.u.dial(ctx, "udp", w.u.addr)
	if err != nil {
		return err
	}
	st.conn()
	w.conn = c
	w.unhook = context.AfterFunc(w.ctx, func() { c.SetDeadline(time.Unix(1, 0)) }) //nolint:errcheck
	return nil
}

func (w *udpWorker) close() {
	if w.conn != nil {
		w.unhook()
		w.conn.Close()
	}
}

// send writes datagram seq stamped with its scheduled time.
func (w *udpWorker) send(st *stats, seq uint64, sched time.Time) error {
	binary.BigEndian.PutUint32(w.out[0:], udpMagic)
	binary.BigEndian.PutUint32(w.out[4:], w.id)
	binary.BigEndian.PutUint64(w.out[8:], seq)
	binary.BigEndian.PutUint64(w.out[16:], uint64(sched.Sub(w.origin)))
	n, err := w.conn.Write(w.out)
	if err == nil && st.measuring {
		st.sent++
		st.bytesSent += uint64(n)
	}
	return err
}

// parse checks an answer and returns its sequence number and scheduled time.
func (w *udpWorker) parse(b []byte) (seq uint64, sched time.Time, ok bool) {
	if len(b) < udpHeaderLen || binary.BigEndian.Uint32(b[0:]) != udpMagic || binary.BigEndian.Uint32(b[4:]) != w.id {
		return 0, time.Time{}, false
	}
	off := int64(binary.BigEndian.Uint64(b[16:]))
	return binary.BigEndian.Uint64(b[8:]), w.origin.Add(time.Duration(off)), true
}

// op is one closed-loop exchange: send, then wait for this datagram's answer,
// skipping late answers to earlier ones.
func (w *udpWorker) op(st *stats) errKind {
	if w.conn == nil {
		if err := w.connect(st); err != nil {
			return kindConnect
		}
	}
	w.seq++
	now := time.Now()
	if err := w.conn.SetReadDeadline(now.Add(w.u.timeout)); err != nil {
		return classify(err, false)
	}
	if err := w.send(st, w.seq, now); err != nil {
		return classify(err, false)
	}
	for {
		n, err := w.conn.Read(w.in)
		if err != nil {
			return classify(err, false)
		}
		st.recvBytes(n)
		seq, _, ok := w.parse(w.in[:n])
		switch {
		case ok && seq == w.seq:
			return kindNone
		case !st.measuring:
		case !ok || seq > w.seq:
			st.strays++
		default:
			st.late++
		}
	}
}

// openLoop runs conc sockets, each sending on its own share of the schedule while
// its receiver matches answers, until the end; then waits up to the timeout for the
// last answers.
func (u *udpRun) openLoop(ctx context.Context, o UDPOptions, conc int) outcome {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	duration := runDuration(o.Duration, o.Ops)
	now := time.Now()
	win := window{start: now, measure: now.Add(o.Warmup)}
	if duration > 0 {
		win.end = win.measure.Add(duration)
	}
	interval := time.Duration(float64(time.Second) * float64(conc) / o.Rate)
	var claimed atomic.Uint64
	var all, receivers []*stats
	var wg sync.WaitGroup
	for i := range conc {
		ss, rs := newStats(), newStats()
		all = append(all, ss, rs)
		receivers = append(receivers, rs)
		w := u.newWorker(ctx, i, win.start)
		phase := time.Duration(float64(time.Second) * float64(i) / o.Rate)
		wg.Go(func() {
			defer w.close()
			ss.measuring = !time.Now().Before(win.measure)
			if err := w.connect(ss); err != nil {
				if ctx.Err() == nil {
					ss.errors[kindConnect]++
				}
				return
			}
			w.runOpen(ss, rs, win, phase, interval, o.Ops, &claimed)
		})
	}
	stopProgress := progressLoop(o.Progress, "resp/s", false, receivers, win.measure)
	wg.Wait()
	stopProgress()
	finish := time.Now()
	if !win.end.IsZero() && finish.After(win.end) {
		finish = win.end
	}
	return outcome{stats: all, window: max(finish.Sub(win.measure), 0)}
}

// runOpen sends datagram k of this socket at start+phase+k*interval from a second
// goroutine while this one receives.
func (w *udpWorker) runOpen(ss, rs *stats, win window, phase, interval time.Duration, limit uint64, claimed *atomic.Uint64) {
	var (
		sentAll  atomic.Uint64 // 1 + the last sequence number written
		lastSend atomic.Int64  // UnixNano of the last write
		done     atomic.Bool   // the sender has finished
		finished = make(chan struct{})
	)
	go func() {
		defer close(finished)
		defer done.Store(true)
		sl := newSleeper(w.ctx)
		defer sl.close()
		for k := uint64(0); ; k++ {
			sched := win.start.Add(phase + time.Duration(k)*interval)
			if win.over(sched) || w.ctx.Err() != nil {
				return
			}
			ss.measuring = !sched.Before(win.measure)
			if ss.measuring && limit > 0 && claimed.Add(1) > limit {
				return
			}
			if d := time.Until(sched); d > 0 && !sl.sleep(d) {
				return
			}
			if now := time.Now(); win.over(now) {
				// Fallen behind past the end: the slots left are not sent.
				if ss.measuring {
					ss.unsent = uint64(win.end.Sub(sched)+interval-1) / uint64(interval)
					if limit > 0 {
						ss.unsent = min(ss.unsent, limit-min(claimed.Load(), limit)+1)
					}
				}
				return
			}
			err := w.send(ss, k, sched)
			if err != nil {
				if w.ctx.Err() != nil {
					return
				}
				if ss.measuring {
					ss.errors[classify(err, false)]++
					ss.errs.Add(1)
				}
				continue
			}
			lastSend.Store(time.Now().UnixNano())
			sentAll.Store(k + 1)
		}
	}()

	// answered remembers answered sequence numbers to ignore duplicates; a ring big
	// enough for every datagram that can be in flight within the timeout.
	ringSize := 1024
	for float64(ringSize) < 2*w.u.timeout.Seconds()/interval.Seconds() && ringSize < 1<<22 {
		ringSize <<= 1
	}
	answered := make([]uint64, ringSize) // seq+1 of the last answer in each slot
	var answeredAll uint64
	for {
		if done.Load() {
			last := time.Unix(0, lastSend.Load())
			if answeredAll >= sentAll.Load() || time.Since(last) > w.u.timeout || w.ctx.Err() != nil {
				break
			}
		}
		w.conn.SetReadDeadline(time.Now().Add(50 * time.Millisecond)) //nolint:errcheck
		n, err := w.conn.Read(w.in)
		now := time.Now()
		if err != nil {
			if w.ctx.Err() != nil {
				break
			}
			if k := classify(err, false); k != kindTimeout {
				rs.errors[k]++
				rs.errs.Add(1)
			}
			continue
		}
		seq, sched, ok := w.parse(w.in[:n])
		// seq == sentAll: the sender has written it but not yet stored the count.
		if !ok || seq > sentAll.Load() {
			rs.strays++
			continue
		}
		slot := &answered[seq&uint64(ringSize-1)]
		if *slot == seq+1 {
			rs.strays++ // a duplicate
			continue
		}
		*slot = seq + 1
		answeredAll++
		rs.measuring = !sched.Before(win.measure)
		rs.recvBytes(n)
		lat := now.Sub(sched)
		switch {
		case lat > w.u.timeout:
			if rs.measuring {
				rs.late++
			}
		case rs.measuring:
			rs.record(kindNone, lat)
		default:
			rs.warmupOps++
		}
	}
	// Every measured datagram without an answer in time timed out.
	<-finished
	if ans := rs.ops.Load(); ss.sent > ans {
		rs.errors[kindTimeout] += ss.sent - ans
	}
}
