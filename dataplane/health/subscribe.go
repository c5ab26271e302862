package health

import (
	"slices"
	"sync"
)

// DefaultEventBuffer is how many undelivered events a subscriber may have
// pending before the oldest superseded one is dropped.
const DefaultEventBuffer = 1024

// subscription queues events for one subscriber and delivers them from its
// own goroutine, so publishing never waits for the subscriber.
type subscription struct {
	max     int
	dropped func() // counts one lost event

	mu      sync.Mutex
	queue   []Event
	pending map[Key]int // queued events per key
	closed  bool

	notify chan struct{} // capacity 1: the queue is not empty
	done   chan struct{} // closed by close
	once   sync.Once

	out chan Event  // channel form, closed when delivery stops
	fn  func(Event) // callback form
}

func newSubscription(max int, dropped func()) *subscription {
	return &subscription{
		max:     max,
		dropped: dropped,
		pending: make(map[Key]int),
		notify:  make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
}

// push queues ev without blocking. When the queue is full it drops the
// oldest event whose key has a newer one queued, so the subscriber still
// learns every backend's latest state; failing that, the oldest event.
func (s *subscription) push(ev Event) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	if len(s.queue) >= s.max {
		drop := 0
		for i, e := range s.queue {
			if s.pending[e.Key] > 1 {
				drop = i
				break
			}
		}
		s.forget(s.queue[drop].Key)
		s.queue = slices.Delete(s.queue, drop, drop+1)
		s.dropped()
	}
	s.queue = append(s.queue, ev)
	s.pending[ev.Key]++
	s.mu.Unlock()
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

func (s *subscription) forget(k Key) {
	if s.pending[k]--; s.pending[k] <= 0 {
		delete(s.pending, k)
	}
}

// next takes the oldest queued event, waiting for one. It returns false once
// the subscription is closed.
func (s *subscription) next() (Event, bool) {
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return Event{}, false
		}
		if len(s.queue) > 0 {
			ev := s.queue[0]
			s.queue[0] = Event{}
			s.queue = s.queue[1:]
			s.forget(ev.Key)
			s.mu.Unlock()
			return ev, true
		}
		s.mu.Unlock()
		select {
		case <-s.notify:
		case <-s.done:
			return Event{}, false
		}
	}
}

// deliver runs in the subscription's goroutine until close.
func (s *subscription) deliver() {
	if s.out != nil {
		defer close(s.out)
	}
	for {
		ev, ok := s.next()
		if !ok {
			return
		}
		if s.fn != nil {
			s.fn(ev)
			continue
		}
		select {
		case s.out <- ev:
		case <-s.done:
			return
		}
	}
}

// close stops delivery; queued events are discarded.
func (s *subscription) close() {
	s.once.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.queue, s.pending = nil, nil
		s.mu.Unlock()
		close(s.done)
	})
}
