package scenario

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/xlbproject/xlb/bench/load"
	"github.com/xlbproject/xlb/bench/report"
	"github.com/xlbproject/xlb/internal/netlab"
)

// h2loadStreams is h2load's concurrency: one connection with as many
// streams as the Go generator's h2 workload, so the two parts compare.
const h2loadStreams = 32

// tlsH2Load is the HTTP/2 workload driven by nghttp2's h2load, the tool
// the issue names: a C client that spends far less of the load core per
// request than the Go generator, so the proxies' own limits show.
func tlsH2Load() Workload {
	return Workload{
		Name: "h2load", Title: "HTTP/2 over TLS driven by h2load (one connection, 32 streams)", Short: "HTTP/2 (h2load)",
		Unit: "req/s", Op: "request", CPUMethod: report.CPUProcess, Connections: h2loadStreams,
		Run: runH2Load, Latency: true,
		Probe: func(ctx context.Context, e *Env, sys System) error {
			return checkHTTPS(ctx, e.Lab, sys.Target("h2load"))
		},
	}
}

// runH2Load runs h2load from the client host on the load core for the
// warmup and d, closed loop (rate 0) or at rate requests per second, and
// reads its summary and per-request log. h2load paces an open loop from
// each request's actual start, so its latencies are not corrected for
// coordinated omission as the Go generator's are.
func runH2Load(ctx context.Context, e *Env, sys System, rate float64, d time.Duration, window cpuWindow) (*load.Result, report.CPU, error) {
	logPath := filepath.Join(e.Opts.OutDir, "h2load-requests.log")
	defer os.Remove(logPath)
	args := []string{"-c", strconv.Itoa(e.Opts.LoadCPU), "h2load", "-c", "1", "-t", "1",
		"-m", strconv.Itoa(h2loadStreams), "-D", h2loadDuration(d), "--log-file=" + logPath}
	if e.Opts.Warmup > 0 {
		args = append(args, "--warm-up-time="+h2loadDuration(e.Opts.Warmup))
	}
	if rate > 0 {
		args = append(args, "--rps", strconv.FormatFloat(rate, 'f', 0, 64))
	}
	args = append(args, sys.Target("h2load"))
	cmd := e.Lab.Command(ctx, netlab.HostClient, "taskset", args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = time.Second
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, report.CPU{}, fmt.Errorf("starting h2load: %w", err)
	}
	done := window(start.Add(e.Opts.Warmup))
	werr := cmd.Wait()
	cpu, rerr := done()
	if werr != nil {
		return nil, cpu, fmt.Errorf("h2load: %w: %s", werr, tail(stdout.String()+stderr.String()))
	}
	if rerr != nil {
		return nil, cpu, rerr
	}
	res, err := parseH2Load(stdout.String(), d, rate)
	if err != nil {
		return nil, cpu, err
	}
	res.Target = sys.Target("h2load")
	if res.Latency, err = h2loadLatency(logPath); err != nil {
		return nil, cpu, err
	}
	e.logf("h2load         %-9s %.0f req/s, p50 %s, p99 %s, errors %v", sys.Name(), res.Rate, res.Latency.P50, res.Latency.P99, res.Errors)
	return res, cpu, nil
}

// h2loadDuration is d as h2load reads it: whole milliseconds ("2.5s" is
// refused).
func h2loadDuration(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) + "ms" }

var (
	h2loadRate     = regexp.MustCompile(`finished in [^,]+, ([0-9.]+) req/s`)
	h2loadRequests = regexp.MustCompile(`requests: (\d+) total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout`)
)

// parseH2Load reads h2load's summary: its rate is over the main duration,
// without the warmup.
func parseH2Load(out string, d time.Duration, rate float64) (*load.Result, error) {
	mr, mq := h2loadRate.FindStringSubmatch(out), h2loadRequests.FindStringSubmatch(out)
	if mr == nil || mq == nil {
		return nil, fmt.Errorf("h2load: no summary in %q", tail(out))
	}
	num := func(s string) uint64 { n, _ := strconv.ParseUint(s, 10, 64); return n }
	r, _ := strconv.ParseFloat(mr[1], 64)
	res := &load.Result{Kind: "http", Proto: "h2", Duration: d, Offered: rate, Ops: num(mq[2]), Rate: r,
		Connections: 1, Errors: map[string]uint64{}}
	// h2load does not say why a request failed, only that it did, errored
	// (the connection broke) or timed out.
	if n := num(mq[3]); n > 0 {
		res.Errors[load.ErrOther] = n
	}
	if n := num(mq[4]); n > 0 {
		res.Errors[load.ErrReset] = n
	}
	if n := num(mq[5]); n > 0 {
		res.Errors[load.ErrTimeout] = n
	}
	return res, nil
}

// h2loadLatency summarises the per-request log (start, status, duration in
// microseconds) of the answered requests.
func h2loadLatency(path string) (load.Percentiles, error) {
	f, err := os.Open(path)
	if err != nil {
		return load.Percentiles{}, fmt.Errorf("h2load log: %w", err)
	}
	defer f.Close()
	var us []int64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		cols := strings.Split(sc.Text(), "\t")
		if len(cols) != 3 || !strings.HasPrefix(cols[1], "2") {
			continue
		}
		if v, err := strconv.ParseInt(cols[2], 10, 64); err == nil {
			us = append(us, v)
		}
	}
	if err := sc.Err(); err != nil {
		return load.Percentiles{}, fmt.Errorf("h2load log: %w", err)
	}
	if len(us) == 0 {
		return load.Percentiles{}, fmt.Errorf("h2load log: no answered request")
	}
	slices.Sort(us)
	at := func(q float64) time.Duration {
		return time.Duration(us[min(len(us)-1, int(q*float64(len(us))))]) * time.Microsecond
	}
	var sum int64
	for _, v := range us {
		sum += v
	}
	return load.Percentiles{P50: at(0.50), P90: at(0.90), P99: at(0.99), P999: at(0.999),
		Max: time.Duration(us[len(us)-1]) * time.Microsecond, Mean: time.Duration(sum/int64(len(us))) * time.Microsecond}, nil
}
