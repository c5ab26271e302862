package report

import (
	"bytes"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xlbproject/xlb/bench/load"
)

func TestMedian(t *testing.T) {
	tests := []struct {
		in   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{3}, 3},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
	}
	for _, tt := range tests {
		in := append([]float64(nil), tt.in...)
		if got := Median(in); got != tt.want {
			t.Errorf("Median(%v) = %v, want %v", tt.in, got, tt.want)
		}
		for i := range in {
			if in[i] != tt.in[i] {
				t.Errorf("Median reordered its input: %v", in)
			}
		}
	}
}

func TestNumerators(t *testing.T) {
	tests := []struct {
		in   []string
		want string
	}{
		{[]string{"haproxy", "nginx"}, "haproxy"},
		{[]string{"haproxy", "nginx", "xlb"}, "xlb"},
		{[]string{"xlb-l4", "nftables", "xlb-xdp"}, "xlb-l4,xlb-xdp"},
		{nil, ""},
	}
	for _, tt := range tests {
		if got := strings.Join(Numerators(tt.in), ","); got != tt.want {
			t.Errorf("Numerators(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// m builds a measurement: rate ops/s, process CPU as a fraction of a core
// and gateway-core busy fraction over a 1 s window.
func m(sys string, round int, phase Phase, offered, rate, procFrac, coreFrac float64, p50, p99 time.Duration) Measurement {
	return Measurement{
		System: sys, Round: round, Phase: phase, Offered: offered,
		Result: &load.Result{Rate: rate, Ops: uint64(rate), Latency: load.Percentiles{P50: p50, P99: p99}},
		CPU: CPU{
			Window:      time.Second,
			Process:     time.Duration(procFrac * float64(time.Second)),
			GatewayCore: time.Duration(coreFrac * float64(time.Second)),
			AllCores:    time.Duration((coreFrac + 0.5) * float64(time.Second)),
			Generator:   300 * time.Millisecond,
		},
	}
}

func samplePart() *Part {
	us := time.Microsecond
	return &Part{
		Name: "http", Title: "HTTP/1.1 keep-alive", Unit: "req/s", Op: "request",
		CPUMethod: CPUProcess, Connections: 32,
		Systems: []string{"haproxy", "nginx"}, Numerators: []string{"haproxy"},
		FixedRate: 5000,
		Measurements: []Measurement{
			m("haproxy", 1, PhaseMax, 0, 20000, 1, 1, 0, 0),
			m("nginx", 1, PhaseMax, 0, 10000, 1, 1, 0, 0),
			m("haproxy", 2, PhaseMax, 0, 24000, 1, 1, 0, 0),
			m("nginx", 2, PhaseMax, 0, 11000, 1, 1, 0, 0),
			m("haproxy", 3, PhaseMax, 0, 22000, 1, 1, 0, 0),
			m("nginx", 3, PhaseMax, 0, 9000, 1, 1, 0, 0),
			// haproxy: 0.1 core at 5000/s = 20 µs per request; nginx 40 µs.
			m("haproxy", 1, PhaseFixed, 5000, 5000, 0.1, 0.2, 100*us, 400*us),
			m("nginx", 1, PhaseFixed, 5000, 5000, 0.2, 0.3, 200*us, 800*us),
			m("haproxy", 2, PhaseFixed, 5000, 5000, 0.1, 0.2, 120*us, 500*us),
			m("nginx", 2, PhaseFixed, 5000, 5000, 0.2, 0.3, 240*us, 1000*us),
			m("haproxy", 3, PhaseFixed, 5000, 5000, 0.3, 0.2, 110*us, 450*us),
			m("nginx", 3, PhaseFixed, 5000, 5000, 0.2, 0.3, 220*us, 900*us),
			m("haproxy", 1, PhaseSweep, 8000, 8000, 0.2, 0.2, 150*us, 600*us),
			m("nginx", 1, PhaseSweep, 8000, 7500, 0.3, 0.3, 900*us, 20000*us),
		},
	}
}

func TestSummarize(t *testing.T) {
	p := samplePart()
	Summarize(p)
	if len(p.Summary) != 2 {
		t.Fatalf("%d summaries, want 2", len(p.Summary))
	}
	h, n := p.Summary[0], p.Summary[1]
	if h.System != "haproxy" || h.MaxRate != 22000 || n.MaxRate != 10000 {
		t.Errorf("max rates %s %v, %s %v; want haproxy 22000 (median of 20000/24000/22000), nginx 10000", h.System, h.MaxRate, n.System, n.MaxRate)
	}
	if h.CPUPerOp != 20*time.Microsecond || n.CPUPerOp != 40*time.Microsecond {
		t.Errorf("CPU per request %v and %v, want 20µs (median, not the 60µs outlier) and 40µs", h.CPUPerOp, n.CPUPerOp)
	}
	if h.P50 != 110*time.Microsecond || h.P99 != 450*time.Microsecond {
		t.Errorf("haproxy p50/p99 %v/%v, want 110µs/450µs", h.P50, h.P99)
	}
	// (0.2 gateway + 0.5 other cores - 0.3 generator) / 5000 = 80 µs.
	if want := 80 * time.Microsecond; h.CPUPerOpOthers != want {
		t.Errorf("all-minus-generator %v, want %v", h.CPUPerOpOthers, want)
	}
	if len(p.Ratios) != 1 {
		t.Fatalf("ratios %+v, want haproxy/nginx only", p.Ratios)
	}
	r := p.Ratios[0]
	if r.Num != "haproxy" || r.Den != "nginx" || r.MaxRate != 2.2 || r.CPUPerOp != 0.5 || r.P99 != 0.5 {
		t.Errorf("ratio %+v, want haproxy/nginx rate 2.2, cpu 0.5, p99 0.5", r)
	}
	// Sweep: each system at 5000 (from the fixed phase) and 8000.
	if len(p.Sweep) != 4 || p.Sweep[0].Offered != 5000 || p.Sweep[1].Offered != 8000 || p.Sweep[3].P99 != 20*time.Millisecond {
		t.Errorf("sweep %+v", p.Sweep)
	}
}

func TestTable(t *testing.T) {
	p := samplePart()
	Summarize(p)
	got := Table(p)
	want := "| system | max req/s | CPU µs/request (process) | p50 at 5,000 req/s | p99 | haproxy ÷ row: req/s | CPU/request | p50 | p99 |\n" +
		"| --- | --: | --: | --: | --: | --: | --: | --: | --: |\n" +
		"| haproxy | 22,000 | 20.0 | 110 µs | 450 µs | — | — | — | — |\n" +
		"| nginx | 10,000 | 40.0 | 220 µs | 900 µs | 2.20 | 0.50 | 0.50 | 0.50 |\n"
	if got != want {
		t.Errorf("table:\n%s\nwant:\n%s", got, want)
	}
}

func TestFormatting(t *testing.T) {
	for in, want := range map[float64]string{0: "—", 7: "7", 999.6: "1,000", 1234567: "1,234,567"} {
		if got := fmtRate(in); got != want {
			t.Errorf("fmtRate(%v) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[time.Duration]string{0: "—", 850 * time.Microsecond: "850 µs", 2500 * time.Microsecond: "2.50 ms", 3 * time.Second: "3.00 s"} {
		if got := fmtLatency(in); got != want {
			t.Errorf("fmtLatency(%v) = %q, want %q", in, got, want)
		}
	}
	if got := fmtMicros(2345 * time.Nanosecond); got != "2.35" {
		t.Errorf("fmtMicros = %q", got)
	}
}

const resultsDoc = `# Benchmark results

Intro.

## Backend selection (micro-benchmarks)

| scheduler | ns |
|---|---|
| rr | 9.0 |
`

func TestReplaceSection(t *testing.T) {
	added, err := ReplaceSection(resultsDoc, "l4", "## L4\n\nfirst\n")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(added, resultsDoc) {
		t.Errorf("appending changed the existing content:\n%s", added)
	}
	if !strings.HasSuffix(added, "\n<!-- scenario:l4 -->\n## L4\n\nfirst\n<!-- /scenario:l4 -->\n") {
		t.Errorf("appended section:\n%q", added)
	}
	other, err := ReplaceSection(added, "l7-baseline", "## L7\n")
	if err != nil {
		t.Fatal(err)
	}
	replaced, err := ReplaceSection(other, "l4", "## L4\n\nsecond")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(replaced, "first") || !strings.Contains(replaced, "second") {
		t.Errorf("section not replaced:\n%s", replaced)
	}
	if !strings.HasPrefix(replaced, resultsDoc) || !strings.Contains(replaced, "<!-- scenario:l7-baseline -->\n## L7\n<!-- /scenario:l7-baseline -->") {
		t.Errorf("replacing l4 disturbed the rest:\n%s", replaced)
	}
	if strings.Count(replaced, "<!-- scenario:l4 -->") != 1 {
		t.Errorf("l4 section duplicated:\n%s", replaced)
	}
	// Replacing with the same body is a fixed point.
	again, _ := ReplaceSection(replaced, "l4", "## L4\n\nsecond")
	if again != replaced {
		t.Errorf("replacing twice changed the document")
	}
	for _, bad := range []string{
		"x\n<!-- /scenario:l4 -->\n",
		"x\n<!-- scenario:l4 -->\nno end\n",
		"<!-- scenario:l4 -->\n<!-- /scenario:l4 -->\n<!-- scenario:l4 -->\n<!-- /scenario:l4 -->\n",
	} {
		if _, err := ReplaceSection(bad, "l4", "b"); err == nil {
			t.Errorf("ReplaceSection(%q): no error", bad)
		}
	}
}

func TestCPUModel(t *testing.T) {
	info := "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R)   Processor @ 2.20GHz\nflags\t: fpu\n\nprocessor\t: 1\nmodel name\t: other\n"
	if got := CPUModel(info); got != "Intel(R) Xeon(R) Processor @ 2.20GHz" {
		t.Errorf("CPUModel = %q", got)
	}
	if got := CPUModel("processor : 0\n"); got != "" {
		t.Errorf("CPUModel without a model = %q", got)
	}
	if got := memGiB("MemTotal:       24576000 kB\nMemFree: 1 kB\n"); got != 23 {
		t.Errorf("memGiB = %d, want 23", got)
	}
}

func sampleReport() *Report {
	return &Report{
		Scenario: "l7-baseline", Title: "L7 baseline: HAProxy and NGINX",
		Command: "xlb-bench scenario l7-baseline", Date: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC),
		Machine:  Machine{Cores: 2, Model: "Xeon", Kernel: "6.18", Go: "go1.26"},
		Settings: Settings{Rounds: 3, Duration: 5 * time.Second, Warmup: time.Second, SweepDuration: 2 * time.Second, GatewayCPU: 1},
		Method:   []string{"CPU per request is the process tree's."},
		Parts:    []*Part{samplePart()},
	}
}

func TestWriteAndUpdateResults(t *testing.T) {
	out := t.TempDir()
	r := sampleReport()
	if err := Write(out, r); err != nil {
		t.Fatal(err)
	}
	wantPlots := []string{"http-latency.png", "http-throughput.png", "http-cpu.png"}
	if strings.Join(r.Parts[0].Plots, ",") != strings.Join(wantPlots, ",") {
		t.Fatalf("plots %v, want %v", r.Parts[0].Plots, wantPlots)
	}
	for _, f := range wantPlots {
		b, err := os.ReadFile(filepath.Join(out, f))
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if sz := img.Bounds().Size(); sz.X < 300 || sz.Y < 200 || len(b) < 5000 || len(b) > 300000 {
			t.Errorf("%s: %v pixels, %d bytes", f, sz, len(b))
		}
	}
	back, err := Read(filepath.Join(out, ResultsJSON))
	if err != nil {
		t.Fatal(err)
	}
	if len(back.Parts) != 1 || len(back.Parts[0].Measurements) != 14 || back.Parts[0].Summary[0].MaxRate != 22000 {
		t.Errorf("results.json round trip lost data: %+v", back.Parts)
	}
	sum, err := os.ReadFile(filepath.Join(out, SummaryMD))
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"# L7 baseline: HAProxy and NGINX — 2026-11-23", "| nginx | 10,000 |", "![", "(./http-cpu.png)", "`xlb-bench scenario l7-baseline`"} {
		if !strings.Contains(string(sum), w) {
			t.Errorf("summary.md lacks %q:\n%s", w, sum)
		}
	}

	repo := t.TempDir()
	md := filepath.Join(repo, "bench", "RESULTS.md")
	if err := os.MkdirAll(filepath.Dir(md), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(md, []byte(resultsDoc), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := UpdateResults(md, filepath.Join(repo, "bench", "results"), out, r); err != nil {
		t.Fatal(err)
	}
	doc, _ := os.ReadFile(md)
	if !strings.HasPrefix(string(doc), resultsDoc) {
		t.Errorf("RESULTS.md lost its other content:\n%s", doc)
	}
	for _, w := range []string{"<!-- scenario:l7-baseline -->", "## L7 baseline", "(results/l7-baseline/http-latency.png)", "Machine: 2 cores, Xeon", "<!-- /scenario:l7-baseline -->"} {
		if !strings.Contains(string(doc), w) {
			t.Errorf("RESULTS.md lacks %q:\n%s", w, doc)
		}
	}
	for _, f := range wantPlots {
		if _, err := os.Stat(filepath.Join(repo, "bench", "results", "l7-baseline", f)); err != nil {
			t.Errorf("plot not copied: %v", err)
		}
	}
}

func TestGatewayCPU(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name string
		cpu  CPU
		want time.Duration
	}{
		{"quiet core: busy time", CPU{GatewayCore: 600 * ms, GatewaySoftIRQ: 300 * ms, Process: 350 * ms}, 600 * ms},
		{"kernel path with noise: interrupts only", CPU{GatewayCore: 900 * ms, GatewaySoftIRQ: 400 * ms, GatewayIRQ: 10 * ms}, 410 * ms},
		{"process with noise: bounded", CPU{GatewayCore: 990 * ms, GatewaySoftIRQ: 300 * ms, Process: 400 * ms}, 700 * ms},
	}
	for _, tt := range tests {
		if got := tt.cpu.Gateway(); got != tt.want {
			t.Errorf("%s: Gateway() = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// A delivery part (the packet rate) has no latency: its table gives loss,
// its first plot delivered against offered.
func TestDeliveryPart(t *testing.T) {
	p := samplePart()
	p.Name, p.Unit, p.Op, p.NoLatency = "pps", "packets/s", "packet", true
	for i := range p.Measurements {
		r := p.Measurements[i].Result
		r.Latency = load.Percentiles{}
		if p.Measurements[i].System == "nginx" && p.Measurements[i].Phase == PhaseFixed {
			r.Loss = 0.02
		}
	}
	Summarize(p)
	got := Table(p)
	want := "| system | max packets/s (under 1% loss) | CPU µs/packet (process) | delivered at 5,000 packets/s | loss | haproxy ÷ row: packets/s | CPU/packet |\n" +
		"| --- | --: | --: | --: | --: | --: | --: |\n" +
		"| haproxy | 22,000 | 20.0 | 5,000 | 0.00% | — | — |\n" +
		"| nginx | 10,000 | 40.0 | 5,000 | 2.00% | 2.20 | 0.50 |\n"
	if got != want {
		t.Errorf("table:\n%s\nwant:\n%s", got, want)
	}
	dir := t.TempDir()
	if err := WritePlots(dir, p); err != nil {
		t.Fatal(err)
	}
	if len(p.Plots) != 3 || p.Plots[0] != "pps-delivery.png" {
		t.Errorf("plots %v, want pps-delivery.png first", p.Plots)
	}
}
