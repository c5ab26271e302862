// Package reconcile turns a validated configuration into each engine's
// runtime values and swaps them in together.
//
// Applying is two-phase so that a configuration reaches either every engine or
// none: each engine first Prepares (compiles, binds new sockets, builds tables;
// nothing changes for traffic), and only when all have prepared is each one
// Committed. A Prepare failure Aborts the engines already prepared, leaving the
// running configuration untouched.
package reconcile

import (
	"context"
	"fmt"
	"sync"

	"google.golang.org/protobuf/proto"

	xlbv1 "github.com/xlbproject/xlb/controlplane/api/xlb/v1"
)

// Engine is one data-plane engine as the reconciler drives it.
type Engine interface {
	// Name identifies the engine in errors and logs.
	Name() string
	// Prepare compiles cfg into the engine's runtime values and stages them
	// without affecting traffic. It must leave no trace if it fails.
	Prepare(ctx context.Context, cfg *xlbv1.Config) (Staged, error)
}

// Staged is a prepared change of one engine.
type Staged interface {
	// Commit swaps the staged values in; it cannot fail, so that an apply that
	// got this far is never half done. Existing flows and connections continue.
	Commit()
	// Abort releases what Prepare took (sockets, maps) and changes nothing else.
	Abort()
}

// Reconciler applies configurations to a fixed set of engines, one at a time.
type Reconciler struct {
	engines []Engine

	mu      sync.Mutex
	current *xlbv1.Config
	version uint64
}

// New returns a reconciler for the engines, applied in the given order.
func New(engines ...Engine) *Reconciler {
	return &Reconciler{engines: engines}
}

// Apply makes cfg, which must already be validated and defaulted, the running
// configuration of every engine, or of none if any engine refuses it.
// It returns the new configuration version.
func (r *Reconciler) Apply(ctx context.Context, cfg *xlbv1.Config) (uint64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()

	staged := make([]Staged, 0, len(r.engines))
	for _, e := range r.engines {
		s, err := e.Prepare(ctx, cfg)
		if err == nil {
			err = ctx.Err()
			if err != nil {
				s.Abort()
			}
		}
		if err != nil {
			for i := len(staged) - 1; i >= 0; i-- {
				staged[i].Abort()
			}
			return r.version, fmt.Errorf("engine %s: %w", e.Name(), err)
		}
		staged = append(staged, s)
	}
	for _, s := range staged {
		s.Commit()
	}
	r.current = proto.Clone(cfg).(*xlbv1.Config)
	r.version++
	return r.version, nil
}

// Current returns a copy of the running configuration and its version;
// nil before the first successful Apply.
func (r *Reconciler) Current() (*xlbv1.Config, uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.current == nil {
		return nil, r.version
	}
	return proto.Clone(r.current).(*xlbv1.Config), r.version
}
