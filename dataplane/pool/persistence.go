package pool

import (
	"context"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"
)

const persistenceShards = 64

// Persistence maps a client key (a source address, or any comparable key)
// to the ID of the backend it was sent to. An entry lives for the timeout
// since its last use. The map is split into shards with a lock each, so
// clients rarely contend; Run evicts expired entries in the background.
// A timeout of 0 turns the table off: nothing is found.
type Persistence[K comparable] struct {
	seed    maphash.Seed // shard choice only: local, so a random seed is fine
	timeout atomic.Int64 // nanoseconds
	now     func() time.Time
	base    time.Time
	shards  [persistenceShards]persistenceShard[K]
}

type persistenceShard[K comparable] struct {
	mu sync.Mutex
	m  map[K]stickyEntry
	_  [48]byte // keep neighbouring shard locks off one cache line
}

type stickyEntry struct {
	id       string
	lastUsed int64 // nanoseconds since the table's base time
}

// NewPersistence returns a table with the given timeout. now is the clock
// (nil: time.Now); tests pass a fake one.
func NewPersistence[K comparable](timeout time.Duration, now func() time.Time) *Persistence[K] {
	if now == nil {
		now = time.Now
	}
	t := &Persistence[K]{seed: maphash.MakeSeed(), now: now}
	t.base = now()
	t.timeout.Store(int64(timeout))
	for i := range t.shards {
		t.shards[i].m = make(map[K]stickyEntry)
	}
	return t
}

// Timeout returns the current timeout.
func (t *Persistence[K]) Timeout() time.Duration { return time.Duration(t.timeout.Load()) }

// SetTimeout changes the timeout for existing and future entries.
func (t *Persistence[K]) SetTimeout(d time.Duration) { t.timeout.Store(int64(d)) }

func (t *Persistence[K]) shard(k K) *persistenceShard[K] {
	return &t.shards[maphash.Comparable(t.seed, k)%persistenceShards]
}

// elapsed is the clock relative to base: monotonic with the real clock.
func (t *Persistence[K]) elapsed() int64 { return int64(t.now().Sub(t.base)) }

func (t *Persistence[K]) live(e stickyEntry, now int64) bool {
	to := t.timeout.Load()
	return to > 0 && now-e.lastUsed < to
}

// Get returns k's backend ID and marks the entry used; false when there is
// none or it expired.
func (t *Persistence[K]) Get(k K) (string, bool) {
	now := t.elapsed()
	s := t.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[k]
	if !ok {
		return "", false
	}
	if !t.live(e, now) {
		delete(s.m, k)
		return "", false
	}
	e.lastUsed = now
	s.m[k] = e
	return e.id, true
}

// Put sets k's backend ID.
func (t *Persistence[K]) Put(k K, id string) {
	now := t.elapsed()
	s := t.shard(k)
	s.mu.Lock()
	s.m[k] = stickyEntry{id: id, lastUsed: now}
	s.mu.Unlock()
}

// CompareAndPut sets k to id if k has no live entry or its entry is old,
// and returns the ID k maps to afterwards: id, or the live entry another
// caller stored meanwhile.
func (t *Persistence[K]) CompareAndPut(k K, old, id string) (actual string) {
	now := t.elapsed()
	s := t.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.m[k]; ok && t.live(e, now) && e.id != old {
		e.lastUsed = now
		s.m[k] = e
		return e.id
	}
	s.m[k] = stickyEntry{id: id, lastUsed: now}
	return id
}

// Delete removes k.
func (t *Persistence[K]) Delete(k K) {
	s := t.shard(k)
	s.mu.Lock()
	delete(s.m, k)
	s.mu.Unlock()
}

// Len returns the number of entries, expired ones not yet swept included.
func (t *Persistence[K]) Len() int {
	n := 0
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}

// Sweep evicts expired entries, one shard at a time, and returns how many.
func (t *Persistence[K]) Sweep() int {
	now := t.elapsed()
	n := 0
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		for k, e := range s.m {
			if !t.live(e, now) {
				delete(s.m, k)
				n++
			}
		}
		s.mu.Unlock()
	}
	return n
}

// Run sweeps every quarter timeout (between 1 s and 1 min) until ctx ends.
func (t *Persistence[K]) Run(ctx context.Context) {
	timer := time.NewTimer(t.sweepInterval())
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
			t.Sweep()
			timer.Reset(t.sweepInterval())
		}
	}
}

func (t *Persistence[K]) sweepInterval() time.Duration {
	return min(max(t.Timeout()/4, time.Second), time.Minute)
}
