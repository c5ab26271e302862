package announce

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// RouteProtocol marks xlb's routes ("proto 198" in ip route): the
// kernel's numbers up to 15 and the routing daemons' (BIRD 12, FRR 186-197)
// are left alone.
const RouteProtocol = 198

// DefaultInterval is how often health is re-read.
const DefaultInterval = 500 * time.Millisecond

// Mode is how the node announces.
type Mode uint8

const (
	// None announces nothing (a single node, or routes managed by hand).
	None Mode = iota
	// ECMP: every healthy node announces with the same metric.
	ECMP
	// ActiveStandby: every healthy node announces with its priority as
	// the metric; the routers prefer the lowest.
	ActiveStandby
)

func (m Mode) String() string {
	switch m {
	case None:
		return "none"
	case ECMP:
		return "ecmp"
	case ActiveStandby:
		return "active_standby"
	}
	return fmt.Sprintf("Mode(%d)", uint8(m))
}

// VIP is one address to announce while Healthy says it has a backend to
// serve it.
type VIP struct {
	Addr    netip.Addr
	Healthy func() bool
}

// Config is the announcer's desired state.
type Config struct {
	Mode     Mode
	Table    uint32
	Priority uint32 // the metric in ActiveStandby mode
	VIPs     []VIP
}

// Routes writes the routes; the netlink implementation is NetlinkRoutes.
type Routes interface {
	// Replace adds or updates vip's route in table with metric.
	Replace(vip netip.Addr, table, metric uint32) error
	// Delete removes vip's route from table.
	Delete(vip netip.Addr, table uint32) error
	// List returns the VIPs that have a route of RouteProtocol in table.
	List(table uint32) ([]netip.Addr, error)
}

// Engine keeps the announced routes in line with the configuration,
// health and the node's state.
type Engine struct {
	routes   Routes
	log      *zap.Logger
	interval time.Duration
	gauge    *prometheus.GaugeVec

	mu        sync.Mutex
	cfg       Config
	announced map[netip.Addr]uint32 // vip -> table it is in
	metric    map[netip.Addr]uint32
	draining  bool
	kick      chan struct{}
	stop      context.CancelFunc
	done      chan struct{}
}

// New returns an engine that writes routes; Start runs it.
func New(routes Routes, reg prometheus.Registerer, log *zap.Logger) (*Engine, error) {
	if log == nil {
		log = zap.NewNop()
	}
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "xlb_announce_vip",
		Help: "1 while this node announces the VIP to the routers, 0 while it is withdrawn (draining, stopped or no healthy backend).",
	}, []string{"vip"})
	if err := reg.Register(g); err != nil {
		return nil, fmt.Errorf("announce metrics: %w", err)
	}
	return &Engine{routes: routes, log: log, interval: DefaultInterval, gauge: g,
		announced: map[netip.Addr]uint32{}, metric: map[netip.Addr]uint32{}, kick: make(chan struct{}, 1)}, nil
}

// Start runs the health loop until Drain; routes an earlier xlbd left
// behind are adopted or withdrawn at the first pass.
func (e *Engine) Start(ctx context.Context) {
	ctx, e.stop = context.WithCancel(ctx)
	e.done = make(chan struct{})
	go func() {
		defer close(e.done)
		t := time.NewTicker(e.interval)
		defer t.Stop()
		for {
			e.sync()
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			case <-e.kick:
			}
		}
	}()
}

// Apply makes cfg the desired state and syncs at once; it cannot fail (a
// route the kernel refuses is logged and retried at the next pass).
func (e *Engine) Apply(cfg Config) {
	e.mu.Lock()
	old := e.cfg
	e.cfg = cfg
	e.mu.Unlock()
	if old.Table != 0 && old.Table != cfg.Table {
		e.withdrawAll() // moved to another table: start clean there
	}
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// Drain withdraws every VIP first, so the routers move traffic away while
// the other engines finish their connections, and stops the loop.
func (e *Engine) Drain(context.Context) {
	e.mu.Lock()
	e.draining = true
	e.mu.Unlock()
	if e.stop != nil {
		e.stop()
		<-e.done
	}
	e.withdrawAll()
}

// Announced lists the VIPs announced now.
func (e *Engine) Announced() []netip.Addr {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]netip.Addr, 0, len(e.announced))
	for v := range e.announced {
		out = append(out, v)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// sync does one pass: what should be announced, against what is.
func (e *Engine) sync() {
	e.mu.Lock()
	cfg, draining := e.cfg, e.draining
	e.mu.Unlock()
	want := map[netip.Addr]bool{}
	if cfg.Mode != None && !draining {
		for _, v := range cfg.VIPs {
			if v.Healthy == nil || v.Healthy() {
				want[v.Addr] = true
			}
		}
	}
	metric := uint32(0)
	if cfg.Mode == ActiveStandby {
		metric = cfg.Priority
	}
	// With announcing off the kernel is not even read: only routes this
	// engine wrote are withdrawn.
	if cfg.Mode != None && cfg.Table != 0 {
		e.adopt(cfg.Table)
	}
	var errs []error
	for _, v := range cfg.VIPs {
		e.gauge.WithLabelValues(v.Addr.String()).Set(b2f(want[v.Addr]))
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for vip, table := range e.announced {
		if !want[vip] || table != cfg.Table {
			if err := e.routes.Delete(vip, table); err != nil {
				errs = append(errs, err)
				continue
			}
			delete(e.announced, vip)
			e.log.Info("withdrew VIP", zap.Stringer("vip", vip), zap.Uint32("table", table))
		}
	}
	for vip := range want {
		if t, ok := e.announced[vip]; ok && t == cfg.Table && e.metric[vip] == metric {
			continue
		}
		if err := e.routes.Replace(vip, cfg.Table, metric); err != nil {
			errs = append(errs, err)
			continue
		}
		e.announced[vip], e.metric[vip] = cfg.Table, metric
		e.log.Info("announced VIP", zap.Stringer("vip", vip), zap.Uint32("table", cfg.Table), zap.Uint32("metric", metric))
	}
	if err := errors.Join(errs...); err != nil {
		e.log.Warn("announce: route update failed; retrying", zap.Error(err))
	}
}

// adopt learns the routes of RouteProtocol already in table (an earlier
// xlbd's), once per table, so that a restart withdraws what it no longer
// announces.
func (e *Engine) adopt(table uint32) {
	e.mu.Lock()
	for _, t := range e.announced {
		if t == table {
			e.mu.Unlock()
			return
		}
	}
	e.mu.Unlock()
	vips, err := e.routes.List(table)
	if err != nil {
		e.log.Warn("announce: listing routes", zap.Uint32("table", table), zap.Error(err))
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, v := range vips {
		if _, ok := e.announced[v]; !ok {
			e.announced[v] = table
			e.metric[v] = ^uint32(0) // unknown: rewritten if still wanted
		}
	}
}

func (e *Engine) withdrawAll() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for vip, table := range e.announced {
		if err := e.routes.Delete(vip, table); err != nil {
			e.log.Warn("announce: withdrawing", zap.Stringer("vip", vip), zap.Error(err))
			continue
		}
		delete(e.announced, vip)
		e.gauge.WithLabelValues(vip.String()).Set(0)
		e.log.Info("withdrew VIP", zap.Stringer("vip", vip), zap.Uint32("table", table))
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
