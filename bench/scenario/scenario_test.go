package scenario

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xlbproject/xlb/bench/peers"
	"github.com/xlbproject/xlb/bench/report"
	"github.com/xlbproject/xlb/controlplane/config"
)

// Binaries built once in TestMain: the generator and xlbd.
var benchBin, xlbdBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "xlb-scenario-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	build := exec.Command("go", "build", "-o", dir+"/", "github.com/xlbproject/xlb/cmd/xlb-bench", "github.com/xlbproject/xlb/cmd/xlbd")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building xlb-bench and xlbd:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	benchBin, xlbdBin = filepath.Join(dir, "xlb-bench"), filepath.Join(dir, "xlbd")
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func TestParseRates(t *testing.T) {
	got, err := ParseRates("0.25x, 5000,0.9x")
	if err != nil {
		t.Fatal(err)
	}
	want := []Rate{{0.25, true}, {5000, false}, {0.9, true}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("ParseRates = %v, want %v", got, want)
	}
	if r := got[0].resolve(20000); r != 5000 {
		t.Errorf("0.25x of 20000 = %v", r)
	}
	if r := got[1].resolve(20000); r != 5000 {
		t.Errorf("5000 resolves to %v", r)
	}
	for _, bad := range []string{"", "fast", "-1", "0x", "1,,y"} {
		if _, err := ParseRates(bad); err == nil {
			t.Errorf("ParseRates(%q): no error", bad)
		}
	}
}

func TestOptionsDefaults(t *testing.T) {
	o, err := Options{OutDir: "/tmp/x", Bench: "b"}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if o.Rounds != 3 || o.Duration != 5*time.Second || o.Warmup != time.Second || o.SweepDuration != 2500*time.Millisecond ||
		len(o.Rates) != 4 || o.LoadCPU != 0 || o.GatewayCPU != 1 {
		t.Errorf("defaults %+v", o)
	}
	q, err := Options{OutDir: "/tmp/x", Bench: "b", Quick: true}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if q.Rounds != 1 || q.Duration != time.Second || q.SweepDuration != time.Second || len(q.Rates) != 2 {
		t.Errorf("quick defaults %+v", q)
	}
	for i, bad := range []Options{
		{Bench: "b"},
		{OutDir: "o"},
		{OutDir: "o", Bench: "b", Rounds: -1},
		{OutDir: "o", Bench: "b", Duration: time.Millisecond},
		{OutDir: "o", Bench: "b", LoadCPU: 1, GatewayCPU: 1},
	} {
		if _, err := bad.withDefaults(); err == nil {
			t.Errorf("bad options %d accepted", i)
		}
	}
}

func TestRegistry(t *testing.T) {
	for _, name := range []string{"l7-baseline", "l4"} {
		s, ok := Lookup(name)
		if !ok {
			t.Fatalf("%s not registered", name)
		}
		if len(s.Workloads) == 0 || len(s.Systems()) < 2 || s.Backends < 1 || len(s.Method) == 0 {
			t.Errorf("%s: incomplete %+v", name, s)
		}
	}
	if _, ok := Lookup("nope"); ok {
		t.Error("Lookup(nope) found something")
	}
}

// TestGeneratedXlbConfigsAreValid checks that xlbd would accept the
// configurations the xlb systems run with, the future L7 one included.
func TestGeneratedXlbConfigsAreValid(t *testing.T) {
	for _, sys := range []System{newXlbL4(3), newXlbHTTP(82, 3)} {
		x := sys.(*xlbd)
		if _, err := config.Load([]byte(x.config), t.TempDir()); err != nil {
			t.Errorf("%s config rejected: %v\n%s", x.name, err, x.config)
		}
	}
}

// runQuick runs a scenario in quick mode and checks what a user of the
// outputs relies on.
func runQuick(t *testing.T, name string, wantParts map[string][]string) {
	t.Helper()
	needTools(t, "taskset", "ip", "chrt", "nice", "sh")
	out := t.TempDir()
	var log bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r, err := Run(ctx, name, Options{Quick: true, OutDir: out, Bench: benchBin, Xlbd: xlbdBin, Log: &log, Command: "test " + name})
	t.Logf("progress:\n%s", log.String())
	if err != nil {
		t.Fatal(err)
	}

	back, err := report.Read(filepath.Join(out, report.ResultsJSON))
	if err != nil {
		t.Fatal(err)
	}
	if len(back.Parts) != len(wantParts) {
		t.Fatalf("%d parts, want %d", len(back.Parts), len(wantParts))
	}
	for _, p := range back.Parts {
		systems, ok := wantParts[p.Name]
		if !ok {
			t.Errorf("unexpected part %s", p.Name)
			continue
		}
		if strings.Join(p.Systems, ",") != strings.Join(systems, ",") || len(p.Summary) != len(systems) {
			t.Errorf("%s: systems %v (summary rows %d), want %v", p.Name, p.Systems, len(p.Summary), systems)
		}
		if p.FixedRate <= 0 {
			t.Errorf("%s: fixed rate %v", p.Name, p.FixedRate)
		}
		for _, s := range p.Summary {
			// XDP on veth runs in the sending side's NAPI context, on the
			// load core: the gateway core cannot show its cost (the method
			// notes say so; BenchmarkProgram measures it per packet).
			cpuKnown := s.System != "xlb-xdp"
			// The packet-rate part measures delivery, not latency.
			latencyKnown := !p.NoLatency
			// Half the slowest max should be delivered nearly whole; this
			// only checks the counting works (a broken count loses all),
			// not the rate, which a loaded host moves.
			if p.NoLatency && s.Loss >= 0.5 {
				t.Errorf("%s/%s: loss %v at the fixed rate, half the slowest max", p.Name, s.System, s.Loss)
			}
			if s.MaxRate <= 0 || (cpuKnown && s.CPUPerOp <= 0) || s.FixedAchieved <= 0 || (latencyKnown && s.P50 <= 0) {
				t.Errorf("%s/%s: max rate %v, CPU per op %v, achieved %v, p50 %v: want all > 0", p.Name, s.System, s.MaxRate, s.CPUPerOp, s.FixedAchieved, s.P50)
			}
		}
		if len(p.Ratios) == 0 {
			t.Errorf("%s: no ratios", p.Name)
		}
		if len(p.Plots) != 3 {
			t.Errorf("%s: plots %v, want 3", p.Name, p.Plots)
		}
		for _, f := range p.Plots {
			b, err := os.ReadFile(filepath.Join(out, f))
			if err != nil {
				t.Error(err)
				continue
			}
			img, err := png.Decode(bytes.NewReader(b))
			if err != nil {
				t.Errorf("%s: %v", f, err)
				continue
			}
			if sz := img.Bounds().Size(); sz.X < 300 || sz.Y < 200 || len(b) < 5000 {
				t.Errorf("%s: %v pixels, %d bytes: too small to show anything", f, sz, len(b))
			}
		}
	}
	sum, err := os.ReadFile(filepath.Join(out, report.SummaryMD))
	if err != nil || !strings.Contains(string(sum), "| system |") {
		t.Errorf("summary.md: %v\n%s", err, sum)
	}

	// Nothing of the run is left: namespaces, nftables tables, processes.
	if r.Cleanup.LabPrefix == "" {
		t.Fatal("no lab prefix recorded")
	}
	ns, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(ns), r.Cleanup.LabPrefix) {
		t.Errorf("namespaces of %s left:\n%s", r.Cleanup.LabPrefix, ns)
	}
	if len(r.Cleanup.TablesLeft) > 0 {
		t.Errorf("nftables tables left in the gateway: %v", r.Cleanup.TablesLeft)
	}
	if nft, err := exec.LookPath("nft"); err == nil {
		tables, err := exec.Command(nft, "list", "tables").CombinedOutput()
		if err != nil {
			t.Errorf("nft list tables: %v: %s", err, tables)
		}
		if strings.Contains(string(tables), peers.TablePrefix) {
			t.Errorf("host has %s tables: %s", peers.TablePrefix, tables)
		}
	}
	if len(r.Cleanup.PIDs) == 0 && name == "l7-baseline" {
		t.Error("no proxy pids recorded")
	}
	for _, pid := range r.Cleanup.PIDs {
		if comm, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm"); err == nil {
			c := strings.TrimSpace(string(comm))
			if c == "haproxy" || c == "nginx" || c == "xlbd" || c == "taskset" {
				t.Errorf("process %d (%s) started by the run is still running", pid, c)
			}
		}
		if err := syscall.Kill(-pid, 0); err == nil {
			t.Errorf("process group %d started by the run still has members", pid)
		}
	}
}

func needTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s not installed: %v", tool, err)
			}
			t.Skipf("%s not installed", tool)
		}
	}
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("scenarios need root (network namespaces)")
		}
		t.Skip("scenarios need root (network namespaces)")
	}
}

func TestL7BaselineQuick(t *testing.T) {
	needTools(t, "haproxy", "nginx")
	runQuick(t, "l7-baseline", map[string][]string{"http": {"xlb", "haproxy", "nginx"}})
}

func TestL4Quick(t *testing.T) {
	needTools(t, "nft")
	all := []string{"xlb-xdp", "xlb-l4", "nftables"}
	runQuick(t, "l4", map[string][]string{"tcp": all, "udp": all, "pps": all})
}
