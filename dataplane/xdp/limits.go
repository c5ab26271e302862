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
	bwShared = maxListeners // pairs from here: the load balancers' shares
	bwIn     = 0
	bwOut    = 1

	// bwBurst is how far ahead of its rate a policer lets a direction run
	// (a burst after a quiet spell), at least bwMinBurstBytes' worth so a
	// slow rate still passes full frames.
	bwBurst         = 50 * time.Millisecond
	bwMinBurstBytes = 3028
)

// limitPlan is what Commit writes for the limits: per load balancer its
// slot, and per listener its slot (when limited) and bucket pair.
type limitPlan struct {
	slots  map[string]uint32 // load balancer id -> limit slot
	limits map[uint32]lbLbLimit
	// buckets: the rate of every bucket pair in use, bytes/s (0: unlimited).
	buckets map[uint32]uint64
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
	p := limitPlan{slots: map[string]uint32{}, limits: map[uint32]lbLbLimit{}, buckets: map[uint32]uint64{}}
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
		p.buckets[bwShared+s] = shareRate(pr)
	}
	return p
}

// forListener returns listener l's (id lid) slot and bucket pair, adding
// its own pair's rate to the plan.
func (p *limitPlan) forListener(lid uint32, l *Listener, params map[string]limit.Params) listenerLimits {
	p.buckets[lid] = 0
	s, ok := p.slots[l.LB]
	if !ok || l.Pass {
		return listenerLimits{}
	}
	pr := params[l.LB]
	out := listenerLimits{slot: s, limited: pr.MaxConnections > 0 || pr.NewConnsPerSecond > 0}
	switch peak := pr.Peaks[l.Name]; {
	case peak > 0:
		p.buckets[lid] = peak
		out.bw = uint8(lid + 1)
	case pr.BandwidthBps > 0:
		out.bw = uint8(bwShared + s + 1)
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

// writeLimits writes the plan's limits and buckets; a bucket whose rate is
// unchanged keeps its schedule. Slots and pairs no longer used are reset,
// so the flows still tracked on them run unpoliced.
func (e *Engine) writeLimits(p limitPlan) error {
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
	for pair := uint32(0); pair < bwShared+maxLBs; pair++ {
		rate := p.buckets[pair]
		if e.bwWritten[pair] == rate {
			continue
		}
		b := bucketOf(rate)
		for d := uint32(0); d < 2; d++ {
			if err := e.objs.BwBuckets.Put(pair*2+d, b); err != nil {
				return fmt.Errorf("bw_buckets: %w", err)
			}
		}
		if rate == 0 {
			delete(e.bwWritten, pair)
		} else {
			e.bwWritten[pair] = rate
		}
	}
	e.lbSlots = p.slots
	return nil
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
