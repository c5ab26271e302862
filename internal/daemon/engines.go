package daemon

import (
	"context"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	xlbv1 "github.com/xlbproject/xlb/controlplane/api/xlb/v1"
	"github.com/xlbproject/xlb/controlplane/reconcile"
	"github.com/xlbproject/xlb/controlplane/server"
	"github.com/xlbproject/xlb/dataplane/announce"
	"github.com/xlbproject/xlb/dataplane/health"
	"github.com/xlbproject/xlb/dataplane/l4"
	"github.com/xlbproject/xlb/dataplane/l7"
	"github.com/xlbproject/xlb/dataplane/limit"
	"github.com/xlbproject/xlb/dataplane/xdp"
)

// engineSet is what buildEngines makes: the engines, in apply order, and
// what the control service reads from them.
type engineSet struct {
	engines  []Engine
	backends *reconcile.Backends
	health   *health.Manager
	// snat reports SNAT port use: the XDP engine's, nil without XDP.
	snat server.SnatStatus
}

// buildEngines creates the data-plane engines, in apply order. Health comes
// last so that its first verdicts reach the pools the other engines have
// just built.
func buildEngines(node *xlbv1.Node, opts Options, reg prometheus.Registerer, log *zap.Logger) (*engineSet, error) {
	backends := reconcile.NewBackends()
	var engines []Engine
	fail := func(err error) (*engineSet, error) {
		drainAll(engines)
		return nil, err
	}
	// The limits first: the engines' listeners point into its registry,
	// and a commit sets the values they read.
	limReg := limit.NewRegistry()
	if err := reg.Register(limit.NewCollector(limReg)); err != nil {
		return fail(fmt.Errorf("limit metrics: %w", err))
	}
	limits := reconcile.NewLimits(limReg)
	engines = append(engines, limits)

	xe, err := startXDP(node, opts, log)
	if err != nil {
		return fail(err)
	}
	placement := reconcile.Placement{XDP: xe != nil}
	if xe != nil {
		if err := reg.Register(xe); err != nil {
			xe.Drain(context.Background())
			return fail(fmt.Errorf("xdp metrics: %w", err))
		}
		engines = append(engines, reconcile.NewXDP(xe, backends))
	} else {
		engines = append(engines, natWithoutXDP{log: log})
	}

	l4e, err := l4.New(reg, log.Named("l4"))
	if err != nil {
		return fail(err)
	}
	engines = append(engines, reconcile.NewL4(l4e, backends, placement, limits))

	secret, err := loadOrCreateSecret(opts.StateDir)
	if err != nil {
		// Cookies then last as long as this process: sticky clients are
		// re-picked after a restart.
		log.Warn("no persistent cookie secret; persistence cookies will not survive a restart",
			zap.String("state_dir", opts.StateDir), zap.Error(err))
	}
	l7e, err := l7.New(reg, log.Named("l7"), l7.Options{AccessLog: opts.AccessLog, CookieSecret: secret})
	if err != nil {
		return fail(err)
	}
	engines = append(engines, reconcile.NewL7(l7e, backends, limits))

	// The announcer after the engines that serve the VIPs: a commit
	// announces a VIP once they have it.
	routes, err := announce.NewNetlinkRoutes(nil)
	if err != nil {
		return fail(fmt.Errorf("announcer: %w", err))
	}
	ann, err := announce.New(routes, reg, log.Named("announce"))
	if err != nil {
		return fail(err)
	}
	ann.Start(context.Background()) // Drain stops it
	engines = append(engines, reconcile.NewAnnounce(ann, backends))

	mgr, err := health.NewManager(health.Options{Logger: log.Named("health"), Registerer: reg})
	if err != nil {
		return fail(fmt.Errorf("health checker: %w", err))
	}
	engines = append(engines, reconcile.NewHealth(mgr, backends))
	set := &engineSet{engines: engines, backends: backends, health: mgr}
	if xe != nil {
		set.snat = xdpSnatStatus{xe}
	}
	return set, nil
}

// startXDP attaches the XDP engine as node.xdp_mode says: off or no
// interfaces: none; auto: fall back to the userspace engines with a warning
// when it cannot attach; native or generic: fail loudly.
func startXDP(node *xlbv1.Node, opts Options, log *zap.Logger) (*xdp.Engine, error) {
	mode := node.GetXdpMode()
	if mode == xlbv1.XdpMode_off || len(node.GetInterfaces()) == 0 {
		return nil, nil
	}
	xo := xdp.Options{
		Interfaces: node.GetInterfaces(),
		BPFFS:      opts.BPFFS,
		MaxFlows:   node.GetConntrack().GetMaxFlows(),
		Timeouts: xdp.Timeouts{
			TCPEstablished: node.GetConntrack().GetTcpEstablishedTimeout().AsDuration(),
			TCPClosing:     node.GetConntrack().GetTcpClosingTimeout().AsDuration(),
			UDP:            node.GetConntrack().GetUdpTimeout().AsDuration(),
		},
	}
	switch mode {
	case xlbv1.XdpMode_native:
		xo.Mode = xdp.Native
	case xlbv1.XdpMode_generic:
		xo.Mode = xdp.Generic
	}
	e, err := xdp.New(xo, log.Named("xdp"))
	if err == nil {
		return e, nil
	}
	if mode == xlbv1.XdpMode_native || mode == xlbv1.XdpMode_generic {
		return nil, fmt.Errorf("node.xdp_mode %s: %w", mode, err)
	}
	log.Warn("XDP cannot attach: tcp and udp listeners run on the userspace engine", zap.Error(err))
	return nil, nil
}

// drainAll stops engines that never ran (a failed start).
func drainAll(engines []Engine) {
	for _, e := range engines {
		e.Drain(context.Background())
	}
}

// natWithoutXDP stands in for the XDP engine's SNAT pools and EIPs when
// it is not attached: only the XDP path translates, so it says so.
type natWithoutXDP struct{ log *zap.Logger }

func (natWithoutXDP) Name() string { return "snat" }

func (n natWithoutXDP) Prepare(_ context.Context, cfg *xlbv1.Config) (reconcile.Staged, error) {
	if len(cfg.GetSnatPools()) > 0 || len(cfg.GetEips()) > 0 {
		n.log.Warn("snat_pools and eips are not applied: they need the XDP engine (node.interfaces set, node.xdp_mode not off, XDP attached)",
			zap.Int("snat_pools", len(cfg.GetSnatPools())), zap.Int("eips", len(cfg.GetEips())))
	}
	return noopStaged{}, nil
}

func (natWithoutXDP) Drain(context.Context) {}

type noopStaged struct{}

func (noopStaged) Commit() {}
func (noopStaged) Abort()  {}
