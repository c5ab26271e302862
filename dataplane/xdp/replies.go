package xdp

import (
	"net/netip"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/xlbproject/xlb/dataplane/pool"
)

var descStateless = prometheus.NewDesc("xlb_xdp_stateless_replies_total",
	"Backend replies translated without the flow's state (maglev NAT listeners: the flow's other direction crossed another node, or the flow moved here).",
	[]string{"listener"}, nil)

// writeReplies maps each backend address:port of exactly one maglev NAT
// listener to that listener, for the replies that reach this node without
// state (bpf/include/lb_reply.h). A backend serving two such listeners is
// left out: its replies cannot be told apart without the flow's state.
// Entries an earlier xlbd pinned are replaced too.
func (e *Engine) writeReplies() {
	want := map[lbReplyKey]uint32{}
	ambiguous := map[lbReplyKey]bool{}
	for _, x := range e.listeners {
		cfg := &x.cfg
		if cfg.Pass || cfg.FullNAT || cfg.Pool.Scheduler != pool.Maglev {
			continue
		}
		for _, s := range cfg.Pool.Servers {
			if !s.Addr.Is4() {
				continue
			}
			k := lbReplyKey{Addr: be32(s.Addr), Port: be16(s.Port), Proto: uint8(cfg.Protocol)}
			if id, dup := want[k]; dup && id != x.id {
				ambiguous[k] = true
			}
			want[k] = x.id
		}
	}
	for k := range ambiguous {
		delete(want, k)
		e.log.Warn("xdp: a backend serves two maglev listeners: its replies are translated only by the node that has the flow's state",
			zap.Stringer("backend", netip.AddrPortFrom(addrOf(k.Addr), portOf(k.Port))), zap.Uint8("proto", k.Proto))
	}
	var stale []lbReplyKey
	var k lbReplyKey
	var id uint32
	it := e.objs.Replies.Iterate()
	for it.Next(&k, &id) {
		if w, ok := want[k]; !ok || w != id {
			stale = append(stale, k)
		}
	}
	for _, k := range stale {
		_ = e.objs.Replies.Delete(k)
	}
	for k, id := range want {
		if err := e.objs.Replies.Put(k, id); err != nil {
			e.log.Error("xdp: writing stateless replies", zap.Error(err))
			return
		}
	}
}

// collectStateless exports the stateless reply counters of names' listeners.
func (e *Engine) collectStateless(ch chan<- prometheus.Metric, names map[uint32]string) {
	var per []uint64
	for id, name := range names {
		if err := e.objs.StatelessReplies.Lookup(id, &per); err != nil {
			continue
		}
		var sum uint64
		for _, v := range per {
			sum += v
		}
		ch <- prometheus.MustNewConstMetric(descStateless, prometheus.CounterValue, float64(sum), name)
	}
}
