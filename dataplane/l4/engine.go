package l4

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/xlbproject/xlb/dataplane/pool"
	"github.com/xlbproject/xlb/dataplane/vipsock"
)

// Engine runs every tcp and udp listener of the userspace engine.
type Engine struct {
	log     *zap.Logger
	metrics *metrics

	mu        sync.Mutex // serializes Prepare, Commit, Abort and Drain
	listeners map[key]*listener
	draining  bool

	conns tracker
	wg    sync.WaitGroup // accept/read loops and pool janitors
	epoch time.Time      // the limits' clock starts here
}

// now is the engine's monotonic clock, for the limits.
func (e *Engine) now() int64 { return int64(time.Since(e.epoch)) }

// New returns an engine with no listeners.
func New(reg prometheus.Registerer, log *zap.Logger) (*Engine, error) {
	if log == nil {
		log = zap.NewNop()
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("l4 metrics: %w", err)
	}
	return &Engine{log: log, metrics: m, listeners: make(map[key]*listener), conns: newTracker(), epoch: time.Now()}, nil
}

// listener is one bound socket and its current settings.
type listener struct {
	key   key
	state atomic.Pointer[listenerState]
	tcp   *net.TCPListener
	udp   *udpListener
}

func (l *listener) closeSocket() {
	if l.tcp != nil {
		_ = l.tcp.Close()
	}
	if l.udp != nil {
		_ = l.udp.conn.Close()
	}
}

// listenerState is what a connection reads when it starts: settings and pool
// swap together, so a connection never mixes two configurations.
type listenerState struct {
	cfg     Listener
	pool    *runningPool
	metrics *listenerMetrics
}

// runningPool is a pool and the lifetime of its persistence janitor.
type runningPool struct {
	*pool.Pool
	stop context.CancelFunc
}

func (e *Engine) startPool(p *pool.Pool) *runningPool {
	ctx, cancel := context.WithCancel(context.Background())
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		p.Run(ctx)
	}()
	return &runningPool{Pool: p, stop: cancel}
}

func (rp *runningPool) close() {
	rp.stop()
	rp.Pool.Close()
}

// Change is a prepared configuration: Commit or Abort it.
type Change struct {
	e      *Engine
	states map[key]*listenerState // the new state of every listener kept or added
	fresh  map[key]*pool.Pool     // pools built by Prepare; Abort closes them
	update map[key]pool.Config    // kept pools, updated at Commit
	bind   map[key]*listener      // new sockets, not serving yet
	done   bool
}

// Prepare binds the sockets of new listeners and builds new pools. Nothing
// that carries traffic changes until Commit.
func (e *Engine) Prepare(ctx context.Context, cfg Config) (*Change, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.draining {
		return nil, errors.New("l4: draining")
	}
	ch := &Change{e: e,
		states: map[key]*listenerState{}, fresh: map[key]*pool.Pool{},
		update: map[key]pool.Config{}, bind: map[key]*listener{},
	}
	for i := range cfg.Listeners {
		if err := e.prepareListener(ctx, ch, cfg.Listeners[i]); err != nil {
			ch.abortLocked()
			return nil, err
		}
	}
	return ch, nil
}

func (e *Engine) prepareListener(ctx context.Context, ch *Change, l Listener) error {
	if err := l.validate(); err != nil {
		return err
	}
	k := l.key()
	if _, dup := ch.states[k]; dup {
		return fmt.Errorf("listener %s: %s %s is configured twice", l.Name, l.Protocol, l.Addr)
	}
	st := &listenerState{cfg: l, metrics: e.metrics.forListener(l.Name)}
	ch.states[k] = st
	old := e.listeners[k]
	if old != nil && old.state.Load().cfg.Registry == l.Registry {
		// Same backends: keep the pool, so its persistence table and rotation
		// survive the reload, and update it at Commit.
		ch.update[k] = l.Pool
	} else {
		p, err := pool.New(l.Registry, l.Pool)
		if err != nil {
			return fmt.Errorf("listener %s: %w", l.Name, err)
		}
		ch.fresh[k] = p
	}
	if old != nil {
		return nil
	}
	nl := &listener{key: k}
	var err error
	switch k.proto {
	case TCP:
		nl.tcp, err = vipsock.ListenTCP(ctx, k.addr.String())
	case UDP:
		var c *net.UDPConn
		c, err = vipsock.ListenUDP(ctx, k.addr.String())
		if err == nil {
			nl.udp = newUDPListener(c)
		}
	}
	if err != nil {
		return fmt.Errorf("listener %s: binding %s %s: %w", l.Name, k.proto, k.addr, err)
	}
	ch.bind[k] = nl
	return nil
}

// Commit swaps the prepared configuration in. Existing connections keep the
// backend they have; new ones use the new settings.
func (ch *Change) Commit() {
	e := ch.e
	e.mu.Lock()
	defer e.mu.Unlock()
	if ch.done {
		return
	}
	ch.done = true

	for k, l := range e.listeners {
		if _, keep := ch.states[k]; !keep {
			e.stopListener(l)
			delete(e.listeners, k)
		}
	}
	for k, st := range ch.states {
		l := e.listeners[k]
		var prev *listenerState
		if l != nil {
			prev = l.state.Load()
		}
		if p, ok := ch.fresh[k]; ok {
			st.pool = e.startPool(p)
			if prev != nil {
				prev.pool.close()
			}
		} else {
			st.pool = prev.pool
			if err := st.pool.Update(ch.update[k]); err != nil {
				// Validated in Prepare; only a closed pool fails here.
				e.log.Error("l4: pool update failed", zap.String("listener", st.cfg.Name), zap.Error(err))
			}
		}
		if prev != nil && prev.cfg.Name != st.cfg.Name {
			e.metrics.forget(prev.cfg.Name)
		}
		if l != nil {
			l.state.Store(st)
			continue
		}
		l = ch.bind[k]
		l.state.Store(st)
		e.listeners[k] = l
		e.serve(l)
		e.log.Info("l4 listener started", zap.String("listener", st.cfg.Name),
			zap.Stringer("protocol", k.proto), zap.Stringer("address", k.addr))
	}
}

// Abort releases what Prepare took.
func (ch *Change) Abort() {
	ch.e.mu.Lock()
	defer ch.e.mu.Unlock()
	ch.abortLocked()
}

func (ch *Change) abortLocked() {
	if ch.done {
		return
	}
	ch.done = true
	for _, l := range ch.bind {
		l.closeSocket()
	}
	for _, p := range ch.fresh {
		p.Close()
	}
}

// serve starts the listener's accept or read loop.
func (e *Engine) serve(l *listener) {
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		if l.tcp != nil {
			e.acceptLoop(l)
		} else {
			e.readLoop(l)
		}
	}()
}

// stopListener closes the socket: no new connections. Open TCP connections
// continue until they end; UDP sessions of the listener end with it.
func (e *Engine) stopListener(l *listener) {
	l.closeSocket()
	st := l.state.Load()
	st.pool.close()
	e.metrics.forget(st.cfg.Name)
	e.log.Info("l4 listener stopped", zap.String("listener", st.cfg.Name))
}

// Drain stops accepting, waits for open connections to finish until ctx
// ends, then closes what is left and returns when every goroutine is done.
func (e *Engine) Drain(ctx context.Context) {
	e.mu.Lock()
	e.draining = true
	pools := make([]*runningPool, 0, len(e.listeners))
	for k, l := range e.listeners {
		l.closeSocket()
		delete(e.listeners, k)
		pools = append(pools, l.state.Load().pool)
	}
	e.mu.Unlock()
	e.conns.wait(ctx)
	e.conns.closeAll()
	e.conns.wait(context.Background())
	for _, p := range pools {
		p.close()
	}
	e.wg.Wait()
}

// ActiveConnections reports the open TCP connections and UDP sessions.
func (e *Engine) ActiveConnections() int { return e.conns.len() }

func (s *listenerState) maxSessions() int {
	if s.cfg.MaxSessions > 0 {
		return s.cfg.MaxSessions
	}
	return DefaultMaxSessions
}
