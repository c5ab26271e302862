package pool

import (
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// servers returns one server per weight: 10.0.1.1:8080, 10.0.1.2:8080, ...
func servers(weights ...int) []Server {
	out := make([]Server, len(weights))
	for i, w := range weights {
		out[i] = Server{Addr: netip.AddrFrom4([4]byte{10, 0, byte(1 + i/250), byte(1 + i%250)}), Port: 8080, Weight: w}
	}
	return out
}

func newPool(t testing.TB, reg *Registry, cfg Config, opts ...Option) *Pool {
	t.Helper()
	if reg == nil {
		reg = NewRegistry()
	}
	p, err := New(reg, cfg, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(p.Close)
	return p
}

// letters names members a, b, c... by configuration order.
func letters(p *Pool) map[*Backend]string {
	out := map[*Backend]string{}
	for i, m := range p.Snapshot().Members() {
		out[m.Backend] = string(rune('a' + i))
	}
	return out
}

// pickSeq returns n picks as letters ("-" for no backend).
func pickSeq(t testing.TB, p *Pool, n int) string {
	t.Helper()
	name := letters(p)
	var sb strings.Builder
	for i := range n {
		b, err := p.Pick(uint64(i))
		if err != nil {
			sb.WriteByte('-')
			continue
		}
		sb.WriteString(name[b])
	}
	return sb.String()
}

// member returns the i-th configured backend.
func member(p *Pool, i int) *Backend { return p.Snapshot().Members()[i].Backend }

// countPicks picks n times and counts by configuration index.
func countPicks(t testing.TB, p *Pool, n int) []int {
	t.Helper()
	ms := p.Snapshot().Members()
	idx := map[*Backend]int{}
	for i, m := range ms {
		idx[m.Backend] = i
	}
	counts := make([]int, len(ms))
	for i := range n {
		b, err := p.Pick(uint64(i) * 0x9e3779b97f4a7c15)
		if err != nil {
			t.Fatalf("pick %d: %v", i, err)
		}
		counts[idx[b]]++
	}
	return counts
}

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}
