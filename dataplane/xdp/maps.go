package xdp

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"
	"go.uber.org/zap"

	"github.com/xlbproject/xlb/dataplane/acl"
	"github.com/xlbproject/xlb/dataplane/pool"
)

// Listener flags and schedulers, as in bpf/include/lb_structs.h.
const (
	lfStopped  = 1 << 0
	lfPass     = 1 << 1
	lfACLAllow = 1 << 2
	lfACLDeny  = 1 << 3
	lfFullNAT  = 1 << 4
	lfAnyPkt   = 1 << 5

	schedRing = 0
	schedHash = 1
	schedWLC  = 2
)

// writeListener writes a listener's service entries, struct, ACL and ring.
func (e *Engine) writeListener(x *xlistener) error {
	cfg := &x.cfg
	if err := e.writeACL(x.id, cfg.ACL); err != nil {
		return err
	}
	if err := e.writeRing(x); err != nil {
		return err
	}
	sk := lbSvcKey{Vip: be32(cfg.VIP), Port: be16(cfg.Port), Proto: uint8(cfg.Protocol)}
	if err := e.objs.Services.Put(sk, x.id); err != nil {
		return fmt.Errorf("services: %w", err)
	}
	if cfg.Protocol == UDP && !cfg.Pass {
		// The VIP's udp marker: fragments to it are dropped and counted.
		mk := lbSvcKey{Vip: be32(cfg.VIP), Proto: uint8(UDP)}
		if err := e.objs.Services.Put(mk, x.id); err != nil {
			return fmt.Errorf("services: %w", err)
		}
	}
	return nil
}

// listenerStruct builds the listener's map value; the ring length comes
// from writeRing.
func (e *Engine) listenerStruct(x *xlistener, ringLen uint32, wlc []uint32, wlcW []uint16) lbListener {
	cfg := &x.cfg
	l := lbListener{Vip: be32(cfg.VIP), Port: be16(cfg.Port), Proto: uint8(cfg.Protocol), RingLen: ringLen}
	if cfg.Stopped {
		l.Flags |= lfStopped
	}
	if cfg.Pass {
		l.Flags |= lfPass
	}
	if cfg.ACL != nil {
		if cfg.ACL.Mode() == acl.Allow {
			l.Flags |= lfACLAllow
		} else {
			l.Flags |= lfACLDeny
		}
	}
	switch cfg.Pool.Scheduler {
	case pool.Maglev:
		l.Sched = schedHash
		// Every node maps a flow the same way: a packet of a flow another
		// node started is forwarded, not dropped (ECMP re-hashing).
		l.Flags |= lfAnyPkt
	case pool.WLC:
		l.Sched = schedWLC
	default:
		l.Sched = schedRing
	}
	if cfg.FullNAT && cfg.SNATAddr.Is4() {
		l.Flags |= lfFullNAT
		l.SnatAddr = be32(cfg.SNATAddr)
	}
	if x.lim.limited {
		l.Flags |= lfLimits
	}
	l.Lb, l.Bw = x.lim.slot, x.lim.bw
	l.PersistNs = uint64(cfg.Pool.Persistence.Nanoseconds())
	l.WlcLen = uint32(copy(l.Wlc[:], wlc))
	copy(l.WlcW[:], wlcW)
	return l
}

// writeRing writes the listener's ring (or wlc candidates) and eligible set
// from its pool's current snapshot, then the listener struct that makes the
// new ring live.
func (e *Engine) writeRing(x *xlistener) error {
	var ring, wlc []uint32
	var wlcW []uint16
	var elig []uint32
	if x.pool != nil {
		snap := x.pool.Snapshot()
		members := snap.Eligible()
		ids := make([]uint32, len(members))
		for i, m := range members {
			id, err := e.backendID(m.Backend.AddrPort())
			if err != nil {
				return err
			}
			ids[i] = id
		}
		elig = ids
		switch x.cfg.Pool.Scheduler {
		case pool.Maglev:
			for _, i := range snap.MaglevTable() {
				ring = append(ring, ids[i])
			}
		case pool.WRR:
			for _, i := range snap.WRRSequence() {
				ring = append(ring, ids[i])
			}
		case pool.WLC:
			wlc = ids
			for _, m := range members {
				wlcW = append(wlcW, uint16(m.Weight))
			}
		default:
			ring = ids
		}
		if len(ring) == 0 && x.cfg.Pool.Scheduler != pool.WLC {
			ring = ids // e.g. a master_slave group: its one eligible member
		}
	}
	if len(ring) > ringSize {
		return fmt.Errorf("ring of %d slots exceeds %d", len(ring), ringSize)
	}
	if len(ring) > 0 {
		keys := make([]uint32, len(ring))
		for i := range ring {
			keys[i] = x.id*ringSize + uint32(i)
		}
		if _, err := e.objs.Rings.BatchUpdate(keys, ring, nil); err != nil {
			if err := putEach(e.objs.Rings, keys, ring); err != nil {
				return fmt.Errorf("rings: %w", err)
			}
		}
	}
	if err := e.writeEligible(x.id, elig); err != nil {
		return err
	}
	l := e.listenerStruct(x, uint32(len(ring)), wlc, wlcW)
	if err := e.objs.Listeners.Put(x.id, l); err != nil {
		return fmt.Errorf("listeners: %w", err)
	}
	return nil
}

func putEach(m *ebpf.Map, keys, values []uint32) error {
	for i := range keys {
		if err := m.Put(keys[i], values[i]); err != nil {
			return err
		}
	}
	return nil
}

// writeEligible replaces the listener's entries in the eligible map, which
// persistence consults before reusing a remembered backend.
func (e *Engine) writeEligible(lid uint32, ids []uint32) error {
	want := map[uint32]bool{}
	for _, id := range ids {
		want[id] = true
		if err := e.objs.Eligible.Put(lbEligibleKey{Listener: lid, Backend: id}, uint8(1)); err != nil {
			return fmt.Errorf("eligible: %w", err)
		}
	}
	for _, id := range e.eligible[lid] {
		if !want[id] {
			_ = e.objs.Eligible.Delete(lbEligibleKey{Listener: lid, Backend: id})
		}
	}
	e.eligible[lid] = ids
	return nil
}

// writeACL replaces the listener's ACL entries in the LPM trie.
func (e *Engine) writeACL(lid uint32, list *acl.List) error {
	var stale []lbAclKey
	var k lbAclKey
	var v uint8
	it := e.objs.Acl.Iterate()
	for it.Next(&k, &v) {
		if k.Listener == lid {
			stale = append(stale, k)
		}
	}
	for _, k := range stale {
		_ = e.objs.Acl.Delete(k)
	}
	if list == nil {
		return nil
	}
	for _, p := range list.Entries() {
		if !p.Addr().Is4() {
			continue // the XDP engine serves IPv4 VIPs; IPv6 sources never reach it
		}
		key := lbAclKey{Prefixlen: 32 + uint32(p.Bits()), Listener: lid, Addr: be32(p.Addr())}
		if err := e.objs.Acl.Put(key, uint8(1)); err != nil {
			return fmt.Errorf("acl: %w", err)
		}
	}
	return nil
}

// backendID returns the id of addr:port, allocating a slot for a new one.
func (e *Engine) backendID(ap netip.AddrPort) (uint32, error) {
	if id, ok := e.bids[ap]; ok {
		return id, nil
	}
	if len(e.bfree) == 0 {
		return 0, errors.New("backend slots exhausted")
	}
	id := e.bfree[len(e.bfree)-1]
	e.bfree = e.bfree[:len(e.bfree)-1]
	if err := e.objs.Backends.Put(id, lbBackend{Addr: be32(ap.Addr()), Port: be16(ap.Port())}); err != nil {
		e.bfree = append(e.bfree, id)
		return 0, fmt.Errorf("backends: %w", err)
	}
	_ = e.objs.Active.Put(id, int64(0))
	if err := warmNeighbour(e.nl, ap.Addr()); err != nil {
		e.log.Debug("xdp: neighbour not warmed", zap.Stringer("backend", ap), zap.Error(err))
	}
	e.bids[ap] = id
	return id, nil
}

// gcBackends frees the slots of backends no listener names any more and
// that no tracked flow uses (the sweeper's last count).
func (e *Engine) gcBackends() {
	used := map[netip.AddrPort]bool{}
	for _, x := range e.listeners {
		for _, s := range x.cfg.Pool.Servers {
			used[netip.AddrPortFrom(s.Addr, s.Port)] = true
		}
	}
	live := e.sweeps.backendsInUse()
	for ap, id := range e.bids {
		if used[ap] || live[id] {
			continue
		}
		_ = e.objs.Backends.Put(id, lbBackend{})
		delete(e.bids, ap)
		e.bfree = append(e.bfree, id)
	}
}

// removeListener stops new flows to a listener; its tracked flows continue
// until they expire.
func (e *Engine) removeListener(k listenerKey, x *xlistener) {
	_ = e.objs.Services.Delete(lbSvcKey{Vip: be32(k.vip), Port: be16(k.port), Proto: uint8(k.proto)})
	if k.proto == UDP {
		mk := lbSvcKey{Vip: be32(k.vip), Proto: uint8(UDP)}
		var owner uint32
		if e.objs.Services.Lookup(mk, &owner) == nil && owner == x.id {
			_ = e.objs.Services.Delete(mk)
		}
	}
	_ = e.writeEligible(x.id, nil)
	_ = e.writeACL(x.id, nil)
	_ = e.objs.Listeners.Put(x.id, lbListener{})
	if x.unhook != nil {
		x.unhook()
	}
	if x.pool != nil {
		x.pool.Close()
	}
	e.lids[x.id] = false
	delete(e.listeners, k)
}
