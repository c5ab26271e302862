package load

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// progressLoop writes a line a second to w (when not nil) with the rate of ops (or
// of received bytes) and the errors of the last second, and returns the function
// that stops it.
func progressLoop(w io.Writer, unit string, bytes bool, all []*stats, measure time.Time) (stop func()) {
	if w == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		var lastOps, lastErrs, lastBytes uint64
		last := time.Now()
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				var ops, errs, b uint64
				for _, s := range all {
					ops += s.ops.Load()
					errs += s.errs.Load()
					b += s.bytesR.Load()
				}
				secs := now.Sub(last).Seconds()
				phase := "warmup"
				if !now.Before(measure) {
					phase = fmt.Sprintf("%5.0fs", now.Sub(measure).Seconds())
				}
				if bytes {
					fmt.Fprintf(w, "%8s  %s  errors %d\n", phase, formatBytesRate(float64(b-lastBytes)/secs), errs-lastErrs)
				} else {
					fmt.Fprintf(w, "%8s  %10.0f %s  errors %d\n", phase, float64(ops-lastOps)/secs, unit, errs-lastErrs)
				}
				lastOps, lastErrs, lastBytes, last = ops, errs, b, now
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// formatBytesRate prints bytes/s in binary units and as bits/s.
func formatBytesRate(bps float64) string {
	return fmt.Sprintf("%s/s (%.2f Gbit/s)", formatBytes(bps), bps*8/1e9)
}

func formatBytes(b float64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.2f GiB", b/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.2f MiB", b/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.2f KiB", b/(1<<10))
	}
	return fmt.Sprintf("%.0f B", b)
}
