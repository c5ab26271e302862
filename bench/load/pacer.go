package load

import (
	"context"
	"time"
)

// sleeper waits for open-loop send times. Go's timers wake up to a millisecond late
// here (the netpoller waits with millisecond timeouts), which an open loop would
// charge to every request as latency; on Linux a timerfd wakes within tens of µs.
type sleeper interface {
	// sleep waits d and reports false if the context ended first.
	sleep(d time.Duration) bool
	close()
}

// timerSleeper is the portable sleeper.
type timerSleeper struct {
	ctx context.Context
	t   *time.Timer
}

func newTimerSleeper(ctx context.Context) *timerSleeper {
	return &timerSleeper{ctx: ctx, t: time.NewTimer(time.Hour)}
}

func (s *timerSleeper) sleep(d time.Duration) bool {
	s.t.Reset(d)
	select {
	case <-s.t.C:
		return true
	case <-s.ctx.Done():
		return false
	}
}

func (s *timerSleeper) close() { s.t.Stop() }
