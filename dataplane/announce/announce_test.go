package announce

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/xlbproject/xlb/internal/netlab"
)

// fakeRoutes is a routing table in memory.
type fakeRoutes struct {
	mu sync.Mutex
	m  map[uint32]map[netip.Addr]uint32 // table -> vip -> metric
}

func newFake() *fakeRoutes { return &fakeRoutes{m: map[uint32]map[netip.Addr]uint32{}} }

func (f *fakeRoutes) Replace(vip netip.Addr, table, metric uint32) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m[table] == nil {
		f.m[table] = map[netip.Addr]uint32{}
	}
	f.m[table][vip] = metric
	return nil
}

func (f *fakeRoutes) Delete(vip netip.Addr, table uint32) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.m[table], vip)
	return nil
}

func (f *fakeRoutes) List(table uint32) ([]netip.Addr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []netip.Addr
	for v := range f.m[table] {
		out = append(out, v)
	}
	return out, nil
}

func (f *fakeRoutes) table(t uint32) map[netip.Addr]uint32 {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[netip.Addr]uint32{}
	for k, v := range f.m[t] {
		out[k] = v
	}
	return out
}

var (
	vipA = netip.MustParseAddr("203.0.113.10")
	vipB = netip.MustParseAddr("2001:db8::10")
)

func newEngine(t *testing.T, r Routes) *Engine {
	t.Helper()
	e, err := New(r, prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	e.interval = 20 * time.Millisecond
	e.Start(context.Background())
	t.Cleanup(func() { e.Drain(context.Background()) })
	return e
}

// eventually waits for cond.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 3 s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestAnnouncesHealthyVIPsAndWithdraws(t *testing.T) {
	f := newFake()
	f.Replace(netip.MustParseAddr("198.51.100.9"), 200, 0) // an earlier xlbd's, no longer configured
	e := newEngine(t, f)
	var aUp, bUp atomic.Bool
	aUp.Store(true)
	bUp.Store(true)
	e.Apply(Config{Mode: ECMP, Table: 200, Priority: 7, VIPs: []VIP{
		{Addr: vipA, Healthy: aUp.Load}, {Addr: vipB, Healthy: bUp.Load},
	}})
	eventually(t, "both VIPs announced with metric 0 (ecmp), the stale route gone", func() bool {
		tb := f.table(200)
		m, okA := tb[vipA]
		_, okB := tb[vipB]
		return len(tb) == 2 && okA && okB && m == 0
	})
	aUp.Store(false) // no healthy backend behind A
	eventually(t, "A withdrawn", func() bool { _, ok := f.table(200)[vipA]; return !ok && len(f.table(200)) == 1 })
	aUp.Store(true)
	eventually(t, "A back", func() bool { return len(f.table(200)) == 2 })

	// active/standby: the priority becomes the metric.
	e.Apply(Config{Mode: ActiveStandby, Table: 200, Priority: 7, VIPs: []VIP{{Addr: vipA, Healthy: aUp.Load}}})
	eventually(t, "A with metric 7, B withdrawn", func() bool {
		tb := f.table(200)
		return len(tb) == 1 && tb[vipA] == 7
	})
	// another table: the old one is emptied.
	e.Apply(Config{Mode: ActiveStandby, Table: 300, Priority: 7, VIPs: []VIP{{Addr: vipA, Healthy: aUp.Load}}})
	eventually(t, "moved to table 300", func() bool { return len(f.table(200)) == 0 && len(f.table(300)) == 1 })
	if got := e.Announced(); !slices.Equal(got, []netip.Addr{vipA}) {
		t.Errorf("Announced() = %v", got)
	}
	e.Apply(Config{Mode: None, Table: 300, VIPs: []VIP{{Addr: vipA, Healthy: aUp.Load}}})
	eventually(t, "mode none withdraws", func() bool { return len(f.table(300)) == 0 })
}

// Draining withdraws everything at once, before the other engines finish.
func TestDrainWithdraws(t *testing.T) {
	f := newFake()
	e, err := New(f, prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	e.Start(context.Background())
	e.Apply(Config{Mode: ECMP, Table: 200, VIPs: []VIP{{Addr: vipA}}})
	eventually(t, "announced", func() bool { return len(f.table(200)) == 1 })
	e.Drain(context.Background())
	if len(f.table(200)) != 0 {
		t.Errorf("after Drain: %v", f.table(200))
	}
}

// The real kernel table, in a namespace of the test's own: the routes
// carry xlb's protocol, a restart adopts them, and a foreign route in the
// same table is left alone.
func TestNetlinkRoutesInANamespace(t *testing.T) {
	lab := netlab.New(t, netlab.Topology{Hosts: []netlab.Host{{Name: "gw"}}})
	var r *NetlinkRoutes
	if err := lab.Do("gw", func() (err error) { r, err = NewNetlinkRoutes(nil); return err }); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := lab.Run(ctx, "gw", "ip", "route", "add", "192.0.2.99/32", "dev", "lo", "table", "200"); err != nil {
		t.Fatal(err) // someone else's route in the same table
	}
	show := func() string {
		out, err := lab.Run(ctx, "gw", "ip", "route", "show", "table", "200")
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}
	e := newEngine(t, r)
	e.Apply(Config{Mode: ActiveStandby, Table: 200, Priority: 20, VIPs: []VIP{{Addr: vipA}, {Addr: vipB}}})
	eventually(t, "routes in table 200", func() bool {
		s := show()
		return strings.Contains(s, "203.0.113.10 dev lo proto 198 scope host metric 20")
	})
	out, err := lab.Run(ctx, "gw", "ip", "-6", "route", "show", "table", "200")
	if err != nil || !strings.Contains(string(out), "2001:db8::10 dev lo proto 198 metric 20") {
		t.Fatalf("IPv6 route: %v\n%s", err, out)
	}
	// A restarted xlbd (a new engine) that no longer serves B adopts and
	// withdraws it, and keeps A.
	e.Drain(ctx)
	if s := show(); strings.Contains(s, "203.0.113.10") {
		t.Fatalf("after drain:\n%s", s)
	}
	_ = r.Replace(vipB, 200, 20) // a crash left B behind
	e2 := newEngine(t, r)
	e2.Apply(Config{Mode: ECMP, Table: 200, VIPs: []VIP{{Addr: vipA}}})
	eventually(t, "A announced, B withdrawn", func() bool {
		s := show()
		out, _ := lab.Run(ctx, "gw", "ip", "-6", "route", "show", "table", "200")
		return strings.Contains(s, "203.0.113.10 dev lo proto 198") && !strings.Contains(string(out), "2001:db8::10")
	})
	if s := show(); !strings.Contains(s, "192.0.2.99 dev lo") {
		t.Errorf("the foreign route was touched:\n%s", s)
	}
}
