package scenario

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/xlbproject/xlb/bench/peers"
	"github.com/xlbproject/xlb/bench/report"
	"github.com/xlbproject/xlb/internal/labsvc"
	"github.com/xlbproject/xlb/internal/netlab"
)

// Run runs the scenario called name and writes its outputs (results.json,
// summary.md, plots, logs) to o.OutDir. Everything it creates — namespaces,
// processes, nftables tables — is removed before it returns, also when ctx
// is cancelled. The report is returned even with an error when there is
// one, for what it recorded.
func Run(ctx context.Context, name string, o Options) (*report.Report, error) {
	sc, ok := Lookup(name)
	if !ok {
		return nil, fmt.Errorf("unknown scenario %q (have %v)", name, Names())
	}
	for _, w := range o.Workloads {
		if !slices.ContainsFunc(sc.Workloads, func(x Workload) bool { return x.Name == w }) {
			return nil, fmt.Errorf("scenario %s has no workload %q", name, w)
		}
	}
	o, err := o.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("scenario %s: %w", name, err)
	}
	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return nil, err
	}
	r := &report.Report{
		Scenario: sc.Name, Title: sc.Title, Description: sc.Description,
		Command: o.Command, Date: time.Now(), Machine: report.ThisMachine(),
		Settings: report.Settings{
			Rounds: o.Rounds, Duration: o.Duration, Warmup: o.Warmup, SweepDuration: o.SweepDuration,
			LoadCPU: o.LoadCPU, GatewayCPU: o.GatewayCPU, Quick: o.Quick,
		},
		Method: slices.Clone(sc.Method),
	}
	if sc.Custom == nil {
		r.Method = append(r.Method, commonMethod(o)...)
	}
	body := run
	if sc.Custom != nil {
		body = func(ctx context.Context, _ Scenario, o Options, r *report.Report) error { return sc.Custom(ctx, o, r) }
	}
	if err := body(ctx, sc, o, r); err != nil {
		return r, fmt.Errorf("scenario %s: %w", name, err)
	}
	if err := report.Write(o.OutDir, r); err != nil {
		return r, fmt.Errorf("scenario %s: writing the report: %w", name, err)
	}
	return r, nil
}

func run(ctx context.Context, sc Scenario, o Options, r *report.Report) (err error) {
	logf := func(format string, args ...any) {
		fmt.Fprintf(o.Log, "[%s] %s\n", sc.Name, fmt.Sprintf(format, args...))
	}
	restore, err := pinSelf(o.LoadCPU)
	if err != nil {
		return err
	}
	defer restore()

	topo := topology(sc.Backends)
	lab, err := netlab.Build(ctx, topo)
	if err != nil {
		return err
	}
	r.Cleanup.LabPrefix = lab.Prefix()
	defer func() { err = errors.Join(err, lab.Close()) }()
	logf("lab %s: client -> gateway (VIP %s) -> %d backends; load on core %d, gateway on core %d",
		lab.Prefix(), netlab.VIP, sc.Backends, o.LoadCPU, o.GatewayCPU)
	if err := steer(ctx, lab, topo, o.LoadCPU, o.GatewayCPU); err != nil {
		return err
	}
	bs, err := labsvc.StartBackends(ctx, lab, sc.Backends)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, bs.Close()) }()

	e := &Env{Lab: lab, Backends: bs, Opts: o, n: sc.Backends, logf: logf}
	for _, cpu := range []int{o.LoadCPU, o.GatewayCPU} {
		k, err := keepTicking(ctx, lab, cpu, filepath.Join(o.OutDir, fmt.Sprintf("tick-keeper-cpu%d.log", cpu)))
		if err != nil {
			return err
		}
		defer k.Stop(time.Second)
		e.keepers = append(e.keepers, k.PID())
	}
	systems := sc.Systems()
	// Cleanup must run even after Ctrl-C: a context that is never
	// cancelled, bounded in time.
	cleanupCtx := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	}
	defer func() {
		cctx, cancel := cleanupCtx()
		defer cancel()
		for _, s := range systems {
			if serr := s.Stop(cctx, e); serr != nil {
				err = errors.Join(err, fmt.Errorf("stopping %s: %w", s.Name(), serr))
			}
		}
		left, lerr := leftTables(cctx, e)
		r.Cleanup.TablesLeft = left
		err = errors.Join(err, lerr)
		if len(left) > 0 {
			err = errors.Join(err, fmt.Errorf("nftables tables left behind: %v", left))
		}
	}()
	for _, s := range systems {
		logf("starting %s", s.Name())
		if err := s.Start(ctx, e); err != nil {
			return fmt.Errorf("starting %s: %w", s.Name(), err)
		}
		r.Cleanup.PIDs = append(r.Cleanup.PIDs, s.PIDs()...)
	}
	for _, w := range sc.Workloads {
		if len(o.Workloads) > 0 && !slices.Contains(o.Workloads, w.Name) {
			continue
		}
		part, err := runWorkload(ctx, e, w, systems, logf)
		if part != nil {
			r.Parts = append(r.Parts, part)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", w.Name, err)
		}
	}
	return nil
}

// leftTables lists the run's nftables tables still in the gateway.
func leftTables(ctx context.Context, e *Env) ([]string, error) {
	if len(e.tables) == 0 {
		return nil, nil
	}
	names, err := peers.ListTables(ctx, e.Lab, netlab.HostGateway)
	if err != nil {
		return nil, err
	}
	var left []string
	for _, n := range names {
		if slices.Contains(e.tables, n) {
			left = append(left, n)
		}
	}
	return left, nil
}

func runWorkload(ctx context.Context, e *Env, w Workload, all []System, logf func(string, ...any)) (*report.Part, error) {
	var systems []System
	for _, s := range all {
		if s.Target(w.Name) != "" {
			systems = append(systems, s)
		}
	}
	if len(systems) == 0 {
		return nil, errors.New("no system serves it")
	}
	p := &report.Part{
		Name: w.Name, Title: w.Title, Short: w.Short, Unit: w.Unit, Op: w.Op, CPUMethod: w.CPUMethod,
		Connections: w.Connections, NoLatency: w.Run != nil && !w.Latency,
	}
	if e.Opts.Connections > 0 {
		p.Connections = e.Opts.Connections
	}
	for _, s := range systems {
		p.Systems = append(p.Systems, s.Name())
		if u, ok := s.(interface{ CPUUnmeasured(workload string) bool }); ok && u.CPUUnmeasured(w.Name) {
			p.CPUUnmeasured = append(p.CPUUnmeasured, s.Name())
		}
	}
	p.Numerators = report.Numerators(p.Systems)

	// Every system answers through the lab before anything is measured.
	for _, s := range systems {
		if err := s.Enter(ctx, e); err != nil {
			return p, fmt.Errorf("%s: %w", s.Name(), err)
		}
		target := s.Target(w.Name)
		check := func(ctx context.Context) error { return w.Check(ctx, e.Lab, target) }
		if w.Probe != nil {
			check = func(ctx context.Context) error { return w.Probe(ctx, e, s) }
		}
		err := waitReady(ctx, 15*time.Second, check)
		if lerr := s.Leave(ctx, e); err == nil {
			err = lerr
		}
		if err != nil {
			return p, fmt.Errorf("%s does not serve %s: %w", s.Name(), target, err)
		}
	}

	o := e.Opts
	measure := func(s System, phase report.Phase, round int, rate float64, dur time.Duration) error {
		m, err := e.measure(ctx, s, w, phase, round, rate, dur)
		if err != nil {
			return fmt.Errorf("%s %s round %d: %w", s.Name(), phase, round, err)
		}
		p.Measurements = append(p.Measurements, m)
		when := fmt.Sprintf("round %d/%d", round, o.Rounds)
		if phase == report.PhaseSweep {
			when = "at " + fmtRate(rate) + "/s"
		}
		logf("%s %-5s %-11s %-9s %s %s, %s, gateway core %.0f%% busy, p50 %s p99 %s, errors %d",
			w.Name, phase, when, s.Name(), fmtRate(m.Result.Rate), w.Unit,
			fmtCPU(m, w), 100*m.GatewayUtil(), m.Result.Latency.P50, m.Result.Latency.P99, m.Result.ErrorCount())
		return nil
	}

	// 1. The highest rate, closed loop, interleaved rounds.
	for round := 1; round <= o.Rounds; round++ {
		for _, s := range systems {
			if err := measure(s, report.PhaseMax, round, 0, o.Duration); err != nil {
				return p, err
			}
		}
	}
	report.Summarize(p)
	slowest := math.Inf(1)
	for _, s := range p.Summary {
		if s.MaxRate <= 0 {
			return p, fmt.Errorf("%s served no %s closed loop (see the logs in %s)", s.System, w.Op, o.OutDir)
		}
		slowest = math.Min(slowest, s.MaxRate)
	}

	// 2. Latency and CPU at one rate every system sustains.
	p.FixedRate = o.FixedRate
	if p.FixedRate == 0 {
		p.FixedRate = math.Round(slowest / 2)
	}
	for round := 1; round <= o.Rounds; round++ {
		for _, s := range systems {
			if err := measure(s, report.PhaseFixed, round, p.FixedRate, o.Duration); err != nil {
				return p, err
			}
		}
	}

	// 3. The sweep, once per rate; the fixed rate is measured already.
	for _, rt := range o.Rates {
		rate := math.Round(rt.resolve(slowest))
		if rate <= 0 || math.Abs(rate-p.FixedRate) <= 0.01*p.FixedRate {
			continue
		}
		for _, s := range systems {
			if err := measure(s, report.PhaseSweep, 1, rate, o.SweepDuration); err != nil {
				return p, err
			}
		}
	}
	report.Summarize(p)
	return p, nil
}

func fmtRate(r float64) string { return fmt.Sprintf("%.0f", r) }

func fmtCPU(m report.Measurement, w Workload) string {
	return fmt.Sprintf("%.1f µs/%s (%s)", float64(m.CPUPerOp(w.CPUMethod))/float64(time.Microsecond), w.Op, w.CPUMethod)
}
