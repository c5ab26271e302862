package pool

import (
	"fmt"
	"net/netip"
	"testing"
)

var benchKinds = []Kind{RR, WRR, WLC, Maglev}

func benchPool(b *testing.B, kind Kind, n int) *Pool {
	ws := make([]int, n)
	for i := range ws {
		ws[i] = 1 + (i*37)%100
	}
	return newPool(b, nil, Config{Scheduler: kind, Servers: servers(ws...)})
}

func BenchmarkPick(b *testing.B) {
	for _, kind := range benchKinds {
		for _, n := range []int{10, 100} {
			b.Run(fmt.Sprintf("%v/n=%d/serial", kind, n), func(b *testing.B) {
				p := benchPool(b, kind, n)
				b.ReportAllocs()
				key := uint64(0)
				for b.Loop() {
					key += 0x9e3779b97f4a7c15
					if _, err := p.Pick(key); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run(fmt.Sprintf("%v/n=%d/parallel", kind, n), func(b *testing.B) {
				p := benchPool(b, kind, n)
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					key := uint64(0)
					for pb.Next() {
						key += 0x9e3779b97f4a7c15
						if _, err := p.Pick(key); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
	}
}

// The sticky hit path: one table lookup under a shard lock, plus a clock read.
func BenchmarkPickSticky(b *testing.B) {
	setup := func(b *testing.B) (*Pool, []netip.Addr) {
		p := newPool(b, nil, Config{Scheduler: WRR, Servers: servers(100, 50, 20), Persistence: 300e9})
		clients := make([]netip.Addr, 1024)
		for i := range clients {
			clients[i] = netip.AddrFrom4([4]byte{198, 51, byte(i >> 8), byte(i)})
			p.PickSticky(clients[i], 0)
		}
		return p, clients
	}
	b.Run("serial", func(b *testing.B) {
		p, clients := setup(b)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			i++
			if _, err := p.PickSticky(clients[i%len(clients)], uint64(i)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		p, clients := setup(b)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				i++
				if _, err := p.PickSticky(clients[i%len(clients)], uint64(i)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// Rebuild cost paid by a health change (off the pick path).
func BenchmarkRebuild(b *testing.B) {
	for _, kind := range benchKinds {
		b.Run(fmt.Sprintf("%v/n=100", kind), func(b *testing.B) {
			p := benchPool(b, kind, 100)
			be := member(p, 0)
			b.ReportAllocs()
			up := false
			for b.Loop() {
				be.SetUp(up)
				up = !up
			}
		})
	}
}

// Picks allocate nothing, for every scheduler: plain, sticky (hit) and
// preferred.
func TestPickDoesNotAllocate(t *testing.T) {
	for _, kind := range benchKinds {
		t.Run(kind.String(), func(t *testing.T) {
			p := newPool(t, nil, Config{Scheduler: kind, Servers: servers(100, 50, 20, 0), Persistence: 300e9})
			p.PickSticky(client, 0)
			key := uint64(0)
			if n := testing.AllocsPerRun(1000, func() {
				key += 0x9e3779b97f4a7c15
				p.Pick(key)
				p.PickSticky(client, key)
				p.PickPreferred("10.0.1.2:8080", key)
			}); n != 0 {
				t.Errorf("%v allocations per pick", n)
			}
		})
	}
}
