package limit

import (
	"math"
	"sync/atomic"
	"time"
)

// Rate admits events at up to a rate per second, with a burst of up to one
// second's worth (at least one event). The zero value and a nil *Rate admit
// everything.
type Rate struct {
	// interval is the nanoseconds between events at the rate (0: no limit);
	// tolerance how far ahead of the schedule a burst may run.
	interval  atomic.Int64
	tolerance atomic.Int64
	// tat is the theoretical arrival time of the next event, on the clock
	// of the caller's now.
	tat atomic.Int64
}

// NewRate returns a rate of perSecond events (0: unlimited).
func NewRate(perSecond uint64) *Rate {
	r := &Rate{}
	r.Set(perSecond)
	return r
}

// Set changes the rate in place; the schedule carries on.
func (r *Rate) Set(perSecond uint64) {
	if perSecond == 0 {
		r.interval.Store(0)
		return
	}
	iv := int64(math.Max(1, math.Round(float64(time.Second)/float64(perSecond))))
	r.interval.Store(iv)
	// A second's worth of burst: a client that paused may catch up, but
	// never more than the limit over any second.
	r.tolerance.Store(max(int64(time.Second)-iv, 0))
}

// PerSecond is the configured rate, 0 when unlimited.
func (r *Rate) PerSecond() uint64 {
	if r == nil {
		return 0
	}
	iv := r.interval.Load()
	if iv == 0 {
		return 0
	}
	return uint64(math.Round(float64(time.Second) / float64(iv)))
}

// Allow reports whether one event at now (nanoseconds on a monotonic
// clock) fits the rate, and counts it if so.
func (r *Rate) Allow(now int64) bool {
	if r == nil {
		return true
	}
	iv := r.interval.Load()
	if iv == 0 {
		return true
	}
	tol := r.tolerance.Load()
	for {
		tat := r.tat.Load()
		next := max(tat, now) + iv
		if next-now > tol+iv {
			return false // ahead of the schedule by more than the burst
		}
		if r.tat.CompareAndSwap(tat, next) {
			return true
		}
	}
}
