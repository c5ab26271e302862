package l7

import "testing"

func TestHTTPRouterPrecedence(t *testing.T) {
	rules := []routeRule[string]{
		{domain: "*.example.com", target: "wild"},
		{domain: "*.example.com", path: "/api", target: "wild-api"},
		{domain: "*.b.example.com", target: "wild-b"},
		{domain: "www.example.com", target: "www"},
		{domain: "WWW.Example.com", path: "/api", target: "www-api"},
		{domain: "www.example.com", path: "/api/v2", target: "www-api-v2"},
		{domain: "shop.example.com", path: "/cart", target: "shop-cart"},
		{path: "/static", target: "static"},
		{path: "/static/img", target: "static-img"},
		{domain: "only.paths.org", path: "/x", target: "only-x"},
	}
	rt := newRouter(rules, "default")
	tests := []struct {
		host, path, want, why string
	}{
		{"www.example.com", "/", "www", "exact domain beats wildcard"},
		{"www.example.com", "/api/users", "www-api", "domain+path beats domain only"},
		{"www.example.com", "/api/v2/x", "www-api-v2", "longest path prefix wins"},
		{"www.example.com", "/apix", "www-api", "a prefix is a byte prefix"},
		{"a.example.com", "/", "wild", "wildcard matches one label"},
		{"a.b.c.example.com", "/", "wild", "wildcard matches several labels"},
		{"x.b.example.com", "/", "wild-b", "the longer wildcard suffix wins"},
		{"x.b.example.com", "/api", "wild-b", "a more specific domain beats a path on a broader one"},
		{"a.example.com", "/api/1", "wild-api", "wildcard+path beats wildcard only"},
		{"example.com", "/", "default", "a wildcard needs at least one label"},
		{"shop.example.com", "/cart/1", "shop-cart", "exact domain with path"},
		{"shop.example.com", "/other", "wild", "exact domain without a matching path falls to the wildcard"},
		{"shop.example.com", "/static/a", "wild", "domain rules come before path-only rules"},
		{"other.org", "/static/a.css", "static", "path-only rule for any domain"},
		{"other.org", "/static/img/a.png", "static-img", "path-only: longest prefix"},
		{"only.paths.org", "/y", "default", "no match: the default"},
		{"only.paths.org", "/static", "static", "exact domain without a match falls to path-only rules"},
		{"", "/", "default", "no host"},
	}
	for _, tc := range tests {
		if got := rt.route([]byte(tc.host), []byte(tc.path)); got != tc.want {
			t.Errorf("%s%s -> %q, want %q (%s)", tc.host, tc.path, got, tc.want, tc.why)
		}
	}
}

func TestHTTPNormalizeHost(t *testing.T) {
	tests := []struct{ in, want string }{
		{"WWW.Example.COM", "www.example.com"},
		{"www.example.com:8080", "www.example.com"},
		{"www.example.com.", "www.example.com"},
		{"[2001:DB8::1]:80", "[2001:db8::1]"},
		{"", ""},
	}
	var buf [256]byte
	for _, tc := range tests {
		if got := normalizeHost(buf[:0], []byte(tc.in)); string(got) != tc.want {
			t.Errorf("normalizeHost(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	long := make([]byte, 300)
	for i := range long {
		long[i] = 'a'
	}
	if got := normalizeHost(buf[:0], long); len(got) != 0 {
		t.Errorf("a host longer than the buffer normalizes to %d bytes, want none (no match)", len(got))
	}
}

func TestHTTPRouteAllocatesNothing(t *testing.T) {
	rt := newRouter([]routeRule[string]{
		{domain: "www.example.com", path: "/api", target: "a"},
		{domain: "*.example.com", target: "w"},
		{path: "/s", target: "s"},
	}, "d")
	host, path := []byte("x.y.example.com"), []byte("/s/x")
	var buf [256]byte
	if n := testing.AllocsPerRun(100, func() {
		rt.route(normalizeHost(buf[:0], host), path)
	}); n != 0 {
		t.Errorf("route allocates %v times", n)
	}
}
