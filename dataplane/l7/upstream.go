package l7

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/xlbproject/xlb/dataplane/pool"
)

// upstream is this engine's view of one backend: its idle keep-alive
// connections and its passive health. Listeners of the engine that share a
// Backend share its upstream.
type upstream struct {
	b    *pool.Backend
	addr string

	mu   sync.Mutex
	idle []*backendConn // most recently used last
	dead bool           // forgotten by the janitor: pool nothing more

	// Passive health: consecutive failures, and the engine clock time until
	// which the backend is skipped (0: not ejected).
	fails        atomic.Int32
	ejectedUntil atomic.Int64
	lastUsed     atomic.Int64
}

// backendConn is one connection to a backend, with its read buffer.
type backendConn struct {
	c      *net.TCPConn
	raw    syscall.RawConn
	rs     rawSocket // reads and writes (rawsock.go)
	up     *upstream
	rd     reader
	idleAt int64 // engine clock when it went idle
	reused bool  // served an earlier request

	peekFn  func(fd uintptr) // made once: checking liveness allocates nothing
	peekBuf [1]byte
	peekN   int
	peekErr error
}

func (bc *backendConn) close() {
	_ = bc.c.Close()
	bc.rd.release()
}

// alive reports whether an idle connection is still open and silent: a
// non-blocking peek sees neither a FIN nor stray bytes.
func (bc *backendConn) alive() bool {
	if err := bc.raw.Control(bc.peekFn); err != nil {
		return false
	}
	return bc.peekN < 0 && errors.Is(bc.peekErr, unix.EAGAIN)
}

// peek is a raw recvfrom for the reason rawSocket gives.
func (bc *backendConn) peek(fd uintptr) {
	n, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&bc.peekBuf[0])), 1,
		unix.MSG_PEEK|unix.MSG_DONTWAIT, 0, 0)
	bc.peekN, bc.peekErr = int(n), nil
	if e != 0 {
		bc.peekN, bc.peekErr = -1, e
	}
}

// upstreams holds the engine's upstreams by Backend, and the idle
// connection policy.
type upstreams struct {
	m           sync.Map // *pool.Backend -> *upstream
	pools       *bufPools
	maxIdle     int
	idleTimeout int64 // nanoseconds
	clock       func() int64
}

func (us *upstreams) get(b *pool.Backend) *upstream {
	if u, ok := us.m.Load(b); ok {
		return u.(*upstream)
	}
	u, _ := us.m.LoadOrStore(b, &upstream{b: b, addr: b.AddrPort().String()})
	return u.(*upstream)
}

// idleConn returns a pooled connection, or nil. check forces a liveness
// check; otherwise only connections idle for over a second are checked (a
// busy connection cannot have been closed for idleness by the backend).
func (us *upstreams) idleConn(u *upstream, now int64, check bool) *backendConn {
	for {
		u.mu.Lock()
		n := len(u.idle)
		if n == 0 {
			u.mu.Unlock()
			return nil
		}
		bc := u.idle[n-1]
		u.idle[n-1] = nil
		u.idle = u.idle[:n-1]
		u.mu.Unlock()
		idle := now - bc.idleAt
		if idle > us.idleTimeout || ((check || idle > int64(time.Second)) && !bc.alive()) {
			bc.close()
			continue
		}
		return bc
	}
}

// put returns a connection for reuse, or closes it when the pool is full.
func (us *upstreams) put(bc *backendConn, now int64) {
	u := bc.up
	bc.idleAt, bc.reused = now, true
	u.mu.Lock()
	if len(u.idle) < us.maxIdle && !u.dead {
		u.idle = append(u.idle, bc)
		u.mu.Unlock()
		return
	}
	u.mu.Unlock()
	bc.close()
}

// dial opens a new connection to u.
func (us *upstreams) dial(ctx context.Context, u *upstream, timeout time.Duration) (*backendConn, error) {
	d := net.Dialer{Timeout: timeout}
	c, err := d.DialContext(ctx, "tcp", u.addr)
	if err != nil {
		return nil, err
	}
	tc := c.(*net.TCPConn)
	raw, err := tc.SyscallConn()
	if err != nil {
		_ = tc.Close()
		return nil, err
	}
	bc := &backendConn{c: tc, raw: raw, up: u}
	bc.peekFn = bc.peek
	bc.rs.init(raw)
	bc.rd.init(&bc.rs, us.pools)
	return bc, nil
}

// flush closes every idle connection of u: after one was found dead, the
// others (opened before the backend restarted) likely are too.
func (u *upstream) flush() {
	u.mu.Lock()
	idle := u.idle
	u.idle = nil
	u.mu.Unlock()
	for _, bc := range idle {
		bc.close()
	}
}

// sweep closes idle connections past the timeout and forgets upstreams
// unused for a long time.
func (us *upstreams) sweep(now int64) {
	us.m.Range(func(k, v any) bool {
		u := v.(*upstream)
		var expired []*backendConn
		u.mu.Lock()
		keep := u.idle[:0]
		for _, bc := range u.idle {
			if now-bc.idleAt > us.idleTimeout {
				expired = append(expired, bc)
			} else {
				keep = append(keep, bc)
			}
		}
		clear(u.idle[len(keep):])
		u.idle = keep
		forget := len(keep) == 0 && now-u.lastUsed.Load() > forgetUpstreamAfter && u.ejectedUntil.Load() < now
		// A request that picked u just now puts its connection back under
		// u.mu: dead makes it close the connection instead of pooling it.
		u.dead = forget
		u.mu.Unlock()
		for _, bc := range expired {
			bc.close()
		}
		if forget {
			us.m.Delete(k)
		}
		return true
	})
}

const forgetUpstreamAfter = int64(10 * time.Minute)

// closeAll closes every idle connection.
func (us *upstreams) closeAll() {
	us.m.Range(func(_, v any) bool {
		v.(*upstream).flush()
		return true
	})
}

// Passive health.

// ejected reports whether u is out of rotation at now.
func (u *upstream) ejected(now int64) bool {
	t := u.ejectedUntil.Load()
	return t != 0 && now < t
}

// failed records a connection failure or 5xx; after threshold in a row the
// backend is ejected for cooldown. It reports a new ejection.
func (u *upstream) failed(now int64, threshold int, cooldown time.Duration) bool {
	if int(u.fails.Add(1)) < threshold {
		return false
	}
	u.fails.Store(0)
	u.ejectedUntil.Store(now + int64(cooldown))
	return true
}

func (u *upstream) succeeded() {
	if u.fails.Load() != 0 {
		u.fails.Store(0)
	}
}

// isTimeout reports a deadline that expired.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// isClosedBeforeResponse reports an error that means the backend closed or
// reset the connection before any of the response arrived.
func isClosedBeforeResponse(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
