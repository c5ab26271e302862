package xdp

import (
	"maps"
	"math"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// reasonNames index lstats.reasons (enum lb_reason).
var reasonNames = []string{"acl", "stopped", "no_backend", "flow_table_full", "fragment", "no_flow", "no_route", "no_neighbour"}

var (
	descPackets  = prometheus.NewDesc("xlb_xdp_packets_total", "Packets forwarded by the XDP engine; in: client to backend, out: backend to client.", []string{"listener", "direction"}, nil)
	descBytes    = prometheus.NewDesc("xlb_xdp_bytes_total", "Bytes (whole frames) forwarded by the XDP engine.", []string{"listener", "direction"}, nil)
	descNewFlows = prometheus.NewDesc("xlb_xdp_new_flows_total", "Connections (tcp) or flows (udp) created.", []string{"listener"}, nil)
	descDropped  = prometheus.NewDesc("xlb_xdp_dropped_total", "Packets dropped (or, for no_neighbour and no_route, passed to the kernel) by reason.", []string{"listener", "reason"}, nil)
	descActive   = prometheus.NewDesc("xlb_xdp_active_flows", "Connections tracked at the last sweep.", []string{"listener"}, nil)
	descBPackets = prometheus.NewDesc("xlb_xdp_backend_packets_total", "Packets sent to a backend.", []string{"backend"}, nil)
	descBBytes   = prometheus.NewDesc("xlb_xdp_backend_bytes_total", "Bytes sent to a backend.", []string{"backend"}, nil)
	descBFlows   = prometheus.NewDesc("xlb_xdp_backend_new_flows_total", "Connections given to a backend.", []string{"backend"}, nil)
	descEntries  = prometheus.NewDesc("xlb_xdp_flow_table_entries", "Entries in the flow table (two per connection) at the last sweep.", nil, nil)
	descCapacity = prometheus.NewDesc("xlb_xdp_flow_table_capacity", "Entries the flow table holds; new connections are refused beyond it.", nil, nil)
	descExpired  = prometheus.NewDesc("xlb_xdp_expired_flows_total", "Connections removed by the sweeper after their idle timeout.", nil, nil)
	descParse    = prometheus.NewDesc("xlb_xdp_malformed_packets_total", "Malformed or truncated frames, passed to the kernel.", nil, nil)
	descPassed   = prometheus.NewDesc("xlb_xdp_passed_packets_total", "Packets not for a tcp/udp listener, passed to the kernel.", nil, nil)

	descBwPkts    = prometheus.NewDesc("xlb_xdp_bandwidth_dropped_packets_total", "Packets dropped by the listener's bandwidth policer; in: from clients, out: to clients.", []string{"listener", "direction"}, nil)
	descBwBytes   = prometheus.NewDesc("xlb_xdp_bandwidth_dropped_bytes_total", "Bytes (whole frames) dropped by the listener's bandwidth policer.", []string{"listener", "direction"}, nil)
	descBwRate    = prometheus.NewDesc("xlb_xdp_bandwidth_rate_bytes", "The listener's policer rate now, bytes per second: its peak, or its part of what the peaks leave.", []string{"listener", "direction"}, nil)
	descLimConns  = prometheus.NewDesc("xlb_xdp_limit_connections", "Open connections the XDP program counts against the load balancer's max_connections.", []string{"lb"}, nil)
	descLimMax    = prometheus.NewDesc("xlb_xdp_limit_max_connections", "The load balancer's max_connections in XDP (0: unlimited).", []string{"lb"}, nil)
	descLimRate   = prometheus.NewDesc("xlb_xdp_limit_new_connections_per_second", "The load balancer's new connections per second in XDP (0: unlimited).", []string{"lb"}, nil)
	descLimDrops  = prometheus.NewDesc("xlb_xdp_limit_drops_total", "New flows (their first packet) and packets XDP dropped over the load balancer's limits, by reason (max_connections, new_connections, bandwidth).", []string{"lb", "reason"}, nil)
	limitReasons  = []string{"max_connections", "new_connections"} // enum lb_limit_reason
	limitReasonBw = "bandwidth"
)

// Describe implements prometheus.Collector.
func (e *Engine) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPackets, descBytes, descNewFlows, descDropped, descActive,
		descBPackets, descBBytes, descBFlows, descEntries, descCapacity, descExpired, descParse, descPassed,
		descBwPkts, descBwBytes, descBwRate, descLimConns, descLimMax, descLimRate, descLimDrops, descStateless} {
		ch <- d
	}
	describeFlood(ch)
	e.describeNAT(ch)
}

// Collect reads the per-CPU counters and sums them.
func (e *Engine) Collect(ch chan<- prometheus.Metric) {
	e.mu.Lock()
	names := map[uint32]string{}
	lbOf := map[uint32]string{} // listener id -> its load balancer, when it has limits
	for _, x := range e.listeners {
		names[x.id] = x.cfg.Name
		if _, ok := e.lbSlots[x.cfg.LB]; ok && !x.cfg.Pass {
			lbOf[x.id] = x.cfg.LB
		}
	}
	rates := map[uint32][2]uint64{}
	for id := range names {
		rates[id] = [2]uint64{e.bandwidthRate(id, bwIn), e.bandwidthRate(id, bwOut)}
	}
	slots := maps.Clone(e.lbSlots)
	limWritten := maps.Clone(e.limWritten)
	backends := map[uint32]string{}
	for ap, id := range e.bids {
		backends[id] = ap.String()
	}
	e.mu.Unlock()

	e.sweeps.mu.Lock()
	active := e.sweeps.perListener
	entries, expired := e.sweeps.entries, e.sweeps.expired
	e.sweeps.mu.Unlock()

	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	lbDrops := map[string][3]uint64{}
	var ls []lbLstats
	for id, name := range names {
		if err := e.objs.ListenerStats.Lookup(id, &ls); err != nil {
			continue
		}
		var sum lbLstats
		for _, s := range ls {
			sum.PktsIn += s.PktsIn
			sum.BytesIn += s.BytesIn
			sum.PktsOut += s.PktsOut
			sum.BytesOut += s.BytesOut
			sum.NewFlows += s.NewFlows
			for i := range sum.Reasons {
				sum.Reasons[i] += s.Reasons[i]
			}
		}
		counter(descPackets, sum.PktsIn, name, "in")
		counter(descPackets, sum.PktsOut, name, "out")
		counter(descBytes, sum.BytesIn, name, "in")
		counter(descBytes, sum.BytesOut, name, "out")
		counter(descNewFlows, sum.NewFlows, name)
		for i, r := range reasonNames {
			counter(descDropped, sum.Reasons[i], name, r)
		}
		lim := e.limitStats(id)
		for i, r := range limitReasons {
			counter(descDropped, lim.Reasons[i], name, r)
		}
		counter(descDropped, lim.BwPkts[bwIn]+lim.BwPkts[bwOut], name, limitReasonBw)
		counter(descBwPkts, lim.BwPkts[bwIn], name, "in")
		counter(descBwPkts, lim.BwPkts[bwOut], name, "out")
		counter(descBwBytes, lim.BwBytes[bwIn], name, "in")
		counter(descBwBytes, lim.BwBytes[bwOut], name, "out")
		if r := rates[id]; r[bwIn] > 0 || r[bwOut] > 0 {
			ch <- prometheus.MustNewConstMetric(descBwRate, prometheus.GaugeValue, float64(r[bwIn]), name, "in")
			ch <- prometheus.MustNewConstMetric(descBwRate, prometheus.GaugeValue, float64(r[bwOut]), name, "out")
		}
		if lb, ok := lbOf[id]; ok {
			d := lbDrops[lb]
			for i := range limitReasons {
				d[i] += lim.Reasons[i]
			}
			d[len(limitReasons)] += lim.BwPkts[bwIn] + lim.BwPkts[bwOut]
			lbDrops[lb] = d
		}
		ch <- prometheus.MustNewConstMetric(descActive, prometheus.GaugeValue, float64(active[id]), name)
	}
	var bs []lbBstats
	for id, name := range backends {
		if err := e.objs.BackendStats.Lookup(id, &bs); err != nil {
			continue
		}
		var sum lbBstats
		for _, s := range bs {
			sum.Pkts += s.Pkts
			sum.Bytes += s.Bytes
			sum.NewFlows += s.NewFlows
		}
		counter(descBPackets, sum.Pkts, name)
		counter(descBBytes, sum.Bytes, name)
		counter(descBFlows, sum.NewFlows, name)
	}
	var gs []lbGstats
	if err := e.objs.GlobalStats.Lookup(uint32(0), &gs); err == nil {
		var sum lbGstats
		for _, s := range gs {
			sum.ParseFail += s.ParseFail
			sum.Passed += s.Passed
		}
		counter(descParse, sum.ParseFail)
		counter(descPassed, sum.Passed)
	}
	ch <- prometheus.MustNewConstMetric(descEntries, prometheus.GaugeValue, float64(entries))
	ch <- prometheus.MustNewConstMetric(descCapacity, prometheus.GaugeValue, float64(e.objs.Flows.MaxEntries()))
	counter(descExpired, expired)
	e.collectStateless(ch, names)
	e.collectLimits(ch, slots, limWritten, lbDrops)
	e.collectFlood(ch)
	e.collectNAT(ch)
}

// limitStats sums a listener's limit counters over the CPUs.
func (e *Engine) limitStats(id uint32) lbLimstats {
	var per []lbLimstats
	var sum lbLimstats
	if err := e.objs.LimitStats.Lookup(id, &per); err != nil {
		return sum
	}
	for _, s := range per {
		for i := range sum.Reasons {
			sum.Reasons[i] += s.Reasons[i]
		}
		for d := range sum.BwPkts {
			sum.BwPkts[d] += s.BwPkts[d]
			sum.BwBytes[d] += s.BwBytes[d]
		}
	}
	return sum
}

// collectLimits exports each load balancer's limits as the program holds
// them: its open connections, the values and the drops.
func (e *Engine) collectLimits(ch chan<- prometheus.Metric, slots map[string]uint32, written map[uint32]bool, drops map[string][3]uint64) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for lb, s := range slots {
		var lim lbLbLimit
		var st lbLbConns
		var closed int64
		if !written[s] || e.objs.LbLimits.Lookup(s, &lim) != nil || e.objs.LbState.Lookup(s, &st) != nil ||
			e.objs.LbClosed.Lookup(s, &closed) != nil {
			continue
		}
		if lim.MaxConns > 0 || lim.ConnInterval > 0 { // else nothing counts them
			gauge(descLimConns, float64(max(st.Opened-closed, 0)), lb)
		}
		gauge(descLimMax, float64(lim.MaxConns), lb)
		rate := 0.0
		if lim.ConnInterval > 0 {
			rate = math.Round(float64(time.Second) / float64(lim.ConnInterval))
		}
		gauge(descLimRate, rate, lb)
		d := drops[lb]
		for i, r := range append(slices.Clone(limitReasons), limitReasonBw) {
			ch <- prometheus.MustNewConstMetric(descLimDrops, prometheus.CounterValue, float64(d[i]), lb, r)
		}
	}
}
