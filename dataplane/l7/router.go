package l7

import (
	"bytes"
	"slices"
	"strings"
)

// router picks the target of a request from its host and path. It is built
// once per configuration and read without locks or allocation: exact
// domains in a map, wildcards in a map by suffix (".example.com") probed
// from the longest suffix of the host down, paths sorted longest first.
type router[T any] struct {
	exact    map[string]*domainRules[T]
	wildcard map[string]*domainRules[T]
	anyHost  []pathRule[T] // rules with a path and no domain
	fallback T
}

// domainRules are the rules of one domain pattern.
type domainRules[T any] struct {
	paths  []pathRule[T] // longest prefix first
	any    T             // the domain-only rule
	hasAny bool
}

type pathRule[T any] struct {
	prefix string
	target T
}

// routeRule is a rule with its target resolved.
type routeRule[T any] struct {
	domain, path string
	target       T
}

func newRouter[T any](rules []routeRule[T], fallback T) *router[T] {
	rt := &router[T]{
		exact:    map[string]*domainRules[T]{},
		wildcard: map[string]*domainRules[T]{},
		fallback: fallback,
	}
	for _, r := range rules {
		domain := strings.ToLower(r.domain)
		if domain == "" {
			rt.anyHost = append(rt.anyHost, pathRule[T]{r.path, r.target})
			continue
		}
		m, key := rt.exact, domain
		if suffix, ok := strings.CutPrefix(domain, "*"); ok {
			m, key = rt.wildcard, suffix // ".example.com"
		}
		d := m[key]
		if d == nil {
			d = &domainRules[T]{}
			m[key] = d
		}
		if r.path == "" {
			d.any, d.hasAny = r.target, true
		} else {
			d.paths = append(d.paths, pathRule[T]{r.path, r.target})
		}
	}
	byLength := func(a, b pathRule[T]) int { return len(b.prefix) - len(a.prefix) }
	slices.SortStableFunc(rt.anyHost, byLength)
	for _, m := range []map[string]*domainRules[T]{rt.exact, rt.wildcard} {
		for _, d := range m {
			slices.SortStableFunc(d.paths, byLength)
		}
	}
	return rt
}

// route returns the target for host (lower case, without port) and path.
func (rt *router[T]) route(host, path []byte) T {
	if len(rt.exact) > 0 {
		if d := rt.exact[string(host)]; d != nil {
			if t, ok := d.match(path); ok {
				return t
			}
		}
	}
	if len(rt.wildcard) > 0 {
		// ".b.example.com", then ".example.com", then ".com": the most
		// specific wildcard first; a wildcard needs at least one label.
		for i := 1; i < len(host); i++ {
			if host[i] != '.' {
				continue
			}
			if d := rt.wildcard[string(host[i:])]; d != nil {
				if t, ok := d.match(path); ok {
					return t
				}
			}
		}
	}
	if t, ok := matchPath(rt.anyHost, path); ok {
		return t
	}
	return rt.fallback
}

func (d *domainRules[T]) match(path []byte) (T, bool) {
	if t, ok := matchPath(d.paths, path); ok {
		return t, true
	}
	return d.any, d.hasAny
}

func matchPath[T any](rules []pathRule[T], path []byte) (T, bool) {
	for _, r := range rules {
		if len(path) >= len(r.prefix) && string(path[:len(r.prefix)]) == r.prefix {
			return r.target, true
		}
	}
	var zero T
	return zero, false
}

// normalizeHost lowers host into dst and strips a port: the key the router
// is probed with. A host longer than dst is returned truncated to nothing,
// which matches no domain rule.
func normalizeHost(dst []byte, host []byte) []byte {
	if len(host) > 0 && host[0] == '[' {
		if i := bytes.IndexByte(host, ']'); i > 0 {
			host = host[:i+1]
		}
	} else if i := bytes.LastIndexByte(host, ':'); i >= 0 {
		host = host[:i]
	}
	if len(host) > 0 && host[len(host)-1] == '.' {
		host = host[:len(host)-1] // "example.com." is example.com
	}
	if len(host) > cap(dst) {
		return dst[:0]
	}
	dst = dst[:len(host)]
	for i, c := range host {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst[i] = c
	}
	return dst
}
