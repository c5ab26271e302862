package daemon

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/xlbproject/xlb/internal/buildinfo"
)

// daemonMetrics are the daemon's own series; each engine registers its own.
type daemonMetrics struct {
	configVersion prometheus.Gauge
	reloads       *prometheus.CounterVec
}

func newDaemonMetrics(reg prometheus.Registerer) *daemonMetrics {
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "xlb_build_info",
		Help:        "Always 1; the labels say which build of xlbd is running.",
		ConstLabels: prometheus.Labels{"version": buildinfo.Version, "goversion": buildinfo.GoVersion()},
	})
	build.Set(1)
	m := &daemonMetrics{
		configVersion: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "xlb_config_version",
			Help: "Version of the running configuration; it grows by one with every successful apply.",
		}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "xlb_config_reloads_total",
			Help: "Configuration reloads by result (success, invalid: rejected by validation, error: refused by an engine).",
		}, []string{"result"}),
	}
	for _, r := range []string{resultSuccess, resultInvalid, resultError} {
		m.reloads.WithLabelValues(r)
	}
	reg.MustRegister(build, m.configVersion, m.reloads,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

const (
	resultSuccess = "success"
	resultInvalid = "invalid"
	resultError   = "error"
)
