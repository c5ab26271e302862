// Package server is xlbd's gRPC control service (xlb.v1.ControlService).
//
// Every change of the desired state takes one path, shared with the daemon's
// start and SIGHUP reload: validate (controlplane/config), stage the next
// version in the store, apply it to every engine (controlplane/reconcile,
// two-phase), then commit the version, or discard it when an engine
// refused, so that the running configuration and the store's current
// version always agree.
package server

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	xlbv1 "github.com/xlbproject/xlb/controlplane/api/xlb/v1"
	"github.com/xlbproject/xlb/controlplane/config"
	"github.com/xlbproject/xlb/controlplane/store"
	"github.com/xlbproject/xlb/dataplane/health"
	"github.com/xlbproject/xlb/dataplane/pool"
)

// Applier applies a validated configuration to every engine or to none
// (reconcile.Reconciler).
type Applier interface {
	Apply(ctx context.Context, cfg *xlbv1.Config) (uint64, error)
}

// Backends lists the backends the engines' pools use
// (reconcile.Backends).
type Backends interface {
	All() []*pool.Backend
}

// Health is the health checker's event source (health.Manager).
type Health interface {
	Subscribe() (<-chan health.Event, func())
	Snapshot() []health.Status
}

// SnatStatus reports the SNAT engine's port use.
type SnatStatus interface {
	SnatStatus(ctx context.Context) (*xlbv1.GetSnatStatusResponse, error)
}

// Options are the server's collaborators. Store and Applier are required.
type Options struct {
	Store    *store.Store
	Applier  Applier
	Backends Backends
	Health   Health
	// Gatherer is the metrics registry GetStats reads the engines'
	// counters from.
	Gatherer prometheus.Gatherer
	// Snat is nil until a SNAT engine runs.
	Snat SnatStatus
	// OnApplied is called with each new running version (metrics).
	OnApplied func(version uint64)
	Log       *zap.Logger
}

// Server implements xlb.v1.ControlService.
type Server struct {
	xlbv1.UnimplementedControlServiceServer
	opts Options
	log  *zap.Logger

	// mu serialises changes: one version at a time.
	mu      sync.Mutex
	running *xlbv1.Config
	version uint64
}

// New returns a server; nothing runs until Start.
func New(opts Options) *Server {
	if opts.Log == nil {
		opts.Log = zap.NewNop()
	}
	if opts.OnApplied == nil {
		opts.OnApplied = func(uint64) {}
	}
	return &Server{opts: opts, log: opts.Log}
}

// ErrConflict is a change whose expected version is not the current one.
var ErrConflict = errors.New("version conflict")

// EngineError is a valid configuration an engine refused; nothing changed.
type EngineError struct{ Err error }

func (e *EngineError) Error() string {
	return "refused by the engines, nothing changed: " + e.Err.Error()
}
func (e *EngineError) Unwrap() error { return e.Err }

// Resume applies the store's current version (a restart): the engines get
// it, no new version is written.
func (s *Server) Resume(ctx context.Context, cv *xlbv1.ConfigVersion) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cfg, err := s.prepare(cv.GetConfig())
	if err != nil {
		return fmt.Errorf("stored version %d: %w", cv.GetInfo().GetVersion(), err)
	}
	if _, err := s.opts.Applier.Apply(ctx, cfg); err != nil {
		return &EngineError{Err: err}
	}
	s.running, s.version = cfg, cv.GetInfo().GetVersion()
	s.restoreAdmin()
	s.opts.OnApplied(s.version)
	return nil
}

// Change applies cfg as the next version (see the package doc). expected
// != 0 must be the current version. It returns the running version and the
// changes; an unchanged configuration writes no version.
func (s *Server) Change(ctx context.Context, cfg *xlbv1.Config, r store.Record, expected uint64) (uint64, []*xlbv1.Change, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changeLocked(ctx, cfg, r, expected)
}

func (s *Server) changeLocked(ctx context.Context, cfg *xlbv1.Config, r store.Record, expected uint64) (uint64, []*xlbv1.Change, error) {
	if expected != 0 && expected != s.version {
		return s.version, nil, fmt.Errorf("%w: expected version %d, the current one is %d", ErrConflict, expected, s.version)
	}
	cfg, err := s.prepare(cfg)
	if err != nil {
		return s.version, nil, err
	}
	changes := Diff(s.running, cfg)
	if s.running != nil && len(changes) == 0 {
		if r.FileHash != "" {
			// The file was edited without changing what it says: it
			// counts as applied (see the start's precedence).
			if err := s.opts.Store.SetFileHash(r.FileHash); err != nil {
				s.log.Warn("recording the file's hash", zap.Error(err))
			}
		}
		return s.version, nil, nil
	}
	r.Config = cfg
	v, err := s.opts.Store.Stage(r)
	if err != nil {
		return s.version, nil, err
	}
	if _, err := s.opts.Applier.Apply(ctx, cfg); err != nil {
		if derr := s.opts.Store.Discard(v); derr != nil {
			s.log.Error("discarding a refused version", zap.Uint64("version", v), zap.Error(derr))
		}
		return s.version, nil, &EngineError{Err: err}
	}
	if err := s.opts.Store.Commit(v); err != nil {
		// Put the engines back on the committed version, so that the
		// store and the engines still agree.
		if s.running != nil {
			if _, rerr := s.opts.Applier.Apply(context.Background(), s.running); rerr != nil {
				s.log.Error("restoring the committed version after a failed commit", zap.Uint64("version", s.version), zap.Error(rerr))
			}
		}
		if derr := s.opts.Store.Discard(v); derr != nil {
			s.log.Error("discarding an uncommitted version", zap.Uint64("version", v), zap.Error(derr))
		}
		return s.version, nil, fmt.Errorf("storing version %d: %w; version %d still runs", v, err, s.version)
	}
	s.running, s.version = cfg, v
	s.restoreAdmin()
	s.opts.OnApplied(v)
	s.log.Info("configuration applied", zap.Uint64("version", v), zap.String("source", r.Source), zap.Int("changes", len(changes)))
	return v, changes, nil
}

// Running returns a copy of the running configuration (private keys
// included: for the daemon, never for a client) and its version.
func (s *Server) Running() (*xlbv1.Config, uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running == nil {
		return nil, s.version
	}
	return proto.Clone(s.running).(*xlbv1.Config), s.version
}

// prepare makes a client's configuration a runnable one: keys the client
// could not send back filled in, defaults, validation.
func (s *Server) prepare(in *xlbv1.Config) (*xlbv1.Config, error) {
	if in == nil {
		in = &xlbv1.Config{}
	}
	cfg := proto.Clone(in).(*xlbv1.Config)
	var errs config.Errors
	for i, c := range cfg.GetCertificates() {
		s.keepKey(c)
		p := fmt.Sprintf("certificates[%d]", i)
		for _, part := range []struct{ name, file, pem string }{
			{"cert", c.GetCertFile(), c.GetCertPem()},
			{"key", c.GetKeyFile(), c.GetKeyPem()},
			{"crl", c.GetCrlFile(), c.GetCrlPem()},
		} {
			if part.file != "" && part.pem == "" {
				errs = append(errs, &config.FieldError{
					Path: p + "." + part.name + "_file",
					Msg:  "the API takes certificates inline (" + part.name + "_pem)",
					Hint: "xlbctl apply -f reads the files for you",
				})
			}
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	cfg = config.WithDefaults(cfg)
	if err := config.Validate(cfg); err != nil {
		return nil, err
	}
	return cfg, nil
}

// keepKey fills in the private key of a server certificate sent without
// one (as Get returns it) when the running configuration has the same
// certificate under the same id.
func (s *Server) keepKey(c *xlbv1.Certificate) {
	if c.GetType() != xlbv1.Certificate_server || c.GetKeyPem() != "" {
		return
	}
	for _, r := range s.running.GetCertificates() {
		if r.GetId() == c.GetId() && r.GetCertPem() == c.GetCertPem() && r.GetKeyPem() != "" {
			c.KeyPem = r.GetKeyPem()
			return
		}
	}
}

// redact returns a copy of cfg without private keys.
func redact(cfg *xlbv1.Config) *xlbv1.Config {
	if cfg == nil {
		return nil
	}
	out := proto.Clone(cfg).(*xlbv1.Config)
	for _, c := range out.GetCertificates() {
		c.KeyPem = ""
	}
	return out
}
