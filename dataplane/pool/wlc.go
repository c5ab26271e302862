package pool

import "sync/atomic"

// leastConn is weighted least connections: the backend with the smallest
// active/weight wins, compared without division (a_i*w_j < a_j*w_i). Ties go
// by the smooth WRR order: the scan starts at the backend WRR would pick next
// and only a strictly smaller ratio displaces it, so among equals WRR decides
// (with every backend idle, wlc picks exactly the WRR sequence).
type leastConn struct {
	backends []*Backend
	weights  []int64
	wrr      weightedRoundRobin
}

func newLeastConn(bs []*Backend, ws []int, cursor *atomic.Uint64) *leastConn {
	lc := &leastConn{
		backends: bs,
		weights:  make([]int64, len(ws)),
		wrr:      weightedRoundRobin{backends: bs, seq: smoothSequence(ws), cursor: cursor},
	}
	for i, w := range ws {
		lc.weights[i] = int64(w)
	}
	return lc
}

func (l *leastConn) Pick(uint64) *Backend {
	n := len(l.backends)
	best := int(l.wrr.seq[l.wrr.next()])
	bestActive, bestWeight := l.backends[best].Active(), l.weights[best]
	for j, i := 1, best+1; j < n; j, i = j+1, i+1 {
		if i == n {
			i = 0
		}
		a := l.backends[i].Active()
		if a*bestWeight < bestActive*l.weights[i] {
			best, bestActive, bestWeight = i, a, l.weights[i]
		}
	}
	return l.backends[best]
}
