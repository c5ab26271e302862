package pool

import "sync/atomic"

// roundRobin gives every eligible backend equal turns; weights only decide
// eligibility (0 never).
type roundRobin struct {
	backends []*Backend
	cursor   *atomic.Uint64
}

func (r *roundRobin) Pick(uint64) *Backend {
	n := r.cursor.Add(1) - 1
	return r.backends[n%uint64(len(r.backends))]
}
