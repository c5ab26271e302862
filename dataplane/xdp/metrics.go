package xdp

import (
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
)

// Describe implements prometheus.Collector.
func (e *Engine) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPackets, descBytes, descNewFlows, descDropped, descActive,
		descBPackets, descBBytes, descBFlows, descEntries, descCapacity, descExpired, descParse, descPassed} {
		ch <- d
	}
	e.describeNAT(ch)
}

// Collect reads the per-CPU counters and sums them.
func (e *Engine) Collect(ch chan<- prometheus.Metric) {
	e.mu.Lock()
	names := map[uint32]string{}
	for _, x := range e.listeners {
		names[x.id] = x.cfg.Name
	}
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
	e.collectNAT(ch)
}
