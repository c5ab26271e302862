package health

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Check results, the values of the result label.
const (
	resultSuccess = "success"
	resultFailure = "failure"
	resultTimeout = "timeout"
)

var results = [...]string{resultSuccess, resultFailure, resultTimeout}

type metrics struct {
	// up and checks are labelled by backend (the server's address:port)
	// and check type: at most 3 up series and 9 check series per backend.
	up       *prometheus.GaugeVec
	checks   *prometheus.CounterVec
	duration *prometheus.HistogramVec
	dropped  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "xlb_backend_up",
			Help: "1 if the backend passes its health check, 0 if not.",
		}, []string{"backend", "check"}),
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "xlb_health_checks_total",
			Help: "Health checks run, by result.",
		}, []string{"backend", "check", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "xlb_health_check_duration_seconds",
			Help:    "Time one health check took, timeouts included.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"check"}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "xlb_health_events_dropped_total",
			Help: "State-change events a slow subscriber lost (superseded or oldest).",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.up, m.checks, m.duration, m.dropped} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register health metrics: %w", err)
		}
	}
	return m, nil
}

// series names one backend's labels. Several checkers may share them (the
// same backend checked with different specs of one type); the gauge then
// shows 1 only while all of them are up.
type series struct{ backend, check string }

type seriesRefs struct{ checkers, down int }

func (m *metrics) setUp(s series, r *seriesRefs) {
	v := 0.0
	if r.down == 0 {
		v = 1
	}
	m.up.WithLabelValues(s.backend, s.check).Set(v)
}

// create makes the series visible at once, so rates start from zero.
func (m *metrics) create(s series) {
	for _, r := range results {
		m.checks.WithLabelValues(s.backend, s.check, r)
	}
}

func (m *metrics) delete(s series) {
	m.up.DeleteLabelValues(s.backend, s.check)
	for _, r := range results {
		m.checks.DeleteLabelValues(s.backend, s.check, r)
	}
}
