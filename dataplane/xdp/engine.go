package xdp

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"go.uber.org/zap"

	"github.com/xlbproject/xlb/dataplane/limit"
	"github.com/xlbproject/xlb/dataplane/pool"
)

// Engine runs the XDP load balancer on the node's interfaces.
type Engine struct {
	log   *zap.Logger
	opts  Options
	objs  *lbObjects
	links []link.Link
	// nl talks to the kernel of the namespace New ran in (routes and
	// neighbours towards the backends), whatever thread calls later.
	nl *netlink.Handle

	mu        sync.Mutex // serializes Prepare/Commit/Abort/Drain and map writes
	listeners map[listenerKey]*xlistener
	lids      [maxListeners]bool        // listener ids in use
	bids      map[netip.AddrPort]uint32 // backend ids
	bfree     []uint32                  // backend ids free for reuse
	eligible  map[uint32][]uint32       // listener -> backend ids written to `eligible`
	// Limits (limits.go): load balancer id -> limit slot, and what was
	// last written to lb_limits and bw_buckets.
	lbSlots    map[string]uint32
	limWritten map[uint32]bool
	bwWritten  map[uint32]uint64 // by bucket index
	peaks      map[uint32]uint64 // by listener id
	shares     map[uint32]*share // by limit slot
	active     map[uint32]*activity
	floods     map[netip.Addr]*floodVIP // flood.go

	dirty  chan uint32 // listeners whose pool changed (health, admin)
	cancel context.CancelFunc
	wg     sync.WaitGroup

	sweeps *sweepState
	nat    *natState // under mu
}

const (
	maxListeners = 64    // LB_MAX_LISTENERS
	maxBackends  = 4096  // LB_MAX_BACKENDS
	ringSize     = 65537 // LB_RING_SIZE
	wlcMax       = 64    // LB_WLC_MAX
)

// xlistener is one listener's state in the engine.
type xlistener struct {
	id     uint32
	cfg    Listener
	pool   *pool.Pool // nil for Pass listeners
	unhook func()
	lim    listenerLimits
}

// New loads the program (adopting what an earlier xlbd pinned), attaches it
// and starts the sweeper. Drain stops the sweeper and leaves the program
// attached; Cleanup removes it.
func New(opts Options, log *zap.Logger) (*Engine, error) {
	if log == nil {
		log = zap.NewNop()
	}
	opts.defaults()
	if len(opts.Interfaces) == 0 {
		return nil, errors.New("xdp: no interfaces to attach to")
	}
	if err := ensureBPFFS(opts.BPFFS); err != nil {
		return nil, err
	}
	nl, err := netlink.NewHandle()
	if err != nil {
		return nil, fmt.Errorf("netlink: %w", err)
	}
	objs, err := loadObjects(opts.BPFFS, opts.MaxFlows)
	if err != nil {
		nl.Close()
		return nil, err
	}
	links, err := attachAll(objs.XlbLb, opts.BPFFS, opts.Interfaces, opts.Mode)
	if err != nil {
		_ = objs.Close()
		nl.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &Engine{
		log: log, opts: opts, objs: objs, links: links, nl: nl,
		listeners: map[listenerKey]*xlistener{},
		bids:      map[netip.AddrPort]uint32{},
		eligible:  map[uint32][]uint32{},
		lbSlots:   map[string]uint32{}, limWritten: map[uint32]bool{}, bwWritten: map[uint32]uint64{},
		active: map[uint32]*activity{},
		floods: map[netip.Addr]*floodVIP{},
		dirty:  make(chan uint32, maxListeners),
		cancel: cancel,
		sweeps: newSweepState(),
		nat:    newNATState(),
	}
	if err := e.adopt(); err != nil {
		e.close()
		return nil, err
	}
	e.wg.Add(3)
	go func() { defer e.wg.Done(); e.sweepLoop(ctx) }()
	go func() { defer e.wg.Done(); e.floodLoop(ctx) }()
	go func() { defer e.wg.Done(); e.rewriteLoop(ctx) }()
	log.Info("xdp attached", zap.Strings("interfaces", opts.Interfaces), zap.String("bpffs", opts.BPFFS),
		zap.Uint32("max_flows", opts.MaxFlows))
	return e, nil
}

// adopt reads the listener and backend ids a previous xlbd left in the
// pinned maps, so the flows it created keep their meaning.
func (e *Engine) adopt() error {
	var l lbListener
	for id := uint32(0); id < maxListeners; id++ {
		if err := e.objs.Listeners.Lookup(id, &l); err != nil {
			return fmt.Errorf("reading pinned listeners: %w", err)
		}
		if l.Vip == 0 {
			continue
		}
		k := listenerKey{Protocol(l.Proto), addrOf(l.Vip), portOf(l.Port)}
		e.lids[id] = true
		// A placeholder until the first Commit says what it is now.
		e.listeners[k] = &xlistener{id: id, cfg: Listener{Name: "adopted", Protocol: k.proto, VIP: k.vip, Port: k.port, Pass: true}}
	}
	var b lbBackend
	var free []uint32
	for id := uint32(0); id < maxBackends; id++ {
		if err := e.objs.Backends.Lookup(id, &b); err != nil {
			return fmt.Errorf("reading pinned backends: %w", err)
		}
		if b.Addr == 0 {
			free = append(free, id)
			continue
		}
		e.bids[netip.AddrPortFrom(addrOf(b.Addr), portOf(b.Port))] = id
	}
	// Hand out low ids first.
	for i := len(free) - 1; i >= 0; i-- {
		e.bfree = append(e.bfree, free[i])
	}
	e.clearFloods()
	return e.clearNAT()
}

// clearNAT empties the NAT configuration a previous xlbd left (the first
// Commit writes it again); the translations in the flow table go on, and
// the port claims there keep new ones from colliding with them.
func (e *Engine) clearNAT() error {
	for _, m := range []*ebpf.Map{e.objs.NatPrivnets, e.objs.NatHosts, e.objs.NatEipPublic} {
		var keys [][]byte
		k := make([]byte, m.KeySize())
		it := m.Iterate()
		v := make([]byte, m.ValueSize())
		for it.Next(&k, &v) {
			keys = append(keys, append([]byte(nil), k...))
		}
		for _, k := range keys {
			_ = m.Delete(k)
		}
	}
	for id := uint32(0); id < maxPools; id++ {
		if err := e.objs.NatPools.Put(id, lbNatPool{}); err != nil {
			return fmt.Errorf("clearing nat_pools: %w", err)
		}
	}
	for id := uint32(0); id < maxEIPs; id++ {
		_ = e.objs.NatEips.Put(id, lbNatEip{})
	}
	_ = e.objs.NatOn.Put(uint32(0), uint32(0))
	// Go on from the pinned epoch: cursors marked full at an earlier one
	// must not look full now.
	_ = e.objs.NatEpoch.Lookup(uint32(0), &e.nat.epoch)
	return nil
}

// Change is a prepared configuration.
type Change struct {
	e      *Engine
	keep   map[listenerKey]*xlistener // listeners kept, with their new cfg
	fresh  map[listenerKey]*pool.Pool // new pools (Abort closes them)
	update map[listenerKey]pool.Config
	cfgs   map[listenerKey]Listener
	limits map[string]limit.Params
	floods []Flood
	nat    Config // the SNAT pools and EIPs, validated
	done   bool
}

// Prepare validates cfg against the engine's limits and builds new pools.
func (e *Engine) Prepare(_ context.Context, cfg Config) (*Change, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ch := &Change{e: e, keep: map[listenerKey]*xlistener{}, fresh: map[listenerKey]*pool.Pool{},
		update: map[listenerKey]pool.Config{}, cfgs: map[listenerKey]Listener{}}
	newIDs := 0
	servers := map[netip.AddrPort]bool{}
	for i := range cfg.Listeners {
		l := cfg.Listeners[i]
		if err := l.validate(); err != nil {
			ch.abortLocked()
			return nil, err
		}
		k := l.key()
		if _, dup := ch.cfgs[k]; dup {
			ch.abortLocked()
			return nil, fmt.Errorf("listener %s: %s %v:%d is configured twice", l.Name, l.Protocol, l.VIP, l.Port)
		}
		if l.FullNAT && !l.SNATAddr.IsValid() {
			a, err := sourceTowards(e.nl, l.Pool.Servers)
			if err != nil {
				ch.abortLocked()
				return nil, fmt.Errorf("listener %s: fullnat: %w", l.Name, err)
			}
			l.SNATAddr = a
		}
		ch.cfgs[k] = l
		if err := checkLimits(&l); err != nil {
			ch.abortLocked()
			return nil, err
		}
		for _, s := range l.Pool.Servers {
			servers[netip.AddrPortFrom(s.Addr, s.Port)] = true
		}
		old := e.listeners[k]
		if old == nil {
			newIDs++
		}
		if l.Pass {
			continue
		}
		pc := l.Pool
		pc.Persistence = 0 // persistence lives in the BPF map
		if old != nil && old.pool != nil && old.cfg.Registry == l.Registry {
			ch.update[k] = pc
			continue
		}
		p, err := pool.New(l.Registry, pc)
		if err != nil {
			ch.abortLocked()
			return nil, fmt.Errorf("listener %s: %w", l.Name, err)
		}
		ch.fresh[k] = p
	}
	ch.limits = cfg.Limits
	if err := validateFloods(cfg.Floods); err != nil {
		ch.abortLocked()
		return nil, err
	}
	ch.floods = slices.Clone(cfg.Floods)
	ch.nat = Config{SNATPools: slices.Clone(cfg.SNATPools), EIPs: slices.Clone(cfg.EIPs)}
	if err := e.prepareNAT(&ch.nat); err != nil {
		ch.abortLocked()
		return nil, err
	}
	inUse := 0
	for k := range e.listeners {
		if _, keep := ch.cfgs[k]; keep {
			inUse++
		}
	}
	if inUse+newIDs > maxListeners {
		ch.abortLocked()
		return nil, fmt.Errorf("xdp: %d tcp/udp/http listeners, at most %d per node", inUse+newIDs, maxListeners)
	}
	if len(servers) > maxBackends {
		ch.abortLocked()
		return nil, fmt.Errorf("xdp: %d distinct backends, at most %d per node", len(servers), maxBackends)
	}
	return ch, nil
}

func checkLimits(l *Listener) error {
	n := len(l.Pool.Servers)
	switch {
	case l.Pool.Scheduler == pool.Maglev && n > 655:
		return fmt.Errorf("listener %s: maglev in XDP serves at most 655 backends (a %d-slot table), not %d", l.Name, ringSize, n)
	case l.Pool.Scheduler == pool.WLC && n > wlcMax:
		return fmt.Errorf("listener %s: wlc in XDP serves at most %d backends, not %d", l.Name, wlcMax, n)
	}
	return nil
}

// Commit writes the configuration into the maps. Flows already tracked keep
// their backend; new flows see the new listeners and rings.
func (ch *Change) Commit() {
	e := ch.e
	e.mu.Lock()
	defer e.mu.Unlock()
	if ch.done {
		return
	}
	ch.done = true
	for k, x := range e.listeners {
		if _, keep := ch.cfgs[k]; !keep {
			e.removeListener(k, x)
		}
	}
	for k := range ch.cfgs {
		if e.listeners[k] == nil {
			e.listeners[k] = &xlistener{id: e.allocListener()}
		}
	}
	// The limits and buckets first, so a listener never points to a
	// bucket pair still holding another's rate.
	plan := e.planLimits(ch.cfgs, ch.limits)
	for k, cfg := range ch.cfgs {
		e.listeners[k].lim = plan.forListener(e.listeners[k].id, &cfg, ch.limits)
	}
	if err := e.writeLimits(plan, time.Now()); err != nil {
		e.log.Error("xdp: writing limits", zap.Error(err))
	}
	for k, cfg := range ch.cfgs {
		x := e.listeners[k]
		if p, ok := ch.fresh[k]; ok {
			if x.unhook != nil {
				x.unhook()
			}
			if x.pool != nil {
				x.pool.Close()
			}
			x.pool = p
			id := x.id
			x.unhook = p.OnChange(func() { e.markDirty(id) })
		} else if pc, ok := ch.update[k]; ok {
			if err := x.pool.Update(pc); err != nil {
				e.log.Error("xdp: pool update failed", zap.String("listener", cfg.Name), zap.Error(err))
			}
		} else if cfg.Pass && x.pool != nil {
			x.unhook()
			x.pool.Close()
			x.pool, x.unhook = nil, nil
		}
		x.cfg = cfg
		if err := e.writeListener(x); err != nil {
			e.log.Error("xdp: writing listener", zap.String("listener", cfg.Name), zap.Error(err))
		}
	}
	e.writeReplies()
	e.gcBackends()
	if err := e.writeFloods(ch.floods); err != nil {
		e.log.Error("xdp: writing flood protection", zap.Error(err))
	}
	if err := e.commitNAT(&ch.nat); err != nil {
		e.log.Error("xdp: writing snat pools and eips", zap.Error(err))
	}
}

// Abort releases what Prepare built.
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
	for _, p := range ch.fresh {
		p.Close()
	}
}

func (e *Engine) allocListener() uint32 {
	for id := range e.lids {
		if !e.lids[id] {
			e.lids[id] = true
			return uint32(id)
		}
	}
	panic("xdp: listener ids exhausted after Prepare checked the limit")
}

func (e *Engine) markDirty(id uint32) {
	select {
	case e.dirty <- id:
	default: // full: every listener is already queued at least once
	}
}

// rewriteLoop rewrites the rings of listeners whose pool changed.
func (e *Engine) rewriteLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case id := <-e.dirty:
			e.mu.Lock()
			for _, x := range e.listeners {
				if x.id == id && x.pool != nil {
					if err := e.writeRing(x); err != nil {
						e.log.Error("xdp: rewriting ring", zap.String("listener", x.cfg.Name), zap.Error(err))
					}
				}
			}
			e.mu.Unlock()
		}
	}
}

// Drain stops the engine's goroutines and closes its handles. The program
// stays attached and the maps pinned, so flows keep being forwarded while
// xlbd restarts; Cleanup detaches.
func (e *Engine) Drain(context.Context) {
	e.cancel()
	e.wg.Wait()
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, x := range e.listeners {
		if x.unhook != nil {
			x.unhook()
		}
		if x.pool != nil {
			x.pool.Close()
		}
	}
	e.close()
}

func (e *Engine) close() {
	for _, l := range e.links {
		_ = l.Close()
	}
	_ = e.objs.Close()
	e.nl.Close()
}

// Objects exposes the maps and program to tests in this package and to the
// benchmarks (BPF_PROG_TEST_RUN).
func (e *Engine) Program() *ebpf.Program { return e.objs.XlbLb }
