package config

import (
	"fmt"
	"strings"
	"time"

	xlbv1 "github.com/xlbproject/xlb/controlplane/api/xlb/v1"
)

const (
	maxRules        = 40
	maxIdleTimeout  = 24 * time.Hour
	maxConnTimeout  = 5 * time.Minute
	maxReqTimeout   = time.Hour
	maxSourceIPTime = time.Hour
	maxCookieTime   = 24 * time.Hour
	maxUDPSessions  = 100000
)

func isWeb(p xlbv1.Protocol) bool { return p == xlbv1.Protocol_http || p == xlbv1.Protocol_https }
func isL4(p xlbv1.Protocol) bool  { return p == xlbv1.Protocol_tcp || p == xlbv1.Protocol_udp }

func (v *validator) listener(p string, l *xlbv1.Listener, lb *xlbv1.LoadBalancer) {
	v.checkRange(field(p, "port"), uint64(l.Port), 1, 65535)
	v.checkRange(field(p, "backend_port"), uint64(l.BackendPort), 1, 65535)
	proto := l.Protocol
	switch proto {
	case xlbv1.Protocol_tcp, xlbv1.Protocol_udp, xlbv1.Protocol_http, xlbv1.Protocol_https:
	case xlbv1.Protocol_PROTOCOL_UNSPECIFIED:
		v.add(field(p, "protocol"), "required: tcp, udp, http or https")
		return // every other rule depends on the protocol
	default:
		return // an undefined number, reported by enums
	}
	if l.Scheduler == xlbv1.Scheduler_maglev && !isL4(proto) {
		v.add(field(p, "scheduler"), "maglev is for tcp and udp listeners only")
	}
	if l.ServerGroup != "" {
		v.groupRef(field(p, "server_group"), l.ServerGroup, proto)
	}
	v.persistence(field(p, "persistence"), l.Persistence, proto)
	v.healthCheck(field(p, "health_check"), l.HealthCheck, proto)
	v.acl(field(p, "acl"), l.Acl)
	v.protocolFields(p, l)
	if isWeb(proto) {
		v.rules(field(p, "rules"), l.Rules, proto)
	}
	if proto == xlbv1.Protocol_https {
		v.listenerTLS(field(p, "tls"), l.Tls)
	}
	if r := l.RedirectHttps; r != nil && proto == xlbv1.Protocol_http {
		v.redirect(field(p, "redirect_https"), r, lb)
	}
	if t := l.Timeouts; t != nil {
		tp := field(p, "timeouts")
		v.checkDuration(field(tp, "idle"), t.Idle, time.Second, maxIdleTimeout)
		v.checkDuration(field(tp, "connect"), t.Connect, time.Second, maxConnTimeout)
		v.checkDuration(field(tp, "request"), t.Request, time.Second, maxReqTimeout)
	}
}

// protocolFields reports the settings the listener's protocol has no use for.
func (v *validator) protocolFields(p string, l *xlbv1.Listener) {
	proto := l.Protocol
	if !isWeb(proto) {
		if l.Headers != nil {
			v.add(field(p, "headers"), "only http and https listeners add headers")
		}
		if l.Gzip {
			v.add(field(p, "gzip"), "only http and https listeners compress")
		}
		if len(l.Rules) > 0 {
			v.add(field(p, "rules"), "only http and https listeners have forwarding rules")
		}
		if l.Timeouts.GetRequest() != nil {
			v.add(field(p, "timeouts.request"), "only http and https listeners have a request timeout")
		}
	}
	if proto != xlbv1.Protocol_https {
		if l.Tls != nil {
			v.add(field(p, "tls"), "only https listeners have tls")
		}
		if l.Http3 {
			v.add(field(p, "http3"), "only https listeners serve HTTP/3")
		}
	}
	if proto != xlbv1.Protocol_http && l.RedirectHttps != nil {
		v.add(field(p, "redirect_https"), "only http listeners redirect to https")
	}
	if !isL4(proto) && l.ForwardMode != xlbv1.Listener_FORWARD_MODE_UNSPECIFIED {
		v.add(field(p, "forward_mode"), "only tcp and udp listeners have a forward mode")
	}
	if proto == xlbv1.Protocol_udp {
		v.checkRange(field(p, "max_sessions"), uint64(l.MaxSessions), 1, maxUDPSessions)
	} else if l.MaxSessions != 0 {
		v.add(field(p, "max_sessions"), "only udp listeners have a session cap")
	}
	if proto == xlbv1.Protocol_udp && l.Timeouts.GetConnect() != nil {
		v.add(field(p, "timeouts.connect"), "a udp listener has no connection setup to time")
	}
}

// groupRef checks a reference to a server group from a listener or rule.
func (v *validator) groupRef(p, id string, proto xlbv1.Protocol) {
	g := v.groups[id]
	switch {
	case g == nil:
		v.add(p, "%q is not defined in server_groups", id)
	case g.Type == xlbv1.ServerGroup_master_slave && !isL4(proto):
		v.add(p, "%q is a master_slave group; those serve tcp and udp listeners only", id)
	}
}

func (v *validator) persistence(p string, ps *xlbv1.Persistence, proto xlbv1.Protocol) {
	if ps == nil {
		return
	}
	allowed := map[xlbv1.Protocol][]xlbv1.Persistence_Type{
		xlbv1.Protocol_tcp:   {xlbv1.Persistence_none, xlbv1.Persistence_source_ip},
		xlbv1.Protocol_udp:   {xlbv1.Persistence_none},
		xlbv1.Protocol_http:  {xlbv1.Persistence_none, xlbv1.Persistence_insert_cookie, xlbv1.Persistence_rewrite_cookie},
		xlbv1.Protocol_https: {xlbv1.Persistence_none, xlbv1.Persistence_insert_cookie, xlbv1.Persistence_rewrite_cookie},
	}[proto]
	tp := field(p, "type")
	if ps.Type == xlbv1.Persistence_TYPE_UNSPECIFIED {
		v.add(tp, "required: %s", joinEnums(allowed))
		return
	}
	ok := false
	for _, a := range allowed {
		ok = ok || a == ps.Type
	}
	if !ok {
		v.add(tp, "%s is not available on %s listeners (%s: %s)", ps.Type, proto, proto, joinEnums(allowed))
		return
	}
	timeout, cookie := field(p, "timeout"), field(p, "cookie")
	switch ps.Type {
	case xlbv1.Persistence_source_ip:
		v.checkDuration(timeout, ps.Timeout, time.Second, maxSourceIPTime)
	case xlbv1.Persistence_insert_cookie:
		v.checkDuration(timeout, ps.Timeout, time.Second, maxCookieTime)
	default:
		if ps.Timeout != nil {
			v.add(timeout, "only source_ip and insert_cookie persistence have a timeout")
		}
	}
	switch ps.Type {
	case xlbv1.Persistence_rewrite_cookie:
		if ps.Cookie == "" {
			v.add(cookie, "required for rewrite_cookie: the name of the backend's cookie (e.g. JSESSIONID)")
			break
		}
		fallthrough
	case xlbv1.Persistence_insert_cookie:
		if !validToken(ps.Cookie) {
			v.add(cookie, "%q is not a valid cookie name (RFC 6265: visible ASCII except ()<>@,;:\\\"/[]?={} and space)", ps.Cookie)
		}
	default:
		if ps.Cookie != "" {
			v.add(cookie, "only insert_cookie and rewrite_cookie persistence use a cookie")
		}
	}
}

func joinEnums[E fmt.Stringer](es []E) string {
	s := make([]string, len(es))
	for i, e := range es {
		s[i] = e.String()
	}
	return strings.Join(s, ", ")
}

// validToken reports whether s is an RFC 2616 token, as RFC 6265 requires of
// a cookie name.
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`()<>@,;:\"/[]?={}`, c) >= 0 {
			return false
		}
	}
	return true
}

func (v *validator) rules(p string, rules []*xlbv1.Rule, proto xlbv1.Protocol) {
	if len(rules) > maxRules {
		v.add(p, "%d rules; a listener has at most %d", len(rules), maxRules)
	}
	type match struct{ domain, path string }
	seen := map[match]int{}
	for k, r := range rules {
		rp := index(p, k)
		if r.Domain == "" && r.Path == "" {
			v.add(rp, "a rule needs a domain, a path or both")
		}
		if r.Domain != "" {
			if err := checkDomainPattern(r.Domain); err != nil {
				v.add(field(rp, "domain"), "%v", err)
			}
		}
		if r.Path != "" && !strings.HasPrefix(r.Path, "/") {
			v.add(field(rp, "path"), "%q must start with \"/\"", r.Path)
		} else if strings.ContainsAny(r.Path, " \t\r\n?#") {
			v.add(field(rp, "path"), "%q is not a path prefix: no spaces, '?' or '#'", r.Path)
		}
		if r.ServerGroup == "" {
			v.add(field(rp, "server_group"), "required: the group the matching requests go to")
		} else {
			v.groupRef(field(rp, "server_group"), r.ServerGroup, proto)
		}
		m := match{strings.ToLower(r.Domain), r.Path}
		if first, dup := seen[m]; dup {
			v.add(rp, "domain %q and path %q are already used by rules[%d]", r.Domain, r.Path, first)
			continue
		}
		seen[m] = k
	}
}

// checkDomainPattern accepts a host name or a wildcard whose only wildcard
// is a leading "*." label.
func checkDomainPattern(d string) error {
	host, wildcard := strings.CutPrefix(d, "*.")
	if strings.Contains(host, "*") {
		return fmt.Errorf("%q: a wildcard is only a leading \"*.\" label, as in *.example.com", d)
	}
	if !validHostname(host) {
		if wildcard {
			return fmt.Errorf("%q: %q is not a valid host name", d, host)
		}
		return fmt.Errorf("%q is not a valid host name", d)
	}
	return nil
}

func (v *validator) redirect(p string, r *xlbv1.RedirectHttps, lb *xlbv1.LoadBalancer) {
	if !v.checkRange(field(p, "port"), uint64(r.Port), 1, 65535) {
		return
	}
	if r.Status != 301 && r.Status != 308 {
		v.add(field(p, "status"), "%d is not 301 or 308", r.Status)
	}
	for _, l := range lb.Listeners {
		if l.Protocol == xlbv1.Protocol_https && l.Port == r.Port {
			return
		}
	}
	v.add(field(p, "port"), "no https listener of this load balancer listens on %d", r.Port)
}
