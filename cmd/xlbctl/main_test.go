package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xlbproject/xlb/bench/serve"
	"github.com/xlbproject/xlb/dataplane/certs/certstest"
	"github.com/xlbproject/xlb/internal/daemon"
)

// lab is an xlbd (in this process) with a tcp listener on loopback over
// one echo backend, and its control socket.
type lab struct {
	t    *testing.T
	dir  string
	sock string
	port int // the listener
	be   int // the backend's port
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func (l *lab) file(name, scheduler string, port int) string {
	path := filepath.Join(l.dir, name)
	cfg := fmt.Sprintf(`node: {xdp_mode: off}
load_balancers:
  - id: lb
    address: 127.0.0.1
    servers: [{address: 127.0.0.1, port: %d}]
    listeners:
      - {protocol: tcp, port: %d, scheduler: %s, health_check: {enabled: false}}
`, l.be, port, scheduler)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		l.t.Fatal(err)
	}
	return path
}

func startLab(t *testing.T) *lab {
	t.Helper()
	be := listen(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = serve.NewTCPEcho("one").Serve(ctx, be) }()
	t.Cleanup(func() { cancel(); <-done })

	pl := listen(t)
	port := pl.Addr().(*net.TCPAddr).Port
	pl.Close()
	l := &lab{t: t, dir: t.TempDir(), port: port, be: be.Addr().(*net.TCPAddr).Port}
	l.sock = filepath.Join(l.dir, "xlb.sock")
	d, err := daemon.New(daemon.Options{
		ConfigPath: l.file("xlb.yaml", "wrr", port), MetricsListen: "off", DrainTimeout: time.Second,
		StateDir: filepath.Join(l.dir, "state"), ControlListen: "unix://" + l.sock,
	})
	if err != nil {
		t.Fatal(err)
	}
	dctx, stop := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- d.Run(dctx) }()
	t.Cleanup(func() {
		stop()
		if err := <-ran; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, _, code := l.ctl("get"); code == 0 {
			return l
		}
		if time.Now().After(deadline) {
			t.Fatal("xlbd never answered on its socket")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ctl runs xlbctl against the lab's socket.
func (l *lab) ctl(args ...string) (string, string, int) {
	var out, errOut bytes.Buffer
	code := run(append([]string{"--socket", l.sock}, args...), &out, &errOut)
	return out.String(), errOut.String(), code
}

func (l *lab) ok(args ...string) string {
	l.t.Helper()
	out, errOut, code := l.ctl(args...)
	if code != 0 {
		l.t.Fatalf("xlbctl %v: exit %d\n%s%s", args, code, out, errOut)
	}
	return out
}

func want(t *testing.T, what, text string, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if !strings.Contains(text, s) {
			t.Errorf("%s lacks %q:\n%s", what, s, text)
		}
	}
}

func TestConfigCommands(t *testing.T) {
	l := startLab(t)
	listener := fmt.Sprintf("tcp/%d", l.port)
	want(t, "get", l.ok("get"), "version 1", "file ", "lb", "127.0.0.1", listener, "wrr")

	var doc map[string]any
	if err := json.Unmarshal([]byte(l.ok("get", "-o", "json")), &doc); err != nil {
		t.Fatalf("get -o json is not JSON: %v", err)
	}
	if doc["info"].(map[string]any)["version"] != "1" {
		t.Errorf("get -o json: info %v", doc["info"])
	}

	// get -o yaml is a file apply takes back: no changes.
	exported := filepath.Join(l.dir, "exported.yaml")
	if err := os.WriteFile(exported, []byte(l.ok("get", "-o", "yaml")), 0o600); err != nil {
		t.Fatal(err)
	}
	want(t, "apply of get -o yaml", l.ok("apply", "-f", exported), "version 1: no changes")
	if _, _, code := l.ctl("stats", "-o", "yaml"); code != 2 {
		t.Errorf("stats -o yaml: exit %d, want 2", code)
	}

	rr := l.file("rr.yaml", "rr", l.port)
	want(t, "diff", l.ok("diff", "-f", rr), "against version 1", "~ load_balancers[lb].listeners["+listener+"].scheduler: wrr -> rr")
	want(t, "apply", l.ok("apply", "-f", rr, "--comment", "rr now"), "version 2 applied", "scheduler: wrr -> rr")
	want(t, "apply again", l.ok("apply", "-f", rr), "version 2: no changes")

	// Invalid: every field named, nothing applied.
	bad := filepath.Join(l.dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("load_balancers: [{id: lb, address: nope, listeners: [{protocol: tcp, port: 0}]}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := l.ctl("apply", "-f", bad)
	if code != 1 {
		t.Errorf("apply of an invalid file: exit %d, want 1", code)
	}
	want(t, "invalid apply", errOut, "InvalidArgument", "load_balancers[0].address", "load_balancers[0].listeners[0].port")
	// A stale version.
	_, errOut, code = l.ctl("apply", "-f", l.file("wlc.yaml", "wlc", l.port), "--expect-version", "1")
	if code != 1 {
		t.Errorf("stale apply: exit %d, want 1", code)
	}
	want(t, "stale apply", errOut, "Aborted", "expected version 1", "current one is 2")

	want(t, "rollback", l.ok("rollback", "1"), "version 3 applied", "rr -> wrr")
	want(t, "versions", l.ok("versions"), "3 *", "rollback to 1", "api apply", "rr now")
	want(t, "set-weight", l.ok("set-weight", fmt.Sprintf("127.0.0.1:%d", l.be), "40"), "version 4 applied", "weight")
	want(t, "get after set-weight", l.ok("get"), fmt.Sprintf("127.0.0.1:%d*40", l.be))
	_, errOut, code = l.ctl("rollback", "99")
	if code != 1 || !strings.Contains(errOut, "NotFound") {
		t.Errorf("rollback 99: exit %d %s", code, errOut)
	}
	if _, _, code := l.ctl("rollback"); code != 2 {
		t.Errorf("rollback without a version: exit %d, want 2", code)
	}
}

func TestServerStatsAndCertCommands(t *testing.T) {
	l := startLab(t)
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", l.port))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if name, err := serve.WhoAmITCP(ctx, c); err != nil || name != "one" {
		t.Fatalf("through the listener: %q %v", name, err)
	}
	be := fmt.Sprintf("127.0.0.1:%d", l.be)
	want(t, "drain", l.ok("drain", be), be+" drain")
	stats := l.ok("stats")
	want(t, "stats", stats, fmt.Sprintf("lb/tcp/%d", l.port), be, "drain")
	c.Close()
	want(t, "enable", l.ok("enable", "127.0.0.1"), be+" enabled")
	_, errOut, code := l.ctl("drain", "10.9.9.9")
	if code != 1 || !strings.Contains(errOut, "NotFound") {
		t.Errorf("drain of an unknown backend: exit %d %s", code, errOut)
	}
	var st map[string]any
	if err := json.Unmarshal([]byte(l.ok("stats", "-o", "json")), &st); err != nil || st["load_balancers"] == nil {
		t.Errorf("stats -o json: %v %v", st, err)
	}
	want(t, "snat", l.ok("snat"), "no snat pools are configured")

	ca := certstest.NewCA(t, "ca")
	pair := certstest.NewServer(t, ca, "www.example.com")
	certFile, keyFile := filepath.Join(l.dir, "web.pem"), filepath.Join(l.dir, "web.key")
	os.WriteFile(certFile, pair.CertPEM, 0o600)
	os.WriteFile(keyFile, pair.KeyPEM, 0o600)
	want(t, "certs upload", l.ok("certs", "upload", "--id", "web", "--type", "server", "--cert-pem", certFile, "--key-pem", keyFile),
		"version 2", "web", "www.example.com", "yes (not shown)")
	list := l.ok("certs", "list")
	want(t, "certs list", list, "web", "server", "www.example.com")
	for _, out := range []string{list, l.ok("certs", "list", "-o", "json"), l.ok("get", "-o", "json")} {
		if strings.Contains(out, "PRIVATE KEY") {
			t.Errorf("a private key was printed:\n%s", out)
		}
	}
	os.WriteFile(keyFile, []byte("junk"), 0o600)
	_, errOut, code = l.ctl("certs", "upload", "--id", "bad", "--cert-pem", certFile, "--key-pem", keyFile)
	if code != 1 || !strings.Contains(errOut, "certificate.cert_pem") {
		t.Errorf("upload of a bad key: exit %d %s", code, errOut)
	}
	// A configuration exported without the key applies back unchanged.
	exported := filepath.Join(l.dir, "exported.yaml")
	yml := l.ok("get", "-o", "yaml")
	if strings.Contains(yml, "PRIVATE KEY") || !strings.Contains(yml, "BEGIN CERTIFICATE") {
		t.Errorf("get -o yaml: the certificate without its key expected:\n%s", yml)
	}
	if err := os.WriteFile(exported, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	want(t, "apply of get -o yaml with a certificate", l.ok("apply", "-f", exported), "version 2: no changes")
	want(t, "certs delete", l.ok("certs", "delete", "web"), "version 3 applied", "- certificates[web]")
}
