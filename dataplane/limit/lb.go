package limit

import (
	"sync"
	"sync/atomic"
)

// Reason is why a connection, request or packet was refused.
type Reason uint8

// Reasons, the values of xlb_limit_drops_total's reason label.
const (
	MaxConnections Reason = iota
	NewConnections
	Requests
	numReasons
)

var reasonNames = [numReasons]string{"max_connections", "new_connections", "requests"}

func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return "unknown"
}

// Params are one load balancer's limits; a zero field is unlimited.
type Params struct {
	MaxConnections    uint64
	NewConnsPerSecond uint64
	RequestsPerSecond uint64
	// BandwidthBps is the total in bytes per second; Peaks the reserved
	// peaks of listeners, by listener name, in bytes per second. Listeners
	// without a peak share BandwidthBps minus the peaks.
	BandwidthBps uint64
	Peaks        map[string]uint64
}

// LB is one load balancer's limits, shared by every engine that serves its
// listeners: connections count against one gauge whichever engine holds
// them.
type LB struct {
	ID       string
	Conns    *Gauge
	NewConns *Rate
	Requests *Rate

	mu        sync.Mutex
	share     [2]*Share              // in, out: what the listeners without a peak split
	listeners map[string]*[2]*Shaper // by listener name: in, out
	peaks     map[string]uint64      // as last set
	total     uint64
	drops     [numReasons]atomic.Uint64
}

func newLB(id string) *LB {
	return &LB{
		ID: id, Conns: NewGauge(0), NewConns: NewRate(0), Requests: NewRate(0),
		share:     [2]*Share{NewShare(0), NewShare(0)},
		listeners: map[string]*[2]*Shaper{},
	}
}

// Drop counts a refusal.
func (l *LB) Drop(r Reason) {
	if l != nil && r < numReasons {
		l.drops[r].Add(1)
	}
}

// Drops is the number of refusals for r.
func (l *LB) Drops(r Reason) uint64 {
	if l == nil || r >= numReasons {
		return 0
	}
	return l.drops[r].Load()
}

// Direction of a shaped stream, from the load balancer's side.
const (
	In  = 0 // from clients
	Out = 1 // to clients
)

// Bandwidth returns the shapers of listener name (in, out): its own at
// peak (bytes per second), or, with peak 0, members of the load balancer's
// share. The same listener gets the same shapers across reloads, so a
// stream's pacing carries on; Registry.Set applies the rates.
func (l *LB) Bandwidth(name string, peak uint64) (in, out *Shaper) {
	if l == nil {
		return nil, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.listeners[name]
	// A listener that gained or lost its peak changes between an own
	// shaper and a share member.
	if s == nil || (peak > 0) != (s[In].share == nil) {
		s = &[2]*Shaper{}
		for d := range s {
			if peak > 0 {
				s[d] = NewShaper(peak)
			} else {
				s[d] = l.share[d].Member()
			}
		}
		l.listeners[name] = s
	}
	return s[In], s[Out]
}

// set applies p in place.
func (l *LB) set(p Params) {
	l.Conns.Set(p.MaxConnections)
	l.NewConns.Set(p.NewConnsPerSecond)
	l.Requests.Set(p.RequestsPerSecond)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total, l.peaks = p.BandwidthBps, p.Peaks
	reserved := uint64(0)
	for _, v := range p.Peaks {
		reserved += v
	}
	rest := uint64(0)
	if p.BandwidthBps > 0 {
		// What the peaks leave; a total fully reserved leaves listeners
		// without a peak a token rate rather than an unlimited one.
		rest = max(p.BandwidthBps-min(reserved, p.BandwidthBps), 1)
	}
	for d := range l.share {
		l.share[d].Set(rest)
	}
	for name, s := range l.listeners {
		if peak := p.Peaks[name]; peak > 0 && s[In].share == nil {
			s[In].Set(peak)
			s[Out].Set(peak)
		}
	}
}

// Registry keeps every load balancer's limits by id. The objects live as
// long as the registry, so connections opened under one configuration
// release into the same gauge after a reload.
type Registry struct {
	mu  sync.Mutex
	lbs map[string]*LB
	on  map[string]bool // configured now (exported)
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{lbs: map[string]*LB{}, on: map[string]bool{}}
}

// LB returns the limits of load balancer id, creating them unlimited.
func (r *Registry) LB(id string) *LB {
	r.mu.Lock()
	defer r.mu.Unlock()
	l := r.lbs[id]
	if l == nil {
		l = newLB(id)
		r.lbs[id] = l
	}
	return l
}

// Set makes params the limits of the load balancers they name; the others
// become unlimited and are no longer exported.
func (r *Registry) Set(params map[string]Params) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, l := range r.lbs {
		if _, ok := params[id]; !ok {
			l.set(Params{})
		}
	}
	r.on = map[string]bool{}
	for id, p := range params {
		l := r.lbs[id]
		if l == nil {
			l = newLB(id)
			r.lbs[id] = l
		}
		l.set(p)
		r.on[id] = true
	}
}

// each calls fn for every configured load balancer.
func (r *Registry) each(fn func(*LB)) {
	r.mu.Lock()
	lbs := make([]*LB, 0, len(r.on))
	for id := range r.on {
		lbs = append(lbs, r.lbs[id])
	}
	r.mu.Unlock()
	for _, l := range lbs {
		fn(l)
	}
}

// AllowRequest admits one request at now, counting a refusal; a nil *LB
// admits everything.
func (l *LB) AllowRequest(now int64) bool {
	if l == nil || l.Requests.Allow(now) {
		return true
	}
	l.Drop(Requests)
	return false
}

// Admit admits one new connection at now: within the new-connection rate
// and max_connections, which it then holds until Release. It reports the
// reason of a refusal, counted.
func (l *LB) Admit(now int64) (ok bool, why Reason) {
	if l == nil {
		return true, 0
	}
	if !l.NewConns.Allow(now) {
		l.Drop(NewConnections)
		return false, NewConnections
	}
	if !l.Conns.Acquire() {
		l.Drop(MaxConnections)
		return false, MaxConnections
	}
	return true, 0
}

// Release ends a connection Admit admitted.
func (l *LB) Release() {
	if l != nil {
		l.Conns.Release()
	}
}
