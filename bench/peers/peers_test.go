package peers

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xlbproject/xlb/internal/labsvc"
	"github.com/xlbproject/xlb/internal/netlab"
)

var threeBackends = []Backend{
	{Name: "be1", IP: "198.19.0.11", Port: 8080},
	{Name: "be2", IP: "198.19.0.12", Port: 8080},
	{Name: "be3", IP: "198.19.0.13", Port: 8080},
}

func TestRenderHTTPProxies(t *testing.T) {
	p := HTTPProxy{Listen: "198.18.0.10:80", Backends: threeBackends, CPU: 1, RunDir: "/run/x"}
	tests := []struct {
		name   string
		render func(HTTPProxy) ([]byte, error)
		want   []string
	}{
		{"haproxy", RenderHAProxy, []string{
			"nbthread 1", "cpu-map 1/1 1", "maxconn 8000", "http-reuse always", "option http-keep-alive",
			"bind 198.18.0.10:80", "server be1 198.19.0.11:8080", "server be3 198.19.0.13:8080",
			"pidfile /run/x/haproxy.pid",
		}},
		{"nginx", RenderNGINX, []string{
			"worker_processes 1;", "worker_cpu_affinity 10;", "keepalive 64;", "proxy_http_version 1.1;",
			`proxy_set_header Connection "";`, "access_log off;", "sendfile on;", "tcp_nodelay on;",
			"listen 198.18.0.10:80;", "server 198.19.0.12:8080;", "worker_connections 8000;", "worker_rlimit_nofile 16100;",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.render(p)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if !strings.Contains(string(b), w) {
					t.Errorf("config lacks %q:\n%s", w, b)
				}
			}
			if strings.Contains(string(b), "<no value>") {
				t.Errorf("config has an unfilled field:\n%s", b)
			}
			if _, err := tt.render(HTTPProxy{RunDir: "rel"}); err == nil {
				t.Error("an empty config renders without error")
			}
		})
	}
}

func TestCPUMask(t *testing.T) {
	for cpu, want := range map[int]string{0: "1", 1: "10", 3: "1000"} {
		if got := cpuMask(cpu); got != want {
			t.Errorf("cpuMask(%d) = %q, want %q", cpu, got, want)
		}
	}
}

func TestRenderDNAT(t *testing.T) {
	name := NewTableName()
	if !strings.HasPrefix(name, TablePrefix) || len(name) != len(TablePrefix)+8 {
		t.Fatalf("table name %q", name)
	}
	udp := []Backend{{IP: "198.19.0.11", Port: 7001}, {IP: "198.19.0.12", Port: 7001}}
	b, err := RenderDNAT(DNAT{Table: name, Rules: []DNATRule{
		{Proto: "tcp", VIP: "198.18.0.10", Port: 7000, Backends: threeBackends},
		{Proto: "udp", VIP: "198.18.0.10", Port: 7001, Backends: udp, Pick: "random"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{
		"table ip " + name + " {",
		"type nat hook prerouting priority dstnat; policy accept;",
		"ip daddr 198.18.0.10 tcp dport 7000 dnat ip to numgen inc mod 3 map { 0 : 198.19.0.11 . 8080, 1 : 198.19.0.12 . 8080, 2 : 198.19.0.13 . 8080 }",
		"ip daddr 198.18.0.10 udp dport 7001 dnat ip to numgen random mod 2 map { 0 : 198.19.0.11 . 7001, 1 : 198.19.0.12 . 7001 }",
	} {
		if !strings.Contains(string(b), w) {
			t.Errorf("script lacks %q:\n%s", w, b)
		}
	}
	bad := []DNAT{
		{Table: "other", Rules: []DNATRule{{Proto: "tcp", VIP: "198.18.0.10", Port: 1, Backends: udp}}},
		{Table: name},
		{Table: name, Rules: []DNATRule{{Proto: "sctp", VIP: "198.18.0.10", Port: 1, Backends: udp}}},
		{Table: name, Rules: []DNATRule{{Proto: "tcp", VIP: "vip", Port: 1, Backends: udp}}},
		{Table: name, Rules: []DNATRule{{Proto: "tcp", VIP: "198.18.0.10", Port: 1}}},
		{Table: name, Rules: []DNATRule{{Proto: "tcp", VIP: "198.18.0.10", Port: 1, Backends: udp, Pick: "hash"}}},
	}
	for i, d := range bad {
		if _, err := RenderDNAT(d); err == nil {
			t.Errorf("bad DNAT %d renders without error", i)
		}
	}
}

func TestRenderMasquerade(t *testing.T) {
	name := NewTableName()
	b, err := RenderMasquerade(Masquerade{Table: name, Sources: []string{"198.19.0.0/24", "10.0.0.0/8"}, OutIface: "up0"})
	if err != nil {
		t.Fatal(err)
	}
	if w := `ip saddr { 198.19.0.0/24, 10.0.0.0/8 } oifname "up0" masquerade fully-random`; !strings.Contains(string(b), w) {
		t.Errorf("script lacks %q:\n%s", w, b)
	}
	b, err = RenderMasquerade(Masquerade{Table: name, Sources: []string{"198.19.0.0/24"}, OutIface: "up0", To: "198.18.1.1"})
	if err != nil {
		t.Fatal(err)
	}
	if w := `snat ip to 198.18.1.1 fully-random`; !strings.Contains(string(b), w) {
		t.Errorf("script lacks %q:\n%s", w, b)
	}
	if _, err := RenderMasquerade(Masquerade{Table: name, Sources: []string{"nope"}, OutIface: "x"}); err == nil {
		t.Error("bad source renders without error")
	}
}

func TestParseTables(t *testing.T) {
	out := `{"nftables": [{"metainfo": {"version": "1.0.6"}}, {"table": {"family": "ip", "name": "xlbbench_01", "handle": 1}}, {"table": {"family": "inet", "name": "filter", "handle": 2}}]}`
	got, err := parseTables([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "xlbbench_01,filter" {
		t.Errorf("tables %v", got)
	}
	if _, err := parseTables([]byte("table ip x")); err == nil {
		t.Error("text output parses as JSON")
	}
}

// needBinary fails (CI=true) or skips when a peer is not installed.
func needBinary(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s not installed: %v", name, err)
		}
		t.Skipf("%s not installed", name)
	}
}

// TestHTTPPeersServeThroughTheLab runs each L7 peer in a lab's gateway, sends
// a request through it from the client, and checks that Stop leaves no
// process of its group behind.
func TestHTTPPeersServeThroughTheLab(t *testing.T) {
	lab := netlab.New(t, netlab.ClientGatewayBackends(2))
	bs, err := labsvc.StartBackends(context.Background(), lab, 2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bs.Close() })
	backends := threeBackends[:2]
	for i, start := range map[string]func(context.Context, Lab, string, HTTPProxy) (*Proc, error){
		"haproxy": StartHAProxy, "nginx": StartNGINX,
	} {
		t.Run(i, func(t *testing.T) {
			needBinary(t, i)
			ctx := context.Background()
			port := map[string]int{"haproxy": 80, "nginx": 81}[i]
			p := HTTPProxy{Listen: fmt.Sprintf("%s:%d", netlab.VIP, port), Backends: backends, CPU: 0, RunDir: t.TempDir()}
			proc, err := start(ctx, lab, netlab.HostGateway, p)
			if err != nil {
				t.Fatal(err)
			}
			defer proc.Stop(5 * time.Second)
			client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DialContext: lab.Dialer(netlab.HostClient)}}
			seen := map[string]bool{}
			deadline := time.Now().Add(10 * time.Second)
			for len(seen) < 2 && time.Now().Before(deadline) {
				resp, err := client.Get(fmt.Sprintf("http://%s:%d/", netlab.VIP, port))
				if err != nil {
					time.Sleep(50 * time.Millisecond)
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				seen[strings.TrimSpace(string(b))] = true
			}
			if !seen["be1"] || !seen["be2"] {
				log, _ := os.ReadFile(proc.Log)
				t.Fatalf("%s answered from %v, want be1 and be2; log:\n%s", i, seen, log)
			}
			pgid := proc.PID()
			if err := proc.Stop(5 * time.Second); err != nil {
				t.Fatal(err)
			}
			if err := syscall.Kill(-pgid, 0); err == nil {
				t.Errorf("process group %d of %s still has members after Stop", pgid, i)
			}
		})
	}
}

// TestDNATTableLifecycle installs a DNAT table in a lab, checks nftables
// accepts it and it forwards, then deletes it.
func TestDNATTableLifecycle(t *testing.T) {
	needBinary(t, "nft")
	lab := netlab.New(t, netlab.ClientGatewayBackends(1))
	ctx := context.Background()
	bs, err := labsvc.StartBackends(ctx, lab, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bs.Close() })
	name := NewTableName()
	script, err := RenderDNAT(DNAT{Table: name, Rules: []DNATRule{
		{Proto: "tcp", VIP: netlab.VIP, Port: 9000, Backends: []Backend{{IP: netlab.BackendIP(1), Port: labsvc.HTTPPort}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := InstallTable(ctx, lab, netlab.HostGateway, name, script)
	if err != nil {
		t.Fatal(err)
	}
	if err := TuneConntrack(ctx, lab, netlab.HostGateway); err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DialContext: lab.Dialer(netlab.HostClient)}}
	resp, err := client.Get("http://" + netlab.VIP + ":9000/")
	if err != nil {
		t.Fatalf("request through the DNAT table: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.TrimSpace(string(b)) != "be1" {
		t.Errorf("DNAT answered %q, want be1", b)
	}
	if err := tbl.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	if err := tbl.Delete(ctx); err != nil {
		t.Errorf("second Delete: %v", err)
	}
	names, err := ListTables(ctx, lab, netlab.HostGateway)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if n == name {
			t.Errorf("table %s still listed after Delete", name)
		}
	}
}
