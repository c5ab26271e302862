package l4

import (
	"context"
	"sync"
)

// closer is an open connection or session the engine can force closed.
type closer interface{ forceClose() }

// tracker knows every open connection and session so that Drain can wait
// for them and close the rest when its time is up.
type tracker struct {
	mu    sync.Mutex
	open  map[closer]struct{}
	empty chan struct{} // closed while open is empty; replaced when it fills
}

func newTracker() tracker {
	ch := make(chan struct{})
	close(ch)
	return tracker{open: make(map[closer]struct{}), empty: ch}
}

func (t *tracker) add(c closer) {
	t.mu.Lock()
	if len(t.open) == 0 {
		t.empty = make(chan struct{})
	}
	t.open[c] = struct{}{}
	t.mu.Unlock()
}

func (t *tracker) remove(c closer) {
	t.mu.Lock()
	if _, ok := t.open[c]; ok {
		delete(t.open, c)
		if len(t.open) == 0 {
			close(t.empty)
		}
	}
	t.mu.Unlock()
}

func (t *tracker) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.open)
}

// wait returns when nothing is open or ctx ends.
func (t *tracker) wait(ctx context.Context) {
	for {
		t.mu.Lock()
		ch := t.empty
		t.mu.Unlock()
		select {
		case <-ch:
			t.mu.Lock()
			n := len(t.open)
			t.mu.Unlock()
			if n == 0 {
				return
			}
		case <-ctx.Done():
			return
		}
	}
}

func (t *tracker) closeAll() {
	t.mu.Lock()
	all := make([]closer, 0, len(t.open))
	for c := range t.open {
		all = append(all, c)
	}
	t.mu.Unlock()
	for _, c := range all {
		c.forceClose()
	}
}
