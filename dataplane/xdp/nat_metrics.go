package xdp

import (
	"net/netip"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/xlbproject/xlb/dataplane/snat"
)

// natReasonNames index nat_stats.reasons (enum nat_reason).
var natReasonNames = []string{"port_alloc", "no_flow", "flow_table_full", "released"}

var (
	descSnatFail      = prometheus.NewDesc("xlb_snat_port_alloc_failures_total", "New translations dropped because the host had no free port for the destination and could take no block.", []string{"pool", "public_ip"}, nil)
	descSnatAllocated = prometheus.NewDesc("xlb_snat_ports_allocated", "Ports of a public IP held by the pool's hosts in blocks.", []string{"pool", "public_ip", "protocol"}, nil)
	descSnatInUse     = prometheus.NewDesc("xlb_snat_ports_in_use", "Ports of a public IP that at least one translation holds (or held less than 5 s ago).", []string{"pool", "public_ip", "protocol"}, nil)
	descSnatBlocks    = prometheus.NewDesc("xlb_snat_block_utilisation", "Share of a public IP's port space (1024-65535) given out in blocks (hosts and spares).", []string{"pool", "public_ip", "protocol"}, nil)
	descSnatHostAlloc = prometheus.NewDesc("xlb_snat_host_ports_allocated", "Ports a host holds in blocks (hosts with translations only).", []string{"pool", "host", "protocol"}, nil)
	descSnatHostInUse = prometheus.NewDesc("xlb_snat_host_ports_in_use", "Distinct ports a host's translations hold.", []string{"pool", "host", "protocol"}, nil)
	descSnatHostBusy  = prometheus.NewDesc("xlb_snat_host_destination_ports_in_use", "Ports a host's translations hold towards its busiest destination: what limits its new connections there.", []string{"pool", "host", "protocol"}, nil)
	descSnatActive    = prometheus.NewDesc("xlb_snat_active_translations", "Translations (connections) of the pool at the last sweep.", []string{"pool"}, nil)
	descSnatPackets   = prometheus.NewDesc("xlb_snat_packets_total", "Packets translated; out: private host to the outside, in: replies.", []string{"pool", "direction"}, nil)
	descSnatBytes     = prometheus.NewDesc("xlb_snat_bytes_total", "Bytes (whole frames) translated.", []string{"pool", "direction"}, nil)
	descSnatNew       = prometheus.NewDesc("xlb_snat_new_translations_total", "Translations created.", []string{"pool"}, nil)
	descSnatDropped   = prometheus.NewDesc("xlb_snat_dropped_total", "Packets of the pool's hosts dropped, by reason.", []string{"pool", "reason"}, nil)
	descSnatBlockSize = prometheus.NewDesc("xlb_snat_block_size", "Ports per block for new blocks (by the pool's host count).", []string{"pool"}, nil)
	descSnatShare     = prometheus.NewDesc("xlb_snat_host_max_blocks", "Blocks a host may hold per protocol: its fair share of the pool.", []string{"pool"}, nil)
	descEIPPackets    = prometheus.NewDesc("xlb_eip_packets_total", "Packets translated by an elastic IP; out: from the private host.", []string{"public_ip", "direction"}, nil)
	descEIPBytes      = prometheus.NewDesc("xlb_eip_bytes_total", "Bytes translated by an elastic IP.", []string{"public_ip", "direction"}, nil)
	descEIPNew        = prometheus.NewDesc("xlb_eip_new_translations_total", "Connections an elastic IP translated.", []string{"public_ip"}, nil)
	descEIPActive     = prometheus.NewDesc("xlb_eip_active_translations", "Connections of an elastic IP at the last sweep.", []string{"public_ip"}, nil)
	descNATExpired    = prometheus.NewDesc("xlb_snat_released_translations_total", "Translations released (snat) or removed (EIP) by the sweeper.", nil, nil)
	natDescs          = []*prometheus.Desc{descSnatFail, descSnatAllocated, descSnatInUse, descSnatBlocks, descSnatHostAlloc, descSnatHostInUse, descSnatHostBusy, descSnatActive, descSnatPackets, descSnatBytes, descSnatNew, descSnatDropped, descSnatBlockSize, descSnatShare, descEIPPackets, descEIPBytes, descEIPNew, descEIPActive, descNATExpired}
)

func (e *Engine) describeNAT(ch chan<- *prometheus.Desc) {
	for _, d := range natDescs {
		ch <- d
	}
}

func (e *Engine) natCounters(slot uint32) (lbNatStats, bool) {
	var per []lbNatStats
	if err := e.objs.NatCounters.Lookup(slot, &per); err != nil {
		return lbNatStats{}, false
	}
	var sum lbNatStats
	for _, s := range per {
		sum.PktsOut += s.PktsOut
		sum.BytesOut += s.BytesOut
		sum.PktsIn += s.PktsIn
		sum.BytesIn += s.BytesIn
		sum.NewFlows += s.NewFlows
		for i := range sum.Reasons {
			sum.Reasons[i] += s.Reasons[i]
		}
	}
	return sum, true
}

func (e *Engine) collectNAT(ch chan<- prometheus.Metric) {
	e.sweeps.mu.Lock()
	u, natExpired := e.sweeps.nat, e.sweeps.natExpired
	e.sweeps.mu.Unlock()
	if u == nil {
		u = newNATUsage()
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, x := range e.nat.pools {
		name := x.cfg.Name
		for _, ip := range x.cfg.PublicIPs {
			var v uint64
			_ = e.objs.NatFailures.Lookup(lbNatFailKey{Pool: x.id, Addr: be32(ip)}, &v)
			counter(descSnatFail, v, name, ip.String())
			for pr := snat.Proto(0); pr < snat.NumProtos; pr++ {
				ports, util := x.plan.Allocated(ip, pr)
				gauge(descSnatAllocated, float64(ports), name, ip.String(), pr.String())
				gauge(descSnatInUse, float64(u.inUse(ip, pr)), name, ip.String(), pr.String())
				gauge(descSnatBlocks, util, name, ip.String(), pr.String())
			}
		}
		x.plan.Each(func(k snat.HostKey, bs []snat.Block) {
			used := len(u.hostPorts[k])
			if used == 0 && len(bs) <= 1 {
				return // idle hosts hold their first block: not worth a series each
			}
			alloc := 0
			for _, b := range bs {
				alloc += int(b.Size)
			}
			gauge(descSnatHostAlloc, float64(alloc), name, k.Addr.String(), k.Proto.String())
			gauge(descSnatHostInUse, float64(used), name, k.Addr.String(), k.Proto.String())
			gauge(descSnatHostBusy, float64(u.busiest[k]), name, k.Addr.String(), k.Proto.String())
		})
		gauge(descSnatActive, float64(u.active[x.id]), name)
		gauge(descSnatBlockSize, float64(x.plan.BlockSize()), name)
		gauge(descSnatShare, float64(x.plan.Share()), name)
		if s, ok := e.natCounters(x.id); ok {
			counter(descSnatPackets, s.PktsOut, name, "out")
			counter(descSnatPackets, s.PktsIn, name, "in")
			counter(descSnatBytes, s.BytesOut, name, "out")
			counter(descSnatBytes, s.BytesIn, name, "in")
			counter(descSnatNew, s.NewFlows, name)
			for i, r := range natReasonNames {
				counter(descSnatDropped, s.Reasons[i], name, r)
			}
		}
	}
	for pub, x := range e.nat.eips {
		slot := maxPools + x.id
		if s, ok := e.natCounters(slot); ok {
			counter(descEIPPackets, s.PktsOut, pub.String(), "out")
			counter(descEIPPackets, s.PktsIn, pub.String(), "in")
			counter(descEIPBytes, s.BytesOut, pub.String(), "out")
			counter(descEIPBytes, s.BytesIn, pub.String(), "in")
			counter(descEIPNew, s.NewFlows, pub.String())
		}
		gauge(descEIPActive, float64(u.active[slot]), pub.String())
	}
	counter(descNATExpired, natExpired)
}

// Translation is one SNAT or EIP connection as the fast path sees it.
type Translation struct {
	Pool     string // "" for an EIP
	EIP      netip.Addr
	Protocol uint8 // 6, 17 or 1 (ICMP echo: ports are the echo id)
	Private  netip.AddrPort
	Public   netip.AddrPort
	Remote   netip.AddrPort
	Released bool // in its 5 s grace: the port is not reused for Remote yet
}

// Translations lists the SNAT and EIP connections, from their reply
// entries (which outlive the initiator's by the release grace).
func (e *Engine) Translations() ([]Translation, error) {
	all, err := dumpFlows(e.objs.Flows)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	pools := map[uint32]string{}
	for _, x := range e.nat.pools {
		pools[x.id] = x.cfg.Name
	}
	e.mu.Unlock()
	var out []Translation
	for k, f := range all {
		if f.Flags&ffNAT == 0 || f.Flags&ffReply == 0 {
			continue
		}
		t := Translation{
			Protocol: k.Proto,
			Private:  netip.AddrPortFrom(addrOf(f.NewDaddr), portOf(f.NewDport)),
			Public:   netip.AddrPortFrom(addrOf(k.Daddr), portOf(k.Dport)),
			Remote:   netip.AddrPortFrom(addrOf(k.Saddr), portOf(k.Sport)),
			Released: f.Flags&ffReleased != 0,
		}
		switch {
		case f.Flags&ffSNAT != 0:
			t.Pool = pools[f.Listener]
		case f.Flags&ffInbound != 0:
			// The outside started it: the reply entry is private -> remote.
			t.EIP = addrOf(f.NewSaddr)
			t.Public = netip.AddrPortFrom(t.EIP, portOf(f.NewSport))
			t.Private = netip.AddrPortFrom(addrOf(k.Saddr), portOf(k.Sport))
			t.Remote = netip.AddrPortFrom(addrOf(k.Daddr), portOf(k.Dport))
		default:
			t.EIP = t.Public.Addr()
		}
		out = append(out, t)
	}
	return out, nil
}
