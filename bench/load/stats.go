package load

import (
	"math"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Histogram bounds, in microseconds.
const (
	histMin     = 1
	histMax     = 60_000_000
	histSigFigs = 3
)

func newHistogram() *hdrhistogram.Histogram { return hdrhistogram.New(histMin, histMax, histSigFigs) }

// stats are one worker's counters. Only its worker writes them; the atomics let the
// progress reporter read ops and errors while the run goes on. Everything is merged
// into a Result once the workers have stopped.
type stats struct {
	ops    atomic.Uint64
	errs   atomic.Uint64
	bytesR atomic.Uint64 // received, for throughput progress

	// measuring says whether the current op belongs to the measured window; the
	// engine sets it before each op, and conn() and the byte counters follow it.
	measuring bool

	conns, warmupConns, warmupOps uint64
	sent, late                    uint64 // udp datagrams sent; answers past their timeout
	attempted                     uint64 // open loop: ops started in the window
	unsent                        uint64 // udp open loop: slots not sent by the end
	strays                        uint64 // udp answers that match no datagram sent
	bytesSent                     uint64
	errors                        [numKinds]uint64
	hist                          *hdrhistogram.Histogram

	_ [64]byte // keep the next worker's hot atomics off this cache line
}

func newStats() *stats { return &stats{hist: newHistogram()} }

// conn counts an opened connection.
func (s *stats) conn() {
	if s.measuring {
		s.conns++
	} else {
		s.warmupConns++
	}
}

func (s *stats) sentBytes(n int) {
	if s.measuring {
		s.bytesSent += uint64(n)
	}
}

func (s *stats) recvBytes(n int) {
	if s.measuring {
		s.bytesR.Add(uint64(n))
	}
}

// record accounts for one finished op of the measured window.
func (s *stats) record(k errKind, lat time.Duration) {
	if k != kindNone {
		s.errors[k]++
		s.errs.Add(1)
		return
	}
	s.ops.Add(1)
	us := lat.Microseconds()
	s.hist.RecordValue(min(max(us, histMin), histMax)) //nolint:errcheck // clamped into range
}

// merge folds worker stats into a Result.
func merge(r *Result, all []*stats) {
	h := newHistogram()
	r.Errors = make(map[string]uint64)
	for _, s := range all {
		r.Ops += s.ops.Load()
		r.BytesReceived += s.bytesR.Load()
		r.BytesSent += s.bytesSent
		r.Connections += s.conns
		r.WarmupConnections += s.warmupConns
		r.WarmupOps += s.warmupOps
		r.Sent += s.sent
		r.Late += s.late
		r.Unsent += s.unsent
		if s.strays > 0 {
			r.Errors[ErrProtocol] += s.strays
		}
		for k := kindNone + 1; k < numKinds; k++ {
			if n := s.errors[k]; n > 0 {
				r.Errors[k.String()] += n
			}
		}
		h.Merge(s.hist)
	}
	setLatency(r, h)
	if r.Duration > 0 {
		r.Rate = float64(r.Ops) / r.Duration.Seconds()
	}
}

func setLatency(r *Result, h *hdrhistogram.Histogram) {
	if h.TotalCount() == 0 {
		return
	}
	us := func(v int64) time.Duration { return time.Duration(v) * time.Microsecond }
	r.Latency = Percentiles{
		P50:  us(h.ValueAtQuantile(50)),
		P90:  us(h.ValueAtQuantile(90)),
		P99:  us(h.ValueAtQuantile(99)),
		P999: us(h.ValueAtQuantile(99.9)),
		Max:  us(h.Max()),
		Mean: time.Duration(math.Round(h.Mean() * float64(time.Microsecond))),
	}
	// The classic hgrm quantile ladder (0, 50, 75, 87.5, ... %): a few dozen points
	// that plot the tail on a log scale.
	for _, b := range h.CumulativeDistribution() {
		r.Histogram = append(r.Histogram, HistogramBucket{
			Quantile: b.Quantile / 100,
			Value:    us(b.ValueAt),
			Count:    uint64(b.Count),
		})
	}
}
