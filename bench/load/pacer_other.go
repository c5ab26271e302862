//go:build !linux

package load

import "context"

func newSleeper(ctx context.Context) sleeper { return newTimerSleeper(ctx) }
