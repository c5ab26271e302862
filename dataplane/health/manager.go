package health

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// ErrClosed is returned by a Manager that was closed.
var ErrClosed = errors.New("health: manager closed")

// Options configures a Manager. The zero value works.
type Options struct {
	// Logger gets state changes at info and failed checks at debug.
	// Nil: no logging.
	Logger *zap.Logger
	// Registerer receives the metrics. Nil: metrics are kept but not
	// exported.
	Registerer prometheus.Registerer
	// InitialDown starts new checkers down, so a backend needs Rise
	// successes before it gets traffic. The default starts them up, as
	// HAProxy does: a reload or restart must not take healthy backends out
	// of rotation while their first checks run. A backend that is really
	// down is taken out after Fall checks.
	InitialDown bool
	// EventBuffer bounds each subscriber's undelivered events.
	// Zero: DefaultEventBuffer.
	EventBuffer int
}

// Manager runs one checker per distinct Key and publishes state changes.
// All methods are safe for concurrent use.
type Manager struct {
	log         *zap.Logger
	metrics     *metrics
	initialDown bool
	eventBuffer int
	probeFor    func(Key) probeFunc // replaced by tests

	wg    sync.WaitGroup // checker goroutines
	subWG sync.WaitGroup // subscription goroutines
	done  chan struct{}  // closed by Close

	mu       sync.Mutex
	checkers map[Key]*checker
	series   map[series]*seriesRefs
	subs     map[*subscription]struct{}
	runCtx   context.Context // set by Run
	stopped  bool            // Run has ended: start no more checkers
	closed   bool
}

// NewManager returns a Manager with no targets. Call Run to start checking.
func NewManager(opts Options) (*Manager, error) {
	met, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}
	buf := opts.EventBuffer
	if buf <= 0 {
		buf = DefaultEventBuffer
	}
	return &Manager{
		log:         log,
		metrics:     met,
		initialDown: opts.InitialDown,
		eventBuffer: buf,
		probeFor:    newProbe,
		done:        make(chan struct{}),
		checkers:    make(map[Key]*checker),
		series:      make(map[series]*seriesRefs),
		subs:        make(map[*subscription]struct{}),
	}, nil
}

// Set replaces the desired targets. Keys already checked keep their checker,
// state and counters; new keys get a checker (started at once if Run is
// running); keys no longer wanted stop and their metric series are deleted.
// Removing a key publishes no event. Targets are validated first: on error
// nothing changes.
func (m *Manager) Set(targets []Target) error {
	want := make(map[Key][]string, len(targets))
	for i, t := range targets {
		k := t.Key()
		if err := k.validate(); err != nil {
			return fmt.Errorf("health target %d (%s, owner %q): %w", i, t.Addr, t.Owner, err)
		}
		want[k] = append(want[k], t.Owner)
	}
	for k, owners := range want {
		slices.Sort(owners)
		want[k] = slices.Compact(owners)
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	var added, removed int
	for k, c := range m.checkers {
		if _, ok := want[k]; !ok {
			m.removeLocked(c)
			removed++
		}
	}
	now := time.Now()
	for k, owners := range want {
		if c, ok := m.checkers[k]; ok {
			c.owners = owners
			continue
		}
		m.addLocked(k, owners, now)
		added++
	}
	m.log.Debug("health targets set", zap.Int("checkers", len(m.checkers)),
		zap.Int("added", added), zap.Int("removed", removed))
	return nil
}

func (m *Manager) addLocked(k Key, owners []string, now time.Time) {
	state := Up
	if m.initialDown {
		state = Down
	}
	c := &checker{
		key:     k,
		probe:   m.probeFor(k),
		series:  series{backend: k.Addr.String(), check: k.Spec.Type.String()},
		rng:     rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
		owners:  owners,
		counter: counter{rise: k.Spec.Rise, fall: k.Spec.Fall, state: state},
		since:   now,
	}
	m.checkers[k] = c

	r := m.series[c.series]
	if r == nil {
		r = &seriesRefs{}
		m.series[c.series] = r
		m.metrics.create(c.series)
	}
	r.checkers++
	if state == Down {
		r.down++
	}
	m.metrics.setUp(c.series, r)

	if m.runCtx != nil && !m.stopped {
		m.startLocked(c)
	}
}

func (m *Manager) startLocked(c *checker) {
	ctx, cancel := context.WithCancel(m.runCtx)
	c.cancel = cancel
	m.wg.Add(1)
	go m.run(ctx, c)
}

func (m *Manager) removeLocked(c *checker) {
	c.removed = true
	if c.cancel != nil {
		c.cancel()
	}
	delete(m.checkers, c.key)
	r := m.series[c.series]
	r.checkers--
	if c.counter.state == Down {
		r.down--
	}
	if r.checkers == 0 {
		delete(m.series, c.series)
		m.metrics.delete(c.series)
	} else {
		m.metrics.setUp(c.series, r)
	}
}

// record applies one check result.
func (m *Manager) record(c *checker, start time.Time, took time.Duration, err error) {
	result := resultOf(err)
	m.metrics.duration.WithLabelValues(c.series.check).Observe(took.Seconds())
	if err != nil {
		m.log.Debug("health check failed", zap.Stringer("check", c.key), zap.String("result", result), zap.Error(err))
	}

	m.mu.Lock()
	if c.removed {
		// Set dropped the key while this check ran; counting it now would
		// bring back deleted series.
		m.mu.Unlock()
		return
	}
	m.metrics.checks.WithLabelValues(c.series.backend, c.series.check, result).Inc()
	c.lastCheck = start
	c.lastError = ""
	if err != nil {
		c.lastError = err.Error()
	}
	old := c.counter.state
	if !c.counter.observe(err == nil) {
		m.mu.Unlock()
		return
	}
	now := time.Now()
	c.since = now
	r := m.series[c.series]
	if c.counter.state == Down {
		r.down++
	} else {
		r.down--
	}
	m.metrics.setUp(c.series, r)

	ev := Event{
		Key:       c.key,
		Addr:      c.key.Addr,
		Owners:    slices.Clone(c.owners),
		Old:       old,
		New:       c.counter.state,
		LastError: c.lastError,
		Time:      now,
	}
	if ev.New == Down {
		ev.Reason = fmt.Sprintf("%d consecutive failed checks, last: %s", c.counter.failures, c.lastError)
	} else {
		ev.Reason = fmt.Sprintf("%d consecutive successful checks", c.counter.successes)
	}
	for s := range m.subs {
		s.push(ev)
	}
	m.mu.Unlock()

	m.log.Info("backend health changed",
		zap.String("backend", ev.Addr.String()),
		zap.Stringer("check", ev.Key),
		zap.Stringer("from", ev.Old),
		zap.Stringer("to", ev.New),
		zap.String("reason", ev.Reason),
		zap.Strings("owners", ev.Owners))
}

// Run checks every target until ctx ends or Close is called, then stops
// every checker and returns once they have all returned. Set may be called
// before and while Run runs; targets set after Run returned are kept but not
// checked. Run may be called once.
func (m *Manager) Run(ctx context.Context) error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return ErrClosed
	}
	if m.runCtx != nil {
		m.mu.Unlock()
		return errors.New("health: Run called twice")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	m.runCtx = ctx
	for _, c := range m.checkers {
		m.startLocked(c)
	}
	m.mu.Unlock()

	select {
	case <-ctx.Done():
	case <-m.done:
	}
	m.mu.Lock()
	m.stopped = true
	m.mu.Unlock()
	cancel()
	m.wg.Wait()
	return nil
}

// Close stops checking, ends every subscription (closing subscriber
// channels) and waits for all the Manager's goroutines. Closing twice is a
// no-op.
func (m *Manager) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	close(m.done)
	for s := range m.subs {
		s.close()
	}
	clear(m.subs)
	m.mu.Unlock()
	m.wg.Wait()
	m.subWG.Wait()
	return nil
}

// Subscribe returns a channel of every state change from now on, in order
// per key, and a cancel func that ends the subscription and closes the
// channel. Events wait in a bounded per-subscriber queue: a subscriber that
// falls behind loses superseded events first (counted in
// xlb_health_events_dropped_total), never blocks a check. To start from a
// consistent view, subscribe first, then read Snapshot. After Close the
// channel is closed at once.
func (m *Manager) Subscribe() (<-chan Event, func()) {
	s := m.newSubscription()
	s.out = make(chan Event)
	return s.out, m.start(s)
}

// OnChange calls fn for every state change, one call at a time from a
// goroutine of its own, with the same queueing as Subscribe. cancel stops
// further calls; a call in progress may still finish after it returns.
func (m *Manager) OnChange(fn func(Event)) (cancel func()) {
	s := m.newSubscription()
	s.fn = fn
	return m.start(s)
}

func (m *Manager) newSubscription() *subscription {
	return newSubscription(m.eventBuffer, m.metrics.dropped.Inc)
}

func (m *Manager) start(s *subscription) func() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		s.close()
		if s.out != nil {
			close(s.out)
		}
		return func() {}
	}
	m.subs[s] = struct{}{}
	m.subWG.Add(1)
	go func() {
		defer m.subWG.Done()
		s.deliver()
	}()
	return func() {
		m.mu.Lock()
		delete(m.subs, s)
		m.mu.Unlock()
		s.close()
	}
}

// State returns the status of one key (see Target.Key).
func (m *Manager) State(k Key) (Status, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.checkers[k]
	if !ok {
		return Status{}, false
	}
	return c.status(), true
}

// Snapshot returns every checker's status, ordered by backend address, then
// check.
func (m *Manager) Snapshot() []Status {
	m.mu.Lock()
	out := make([]Status, 0, len(m.checkers))
	for _, c := range m.checkers {
		out = append(out, c.status())
	}
	m.mu.Unlock()
	slices.SortFunc(out, func(a, b Status) int {
		if c := a.Key.Addr.Compare(b.Key.Addr); c != 0 {
			return c
		}
		return cmp.Compare(fmt.Sprint(a.Key.Spec), fmt.Sprint(b.Key.Spec))
	})
	return out
}
