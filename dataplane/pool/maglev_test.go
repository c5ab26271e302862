package pool

import (
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestMaglevTableSize(t *testing.T) {
	for _, n := range []int{1, 2, 5, 10, 37, 100, 1000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			ws := make([]int, n)
			for i := range ws {
				ws[i] = 100
			}
			p := newPool(t, nil, Config{Scheduler: Maglev, Servers: servers(ws...)})
			m := len(p.Snapshot().MaglevTable())
			if !isPrime(m) || m <= 100*n {
				t.Errorf("table size %d: want a prime > %d", m, 100*n)
			}
			// Health changes never resize the table.
			member(p, 0).SetUp(false)
			if n > 1 && len(p.Snapshot().MaglevTable()) != m {
				t.Errorf("size changed to %d after a backend went down", len(p.Snapshot().MaglevTable()))
			}
		})
	}
}

func TestMaglevSlotSharesFollowWeights(t *testing.T) {
	tests := [][]int{
		{2, 1},
		{100, 50},
		{100, 100, 100, 100, 100},
		{10, 20, 30, 40},
		{100, 1},
	}
	for _, weights := range tests {
		t.Run(fmt.Sprint(weights), func(t *testing.T) {
			p := newPool(t, nil, Config{Scheduler: Maglev, Servers: servers(weights...)})
			table := p.Snapshot().MaglevTable()
			counts := make([]int, len(weights))
			for _, i := range table {
				counts[i]++
			}
			sum := 0
			for _, w := range weights {
				sum += w
			}
			for i, w := range weights {
				share := float64(counts[i]) / float64(len(table))
				if want := float64(w) / float64(sum); math.Abs(share-want) > 0.01 {
					t.Errorf("backend %d (weight %d): %.4f of slots, want %.4f", i, w, share, want)
				}
			}
		})
	}
}

// keys returns n flow hashes.
func keys(n int) []uint64 {
	rng := rand.New(rand.NewPCG(42, 43))
	out := make([]uint64, n)
	for i := range out {
		out[i] = rng.Uint64()
	}
	return out
}

func lookups(t *testing.T, p *Pool, ks []uint64) []string {
	t.Helper()
	out := make([]string, len(ks))
	for i, k := range ks {
		b, err := p.Pick(k)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = b.ID()
	}
	return out
}

// Removing one of N backends moves about 1/N of the keys: those of the
// removed backend, and few others.
func TestMaglevDisruption(t *testing.T) {
	ks := keys(10_000)
	for _, n := range []int{5, 10} {
		ws := make([]int, n)
		for i := range ws {
			ws[i] = 100
		}
		for _, how := range []string{"down", "drain", "removed"} {
			t.Run(fmt.Sprintf("N=%d/%s", n, how), func(t *testing.T) {
				p := newPool(t, nil, Config{Scheduler: Maglev, Servers: servers(ws...)})
				gone := member(p, n/2).ID()
				before := lookups(t, p, ks)
				switch how {
				case "down":
					member(p, n/2).SetUp(false)
				case "drain":
					member(p, n/2).SetAdmin(AdminDrain)
				case "removed":
					s := servers(ws...)
					if err := p.Update(Config{Scheduler: Maglev, Servers: slices.Delete(s, n/2, n/2+1)}); err != nil {
						t.Fatal(err)
					}
				}
				after := lookups(t, p, ks)
				moved := 0
				for i := range ks {
					if after[i] == gone {
						t.Fatalf("key %d still maps to the removed backend", ks[i])
					}
					if after[i] != before[i] {
						moved++
					}
				}
				frac, want := float64(moved)/float64(len(ks)), 1/float64(n)
				t.Logf("moved %.4f of keys, 1/N = %.4f", frac, want)
				if math.Abs(frac-want) > 0.02 {
					t.Errorf("moved %.4f of keys, want %.4f ± 0.02", frac, want)
				}
			})
		}
	}
}

// Gateway nodes must agree: the same backends in any order, in separate
// registries, give the same table.
func TestMaglevDeterministic(t *testing.T) {
	base := servers(100, 50, 100, 20, 100, 7, 100)
	want := slotIDs(t, newPool(t, nil, Config{Scheduler: Maglev, Servers: base}))
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 5 {
		shuffled := slices.Clone(base)
		rng.Shuffle(len(shuffled), func(a, b int) { shuffled[a], shuffled[b] = shuffled[b], shuffled[a] })
		got := slotIDs(t, newPool(t, NewRegistry(), Config{Scheduler: Maglev, Servers: shuffled}))
		if !slices.Equal(got, want) {
			t.Fatalf("order %d: table differs", i)
		}
	}
}

// The table is a function of the backend IDs only, across versions too:
// nodes running different builds during an upgrade must agree. If this
// fails, the hash, the size or the fill changed, and mixed-version clusters
// would send one flow to different backends.
func TestMaglevGolden(t *testing.T) {
	p := newPool(t, nil, Config{Scheduler: Maglev, Servers: servers(100, 100, 50)})
	ids := slotIDs(t, p)
	h := fnv.New64a()
	for _, id := range ids {
		h.Write([]byte(id))
		h.Write([]byte{0})
	}
	got := fmt.Sprintf("%d slots, first %v, fnv64a %#x", len(ids), ids[:3], h.Sum64())
	const want = "65537 slots, first [10.0.1.1:8080 10.0.1.1:8080 10.0.1.1:8080], fnv64a 0x9c91fc9c3148a09f"
	if got != want {
		t.Errorf("table = %s\nwant    %s", got, want)
	}
}

func slotIDs(t *testing.T, p *Pool) []string {
	t.Helper()
	s := p.Snapshot()
	el := s.Eligible()
	table := s.MaglevTable()
	out := make([]string, len(table))
	for i, j := range table {
		out[i] = el[j].Backend.ID()
	}
	return out
}
