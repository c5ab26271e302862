package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	xlbv1 "github.com/xlbproject/xlb/controlplane/api/xlb/v1"
	"github.com/xlbproject/xlb/controlplane/client"
	"github.com/xlbproject/xlb/controlplane/config"
	"github.com/xlbproject/xlb/dataplane/certs/certstest"
)

// running is a daemon in Run with a client on its control socket.
type running struct {
	d      *Daemon
	c      *client.Client
	cancel context.CancelFunc
	done   chan error
}

func runWithControl(t *testing.T, opts Options) *running {
	t.Helper()
	d, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{d: d, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- d.Run(ctx) }()
	sock := strings.TrimPrefix(opts.ControlListen, "unix://")
	if r.c, err = client.Dial(client.Options{Socket: sock}); err != nil {
		t.Fatal(err)
	}
	// Served once the configuration is applied.
	deadline := time.Now().Add(5 * time.Second)
	for {
		cctx, ccancel := context.WithTimeout(context.Background(), time.Second)
		_, err := r.c.Get(cctx, &xlbv1.GetRequest{})
		ccancel()
		if err == nil {
			break
		}
		select {
		case err := <-r.done:
			t.Fatalf("Run returned early: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("control socket never answered: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return r
}

func (r *running) stop(t *testing.T) {
	t.Helper()
	r.c.Close()
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			t.Fatalf("Run = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
}

func (r *running) get(t *testing.T) *xlbv1.GetResponse {
	t.Helper()
	g, err := r.c.Get(context.Background(), &xlbv1.GetRequest{})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func listenerPort(g *xlbv1.GetResponse) uint32 {
	return g.GetConfig().GetLoadBalancers()[0].GetListeners()[0].GetPort()
}

// TestStoredStateAndFilePrecedence: a restart runs what the API applied
// while the file is unchanged; an edited file, or --force-config, wins.
func TestStoredStateAndFilePrecedence(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "xlb.yaml")
	p1, p2, p3 := freeTCPPort(t), freeTCPPort(t), freeTCPPort(t)
	writeConfig(t, path, p1, "")
	opts := Options{
		ConfigPath: path, MetricsListen: "off", DrainTimeout: time.Second,
		StateDir: filepath.Join(dir, "state"), ControlListen: "unix://" + filepath.Join(dir, "run", "xlb.sock"),
	}

	// First start: the file is version 1. The API moves the listener to p2.
	r := runWithControl(t, opts)
	g := r.get(t)
	if g.GetInfo().GetVersion() != 1 || listenerPort(g) != uint32(p1) || !strings.HasPrefix(g.GetInfo().GetSource(), "file ") {
		t.Fatalf("first start: %v", g.GetInfo())
	}
	cfg := g.GetConfig()
	cfg.LoadBalancers[0].Listeners[0].Port = uint32(p2)
	if resp, err := r.c.Apply(context.Background(), &xlbv1.ApplyRequest{Config: cfg, ExpectedVersion: 1}); err != nil || resp.GetVersion() != 2 {
		t.Fatalf("Apply: %v, %v", resp, err)
	}
	if err := bound(p2); err != nil {
		t.Errorf("the applied listener is not bound: %v", err)
	}
	r.stop(t)

	// Restart, file unchanged: the stored version 2 runs, no new version.
	r = runWithControl(t, opts)
	if g := r.get(t); g.GetInfo().GetVersion() != 2 || listenerPort(g) != uint32(p2) {
		t.Errorf("restart with the file unchanged: version %d port %d, want 2 and %d", g.GetInfo().GetVersion(), listenerPort(g), p2)
	}
	if err := bound(p2); err != nil {
		t.Errorf("the restored listener is not bound: %v", err)
	}
	if err := bound(p1); err == nil {
		t.Errorf("the file's listener %d is bound, but the stored state should win", p1)
	}
	r.stop(t)

	// The file edited: it wins, as the next version.
	writeConfig(t, path, p3, "")
	r = runWithControl(t, opts)
	if g := r.get(t); g.GetInfo().GetVersion() != 3 || listenerPort(g) != uint32(p3) {
		t.Errorf("restart with an edited file: version %d port %d, want 3 and %d", g.GetInfo().GetVersion(), listenerPort(g), p3)
	}
	// SIGHUP's path: a reload is a version too.
	writeConfig(t, path, p1, "")
	if err := r.d.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if g := r.get(t); g.GetInfo().GetVersion() != 4 || listenerPort(g) != uint32(p1) {
		t.Errorf("after a reload: version %d port %d, want 4 and %d", g.GetInfo().GetVersion(), listenerPort(g), p1)
	}
	// A comment-only edit reloaded: nothing changes, no new version.
	if err := os.WriteFile(path, append(mustRead(t, path), []byte("# a comment\n")...), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := r.d.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if g := r.get(t); g.GetInfo().GetVersion() != 4 {
		t.Errorf("after a comment-only reload: version %d, want 4", g.GetInfo().GetVersion())
	}
	cfg = r.get(t).GetConfig()
	cfg.LoadBalancers[0].Listeners[0].Port = uint32(p2)
	if _, err := r.c.Apply(context.Background(), &xlbv1.ApplyRequest{Config: cfg}); err != nil {
		t.Fatal(err)
	}
	r.stop(t)

	// A restart: the file is unchanged since its reload, so the API's
	// version 5 runs (a comment-only edit reloaded counts as applied).
	r = runWithControl(t, opts)
	if g := r.get(t); g.GetInfo().GetVersion() != 5 || listenerPort(g) != uint32(p2) {
		t.Errorf("restart after the reloaded comment: version %d port %d, want 5 and %d", g.GetInfo().GetVersion(), listenerPort(g), p2)
	}
	r.stop(t)

	// --force-config: the unchanged file replaces the API's version 5.
	opts.ForceConfig = true
	r = runWithControl(t, opts)
	if g := r.get(t); g.GetInfo().GetVersion() != 6 || listenerPort(g) != uint32(p1) {
		t.Errorf("--force-config: version %d port %d, want 6 and %d", g.GetInfo().GetVersion(), listenerPort(g), p1)
	}
	list, err := r.c.ListVersions(context.Background(), &xlbv1.ListVersionsRequest{})
	if err != nil || len(list.GetVersions()) != 6 {
		t.Errorf("ListVersions: %v, %v", list, err)
	}
	r.stop(t)
	if _, err := os.Stat(filepath.Join(dir, "run", "xlb.sock")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the control socket is left behind after a stop: %v", err)
	}
}

func TestTCPControlWithoutTLSIsRejected(t *testing.T) {
	path := filepath.Join(t.TempDir(), "xlb.yaml")
	cfg := "node: {xdp_mode: off, control: {listen: \"tcp://127.0.0.1:9500\"}}\n"
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := New(Options{ConfigPath: path, MetricsListen: "off", StateDir: t.TempDir()})
	var errs config.Errors
	if !errors.As(err, &errs) || !strings.Contains(err.Error(), "node.control.tls") {
		t.Fatalf("New = %v, want config.Errors naming node.control.tls", err)
	}
}

// TestTCPControlListenerRequiresMutualTLS runs xlbd with a tcp:// control
// listener from its file: a client with a certificate from the client CA is
// served, one without a valid certificate is refused.
func TestTCPControlListenerRequiresMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca := certstest.NewCA(t, "control ca")
	srv := certstest.NewServer(t, ca, "localhost")
	good := certstest.NewClient(t, ca, "operator")
	rogue := certstest.NewClient(t, certstest.NewCA(t, "rogue"), "intruder")
	files := map[string][]byte{
		"srv.pem": srv.CertPEM, "srv.key": srv.KeyPEM, "ca.pem": ca.CertPEM,
		"good.pem": good.CertPEM, "good.key": good.KeyPEM, "rogue.pem": rogue.CertPEM, "rogue.key": rogue.KeyPEM,
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	port := freeTCPPort(t)
	cfg := fmt.Sprintf("node: {xdp_mode: off, control: {listen: \"tcp://127.0.0.1:%d\", tls: {cert_file: srv.pem, key_file: srv.key, client_ca_file: ca.pem}}}\n", port)
	path := filepath.Join(dir, "xlb.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := New(Options{ConfigPath: path, MetricsListen: "off", DrainTimeout: time.Second, StateDir: filepath.Join(dir, "state")})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	}()

	get := func(cert, key string) error {
		c, err := client.Dial(client.Options{
			Addr: d.ControlAddr(), CertFile: filepath.Join(dir, cert), KeyFile: filepath.Join(dir, key), CAFile: filepath.Join(dir, "ca.pem"), ServerName: "localhost",
		})
		if err != nil {
			return err
		}
		defer c.Close()
		cctx, ccancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer ccancel()
		_, err = c.Get(cctx, &xlbv1.GetRequest{})
		return err
	}
	var err2 error
	deadline := time.Now().Add(5 * time.Second)
	for err2 = get("good.pem", "good.key"); err2 != nil && time.Now().Before(deadline); err2 = get("good.pem", "good.key") {
		time.Sleep(50 * time.Millisecond)
	}
	if err2 != nil {
		t.Fatalf("a client with a valid certificate: %v", err2)
	}
	if err := get("rogue.pem", "rogue.key"); err == nil {
		t.Error("a client certificate from another CA was served")
	}
	if _, err := client.Dial(client.Options{Addr: d.ControlAddr()}); err == nil {
		t.Error("xlbctl's client dialled a TCP listener without a certificate")
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
