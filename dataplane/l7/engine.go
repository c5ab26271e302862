package l7

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/xlbproject/xlb/dataplane/certs"
	"github.com/xlbproject/xlb/dataplane/pool"
	"github.com/xlbproject/xlb/dataplane/vipsock"
)

// Options tune an engine; the zero value is the defaults.
type Options struct {
	// AccessLog logs every request at info level (client, host, method,
	// path, status, backend, duration, bytes). It costs a few microseconds
	// per request.
	AccessLog bool
	// CookieSecret keys the persistence cookies' server ids; empty: a random
	// secret for the engine's lifetime (cookies survive reloads, not
	// restarts).
	CookieSecret []byte
	// MaxIdlePerBackend caps the idle keep-alive connections kept per
	// backend; default 128.
	MaxIdlePerBackend int
	// BackendIdleTimeout closes pooled backend connections idle this long;
	// default 30s (below the usual backend keep-alive timeouts, so the
	// proxy, not the backend, closes them).
	BackendIdleTimeout time.Duration
	// PassiveFailures consecutive connection failures or 5xx answers take
	// a backend out of this engine's rotation for PassiveCooldown; defaults
	// 5 and 10s.
	PassiveFailures int
	PassiveCooldown time.Duration
}

func (o *Options) setDefaults() {
	if o.MaxIdlePerBackend <= 0 {
		o.MaxIdlePerBackend = 128
	}
	if o.BackendIdleTimeout <= 0 {
		o.BackendIdleTimeout = 30 * time.Second
	}
	if o.PassiveFailures <= 0 {
		o.PassiveFailures = 5
	}
	if o.PassiveCooldown <= 0 {
		o.PassiveCooldown = 10 * time.Second
	}
}

// Engine runs every http listener.
type Engine struct {
	log     *zap.Logger
	access  *zap.Logger // nil: no access log
	opts    Options
	metrics *metrics
	bufs    *bufPools
	gzip    gzipPool
	tokens  *serverTokens
	ups     *upstreams
	errs    *errorPages
	epoch   time.Time
	expiry  *certs.Expiry

	ctx    context.Context // ends at the end of Drain: cancels dials
	cancel context.CancelFunc

	mu        sync.Mutex // serializes Prepare, Commit, Abort and Drain
	listeners map[netip.AddrPort]*listener
	draining  atomic.Bool

	conns     tracker
	h2workers *streamWorkers
	wg        sync.WaitGroup // accept loops, stream workers, janitors
}

// New returns an engine with no listeners; Drain stops it.
func New(reg prometheus.Registerer, log *zap.Logger, opts Options) (*Engine, error) {
	if log == nil {
		log = zap.NewNop()
	}
	opts.setDefaults()
	m, err := newMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("l7 metrics: %w", err)
	}
	secret := opts.CookieSecret
	if len(secret) == 0 {
		secret = make([]byte, 32)
		if _, err := rand.Read(secret); err != nil {
			return nil, fmt.Errorf("l7 cookie secret: %w", err)
		}
	}
	e := &Engine{
		log: log, opts: opts, metrics: m, bufs: newBufPools(),
		tokens: newServerTokens(secret), errs: newErrorPages(),
		epoch: time.Now(), listeners: map[netip.AddrPort]*listener{}, conns: newTracker(),
	}
	if opts.AccessLog {
		e.access = log.Named("access")
	}
	e.ups = &upstreams{pools: e.bufs, maxIdle: opts.MaxIdlePerBackend,
		idleTimeout: int64(opts.BackendIdleTimeout), clock: e.now}
	e.expiry = certs.NewExpiry(nil)
	if err := reg.Register(e.expiry); err != nil {
		return nil, fmt.Errorf("l7 metrics: %w", err)
	}
	e.ctx, e.cancel = context.WithCancel(context.Background())
	e.h2workers = newStreamWorkers(e.ctx.Done(), &e.wg)
	e.wg.Add(2)
	go e.janitor()
	go e.tlsJanitor()
	return e, nil
}

// now is the engine's monotonic clock in nanoseconds.
func (e *Engine) now() int64 { return int64(time.Since(e.epoch)) }

// janitor closes expired idle backend connections until Drain.
func (e *Engine) janitor() {
	defer e.wg.Done()
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-t.C:
			e.ups.sweep(e.now())
		}
	}
}

// listener is one bound socket and its current settings.
type listener struct {
	addr    netip.AddrPort
	ln      *net.TCPListener
	state   atomic.Pointer[listenerState]
	closing atomic.Bool // removed or draining: connections end after their request
	h2      *h2Server
	certs   *certs.Store // the handshakes of https states
	h3      *h3Server    // nil unless the state says HTTP3
}

// target is one pool a listener routes to.
type target struct {
	group string
	pool  *pool.Pool
}

// listenerState is what a request reads when it starts: rules, pools and
// settings swap together, so a request never mixes two configurations.
type listenerState struct {
	cfg     Listener
	router  *router[*target]
	targets map[string]*target // by group id; "" is the listener's default
	persist *persistence
	metrics *listenerMetrics
	scheme  string
	tls     *certs.Compiled // nil: plain http

	// Header lines rendered once.
	xfProto, lbIP, lbID []byte
	altSvc              []byte // the Alt-Svc line advertising HTTP/3; nil without
}

// Change is a prepared configuration: Commit or Abort it.
type Change struct {
	e      *Engine
	states map[netip.AddrPort]*listenerState
	fresh  []*pool.Pool                        // pools built by Prepare; Abort closes them
	update map[*pool.Pool]pool.Config          // kept pools, updated at Commit
	bind   map[netip.AddrPort]*net.TCPListener // new sockets, not serving yet
	udp    map[netip.AddrPort]*net.UDPConn     // new HTTP/3 sockets
	done   bool
}

// Prepare binds the sockets of new listeners and compiles routers and pools.
// Nothing that carries traffic changes until Commit.
func (e *Engine) Prepare(ctx context.Context, cfg Config) (*Change, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.draining.Load() {
		return nil, errors.New("l7: draining")
	}
	ch := &Change{e: e, states: map[netip.AddrPort]*listenerState{},
		update: map[*pool.Pool]pool.Config{}, bind: map[netip.AddrPort]*net.TCPListener{},
		udp: map[netip.AddrPort]*net.UDPConn{}}
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
	k := l.Addr
	if _, dup := ch.states[k]; dup {
		return fmt.Errorf("listener %s: %s is configured twice", l.Name, k)
	}
	l.Timeouts = l.Timeouts.withDefaults()
	st := &listenerState{cfg: l, targets: map[string]*target{}, scheme: "http",
		metrics: e.metrics.forListener(l.LB, l.Name)}
	if l.TLS != nil {
		st.scheme = "https"
	}
	var prev *listenerState
	old := e.listeners[k]
	if old != nil {
		prev = old.state.Load()
	}
	configs := map[string]pool.Config{"": l.Default}
	for id, g := range l.Groups {
		configs[id] = g
	}
	var ids []string
	for id, pc := range configs {
		for _, s := range pc.Servers {
			ids = append(ids, pool.BackendID(s.Addr, s.Port))
		}
		if prev != nil && prev.cfg.Registry == l.Registry {
			if t := prev.targets[id]; t != nil {
				// Same backends registry: keep the pool (its rotation and the
				// backends' state) and update it at Commit.
				st.targets[id] = t
				ch.update[t.pool] = pc
				continue
			}
		}
		p, err := pool.New(l.Registry, pc)
		if err != nil {
			return fmt.Errorf("listener %s: group %q: %w", l.Name, id, err)
		}
		ch.fresh = append(ch.fresh, p)
		st.targets[id] = &target{group: id, pool: p}
	}
	rules := make([]routeRule[*target], len(l.Rules))
	for i, r := range l.Rules {
		rules[i] = routeRule[*target]{domain: r.Domain, path: r.Path, target: st.targets[r.Group]}
	}
	st.router = newRouter(rules, st.targets[""])
	e.tokens.add(ids)
	st.persist = newPersistence(l.Persistence, l.cookieName(), ids, e.tokens)
	st.xfProto = []byte("X-Forwarded-Proto: " + st.scheme + "\r\n")
	st.lbIP = []byte("X-LB-IP: " + l.Addr.Addr().String() + "\r\n")
	st.lbID = []byte("X-LB-ID: " + l.LB + "\r\n")
	if err := e.prepareTLS(ctx, ch, st, old); err != nil {
		return err
	}
	ch.states[k] = st
	if old != nil {
		return nil
	}
	ln, err := vipsock.ListenTCP(ctx, k.String())
	if err != nil {
		return fmt.Errorf("listener %s: binding tcp %s: %w", l.Name, k, err)
	}
	ch.bind[k] = ln
	return nil
}

// Commit swaps the prepared configuration in. Requests in flight finish on
// the state they started with; keep-alive connections use the new state
// for their next request; removed listeners stop accepting, and their
// connections close after the request they are serving.
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
	for p, pc := range ch.update {
		if err := p.Update(pc); err != nil {
			// Validated in Prepare; only a closed pool fails here.
			e.log.Error("l7: pool update failed", zap.Error(err))
		}
	}
	for k, st := range ch.states {
		l := e.listeners[k]
		if l == nil {
			l = &listener{addr: k, ln: ch.bind[k]}
			l.state.Store(st)
			l.h2 = e.newH2Server(l)
			e.commitTLS(ch, l, st)
			e.listeners[k] = l
			e.serve(l)
			e.log.Info("l7 listener started", zap.String("listener", st.cfg.Name), zap.Stringer("address", k))
			continue
		}
		e.commitTLS(ch, l, st)
		prev := l.state.Swap(st)
		for id, t := range prev.targets {
			if st.targets[id] != t {
				t.pool.Close()
			}
		}
		if prev.cfg.Name != st.cfg.Name || prev.cfg.LB != st.cfg.LB {
			e.metrics.forget(prev.cfg.LB, prev.cfg.Name)
		}
	}
	e.trackExpiry()
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
	for _, ln := range ch.bind {
		_ = ln.Close()
	}
	for _, c := range ch.udp {
		_ = c.Close()
	}
	for _, p := range ch.fresh {
		p.Close()
	}
}

// serve starts the listener's accept loop.
func (e *Engine) serve(l *listener) {
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		e.acceptLoop(l)
	}()
}

// stopListener closes the socket: no new connections; idle ones close now,
// busy ones after their request. e.mu held.
func (e *Engine) stopListener(l *listener) {
	l.closing.Store(true)
	_ = l.ln.Close()
	e.conns.closeIdle(l)
	st := l.state.Load()
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		// h2 connections get a GOAWAY and finish their streams; Drain cuts
		// the wait short.
		ctx, cancel := context.WithTimeout(e.ctx, st.cfg.Timeouts.Idle)
		defer cancel()
		l.h2.shutdown(ctx)
		l.stopH3(ctx)
	}()
	for _, t := range st.targets {
		t.pool.Close()
	}
	e.metrics.forget(st.cfg.LB, st.cfg.Name)
	e.log.Info("l7 listener stopped", zap.String("listener", st.cfg.Name))
}

// Drain stops accepting, closes idle keep-alive connections, waits for the
// requests in flight until ctx ends, then closes everything; it returns when
// every goroutine of the engine has stopped.
func (e *Engine) Drain(ctx context.Context) {
	e.mu.Lock()
	e.draining.Store(true)
	ls := make([]*listener, 0, len(e.listeners))
	for k, l := range e.listeners {
		l.closing.Store(true)
		_ = l.ln.Close()
		delete(e.listeners, k)
		ls = append(ls, l)
	}
	e.mu.Unlock()
	for _, l := range ls {
		e.conns.closeIdle(l)
	}
	var wg sync.WaitGroup
	for _, l := range ls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.h2.shutdown(ctx)
			l.stopH3(ctx)
		}()
	}
	e.conns.wait(ctx)
	e.conns.closeAll()
	e.conns.wait(context.Background())
	wg.Wait()
	e.cancel()
	e.wg.Wait()
	e.ups.closeAll()
	for _, l := range ls {
		for _, t := range l.state.Load().targets {
			t.pool.Close()
		}
	}
}

// ActiveConnections reports the open HTTP/1.1 and WebSocket connections.
func (e *Engine) ActiveConnections() int { return e.conns.len() }
