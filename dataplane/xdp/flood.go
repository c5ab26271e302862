package xdp

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// Flood protection, as in bpf/include/lb_flood.h: the program measures and
// enforces, this loop decides each VIP's state from the measured rates.
const (
	maxFloodVIPs      = maxListeners // FLOOD_MAX_VIPS
	floodSourceAlways = 1 << 0
	floodExempts      = 1 << 1

	fsNormal    = 0
	fsCleaning  = 1
	fsBlackhole = 2
)

var (
	floodStateNames = []string{"normal", "cleaning", "blackhole"}
	// floodDropNames index flood_stats.drops (enum flood_drop).
	floodDropNames = []string{"blackhole", "syn_total", "udp_total", "icmp_total", "syn_source", "udp_source", "icmp_source"}
)

// floodVIP is one protected VIP's state in the engine (under e.mu).
type floodVIP struct {
	cfg     Flood
	slot    uint32
	state   uint32
	until   time.Time // blackhole: the hold's end
	pkts    uint64    // the counters at the last tick
	bytes   uint64
	at      time.Time
	changes [3]uint64 // state changes, by the state entered
}

func validateFloods(floods []Flood) error {
	seen := map[netip.Addr]bool{}
	for _, f := range floods {
		if !f.VIP.Is4() {
			return fmt.Errorf("flood protection of %s: the XDP engine protects IPv4 VIPs, not %v", f.LB, f.VIP)
		}
		if seen[f.VIP] {
			return fmt.Errorf("flood protection of %s: VIP %v is protected twice", f.LB, f.VIP)
		}
		seen[f.VIP] = true
	}
	if len(floods) > maxFloodVIPs {
		return fmt.Errorf("xdp: flood protection on %d VIPs, at most %d per node", len(floods), maxFloodVIPs)
	}
	return nil
}

// floodInterval is the GCRA's nanoseconds per packet (0: off).
func floodInterval(pps uint64) uint64 { return connInterval(pps) }

// writeFloods makes floods the protected VIPs: a VIP kept keeps its slot
// and state; a VIP dropped stops being checked at once.
func (e *Engine) writeFloods(floods []Flood) error {
	want := map[netip.Addr]Flood{}
	for _, f := range floods {
		if f.BlackholeHold == 0 {
			f.BlackholeHold = 60 * time.Second
		}
		want[f.VIP] = f
	}
	used := [maxFloodVIPs]bool{}
	for vip, v := range e.floods {
		if _, ok := want[vip]; !ok {
			_ = e.objs.FloodVips.Delete(be32(vip))
			_ = e.objs.FloodStates.Put(v.slot, uint32(fsNormal))
			if err := e.writeExempt(v.slot, nil); err != nil {
				return err
			}
			delete(e.floods, vip)
			continue
		}
		used[v.slot] = true
	}
	vips := make([]netip.Addr, 0, len(want))
	for vip := range want {
		vips = append(vips, vip)
	}
	slices.SortFunc(vips, netip.Addr.Compare)
	for _, vip := range vips {
		f := want[vip]
		v := e.floods[vip]
		if v == nil {
			s := uint32(slices.Index(used[:], false)) // validateFloods bounds the count
			used[s] = true
			v = &floodVIP{slot: s, at: time.Now()}
			v.pkts, v.bytes = e.floodCounters(s)
			if err := e.objs.FloodStates.Put(s, uint32(fsNormal)); err != nil {
				return fmt.Errorf("flood_states: %w", err)
			}
			e.floods[vip] = v
		}
		v.cfg = f
		c := lbFloodConf{Slot: v.slot}
		for i, r := range []FloodRate{f.SYN, f.UDP, f.ICMP} {
			c.SrcInterval[i], c.TotalInterval[i] = floodInterval(r.PerSourcePPS), floodInterval(r.TotalPPS)
		}
		if f.CleanPPS == 0 && f.CleanBPS == 0 {
			c.Flags |= floodSourceAlways
		}
		if len(f.Exempt) > 0 {
			c.Flags |= floodExempts
		}
		if err := e.writeExempt(v.slot, f.Exempt); err != nil {
			return err
		}
		if err := e.objs.FloodVips.Put(be32(vip), c); err != nil {
			return fmt.Errorf("flood_vips: %w", err)
		}
	}
	if err := e.objs.FloodOn.Put(uint32(0), uint32(len(e.floods))); err != nil {
		return fmt.Errorf("flood_on: %w", err)
	}
	return nil
}

// writeExempt replaces slot's entries in the exempt trie.
func (e *Engine) writeExempt(slot uint32, prefixes []netip.Prefix) error {
	var stale []lbFloodExemptKey
	var k lbFloodExemptKey
	var v uint8
	it := e.objs.FloodExempt.Iterate()
	for it.Next(&k, &v) {
		if k.Slot == slot {
			stale = append(stale, k)
		}
	}
	for _, k := range stale {
		_ = e.objs.FloodExempt.Delete(k)
	}
	for _, p := range prefixes {
		if !p.Addr().Is4() {
			continue
		}
		key := lbFloodExemptKey{Prefixlen: 32 + uint32(p.Bits()), Slot: slot, Addr: be32(p.Masked().Addr())}
		if err := e.objs.FloodExempt.Put(key, uint8(1)); err != nil {
			return fmt.Errorf("flood_exempt: %w", err)
		}
	}
	return nil
}

// floodStats sums a slot's per-CPU counters.
func (e *Engine) floodStats(slot uint32) lbFloodStats {
	var per []lbFloodStats
	var sum lbFloodStats
	if err := e.objs.FloodCounters.Lookup(slot, &per); err != nil {
		return sum
	}
	for _, s := range per {
		sum.Pkts += s.Pkts
		sum.Bytes += s.Bytes
		sum.DropBytes += s.DropBytes
		for i := range sum.Drops {
			sum.Drops[i] += s.Drops[i]
		}
	}
	return sum
}

func (e *Engine) floodCounters(slot uint32) (uint64, uint64) {
	s := e.floodStats(slot)
	return s.Pkts, s.Bytes
}

func (e *Engine) floodLoop(ctx context.Context) {
	t := time.NewTicker(e.opts.FloodInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			e.mu.Lock()
			for vip, v := range e.floods {
				e.floodTick(vip, v, now)
			}
			if err := e.rebalance(now); err != nil {
				e.log.Warn("xdp: rebalancing the bandwidth shares", zap.Error(err))
			}
			e.mu.Unlock()
		}
	}
}

// nextFloodState decides a VIP's state from its rates over the last
// interval. A blackhole holds for its hold time, and again while the rates
// stay above the blackhole threshold.
func nextFloodState(f *Flood, state uint32, until, now time.Time, pps, bps float64) (uint32, time.Time) {
	over := func(p, b uint64) bool { return (p > 0 && pps > float64(p)) || (b > 0 && bps > float64(b)) }
	switch {
	case over(f.BlackholePPS, f.BlackholeBPS):
		if state != fsBlackhole || !now.Before(until) {
			until = now.Add(f.BlackholeHold)
		}
		return fsBlackhole, until
	case state == fsBlackhole && now.Before(until):
		return fsBlackhole, until
	case over(f.CleanPPS, f.CleanBPS):
		return fsCleaning, time.Time{}
	}
	return fsNormal, time.Time{}
}

func (e *Engine) floodTick(vip netip.Addr, v *floodVIP, now time.Time) {
	pkts, bytes := e.floodCounters(v.slot)
	dt := now.Sub(v.at).Seconds()
	if dt <= 0 {
		return
	}
	pps, bps := float64(pkts-v.pkts)/dt, float64(bytes-v.bytes)*8/dt
	v.pkts, v.bytes, v.at = pkts, bytes, now
	next, until := nextFloodState(&v.cfg, v.state, v.until, now, pps, bps)
	v.until = until
	if next == v.state {
		return
	}
	if err := e.objs.FloodStates.Put(v.slot, next); err != nil {
		e.log.Error("xdp: writing a flood state", zap.Stringer("vip", vip), zap.Error(err))
		return
	}
	e.log.Warn("xdp: flood protection state changed", zap.String("lb", v.cfg.LB), zap.Stringer("vip", vip),
		zap.String("from", floodStateNames[v.state]), zap.String("to", floodStateNames[next]),
		zap.Float64("pps", pps), zap.Float64("bps", bps))
	v.state = next
	v.changes[next]++
}

// FloodState is a protected VIP's state: "normal", "cleaning" or
// "blackhole"; "" when the VIP is not protected.
func (e *Engine) FloodState(vip netip.Addr) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if v := e.floods[vip]; v != nil {
		return floodStateNames[v.state]
	}
	return ""
}

// clearFloods forgets the protected VIPs a previous xlbd left in the
// pinned maps; the first Commit writes them again.
func (e *Engine) clearFloods() {
	var vips []uint32
	var k uint32
	var c lbFloodConf
	it := e.objs.FloodVips.Iterate()
	for it.Next(&k, &c) {
		vips = append(vips, k)
	}
	for _, k := range vips {
		_ = e.objs.FloodVips.Delete(k)
	}
	_ = e.objs.FloodOn.Put(uint32(0), uint32(0))
	for s := uint32(0); s < maxFloodVIPs; s++ {
		_ = e.objs.FloodStates.Put(s, uint32(fsNormal))
	}
}

var (
	descFloodState   = prometheus.NewDesc("xlb_xdp_flood_state", "A protected VIP's flood protection state: 0 normal, 1 cleaning, 2 blackhole.", []string{"lb"}, nil)
	descFloodChanges = prometheus.NewDesc("xlb_xdp_flood_state_changes_total", "Flood protection state changes, by the state entered.", []string{"lb", "state"}, nil)
	descFloodDrops   = prometheus.NewDesc("xlb_xdp_flood_dropped_packets_total", "Packets to a protected VIP dropped by flood protection, by reason.", []string{"lb", "reason"}, nil)
	descFloodBytes   = prometheus.NewDesc("xlb_xdp_flood_dropped_bytes_total", "Bytes (whole frames) to a protected VIP dropped by flood protection.", []string{"lb"}, nil)
)

func describeFlood(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descFloodState, descFloodChanges, descFloodDrops, descFloodBytes} {
		ch <- d
	}
}

func (e *Engine) collectFlood(ch chan<- prometheus.Metric) {
	type snap struct {
		lb      string
		slot    uint32
		state   uint32
		changes [3]uint64
	}
	e.mu.Lock()
	var vips []snap
	for _, v := range e.floods {
		vips = append(vips, snap{v.cfg.LB, v.slot, v.state, v.changes})
	}
	e.mu.Unlock()
	for _, v := range vips {
		ch <- prometheus.MustNewConstMetric(descFloodState, prometheus.GaugeValue, float64(v.state), v.lb)
		for i, n := range floodStateNames {
			ch <- prometheus.MustNewConstMetric(descFloodChanges, prometheus.CounterValue, float64(v.changes[i]), v.lb, n)
		}
		st := e.floodStats(v.slot)
		for i, r := range floodDropNames {
			ch <- prometheus.MustNewConstMetric(descFloodDrops, prometheus.CounterValue, float64(st.Drops[i]), v.lb, r)
		}
		ch <- prometheus.MustNewConstMetric(descFloodBytes, prometheus.CounterValue, float64(st.DropBytes), v.lb)
	}
}
