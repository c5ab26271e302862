package health

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// startManager runs a Manager until the test ends.
func startManager(t *testing.T, opts Options, setup func(*Manager)) *Manager {
	t.Helper()
	m, err := NewManager(opts)
	if err != nil {
		t.Fatal(err)
	}
	if setup != nil {
		setup(m)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-ran; err != nil {
			t.Errorf("Run: %v", err)
		}
		m.Close()
	})
	return m
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func recv(t *testing.T, ch <-chan Event) Event {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("event channel closed")
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("timed out waiting for an event")
	}
	return Event{}
}

// scripted is a fake check that plays results in order ('+' pass, '-'
// fail), then passes forever, counting every call.
type scripted struct {
	script string
	calls  atomic.Int64
}

func (s *scripted) probe(context.Context) error {
	n := int(s.calls.Add(1))
	if n <= len(s.script) && s.script[n-1] == '-' {
		return errors.New("scripted failure")
	}
	return nil
}

// metricValue reads one series from the registry; ok is false when absent.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			for _, lp := range m.GetLabel() {
				if want, ok := labels[lp.GetName()]; ok && want != lp.GetValue() {
					continue next
				}
			}
			switch {
			case m.Gauge != nil:
				return m.Gauge.GetValue(), true
			case m.Counter != nil:
				return m.Counter.GetValue(), true
			}
		}
	}
	return 0, false
}

// TestRiseFallExactRealServer drives an HTTP checker with a server whose
// answers follow a script, and checks the state the manager reports as each
// request arrives (that is, after every earlier check was recorded).
func TestRiseFallExactRealServer(t *testing.T) {
	// '+' 200, '-' 503. fall 3, rise 2, starting up.
	const script = "+--+----+-++"
	// State when request n arrives, after checks 1..n-1:
	// 7th check is the 3rd failure in a row -> down; 11th is the 2nd
	// success in a row -> up. Check 9 fails and restarts the success run.
	const want = "UUUUUUUDDDDD" + "U"

	var (
		m      *Manager
		key    Key
		mu     sync.Mutex
		states []State
		n      atomic.Int32
	)
	srv := newHTTPServer(t, func(w http.ResponseWriter, r *http.Request) {
		i := int(n.Add(1))
		if i <= len(want) {
			st, _ := m.State(key)
			mu.Lock()
			states = append(states, st.State)
			mu.Unlock()
		}
		if i <= len(script) && script[i-1] == '-' {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	target := Target{Owner: "lb/http:80", Addr: srv.addr(t), Spec: Spec{
		Type: HTTP, Path: "/health", Codes: HTTP2xx, Interval: 20 * time.Millisecond, Timeout: time.Second, Rise: 2, Fall: 3,
	}}
	key = target.Key()
	startManager(t, Options{}, func(mm *Manager) {
		m = mm // before Run starts the checker that the handler races with
		if err := m.Set([]Target{target}); err != nil {
			t.Fatal(err)
		}
	})
	events, cancel := m.Subscribe()
	defer cancel()

	waitFor(t, "all scripted requests", func() bool { return int(n.Load()) >= len(want) })
	mu.Lock()
	var got strings.Builder
	for _, s := range states {
		got.WriteByte(strings.ToUpper(s.String())[0])
	}
	mu.Unlock()
	if got.String() != want {
		t.Fatalf("state at each request = %s, want %s (U up, D down)", got.String(), want)
	}

	down := recv(t, events)
	if down.Old != Up || down.New != Down || down.Addr != target.Addr || !slices.Equal(down.Owners, []string{"lb/http:80"}) {
		t.Errorf("first event %+v, want up -> down for %s owned by lb/http:80", down, target.Addr)
	}
	if !strings.Contains(down.Reason, "3 consecutive failed checks") || !strings.Contains(down.Reason, "503") {
		t.Errorf("down reason %q should say 3 failures and the 503", down.Reason)
	}
	up := recv(t, events)
	if up.Old != Down || up.New != Up || !strings.Contains(up.Reason, "2 consecutive successful checks") {
		t.Errorf("second event %+v, want down -> up after 2 successes", up)
	}
}

func TestInitialState(t *testing.T) {
	for _, initialDown := range []bool{false, true} {
		t.Run(fmt.Sprintf("InitialDown=%v", initialDown), func(t *testing.T) {
			fake := &scripted{script: "++++"}
			m := startManager(t, Options{InitialDown: initialDown}, func(m *Manager) {
				m.probeFor = func(Key) probeFunc { return fake.probe }
			})
			events, cancel := m.Subscribe()
			defer cancel()
			target := Target{Addr: addrPort(t, "192.0.2.1:80"), Spec: Spec{Type: TCP, Interval: time.Millisecond, Rise: 3, Fall: 2}}
			if err := m.Set([]Target{target}); err != nil {
				t.Fatal(err)
			}
			if !initialDown {
				waitFor(t, "checks", func() bool { return fake.calls.Load() >= 5 })
				if st, _ := m.State(target.Key()); st.State != Up {
					t.Fatalf("state %v, want up", st.State)
				}
				return
			}
			ev := recv(t, events)
			if ev.Old != Down || ev.New != Up {
				t.Fatalf("event %v -> %v, want down -> up", ev.Old, ev.New)
			}
			// The event is published by the 3rd check, before a 4th starts.
			if st, _ := m.State(target.Key()); st.Successes < 3 {
				t.Errorf("up after %d successes, want 3", st.Successes)
			}
		})
	}
}

func TestDedupAndReconcile(t *testing.T) {
	var perPath sync.Map // path -> *atomic.Int64
	srv := newHTTPServer(t, func(w http.ResponseWriter, r *http.Request) {
		c, _ := perPath.LoadOrStore(r.URL.Path, new(atomic.Int64))
		c.(*atomic.Int64).Add(1)
	})
	count := func(path string) int64 {
		c, ok := perPath.Load(path)
		if !ok {
			return 0
		}
		return c.(*atomic.Int64).Load()
	}
	const interval = 40 * time.Millisecond
	spec := Spec{Type: HTTP, Path: "/a", Interval: interval, Timeout: time.Second}
	other := spec
	other.Path = "/b"
	addr := srv.addr(t)
	a1 := Target{Owner: "group-1", Addr: addr, Spec: spec}
	a2 := Target{Owner: "group-2", Addr: addr, Spec: spec}
	b := Target{Owner: "group-1", Addr: addr, Spec: other}

	reg := prometheus.NewRegistry()
	var probes atomic.Int32
	m := startManager(t, Options{Registerer: reg}, func(m *Manager) {
		m.probeFor = func(k Key) probeFunc {
			probes.Add(1)
			return newProbe(k)
		}
	})
	if err := m.Set([]Target{a1, a2, b, a1}); err != nil {
		t.Fatal(err)
	}
	if got := probes.Load(); got != 2 {
		t.Fatalf("%d checkers started for 2 distinct keys", got)
	}
	snap := m.Snapshot()
	if len(snap) != 2 {
		t.Fatalf("Snapshot has %d entries, want 2", len(snap))
	}
	st, ok := m.State(a1.Key())
	if !ok || !slices.Equal(st.Owners, []string{"group-1", "group-2"}) {
		t.Fatalf("State(a) = %+v, %v; want owners group-1 and group-2", st, ok)
	}

	// One checker: about one request per interval (±10%), not two.
	waitFor(t, "the first check", func() bool { return count("/a") > 0 })
	start, c0 := time.Now(), count("/a")
	time.Sleep(25 * interval)
	checks := count("/a") - c0
	limit := int64(time.Since(start)/(interval*9/10)) + 1
	if checks < 1 || checks > limit {
		t.Fatalf("server saw %d checks of /a in %v at a %v interval; more than %d means duplicate checkers", checks, time.Since(start), interval, limit)
	}

	// Dropping one owner keeps the checker and its state.
	before, _ := m.State(a1.Key())
	if err := m.Set([]Target{a1, b}); err != nil {
		t.Fatal(err)
	}
	if got := probes.Load(); got != 2 {
		t.Fatalf("removing an owner started a new checker (%d created)", got)
	}
	c1 := count("/a")
	waitFor(t, "checks to go on", func() bool { return count("/a") >= c1+2 })
	after, _ := m.State(a1.Key())
	if !slices.Equal(after.Owners, []string{"group-1"}) || after.Since != before.Since || after.Successes <= before.Successes {
		t.Errorf("after removing group-2: %+v; want owners [group-1], the same Since and a growing success run (was %d)", after, before.Successes)
	}

	// Removing the last owner stops the checker and deletes its series.
	if err := m.Set([]Target{b}); err != nil {
		t.Fatal(err)
	}
	if _, ok := m.State(a1.Key()); ok {
		t.Error("State still reports a removed key")
	}
	time.Sleep(interval) // a check already under way may still land
	c2 := count("/a")
	time.Sleep(5 * interval)
	if got := count("/a"); got != c2 {
		t.Errorf("removed checker still running: %d more checks", got-c2)
	}
	if _, ok := metricValue(t, reg, "xlb_backend_up", map[string]string{"backend": addr.String()}); !ok {
		t.Error("backend series gone while /b still checks it")
	}
	if err := m.Set(nil); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(reg, "xlb_backend_up", "xlb_health_checks_total"); n != 0 {
		t.Errorf("%d series left after every target was removed", n)
	}
}

func TestSetRejectsBadTargets(t *testing.T) {
	m, err := NewManager(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	good := Target{Owner: "ok", Addr: addrPort(t, "192.0.2.1:80"), Spec: Spec{Type: TCP}}
	if err := m.Set([]Target{good}); err != nil {
		t.Fatal(err)
	}
	bad := Target{Owner: "lb-1", Addr: addrPort(t, "192.0.2.2:53"), Spec: Spec{Type: UDP, Request: "q"}}
	err = m.Set([]Target{good, bad})
	if err == nil || !strings.Contains(err.Error(), "target 1") || !strings.Contains(err.Error(), "192.0.2.2:53") || !strings.Contains(err.Error(), "response") {
		t.Fatalf("Set error = %v, want one naming target 1, its address and the response field", err)
	}
	if got := len(m.Snapshot()); got != 1 {
		t.Errorf("a rejected Set changed the targets: %d now", got)
	}
	m.Close()
	if err := m.Set(nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Set after Close = %v, want ErrClosed", err)
	}
	if err := m.Run(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Run after Close = %v, want ErrClosed", err)
	}
}

// flapping returns a fake check for rise = fall = 1 targets: every check
// flips the state, for flips checks, then the state stays.
func flapping(flips int) func(context.Context) error {
	var n atomic.Int64
	return func(context.Context) error {
		i := n.Add(1)
		if i <= int64(flips) && i%2 == 1 {
			return errors.New("flap")
		}
		return nil
	}
}

func TestSubscribersGetEveryChange(t *testing.T) {
	const flips = 100
	m := startManager(t, Options{}, func(m *Manager) {
		m.probeFor = func(Key) probeFunc { return flapping(flips) }
	})
	events, cancel := m.Subscribe()
	defer cancel()
	var (
		mu       sync.Mutex
		callback []Event
	)
	stop := m.OnChange(func(ev Event) {
		mu.Lock()
		callback = append(callback, ev)
		mu.Unlock()
	})
	defer stop()

	target := Target{Addr: addrPort(t, "192.0.2.1:80"), Spec: Spec{Type: TCP, Interval: time.Millisecond, Rise: 1, Fall: 1}}
	if err := m.Set([]Target{target}); err != nil {
		t.Fatal(err)
	}
	var got []Event
	for range flips {
		got = append(got, recv(t, events))
	}
	waitFor(t, "callback events", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(callback) == flips
	})
	mu.Lock()
	defer mu.Unlock()
	for i, ev := range got {
		wantOld, wantNew := Up, Down
		if i%2 == 1 {
			wantOld, wantNew = Down, Up
		}
		if ev.Old != wantOld || ev.New != wantNew || ev.Key != target.Key() {
			t.Fatalf("channel event %d: %v -> %v, want %v -> %v", i, ev.Old, ev.New, wantOld, wantNew)
		}
		if cb := callback[i]; cb.Old != ev.Old || cb.New != ev.New || !cb.Time.Equal(ev.Time) {
			t.Fatalf("callback event %d differs: %+v vs %+v", i, cb, ev)
		}
	}
}

func TestSlowSubscriber(t *testing.T) {
	const flips = 200
	reg := prometheus.NewRegistry()
	var checks atomic.Int64
	m := startManager(t, Options{Registerer: reg, EventBuffer: 4}, func(m *Manager) {
		m.probeFor = func(Key) probeFunc {
			f := flapping(flips)
			return func(ctx context.Context) error {
				checks.Add(1)
				return f(ctx)
			}
		}
	})
	slow, cancel := m.Subscribe() // never read until the end
	defer cancel()

	var targets []Target
	for i := range 3 {
		targets = append(targets, Target{
			Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)}), 80),
			Spec: Spec{Type: TCP, Interval: time.Millisecond, Rise: 1, Fall: 1},
		})
	}
	if err := m.Set(targets); err != nil {
		t.Fatal(err)
	}
	// Checks carry on although nobody reads: 3 checkers x 200 flips.
	waitFor(t, "all flips", func() bool {
		for _, tg := range targets {
			// Two passes in a row only come after the flapping.
			if st, _ := m.State(tg.Key()); st.Successes < 2 {
				return false
			}
		}
		return true
	})
	if checks.Load() < 3*flips {
		t.Fatalf("only %d checks ran", checks.Load())
	}
	// 600 events; the subscriber holds at most 4 queued and 1 in hand.
	waitFor(t, "drops to be counted", func() bool {
		v, _ := metricValue(t, reg, "xlb_health_events_dropped_total", nil)
		return v >= 3*flips-5
	})

	// Superseded events went first: the last event of each key seen is
	// that key's final state (up, after an even number of flips).
	last := map[Key]Event{}
	for range 5 {
		select {
		case ev := <-slow:
			last[ev.Key] = ev
		case <-time.After(time.Second):
		}
	}
	for _, tg := range targets {
		if ev, ok := last[tg.Key()]; !ok || ev.New != Up {
			t.Errorf("%s: last event %+v (seen %v), want its final up", tg.Addr, ev, ok)
		}
	}
}

func TestMetricsAndLogs(t *testing.T) {
	reg := prometheus.NewRegistry()
	core, logs := observer.New(zap.InfoLevel)
	srv := newHTTPServer(t, func(http.ResponseWriter, *http.Request) {})
	addr := srv.addr(t)
	target := Target{Owner: "lb", Addr: addr, Spec: Spec{Type: TCP, Interval: 10 * time.Millisecond, Timeout: time.Second, Rise: 2, Fall: 2}}
	m := startManager(t, Options{Registerer: reg, Logger: zap.New(core)}, nil)
	events, cancel := m.Subscribe()
	defer cancel()
	if err := m.Set([]Target{target}); err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"backend": addr.String(), "check": "tcp"}
	if v, ok := metricValue(t, reg, "xlb_backend_up", labels); !ok || v != 1 {
		t.Fatalf("xlb_backend_up = %v (present %v), want 1 from the start", v, ok)
	}
	waitFor(t, "successful checks", func() bool {
		v, _ := metricValue(t, reg, "xlb_health_checks_total", map[string]string{"backend": addr.String(), "check": "tcp", "result": "success"})
		return v >= 2
	})

	srv.Close() // the port now refuses connections
	ev := recv(t, events)
	if ev.New != Down || !strings.Contains(ev.Reason, "refused") {
		t.Fatalf("event %+v, want down with a refused connection as reason", ev)
	}
	if v, _ := metricValue(t, reg, "xlb_backend_up", labels); v != 0 {
		t.Errorf("xlb_backend_up = %v after going down, want 0", v)
	}
	// Both failed checks are counted, each under its result: the refused
	// connect as a failure; on a loaded host the one before may instead have
	// been a timeout (a connect that got EAGAIN counts as one).
	failed, _ := metricValue(t, reg, "xlb_health_checks_total", map[string]string{"backend": addr.String(), "result": "failure"})
	timedOut, _ := metricValue(t, reg, "xlb_health_checks_total", map[string]string{"backend": addr.String(), "result": "timeout"})
	if failed < 1 || failed+timedOut < 2 {
		t.Errorf("xlb_health_checks_total: failure %v + timeout %v, want at least 1 failure and 2 in all", failed, timedOut)
	}
	if n := testutil.CollectAndCount(reg, "xlb_health_check_duration_seconds"); n != 1 {
		t.Errorf("%d duration series, want 1 (tcp)", n)
	}
	// The log line is written just after the event is published.
	waitFor(t, "the log line", func() bool { return logs.FilterMessage("backend health changed").Len() > 0 })
	entries := logs.FilterMessage("backend health changed").All()
	if len(entries) != 1 {
		t.Fatalf("%d state-change log entries, want 1", len(entries))
	}
	if f := entries[0].ContextMap(); f["to"] != "down" || !strings.Contains(fmt.Sprint(f["reason"]), "2 consecutive failed checks") {
		t.Errorf("log fields %v, want to=down and the reason", f)
	}

	if _, err := NewManager(Options{Registerer: reg}); err == nil {
		t.Error("a second manager on the same registry should fail to register its metrics")
	}
}

func TestGoroutinesStop(t *testing.T) {
	// Registered first, so it runs after every other cleanup.
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	silent := udpServer(t, func([]byte) []byte { return nil })
	m, err := NewManager(Options{})
	if err != nil {
		t.Fatal(err)
	}
	var targets []Target
	for i := range 20 {
		targets = append(targets, Target{Owner: fmt.Sprint(i), Addr: silent, Spec: Spec{
			Type: UDP, Request: fmt.Sprint(i), Response: "x", Interval: time.Millisecond, Timeout: time.Minute,
		}})
	}
	if err := m.Set(targets); err != nil {
		t.Fatal(err)
	}
	events, _ := m.Subscribe()
	m.OnChange(func(Event) {})
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error)
	go func() { ran <- m.Run(ctx) }()
	time.Sleep(50 * time.Millisecond) // checks are now waiting on their minute-long timeouts
	cancel()
	select {
	case <-ran:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return promptly after cancel")
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := <-events; ok {
		t.Error("subscriber channel still open after Close")
	}
	late, _ := m.Subscribe()
	if _, ok := <-late; ok {
		t.Error("Subscribe after Close returned an open channel")
	}
}
