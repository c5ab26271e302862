package certs

import (
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// ExpiryWarning is how far ahead of a certificate's expiry the warnings start.
const ExpiryWarning = 30 * 24 * time.Hour

// Expiry reports when the certificates in use expire: the gauge
// xlb_certificate_expiry_seconds (negative once expired) and a warning log,
// at most once a day per certificate, from ExpiryWarning before.
type Expiry struct {
	desc *prometheus.Desc
	now  func() time.Time

	mu     sync.Mutex
	certs  map[string]time.Time // id -> earliest expiry in its chain
	warned map[string]time.Time // id -> last warning
}

// NewExpiry returns an empty report; now is its clock (nil: time.Now).
func NewExpiry(now func() time.Time) *Expiry {
	if now == nil {
		now = time.Now
	}
	return &Expiry{
		desc: prometheus.NewDesc("xlb_certificate_expiry_seconds",
			"Seconds until the certificate (the earliest expiry in its chain) expires; negative: expired.",
			[]string{"certificate"}, nil),
		now: now, certs: map[string]time.Time{}, warned: map[string]time.Time{},
	}
}

// Set replaces the certificates reported, by id.
func (x *Expiry) Set(certs map[string]time.Time) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.certs = certs
	for id := range x.warned {
		if _, ok := certs[id]; !ok {
			delete(x.warned, id)
		}
	}
}

// Warn logs the certificates that expire within ExpiryWarning (or have
// expired) and were not warned about in the last day.
func (x *Expiry) Warn(log *zap.Logger) {
	x.mu.Lock()
	defer x.mu.Unlock()
	now := x.now()
	ids := make([]string, 0, len(x.certs))
	for id := range x.certs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		at := x.certs[id]
		left := at.Sub(now)
		if left > ExpiryWarning {
			continue
		}
		if last, ok := x.warned[id]; ok && now.Sub(last) < 24*time.Hour {
			continue
		}
		x.warned[id] = now
		if left <= 0 {
			log.Warn("certificate has expired: clients refuse it", zap.String("certificate", id), zap.Time("not_after", at))
		} else {
			log.Warn("certificate expires soon", zap.String("certificate", id), zap.Time("not_after", at),
				zap.Duration("left", left.Round(time.Minute)))
		}
	}
}

func (x *Expiry) Describe(ch chan<- *prometheus.Desc) { ch <- x.desc }

func (x *Expiry) Collect(ch chan<- prometheus.Metric) {
	x.mu.Lock()
	defer x.mu.Unlock()
	now := x.now()
	for id, at := range x.certs {
		ch <- prometheus.MustNewConstMetric(x.desc, prometheus.GaugeValue, at.Sub(now).Seconds(), id)
	}
}
