package reconcile

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/xlbproject/xlb/configs"
	xlbv1 "github.com/xlbproject/xlb/controlplane/api/xlb/v1"
	"github.com/xlbproject/xlb/controlplane/config"
	"github.com/xlbproject/xlb/dataplane/certs/certstest"
	"github.com/xlbproject/xlb/dataplane/l7"
	"github.com/xlbproject/xlb/dataplane/pool"
)

// loadConfig loads yaml from a directory holding web.crt and web.key, a
// server certificate the configurations may name.
func loadConfig(t *testing.T, yaml string) *xlbv1.Config {
	t.Helper()
	dir := t.TempDir()
	p := certstest.NewServer(t, nil, "www.example.com")
	if err := os.WriteFile(filepath.Join(dir, "web.crt"), p.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "web.key"), p.KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load([]byte(yaml), dir)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg
}

const l7Config = `
node: {xdp_mode: off}
server_groups:
  - id: api
    servers: [{address: 10.0.2.10, port: 9000, weight: 50}, {address: 10.0.2.11}]
  - id: web
    servers: [{address: 10.0.3.10}]
load_balancers:
  - id: lb-web
    address: 203.0.113.10
    servers: [{address: 10.0.1.10}, {address: 10.0.1.11, weight: 0}]
    listeners:
      - protocol: http
        port: 80
        backend_port: 8080
        scheduler: wlc
        persistence: {type: insert_cookie}
        headers: {x_forwarded_for: true, lb_id: true}
        gzip: true
        acl: {mode: deny, cidrs: [192.0.2.0/24]}
        timeouts: {idle: 30s, connect: 2s, request: 10s}
        rules:
          - {domain: www.example.com, path: /api, server_group: api}
          - {domain: "*.example.com", server_group: web}
          - {path: /static, server_group: web}
      - {protocol: http, port: 81, server_group: web, enabled: false,
         persistence: {type: rewrite_cookie, cookie: JSESSIONID}}
      - {protocol: http, port: 82, redirect_https: {port: 443}}
      - {protocol: https, port: 443, backend_port: 8080, tls: {certificates: [web]}}
      - {protocol: tcp, port: 7000}
certificates:
  - {id: web, type: server, cert_file: web.crt, key_file: web.key}
`

func TestCompileL7(t *testing.T) {
	cfg := loadConfig(t, l7Config)
	backends := NewBackends()
	out, err := CompileL7(cfg, backends, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Listeners) != 4 {
		t.Fatalf("%d listeners compiled, want the 3 http ones and the https one (tcp is not this engine's)", len(out.Listeners))
	}
	h := out.Listeners[3]
	if h.Name != "lb-web/https/443" || h.TLS == nil || len(h.TLS.Certificates) != 1 || h.TLS.Certificates[0].ID != "web" ||
		h.TLS.Certificates[0].Leaf().DNSNames[0] != "www.example.com" || h.TLS.MinVersion != tls.VersionTLS12 || h.HTTP3 {
		t.Errorf("https listener %q: tls %+v http3 %v", h.Name, h.TLS, h.HTTP3)
	}
	l := out.Listeners[0]
	if l.Name != "lb-web/http/80" || l.LB != "lb-web" || l.Addr != netip.MustParseAddrPort("203.0.113.10:80") {
		t.Errorf("identity: %q %q %v", l.Name, l.LB, l.Addr)
	}
	wantDefault := pool.Config{Scheduler: pool.WLC, Servers: []pool.Server{
		{Addr: netip.MustParseAddr("10.0.1.10"), Port: 8080, Weight: 100},
		{Addr: netip.MustParseAddr("10.0.1.11"), Port: 8080, Weight: 0},
	}}
	if !equalPool(l.Default, wantDefault) {
		t.Errorf("default pool %+v, want %+v", l.Default, wantDefault)
	}
	api := l.Groups["api"]
	if api.Scheduler != pool.WLC || len(api.Servers) != 2 || api.Servers[0].Port != 9000 || api.Servers[0].Weight != 50 ||
		api.Servers[1].Port != 8080 || api.Servers[1].Weight != 100 {
		t.Errorf("api group pool %+v: want the listener's scheduler and backend_port for servers without a port", api)
	}
	if len(l.Groups) != 2 || len(l.Rules) != 3 || l.Rules[0] != (l7.Rule{Domain: "www.example.com", Path: "/api", Group: "api"}) ||
		l.Rules[2] != (l7.Rule{Path: "/static", Group: "web"}) {
		t.Errorf("rules %+v groups %v", l.Rules, l.Groups)
	}
	if l.Persistence != (l7.Persistence{Mode: l7.InsertCookie, Cookie: "XLBSERVERID", Timeout: 1800 * time.Second}) {
		t.Errorf("persistence %+v: want insert_cookie with the defaults", l.Persistence)
	}
	if l.Headers != (l7.Headers{XForwardedFor: true, LBID: true}) || !l.Gzip || l.Stopped {
		t.Errorf("headers %+v gzip %v stopped %v", l.Headers, l.Gzip, l.Stopped)
	}
	if l.ACL == nil || l.ACL.Allowed(netip.MustParseAddr("192.0.2.7")) || !l.ACL.Allowed(netip.MustParseAddr("198.51.100.1")) {
		t.Error("acl not compiled as deny 192.0.2.0/24")
	}
	if l.Timeouts != (l7.Timeouts{Idle: 30 * time.Second, Connect: 2 * time.Second, Request: 10 * time.Second}) {
		t.Errorf("timeouts %+v", l.Timeouts)
	}

	g := out.Listeners[1]
	if !g.Stopped || g.Default.Servers[0].Addr != netip.MustParseAddr("10.0.3.10") || g.Default.Servers[0].Port != 81 {
		t.Errorf("listener with a group: stopped %v pool %+v", g.Stopped, g.Default)
	}
	if g.Persistence != (l7.Persistence{Mode: l7.RewriteCookie, Cookie: "JSESSIONID"}) {
		t.Errorf("rewrite persistence %+v", g.Persistence)
	}
	if r := out.Listeners[2].RedirectHTTPS; r == nil || *r != (l7.Redirect{Port: 443, Status: 301}) {
		t.Errorf("redirect %+v", r)
	}
	// Same health check as an L4 listener on the same servers: one registry,
	// so one Backend (health, active count) for both engines.
	l4cfg, err := CompileL4(cfg, backends, Placement{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if l4cfg.Listeners[0].Registry != l.Registry {
		t.Error("http and tcp listeners with the same check do not share a backend registry")
	}
}

func equalPool(a, b pool.Config) bool {
	if a.Type != b.Type || a.Scheduler != b.Scheduler || a.Persistence != b.Persistence || len(a.Servers) != len(b.Servers) {
		return false
	}
	for i := range a.Servers {
		if a.Servers[i] != b.Servers[i] {
			return false
		}
	}
	return true
}

func TestCompileL7Errors(t *testing.T) {
	base := func() *xlbv1.Config {
		return loadConfig(t, `
node: {xdp_mode: off}
server_groups: [{id: g, servers: [{address: 10.0.0.1}]}]
load_balancers:
  - id: lb
    address: 203.0.113.10
    servers: [{address: 10.0.1.10}]
    listeners:
      - {protocol: http, port: 80, rules: [{path: /a, server_group: g}]}
`)
	}
	tests := []struct {
		name   string
		mutate func(*xlbv1.Config)
		want   string
	}{
		{"bad vip", func(c *xlbv1.Config) { c.LoadBalancers[0].Address = "nope" }, "load_balancers[0].address"},
		{"rule group missing", func(c *xlbv1.Config) { c.LoadBalancers[0].Listeners[0].Rules[0].ServerGroup = "x" },
			"load_balancers[0].listeners[0].rules[0].server_group"},
		{"listener group missing", func(c *xlbv1.Config) { c.LoadBalancers[0].Listeners[0].ServerGroup = "x" },
			"load_balancers[0].listeners[0].server_group"},
		{"bad server address", func(c *xlbv1.Config) { c.ServerGroups[0].Servers[0].Address = "x" },
			"load_balancers[0].listeners[0].rules[0] (server group \"g\"): servers[0].address"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base()
			tc.mutate(cfg)
			_, err := CompileL7(cfg, NewBackends(), nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want it to name %s", err, tc.want)
			}
		})
	}
}

// TestL7AdapterServesThroughReconciler applies a configuration through the
// reconciler to a real engine and fetches from it.
func TestL7AdapterServesThroughReconciler(t *testing.T) {
	backend := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "via "+r.Header.Get("X-Lb-Id"))
	})}
	bl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = backend.Serve(bl) }()
	t.Cleanup(func() { _ = backend.Close() })
	front, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := front.Addr().(*net.TCPAddr).Port
	front.Close()

	e, err := l7.New(prometheus.NewRegistry(), nil, l7.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		e.Drain(ctx)
	})
	r := New(NewL7(e, NewBackends(), nil))
	cfg := loadConfig(t, `
node: {xdp_mode: off}
load_balancers:
  - id: lb-test
    address: 127.0.0.1
    servers: [{address: 127.0.0.1, port: `+itoa(bl.Addr().(*net.TCPAddr).Port)+`}]
    listeners:
      - {protocol: http, port: `+itoa(port)+`, headers: {lb_id: true}, health_check: {enabled: false}}
`)
	if _, err := r.Apply(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://127.0.0.1:" + itoa(port) + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "via lb-test" {
		t.Errorf("answer %q, want %q", body, "via lb-test")
	}
}

// TestL7ReloadSwapsCertificate: a new certificate file and a reload give
// new handshakes the new certificate; the open connection keeps working.
func TestL7ReloadSwapsCertificate(t *testing.T) {
	backend := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "proto "+r.Header.Get("X-Forwarded-Proto"))
	})}
	bl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = backend.Serve(bl) }()
	t.Cleanup(func() { _ = backend.Close() })
	front, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := itoa(front.Addr().(*net.TCPAddr).Port)
	front.Close()
	e, err := l7.New(prometheus.NewRegistry(), nil, l7.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		e.Drain(ctx)
	})
	r := New(NewL7(e, NewBackends(), nil))
	dir := t.TempDir()
	ca := certstest.NewCA(t, "ca")
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	yaml := []byte(`
node: {xdp_mode: off}
certificates: [{id: web, type: server, cert_file: web.crt, key_file: web.key}]
load_balancers:
  - id: lb-test
    address: 127.0.0.1
    servers: [{address: 127.0.0.1, port: ` + itoa(bl.Addr().(*net.TCPAddr).Port) + `}]
    listeners:
      - {protocol: https, port: ` + port + `, headers: {x_forwarded_proto: true}, health_check: {enabled: false},
         tls: {certificates: [web]}}
`)
	apply := func() *certstest.Pair {
		t.Helper()
		p := certstest.NewServer(t, ca, "www.example.com")
		if err := os.WriteFile(filepath.Join(dir, "web.crt"), p.CertPEM, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "web.key"), p.KeyPEM, 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := config.Load(yaml, dir)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Apply(context.Background(), cfg); err != nil {
			t.Fatal(err)
		}
		return p
	}
	first := apply()
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "www.example.com"}}}
	get := func() (string, *x509.Certificate) {
		t.Helper()
		resp, err := c.Get("https://127.0.0.1:" + port + "/")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return string(body), resp.TLS.PeerCertificates[0]
	}
	if body, cert := get(); body != "proto https" || !cert.Equal(first.Cert) {
		t.Fatalf("before the reload: %q, certificate %v", body, cert.SerialNumber)
	}
	second := apply()
	if body, cert := get(); body != "proto https" || !cert.Equal(first.Cert) {
		t.Errorf("the open connection after the reload: %q, certificate %v", body, cert.SerialNumber)
	}
	c.CloseIdleConnections()
	if body, cert := get(); body != "proto https" || !cert.Equal(second.Cert) {
		t.Errorf("a new connection after the reload: %q, not the new certificate", body)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// The shipped configurations compile for the HTTP engine.
func TestCompileL7ShippedConfigs(t *testing.T) {
	demo, err := config.Load(configs.DemoYAML(), "../../configs")
	if err != nil {
		t.Fatal(err)
	}
	example, err := config.LoadFile("../../configs/example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for name, cfg := range map[string]*xlbv1.Config{"demo": demo, "example": example} {
		out, err := CompileL7(cfg, NewBackends(), nil)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if len(out.Listeners) == 0 {
			t.Errorf("%s: no http listener compiled", name)
		}
	}
}
