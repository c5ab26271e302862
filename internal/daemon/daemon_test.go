package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xlbproject/xlb/controlplane/config"
)

func freeTCPPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func writeConfig(t *testing.T, path string, port int, extra string) {
	t.Helper()
	cfg := fmt.Sprintf(`node: {xdp_mode: off}
load_balancers:
  - id: lb
    address: 127.0.0.1
    servers: [{address: 127.0.0.1, port: 9}]
    listeners:
      - {protocol: tcp, port: %d, health_check: {enabled: false}%s}
`, port, extra)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
}

// bound reports whether something listens on port: a refused connection
// means nothing does. (Any other outcome, even a reset from the proxy whose
// test backend is absent, means the listener is there.)
func bound(port int) error {
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if errors.Is(err, syscall.ECONNREFUSED) {
		return err
	}
	if c != nil {
		c.Close()
	}
	return nil
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestDaemonServesReloadsAndDrains(t *testing.T) {
	path := filepath.Join(t.TempDir(), "xlb.yaml")
	port := freeTCPPort(t)
	writeConfig(t, path, port, "")
	d, err := New(Options{ConfigPath: path, MetricsListen: "127.0.0.1:0", DrainTimeout: time.Second, StateDir: t.TempDir(), ControlListen: "off"})
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + d.MetricsAddr()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()

	deadline := time.Now().Add(5 * time.Second)
	for {
		if code, _ := get(t, base+"/readyz"); code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("never ready")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code, body := get(t, base+"/healthz"); code != 200 || !strings.Contains(body, "ok") {
		t.Errorf("/healthz = %d %q", code, body)
	}
	_, metrics := get(t, base+"/metrics")
	for _, want := range []string{"xlb_build_info{", "xlb_config_version 1", `xlb_config_reloads_total{result="invalid"} 0`, "xlb_l4_"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	// The listener is bound.
	if err := bound(port); err != nil {
		t.Errorf("listener not bound: %v", err)
	}

	// A bad file is rejected with its field path; the running config stays.
	writeConfig(t, path, port, ", weight: 5")
	err = d.Reload(ctx)
	var errs config.Errors
	if !errors.As(err, &errs) || !strings.Contains(err.Error(), "load_balancers[0].listeners[0].weight") {
		t.Errorf("Reload of a bad file = %v, want config.Errors naming the field", err)
	}
	_, metrics = get(t, base+"/metrics")
	if !strings.Contains(metrics, `xlb_config_reloads_total{result="invalid"} 1`) || !strings.Contains(metrics, "xlb_config_version 1") {
		t.Errorf("after a rejected reload: want invalid=1 and version 1")
	}

	// A file an engine refuses (the port is taken) is rolled back.
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	writeConfig(t, path, taken.Addr().(*net.TCPAddr).Port, "")
	if err := d.Reload(ctx); err == nil || !strings.Contains(err.Error(), "engine l4") {
		t.Errorf("Reload onto a taken port = %v, want the l4 engine's refusal", err)
	}
	if err := bound(port); err != nil {
		t.Errorf("the running listener was lost by a refused reload: %v", err)
	}

	writeConfig(t, path, freeTCPPort(t), "")
	if err := d.Reload(ctx); err != nil {
		t.Fatalf("good reload: %v", err)
	}
	_, metrics = get(t, base+"/metrics")
	if !strings.Contains(metrics, "xlb_config_version 2") || !strings.Contains(metrics, `xlb_config_reloads_total{result="success"} 1`) {
		t.Errorf("after a good reload: want version 2 and success=1")
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v, want nil after a drain", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

func TestInvalidConfigRefusesToStart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "xlb.yaml")
	if err := os.WriteFile(path, []byte("load_balancers: [{id: lb, address: nope}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := New(Options{ConfigPath: path, MetricsListen: "off", StateDir: t.TempDir(), ControlListen: "off"})
	var errs config.Errors
	if !errors.As(err, &errs) || !strings.Contains(err.Error(), "load_balancers[0].address") {
		t.Fatalf("New = %v, want config.Errors naming load_balancers[0].address", err)
	}
}

func TestCookieSecretSurvivesRestarts(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	a, err := loadOrCreateSecret(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := loadOrCreateSecret(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != 32 || string(a) != string(b) {
		t.Fatalf("second load gave a different secret")
	}
	st, err := os.Stat(filepath.Join(dir, cookieSecretFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("secret file mode %v (%v), want 0600", st.Mode(), err)
	}
	if err := os.WriteFile(filepath.Join(dir, cookieSecretFile), []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadOrCreateSecret(dir); err == nil || !strings.Contains(err.Error(), "want 32") {
		t.Errorf("a damaged secret file gave %v, want an error saying so", err)
	}
}
