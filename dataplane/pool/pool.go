package pool

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

var (
	// ErrNoBackend means nothing in the pool is eligible; callers count it.
	ErrNoBackend = errors.New("pool: no eligible backend")
	// ErrClosed is returned by Update after Close.
	ErrClosed = errors.New("pool: closed")
)

// Pool is one server group as a listener picks from it: members, scheduler
// and type, plus the source-IP persistence table. Picks read an immutable
// Snapshot through an atomic pointer; every change (Update, or a member's
// health or admin state) builds a new Snapshot under the pool's own mutex
// and swaps it in.
type Pool struct {
	reg    *Registry
	snap   atomic.Pointer[Snapshot]
	cursor atomic.Uint64 // rr/wrr/wlc rotation, kept across snapshots
	sticky *Persistence[netip.Addr]

	mu      sync.Mutex // serializes Update, rebuilds and Close
	cfg     Config     // Servers not kept: members replace them
	members []Member
	version uint64
	closed  bool

	hooksMu  sync.Mutex
	hooks    map[uint64]func()
	nextHook uint64
}

// Option adjusts a pool at construction.
type Option func(*options)

type options struct{ clock func() time.Time }

// WithClock sets the persistence table's clock (tests).
func WithClock(now func() time.Time) Option { return func(o *options) { o.clock = now } }

// New builds a pool from cfg, interning its backends in reg. Close releases
// them when the pool is no longer used.
func New(reg *Registry, cfg Config, opts ...Option) (*Pool, error) {
	if reg == nil {
		return nil, errors.New("pool: nil registry")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("pool config: %w", err)
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	p := &Pool{
		reg:    reg,
		sticky: NewPersistence[netip.Addr](cfg.Persistence, o.clock),
		hooks:  make(map[uint64]func()),
	}
	p.mu.Lock()
	p.apply(cfg)
	p.mu.Unlock()
	return p, nil
}

// Update swaps in a new configuration atomically. Backends that stay
// (same address:port) keep their Backend, with its health, admin state and
// active count; persistence entries stay valid for them.
func (p *Pool) Update(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("pool config: %w", err)
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return ErrClosed
	}
	p.apply(cfg)
	p.mu.Unlock()
	p.notify()
	return nil
}

// apply installs cfg and rebuilds; p.mu held. New backends are acquired
// before old ones are released so survivors never leave the registry.
func (p *Pool) apply(cfg Config) {
	old := p.members
	members := make([]Member, len(cfg.Servers))
	for i, s := range cfg.Servers {
		members[i] = Member{Backend: p.reg.acquire(s.Addr, s.Port), Weight: s.Weight, Role: s.Role}
	}
	was := make(map[*Backend]bool, len(old))
	for _, m := range old {
		was[m.Backend] = true
	}
	for _, m := range members {
		if !was[m.Backend] {
			m.Backend.watch(p)
		}
		delete(was, m.Backend)
	}
	for b := range was {
		b.unwatch(p)
	}
	for _, m := range old {
		p.reg.release(m.Backend)
	}
	p.cfg = cfg
	p.cfg.Servers = nil
	p.members = members
	p.sticky.SetTimeout(cfg.Persistence)
	p.rebuild()
}

// refresh rebuilds after a member's health or admin state changed.
func (p *Pool) refresh() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.rebuild()
	p.mu.Unlock()
	p.notify()
}

// rebuild computes the eligible set from the members' current state and
// publishes a new snapshot; p.mu held. Reading state under p.mu after the
// change was stored means the last rebuild always sees the last change.
func (p *Pool) rebuild() {
	p.version++
	s := &Snapshot{
		version: p.version,
		typ:     p.cfg.Type,
		kind:    p.cfg.Scheduler,
		members: p.members,
	}
	if s.typ == MasterSlave {
		for _, role := range []Role{Master, Slave} {
			if m, ok := memberWithRole(p.members, role); ok && m.Eligible() {
				s.eligible = []Member{m}
				break
			}
		}
	} else {
		for _, m := range p.members {
			if m.Eligible() {
				s.eligible = append(s.eligible, m)
			}
		}
	}
	s.byID = make(map[string]*Backend, len(s.eligible))
	for _, m := range s.eligible {
		s.byID[m.Backend.id] = m.Backend
	}
	s.sched = newScheduler(s.kind, s.eligible, &p.cursor, maglevSize(len(p.members)))
	p.snap.Store(s)
}

func memberWithRole(ms []Member, r Role) (Member, bool) {
	for _, m := range ms {
		if m.Role == r {
			return m, true
		}
	}
	return Member{}, false
}

// Pick returns a backend for a new connection or request. key is the flow
// hash (maglev); others ignore it. It takes no lock and allocates nothing.
func (p *Pool) Pick(key uint64) (*Backend, error) {
	if b := p.snap.Load().sched.Pick(key); b != nil {
		return b, nil
	}
	return nil, ErrNoBackend
}

// PickSticky is Pick with source-IP persistence: a client returns to its
// backend until the persistence timeout since its last pick, unless that
// backend is no longer eligible, in which case it is re-picked. With
// persistence off it is Pick.
func (p *Pool) PickSticky(client netip.Addr, key uint64) (*Backend, error) {
	s := p.snap.Load()
	if p.sticky.Timeout() <= 0 {
		return p.Pick(key)
	}
	prev, ok := p.sticky.Get(client)
	if ok {
		if b := s.byID[prev]; b != nil {
			return b, nil
		}
	}
	b := s.sched.Pick(key)
	if b == nil {
		return nil, ErrNoBackend
	}
	// Two first packets of one client racing: the first stored pick wins.
	if actual := p.sticky.CompareAndPut(client, prev, b.id); actual != b.id {
		if won := s.byID[actual]; won != nil {
			return won, nil
		}
		p.sticky.Put(client, b.id)
	}
	return b, nil
}

// PickPreferred returns the backend with ID id if it is eligible, else a
// fresh pick: for persistence kept by the caller (the L7 proxy's cookies).
func (p *Pool) PickPreferred(id string, key uint64) (*Backend, error) {
	s := p.snap.Load()
	if b := s.byID[id]; b != nil {
		return b, nil
	}
	if b := s.sched.Pick(key); b != nil {
		return b, nil
	}
	return nil, ErrNoBackend
}

// Snapshot returns the current snapshot.
func (p *Pool) Snapshot() *Snapshot { return p.snap.Load() }

// Version returns the current snapshot's version.
func (p *Pool) Version() uint64 { return p.snap.Load().version }

// Persistence returns the pool's source-IP persistence table.
func (p *Pool) Persistence() *Persistence[netip.Addr] { return p.sticky }

// OnChange registers fn to run after every new snapshot (configuration or
// eligibility change). fn runs on the goroutine that caused the change and
// should read p.Snapshot() rather than assume an order between calls; it
// must not call Update or Close. The returned func unregisters fn.
func (p *Pool) OnChange(fn func()) (remove func()) {
	p.hooksMu.Lock()
	id := p.nextHook
	p.nextHook++
	p.hooks[id] = fn
	p.hooksMu.Unlock()
	return func() {
		p.hooksMu.Lock()
		delete(p.hooks, id)
		p.hooksMu.Unlock()
	}
}

func (p *Pool) notify() {
	p.hooksMu.Lock()
	fns := make([]func(), 0, len(p.hooks))
	for _, fn := range p.hooks {
		fns = append(fns, fn)
	}
	p.hooksMu.Unlock()
	for _, fn := range fns {
		fn()
	}
}

// Run evicts expired persistence entries until ctx ends.
func (p *Pool) Run(ctx context.Context) { p.sticky.Run(ctx) }

// Close detaches the pool from its backends and releases them from the
// registry. Picks keep working on the last snapshot; Update fails.
func (p *Pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.closed = true
	for _, m := range p.members {
		m.Backend.unwatch(p)
		p.reg.release(m.Backend)
	}
	p.members = nil
}
