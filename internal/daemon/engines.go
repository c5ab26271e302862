package daemon

import (
	"context"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/xlbproject/xlb/controlplane/reconcile"
	"github.com/xlbproject/xlb/dataplane/health"
	"github.com/xlbproject/xlb/dataplane/l4"
)

// buildEngines creates the data-plane engines this build has, in apply
// order. Health comes last so that its first verdicts reach the pools the
// other engines have just built.
func buildEngines(reg prometheus.Registerer, log *zap.Logger) ([]Engine, error) {
	backends := reconcile.NewBackends()
	l4e, err := l4.New(reg, log.Named("l4"))
	if err != nil {
		return nil, err
	}
	mgr, err := health.NewManager(health.Options{Logger: log.Named("health"), Registerer: reg})
	if err != nil {
		l4e.Drain(context.Background())
		return nil, fmt.Errorf("health checker: %w", err)
	}
	return []Engine{
		reconcile.NewL4(l4e, backends),
		reconcile.NewHealth(mgr, backends),
	}, nil
}

// drainAll stops engines that never ran (a failed start).
func drainAll(engines []Engine) {
	for _, e := range engines {
		e.Drain(context.Background())
	}
}
