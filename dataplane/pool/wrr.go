package pool

import "sync/atomic"

// maxSequence bounds a precomputed smooth WRR sequence. Weights are at most
// 100, so sum/gcd fits exactly for up to 327 backends of any weights; larger
// groups get weights scaled to the bound (each off by less than one part in
// its scaled weight).
const maxSequence = 1 << 15

// weightedRoundRobin is NGINX's smooth weighted round robin, precomputed:
// the sequence the algorithm produces repeats after sum(weights)/gcd picks,
// so the snapshot stores one period and an atomic counter walks it. Picking
// is then one atomic add and an index, with no lock; the sequence is rebuilt
// with the snapshot whenever the eligible set changes.
type weightedRoundRobin struct {
	backends []*Backend
	seq      []int32 // indices into backends
	cursor   *atomic.Uint64
}

func newWeightedRoundRobin(bs []*Backend, ws []int, cursor *atomic.Uint64) *weightedRoundRobin {
	return &weightedRoundRobin{backends: bs, seq: smoothSequence(ws), cursor: cursor}
}

func (w *weightedRoundRobin) Pick(uint64) *Backend {
	return w.backends[w.seq[w.next()]]
}

func (w *weightedRoundRobin) next() uint64 {
	return (w.cursor.Add(1) - 1) % uint64(len(w.seq))
}

// smoothSequence returns one period of NGINX's smooth WRR over weights (all
// > 0): each turn every current weight grows by its weight, the largest
// (first on ties) is picked and loses the total. 5,1,1 gives 0 0 1 0 2 0 0.
func smoothSequence(weights []int) []int32 {
	ws := make([]int64, len(weights))
	g := int64(0)
	for i, w := range weights {
		ws[i] = int64(w)
		g = gcd(g, ws[i])
	}
	var total int64
	for i := range ws {
		ws[i] /= g
		total += ws[i]
	}
	if total > maxSequence {
		// Dividing by the gcd keeps the sequence exact; scaling does not,
		// so it is the fallback for very large groups only.
		scaled := int64(0)
		for i := range ws {
			ws[i] = max(1, ws[i]*maxSequence/total)
			scaled += ws[i]
		}
		total = scaled
	}
	seq := make([]int32, total)
	cur := make([]int64, len(ws))
	for t := range seq {
		best := 0
		for i := range cur {
			cur[i] += ws[i]
			if cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= total
		seq[t] = int32(best)
	}
	return seq
}

func gcd(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
