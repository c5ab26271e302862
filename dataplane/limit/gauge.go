package limit

import "sync/atomic"

// Gauge bounds a count of things in progress (open connections). The zero
// value and a nil *Gauge admit everything (they still count, when not nil).
type Gauge struct {
	max atomic.Int64 // 0: unlimited
	n   atomic.Int64
}

// NewGauge returns a gauge of at most maxN (0: unlimited).
func NewGauge(maxN uint64) *Gauge {
	g := &Gauge{}
	g.Set(maxN)
	return g
}

// Set changes the bound in place; what is in progress stays counted. A
// lowered bound refuses new acquisitions until enough are released.
func (g *Gauge) Set(maxN uint64) { g.max.Store(int64(min(maxN, 1<<62))) }

// Acquire takes one unit if the bound allows; each successful Acquire needs
// one Release.
func (g *Gauge) Acquire() bool {
	if g == nil {
		return true
	}
	m := g.max.Load()
	if m == 0 {
		g.n.Add(1)
		return true
	}
	for {
		n := g.n.Load()
		if n >= m {
			return false
		}
		if g.n.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// Release returns one unit.
func (g *Gauge) Release() {
	if g != nil {
		g.n.Add(-1)
	}
}

// InUse is the current count.
func (g *Gauge) InUse() int64 {
	if g == nil {
		return 0
	}
	return g.n.Load()
}

// Max is the bound, 0 when unlimited.
func (g *Gauge) Max() uint64 {
	if g == nil {
		return 0
	}
	return uint64(g.max.Load())
}
