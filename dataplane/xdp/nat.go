package xdp

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"

	"github.com/cilium/ebpf"
	"go.uber.org/zap"

	"github.com/xlbproject/xlb/dataplane/snat"
)

// Limits of the NAT maps (bpf/include/nat_structs.h).
const (
	maxPools      = 64   // NAT_MAX_POOLS
	maxEIPs       = 1024 // NAT_MAX_EIPS
	maxUplinks    = 256  // NAT_MAX_EGRESS
	maxPublic     = 1024 // NAT_MAX_PUBLIC
	hostBlocks    = 64   // NAT_HOST_BLOCKS
	sparesPerPool = 8    // NAT_SPARES
	natProtos     = 3    // NAT_PROTOS
	natKindPool   = 1
	natKindEIP    = 2
	natOnEIPs     = 1 // NAT_ON_EIPS
	natOnPools    = 2 // NAT_ON_POOLS
)

// natState is what the engine wrote for the SNAT pools and EIPs.
type natState struct {
	pools    map[string]*xpool
	pids     [maxPools]bool
	eips     map[netip.Addr]*xeip
	eids     [maxEIPs]bool
	uplinks  map[string]uint32 // interface -> egress slot
	privnets map[lbNatPrefixKey]lbNatPrivate
	fails    map[lbNatFailKey]bool
	epoch    uint32 // nat_epoch's value
}

func newNATState() *natState {
	return &natState{pools: map[string]*xpool{}, eips: map[netip.Addr]*xeip{}, uplinks: map[string]uint32{},
		privnets: map[lbNatPrefixKey]lbNatPrivate{}, fails: map[lbNatFailKey]bool{}}
}

type xpool struct {
	id      uint32
	cfg     SNATPool
	plan    *snat.Planner
	written map[snat.HostKey][]snat.Block
	spares  [natProtos][sparesPerPool]snat.Block // slots as last written
	warned  map[snat.HostKey]bool                // hosts above 80% (logged once)
}

type xeip struct {
	id  uint32
	cfg EIP
}

func planConfig(p *SNATPool) snat.Config {
	return snat.Config{PublicIPs: p.PublicIPs, Sources: p.Sources, MaxHostBlocks: hostBlocks, Spares: sparesPerPool}
}

// prepareNAT validates the pools and EIPs against the engine's limits and
// the node's interfaces.
func (e *Engine) prepareNAT(cfg *Config) error {
	if len(cfg.SNATPools) > maxPools {
		return fmt.Errorf("xdp: %d snat pools, at most %d per node", len(cfg.SNATPools), maxPools)
	}
	if len(cfg.EIPs) > maxEIPs {
		return fmt.Errorf("xdp: %d EIPs, at most %d per node", len(cfg.EIPs), maxEIPs)
	}
	public := map[netip.Addr]string{}
	names := map[string]bool{}
	ifaces := map[string]bool{}
	for i := range cfg.SNATPools {
		p := &cfg.SNATPools[i]
		if names[p.Name] {
			return fmt.Errorf("snat pool %s: configured twice", p.Name)
		}
		names[p.Name] = true
		p.Timeouts.defaults()
		if _, err := snat.New(planConfig(p)); err != nil {
			return fmt.Errorf("snat pool %s: %w", p.Name, err)
		}
		for _, ip := range p.PublicIPs {
			if other, dup := public[ip]; dup {
				return fmt.Errorf("snat pool %s: public IP %v is also %s's", p.Name, ip, other)
			}
			public[ip] = "snat pool " + p.Name
		}
		if p.Interface != "" {
			ifaces[p.Interface] = true
		}
	}
	if len(public) > maxPublic {
		return fmt.Errorf("xdp: %d public IPs in snat pools, at most %d per node", len(public), maxPublic)
	}
	private := map[netip.Addr]bool{}
	for _, x := range cfg.EIPs {
		if !x.Public.Is4() || !x.Private.Is4() {
			return fmt.Errorf("eip %v -> %v: IPv4 addresses only", x.Public, x.Private)
		}
		if other, dup := public[x.Public]; dup {
			return fmt.Errorf("eip %v: also %s's", x.Public, other)
		}
		public[x.Public] = "eip"
		if private[x.Private] {
			return fmt.Errorf("eip %v: private address %v is mapped twice", x.Public, x.Private)
		}
		private[x.Private] = true
		if x.Interface != "" {
			ifaces[x.Interface] = true
		}
	}
	if len(ifaces) > maxUplinks {
		return fmt.Errorf("xdp: %d uplinks named by snat pools and EIPs, at most %d", len(ifaces), maxUplinks)
	}
	for name := range ifaces {
		if _, err := e.nl.LinkByName(name); err != nil {
			return fmt.Errorf("interface %q (snat pool or eip): %w", name, err)
		}
	}
	return nil
}

// commitNAT writes the pools and EIPs. Translations already made keep
// going: they live in the flow table.
func (e *Engine) commitNAT(cfg *Config) error {
	n := e.nat
	var errs []error
	want := map[string]*SNATPool{}
	for i := range cfg.SNATPools {
		want[cfg.SNATPools[i].Name] = &cfg.SNATPools[i]
	}
	for name, x := range n.pools {
		if want[name] == nil {
			e.removePool(x)
			delete(n.pools, name)
		}
	}
	// Uplinks first: pools and EIPs refer to their slots.
	var names []string
	for _, p := range cfg.SNATPools {
		names = append(names, p.Interface)
	}
	for _, x := range cfg.EIPs {
		names = append(names, x.Interface)
	}
	e.assignUplinks(names)

	for i := range cfg.SNATPools {
		p := cfg.SNATPools[i]
		x := n.pools[p.Name]
		if x == nil {
			id, ok := allocID(n.pids[:])
			if !ok {
				return errors.New("snat pool ids exhausted after Prepare checked the limit")
			}
			plan, err := snat.New(planConfig(&p))
			if err != nil {
				n.pids[id] = false
				errs = append(errs, fmt.Errorf("snat pool %s: %w", p.Name, err))
				continue
			}
			x = &xpool{id: id, plan: plan, written: map[snat.HostKey][]snat.Block{}, warned: map[snat.HostKey]bool{}}
			n.pools[p.Name] = x
		} else if err := x.plan.Update(planConfig(&p)); err != nil {
			errs = append(errs, fmt.Errorf("snat pool %s: %w", p.Name, err))
			continue
		}
		x.cfg = p
		for _, ip := range p.PublicIPs {
			fk := lbNatFailKey{Pool: x.id, Addr: be32(ip)}
			if !n.fails[fk] {
				if err := e.objs.NatFailures.Update(fk, uint64(0), ebpf.UpdateNoExist); err != nil && !errors.Is(err, ebpf.ErrKeyExist) {
					errs = append(errs, fmt.Errorf("nat_failures: %w", err))
				}
				n.fails[fk] = true
			}
		}
		// New hosts and spares at once; what fell idle goes back at the
		// next sweeps (a commit has no fresh count of the ports in use).
		if err := e.writePlan(x, false, nil); err != nil {
			errs = append(errs, err)
		}
	}
	for fk := range n.fails {
		if !e.failKeyInUse(fk) {
			_ = e.objs.NatFailures.Delete(fk)
			delete(n.fails, fk)
		}
	}

	wantE := map[netip.Addr]EIP{}
	for _, x := range cfg.EIPs {
		wantE[x.Public] = x
	}
	for pub, x := range n.eips {
		if w, ok := wantE[pub]; !ok || w.Private != x.cfg.Private {
			_ = e.objs.NatEipPublic.Delete(be32(pub))
			_ = e.objs.NatEips.Put(x.id, lbNatEip{})
			n.eids[x.id] = false
			delete(n.eips, pub)
		}
	}
	for _, c := range cfg.EIPs {
		x := n.eips[c.Public]
		if x == nil {
			id, ok := allocID(n.eids[:])
			if !ok {
				return errors.New("eip ids exhausted after Prepare checked the limit")
			}
			x = &xeip{id: id}
			n.eips[c.Public] = x
		}
		x.cfg = c
		v := lbNatEip{PublicAddr: be32(c.Public), PrivateAddr: be32(c.Private), Egress: n.uplinkRef(c.Interface)}
		if err := e.objs.NatEips.Put(x.id, v); err != nil {
			errs = append(errs, fmt.Errorf("nat_eips: %w", err))
		}
		if err := e.objs.NatEipPublic.Put(be32(c.Public), x.id); err != nil {
			errs = append(errs, fmt.Errorf("nat_eip_public: %w", err))
		}
	}

	// The private side last: a host becomes NAT traffic once its pool or
	// EIP is complete.
	privs := map[lbNatPrefixKey]lbNatPrivate{}
	for _, x := range n.pools {
		for _, s := range x.cfg.Sources {
			s = s.Masked()
			privs[lbNatPrefixKey{Prefixlen: uint32(s.Bits()), Addr: be32(s.Addr())}] = lbNatPrivate{Kind: natKindPool, Id: x.id}
		}
	}
	for _, x := range n.eips {
		privs[lbNatPrefixKey{Prefixlen: 32, Addr: be32(x.cfg.Private)}] = lbNatPrivate{Kind: natKindEIP, Id: x.id}
	}
	for k, v := range privs {
		if old, ok := n.privnets[k]; ok && old == v {
			continue
		}
		if err := e.objs.NatPrivnets.Put(k, v); err != nil {
			errs = append(errs, fmt.Errorf("nat_privnets: %w", err))
		}
	}
	for k := range n.privnets {
		if _, ok := privs[k]; !ok {
			_ = e.objs.NatPrivnets.Delete(k)
		}
	}
	n.privnets = privs
	var on uint32
	if len(n.eips) > 0 {
		on |= natOnEIPs
	}
	if len(n.pools) > 0 {
		on |= natOnPools
	}
	if err := e.objs.NatOn.Put(uint32(0), on); err != nil {
		errs = append(errs, fmt.Errorf("nat_on: %w", err))
	}
	e.refreshUplinks()
	e.nextEpoch()
	return errors.Join(errs...)
}

func (e *Engine) failKeyInUse(fk lbNatFailKey) bool {
	for _, x := range e.nat.pools {
		if x.id != fk.Pool {
			continue
		}
		for _, ip := range x.cfg.PublicIPs {
			if be32(ip) == fk.Addr {
				return true
			}
		}
	}
	return false
}

func allocID(used []bool) (uint32, bool) {
	for i := range used {
		if !used[i] {
			used[i] = true
			return uint32(i), true
		}
	}
	return 0, false
}

// removePool stops new translations for a pool's hosts; made ones go on
// until they expire.
func (e *Engine) removePool(x *xpool) {
	for k := range x.written {
		_ = e.objs.NatHosts.Delete(lbNatHostKey{Addr: be32(k.Addr), Proto: uint32(k.Proto)})
	}
	for pr := range natProtos {
		for i := range sparesPerPool {
			_ = e.objs.NatSpares.Put(spareKey(x.id, pr, i), emptySpare())
		}
	}
	_ = e.objs.NatPools.Put(x.id, lbNatPool{})
	e.nat.pids[x.id] = false
}

func spareKey(pid uint32, proto, slot int) uint32 {
	return (pid*natProtos+uint32(proto))*sparesPerPool + uint32(slot)
}

// emptySpare is a slot the program skips (size 0) and cannot take (taken
// set).
func emptySpare() lbNatSpare { return lbNatSpare{Taken: ^uint32(0)} }

func natBlock(b snat.Block) lbNatBlock {
	return lbNatBlock{Addr: be32(b.IP), Start: b.Start, Size: b.Size}
}

func fromNatBlock(b lbNatBlock, pr snat.Proto) snat.Block {
	return snat.Block{IP: addrOf(b.Addr), Proto: pr, Start: b.Start, Size: b.Size}
}

// collectTaken hands the spares the program took to their hosts in the
// plan (and frees the slots for refilling).
func (e *Engine) collectTaken(x *xpool) {
	var s lbNatSpare
	for pr := range natProtos {
		for i := range sparesPerPool {
			if x.spares[pr][i].Size == 0 {
				continue
			}
			if err := e.objs.NatSpares.Lookup(spareKey(x.id, pr, i), &s); err != nil || s.Taken == 0 || s.B.Size == 0 {
				continue
			}
			x.plan.Taken(addrOf(s.Taken), fromNatBlock(s.B, snat.Proto(pr)))
			x.spares[pr][i] = snat.Block{}
			_ = e.objs.NatSpares.Put(spareKey(x.id, pr, i), emptySpare())
			// The program appended the block to the host: so does written.
			k := snat.HostKey{Addr: addrOf(s.Taken), Proto: snat.Proto(pr)}
			x.written[k] = append(slices.Clone(x.written[k]), fromNatBlock(s.B, snat.Proto(pr)))
		}
	}
}

// writePlan replans a pool and writes what changed: the pool's settings,
// its hosts' blocks and its spares. reclaim (after a sweep, with its count
// of the ports in use) lets idle blocks go back; without it only new
// blocks are given.
func (e *Engine) writePlan(x *xpool, reclaim bool, u *natUsage) error {
	e.collectTaken(x)
	if reclaim && u != nil {
		x.plan.Plan(u)
	} else {
		x.plan.Assign()
	}
	var errs []error
	pv := lbNatPool{MaxBlocks: uint32(x.plan.Share()), Egress: e.nat.uplinkRef(x.cfg.Interface), FailAddr: be32(x.cfg.PublicIPs[0])}
	if err := e.objs.NatPools.Put(x.id, pv); err != nil {
		errs = append(errs, fmt.Errorf("nat_pools: %w", err))
	}
	seen := map[snat.HostKey]bool{}
	x.plan.Each(func(k snat.HostKey, bs []snat.Block) {
		seen[k] = true
		if slices.Equal(x.written[k], bs) {
			return
		}
		var v lbNatHost
		for i, b := range bs {
			if i == hostBlocks {
				break
			}
			v.Blocks[i] = natBlock(b)
			v.N++
		}
		if err := e.objs.NatHosts.Put(lbNatHostKey{Addr: be32(k.Addr), Proto: uint32(k.Proto)}, v); err != nil {
			errs = append(errs, fmt.Errorf("nat_hosts: %w", err))
			return
		}
		x.written[k] = slices.Clone(bs)
	})
	for k := range maps.Clone(x.written) {
		if !seen[k] {
			_ = e.objs.NatHosts.Delete(lbNatHostKey{Addr: be32(k.Addr), Proto: uint32(k.Proto)})
			delete(x.written, k)
		}
	}
	for pr := range natProtos {
		sp := x.plan.Spares(snat.Proto(pr))
		for i := range sparesPerPool {
			var want snat.Block
			if i < len(sp) {
				want = sp[i]
			}
			if x.spares[pr][i] == want {
				continue
			}
			v := emptySpare()
			if want.Size > 0 {
				v = lbNatSpare{B: natBlock(want)}
			}
			if err := e.objs.NatSpares.Put(spareKey(x.id, pr, i), v); err != nil {
				errs = append(errs, fmt.Errorf("nat_spares: %w", err))
				continue
			}
			x.spares[pr][i] = want
		}
	}
	return errors.Join(errs...)
}

// replanNAT runs after each sweep: the plan follows the ports in use.
func (e *Engine) replanNAT(u *natUsage) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, x := range e.nat.pools {
		if err := e.writePlan(x, true, u); err != nil {
			e.log.Warn("snat: writing the plan", zap.String("pool", x.cfg.Name), zap.Error(err))
		}
		e.warnBusyHosts(x, u)
	}
	e.refreshUplinks()
	e.nextEpoch()
}

// nextEpoch tells the program that ports or blocks may have become free
// (a sweep deleted released entries, a plan wrote blocks): destinations
// found full search again.
func (e *Engine) nextEpoch() {
	e.nat.epoch++
	if err := e.objs.NatEpoch.Put(uint32(0), e.nat.epoch); err != nil {
		e.log.Warn("snat: nat_epoch", zap.Error(err))
	}
}

// warnBusyHosts logs a host whose busiest destination holds more than 80%
// of its ports (once, until it falls under 70%).
func (e *Engine) warnBusyHosts(x *xpool, u *natUsage) {
	x.plan.Each(func(k snat.HostKey, bs []snat.Block) {
		alloc := 0
		for _, b := range bs {
			alloc += int(b.Size)
		}
		busiest := u.busiest[k]
		switch {
		case alloc > 0 && busiest*10 > alloc*8 && !x.warned[k]:
			x.warned[k] = true
			e.log.Warn("snat: a host uses more than 80% of its ports to one destination",
				zap.String("pool", x.cfg.Name), zap.Stringer("host", k.Addr), zap.Stringer("protocol", k.Proto),
				zap.Int("in_use", busiest), zap.Int("allocated", alloc), zap.Int("share_blocks", x.plan.Share()))
		case x.warned[k] && busiest*10 < alloc*7:
			delete(x.warned, k)
		}
	})
}

// HostBlocks returns the blocks a pool's host holds for one protocol.
func (e *Engine) HostBlocks(pool string, host netip.Addr, pr snat.Proto) []snat.Block {
	e.mu.Lock()
	defer e.mu.Unlock()
	x := e.nat.pools[pool]
	if x == nil {
		return nil
	}
	return slices.Clone(x.plan.Blocks(snat.HostKey{Addr: host, Proto: pr}))
}
