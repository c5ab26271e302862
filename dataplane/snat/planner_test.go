package snat

import (
	"net/netip"
	"testing"
)

func TestBlockSizeTiers(t *testing.T) {
	for _, c := range []struct{ hosts, size int }{
		{1, 1024}, {50, 1024}, {51, 512}, {100, 512}, {101, 256}, {200, 256},
		{201, 128}, {400, 128}, {401, 64}, {800, 64}, {801, 32}, {1000, 32},
	} {
		if got := BlockSize(c.hosts); got != c.size {
			t.Errorf("BlockSize(%d) = %d, want %d", c.hosts, got, c.size)
		}
		// The tier's promise: one block per host fits in one public IP.
		if c.hosts*c.size > Ports {
			t.Errorf("%d hosts of %d ports do not fit in %d ports", c.hosts, c.size, Ports)
		}
	}
}

// usage is a set of ports in use per public IP and protocol.
type usage map[ipProto]map[uint16]int

func (u usage) InUse(b Block) int {
	n := 0
	for port, c := range u[ipProto{b.IP, b.Proto}] {
		if b.Contains(port) {
			n += c
		}
	}
	return n
}

func (u usage) use(b Block, port uint16) {
	k := ipProto{b.IP, b.Proto}
	if u[k] == nil {
		u[k] = map[uint16]int{}
	}
	u[k][port]++
}

var (
	pub1 = netip.MustParseAddr("203.0.113.20")
	pub2 = netip.MustParseAddr("203.0.113.21")
)

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func mustNew(t *testing.T, cfg Config) *Planner {
	t.Helper()
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// checkDisjoint fails when two hosts or spares share a port.
func checkDisjoint(t *testing.T, p *Planner) {
	t.Helper()
	owner := map[ipProto]map[uint16]string{}
	claim := func(who string, b Block) {
		k := ipProto{b.IP, b.Proto}
		if owner[k] == nil {
			owner[k] = map[uint16]string{}
		}
		for port := int(b.Start); port <= int(b.End()); port++ {
			if o, dup := owner[k][uint16(port)]; dup {
				t.Fatalf("port %v/%v:%d given to %s and %s", b.IP, b.Proto, port, o, who)
			}
			owner[k][uint16(port)] = who
		}
		if b.Start < PortMin {
			t.Fatalf("block %v below port %d", b, PortMin)
		}
	}
	p.Each(func(k HostKey, bs []Block) {
		for _, b := range bs {
			claim(k.Addr.String(), b)
		}
	})
	for pr := Proto(0); pr < NumProtos; pr++ {
		for _, b := range p.Spares(pr) {
			claim("spare", b)
		}
	}
}

func TestEveryHostHasAFirstBlockOfItsTier(t *testing.T) {
	for _, c := range []struct {
		sources []netip.Prefix
		size    int
	}{
		{[]netip.Prefix{pfx("10.0.0.0/27")}, 1024},                   // 32 hosts
		{[]netip.Prefix{pfx("10.0.0.0/26")}, 512},                    // 64
		{[]netip.Prefix{pfx("10.0.0.0/23"), pfx("10.0.4.0/24")}, 64}, // 768
		{[]netip.Prefix{pfx("10.0.0.0/23"), pfx("10.0.4.0/24"), pfx("10.0.6.0/26"), pfx("10.0.7.0/27"), pfx("10.0.8.0/29")}, 32}, // 872
	} {
		p := mustNew(t, Config{PublicIPs: []netip.Addr{pub1}, Sources: c.sources})
		want := c.size
		if p.BlockSize() != want {
			t.Errorf("%d hosts: block size %d, want %d", p.Hosts(), p.BlockSize(), want)
		}
		missing := 0
		for _, h := range p.hosts {
			for pr := Proto(0); pr < NumProtos; pr++ {
				bs := p.Blocks(HostKey{h, pr})
				if len(bs) != 1 || int(bs[0].Size) != want {
					missing++
				}
			}
		}
		if missing != 0 {
			t.Errorf("%d hosts: %d host/protocol pairs without exactly one %d-port block", p.Hosts(), missing, want)
		}
		checkDisjoint(t, p)
	}
}

func TestShareAndSparesGrowWithPublicIPs(t *testing.T) {
	cfg := Config{PublicIPs: []netip.Addr{pub1}, Sources: []netip.Prefix{pfx("10.0.0.0/27")}}
	p := mustNew(t, cfg)
	// 63 blocks of 1024 for 32 hosts: one each, no spares.
	if p.Share() != 1 || len(p.Spares(TCP)) != 0 {
		t.Fatalf("one public IP, 32 hosts: share %d, %d spares; want 1 and 0", p.Share(), len(p.Spares(TCP)))
	}
	cfg.PublicIPs = append(cfg.PublicIPs, pub2)
	if err := p.Update(cfg); err != nil {
		t.Fatal(err)
	}
	p.Plan(nil)
	if p.Share() != 3 || len(p.Spares(TCP)) != DefaultSpares {
		t.Fatalf("two public IPs: share %d, %d spares; want 3 and %d", p.Share(), len(p.Spares(TCP)), DefaultSpares)
	}
	checkDisjoint(t, p)

	// The data path takes a spare for a host: it becomes the host's.
	host := netip.MustParseAddr("10.0.0.5")
	sp := p.Spares(TCP)[0]
	p.Taken(host, sp)
	u := usage{}
	u.use(sp, sp.Start) // a translation holds a port of it
	first := p.Blocks(HostKey{host, TCP})[0]
	u.use(first, first.Start)
	p.Plan(u)
	if bs := p.Blocks(HostKey{host, TCP}); len(bs) != 2 || bs[1] != sp {
		t.Fatalf("after taking spare %v the host holds %v", sp, bs)
	}
	if len(p.Spares(TCP)) != DefaultSpares {
		t.Errorf("spares not refilled: %d", len(p.Spares(TCP)))
	}
	checkDisjoint(t, p)
	// Idle again (at two plans in a row): the extra block goes back, the
	// first stays.
	p.Plan(usage{})
	if bs := p.Blocks(HostKey{host, TCP}); len(bs) != 2 {
		t.Fatalf("a block idle at one plan only went back: the host holds %v", bs)
	}
	p.Plan(usage{})
	if bs := p.Blocks(HostKey{host, TCP}); len(bs) != 1 || bs[0] != first {
		t.Errorf("idle host holds %v, want its first block %v only", bs, first)
	}
}

func TestTierChangeTakesOnlyIdlePorts(t *testing.T) {
	cfg := Config{PublicIPs: []netip.Addr{pub1}, Sources: []netip.Prefix{pfx("10.0.0.0/27")}}
	p := mustNew(t, cfg)
	busy := netip.MustParseAddr("10.0.0.1")  // ports in both halves of its block
	half := netip.MustParseAddr("10.0.0.2")  // ports in the first half only
	quiet := netip.MustParseAddr("10.0.0.3") // none
	u := usage{}
	bb := p.Blocks(HostKey{busy, TCP})[0]
	u.use(bb, bb.Start)
	u.use(bb, bb.End())
	hb := p.Blocks(HostKey{half, TCP})[0]
	u.use(hb, hb.Start+10)

	// The pool grows past 50 hosts: new blocks are 512 ports.
	cfg.Sources = []netip.Prefix{pfx("10.0.0.0/26")}
	if err := p.Update(cfg); err != nil {
		t.Fatal(err)
	}
	p.Plan(u)
	p.Plan(u)
	if got := p.Blocks(HostKey{busy, TCP}); len(got) != 2 || got[0].Start != bb.Start || got[1].End() != bb.End() {
		t.Errorf("busy host holds %v, want both halves of %v", got, bb)
	}
	if got := p.Blocks(HostKey{half, TCP}); len(got) != 1 || got[0] != (Block{hb.IP, TCP, hb.Start, 512}) {
		t.Errorf("half-busy host holds %v, want the busy half of %v", got, hb)
	}
	if got := p.Blocks(HostKey{quiet, TCP}); len(got) != 1 || got[0].Size != 512 {
		t.Errorf("idle host holds %v, want one 512-port block", got)
	}
	newHost := netip.MustParseAddr("10.0.0.60")
	if got := p.Blocks(HostKey{newHost, TCP}); len(got) != 1 || got[0].Size != 512 {
		t.Errorf("new host holds %v, want one 512-port block", got)
	}
	checkDisjoint(t, p)

	// The busy host's second half falls idle: it goes back.
	u2 := usage{}
	u2.use(bb, bb.Start)
	p.Plan(u2)
	p.Plan(u2)
	if got := p.Blocks(HostKey{busy, TCP}); len(got) != 1 || got[0] != (Block{bb.IP, TCP, bb.Start, 512}) {
		t.Errorf("after the second half fell idle the host holds %v", got)
	}
	checkDisjoint(t, p)
}

func TestRemovedHostsDrainAndRemovedIPsGo(t *testing.T) {
	cfg := Config{PublicIPs: []netip.Addr{pub1, pub2}, Sources: []netip.Prefix{pfx("10.0.0.0/30")}}
	p := mustNew(t, cfg)
	gone := netip.MustParseAddr("10.0.0.3")
	b := p.Blocks(HostKey{gone, UDP})[0]
	u := usage{}
	u.use(b, b.Start)
	cfg.Sources = []netip.Prefix{pfx("10.0.0.0/31")}
	if err := p.Update(cfg); err != nil {
		t.Fatal(err)
	}
	p.Plan(u)
	if len(p.Blocks(HostKey{gone, UDP})) != 0 {
		t.Error("a host that left the pool still has blocks")
	}
	if s := p.spaces[ipProto{b.IP, UDP}]; !s[(int(b.Start)-PortMin)/unit] {
		t.Error("a busy block of a removed host was freed while a translation holds it")
	}
	p.Plan(usage{})
	p.Plan(usage{})
	if s := p.spaces[ipProto{b.IP, UDP}]; s[(int(b.Start)-PortMin)/unit] && !p.heldBySomeone(b) {
		t.Error("the removed host's block was not freed once idle")
	}
	cfg.PublicIPs = []netip.Addr{pub2}
	if err := p.Update(cfg); err != nil {
		t.Fatal(err)
	}
	p.Plan(nil)
	p.Each(func(k HostKey, bs []Block) {
		for _, b := range bs {
			if b.IP != pub2 {
				t.Errorf("host %v keeps %v on a removed public IP", k, b)
			}
		}
	})
	checkDisjoint(t, p)
}

func (p *Planner) heldBySomeone(b Block) bool {
	held := false
	p.Each(func(_ HostKey, bs []Block) {
		for _, o := range bs {
			if o.IP == b.IP && o.Proto == b.Proto && o.Start <= b.End() && b.Start <= o.End() {
				held = true
			}
		}
	})
	for _, o := range p.Spares(b.Proto) {
		if o.IP == b.IP && o.Start <= b.End() && b.Start <= o.End() {
			held = true
		}
	}
	return held
}

func TestConfigErrors(t *testing.T) {
	for _, c := range []Config{
		{Sources: []netip.Prefix{pfx("10.0.0.0/30")}},
		{PublicIPs: []netip.Addr{pub1}},
		{PublicIPs: []netip.Addr{pub1}, Sources: []netip.Prefix{pfx("10.0.0.0/21")}},
		{PublicIPs: []netip.Addr{pub1, pub1}, Sources: []netip.Prefix{pfx("10.0.0.0/30")}},
		{PublicIPs: []netip.Addr{netip.MustParseAddr("2001:db8::1")}, Sources: []netip.Prefix{pfx("10.0.0.0/30")}},
	} {
		if _, err := New(c); err == nil {
			t.Errorf("New(%+v) accepted", c)
		}
	}
}

func TestAssignTakesNothingBack(t *testing.T) {
	cfg := Config{PublicIPs: []netip.Addr{pub1}, Sources: []netip.Prefix{pfx("10.0.0.0/27")}}
	p := mustNew(t, cfg)
	host := netip.MustParseAddr("10.0.0.1")
	before := p.Blocks(HostKey{host, TCP})
	cfg.Sources = []netip.Prefix{pfx("10.0.0.0/26")}
	if err := p.Update(cfg); err != nil {
		t.Fatal(err)
	}
	p.Assign()
	p.Assign()
	if got := p.Blocks(HostKey{host, TCP}); len(got) != 1 || got[0] != before[0] {
		t.Errorf("Assign changed an existing host's blocks: %v -> %v", before, got)
	}
	if got := p.Blocks(HostKey{netip.MustParseAddr("10.0.0.50"), TCP}); len(got) != 1 || got[0].Size != 512 {
		t.Errorf("a new host got %v, want one 512-port block", got)
	}
	checkDisjoint(t, p)
}
