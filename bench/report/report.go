// Package report turns the measurements of a side-by-side benchmark into its
// outputs: results.json (every raw measurement and the summary), summary.md
// (a markdown table with ratios), PNG plots, and a section of
// bench/RESULTS.md.
//
// Summaries are medians over interleaved rounds, and ratios are ratios of
// those medians: the machine is shared and noisy, so no single run is
// quoted.
package report

import (
	"slices"
	"strings"
	"time"

	"github.com/xlbproject/xlb/bench/load"
)

// Phase is what a measurement was for.
type Phase string

// Phases of a part.
const (
	// PhaseMax is closed loop: the highest rate the system sustains.
	PhaseMax Phase = "max"
	// PhaseFixed is open loop at the part's fixed rate, the same for every
	// system: latency and CPU per operation at equal load.
	PhaseFixed Phase = "fixed"
	// PhaseSweep is open loop at one rate of the latency-vs-rate sweep.
	PhaseSweep Phase = "sweep"
)

// CPU methods: which CPU figure a part's table quotes.
const (
	// CPUProcess is the CPU time of the system's process tree (user and
	// kernel, every thread and worker).
	CPUProcess = "process"
	// CPUGatewayCore is the busy time of the gateway's core from /proc/stat,
	// softirq included: the only way to see a kernel-path data plane.
	CPUGatewayCore = "gateway-core"
)

// CPU is what the CPU counters moved by during one measurement's window.
type CPU struct {
	// Window is the wall time between the two readings, inside the
	// generator's measured window.
	Window time.Duration `json:"window_ns"`
	// Process is the system's process tree; 0 for a kernel-path system.
	Process time.Duration `json:"process_ns"`
	// GatewayCore is the busy time of the core the system under test and
	// the gateway's packet processing are steered to, and GatewaySoftIRQ
	// the part of it in soft interrupts.
	GatewayCore    time.Duration `json:"gateway_core_ns"`
	GatewaySoftIRQ time.Duration `json:"gateway_softirq_ns"`
	GatewayIRQ     time.Duration `json:"gateway_irq_ns"`
	// AllCores is the busy time of every core.
	AllCores time.Duration `json:"all_cores_ns"`
	// Generator is the load generator's process; Backends the process
	// running the test backends (and the benchmark itself).
	Generator time.Duration `json:"generator_ns"`
	Backends  time.Duration `json:"backends_ns"`
	// Others is the CPU time of every other process on the machine: what
	// else ran meanwhile and may have inflated the core counters.
	Others time.Duration `json:"others_ns"`
}

// Measurement is one generator run against one system.
type Measurement struct {
	System  string       `json:"system"`
	Round   int          `json:"round"` // 1-based
	Phase   Phase        `json:"phase"`
	Offered float64      `json:"offered"` // ops/s; 0: closed loop
	Result  *load.Result `json:"result"`
	CPU     CPU          `json:"cpu"`
}

// perOp divides a CPU time accrued over the window by the operations done
// in it. Rates, not counts, are divided, so a reading window that is a few
// milliseconds off the generator's does not bias the figure.
func (m Measurement) perOp(d time.Duration) time.Duration {
	if m.Result == nil || m.Result.Rate <= 0 || m.CPU.Window <= 0 {
		return 0
	}
	return time.Duration(float64(d) / m.CPU.Window.Seconds() / m.Result.Rate)
}

// CPUPerOp returns the CPU time per operation by method.
func (m Measurement) CPUPerOp(method string) time.Duration {
	if method == CPUGatewayCore {
		return m.perOp(m.CPU.Gateway())
	}
	return m.perOp(m.CPU.Process)
}

// Gateway is the gateway's CPU time: the gateway core's busy time, but at
// most its interrupt time plus the system's processes. Without other
// processes on the core the two are equal (the core ran the system and the
// packet processing steered to it, nothing else); when other work lands on
// the core, the bound keeps it out. The bound counts twice the soft
// interrupts that ran while the system's own process was current (tick
// accounting charges them to both), so under noise it errs against a
// system with a process, never for it.
func (c CPU) Gateway() time.Duration {
	return min(c.GatewayCore, c.GatewaySoftIRQ+c.GatewayIRQ+c.Process)
}

// CPUPerOpOthers is every core's busy time minus the generator's own CPU
// time, per operation.
func (m Measurement) CPUPerOpOthers() time.Duration {
	return m.perOp(m.CPU.AllCores - m.CPU.Generator)
}

// GatewayUtil is the fraction of the gateway core that was busy (with
// anything, the system or other processes).
func (m Measurement) GatewayUtil() float64 {
	if m.CPU.Window <= 0 {
		return 0
	}
	return m.CPU.GatewayCore.Seconds() / m.CPU.Window.Seconds()
}

// SystemSummary is one system's medians in a part.
type SystemSummary struct {
	System string `json:"system"`
	// MaxRate is the median closed-loop rate (ops/s); MaxRates per round.
	MaxRate  float64   `json:"max_rate"`
	MaxRates []float64 `json:"max_rates"`
	// MaxGatewayUtil is the median busy fraction of the gateway core at
	// the closed-loop rate: well under 1 means the load side, not the
	// system, was the limit.
	MaxGatewayUtil float64 `json:"max_gateway_util"`
	// At the fixed rate: the achieved rate, CPU per operation by the
	// part's method (and per round), the others-minus-generator figure
	// and the latency percentiles.
	// CPUPerOpMax is the median CPU per operation at the closed-loop
	// rate (by the part's method): the cost when busy, where batching
	// makes it lower than at the fixed rate.
	CPUPerOpMax    time.Duration   `json:"cpu_per_op_max_ns"`
	FixedAchieved  float64         `json:"fixed_achieved"`
	CPUPerOp       time.Duration   `json:"cpu_per_op_ns"`
	CPUPerOpRounds []time.Duration `json:"cpu_per_op_rounds_ns"`
	CPUPerOpOthers time.Duration   `json:"cpu_per_op_all_minus_generator_ns"`
	P50            time.Duration   `json:"p50_ns"`
	P99            time.Duration   `json:"p99_ns"`
	P999           time.Duration   `json:"p999_ns"`
	// Others is the median CPU load (in cores) of unrelated processes
	// during the fixed-rate windows: the noise in the core counters.
	Others float64 `json:"others_cores"`
	// Loss is the median datagram loss at the fixed rate (udp).
	Loss float64 `json:"loss,omitempty"`
	// Errors counts failed operations over every measurement.
	Errors uint64 `json:"errors"`
}

// Ratio compares two systems' medians: Num's value divided by Den's.
type Ratio struct {
	Num      string  `json:"num"`
	Den      string  `json:"den"`
	MaxRate  float64 `json:"max_rate"`
	CPUPerOp float64 `json:"cpu_per_op"`
	P50      float64 `json:"p50"`
	P99      float64 `json:"p99"`
}

// SweepPoint is one system's latency at one offered rate.
type SweepPoint struct {
	System   string        `json:"system"`
	Offered  float64       `json:"offered"`
	Achieved float64       `json:"achieved"`
	P50      time.Duration `json:"p50_ns"`
	P99      time.Duration `json:"p99_ns"`
}

// Part is one workload of a scenario (l4 has "tcp" and "udp").
type Part struct {
	Name  string `json:"name"`  // "http", "tcp", "udp"; also the plots' file prefix
	Title string `json:"title"` // "HTTP/1.1 keep-alive, small responses"
	Short string `json:"short"` // "HTTP/1.1 keep-alive", for plot titles
	// Unit is the rate's unit ("req/s") and Op the operation ("request").
	Unit string `json:"unit"`
	Op   string `json:"op"`
	// CPUMethod is CPUProcess or CPUGatewayCore.
	CPUMethod string `json:"cpu_method"`
	// NoLatency marks a part that measures delivery, not latency (the
	// packet rate): its table shows loss, its plot delivered against
	// offered, and its max rate is the highest delivered with under 1% loss.
	NoLatency bool `json:"no_latency,omitempty"`
	// Connections is the generator's concurrency (connections or sockets).
	Connections int `json:"connections"`
	// Systems in the order they ran; Numerators are the systems whose
	// ratios to each other system are reported.
	Systems    []string `json:"systems"`
	Numerators []string `json:"numerators"`
	// CPUUnmeasured are systems whose CPU the method cannot attribute
	// (shown as n/a, left out of CPU ratios and plots).
	CPUUnmeasured []string `json:"cpu_unmeasured,omitempty"`
	// FixedRate is the open-loop rate of PhaseFixed.
	FixedRate    float64         `json:"fixed_rate"`
	Measurements []Measurement   `json:"measurements"`
	Summary      []SystemSummary `json:"summary"`
	Ratios       []Ratio         `json:"ratios"`
	Sweep        []SweepPoint    `json:"sweep"`
	// Plots are the PNG file names written for this part.
	Plots []string `json:"plots"`
}

// Settings are the options a scenario ran with.
type Settings struct {
	Rounds        int           `json:"rounds"`
	Duration      time.Duration `json:"duration_ns"`
	Warmup        time.Duration `json:"warmup_ns"`
	SweepDuration time.Duration `json:"sweep_duration_ns"`
	LoadCPU       int           `json:"load_cpu"`
	GatewayCPU    int           `json:"gateway_cpu"`
	Quick         bool          `json:"quick"`
}

// Cleanup records what the run removed and what, if anything, it found
// left over before the lab was closed.
type Cleanup struct {
	LabPrefix  string   `json:"lab_prefix"`
	PIDs       []int    `json:"pids"`        // every system process the run started
	TablesLeft []string `json:"tables_left"` // nftables tables of the run still present at the end
}

// Report is a scenario run.
type Report struct {
	Scenario    string    `json:"scenario"`
	Title       string    `json:"title"`
	Description string    `json:"description"`
	Command     string    `json:"command"`
	Date        time.Time `json:"date"`
	Machine     Machine   `json:"machine"`
	Settings    Settings  `json:"settings"`
	// Method explains how the figures were got, one paragraph each.
	Method []string `json:"method"`
	Parts  []*Part  `json:"parts"`
	// Body is the results of a scenario of another shape (markdown),
	// rendered instead of the settings line and with no parts.
	Body    string  `json:"body,omitempty"`
	Cleanup Cleanup `json:"cleanup"`
}

// cpuMeasured reports whether a system's CPU figures mean anything.
func (p *Part) cpuMeasured(system string) bool {
	for _, s := range p.CPUUnmeasured {
		if s == system {
			return false
		}
	}
	return true
}

func (p *Part) short() string {
	if p.Short != "" {
		return p.Short
	}
	return p.Title
}

// Summarize computes p's Summary, Ratios and Sweep from its Measurements.
func Summarize(p *Part) {
	p.Summary, p.Ratios, p.Sweep = nil, nil, nil
	by := map[string]*SystemSummary{}
	for _, sys := range p.Systems {
		s := summarizeSystem(p, sys)
		p.Summary = append(p.Summary, s)
		by[sys] = &p.Summary[len(p.Summary)-1]
	}
	for _, num := range p.Numerators {
		n := by[num]
		if n == nil {
			continue
		}
		for _, sys := range p.Systems {
			if sys == num || slices.Contains(p.Numerators, sys) && slices.Index(p.Numerators, sys) < slices.Index(p.Numerators, num) {
				continue
			}
			d := by[sys]
			p.Ratios = append(p.Ratios, Ratio{
				Num: num, Den: sys,
				MaxRate:  ratio(n.MaxRate, d.MaxRate),
				CPUPerOp: ratio(float64(n.CPUPerOp), float64(d.CPUPerOp)),
				P50:      ratio(float64(n.P50), float64(d.P50)),
				P99:      ratio(float64(n.P99), float64(d.P99)),
			})
		}
	}
	for _, sys := range p.Systems {
		points := map[float64][]Measurement{}
		for _, m := range p.Measurements {
			if m.System == sys && m.Result != nil && (m.Phase == PhaseSweep || m.Phase == PhaseFixed) {
				points[m.Offered] = append(points[m.Offered], m)
			}
		}
		rates := make([]float64, 0, len(points))
		for r := range points {
			rates = append(rates, r)
		}
		slices.Sort(rates)
		for _, r := range rates {
			ms := points[r]
			p.Sweep = append(p.Sweep, SweepPoint{
				System: sys, Offered: r,
				Achieved: median(ms, func(m Measurement) float64 { return m.Result.Rate }),
				P50:      time.Duration(median(ms, func(m Measurement) float64 { return float64(m.Result.Latency.P50) })),
				P99:      time.Duration(median(ms, func(m Measurement) float64 { return float64(m.Result.Latency.P99) })),
			})
		}
	}
}

func summarizeSystem(p *Part, sys string) SystemSummary {
	var max, fixed []Measurement
	s := SystemSummary{System: sys}
	for _, m := range p.Measurements {
		if m.System != sys || m.Result == nil {
			continue
		}
		s.Errors += m.Result.ErrorCount()
		switch m.Phase {
		case PhaseMax:
			max = append(max, m)
			s.MaxRates = append(s.MaxRates, m.Result.Rate)
		case PhaseFixed:
			fixed = append(fixed, m)
			s.CPUPerOpRounds = append(s.CPUPerOpRounds, m.CPUPerOp(p.CPUMethod))
		}
	}
	s.MaxRate = median(max, func(m Measurement) float64 { return m.Result.Rate })
	s.MaxGatewayUtil = median(max, Measurement.GatewayUtil)
	s.CPUPerOpMax = time.Duration(median(max, func(m Measurement) float64 { return float64(m.CPUPerOp(p.CPUMethod)) }))
	s.FixedAchieved = median(fixed, func(m Measurement) float64 { return m.Result.Rate })
	s.CPUPerOp = time.Duration(median(fixed, func(m Measurement) float64 { return float64(m.CPUPerOp(p.CPUMethod)) }))
	s.CPUPerOpOthers = time.Duration(median(fixed, func(m Measurement) float64 { return float64(m.CPUPerOpOthers()) }))
	s.P50 = time.Duration(median(fixed, func(m Measurement) float64 { return float64(m.Result.Latency.P50) }))
	s.P99 = time.Duration(median(fixed, func(m Measurement) float64 { return float64(m.Result.Latency.P99) }))
	s.P999 = time.Duration(median(fixed, func(m Measurement) float64 { return float64(m.Result.Latency.P999) }))
	s.Loss = median(fixed, func(m Measurement) float64 { return m.Result.Loss })
	s.Others = median(fixed, func(m Measurement) float64 {
		if m.CPU.Window <= 0 {
			return 0
		}
		return m.CPU.Others.Seconds() / m.CPU.Window.Seconds()
	})
	return s
}

// median of f over ms; the mean of the middle two for an even count, 0 for
// none.
func median(ms []Measurement, f func(Measurement) float64) float64 {
	if len(ms) == 0 {
		return 0
	}
	v := make([]float64, len(ms))
	for i, m := range ms {
		v[i] = f(m)
	}
	return Median(v)
}

// Median returns the median of v (the mean of the middle two for an even
// count), 0 for an empty slice. v is not modified.
func Median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// Numerators picks the systems whose ratios are reported: xlb's engines
// (names starting with "xlb") against the peers, or, without xlb, the first
// system against the rest (the l7 baseline's haproxy/nginx).
func Numerators(systems []string) []string {
	var xlb []string
	for _, s := range systems {
		if strings.HasPrefix(s, "xlb") {
			xlb = append(xlb, s)
		}
	}
	if len(xlb) > 0 {
		return xlb
	}
	if len(systems) > 0 {
		return systems[:1]
	}
	return nil
}
