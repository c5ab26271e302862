package l7

import (
	"context"
	"sync"
)

// tracker knows every open client connection so that a removed listener
// can close its idle ones and Drain can wait for the rest.
type tracker struct {
	mu    sync.Mutex
	open  map[*clientConn]struct{}
	empty chan struct{} // closed while open is empty; replaced when it fills
}

func newTracker() tracker {
	ch := make(chan struct{})
	close(ch)
	return tracker{open: make(map[*clientConn]struct{}), empty: ch}
}

func (t *tracker) add(c *clientConn) {
	t.mu.Lock()
	if len(t.open) == 0 {
		t.empty = make(chan struct{})
	}
	t.open[c] = struct{}{}
	t.mu.Unlock()
}

func (t *tracker) remove(c *clientConn) {
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

func (t *tracker) snapshot() []*clientConn {
	t.mu.Lock()
	defer t.mu.Unlock()
	all := make([]*clientConn, 0, len(t.open))
	for c := range t.open {
		all = append(all, c)
	}
	return all
}

// closeIdle closes l's connections that wait for a request; the others see
// l.closing after their request and close themselves.
func (t *tracker) closeIdle(l *listener) {
	for _, c := range t.snapshot() {
		if c.l == l {
			c.closeIfIdle()
		}
	}
}

// wait returns when nothing is open or ctx ends.
func (t *tracker) wait(ctx context.Context) {
	for {
		t.mu.Lock()
		ch := t.empty
		n := len(t.open)
		t.mu.Unlock()
		if n == 0 {
			return
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return
		}
	}
}

func (t *tracker) closeAll() {
	for _, c := range t.snapshot() {
		c.forceClose()
	}
}
