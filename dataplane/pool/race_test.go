package pool

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// Picks run while health and admin state flip and Update reloads the pool.
// Run with -race. A backend disabled for the whole test is never picked,
// and once the writers stop the snapshot reflects the final state.
func TestConcurrentPicksHealthAndUpdate(t *testing.T) {
	for _, kind := range []Kind{RR, WRR, WLC, Maglev} {
		t.Run(kind.String(), func(t *testing.T) {
			reg := NewRegistry()
			cfgs := []Config{
				{Scheduler: kind, Servers: servers(100, 50, 100, 20, 100), Persistence: time.Minute},
				{Scheduler: kind, Servers: servers(100, 50, 100, 20), Persistence: time.Minute},
				{Scheduler: kind, Servers: servers(10, 100, 100, 20, 100, 30), Persistence: time.Minute},
			}
			p := newPool(t, reg, cfgs[0])
			never := member(p, 2) // in every configuration, always disabled
			never.SetAdmin(AdminDisabled)

			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			for g := range 4 {
				wg.Go(func() {
					for i := uint64(0); ctx.Err() == nil; i++ {
						var b *Backend
						var err error
						if i%2 == 0 {
							b, err = p.Pick(i * 0x9e3779b97f4a7c15)
						} else {
							b, err = p.PickSticky(netip.AddrFrom4([4]byte{198, 51, 100, byte(g*64 + int(i%64))}), i)
						}
						if err == nil {
							if b == never {
								t.Error("picked the disabled backend")
								return
							}
							b.Acquire()
							b.Release()
						}
					}
				})
			}
			wg.Go(func() { // health checker
				for i := 0; ctx.Err() == nil; i++ {
					for _, b := range reg.Backends() {
						if b != never {
							b.SetUp(i%3 != 0)
						}
					}
				}
			})
			wg.Go(func() { // operator drains and enables
				for i := 0; ctx.Err() == nil; i++ {
					if b := reg.Lookup(servers(1)[0].Addr.String() + ":8080"); b != nil {
						b.SetAdmin([]AdminState{AdminEnabled, AdminDrain}[i%2])
					}
				}
			})
			wg.Go(func() { // reloads
				for i := 0; ctx.Err() == nil; i++ {
					if err := p.Update(cfgs[i%len(cfgs)]); err != nil {
						t.Error(err)
						return
					}
				}
			})
			time.Sleep(300 * time.Millisecond)
			cancel()
			wg.Wait()

			// Settle every backend up and enabled (except never): the last
			// rebuild must see it.
			for _, b := range reg.Backends() {
				b.SetUp(true)
				if b != never {
					b.SetAdmin(AdminEnabled)
				}
			}
			s := p.Snapshot()
			for _, m := range s.Members() {
				if want := m.Backend != never && m.Weight > 0; (s.Lookup(m.Backend.ID()) != nil) != want {
					t.Errorf("%v: eligible=%v, want %v", m.Backend, !want, want)
				}
				if m.Backend.Active() != 0 {
					t.Errorf("%v: active %d after every release", m.Backend, m.Backend.Active())
				}
			}
		})
	}
}
