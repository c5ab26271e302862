// Package daemon wires xlbd together: it loads the configuration, builds the
// engines, applies the configuration through the reconciler, serves the
// operational endpoints, reloads on request and drains on shutdown. It holds no
// load-balancing logic of its own.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/xlbproject/xlb/configs"
	xlbv1 "github.com/xlbproject/xlb/controlplane/api/xlb/v1"
	"github.com/xlbproject/xlb/controlplane/config"
	"github.com/xlbproject/xlb/controlplane/reconcile"
)

// Options configure a daemon.
type Options struct {
	// ConfigPath is the YAML file to run; empty runs the embedded demo configuration.
	ConfigPath string
	// MetricsListen overrides node.metrics.listen when not empty.
	MetricsListen string
	// DrainTimeout bounds how long shutdown waits for open connections.
	DrainTimeout time.Duration
	// BPFFS is where the XDP engine pins its maps and links (default
	// /sys/fs/bpf/xlb); a restart finds its flows there.
	BPFFS string
	// StateDir overrides node.state_dir when not empty.
	StateDir string
	// AccessLog logs every proxied HTTP request.
	AccessLog bool
	Log       *zap.Logger
}

// Daemon is one running xlbd.
type Daemon struct {
	opts     Options
	log      *zap.Logger
	registry *prometheus.Registry
	metrics  *daemonMetrics
	ops      *opsServer
	engines  []Engine
	rec      *reconcile.Reconciler
	ready    atomic.Bool

	reloadMu sync.Mutex
	running  atomic.Bool
	initial  *xlbv1.Config
}

// DefaultBPFFS is where the XDP engine's pins live unless --bpffs says.
const DefaultBPFFS = "/sys/fs/bpf/xlb"

// Engine is a data-plane engine as the daemon holds it: the reconciler drives
// its configuration, the daemon its lifetime.
type Engine interface {
	reconcile.Engine
	// Drain stops taking new connections and requests and waits until the
	// open ones finish or ctx ends, then releases everything.
	Drain(ctx context.Context)
}

// New loads the configuration and prepares the daemon; nothing is served
// until Run. An invalid configuration is returned as *config.Errors.
func New(opts Options) (*Daemon, error) {
	if opts.Log == nil {
		opts.Log = zap.NewNop()
	}
	if opts.DrainTimeout <= 0 {
		opts.DrainTimeout = 30 * time.Second
	}
	if opts.BPFFS == "" {
		opts.BPFFS = DefaultBPFFS
	}
	cfg, err := loadConfig(opts.ConfigPath)
	if err != nil {
		return nil, err
	}
	d := &Daemon{opts: opts, log: opts.Log, registry: prometheus.NewRegistry(), initial: cfg}
	d.metrics = newDaemonMetrics(d.registry)

	addr := opts.MetricsListen
	if addr == "" {
		addr = cfg.GetNode().GetMetrics().GetListen()
	}
	if addr != "off" {
		if d.ops, err = newOpsServer(addr, d.registry, &d.ready, d.log); err != nil {
			return nil, err
		}
	}

	// Engines last: they start goroutines that only Run's drain stops.
	d.engines, err = buildEngines(cfg.GetNode(), opts, d.registry, d.log)
	if err != nil {
		d.closeOps()
		return nil, err
	}
	engines := make([]reconcile.Engine, len(d.engines))
	for i, e := range d.engines {
		engines[i] = e
	}
	d.rec = reconcile.New(engines...)
	return d, nil
}

// MetricsAddr is the address /metrics is served on, or "" when it is off.
func (d *Daemon) MetricsAddr() string {
	if d.ops == nil {
		return ""
	}
	return d.ops.Addr()
}

// Registry is the daemon's metrics registry (tests read it directly).
func (d *Daemon) Registry() *prometheus.Registry { return d.registry }

// Run applies the configuration and serves until ctx ends, then drains: it
// stops reporting ready, lets open connections finish for up to DrainTimeout
// and returns.
func (d *Daemon) Run(ctx context.Context) error {
	opsCtx, stopOps := context.WithCancel(context.Background())
	opsDone := make(chan error, 1)
	if d.ops != nil {
		go func() { opsDone <- d.ops.serve(opsCtx) }()
	} else {
		opsDone <- nil
	}
	defer func() {
		stopOps()
		if err := <-opsDone; err != nil {
			d.log.Warn("metrics server stopped", zap.Error(err))
		}
	}()

	version, err := d.rec.Apply(ctx, d.initial)
	if err != nil {
		drainAll(d.engines)
		return fmt.Errorf("applying the configuration: %w", err)
	}
	d.metrics.configVersion.Set(float64(version))
	d.running.Store(true)
	d.ready.Store(true)
	d.log.Info("xlbd running",
		zap.String("config", d.configName()),
		zap.Uint64("config_version", version),
		zap.Int("load_balancers", len(d.initial.GetLoadBalancers())),
		zap.String("metrics", d.MetricsAddr()))

	select {
	case <-ctx.Done():
	case err := <-opsDone:
		opsDone <- err // let the deferred stop read it again
		if err != nil {
			return err
		}
	}

	d.ready.Store(false)
	d.running.Store(false)
	d.log.Info("draining", zap.Duration("timeout", d.opts.DrainTimeout))
	drainCtx, cancel := context.WithTimeout(context.Background(), d.opts.DrainTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, e := range d.engines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.Drain(drainCtx)
		}()
	}
	wg.Wait()
	d.log.Info("stopped")
	return nil
}

// Reload re-reads the configuration file and applies it. A file that does not
// validate, or that an engine refuses, is rejected and logged; the running
// configuration stays.
func (d *Daemon) Reload(ctx context.Context) error {
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	if !d.running.Load() {
		return errors.New("reload: the daemon is not running")
	}
	cfg, err := loadConfig(d.opts.ConfigPath)
	if err != nil {
		d.metrics.reloads.WithLabelValues(resultInvalid).Inc()
		d.log.Error("reload rejected: invalid configuration; the running configuration stays",
			zap.String("config", d.configName()), zap.Error(err))
		return err
	}
	version, err := d.rec.Apply(ctx, cfg)
	if err != nil {
		d.metrics.reloads.WithLabelValues(resultError).Inc()
		d.log.Error("reload rejected by an engine; the running configuration stays", zap.Error(err))
		return err
	}
	d.metrics.reloads.WithLabelValues(resultSuccess).Inc()
	d.metrics.configVersion.Set(float64(version))
	d.log.Info("configuration reloaded", zap.Uint64("config_version", version))
	return nil
}

func (d *Daemon) closeOps() {
	if d.ops != nil {
		_ = d.ops.ln.Close()
	}
}

func (d *Daemon) configName() string {
	if d.opts.ConfigPath == "" {
		return "embedded demo configuration"
	}
	return d.opts.ConfigPath
}

// loadConfig reads path, or the embedded demo configuration when path is empty.
func loadConfig(path string) (*xlbv1.Config, error) {
	if path == "" {
		cfg, err := config.Load(configs.DemoYAML(), ".")
		if err != nil {
			return nil, fmt.Errorf("embedded configuration: %w", err)
		}
		return cfg, nil
	}
	return config.LoadFile(path)
}
