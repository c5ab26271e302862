package server

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	xlbv1 "github.com/xlbproject/xlb/controlplane/api/xlb/v1"
	"github.com/xlbproject/xlb/dataplane/pool"
)

// GetStats reads the engines' own counters from the metrics registry, so
// the API and /metrics never disagree: series with a backend label go to
// that backend, the others with a listener label to that listener and its
// load balancer.
func (s *Server) GetStats(context.Context, *xlbv1.GetStatsRequest) (*xlbv1.GetStatsResponse, error) {
	if s.opts.Gatherer == nil {
		return nil, status.Error(codes.Unavailable, "no metrics registry")
	}
	families, err := s.opts.Gatherer.Gather()
	if err != nil && len(families) == 0 {
		return nil, status.Errorf(codes.Internal, "reading the counters: %v", err)
	}
	listeners := map[string]map[string]float64{}
	backends := map[string]map[string]float64{}
	for _, f := range families {
		if !strings.HasPrefix(f.GetName(), "xlb_") {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			value, suffix := metricValue(f.GetType(), m)
			switch {
			case labels["backend"] != "":
				addCounter(backends, labels["backend"], seriesName(f.GetName()+suffix, labels, "backend"), value)
			case labels["listener"] != "":
				addCounter(listeners, labels["listener"], seriesName(f.GetName()+suffix, labels, "listener", "lb"), value)
			}
		}
	}

	out := &xlbv1.GetStatsResponse{}
	lbs := map[string]*xlbv1.LoadBalancerStats{}
	for _, name := range sortedKeys(listeners) {
		id, _, _ := strings.Cut(name, "/")
		lb := lbs[id]
		if lb == nil {
			lb = &xlbv1.LoadBalancerStats{Id: id, Counters: map[string]float64{}}
			lbs[id] = lb
			out.LoadBalancers = append(out.LoadBalancers, lb)
		}
		lb.Listeners = append(lb.Listeners, &xlbv1.ListenerStats{Name: name, Counters: listeners[name]})
		for k, v := range listeners[name] {
			lb.Counters[k] += v
		}
	}

	byID := map[string]*xlbv1.BackendStats{}
	for _, b := range s.lockedBackends() {
		st := byID[b.ID()]
		if st == nil {
			st = &xlbv1.BackendStats{Backend: b.ID(), Health: xlbv1.HealthState_up, Admin: adminProto(b.Admin())}
			byID[b.ID()] = st
		}
		// One backend checked two ways is down when either check says so.
		if !b.Up() {
			st.Health = xlbv1.HealthState_down
		}
		st.Active += b.Active()
	}
	for id, c := range backends {
		st := byID[id]
		if st == nil {
			st = &xlbv1.BackendStats{Backend: id}
			byID[id] = st
		}
		st.Counters = c
	}
	for _, id := range sortedKeys(byID) {
		out.Backends = append(out.Backends, byID[id])
	}
	return out, nil
}

func (s *Server) lockedBackends() []*pool.Backend {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.backends()
}

// metricValue is a series' value: counters and gauges as they are,
// histograms and summaries by their count.
func metricValue(t dto.MetricType, m *dto.Metric) (float64, string) {
	switch t {
	case dto.MetricType_COUNTER:
		return m.GetCounter().GetValue(), ""
	case dto.MetricType_GAUGE:
		return m.GetGauge().GetValue(), ""
	case dto.MetricType_HISTOGRAM:
		return float64(m.GetHistogram().GetSampleCount()), "_count"
	case dto.MetricType_SUMMARY:
		return float64(m.GetSummary().GetSampleCount()), "_count"
	}
	return m.GetUntyped().GetValue(), ""
}

// seriesName is the metric name with the labels other than the grouping
// ones: xlb_l4_bytes_total{direction="in"}.
func seriesName(name string, labels map[string]string, drop ...string) string {
	var parts []string
	for _, k := range sortedKeys(labels) {
		if slices.Contains(drop, k) {
			continue
		}
		parts = append(parts, fmt.Sprintf("%s=%q", k, labels[k]))
	}
	if len(parts) == 0 {
		return name
	}
	return name + "{" + strings.Join(parts, ",") + "}"
}

func addCounter(m map[string]map[string]float64, group, name string, v float64) {
	if m[group] == nil {
		m[group] = map[string]float64{}
	}
	m[group][name] += v
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
