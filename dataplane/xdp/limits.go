package xdp

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/xlbproject/xlb/dataplane/limit"
)

// Limit and bandwidth layout, as in bpf/include/lb_structs.h.
const (
	lfLimits = 1 << 6
	maxLBs   = maxListeners // LB_MAX_LBS
	bwPairs  = maxListeners // BW_PAIRS
	bwIn     = 0
	bwOut    = 1

	// shareActive is how long after its last byte a listener counts as
	// sending, for its share of what the peaks leave (as limit.Share).
	shareActive = 200 * time.Millisecond

	// bwBurst is how far ahead of its rate a policer lets a direction run
	// (a burst after a quiet spell), at least bwMinBurstBytes' worth so a
	// slow rate still passes full frames.
	bwBurst         = 50 * time.Millisecond
	bwMinBurstBytes = 3028
)

// limitPlan is what Commit writes for the limits: per load balancer its
// slot, and per listener its slot (when limited) and bucket pair (its
// listener id: a peak, or its part of the load balancer's share).
type limitPlan struct {
	slots  map[string]uint32 // load balancer id -> limit slot
	limits map[uint32]lbLbLimit
	// peaks: the rate of every listener's own pair, bytes/s.
	peaks map[uint32]uint64
	// shares: per limit slot, what the peaks leave and who splits it.
	shares map[uint32]*share
}

// share is what a load balancer's peaks leave (bytes/s) and its listeners
// without a peak, which split it equally among those sending, per
// direction; one alone gets all of it.
type share struct {
	rest    uint64
	members []uint32 // listener ids
}

// activity is when a share member last sent, per direction.
type activity struct {
	bytes [2]uint64
	until [2]time.Time
}

// listenerLimits is one listener's part of the plan.
type listenerLimits struct {
	slot    uint32
	limited bool  // LF_LIMITS
	bw      uint8 // bucket pair + 1, 0: unpoliced
}

// planLimits assigns limit slots to the load balancers the listeners name
// (keeping the slots they had) and computes every bucket's rate.
func (e *Engine) planLimits(cfgs map[listenerKey]Listener, params map[string]limit.Params) limitPlan {
	p := limitPlan{slots: map[string]uint32{}, limits: map[uint32]lbLbLimit{}, peaks: map[uint32]uint64{}, shares: map[uint32]*share{}}
	want := map[string]bool{}
	for _, l := range cfgs {
		if _, ok := params[l.LB]; ok && !l.Pass {
			want[l.LB] = true
		}
	}
	used := [maxLBs]bool{}
	for id, s := range e.lbSlots {
		if want[id] {
			p.slots[id], used[s] = s, true
		}
	}
	ids := make([]string, 0, len(want))
	for id := range want {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		if _, ok := p.slots[id]; ok {
			continue
		}
		// At most one load balancer per listener: a free slot exists.
		s := uint32(slices.Index(used[:], false))
		p.slots[id], used[s] = s, true
	}
	for id, s := range p.slots {
		pr := params[id]
		p.limits[s] = lbLbLimit{MaxConns: pr.MaxConnections, ConnInterval: connInterval(pr.NewConnsPerSecond)}
		if rest := shareRate(pr); rest > 0 {
			p.shares[s] = &share{rest: rest}
		}
	}
	return p
}

// forListener returns listener l's (id lid) slot and bucket pair, adding
// it to the plan's peaks or shares.
func (p *limitPlan) forListener(lid uint32, l *Listener, params map[string]limit.Params) listenerLimits {
	s, ok := p.slots[l.LB]
	if !ok || l.Pass {
		return listenerLimits{}
	}
	pr := params[l.LB]
	out := listenerLimits{slot: s, limited: pr.MaxConnections > 0 || pr.NewConnsPerSecond > 0}
	switch peak := pr.Peaks[l.Name]; {
	case peak > 0:
		p.peaks[lid] = peak
		out.bw = uint8(lid + 1)
	case p.shares[s] != nil:
		p.shares[s].members = append(p.shares[s].members, lid)
		out.bw = uint8(lid + 1)
	}
	return out
}

// connInterval is the GCRA's nanoseconds per connection (0: unlimited),
// rounded as limit.Rate does.
func connInterval(perSecond uint64) uint64 {
	if perSecond == 0 {
		return 0
	}
	return uint64(math.Max(1, math.Round(float64(time.Second)/float64(perSecond))))
}

// shareRate is what a load balancer's peaks leave for its other listeners,
// as limit.LB computes it: a fully reserved total leaves a token rate.
func shareRate(p limit.Params) uint64 {
	if p.BandwidthBps == 0 {
		return 0
	}
	reserved := uint64(0)
	for _, v := range p.Peaks {
		reserved += v
	}
	return max(p.BandwidthBps-min(reserved, p.BandwidthBps), 1)
}

// bucketOf is a policer's map value at rate bytes/s.
func bucketOf(rate uint64) lbBwBucket {
	if rate == 0 {
		return lbBwBucket{}
	}
	nspb := float64(time.Second) / float64(rate)
	burst := max(float64(bwBurst), nspb*bwMinBurstBytes)
	return lbBwBucket{NsPerByte16: uint64(math.Max(1, math.Round(nspb*65536))), Burst: uint64(burst)}
}

// writeLimits writes the plan's limits and buckets. Slots and pairs no
// longer used are reset, so the flows still tracked on them run unpoliced.
func (e *Engine) writeLimits(p limitPlan, now time.Time) error {
	for s := uint32(0); s < maxLBs; s++ {
		lim, ok := p.limits[s]
		if _, was := e.limWritten[s]; !ok && !was {
			continue
		}
		if err := e.objs.LbLimits.Put(s, lim); err != nil {
			return fmt.Errorf("lb_limits: %w", err)
		}
		if ok {
			e.limWritten[s] = true
		} else {
			delete(e.limWritten, s)
		}
	}
	e.lbSlots, e.peaks, e.shares = p.slots, p.peaks, p.shares
	return e.rebalance(now)
}

// rebalance sets every bucket's rate: a peak's, or a share member's part:
// the share split among the members sending in that direction (a member
// not sending is set to the part it would get if it started). A bucket
// whose rate is unchanged keeps its schedule. Called on every Commit and
// flood-loop tick, under e.mu.
func (e *Engine) rebalance(now time.Time) error {
	want := map[uint32]uint64{} // bucket index -> bytes/s
	for pair, rate := range e.peaks {
		want[pair*2+bwIn], want[pair*2+bwOut] = rate, rate
	}
	live := map[uint32]bool{}
	for _, sh := range e.shares {
		for _, lid := range sh.members {
			live[lid] = true
			a := e.active[lid]
			if a == nil {
				a = &activity{}
				e.active[lid] = a
			}
			sent := e.listenerBytes(lid)
			for d := range 2 {
				if sent[d] != a.bytes[d] {
					a.bytes[d], a.until[d] = sent[d], now.Add(shareActive)
				}
			}
		}
		for d := uint32(0); d < 2; d++ {
			n := uint64(0)
			for _, lid := range sh.members {
				if now.Before(e.active[lid].until[d]) {
					n++
				}
			}
			for _, lid := range sh.members {
				part := sh.rest / (n + 1)
				if now.Before(e.active[lid].until[d]) {
					part = sh.rest / n
				}
				want[lid*2+d] = max(part, 1)
			}
		}
	}
	for lid := range e.active {
		if !live[lid] {
			delete(e.active, lid)
		}
	}
	for idx := uint32(0); idx < 2*bwPairs; idx++ {
		rate := want[idx]
		if e.bwWritten[idx] == rate {
			continue
		}
		b := bucketOf(rate)
		var cur lbBwBucket
		// The schedule carries on at the new rate, unless it ran further
		// ahead than the new burst allows (a token rate's schedule can be
		// an hour ahead): then it restarts.
		if e.objs.BwBuckets.Lookup(idx, &cur) == nil && cur.Tat <= monotonicNow()+b.Burst {
			b.Tat = cur.Tat
		}
		if err := e.objs.BwBuckets.Put(idx, b); err != nil {
			return fmt.Errorf("bw_buckets: %w", err)
		}
		if rate == 0 {
			delete(e.bwWritten, idx)
		} else {
			e.bwWritten[idx] = rate
		}
	}
	return nil
}

// listenerBytes is what listener lid sent in each direction, forwarded or
// policed away.
func (e *Engine) listenerBytes(lid uint32) [2]uint64 {
	var out [2]uint64
	var ls []lbLstats
	if e.objs.ListenerStats.Lookup(lid, &ls) == nil {
		for _, s := range ls {
			out[bwIn] += s.BytesIn
			out[bwOut] += s.BytesOut
		}
	}
	lim := e.limitStats(lid)
	out[bwIn] += lim.BwBytes[bwIn]
	out[bwOut] += lim.BwBytes[bwOut]
	return out
}

// bandwidthRate is the rate (bytes/s) listener id's policer has now in
// direction d (0 in, 1 out); 0: unpoliced.
func (e *Engine) bandwidthRate(lid, d uint32) uint64 {
	return e.bwWritten[lid*2+d]
}

// recountConns sets each limit slot's closed count so that the program's
// open count (opened - closed) equals the connections live in the sweep:
// opened was read before the flows were dumped, so a flow started in
// between counts twice until the next sweep (a conservative error), and
// any drift (a restart, a listener moved to another load balancer) heals.
func (e *Engine) recountConns(opened map[uint32]int64, slotOf map[uint32]uint32, perListener map[uint32]int) {
	live := map[uint32]int64{}
	for lid, s := range slotOf {
		live[s] += int64(perListener[lid])
	}
	for s, o := range opened {
		if err := e.objs.LbClosed.Put(s, o-live[s]); err != nil {
			e.log.Sugar().Warnf("xdp: lb_closed[%d]: %v", s, err)
		}
	}
}

// openedNow reads the program's opened count of every slot in use.
func (e *Engine) openedNow(slots map[uint32]uint32) map[uint32]int64 {
	out := map[uint32]int64{}
	var c lbLbConns
	for _, s := range slots {
		if _, done := out[s]; done {
			continue
		}
		if err := e.objs.LbState.Lookup(s, &c); err == nil {
			out[s] = c.Opened
		}
	}
	return out
}
