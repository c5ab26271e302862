package xdp

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// Flow flags, as in bpf/include/lb_structs.h.
const (
	ffReply       = 1 << 0
	ffEstablished = 1 << 1
	ffFin         = 1 << 2
	ffRst         = 1 << 3
)

// sweepState is what the last sweep counted, read by metrics and gc.
type sweepState struct {
	mu          sync.Mutex
	entries     int
	perListener map[uint32]int // live connections
	perBackend  map[uint32]int64
	expired     uint64 // connections removed, in all
	natExpired  uint64 // translations released or removed
	nat         *natUsage
}

func newSweepState() *sweepState {
	return &sweepState{perListener: map[uint32]int{}, perBackend: map[uint32]int64{}}
}

func (s *sweepState) backendsInUse() map[uint32]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[uint32]bool, len(s.perBackend))
	for id, n := range s.perBackend {
		if n > 0 {
			out[id] = true
		}
	}
	return out
}

func monotonicNow() uint64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts) // bpf_ktime_get_ns's clock
	return uint64(ts.Nano())
}

func (e *Engine) sweepLoop(ctx context.Context) {
	t := time.NewTicker(e.opts.SweepInterval)
	defer t.Stop()
	for {
		if err := e.sweep(); err != nil {
			e.log.Warn("xdp: sweeping the flow table", zap.Error(err))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// timeout is how long a connection may idle given both directions' flags.
func (e *Engine) timeout(proto uint8, flags uint32) time.Duration {
	if proto == uint8(UDP) {
		return e.opts.Timeouts.UDP
	}
	switch {
	case flags&(ffFin|ffRst) != 0:
		return e.opts.Timeouts.TCPClosing
	case flags&ffEstablished != 0:
		return e.opts.Timeouts.TCPEstablished
	default: // a handshake that never completed
		return e.opts.Timeouts.TCPClosing
	}
}

// reverseKey is the reply entry's key of a client-direction entry.
func reverseKey(k lbFlowKey, f lbFlow) lbFlowKey {
	return lbFlowKey{Saddr: f.NewDaddr, Daddr: f.NewSaddr, Sport: f.NewDport, Dport: f.NewSport, Proto: k.Proto}
}

// sweep removes the connections idle past their timeout, both entries
// together, and recounts the live ones per listener and backend (the
// counts wlc reads).
func (e *Engine) sweep() error {
	e.mu.Lock()
	slotOf := map[uint32]uint32{} // limited listeners' limit slots
	for _, x := range e.listeners {
		if x.lim.limited {
			slotOf[x.id] = x.lim.slot
		}
	}
	e.mu.Unlock()
	opened := e.openedNow(slotOf) // before the dump: see recountConns
	all, err := dumpFlows(e.objs.Flows)
	if err != nil {
		return err
	}
	now := monotonicNow()
	perListener := map[uint32]int{}
	perBackend := map[uint32]int64{}
	var dead []lbFlowKey
	var expired uint64
	for k, f := range all {
		if f.Flags&(ffReply|ffNAT) != 0 {
			// Reply entries are handled with their twin below (an orphan
			// expires alone); translations by sweepNAT.
			continue
		}
		rk := reverseKey(k, f)
		r, hasReply := all[rk]
		last, flags := f.LastSeen, f.Flags
		if hasReply {
			last = max(last, r.LastSeen)
			flags |= r.Flags
		}
		if now > last && time.Duration(now-last) > e.timeout(k.Proto, flags) {
			dead = append(dead, k)
			if hasReply {
				dead = append(dead, rk)
			}
			expired++
			continue
		}
		perListener[f.Listener]++
		perBackend[f.Backend]++
	}
	for k, f := range all {
		if f.Flags&ffReply == 0 || f.Flags&ffNAT != 0 {
			continue
		}
		fk := lbFlowKey{Saddr: f.NewDaddr, Daddr: f.NewSaddr, Sport: f.NewDport, Dport: f.NewSport, Proto: k.Proto}
		if _, ok := all[fk]; !ok && now > f.LastSeen && time.Duration(now-f.LastSeen) > e.timeout(k.Proto, f.Flags) {
			dead = append(dead, k)
		}
	}
	e.mu.Lock()
	timeouts := map[uint32]SNATTimeouts{}
	for _, x := range e.nat.pools {
		timeouts[x.id] = x.cfg.Timeouts
	}
	e.mu.Unlock()
	natDead, released, usage, natExpired := e.sweepNAT(all, now, timeouts)
	dead = append(dead, natDead...)
	for _, k := range dead {
		if err := e.objs.Flows.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return err
		}
	}
	for k, f := range released {
		// Only if it is still there: the program may not recreate it.
		if err := e.objs.Flows.Update(k, f, ebpf.UpdateExist); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return err
		}
	}
	e.replanNAT(usage)
	e.recountConns(opened, slotOf, perListener)
	e.mu.Lock()
	for _, bid := range e.bids {
		_ = e.objs.Active.Put(bid, perBackend[bid])
	}
	e.mu.Unlock()

	e.sweeps.mu.Lock()
	e.sweeps.entries = len(all) - len(dead)
	e.sweeps.perListener = perListener
	e.sweeps.perBackend = perBackend
	e.sweeps.expired += expired
	e.sweeps.natExpired += natExpired
	e.sweeps.nat = usage
	e.sweeps.mu.Unlock()
	return nil
}

// dumpFlows reads the whole flow table, in batches where the kernel can.
func dumpFlows(m *ebpf.Map) (map[lbFlowKey]lbFlow, error) {
	out := map[lbFlowKey]lbFlow{}
	const batch = 4096
	keys := make([]lbFlowKey, batch)
	vals := make([]lbFlow, batch)
	var cursor ebpf.MapBatchCursor
	for {
		n, err := m.BatchLookup(&cursor, keys, vals, nil)
		for i := 0; i < n; i++ {
			out[keys[i]] = vals[i]
		}
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return out, nil
		}
		if errors.Is(err, ebpf.ErrNotSupported) {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	clear(out)
	var k lbFlowKey
	var v lbFlow
	it := m.Iterate()
	for it.Next(&k, &v) {
		out[k] = v
	}
	return out, it.Err()
}
