package limit

import "github.com/prometheus/client_golang/prometheus"

// Collector exports a registry's limiter state and refusals.
type Collector struct {
	r                           *Registry
	drops, conns, maxConns, cfg *prometheus.Desc
	waited                      *prometheus.Desc
}

// NewCollector returns a collector of r for a Prometheus registry.
func NewCollector(r *Registry) *Collector {
	return &Collector{
		r: r,
		drops: prometheus.NewDesc("xlb_limit_drops_total",
			"Connections, requests or packets refused by a load balancer's limits, by reason (max_connections, new_connections, requests).",
			[]string{"lb", "reason"}, nil),
		conns: prometheus.NewDesc("xlb_limit_connections",
			"Connections open against the load balancer's max_connections (userspace engines).", []string{"lb"}, nil),
		maxConns: prometheus.NewDesc("xlb_limit_max_connections",
			"The load balancer's max_connections; 0: unlimited.", []string{"lb"}, nil),
		cfg: prometheus.NewDesc("xlb_limit_rate",
			"The load balancer's configured rates per second (new_connections, requests); 0: unlimited.", []string{"lb", "kind"}, nil),
		waited: prometheus.NewDesc("xlb_bandwidth_delay_seconds_total",
			"Time the bandwidth shapers held a listener's traffic back, by direction (in: from clients, out: to clients).",
			[]string{"lb", "listener", "direction"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.drops, c.conns, c.maxConns, c.cfg, c.waited} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.r.each(func(l *LB) {
		for r := Reason(0); r < numReasons; r++ {
			ch <- prometheus.MustNewConstMetric(c.drops, prometheus.CounterValue, float64(l.Drops(r)), l.ID, r.String())
		}
		ch <- prometheus.MustNewConstMetric(c.conns, prometheus.GaugeValue, float64(l.Conns.InUse()), l.ID)
		ch <- prometheus.MustNewConstMetric(c.maxConns, prometheus.GaugeValue, float64(l.Conns.Max()), l.ID)
		ch <- prometheus.MustNewConstMetric(c.cfg, prometheus.GaugeValue, float64(l.NewConns.PerSecond()), l.ID, "new_connections")
		ch <- prometheus.MustNewConstMetric(c.cfg, prometheus.GaugeValue, float64(l.Requests.PerSecond()), l.ID, "requests")
		l.mu.Lock()
		for name, s := range l.listeners {
			ch <- prometheus.MustNewConstMetric(c.waited, prometheus.CounterValue, s[In].Waited().Seconds(), l.ID, name, "in")
			ch <- prometheus.MustNewConstMetric(c.waited, prometheus.CounterValue, s[Out].Waited().Seconds(), l.ID, name, "out")
		}
		l.mu.Unlock()
	})
}
