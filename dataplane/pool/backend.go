package pool

import (
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
)

// AdminState is the operator's intent for a backend, independent of health.
type AdminState uint32

const (
	// AdminEnabled backends take new connections and requests.
	AdminEnabled AdminState = iota
	// AdminDrain backends take nothing new; engines let existing
	// connections finish.
	AdminDrain
	// AdminDisabled backends take nothing new; engines may close existing
	// connections.
	AdminDisabled
)

func (a AdminState) String() string {
	switch a {
	case AdminEnabled:
		return "enabled"
	case AdminDrain:
		return "drain"
	case AdminDisabled:
		return "disabled"
	}
	return fmt.Sprintf("AdminState(%d)", uint32(a))
}

// Backend is one backend server (address:port). It is created by a Registry
// and shared by pointer among all pools naming the same address:port, so one
// health result and one active count serve them all. Weight is not here: it
// belongs to a pool's membership (Member), since groups may weigh the same
// server differently.
type Backend struct {
	addr netip.Addr
	port uint16
	id   string

	down   atomic.Bool // zero value: up, until a health check says otherwise
	admin  atomic.Uint32
	active atomic.Int64

	mu       sync.Mutex
	watchers []*Pool // pools to rebuild when health or admin state changes
}

func newBackend(addr netip.Addr, port uint16) *Backend {
	return &Backend{addr: addr, port: port, id: BackendID(addr, port)}
}

// BackendID is the stable identifier of addr:port: "10.0.1.10:8080",
// "[2001:db8::1]:8080". Maglev hashes it, so it must never change.
func BackendID(addr netip.Addr, port uint16) string {
	return netip.AddrPortFrom(addr.Unmap(), port).String()
}

// ID returns the stable identifier, e.g. "10.0.1.10:8080".
func (b *Backend) ID() string { return b.id }

// Addr returns the backend's address.
func (b *Backend) Addr() netip.Addr { return b.addr }

// Port returns the backend's port.
func (b *Backend) Port() uint16 { return b.port }

// AddrPort returns address and port together.
func (b *Backend) AddrPort() netip.AddrPort { return netip.AddrPortFrom(b.addr, b.port) }

// Up reports the last health result (true until a check says down).
func (b *Backend) Up() bool { return !b.down.Load() }

// SetUp records a health result. When it changes the state, every pool
// containing the backend rebuilds its snapshot before SetUp returns.
func (b *Backend) SetUp(up bool) (changed bool) {
	if b.down.Swap(!up) == !up {
		return false
	}
	b.notify()
	return true
}

// Admin returns the admin state.
func (b *Backend) Admin() AdminState { return AdminState(b.admin.Load()) }

// SetAdmin sets the admin state; pools rebuild as for SetUp.
func (b *Backend) SetAdmin(s AdminState) (changed bool) {
	if AdminState(b.admin.Swap(uint32(s))) == s {
		return false
	}
	b.notify()
	return true
}

// Acquire counts one more active connection or in-flight request (wlc reads
// the count). Every Acquire needs exactly one Release.
func (b *Backend) Acquire() { b.active.Add(1) }

// Release ends what Acquire started.
func (b *Backend) Release() { b.active.Add(-1) }

// Active returns the current active connection/request count.
func (b *Backend) Active() int64 { return b.active.Load() }

func (b *Backend) String() string { return b.id }

func (b *Backend) watch(p *Pool) {
	b.mu.Lock()
	b.watchers = append(b.watchers, p)
	b.mu.Unlock()
}

func (b *Backend) unwatch(p *Pool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, w := range b.watchers {
		if w == p {
			b.watchers = append(b.watchers[:i], b.watchers[i+1:]...)
			return
		}
	}
}

// notify rebuilds every watching pool. The watcher list is copied so no
// backend lock is held while a pool locks itself (pools lock backends in
// Update: the reverse order would deadlock).
func (b *Backend) notify() {
	b.mu.Lock()
	ws := append([]*Pool(nil), b.watchers...)
	b.mu.Unlock()
	for _, p := range ws {
		p.refresh()
	}
}
