package demo

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDemo runs `make run`'s demo end to end, as a user would, and checks
// what it reports: the weighted shares, the health failover and recovery.
func TestDemo(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("the demo needs root, and CI runs as root")
		}
		t.Skip("needs root")
	}
	bin := filepath.Join(t.TempDir(), "xlbd")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/xlbproject/xlb/cmd/xlbd").CombinedOutput(); err != nil {
		t.Fatalf("building xlbd: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out bytes.Buffer
	rep, err := Run(ctx, Options{Xlbd: bin, Out: &out})
	if err != nil {
		t.Fatalf("demo failed: %v\n%s", err, out.String())
	}
	// wrr 100/100/50 over 50 connections is exact; rr over 50 sessions is 17/17/16.
	if rep.TCP["be1"] != 20 || rep.TCP["be2"] != 20 || rep.TCP["be3"] != 10 {
		t.Errorf("TCP shares %v, want be1=20 be2=20 be3=10", rep.TCP)
	}
	if rep.UDP["be1"]+rep.UDP["be2"]+rep.UDP["be3"] != rounds || rep.UDP["be3"] < 16 {
		t.Errorf("UDP shares %v, want rr over three backends", rep.UDP)
	}
	if rep.TCPWhileDown["be3"] != 0 {
		t.Errorf("be3 got %d connections while its health check said down", rep.TCPWhileDown["be3"])
	}
	if rep.TCPAfterRecovery["be3"] == 0 {
		t.Errorf("be3 got no connections after it recovered: %v", rep.TCPAfterRecovery)
	}
	if len(rep.HTTP) != 3 {
		t.Errorf("new HTTP clients went %v, want all three backends", rep.HTTP)
	}
	if rep.HTTPAPI["be1"] != 0 || rep.HTTPAPI["be2"]+rep.HTTPAPI["be3"] != rounds {
		t.Errorf("requests for api.demo.test went %v, want only the api group (be2, be3)", rep.HTTPAPI)
	}
	if len(rep.HTTPSticky) != 1 {
		t.Errorf("one client with its cookie went %v, want one backend", rep.HTTPSticky)
	}
	for _, proto := range []string{"HTTP/1.1", "HTTP/2.0"} {
		if n := rep.HTTPS[proto]["be1"] + rep.HTTPS[proto]["be2"] + rep.HTTPS[proto]["be3"]; n != rounds/2 || len(rep.HTTPS[proto]) < 2 {
			t.Errorf("new HTTPS clients over %s went %v, want %d answers from several backends", proto, rep.HTTPS[proto], rounds/2)
		}
	}
	if rep.AltSvc != `h3=":443"; ma=86400` {
		t.Errorf("HTTPS answers advertise Alt-Svc %q", rep.AltSvc)
	}
	if n := rep.HTTP3["be1"] + rep.HTTP3["be2"] + rep.HTTP3["be3"]; n != rounds/2 {
		t.Errorf("HTTP/3 answers %v, want %d", rep.HTTP3, rounds/2)
	}
	if rep.SNAT["be1"] != snatPublic || rep.SNAT["be2"] != snatPublic {
		t.Errorf("the outside server saw the SNAT pool's hosts as %v, want %s", rep.SNAT, snatPublic)
	}
	if rep.EIPOut != eipPublic || rep.EIPIn != "198.18.1.2" {
		t.Errorf("EIP: be3 seen outside as %q (want %s); the client seen by be3 as %q (want 198.18.1.2)", rep.EIPOut, eipPublic, rep.EIPIn)
	}
	// The tcp and udp listeners ran on XDP, not on the userspace fallback.
	for _, want := range []string{
		`xlb_xdp_new_flows_total{listener="lb-demo/tcp/7000"} 150`,
		`xlb_xdp_new_flows_total{listener="lb-demo/udp/7001"} 50`,
	} {
		if !strings.Contains(rep.Metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	for _, want := range []string{"where to look", "/metrics", "lab torn down"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
}
