package health

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"slices"
	"time"
)

// checker checks one Key. Its fields other than the immutable ones and rng
// are guarded by Manager.mu.
type checker struct {
	key    Key
	probe  probeFunc
	series series
	rng    *rand.Rand // used only by the checker's goroutine

	owners    []string
	counter   counter
	lastError string
	lastCheck time.Time
	since     time.Time
	removed   bool
	cancel    context.CancelFunc // nil until started
}

func (c *checker) status() Status {
	return Status{
		Key:       c.key,
		Owners:    slices.Clone(c.owners),
		State:     c.counter.state,
		Successes: c.counter.successes,
		Failures:  c.counter.failures,
		LastError: c.lastError,
		LastCheck: c.lastCheck,
		Since:     c.since,
	}
}

// firstDelay spreads the first checks of many checkers over one interval,
// so a thousand backends added at once are not checked in lockstep.
func (c *checker) firstDelay() time.Duration {
	return time.Duration(c.rng.Int64N(int64(c.key.Spec.Interval)))
}

// nextDelay is the interval ±10%, keeping checkers from drifting into step.
func (c *checker) nextDelay() time.Duration {
	iv := float64(c.key.Spec.Interval)
	return time.Duration(iv + (c.rng.Float64()*0.2-0.1)*iv)
}

// run checks until ctx ends.
func (m *Manager) run(ctx context.Context, c *checker) {
	defer m.wg.Done()
	t := time.NewTimer(c.firstDelay())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		start := time.Now()
		pctx, cancel := context.WithTimeout(ctx, c.key.Spec.Timeout)
		err := c.probe(pctx)
		cancel()
		if ctx.Err() != nil {
			return // stopped mid-check: the result means nothing
		}
		m.record(c, start, time.Since(start), err)
		t.Reset(c.nextDelay())
	}
}

func resultOf(err error) string {
	var ne net.Error
	switch {
	case err == nil:
		return resultSuccess
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return resultTimeout
	default:
		return resultFailure
	}
}
