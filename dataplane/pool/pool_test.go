package pool

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestConfigValidate(t *testing.T) {
	ms := func(roles ...Role) []Server {
		s := servers(make([]int, len(roles))...)
		for i, r := range roles {
			s[i].Role, s[i].Weight = r, 100
		}
		return s
	}
	dup := servers(100, 100)
	dup[1] = dup[0]
	tests := []struct {
		name string
		cfg  Config
		want string // error substring; "" = valid
	}{
		{"vserver", Config{Servers: servers(100, 0, 50)}, ""},
		{"empty vserver", Config{}, ""},
		{"master_slave", Config{Type: MasterSlave, Servers: ms(Slave, Master)}, ""},
		{"weight over 100", Config{Servers: servers(100, 101)}, "servers[1].weight"},
		{"negative weight", Config{Servers: servers(-1)}, "servers[0].weight"},
		{"no address", Config{Servers: []Server{{Port: 80, Weight: 1}}}, "servers[0].address"},
		{"no port", Config{Servers: []Server{{Addr: netip.MustParseAddr("10.0.0.1"), Weight: 1}}}, "servers[0].port"},
		{"duplicate", Config{Servers: dup}, "servers[1]: 10.0.1.1:8080 duplicates servers[0]"},
		{"role in vserver", Config{Servers: ms(Master)}, "servers[0].role"},
		{"master_slave without role", Config{Type: MasterSlave, Servers: ms(Master, RoleNone)}, "servers[1].role"},
		{"two masters", Config{Type: MasterSlave, Servers: ms(Master, Master)}, "exactly one master and one slave"},
		{"three servers", Config{Type: MasterSlave, Servers: ms(Master, Slave, Slave)}, "exactly one master and one slave"},
		{"unknown scheduler", Config{Scheduler: Maglev + 1}, "scheduler"},
		{"unknown type", Config{Type: MasterSlave + 1}, "type"},
		{"negative persistence", Config{Persistence: -1}, "persistence"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(NewRegistry(), tt.cfg)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// Weight 0, down, drain and disabled never get a pick, whatever the
// scheduler; with nothing left Pick says ErrNoBackend.
func TestIneligibleNeverPicked(t *testing.T) {
	for _, kind := range []Kind{RR, WRR, WLC, Maglev} {
		t.Run(kind.String(), func(t *testing.T) {
			p := newPool(t, nil, Config{Scheduler: kind, Servers: servers(100, 0, 100, 100, 100)})
			member(p, 2).SetUp(false)
			member(p, 3).SetAdmin(AdminDrain)
			member(p, 4).SetAdmin(AdminDisabled)
			for i, n := range countPicks(t, p, 1000) {
				if i == 0 && n != 1000 || i != 0 && n != 0 {
					t.Errorf("backend %d picked %d times of 1000", i, n)
				}
			}
			member(p, 0).SetUp(false)
			if b, err := p.Pick(1); !errors.Is(err, ErrNoBackend) || b != nil {
				t.Errorf("Pick = %v, %v; want nil, ErrNoBackend", b, err)
			}
			if b, err := p.PickSticky(client, 1); !errors.Is(err, ErrNoBackend) || b != nil {
				t.Errorf("PickSticky = %v, %v; want nil, ErrNoBackend", b, err)
			}
			member(p, 3).SetAdmin(AdminEnabled)
			if b, err := p.Pick(1); err != nil || b != member(p, 3) {
				t.Errorf("after re-enabling: Pick = %v, %v; want %v", b, err, member(p, 3))
			}
		})
	}
}

func TestMasterSlave(t *testing.T) {
	for _, kind := range []Kind{RR, WRR, WLC, Maglev} {
		t.Run(kind.String(), func(t *testing.T) {
			s := servers(100, 100)
			s[0].Role, s[1].Role = Slave, Master // order does not decide
			clk := newFakeClock()
			p := newPool(t, nil, Config{Type: MasterSlave, Scheduler: kind, Servers: s, Persistence: stickyTimeout},
				WithClock(clk.Now))
			slave, master := member(p, 0), member(p, 1)
			expect := func(step string, want *Backend) {
				t.Helper()
				for k := range uint64(20) {
					b, err := p.Pick(k * 0x9e3779b97f4a7c15)
					if b != want {
						t.Fatalf("%s: Pick = %v, %v; want %v", step, b, err, want)
					}
				}
				if b, _ := p.PickSticky(client, 7); b != want {
					t.Fatalf("%s: PickSticky = %v; want %v", step, b, want)
				}
			}
			expect("start", master)
			master.SetUp(false)
			expect("master down", slave)
			master.SetUp(true)
			expect("master back (no stickiness to the slave)", master)
			master.SetAdmin(AdminDrain)
			expect("master drained", slave)
			master.SetAdmin(AdminEnabled)
			expect("master enabled", master)
			s[1].Weight = 0
			if err := p.Update(Config{Type: MasterSlave, Scheduler: kind, Servers: s, Persistence: stickyTimeout}); err != nil {
				t.Fatal(err)
			}
			expect("master weight 0", slave)
			slave.SetUp(false)
			if _, err := p.Pick(0); !errors.Is(err, ErrNoBackend) {
				t.Errorf("both out: err = %v, want ErrNoBackend", err)
			}
		})
	}
}

func TestUpdateKeepsBackendState(t *testing.T) {
	reg := NewRegistry()
	p := newPool(t, reg, Config{Scheduler: WRR, Servers: servers(100, 100, 100)})
	a, b, c := member(p, 0), member(p, 1), member(p, 2)
	a.SetUp(false)
	b.Acquire()
	b.Acquire()
	b.SetAdmin(AdminDrain)
	v := p.Version()

	// Reload: drop c, change weights, add d, switch scheduler.
	next := servers(50, 20, 0, 100)
	next = append(next[:2], next[3])
	if err := p.Update(Config{Scheduler: WLC, Servers: next}); err != nil {
		t.Fatal(err)
	}
	ms := p.Snapshot().Members()
	if len(ms) != 3 || ms[0].Backend != a || ms[1].Backend != b {
		t.Fatalf("members after Update: %v; want a and b kept", ms)
	}
	if a.Up() || b.Active() != 2 || b.Admin() != AdminDrain {
		t.Errorf("state lost: a up=%v, b active=%d admin=%v", a.Up(), b.Active(), b.Admin())
	}
	if ms[0].Weight != 50 || ms[1].Weight != 20 || p.Snapshot().Scheduler() != WLC {
		t.Errorf("new weights/scheduler not applied: %v %v", ms, p.Snapshot().Scheduler())
	}
	if p.Version() <= v {
		t.Errorf("version %d after Update, was %d", p.Version(), v)
	}
	d := ms[2].Backend
	if got := p.Snapshot().Eligible(); len(got) != 1 || got[0].Backend != d {
		t.Errorf("eligible = %v, want only %v", got, d)
	}
	if reg.Lookup(c.ID()) != nil {
		t.Errorf("removed backend %v still in the registry", c)
	}
	// The removed backend no longer rebuilds this pool.
	v = p.Version()
	c.SetUp(false)
	if p.Version() != v {
		t.Errorf("removed backend's health change rebuilt the pool")
	}
}

// Pools naming the same address:port share one Backend: one health result
// and one active count serve them all.
func TestBackendsShared(t *testing.T) {
	reg := NewRegistry()
	p1 := newPool(t, reg, Config{Scheduler: RR, Servers: servers(100, 100)})
	p2 := newPool(t, reg, Config{Scheduler: WLC, Servers: servers(100, 100, 100)})
	if member(p1, 0) != member(p2, 0) || member(p1, 1) != member(p2, 1) {
		t.Fatal("same address:port, different Backend")
	}
	member(p1, 0).SetUp(false)
	for _, p := range []*Pool{p1, p2} {
		for _, m := range p.Snapshot().Eligible() {
			if m.Backend == member(p1, 0) {
				t.Errorf("down backend still eligible in a sharing pool")
			}
		}
	}
	member(p1, 1).Acquire() // a connection from p1's listener
	if b, _ := p2.Pick(0); b == member(p1, 1) {
		t.Errorf("p2's wlc ignored p1's active connection")
	}
	if got := len(reg.Backends()); got != 3 {
		t.Errorf("registry has %d backends, want 3", got)
	}
	p2.Close()
	if got := len(reg.Backends()); got != 2 {
		t.Errorf("after closing p2: registry has %d backends, want 2", got)
	}
	if err := p2.Update(Config{}); !errors.Is(err, ErrClosed) {
		t.Errorf("Update after Close: %v, want ErrClosed", err)
	}
	p1.Close()
	if got := len(reg.Backends()); got != 0 {
		t.Errorf("after closing both: registry has %d backends, want 0", got)
	}
}

func TestOnChange(t *testing.T) {
	p := newPool(t, nil, Config{Scheduler: Maglev, Servers: servers(100, 100)})
	var seen []uint64
	remove := p.OnChange(func() { seen = append(seen, p.Version()) })
	v0 := p.Version()
	member(p, 0).SetUp(false)
	member(p, 0).SetUp(false) // no change: no call
	if err := p.Update(Config{Scheduler: Maglev, Servers: servers(100, 100, 100)}); err != nil {
		t.Fatal(err)
	}
	member(p, 0).SetAdmin(AdminDrain)
	if len(seen) != 3 || seen[0] <= v0 || seen[1] <= seen[0] || seen[2] <= seen[1] {
		t.Errorf("versions seen %v (start %d), want 3 increasing", seen, v0)
	}
	if got := len(p.Snapshot().MaglevTable()); got != maglevTableSize {
		t.Errorf("table size %d", got)
	}
	remove()
	member(p, 1).SetUp(false)
	if len(seen) != 3 {
		t.Errorf("called after remove")
	}
}

// Snapshot tables index Eligible(): what the XDP engine copies.
func TestSnapshotTablesIndexEligible(t *testing.T) {
	for _, kind := range []Kind{WRR, WLC, Maglev} {
		t.Run(kind.String(), func(t *testing.T) {
			p := newPool(t, nil, Config{Scheduler: kind, Servers: servers(5, 100, 1, 1)})
			member(p, 1).SetUp(false)
			s := p.Snapshot()
			el := s.Eligible()
			if len(el) != 3 {
				t.Fatalf("eligible %v", el)
			}
			table := s.MaglevTable()
			if kind != Maglev {
				table = s.WRRSequence()
				want := "0010200" // 5:1:1 over a, c, d
				var got strings.Builder
				for _, i := range table {
					got.WriteByte(byte('0' + i))
				}
				if got.String() != want {
					t.Errorf("sequence %s, want %s", got.String(), want)
				}
			}
			for k, i := range table {
				if i < 0 || int(i) >= len(el) {
					t.Fatalf("slot %d: index %d out of %d", k, i, len(el))
				}
			}
			if kind == Maglev {
				// A pick is Eligible()[table[key % M]].
				for k := range uint64(100) {
					key := k * 0x9e3779b97f4a7c15
					b, _ := p.Pick(key)
					if want := el[table[key%uint64(len(table))]].Backend; b != want {
						t.Fatalf("key %d: Pick %v, table says %v", key, b, want)
					}
				}
			}
		})
	}
}
