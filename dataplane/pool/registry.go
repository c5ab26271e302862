package pool

import (
	"net/netip"
	"slices"
	"strings"
	"sync"
)

// Registry interns backends by address:port so that every pool built from it
// shares one Backend per address:port. One Registry serves the whole daemon
// (every engine); health checks find backends here. A backend leaves the
// registry when the last pool naming it drops it.
type Registry struct {
	mu sync.Mutex
	m  map[string]*regEntry
}

type regEntry struct {
	b    *Backend
	refs int
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{m: make(map[string]*regEntry)} }

// Lookup returns the backend with this ID, or nil.
func (r *Registry) Lookup(id string) *Backend {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e := r.m[id]; e != nil {
		return e.b
	}
	return nil
}

// Backends returns every backend in use by some pool, sorted by ID.
func (r *Registry) Backends() []*Backend {
	r.mu.Lock()
	out := make([]*Backend, 0, len(r.m))
	for _, e := range r.m {
		out = append(out, e.b)
	}
	r.mu.Unlock()
	slices.SortFunc(out, func(a, b *Backend) int { return strings.Compare(a.id, b.id) })
	return out
}

func (r *Registry) acquire(addr netip.Addr, port uint16) *Backend {
	id := BackendID(addr, port)
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.m[id]
	if e == nil {
		e = &regEntry{b: newBackend(addr.Unmap(), port)}
		r.m[id] = e
	}
	e.refs++
	return e.b
}

func (r *Registry) release(b *Backend) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.m[b.id]
	if e == nil || e.b != b {
		return
	}
	if e.refs--; e.refs <= 0 {
		delete(r.m, b.id)
	}
}
