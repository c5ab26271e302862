package scenario

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/xlbproject/xlb/bench/load"
	"github.com/xlbproject/xlb/bench/report"
	"github.com/xlbproject/xlb/bench/scenario/cputime"
	"github.com/xlbproject/xlb/internal/netlab"
)

// reading is one snapshot of every CPU counter a measurement uses.
type reading struct {
	at        time.Time
	procs     []cputime.Proc
	system    time.Duration // the system's process trees
	cores     cputime.System
	generator time.Duration
	self      time.Duration // this process: the benchmark and the backends
	ours      map[int]bool  // the pids above, with the trees' members
}

func (e *Env) read(sys System, genPID int) (reading, error) {
	r := reading{ours: map[int]bool{genPID: true, os.Getpid(): true}}
	for _, pid := range e.keepers {
		r.ours[pid] = true
	}
	var err error
	if r.procs, err = cputime.All(); err != nil {
		return r, err
	}
	for _, pid := range sys.PIDs() {
		d, err := cputime.TreeOf(r.procs, pid)
		if err != nil {
			return r, fmt.Errorf("%s: %w", sys.Name(), err)
		}
		r.system += d
		for _, p := range cputime.Descendants(r.procs, pid) {
			r.ours[p] = true
		}
	}
	for _, p := range r.procs {
		switch p.PID {
		case genPID:
			r.generator = p.Total()
		case os.Getpid():
			r.self = p.Total()
		}
	}
	if r.cores, err = cputime.ReadSystem(); err != nil {
		return r, err
	}
	r.at = time.Now()
	return r, nil
}

func (e *Env) cpuDelta(before, after reading) report.CPU {
	d := after.cores.Sub(before.cores)
	c := report.CPU{
		Window:    after.at.Sub(before.at),
		Process:   after.system - before.system,
		AllCores:  d.Total.Busy(),
		Generator: after.generator - before.generator,
		Backends:  after.self - before.self,
		Others:    cputime.Others(before.procs, after.procs, after.ours),
	}
	if gw, ok := d.Core(e.Opts.GatewayCPU); ok {
		c.GatewayCore, c.GatewaySoftIRQ, c.GatewayIRQ = gw.Busy(), gw.SoftIRQTime(), gw.IRQTime()
	}
	return c
}

// measure runs the generator once against sys and reads the CPU counters
// inside its measured window: from 5% to 95% of the window after the
// warmup, so the few milliseconds the generator takes to start cannot put
// a reading outside it (CPU per operation divides rates, so the shorter
// reading window does not bias it).
func (e *Env) measure(ctx context.Context, sys System, w Workload, phase report.Phase, round int, rate float64, dur time.Duration) (report.Measurement, error) {
	m := report.Measurement{System: sys.Name(), Round: round, Phase: phase, Offered: rate}
	if err := sys.Enter(ctx, e); err != nil {
		return m, fmt.Errorf("%s: %w", sys.Name(), err)
	}
	var res *load.Result
	var cpu report.CPU
	var err error
	if w.Run != nil {
		res, cpu, err = w.Run(ctx, e, sys, rate, dur, func(start time.Time) func() (report.CPU, error) {
			return e.readWindow(ctx, sys, start, dur)
		})
	} else {
		res, cpu, err = e.runGenerator(ctx, sys, w, rate, dur)
	}
	if lerr := sys.Leave(ctx, e); lerr != nil && err == nil {
		err = fmt.Errorf("%s: %w", sys.Name(), lerr)
	}
	m.Result, m.CPU = res, cpu
	return m, err
}

// readWindow reads the CPU counters from 5% to 95% of a window of dur
// that starts at start, for load generated inside this process; the
// returned function waits for the readings.
func (e *Env) readWindow(ctx context.Context, sys System, start time.Time, dur time.Duration) func() (report.CPU, error) {
	type out struct {
		cpu report.CPU
		err error
	}
	ch := make(chan out, 1)
	go func() {
		readAt := func(at time.Duration) (reading, error) {
			if !sleepCtx(ctx, time.Until(start.Add(at))) {
				return reading{}, ctx.Err()
			}
			return e.read(sys, os.Getpid())
		}
		before, err := readAt(dur / 20)
		if err != nil {
			ch <- out{err: err}
			return
		}
		after, err := readAt(dur * 19 / 20)
		if err != nil {
			ch <- out{err: err}
			return
		}
		ch <- out{cpu: e.cpuDelta(before, after)}
	}()
	return func() (report.CPU, error) {
		o := <-ch
		return o.cpu, o.err
	}
}

func (e *Env) runGenerator(ctx context.Context, sys System, w Workload, rate float64, dur time.Duration) (*load.Result, report.CPU, error) {
	conns := w.Connections
	if e.Opts.Connections > 0 {
		conns = e.Opts.Connections
	}
	args := append(w.Args(sys.Target(w.Name), rate, conns), "-d", dur.String(), "-warmup", e.Opts.Warmup.String(), "-json")
	logf, err := os.OpenFile(filepath.Join(e.Opts.OutDir, "generator.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, report.CPU{}, err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "== %s %s: xlb-bench %s\n", time.Now().Format(time.TimeOnly), sys.Name(), strings.Join(args, " "))

	cmd := e.Lab.Command(ctx, netlab.HostClient, "taskset", append([]string{"-c", strconv.Itoa(e.Opts.LoadCPU), e.Opts.Bench}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// The generator stops by itself; this bounds a stuck one.
	cmd.WaitDelay = time.Second
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, report.CPU{}, fmt.Errorf("starting the generator: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()

	var cpu report.CPU
	readAt := func(at time.Duration) (reading, error) {
		select {
		case <-time.After(time.Until(start.Add(at))):
		case err := <-done:
			done <- err
			return reading{}, fmt.Errorf("generator exited early: %v: %s", err, tail(stderr.String()))
		case <-ctx.Done():
			return reading{}, ctx.Err()
		}
		return e.read(sys, cmd.Process.Pid)
	}
	before, rerr := readAt(e.Opts.Warmup + dur/20)
	var after reading
	if rerr == nil {
		after, rerr = readAt(e.Opts.Warmup + dur*19/20)
	}
	if rerr == nil {
		cpu = e.cpuDelta(before, after)
	} else {
		// Nothing left to measure: do not wait for the full window.
		_ = cmd.Cancel()
	}

	var werr error
	select {
	case werr = <-done:
	case <-time.After(dur + e.Opts.Warmup + 30*time.Second):
		_ = cmd.Cancel()
		werr = fmt.Errorf("generator did not finish: %w", <-done)
	}
	logf.Write(stderr.Bytes())
	if rerr != nil {
		return nil, cpu, rerr
	}
	if werr != nil {
		return nil, cpu, fmt.Errorf("generator: %w: %s", werr, tail(stderr.String()))
	}
	var res load.Result
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		return nil, cpu, fmt.Errorf("generator output: %w: %q", err, tail(stdout.String()))
	}
	fmt.Fprintf(logf, "-> %.0f ops/s, p50 %s, p99 %s, errors %v\n", res.Rate, res.Latency.P50, res.Latency.P99, res.Errors)
	return &res, cpu, nil
}

func tail(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 600 {
		return "..." + s[len(s)-600:]
	}
	return s
}
