// Package daemon wires xlbd together: it chooses the configuration to run
// (the file or the stored state, see startup.go), builds the engines, applies
// the configuration through the control service's change path (validate,
// store, reconcile), serves the control API and the operational endpoints,
// reloads on request and drains on shutdown. It holds no load-balancing
// logic of its own.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/xlbproject/xlb/controlplane/reconcile"
	"github.com/xlbproject/xlb/controlplane/server"
	"github.com/xlbproject/xlb/controlplane/store"
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
	// StateDir overrides node.state_dir when not empty. The configuration
	// versions (state.db) and the cookie secret live there.
	StateDir string
	// ControlListen overrides node.control.listen when not empty
	// (unix:///PATH or tcp://HOST:PORT; "off": no control API).
	ControlListen string
	// ForceConfig runs the configuration file even when the stored state
	// would win (see startup.go).
	ForceConfig bool
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
	store    *store.Store
	control  *server.Server
	ctrlLn   net.Listener
	grpc     *grpc.Server
	start    startup
	ready    atomic.Bool

	running atomic.Bool
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

// New loads the configuration, opens the store, chooses what to run and
// prepares the daemon; nothing is served until Run. An invalid configuration
// is returned as *config.Errors.
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
	file, err := readConfig(opts.ConfigPath)
	if err != nil {
		return nil, err
	}
	if opts.StateDir == "" {
		opts.StateDir = file.cfg.GetNode().GetStateDir()
	}
	st, err := store.Open(opts.StateDir)
	if err != nil {
		return nil, err
	}
	start, err := choose(st, file, opts.ForceConfig)
	if err != nil {
		st.Close()
		return nil, err
	}
	cfg := start.config()
	d := &Daemon{opts: opts, log: opts.Log, registry: prometheus.NewRegistry(), store: st, start: start}
	d.metrics = newDaemonMetrics(d.registry)
	fail := func(err error) (*Daemon, error) {
		d.closeListeners()
		st.Close()
		return nil, err
	}

	addr := opts.MetricsListen
	if addr == "" {
		addr = cfg.GetNode().GetMetrics().GetListen()
	}
	if addr != "off" {
		if d.ops, err = newOpsServer(addr, d.registry, &d.ready, d.log); err != nil {
			return fail(err)
		}
	}
	listen := opts.ControlListen
	if listen == "" {
		listen = cfg.GetNode().GetControl().GetListen()
	}
	var grpcOpts []grpc.ServerOption
	if listen != "off" {
		if d.ctrlLn, grpcOpts, err = server.Listen(listen, cfg.GetNode().GetControl().GetTls()); err != nil {
			return fail(err)
		}
	}

	// Engines last: they start goroutines that only Run's drain stops.
	set, err := buildEngines(cfg.GetNode(), opts, d.registry, d.log)
	if err != nil {
		return fail(err)
	}
	d.engines = set.engines
	engines := make([]reconcile.Engine, len(d.engines))
	for i, e := range d.engines {
		engines[i] = e
	}
	d.control = server.New(server.Options{
		Store:     st,
		Applier:   reconcile.New(engines...),
		Backends:  set.backends,
		Health:    set.health,
		Gatherer:  d.registry,
		Snat:      set.snat,
		OnApplied: func(v uint64) { d.metrics.configVersion.Set(float64(v)) },
		Log:       d.log.Named("control"),
	})
	d.grpc = server.NewGRPCServer(d.control, grpcOpts...)
	return d, nil
}

// ControlAddr is the control listener's address ("" when it is off).
func (d *Daemon) ControlAddr() string {
	if d.ctrlLn == nil {
		return ""
	}
	return d.ctrlLn.Addr().String()
}

// Control is the control service (tests drive it directly).
func (d *Daemon) Control() *server.Server { return d.control }

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
	// opsDone stays nil (never ready) when the metrics endpoint is off.
	var opsDone chan error
	if d.ops != nil {
		opsDone = make(chan error, 1)
		go func() { opsDone <- d.ops.serve(opsCtx) }()
	}
	defer func() {
		stopOps()
		if opsDone == nil {
			return
		}
		if err := <-opsDone; err != nil {
			d.log.Warn("metrics server stopped", zap.Error(err))
		}
	}()

	if err := d.apply(ctx); err != nil {
		drainAll(d.engines)
		d.closeListeners()
		d.store.Close()
		return fmt.Errorf("applying the configuration: %w", err)
	}
	_, version := d.control.Running()
	d.running.Store(true)
	d.ready.Store(true)
	grpcDone := make(chan error, 1)
	if d.ctrlLn != nil {
		go func() { grpcDone <- d.grpc.Serve(d.ctrlLn) }()
	} else {
		grpcDone <- nil
	}
	d.log.Info("xlbd running",
		zap.String("config", d.start.describe()),
		zap.Uint64("config_version", version),
		zap.String("control", d.ControlAddr()),
		zap.String("metrics", d.MetricsAddr()))

	select {
	case <-ctx.Done():
	case err := <-opsDone:
		opsDone <- err // let the deferred stop read it again
		if err != nil {
			d.stopControl(grpcDone)
			return err
		}
	}

	d.ready.Store(false)
	d.running.Store(false)
	d.stopControl(grpcDone)
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
	if err := d.store.Close(); err != nil {
		d.log.Warn("closing the store", zap.Error(err))
	}
	d.log.Info("stopped")
	return nil
}

// apply runs the chosen configuration: the stored version as it is, or the
// file as the next version.
func (d *Daemon) apply(ctx context.Context) error {
	if d.start.resume != nil {
		return d.control.Resume(ctx, d.start.resume)
	}
	_, _, err := d.control.Change(ctx, d.start.file.cfg, d.start.file.record(), 0)
	return err
}

// stopControl ends the control API: in-flight calls get a moment to finish,
// then streams (WatchHealth) are cut.
func (d *Daemon) stopControl(done <-chan error) {
	stopped := make(chan struct{})
	go func() {
		d.grpc.GracefulStop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(time.Second):
		d.grpc.Stop()
		<-stopped
	}
	if err := <-done; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		d.log.Warn("control server stopped", zap.Error(err))
	}
}

// Reload re-reads the configuration file and applies it as the next
// version, through the same path as the control API. A file that does not
// validate, or that an engine refuses, is rejected and logged; the running
// configuration stays.
func (d *Daemon) Reload(ctx context.Context) error {
	if !d.running.Load() {
		return errors.New("reload: the daemon is not running")
	}
	file, err := readConfig(d.opts.ConfigPath)
	if err == nil {
		var version uint64
		version, _, err = d.control.Change(ctx, file.cfg, file.record(), 0)
		if err == nil {
			d.metrics.reloads.WithLabelValues(resultSuccess).Inc()
			d.log.Info("configuration reloaded", zap.Uint64("config_version", version))
			return nil
		}
	}
	var engineErr *server.EngineError
	if errors.As(err, &engineErr) {
		d.metrics.reloads.WithLabelValues(resultError).Inc()
		d.log.Error("reload rejected by an engine; the running configuration stays", zap.Error(err))
		return err
	}
	d.metrics.reloads.WithLabelValues(resultInvalid).Inc()
	d.log.Error("reload rejected: invalid configuration; the running configuration stays",
		zap.String("config", sourceName(d.opts.ConfigPath)), zap.Error(err))
	return err
}

func (d *Daemon) closeListeners() {
	if d.ops != nil {
		_ = d.ops.ln.Close()
	}
	if d.ctrlLn != nil {
		_ = d.ctrlLn.Close()
	}
}
