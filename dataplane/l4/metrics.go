package l4

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/xlbproject/xlb/dataplane/limit"
)

// Drop reasons, the values of xlb_l4_dropped_total's reason label.
const (
	reasonACL           = "acl"
	reasonStopped       = "stopped"
	reasonNoBackend     = "no_backend"
	reasonConnectFailed = "connect_failed"
	reasonSessionLimit  = "session_limit"
	reasonBackendError  = "backend_error"
	reasonMaxConns      = "limit_max_connections"
	reasonNewConns      = "limit_new_connections"
)

var dropReasons = []string{reasonACL, reasonStopped, reasonNoBackend, reasonConnectFailed, reasonSessionLimit, reasonBackendError,
	reasonMaxConns, reasonNewConns}

type metrics struct {
	conns     *prometheus.CounterVec
	active    *prometheus.GaugeVec
	bytes     *prometheus.CounterVec
	packets   *prometheus.CounterVec
	dropped   *prometheus.CounterVec
	connFails *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		conns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "xlb_l4_connections_total",
			Help: "Connections (tcp) or sessions (udp) forwarded to a backend by the userspace engine.",
		}, []string{"listener"}),
		active: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "xlb_l4_active_connections",
			Help: "Open connections (tcp) or sessions (udp) of the userspace engine.",
		}, []string{"listener"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "xlb_l4_bytes_total",
			Help: "Payload bytes forwarded; in: client to backend, out: backend to client.",
		}, []string{"listener", "direction"}),
		packets: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "xlb_l4_packets_total",
			Help: "UDP datagrams forwarded; in: client to backend, out: backend to client.",
		}, []string{"listener", "direction"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "xlb_l4_dropped_total",
			Help: "Connections (tcp) or datagrams (udp) refused, by reason: acl, stopped, no_backend, connect_failed, session_limit, backend_error, limit_max_connections, limit_new_connections.",
		}, []string{"listener", "reason"}),
		connFails: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "xlb_l4_backend_connect_failures_total",
			Help: "Failed connection attempts to a backend (a connection may try up to three backends).",
		}, []string{"listener", "backend"}),
	}
	for _, c := range []prometheus.Collector{m.conns, m.active, m.bytes, m.packets, m.dropped, m.connFails} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// listenerMetrics are one listener's children, looked up once.
type listenerMetrics struct {
	conns, bytesIn, bytesOut, pktsIn, pktsOut prometheus.Counter
	active                                    prometheus.Gauge
	drops                                     map[string]prometheus.Counter
	connFails                                 *prometheus.CounterVec
	name                                      string
}

func (m *metrics) forListener(name string) *listenerMetrics {
	lm := &listenerMetrics{
		name:      name,
		conns:     m.conns.WithLabelValues(name),
		active:    m.active.WithLabelValues(name),
		bytesIn:   m.bytes.WithLabelValues(name, "in"),
		bytesOut:  m.bytes.WithLabelValues(name, "out"),
		pktsIn:    m.packets.WithLabelValues(name, "in"),
		pktsOut:   m.packets.WithLabelValues(name, "out"),
		drops:     make(map[string]prometheus.Counter, len(dropReasons)),
		connFails: m.connFails,
	}
	for _, r := range dropReasons {
		lm.drops[r] = m.dropped.WithLabelValues(name, r)
	}
	return lm
}

func (m *metrics) forget(name string) {
	l := prometheus.Labels{"listener": name}
	m.conns.DeletePartialMatch(l)
	m.active.DeletePartialMatch(l)
	m.bytes.DeletePartialMatch(l)
	m.packets.DeletePartialMatch(l)
	m.dropped.DeletePartialMatch(l)
	m.connFails.DeletePartialMatch(l)
}

func (lm *listenerMetrics) drop(reason string) { lm.drops[reason].Inc() }

// limitReason is the drop reason of a limit's refusal.
func limitReason(why limit.Reason) string {
	if why == limit.NewConnections {
		return reasonNewConns
	}
	return reasonMaxConns
}
