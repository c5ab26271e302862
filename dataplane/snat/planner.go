package snat

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
)

// Data-path limits (bpf/include/nat_structs.h).
const (
	DefaultMaxHostBlocks = 64 // NAT_HOST_BLOCKS
	DefaultSpares        = 8  // NAT_SPARES
)

// Config is one pool as the planner needs it.
type Config struct {
	PublicIPs []netip.Addr
	// Sources are the private hosts' prefixes; every address is a host
	// (the pool's size, which picks the block size).
	Sources []netip.Prefix
	// MaxHostBlocks bounds the blocks one host holds per protocol; 0 is
	// DefaultMaxHostBlocks.
	MaxHostBlocks int
	// Spares is the number of blocks kept ready per protocol for hosts
	// whose blocks are full; 0 is DefaultSpares.
	Spares int
}

// Usage reports how many translations hold ports of a run of ports (the
// reply entries of the flow table, released ones still in their grace
// included). The planner takes nothing from a host while it is non-zero.
type Usage interface {
	InUse(b Block) int
}

type ipProto struct {
	ip    netip.Addr
	proto Proto
}

// Planner is one pool's plan. It is not safe for concurrent use.
type Planner struct {
	cfg      Config
	hosts    []netip.Addr
	hostSet  map[netip.Addr]bool
	size     int
	spaces   map[ipProto]*space
	blocks   map[HostKey][]Block
	spares   [NumProtos][]Block
	draining []Block // blocks of hosts that left the pool, freed when idle
	// idleBefore holds the runs the previous Plan found idle: a run goes
	// back only when two Plans in a row find it idle, so a port claimed
	// between the data path's count and the plan is never taken away.
	idleBefore, idleNow map[Block]bool
}

// New plans a pool: every host gets its first block of each protocol.
func New(cfg Config) (*Planner, error) {
	p := &Planner{spaces: map[ipProto]*space{}, blocks: map[HostKey][]Block{}, hostSet: map[netip.Addr]bool{}}
	if err := p.Update(cfg); err != nil {
		return nil, err
	}
	p.Plan(nil)
	return p, nil
}

func (c *Config) check() ([]netip.Addr, error) {
	if len(c.PublicIPs) == 0 {
		return nil, errors.New("no public IPs")
	}
	seen := map[netip.Addr]bool{}
	for _, ip := range c.PublicIPs {
		if !ip.Is4() {
			return nil, fmt.Errorf("public IP %v: not IPv4", ip)
		}
		if seen[ip] {
			return nil, fmt.Errorf("public IP %v: listed twice", ip)
		}
		seen[ip] = true
	}
	var hosts []netip.Addr
	have := map[netip.Addr]bool{}
	for _, pfx := range c.Sources {
		if !pfx.Addr().Is4() {
			return nil, fmt.Errorf("source %v: not IPv4", pfx)
		}
		pfx = pfx.Masked()
		if pfx.Bits() < 32-10 {
			return nil, fmt.Errorf("source %v: more than %d hosts", pfx, MaxHosts)
		}
		for a := pfx.Addr(); pfx.Contains(a); a = a.Next() {
			if !have[a] {
				have[a] = true
				hosts = append(hosts, a)
			}
			if len(hosts) > MaxHosts {
				return nil, fmt.Errorf("the sources hold more than %d hosts", MaxHosts)
			}
		}
	}
	if len(hosts) == 0 {
		return nil, errors.New("no sources")
	}
	return hosts, nil
}

// Update applies a changed pool (public IPs, sources). Blocks on removed
// public IPs are dropped at once (their translations keep going: the flow
// table holds them); hosts that left drain; the block size follows the
// new host count, and Plan moves hosts to it as their ports fall idle.
func (p *Planner) Update(cfg Config) error {
	hosts, err := cfg.check()
	if err != nil {
		return err
	}
	if cfg.MaxHostBlocks <= 0 {
		cfg.MaxHostBlocks = DefaultMaxHostBlocks
	}
	if cfg.Spares <= 0 {
		cfg.Spares = DefaultSpares
	}
	keep := map[netip.Addr]bool{}
	for _, ip := range cfg.PublicIPs {
		keep[ip] = true
		for pr := Proto(0); pr < NumProtos; pr++ {
			if p.spaces[ipProto{ip, pr}] == nil {
				p.spaces[ipProto{ip, pr}] = &space{}
			}
		}
	}
	for k := range p.spaces {
		if !keep[k.ip] {
			delete(p.spaces, k)
		}
	}
	onKept := func(b Block) bool { return keep[b.IP] }
	for k, bs := range p.blocks {
		bs = slices.DeleteFunc(bs, func(b Block) bool { return !onKept(b) })
		if len(bs) == 0 {
			delete(p.blocks, k)
		} else {
			p.blocks[k] = bs
		}
	}
	for pr := range p.spares {
		p.spares[pr] = slices.DeleteFunc(p.spares[pr], func(b Block) bool { return !onKept(b) })
	}
	p.draining = slices.DeleteFunc(p.draining, func(b Block) bool { return !onKept(b) })

	set := make(map[netip.Addr]bool, len(hosts))
	for _, h := range hosts {
		set[h] = true
	}
	for k, bs := range p.blocks {
		if !set[k.Addr] {
			p.draining = append(p.draining, bs...)
			delete(p.blocks, k)
		}
	}
	p.cfg, p.hosts, p.hostSet = cfg, hosts, set
	p.size = BlockSize(len(hosts))
	return nil
}

// BlockSize is the size new blocks get.
func (p *Planner) BlockSize() int { return p.size }

// Hosts is the number of hosts of the pool.
func (p *Planner) Hosts() int { return len(p.hosts) }

// Share is the number of blocks a host may hold per protocol: the pool's
// blocks of the current size divided by its hosts, so that every host can
// hold its share at once.
func (p *Planner) Share() int {
	total := len(p.cfg.PublicIPs) * (Ports / p.size)
	s := total / max(1, len(p.hosts))
	return max(1, min(s, p.cfg.MaxHostBlocks))
}

func (p *Planner) release(b Block) {
	if s := p.spaces[ipProto{b.IP, b.Proto}]; s != nil {
		s.free(b.Start, b.Size)
	}
}

// alloc takes a block of the current size, trying the public IPs from the
// one at index first.
func (p *Planner) alloc(proto Proto, first int) (Block, bool) {
	ips := p.cfg.PublicIPs
	for i := range ips {
		ip := ips[(first+i)%len(ips)]
		if start, ok := p.spaces[ipProto{ip, proto}].alloc(p.size); ok {
			return Block{IP: ip, Proto: proto, Start: start, Size: uint16(p.size)}, true
		}
	}
	return Block{}, false
}

// Taken records that the data path gave spare b to host.
func (p *Planner) Taken(host netip.Addr, b Block) {
	i := slices.Index(p.spares[b.Proto], b)
	if i < 0 {
		return // not ours (a stale slot): the next Plan rewrites it
	}
	p.spares[b.Proto] = slices.Delete(p.spares[b.Proto], i, i+1)
	k := HostKey{host, b.Proto}
	if !p.hostSet[host] {
		p.draining = append(p.draining, b)
		return
	}
	p.blocks[k] = append(p.blocks[k], b)
}

// idle reports whether b can go back: no translation holds a port of it,
// now and at the previous Plan.
func (p *Planner) idle(u Usage, b Block) bool {
	if u != nil && u.InUse(b) > 0 {
		return false
	}
	p.idleNow[b] = true
	return u == nil || p.idleBefore[b]
}

// Plan brings the plan to the current block size and share without
// taking a port any translation holds (a run must be idle at two Plans in
// a row; a nil Usage means nothing is in use): idle parts of blocks larger than
// the current size and idle extra blocks go back, every host has a first
// block, and the spares are refilled.
func (p *Planner) Plan(u Usage) {
	p.idleNow = map[Block]bool{}
	defer func() { p.idleBefore = p.idleNow }()
	p.draining = slices.DeleteFunc(p.draining, func(b Block) bool {
		if p.idle(u, b) {
			p.release(b)
			return true
		}
		return false
	})
	for k, bs := range p.blocks {
		p.blocks[k] = p.shrink(u, bs)
	}
	p.assign()
}

// Assign gives every host without blocks its first block and refills the
// spares, taking nothing back: what a configuration change needs at once
// (the sweeps' Plans reclaim what fell idle).
func (p *Planner) Assign() { p.assign() }

func (p *Planner) assign() {
	for i, h := range p.hosts {
		for pr := Proto(0); pr < NumProtos; pr++ {
			k := HostKey{h, pr}
			if len(p.blocks[k]) > 0 {
				continue
			}
			if b, ok := p.alloc(pr, i); ok {
				p.blocks[k] = []Block{b}
			}
		}
	}
	want := 0
	if p.Share() > 1 {
		want = p.cfg.Spares
	}
	for pr := Proto(0); pr < NumProtos; pr++ {
		sp := p.spares[pr][:0]
		for _, b := range p.spares[pr] {
			if int(b.Size) == p.size && len(sp) < want {
				sp = append(sp, b)
			} else {
				p.release(b)
			}
		}
		for n := 0; len(sp) < want; n++ {
			b, ok := p.alloc(pr, n)
			if !ok {
				break
			}
			sp = append(sp, b)
		}
		p.spares[pr] = sp
	}
}

// shrink returns a host's blocks with the idle ones it does not need given
// back: a block larger than the current size keeps only its busy parts; an
// idle extra block goes; the host keeps at least one block of the current
// size while it is idle.
func (p *Planner) shrink(u Usage, bs []Block) []Block {
	size := uint16(p.size)
	var out []Block
	for _, b := range bs {
		if b.Size <= size || p.idle(u, b) && len(bs) == 1 {
			out = append(out, b)
			continue
		}
		// Split into parts of the current size; keep the busy ones.
		for s := int(b.Start); s <= int(b.End()); s += int(size) {
			part := Block{IP: b.IP, Proto: b.Proto, Start: uint16(s), Size: size}
			if !p.idle(u, part) {
				out = append(out, part)
			} else {
				p.release(part)
			}
		}
	}
	// Idle extra blocks go back; one block stays.
	var busy, idleBs []Block
	for _, b := range out {
		if p.idle(u, b) {
			idleBs = append(idleBs, b)
		} else {
			busy = append(busy, b)
		}
	}
	if len(busy) > 0 {
		for _, b := range idleBs {
			p.release(b)
		}
		return busy
	}
	if len(idleBs) == 0 {
		return nil
	}
	// An idle host: one block, of the current size.
	first := idleBs[0]
	for _, b := range idleBs[1:] {
		p.release(b)
	}
	if first.Size == size {
		return []Block{first}
	}
	p.release(first)
	if first.Size > size {
		// Its first part is free again: take it back directly.
		s := p.spaces[ipProto{first.IP, first.Proto}]
		if start, ok := s.alloc(p.size); ok {
			return []Block{{IP: first.IP, Proto: first.Proto, Start: start, Size: size}}
		}
	}
	return nil // Plan gives it a block of the current size
}

// Blocks returns the blocks of one host and protocol, in the data path's
// order.
func (p *Planner) Blocks(k HostKey) []Block { return p.blocks[k] }

// Each calls fn for every host with blocks.
func (p *Planner) Each(fn func(HostKey, []Block)) {
	for k, bs := range p.blocks {
		fn(k, bs)
	}
}

// Spares returns the spare blocks of a protocol.
func (p *Planner) Spares(pr Proto) []Block { return p.spares[pr] }

// Allocated returns the ports of ip and proto that hosts hold (spares
// not counted) and the share of the port space that is taken (hosts,
// spares and draining blocks).
func (p *Planner) Allocated(ip netip.Addr, pr Proto) (ports int, utilisation float64) {
	for k, bs := range p.blocks {
		if k.Proto != pr {
			continue
		}
		for _, b := range bs {
			if b.IP == ip {
				ports += int(b.Size)
			}
		}
	}
	s := p.spaces[ipProto{ip, pr}]
	if s == nil {
		return ports, 0
	}
	taken := 0
	for _, t := range s {
		if t {
			taken++
		}
	}
	return ports, float64(taken) / units
}
