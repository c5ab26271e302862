// Package scenario runs side-by-side benchmarks of xlb and its peers in a
// network-namespace lab: client -> gateway (the system under test) ->
// backends. Each scenario starts every system once, then measures them in
// interleaved rounds (A B C, A B C, ...) with identical load: the highest
// closed-loop rate, then latency and CPU per operation at one fixed
// open-loop rate, then a latency-vs-rate sweep. The load generator is
// `xlb-bench http|tcp|udp -json` run as its own process in the client
// namespace, pinned to one core; the system under test and the gateway's
// packet processing are pinned to the other.
//
// Scenarios are registered in Registry; a scenario is a list of workloads
// and a list of systems, so a new system (xlb's L7 proxy, its XDP engine)
// joins with one entry.
package scenario

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/xlbproject/xlb/bench/report"
)

// Scenario is one side-by-side benchmark.
type Scenario struct {
	Name        string
	Title       string
	Description string
	// Backends is the number of backend hosts (be1..beN) running
	// labsvc's HTTP, TCP echo and UDP echo servers.
	Backends int
	// Workloads are measured one after the other, each on every system
	// that serves it.
	Workloads []Workload
	// Systems returns fresh systems for one run, in measuring order.
	Systems func() []System
	// Method explains how the figures were got (RESULTS.md quotes it).
	Method []string
	// Custom, when set, runs a scenario of another shape than systems
	// side by side (failover: its own lab, one measurement per round);
	// it fills the report's Body. Workloads and Systems are unused.
	Custom func(ctx context.Context, o Options, r *report.Report) error
}

// Registry returns every scenario.
func Registry() []Scenario {
	return []Scenario{l7Baseline(), l4(), snat(), tlsScenario(), failover()}
}

// Lookup returns the scenario called name.
func Lookup(name string) (Scenario, bool) {
	for _, s := range Registry() {
		if s.Name == name {
			return s, true
		}
	}
	return Scenario{}, false
}

// Names lists the registered scenarios.
func Names() []string {
	var names []string
	for _, s := range Registry() {
		names = append(names, s.Name)
	}
	return names
}

// Rate is a sweep rate: ops/s, or a fraction of the slowest system's
// closed-loop rate when Relative.
type Rate struct {
	Value    float64
	Relative bool
}

func (r Rate) String() string {
	s := strconv.FormatFloat(r.Value, 'g', -1, 64)
	if r.Relative {
		s += "x"
	}
	return s
}

// resolve returns the rate in ops/s given the slowest system's max rate.
func (r Rate) resolve(slowest float64) float64 {
	if r.Relative {
		return r.Value * slowest
	}
	return r.Value
}

// ParseRates parses a comma-separated list of sweep rates: "20000" is
// 20000 ops/s, "0.5x" half the slowest system's closed-loop rate.
func ParseRates(s string) ([]Rate, error) {
	var rates []Rate
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		r := Rate{}
		if v, ok := strings.CutSuffix(f, "x"); ok {
			f, r.Relative = v, true
		}
		v, err := strconv.ParseFloat(f, 64)
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("rate %q: want a positive number, or a fraction of the slowest max rate like 0.5x", f)
		}
		r.Value = v
		rates = append(rates, r)
	}
	if len(rates) == 0 {
		return nil, errors.New("no rates")
	}
	return rates, nil
}

// Options control a run.
type Options struct {
	// Rounds of interleaved measurements (default 3; 1 with Quick).
	Rounds int
	// Duration is each measured window (default 5 s; 1 s with Quick),
	// Warmup the unrecorded lead-in of each (default 1 s; 300 ms with
	// Quick), SweepDuration the window of each sweep point (default half
	// of Duration, at least 1 s).
	Duration, Warmup, SweepDuration time.Duration
	// Quick shortens every default, for tests.
	Quick bool
	// Rates of the latency sweep (default 0.25x,0.5x,0.75x,0.95x; with
	// Quick 0.5x,0.9x). A rate equal to the fixed rate reuses the fixed
	// phase's measurements.
	Rates []Rate
	// FixedRate is the open-loop rate of the latency and CPU comparison;
	// 0: half the slowest system's closed-loop rate.
	FixedRate float64
	// Connections overrides each workload's concurrency.
	Connections int
	// Workloads, if set, runs only the named workloads of the scenario.
	Workloads []string
	// OutDir receives results.json, summary.md, the plots and every
	// process's log.
	OutDir string
	// Bench is the xlb-bench binary run as the load generator; Xlbd the
	// xlbd binary.
	Bench, Xlbd string
	// LoadCPU runs the generator and the backends, GatewayCPU the system
	// under test and the gateway's packet processing (defaults 0 and 1).
	LoadCPU, GatewayCPU int
	// Command is the command line recorded in the report.
	Command string
	// Log receives progress lines (may be nil).
	Log io.Writer
}

func (o Options) withDefaults() (Options, error) {
	def := func(v *time.Duration, normal, quick time.Duration) {
		if *v == 0 {
			*v = normal
			if o.Quick {
				*v = quick
			}
		}
	}
	if o.Rounds == 0 {
		o.Rounds = 3
		if o.Quick {
			o.Rounds = 1
		}
	}
	def(&o.Duration, 5*time.Second, time.Second)
	def(&o.Warmup, time.Second, 300*time.Millisecond)
	if o.SweepDuration == 0 {
		o.SweepDuration = max(o.Duration/2, time.Second)
	}
	if o.Rates == nil {
		o.Rates = []Rate{{0.25, true}, {0.5, true}, {0.75, true}, {0.95, true}}
		if o.Quick {
			o.Rates = []Rate{{0.5, true}, {0.9, true}}
		}
	}
	if o.LoadCPU == 0 && o.GatewayCPU == 0 {
		o.GatewayCPU = 1
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	var errs []error
	if o.Rounds < 1 {
		errs = append(errs, fmt.Errorf("rounds %d: want at least 1", o.Rounds))
	}
	if o.Duration < 500*time.Millisecond || o.Warmup < 0 || o.SweepDuration < 500*time.Millisecond {
		errs = append(errs, fmt.Errorf("duration %s, sweep %s: want at least 500ms; warmup %s: not negative", o.Duration, o.SweepDuration, o.Warmup))
	}
	if o.LoadCPU == o.GatewayCPU || o.LoadCPU < 0 || o.GatewayCPU < 0 {
		errs = append(errs, fmt.Errorf("load cpu %d and gateway cpu %d: want two different cores", o.LoadCPU, o.GatewayCPU))
	}
	if o.FixedRate < 0 || o.Connections < 0 {
		errs = append(errs, errors.New("fixed rate and connections must not be negative"))
	}
	if o.OutDir == "" || o.Bench == "" {
		errs = append(errs, errors.New("out dir and the xlb-bench binary are required"))
	} else if abs, err := filepath.Abs(o.OutDir); err == nil {
		// The peers' configurations name files in it, read from elsewhere.
		o.OutDir = abs
	}
	return o, errors.Join(errs...)
}
