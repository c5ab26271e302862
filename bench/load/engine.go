package load

import (
	"context"
	"io"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// worker performs ops for the engine, from one goroutine only.
type worker interface {
	// op performs one operation now, counting its connections and bytes in st, and
	// reports its outcome; the engine measures its latency.
	op(st *stats) errKind
	close()
}

// plan is one run of the engine.
type plan struct {
	workers  int
	rate     float64 // > 0: open loop
	duration time.Duration
	warmup   time.Duration
	limit    uint64 // ops started in the window; 0: none
	progress io.Writer
	unit     string // progress unit: "req/s", "conn/s", ...
	// newWorker makes worker i. ctx ends when the run is cancelled from outside, so
	// a worker can abort its blocked I/O with it.
	newWorker func(ctx context.Context, i int) worker
	// dials, when set, counts the connections of workers that share a transport.
	dials *dialCounter
}

// outcome is what the engine measured.
type outcome struct {
	stats  []*stats
	window time.Duration
	unsent uint64
}

// fill sets the Result fields the engine knows.
func (o *outcome) fill(r *Result) {
	r.Duration = o.window
	merge(r, o.stats)
	r.Unsent += o.unsent
}

// window is a run's time frame: ops starting (or scheduled) before measure are warmup,
// none start at or after end (zero: no deadline).
type window struct{ start, measure, end time.Time }

func (w window) over(t time.Time) bool { return !w.end.IsZero() && !t.Before(w.end) }

func (p *plan) run(ctx context.Context) outcome {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	now := time.Now()
	win := window{start: now, measure: now.Add(p.warmup)}
	if p.duration > 0 {
		win.end = win.measure.Add(p.duration)
	}
	if p.dials != nil {
		p.dials.from.Store(win.measure.UnixNano())
	}
	all := make([]*stats, p.workers)
	for i := range all {
		all[i] = newStats()
	}
	stopProgress := progressLoop(p.progress, p.unit, false, all, win.measure)

	var wg sync.WaitGroup
	var unsent uint64
	if p.rate > 0 {
		tokens := make(chan time.Time, p.workers)
		slots := p.slots(win)
		wg.Go(func() { dispatch(ctx, win, p.rate, slots.total, tokens) })
		for i, st := range all {
			w := p.newWorker(ctx, i)
			wg.Go(func() {
				defer w.close()
				openLoop(ctx, w, st, win, tokens)
			})
		}
		wg.Wait()
		var attempted uint64
		for _, st := range all {
			attempted += st.attempted
		}
		if ctx.Err() == nil && slots.window > attempted {
			unsent = slots.window - attempted
		}
	} else {
		var claimed atomic.Uint64
		for i, st := range all {
			w := p.newWorker(ctx, i)
			wg.Go(func() {
				defer w.close()
				closedLoop(ctx, w, st, win, p.limit, &claimed)
			})
		}
		wg.Wait()
	}
	finish := time.Now()
	stopProgress()

	if !win.end.IsZero() && finish.After(win.end) {
		finish = win.end // ops in flight at the deadline count, the window does not grow
	}
	out := outcome{stats: all, window: max(finish.Sub(win.measure), 0), unsent: unsent}
	if p.dials != nil && len(all) > 0 {
		all[0].conns += p.dials.conns.Load()
		all[0].warmupConns += p.dials.warmup.Load()
	}
	return out
}

// closedLoop runs ops back to back. An op failing after ctx ended was aborted by us,
// not by the target, and is not counted.
func closedLoop(ctx context.Context, w worker, st *stats, win window, limit uint64, claimed *atomic.Uint64) {
	for ctx.Err() == nil {
		start := time.Now()
		if win.over(start) {
			return
		}
		measuring := !start.Before(win.measure)
		if measuring && limit > 0 && claimed.Add(1) > limit {
			return
		}
		st.measuring = measuring
		k := w.op(st)
		if k != kindNone && ctx.Err() != nil {
			return
		}
		st.account(k, measuring, time.Since(start))
	}
}

// openLoop runs an op for every scheduled time it gets.
func openLoop(ctx context.Context, w worker, st *stats, win window, tokens <-chan time.Time) {
	for sched := range tokens {
		if ctx.Err() != nil {
			return
		}
		measuring := !sched.Before(win.measure)
		st.measuring = measuring
		if measuring {
			st.attempted++
		}
		k := w.op(st)
		if k != kindNone && ctx.Err() != nil {
			return
		}
		// Latency from the scheduled time: waiting for a free connection is part of it.
		st.account(k, measuring, time.Since(sched))
	}
}

// account counts an op's outcome.
func (s *stats) account(k errKind, measuring bool, lat time.Duration) {
	switch {
	case measuring:
		s.record(k, lat)
	case k == kindNone:
		s.warmupOps++
	}
}

// slotCount is how many ops an open-loop run schedules: in all, and in the window.
type slotCount struct{ total, window uint64 }

// slots counts the schedule: slot i is due at start + i/rate; slots due before the
// measure time are warmup, none is due at or after the end; limit caps the window's.
func (p *plan) slots(win window) slotCount {
	interval := float64(time.Second) / p.rate
	warm := uint64(math.Ceil(float64(p.warmup) / interval))
	total := uint64(math.MaxUint64)
	if !win.end.IsZero() {
		total = uint64(math.Ceil(float64(win.end.Sub(win.start)) / interval))
	}
	if p.limit > 0 && warm+p.limit < total {
		total = warm + p.limit
	}
	return slotCount{total: total, window: total - min(warm, total)}
}

// dispatch sends the scheduled time of every slot to the workers. When they are all
// busy it blocks and then catches up, handing out the late slots with their original
// times so that the wait is charged to them. At the end of the window it stops; the
// slots it could not hand out by then are unsent.
func dispatch(ctx context.Context, win window, rate float64, total uint64, tokens chan<- time.Time) {
	defer close(tokens)
	interval := float64(time.Second) / rate
	var endC <-chan time.Time
	if !win.end.IsZero() {
		t := time.NewTimer(time.Until(win.end))
		defer t.Stop()
		endC = t.C
	}
	sl := newSleeper(ctx)
	defer sl.close()
	for i := uint64(0); i < total; i++ {
		sched := win.start.Add(time.Duration(float64(i) * interval))
		if d := time.Until(sched); d > 0 && !sl.sleep(d) { // every slot is due before the end
			return
		}
		select {
		case tokens <- sched: // a worker is free: never lose a due slot to the end timer
			continue
		default:
		}
		select {
		case tokens <- sched:
		case <-endC:
			return
		case <-ctx.Done():
			return
		}
	}
}

// dialCounter counts the connections of a transport shared by workers.
type dialCounter struct {
	from          atomic.Int64 // UnixNano of the window's start
	conns, warmup atomic.Uint64
}

func (d *dialCounter) count() {
	if time.Now().UnixNano() >= d.from.Load() {
		d.conns.Add(1)
	} else {
		d.warmup.Add(1)
	}
}
