package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xlbproject/xlb/bench/serve"
	"github.com/xlbproject/xlb/internal/labsvc"
	"github.com/xlbproject/xlb/internal/netlab"
)

// xlbdBin and xlbctlBin are the binaries built once for every test.
var xlbdBin, xlbctlBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "xlb-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	xlbdBin, xlbctlBin = filepath.Join(dir, "xlbd"), filepath.Join(dir, "xlbctl")
	build := exec.Command("go", "build", "-race", "-o", dir, "github.com/xlbproject/xlb/cmd/xlbd", "github.com/xlbproject/xlb/cmd/xlbctl")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building xlbd and xlbctl:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// env is one test's lab: topology, backends and a running xlbd.
type env struct {
	t        *testing.T
	lab      *netlab.Lab
	backends *labsvc.Backends
	xlbd     *labsvc.Xlbd
	cfgPath  string
	sock     string // the control socket
	log      string
	args     []string
}

// start builds the standard lab with n backends and runs xlbd with cfg on
// the userspace engines.
func start(t *testing.T, n int, cfg string) *env {
	t.Helper()
	return startLab(t, n, cfg, false)
}

// startXDP is start with the lab readied for xlbd's XDP engine (cfg must
// name the gateway's interfaces).
func startXDP(t *testing.T, n int, cfg string) *env {
	t.Helper()
	return startLab(t, n, cfg, true)
}

func startLab(t *testing.T, n int, cfg string, withXDP bool) *env {
	t.Helper()
	topo := netlab.ClientGatewayBackends(n)
	topo.NoTxChecksum = withXDP
	lab := netlab.New(t, topo)
	ctx := context.Background()
	bs, err := labsvc.StartBackends(ctx, lab, n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bs.Close() })
	e := &env{t: t, lab: lab, backends: bs}
	dir := t.TempDir()
	e.cfgPath = filepath.Join(dir, "xlb.yaml")
	e.log = filepath.Join(dir, "xlbd.log")
	e.writeConfig(cfg)
	e.sock = filepath.Join(dir, "xlb.sock")
	e.args = []string{"--config", e.cfgPath, "--drain-timeout", "2s", "--state-dir", filepath.Join(dir, "state"),
		"--control-listen", "unix://" + e.sock}
	if withXDP {
		x, err := labsvc.PrepareXDP(lab)
		if err != nil {
			t.Fatal(err)
		}
		// Registered before xlbd's stop, so it runs after it.
		t.Cleanup(func() {
			if err := x.Close(); err != nil {
				t.Errorf("cleaning up XDP: %v", err)
			}
		})
		e.args = append(e.args, "--bpffs", x.BPFFS)
	}
	e.startXlbd()
	t.Cleanup(func() {
		if err := e.xlbd.Stop(10 * time.Second); err != nil {
			t.Errorf("stopping xlbd: %v", err)
		}
		if t.Failed() {
			e.dumpLog()
		}
	})
	return e
}

// startXlbd runs xlbd in the gateway with e.args, appending to its log.
func (e *env) startXlbd() {
	e.t.Helper()
	logf, err := os.OpenFile(e.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { logf.Close() })
	x, err := labsvc.StartXlbd(context.Background(), e.lab, netlab.HostGateway, xlbdBin, logf, e.args...)
	if err != nil {
		e.dumpLog()
		e.t.Fatal(err)
	}
	e.xlbd = x
}

// restart stops xlbd (SIGTERM) and starts it again.
func (e *env) restart() {
	e.t.Helper()
	if err := e.xlbd.Stop(10 * time.Second); err != nil {
		e.t.Fatalf("stopping xlbd: %v", err)
	}
	e.startXlbd()
}

func (e *env) writeConfig(cfg string) {
	e.t.Helper()
	if err := os.WriteFile(e.cfgPath, []byte(cfg), 0o600); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) dumpLog() {
	b, _ := os.ReadFile(e.log)
	e.t.Logf("xlbd log:\n%s", b)
}

// who asks the VIP's listener which backend serves a new connection
// (tcp) or session (udp) from host; "" and an error when none answers.
func (e *env) who(host, network string, port int) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c, err := e.lab.Dial(ctx, host, network, net.JoinHostPort(netlab.VIP, strconv.Itoa(port)))
	if err != nil {
		return "", err
	}
	defer c.Close()
	if network == "udp" {
		ctx, cancel = context.WithTimeout(ctx, 500*time.Millisecond)
		defer cancel()
		return serve.WhoAmIUDP(ctx, c)
	}
	return serve.WhoAmITCP(ctx, c)
}

// count opens n connections or sessions from the client and counts the
// backends that answered; it fails the test on any unanswered one.
func (e *env) count(network string, port, n int) map[string]int {
	e.t.Helper()
	out := map[string]int{}
	for i := range n {
		name, err := e.who(netlab.HostClient, network, port)
		if err != nil {
			e.t.Fatalf("%s :%d attempt %d: %v", network, port, i, err)
		}
		out[name]++
	}
	return out
}

// metric returns the value of the series whose line starts with series
// (name and labels exactly as exposed), or -1 when absent.
func (e *env) metric(series string) float64 {
	e.t.Helper()
	text, err := e.xlbd.Metrics()
	if err != nil {
		e.t.Fatalf("reading metrics: %v", err)
	}
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				e.t.Fatalf("metric %s: %v", line, err)
			}
			return f
		}
	}
	return -1
}

// waitMetric waits until series has value want.
func (e *env) waitMetric(series string, want float64, limit time.Duration) {
	e.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		got := e.metric(series)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s = %v after %v, want %v", series, got, limit, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
