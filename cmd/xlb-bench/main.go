// Command xlb-bench holds xlb's load generators, test backends, lab tools and
// the demo. It is a thin main: each subcommand lives in bench/ or internal/.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `xlb-bench: load generators, test backends, lab tools and the demo

Usage:
  xlb-bench serve [--name N] [--http ADDR] [--tcp ADDR] [--udp ADDR]
                                   test backends: HTTP (name, /headers, /cookie, /bytes,
                                   /echo, /ws, ...), TCP echo and UDP echo ("whoami" -> name)
  xlb-bench http|tcp|udp [flags] TARGET
                                   load generators: closed or open loop (-rate), HDR
                                   latency percentiles, errors by kind, -json
  xlb-bench xdp [flags]            live-frame packet generator (BPF_PROG_TEST_RUN), with an
                                   optional counting sink: offered and received Mpps
  xlb-bench scenario NAME          side-by-side benchmarks of xlb and its peers in a lab
  xlb-bench demo [--xlbd PATH] [--hold auto|yes|no]
                                   the make run demo: lab, backends, xlbd, real traffic
  xlb-bench lab cleanup            remove lab namespaces and pins a crashed run left behind
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = runServe(ctx, args[1:], stdout)
	case "http":
		err = runHTTP(ctx, args[1:], stdout)
	case "tcp":
		err = runTCP(ctx, args[1:], stdout)
	case "udp":
		err = runUDP(ctx, args[1:], stdout)
	case "xdp":
		err = runXDP(ctx, args[1:], stdout)
	case "scenario":
		err = runScenario(ctx, args[1:], stdout)
	case "demo":
		err = runDemo(ctx, args[1:], stdout)
	case "lab":
		err = runLab(ctx, args[1:], stdout)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "xlb-bench: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if err != nil {
		fmt.Fprintln(stderr, "xlb-bench:", err)
		return 1
	}
	return 0
}
