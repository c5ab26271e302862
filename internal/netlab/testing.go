package netlab

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"
)

// New builds topo for a test and closes it in t.Cleanup (which also runs
// when the test panics). When namespaces are unavailable (not root, no
// kernel support) the test is skipped, or fails if CI=true; any other
// error fails the test.
func New(t testing.TB, topo Topology) *Lab {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l, err := Build(ctx, topo)
	if err != nil {
		if errors.Is(err, ErrUnsupported) && os.Getenv("CI") != "true" {
			t.Skipf("netlab: %v", err)
		}
		t.Fatalf("netlab: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("netlab: %v", err)
		}
	})
	return l
}
