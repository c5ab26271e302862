package pool

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"
)

const stickyTimeout = 300 * time.Second

func stickyPool(t *testing.T, clk *fakeClock, weights ...int) *Pool {
	t.Helper()
	return newPool(t, nil, Config{Scheduler: RR, Servers: servers(weights...), Persistence: stickyTimeout},
		WithClock(clk.Now))
}

func mustPickSticky(t *testing.T, p *Pool, client netip.Addr) *Backend {
	t.Helper()
	b, err := p.PickSticky(client, 0)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var client = netip.MustParseAddr("198.51.100.7")

func TestPersistenceHoldsUntilTimeout(t *testing.T) {
	clk := newFakeClock()
	p := stickyPool(t, clk, 100, 100)
	first := mustPickSticky(t, p, client)
	// Each use restarts the timeout: an hour of picks 299 s apart stays put,
	// while rr alone would alternate.
	for range 12 {
		clk.Advance(stickyTimeout - time.Second)
		if b := mustPickSticky(t, p, client); b != first {
			t.Fatalf("moved to %v before the timeout", b)
		}
	}
	other := netip.MustParseAddr("198.51.100.8")
	if b := mustPickSticky(t, p, other); b == first {
		t.Fatalf("second client also on %v: rr should have moved on", b)
	}
	// Idle for the timeout: the entry is gone and the scheduler decides
	// (rr's next turn is the first backend's again, so take one turn).
	clk.Advance(stickyTimeout)
	if _, ok := p.Persistence().Get(client); ok {
		t.Fatal("entry alive after the timeout")
	}
	if _, err := p.Pick(0); err != nil {
		t.Fatal(err)
	}
	if b := mustPickSticky(t, p, client); b == first {
		t.Errorf("still on %v after the timeout, want the scheduler's next pick", b)
	}
}

func TestPersistenceRepicksIneligible(t *testing.T) {
	tests := []struct {
		name    string
		disable func(b *Backend)
	}{
		{"down", func(b *Backend) { b.SetUp(false) }},
		{"drain", func(b *Backend) { b.SetAdmin(AdminDrain) }},
		{"disabled", func(b *Backend) { b.SetAdmin(AdminDisabled) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newFakeClock()
			p := stickyPool(t, clk, 100, 100)
			first := mustPickSticky(t, p, client)
			tt.disable(first)
			moved := mustPickSticky(t, p, client)
			if moved == first {
				t.Fatalf("still on %v after %s", first, tt.name)
			}
			// The client now sticks to its new backend, even when the old one
			// comes back.
			first.SetUp(true)
			first.SetAdmin(AdminEnabled)
			if b := mustPickSticky(t, p, client); b != moved {
				t.Errorf("went back to %v, want to stay on %v", b, moved)
			}
		})
	}
}

func TestPersistenceWeightZeroRepicked(t *testing.T) {
	clk := newFakeClock()
	p := stickyPool(t, clk, 100, 100)
	first := mustPickSticky(t, p, client)
	s := servers(100, 100)
	for i := range s {
		if member(p, i) == first {
			s[i].Weight = 0
		}
	}
	if err := p.Update(Config{Scheduler: RR, Servers: s, Persistence: stickyTimeout}); err != nil {
		t.Fatal(err)
	}
	if b := mustPickSticky(t, p, client); b == first {
		t.Errorf("weight 0 backend %v still picked", b)
	}
}

// Persistence kept by the caller (cookies): the named backend while it is
// eligible, a fresh pick otherwise.
func TestPickPreferred(t *testing.T) {
	p := newPool(t, nil, Config{Scheduler: RR, Servers: servers(100, 100, 100)})
	b := member(p, 2)
	for range 5 {
		if got, err := p.PickPreferred(b.ID(), 0); got != b || err != nil {
			t.Fatalf("PickPreferred = %v, %v; want %v", got, err, b)
		}
	}
	b.SetAdmin(AdminDrain)
	for _, id := range []string{b.ID(), "10.9.9.9:80", ""} {
		if got, err := p.PickPreferred(id, 0); got == b || got == nil || err != nil {
			t.Errorf("PickPreferred(%q) = %v, %v; want another backend", id, got, err)
		}
	}
}

func TestPersistenceOff(t *testing.T) {
	p := newPool(t, nil, Config{Scheduler: RR, Servers: servers(1, 1)})
	a := mustPickSticky(t, p, client)
	if b := mustPickSticky(t, p, client); b == a {
		t.Errorf("persistence off, yet the client stayed on %v", a)
	}
	if n := p.Persistence().Len(); n != 0 {
		t.Errorf("%d entries with persistence off", n)
	}
}

// Many first packets of one client at once: all go to one backend.
func TestPersistenceConcurrentFirstPicks(t *testing.T) {
	p := stickyPool(t, newFakeClock(), 1, 1, 1, 1)
	for c := range 50 {
		cl := netip.AddrFrom4([4]byte{198, 51, 100, byte(c)})
		got := make([]*Backend, 8)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for g := range got {
			wg.Go(func() {
				<-start
				b, err := p.PickSticky(cl, 0)
				if err != nil {
					t.Error(err)
				}
				got[g] = b
			})
		}
		close(start)
		wg.Wait()
		for _, b := range got {
			if b != got[0] {
				t.Fatalf("client %v went to %v and %v", cl, got[0], b)
			}
		}
	}
}

func TestPersistenceTable(t *testing.T) {
	clk := newFakeClock()
	tab := NewPersistence[string](10*time.Second, clk.Now)
	tab.Put("k", "a")
	tests := []struct {
		name       string
		advance    time.Duration
		old, id    string
		wantActual string
	}{
		{"live entry from someone else wins", time.Second, "", "b", "a"},
		{"expected old is replaced", time.Second, "a", "b", "b"},
		{"expired entry is replaced", 10 * time.Second, "x", "c", "c"},
	}
	for _, tt := range tests {
		clk.Advance(tt.advance)
		if got := tab.CompareAndPut("k", tt.old, tt.id); got != tt.wantActual {
			t.Errorf("%s: CompareAndPut = %q, want %q", tt.name, got, tt.wantActual)
		}
	}
	tab.Put("gone", "a")
	clk.Advance(5 * time.Second)
	tab.Get("k") // used: survives the sweep below
	clk.Advance(5 * time.Second)
	if n := tab.Sweep(); n != 1 {
		t.Errorf("Sweep evicted %d, want 1", n)
	}
	if id, ok := tab.Get("k"); !ok || id != "c" {
		t.Errorf("Get(k) = %q, %v; want c, true", id, ok)
	}
	tab.Delete("k")
	if n := tab.Len(); n != 0 {
		t.Errorf("Len = %d after delete, want 0", n)
	}
}

func TestPersistenceRunStops(t *testing.T) {
	p := stickyPool(t, newFakeClock(), 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		p.Run(ctx)
		close(done)
	}()
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}
