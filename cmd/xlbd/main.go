// Command xlbd is the xlb daemon: it parses flags, handles signals and hands
// everything else to internal/daemon.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/xlbproject/xlb/controlplane/config"
	"github.com/xlbproject/xlb/dataplane/xdp"
	"github.com/xlbproject/xlb/internal/buildinfo"
	"github.com/xlbproject/xlb/internal/daemon"
	"github.com/xlbproject/xlb/internal/logging"
)

const usage = `xlbd: the xlb load balancer and NAT gateway daemon

Usage:
  xlbd run [--config FILE] [flags]   run the daemon (no file: the embedded demo configuration)
  xlbd validate FILE...              check configuration files; exit 1 listing every error
  xlbd cleanup [--bpffs DIR]         detach the XDP program and remove its pinned maps
                                     (every flow the fast path tracks is dropped)
  xlbd version                       print the version

A restart runs the last applied version from the state directory unless the
file changed since it was applied (or --force-config); xlbctl drives the
control API on node.control.listen (default unix:///run/xlb/xlb.sock).

Signals: SIGHUP reloads the configuration file (a new version); SIGTERM or
SIGINT drains and exits.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "run":
		return runDaemon(args[1:], stderr)
	case "validate":
		return validate(args[1:], stdout, stderr)
	case "cleanup":
		return cleanup(args[1:], stdout, stderr)
	case "version":
		fmt.Fprintf(stdout, "xlbd %s (%s)\n", buildinfo.Version, buildinfo.GoVersion())
		return 0
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "xlbd: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}

func validate(files []string, stdout, stderr io.Writer) int {
	if len(files) == 0 {
		fmt.Fprintln(stderr, "xlbd validate: name at least one configuration file")
		return 2
	}
	status := 0
	for _, f := range files {
		if _, err := config.LoadFile(f); err != nil {
			status = 1
			fmt.Fprintf(stdout, "%s: invalid\n", f)
			var errs config.Errors
			if errors.As(err, &errs) {
				for _, e := range errs {
					fmt.Fprintf(stdout, "  %s\n", e)
				}
			} else {
				fmt.Fprintf(stdout, "  %v\n", err)
			}
			continue
		}
		fmt.Fprintf(stdout, "%s: ok\n", f)
	}
	return status
}

func runDaemon(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("xlbd run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "configuration file (YAML); empty: the embedded demo configuration")
	logFormat := fs.String("log-format", "console", "log format: json or console")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	metrics := fs.String("metrics-listen", "", "override node.metrics.listen (HOST:PORT or off)")
	drain := fs.Duration("drain-timeout", 30*time.Second, "how long SIGTERM waits for open connections")
	bpffs := fs.String("bpffs", daemon.DefaultBPFFS, "where the XDP maps and links are pinned (kept across restarts)")
	stateDir := fs.String("state-dir", "", "override node.state_dir")
	accessLog := fs.Bool("http-access-log", true, "log every proxied HTTP request (JSON fields through the logger)")
	control := fs.String("control-listen", "", "override node.control.listen (unix:///PATH, tcp://HOST:PORT with node.control.tls, or off)")
	force := fs.Bool("force-config", false, "run the configuration file even if the stored state is newer (see docs/control-plane.md)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	log, err := logging.New(*logFormat, *logLevel)
	if err != nil {
		fmt.Fprintln(stderr, "xlbd:", err)
		return 2
	}
	defer func() { _ = log.Sync() }()

	d, err := daemon.New(daemon.Options{
		ConfigPath: *configPath, MetricsListen: *metrics, DrainTimeout: *drain, BPFFS: *bpffs, Log: log,
		StateDir: *stateDir, AccessLog: *accessLog, ControlListen: *control, ForceConfig: *force,
	})
	if err != nil {
		log.Error("cannot start", zap.Error(err))
		return 1
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				// Errors are logged and counted by Reload; the running config stays.
				_ = d.Reload(ctx)
			}
		}
	}()

	if err := d.Run(ctx); err != nil {
		log.Error("xlbd failed", zap.Error(err))
		return 1
	}
	return 0
}

func cleanup(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("xlbd cleanup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	bpffs := fs.String("bpffs", daemon.DefaultBPFFS, "the pin directory xlbd run used")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	removed, err := xdp.Cleanup(*bpffs)
	for _, r := range removed {
		fmt.Fprintln(stdout, "removed", r)
	}
	if err != nil {
		fmt.Fprintln(stderr, "xlbd cleanup:", err)
		return 1
	}
	if len(removed) == 0 {
		fmt.Fprintln(stdout, "nothing pinned under", *bpffs)
	}
	return 0
}
