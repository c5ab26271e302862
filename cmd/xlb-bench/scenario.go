package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/xlbproject/xlb/bench/report"
	"github.com/xlbproject/xlb/bench/scenario"
)

const scenarioUsage = `Usage: xlb-bench scenario NAME [flags]
       xlb-bench scenario list

Runs a side-by-side benchmark of xlb and its peers in a network-namespace
lab and writes results.json, summary.md and PNG plots to --out.

`

func runScenario(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return fmt.Errorf("%sscenarios: %s", scenarioUsage, strings.Join(scenario.Names(), ", "))
	}
	name := args[0]
	if name == "list" {
		for _, s := range scenario.Registry() {
			fmt.Fprintf(stdout, "%-12s %s\n", s.Name, s.Title)
		}
		return nil
	}
	if _, ok := scenario.Lookup(name); !ok {
		return fmt.Errorf("unknown scenario %q; have %s", name, strings.Join(scenario.Names(), ", "))
	}
	fs := flag.NewFlagSet("xlb-bench scenario "+name, flag.ContinueOnError)
	fs.SetOutput(stdout)
	var o scenario.Options
	fs.IntVar(&o.Rounds, "rounds", 0, "interleaved rounds (default 3; 1 with --quick)")
	fs.DurationVar(&o.Duration, "duration", 0, "each measured window (default 5s; 1s with --quick)")
	fs.DurationVar(&o.Warmup, "warmup", 0, "unrecorded lead-in of each measurement (default 1s; 300ms with --quick)")
	fs.DurationVar(&o.SweepDuration, "sweep-duration", 0, "each sweep point's window (default half of --duration, at least 1s)")
	fs.BoolVar(&o.Quick, "quick", false, "short defaults, for tests")
	rates := fs.String("rates", "", "latency sweep rates, ops/s or fractions of the slowest max rate (default 0.25x,0.5x,0.75x,0.95x)")
	fs.Float64Var(&o.FixedRate, "fixed-rate", 0, "open-loop rate of the latency and CPU comparison (default half the slowest max rate)")
	fs.IntVar(&o.Connections, "connections", 0, "generator concurrency (default per workload: 32)")
	workloads := fs.String("workloads", "", "comma-separated workloads to run (default: all of the scenario's)")
	fs.IntVar(&o.LoadCPU, "load-cpu", 0, "core of the load generator and the backends")
	fs.IntVar(&o.GatewayCPU, "gateway-cpu", 1, "core of the system under test and the gateway's packet processing")
	out := fs.String("out", "", "output directory (default bench/out/NAME-TIMESTAMP)")
	xlbd := fs.String("xlbd", "", "xlbd binary (default: next to xlb-bench, then $PATH)")
	update := fs.Bool("update-results", false, "also update the scenario's section of --results and copy the plots to --results-dir")
	resultsMD := fs.String("results", "bench/RESULTS.md", "the results document --update-results edits")
	resultsDir := fs.String("results-dir", "bench/results", "where --update-results copies the plots (DIR/NAME/*.png)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *rates != "" {
		var err error
		if o.Rates, err = scenario.ParseRates(*rates); err != nil {
			return fmt.Errorf("--rates: %w", err)
		}
	}
	for w := range strings.SplitSeq(*workloads, ",") {
		if w = strings.TrimSpace(w); w != "" {
			o.Workloads = append(o.Workloads, w)
		}
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding xlb-bench for the generator: %w", err)
	}
	o.Bench = self
	if o.Xlbd, err = findXlbd(*xlbd); err != nil {
		return err
	}
	o.OutDir = *out
	if o.OutDir == "" {
		o.OutDir = filepath.Join("bench", "out", name+"-"+time.Now().Format("20060102-150405"))
	}
	o.Command = strings.Join(append([]string{filepath.Base(os.Args[0]), "scenario"}, args...), " ")
	o.Log = stdout

	r, err := scenario.Run(ctx, name, o)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\n%s\nresults: %s\n", report.Markdown(r, ".", "#"), o.OutDir)
	if *update {
		if err := report.UpdateResults(*resultsMD, *resultsDir, o.OutDir, r); err != nil {
			return errors.Join(errors.New("updating the results"), err)
		}
		fmt.Fprintf(stdout, "updated %s (section %s) and %s\n", *resultsMD, name, filepath.Join(*resultsDir, name))
	}
	return nil
}
