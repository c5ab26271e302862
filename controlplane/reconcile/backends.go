package reconcile

import (
	"sync"

	"github.com/xlbproject/xlb/dataplane/health"
	"github.com/xlbproject/xlb/dataplane/pool"
)

// Backends holds the backend registries every engine builds its pools from.
//
// There is one registry per distinct health check (the zero Spec: no check),
// so that two listeners checking the same address:port the same way share
// one Backend, one health state and one active count, while a listener with
// a different check keeps its own verdict on the same server.
type Backends struct {
	mu   sync.Mutex
	regs map[health.Spec]*pool.Registry
}

// NewBackends returns an empty set of registries.
func NewBackends() *Backends { return &Backends{regs: make(map[health.Spec]*pool.Registry)} }

// Registry returns the registry for backends checked with spec.
func (b *Backends) Registry(spec health.Spec) *pool.Registry {
	b.mu.Lock()
	defer b.mu.Unlock()
	r := b.regs[spec]
	if r == nil {
		r = pool.NewRegistry()
		b.regs[spec] = r
	}
	return r
}

// All returns every backend some pool uses, from every registry: the same
// address:port appears once per distinct health check naming it.
func (b *Backends) All() []*pool.Backend {
	b.mu.Lock()
	regs := make([]*pool.Registry, 0, len(b.regs))
	for _, r := range b.regs {
		regs = append(regs, r)
	}
	b.mu.Unlock()
	var out []*pool.Backend
	for _, r := range regs {
		out = append(out, r.Backends()...)
	}
	return out
}
