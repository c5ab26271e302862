package configs_test

import (
	"bytes"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/xlbproject/xlb/configs"
	xlbv1 "github.com/xlbproject/xlb/controlplane/api/xlb/v1"
	"github.com/xlbproject/xlb/controlplane/config"
)

// Every configuration in this directory loads, certificate files included.
func TestEveryConfigLoads(t *testing.T) {
	files, err := filepath.Glob("*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 2 {
		t.Fatalf("found %v; want at least example.yaml and demo.yaml", files)
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			if _, err := config.LoadFile(f); err != nil {
				t.Fatalf("%s:\n%v", f, err)
			}
		})
	}
}

// The lab depends on these exact values of the embedded demo configuration.
func TestDemo(t *testing.T) {
	cfg, err := config.Load(configs.DemoYAML(), ".")
	if err != nil {
		t.Fatal(err)
	}
	if n := cfg.GetNode(); n.GetXdpMode() != xlbv1.XdpMode_auto || strings.Join(n.GetInterfaces(), ",") != "up0,down0" ||
		n.GetControl().GetListen() != "unix:///run/xlb/xlb.sock" || n.GetMetrics().GetListen() != "127.0.0.1:9100" {
		t.Errorf("node = %v", n)
	}
	if len(cfg.LoadBalancers) != 1 {
		t.Fatalf("%d load balancers, want 1", len(cfg.LoadBalancers))
	}
	lb := cfg.LoadBalancers[0]
	if lb.Id != "lb-demo" || lb.Address != "198.18.0.10" || lb.Spec != "slb.s1.small" {
		t.Errorf("load balancer %s at %s, spec %s", lb.Id, lb.Address, lb.Spec)
	}
	var pool []string
	for _, s := range lb.Servers {
		pool = append(pool, fmt.Sprintf("%s/%d", s.Address, s.GetWeight()))
	}
	if got, want := pool, []string{"198.19.0.11/100", "198.19.0.12/100", "198.19.0.13/50"}; !slices.Equal(got, want) {
		t.Errorf("default pool = %v, want %v", got, want)
	}
	type listener struct {
		proto       xlbv1.Protocol
		port, bport uint32
		sched       xlbv1.Scheduler
		check       xlbv1.HealthCheck_Type
	}
	want := []listener{
		{xlbv1.Protocol_tcp, 7000, 7000, xlbv1.Scheduler_wrr, xlbv1.HealthCheck_tcp},
		{xlbv1.Protocol_udp, 7001, 7001, xlbv1.Scheduler_rr, xlbv1.HealthCheck_udp},
		{xlbv1.Protocol_http, 80, 8080, xlbv1.Scheduler_wrr, xlbv1.HealthCheck_http},
		{xlbv1.Protocol_https, 443, 8080, xlbv1.Scheduler_wrr, xlbv1.HealthCheck_http},
	}
	if len(lb.Listeners) != len(want) {
		t.Fatalf("%d listeners, want %d", len(lb.Listeners), len(want))
	}
	for i, l := range lb.Listeners {
		got := listener{l.Protocol, l.Port, l.BackendPort, l.Scheduler, l.HealthCheck.GetType()}
		if got != want[i] {
			t.Errorf("listeners[%d] = %+v, want %+v", i, got, want[i])
		}
	}
	udp := lb.Listeners[1].HealthCheck
	if udp.Request != "health" || udp.Response != "ok" {
		t.Errorf("udp check sends %q and expects %q; the lab's backends answer \"health\" with \"ok\"", udp.Request, udp.Response)
	}
	web := lb.Listeners[2]
	if web.Persistence.GetType() != xlbv1.Persistence_insert_cookie || !web.Gzip || web.HealthCheck.Path != "/health" ||
		len(web.Rules) != 1 || web.Rules[0].Domain != "api.demo.test" || web.Rules[0].ServerGroup != "api" {
		t.Errorf("http listener = %v", web)
	}
	if h := web.Headers; !h.GetXForwardedFor() || !h.GetXForwardedProto() || !h.GetLbIp() || !h.GetLbId() {
		t.Errorf("headers = %v, want all", h)
	}
}

// The demo's https listener serves HTTP/3 with the inline certificate.
func TestDemoHTTPS(t *testing.T) {
	cfg, err := config.Load(configs.DemoYAML(), ".")
	if err != nil {
		t.Fatal(err)
	}
	l := cfg.LoadBalancers[0].Listeners[3]
	if !l.Http3 || len(l.Tls.GetCertificates()) != 1 || l.Tls.Certificates[0] != "demo-web" ||
		len(cfg.Certificates) != 1 || cfg.Certificates[0].CertPem == "" || cfg.Certificates[0].KeyPem == "" {
		t.Errorf("https listener %v, certificates %d", l, len(cfg.Certificates))
	}
}

func TestDemoYAMLIsACopy(t *testing.T) {
	a := configs.DemoYAML()
	a[0] ^= 0xff
	if b := configs.DemoYAML(); bytes.Equal(a, b) {
		t.Fatal("changing one DemoYAML result changed the next one")
	}
}
