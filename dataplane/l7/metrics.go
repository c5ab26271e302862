package l7

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Error reasons, the values of xlb_http_errors_total's reason label.
const (
	reasonNoBackend      = "no_backend"
	reasonBackendConnect = "backend_connect"
	reasonBackendTimeout = "backend_timeout"
	reasonBadGateway     = "bad_gateway"
	reasonACL            = "acl"
	reasonStopped        = "stopped"
	reasonBadRequest     = "bad_request"
	reasonForgedCookie   = "forged_cookie"
	reasonMaxConns       = "limit_max_connections"
	reasonNewConns       = "limit_new_connections"
	reasonRequests       = "limit_requests"
)

const (
	errNoBackend = iota
	errBackendConnect
	errBackendTimeout
	errBadGateway
	errACL
	errStopped
	errBadRequest
	errForgedCookie
	errMaxConns
	errNewConns
	errRequests
	numErrReasons
)

var errReasons = [numErrReasons]string{
	reasonNoBackend, reasonBackendConnect, reasonBackendTimeout, reasonBadGateway,
	reasonACL, reasonStopped, reasonBadRequest, reasonForgedCookie,
	reasonMaxConns, reasonNewConns, reasonRequests,
}

var codeClasses = [6]string{"", "1xx", "2xx", "3xx", "4xx", "5xx"}

// durationBuckets reach down to a tenth of a millisecond: a proxied request
// on a local network takes well under one.
var durationBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

type metrics struct {
	requests, upstreamResponses *prometheus.CounterVec
	duration, upstreamDuration  *prometheus.HistogramVec
	active                      *prometheus.GaugeVec
	bytes                       *prometheus.CounterVec
	errors                      *prometheus.CounterVec
	ejections                   *prometheus.CounterVec
	handshakes                  *prometheus.CounterVec
}

// TLS handshake results, the values of xlb_tls_handshakes_total's result label.
const (
	hsFull = iota
	hsResumed
	hsFailed
	numHandshakeResults
)

var handshakeResults = [numHandshakeResults]string{"full", "resumed", "failed"}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	lbl := []string{"lb", "listener"}
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "xlb_http_requests_total",
			Help: "HTTP requests answered to clients, by status class (1xx is a WebSocket upgrade).",
		}, append(lbl, "code_class")),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "xlb_http_request_duration_seconds",
			Help:    "Time from a request's head to the end of its response.",
			Buckets: durationBuckets,
		}, lbl),
		upstreamResponses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "xlb_http_upstream_responses_total",
			Help: "Responses received from backends, by status class.",
		}, append(lbl, "code_class")),
		upstreamDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "xlb_http_upstream_duration_seconds",
			Help:    "Time from sending a request to a backend to receiving its response head.",
			Buckets: durationBuckets,
		}, lbl),
		active: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "xlb_http_active_connections",
			Help: "Open client connections (HTTP/1.1, HTTP/2, WebSocket and QUIC; TLS ones from the end of their handshake).",
		}, lbl),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "xlb_http_bytes_total",
			Help: "Bytes exchanged with clients; in: received from clients, out: sent to clients.",
		}, append(lbl, "direction")),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "xlb_http_errors_total",
			Help: "Requests or connections refused or failed, by reason: no_backend, backend_connect, backend_timeout, bad_gateway, acl, stopped, bad_request, forged_cookie, limit_max_connections, limit_new_connections, limit_requests.",
		}, append(lbl, "reason")),
		ejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "xlb_http_backend_ejections_total",
			Help: "Backends taken out of rotation by passive health (consecutive connection failures or 5xx) for the cooldown.",
		}, append(lbl, "backend")),
		handshakes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "xlb_tls_handshakes_total",
			Help: "TLS handshakes of https listeners (TCP and QUIC) by result: full, resumed (a session ticket), failed.",
		}, append(lbl, "result")),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.upstreamResponses, m.upstreamDuration, m.active, m.bytes, m.errors, m.ejections, m.handshakes} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// listenerMetrics are one listener's children, looked up once so the
// request path only increments.
type listenerMetrics struct {
	lb, name          string
	requests          [6]prometheus.Counter
	upstream          [6]prometheus.Counter
	duration          prometheus.Observer
	upstreamDuration  prometheus.Observer
	active            prometheus.Gauge
	bytesIn, bytesOut prometheus.Counter
	errors            [numErrReasons]prometheus.Counter
	ejections         *prometheus.CounterVec
	handshakes        [numHandshakeResults]prometheus.Counter
}

func (m *metrics) forListener(lb, name string) *listenerMetrics {
	lm := &listenerMetrics{
		lb: lb, name: name,
		duration:         m.duration.WithLabelValues(lb, name),
		upstreamDuration: m.upstreamDuration.WithLabelValues(lb, name),
		active:           m.active.WithLabelValues(lb, name),
		bytesIn:          m.bytes.WithLabelValues(lb, name, "in"),
		bytesOut:         m.bytes.WithLabelValues(lb, name, "out"),
		ejections:        m.ejections,
	}
	for i := 1; i < len(codeClasses); i++ {
		lm.requests[i] = m.requests.WithLabelValues(lb, name, codeClasses[i])
		lm.upstream[i] = m.upstreamResponses.WithLabelValues(lb, name, codeClasses[i])
	}
	for i, r := range errReasons {
		lm.errors[i] = m.errors.WithLabelValues(lb, name, r)
	}
	for i, r := range handshakeResults {
		lm.handshakes[i] = m.handshakes.WithLabelValues(lb, name, r)
	}
	return lm
}

func (m *metrics) forget(lb, name string) {
	l := prometheus.Labels{"lb": lb, "listener": name}
	m.requests.DeletePartialMatch(l)
	m.duration.DeletePartialMatch(l)
	m.upstreamResponses.DeletePartialMatch(l)
	m.upstreamDuration.DeletePartialMatch(l)
	m.active.DeletePartialMatch(l)
	m.bytes.DeletePartialMatch(l)
	m.errors.DeletePartialMatch(l)
	m.ejections.DeletePartialMatch(l)
	m.handshakes.DeletePartialMatch(l)
}

func statusClass(code int) int {
	c := code / 100
	if c < 1 || c > 5 {
		return 5
	}
	return c
}

func (lm *listenerMetrics) request(code int) { lm.requests[statusClass(code)].Inc() }

func (lm *listenerMetrics) upstreamResponse(code int) { lm.upstream[statusClass(code)].Inc() }

func (lm *listenerMetrics) fail(reason int) { lm.errors[reason].Inc() }

func (lm *listenerMetrics) ejected(backend string) {
	lm.ejections.WithLabelValues(lm.lb, lm.name, backend).Inc()
}
