package config

import (
	"time"

	xlbv1 "github.com/xlbproject/xlb/controlplane/api/xlb/v1"
)

const (
	minCheckTimeout  = time.Second
	maxCheckTimeout  = 300 * time.Second
	minCheckInterval = time.Second
	maxCheckInterval = 50 * time.Second
	minThreshold     = 2
	maxThreshold     = 10
)

// healthCheck checks an enabled check; a disabled one is kept as written.
func (v *validator) healthCheck(p string, hc *xlbv1.HealthCheck, proto xlbv1.Protocol) {
	if hc == nil || !hc.GetEnabled() {
		return
	}
	tp := field(p, "type")
	switch hc.Type {
	case xlbv1.HealthCheck_tcp, xlbv1.HealthCheck_http:
		if proto == xlbv1.Protocol_udp {
			v.add(tp, "%s checks are for tcp, http and https listeners; a udp listener uses a udp check", hc.Type)
		}
	case xlbv1.HealthCheck_udp:
		if proto != xlbv1.Protocol_udp {
			v.add(tp, "udp checks are for udp listeners only; use tcp or http")
		}
	default:
		v.add(tp, "required: tcp, http or udp")
	}
	v.checkDuration(field(p, "timeout"), hc.Timeout, minCheckTimeout, maxCheckTimeout)
	v.checkDuration(field(p, "interval"), hc.Interval, minCheckInterval, maxCheckInterval)
	if hc.HealthyThreshold != nil {
		v.checkRange(field(p, "healthy_threshold"), uint64(*hc.HealthyThreshold), minThreshold, maxThreshold)
	}
	if hc.UnhealthyThreshold != nil {
		v.checkRange(field(p, "unhealthy_threshold"), uint64(*hc.UnhealthyThreshold), minThreshold, maxThreshold)
	}
	v.checkRange(field(p, "port"), uint64(hc.Port), 0, 65535)

	http, udp := hc.Type == xlbv1.HealthCheck_http, hc.Type == xlbv1.HealthCheck_udp
	onlyFor := func(name string, set bool, kind string, ok bool) {
		if set && !ok {
			v.add(field(p, name), "only %s checks use %s", kind, name)
		}
	}
	onlyFor("host", hc.Host != "", "http", http)
	onlyFor("path", hc.Path != "", "http", http)
	onlyFor("codes", len(hc.Codes) > 0, "http", http)
	onlyFor("request", hc.Request != "", "udp", udp)
	onlyFor("response", hc.Response != "", "udp", udp)
	if http {
		v.httpCheck(p, hc)
	}
	if udp {
		if hc.Request == "" {
			v.add(field(p, "request"), "required for udp checks: the datagram sent to the server")
		}
		if hc.Response == "" {
			v.add(field(p, "response"), "required for udp checks: the answer a healthy server sends")
		}
	}
}

func (v *validator) httpCheck(p string, hc *xlbv1.HealthCheck) {
	if len(hc.Path) == 0 || hc.Path[0] != '/' {
		v.add(field(p, "path"), "%q must start with \"/\"", hc.Path)
	}
	if hc.Host != "" {
		if _, err := parseIP(hc.Host); err != nil && !validHostname(hc.Host) {
			v.add(field(p, "host"), "%q is not a valid host name", hc.Host)
		}
	}
	if len(hc.Codes) == 0 {
		v.add(field(p, "codes"), "at least one status class is required")
	}
	seen := map[xlbv1.HttpCode]int{}
	for i, c := range hc.Codes {
		if first, dup := seen[c]; dup {
			v.add(index(field(p, "codes"), i), "%s is already listed as codes[%d]", c, first)
			continue
		}
		seen[c] = i
	}
}
