package pool

import (
	"slices"
	"strings"
)

// maglev is weighted Maglev hashing (Eisenbud et al., NSDI'16): every backend
// walks its own permutation of the table's slots, claiming the next free slot
// on its turn, and takes turns in proportion to its weight (Katran's
// weighted variant: a backend claims whenever its accumulated weight reaches
// the largest weight). A pick is table[key % M]. Unhealthy backends leave by
// rebuilding the table with the snapshot; about 1/N of keys move when one of
// N backends leaves.
type maglev struct {
	backends []*Backend
	table    []int32 // indices into backends
}

func newMaglev(bs []*Backend, ws []int, size int) *maglev {
	ids := make([]string, len(bs))
	for i, b := range bs {
		ids[i] = b.id
	}
	return &maglev{backends: bs, table: maglevTable(ids, ws, size)}
}

func (m *maglev) Pick(key uint64) *Backend {
	return m.backends[m.table[key%uint64(len(m.table))]]
}

// maglevTable fills a table of size slots (a prime) with indices into ids.
// The result depends only on the set of (id, weight) pairs, not on their
// order, so gateway nodes given the same backends build the same table:
// backends take turns in ID order, and each one's permutation comes from a
// fixed hash of its ID.
func maglevTable(ids []string, weights []int, size int) []int32 {
	n := len(ids)
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return strings.Compare(ids[a], ids[b]) })

	m := uint64(size)
	next := make([]uint64, n) // each backend's next preferred slot
	skip := make([]uint64, n)
	acc := make([]int, n)
	maxW := 0
	for k, i := range order {
		next[k], skip[k] = maglevPermutation(ids[i], m)
		maxW = max(maxW, weights[i])
	}

	table := make([]int32, size)
	for i := range table {
		table[i] = -1
	}
	for filled := 0; ; {
		for k, i := range order {
			if acc[k] += weights[i]; acc[k] < maxW {
				continue
			}
			acc[k] -= maxW
			c := next[k]
			for table[c] >= 0 {
				if c += skip[k]; c >= m {
					c -= m
				}
			}
			table[c] = int32(i)
			if next[k] = c + skip[k]; next[k] >= m {
				next[k] -= m
			}
			if filled++; filled == size {
				return table
			}
		}
	}
}

// maglevPermutation returns the first slot and the step of id's permutation
// of m slots (m prime, so every step in 1..m-1 visits every slot). The hash
// is fixed (FNV-1a 64 of the ID, then two SplitMix64 finalizers), never
// Go's per-process seeded hashes, so every node computes the same values.
func maglevPermutation(id string, m uint64) (offset, skip uint64) {
	h := fnv1a64(id)
	return mix64(h) % m, mix64(h^0x9e3779b97f4a7c15)%(m-1) + 1
}

// maglevTableSize is the table size for groups of up to 655 backends: a
// prime (Katran's default) with at least 100 slots per backend.
const maglevTableSize = 65537

// maglevSize is the table size for a pool of n configured backends: a prime
// above 100*n. Up to 655 backends it is always 65537, so adding or removing
// a backend never resizes the table (a resize would remap nearly every key),
// and the extra keys moved when one of N backends leaves stay well under
// one percent (with about 100 slots per backend they reach 2-4%, beyond the
// 1/N a consistent hash promises). Larger groups get the smallest prime at
// or above the power of two above 100*n.
func maglevSize(n int) int {
	if 100*n < maglevTableSize {
		return maglevTableSize
	}
	p := 1
	for p <= 100*n {
		p <<= 1
	}
	return nextPrime(p)
}

func nextPrime(x int) int {
	for !isPrime(x) {
		x++
	}
	return x
}

func isPrime(x int) bool {
	if x < 2 {
		return false
	}
	if x%2 == 0 {
		return x == 2
	}
	for d := 3; d*d <= x; d += 2 {
		if x%d == 0 {
			return false
		}
	}
	return true
}
