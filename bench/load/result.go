package load

import (
	"encoding/json"
	"time"
)

// Percentiles summarises a latency distribution.
type Percentiles struct {
	P50  time.Duration `json:"p50_ns"`
	P90  time.Duration `json:"p90_ns"`
	P99  time.Duration `json:"p99_ns"`
	P999 time.Duration `json:"p999_ns"`
	Max  time.Duration `json:"max_ns"`
	Mean time.Duration `json:"mean_ns"`
}

// HistogramBucket is one point of the cumulative latency distribution: Count
// measurements were at most Value, which is the Quantile (0..1) of all of them.
type HistogramBucket struct {
	Quantile float64       `json:"quantile"`
	Value    time.Duration `json:"value_ns"`
	Count    uint64        `json:"count"`
}

// Result is what a generator measured. Counters cover the measured window only (after
// the warmup); durations are nanoseconds in JSON.
type Result struct {
	Kind     string        `json:"kind"` // "http", "tcp-connect", "tcp-throughput", "udp"
	Target   string        `json:"target"`
	Proto    string        `json:"proto,omitempty"` // http: "http1", "h2c", "h2", "custom"
	Duration time.Duration `json:"duration_ns"`     // the measured window
	// Offered is the open-loop target rate in ops/s; 0 for closed loop.
	Offered float64 `json:"offered"`
	// Ops counts successful requests (http), connect-exchange-close cycles
	// (tcp-connect), Payload-sized chunks echoed back (tcp-throughput) or answered
	// datagrams (udp).
	Ops uint64 `json:"ops"`
	// Rate is Ops per second over Duration, except for tcp-throughput where it is the
	// echoed bytes received per second.
	Rate          float64 `json:"rate"`
	Connections   uint64  `json:"connections"` // connections opened in the window
	BytesSent     uint64  `json:"bytes_sent"`
	BytesReceived uint64  `json:"bytes_received"`
	Sent          uint64  `json:"sent,omitempty"` // udp: datagrams sent
	Loss          float64 `json:"loss,omitempty"` // udp: 1 - answered/sent
	// Late counts udp answers that arrived after their timeout; they are lost already.
	Late uint64 `json:"late,omitempty"`
	// Unsent counts open-loop operations scheduled inside the window that were never
	// started because every connection was busy: the target (or the generator) could
	// not keep up with the offered rate.
	Unsent uint64 `json:"unsent,omitempty"`
	// WarmupOps and WarmupConnections count the activity during the warmup, which is
	// not part of the other counters; with them a test can match a server's totals.
	WarmupOps         uint64            `json:"warmup_ops,omitempty"`
	WarmupConnections uint64            `json:"warmup_connections,omitempty"`
	Errors            map[string]uint64 `json:"errors"` // by kind, see the Err* constants
	Latency           Percentiles       `json:"latency"`
	Histogram         []HistogramBucket `json:"histogram,omitempty"`
}

// JSON returns the result as indented JSON.
func (r *Result) JSON() ([]byte, error) { return json.MarshalIndent(r, "", "  ") }

// ErrorCount returns the sum of all error kinds.
func (r *Result) ErrorCount() uint64 {
	var n uint64
	for _, v := range r.Errors {
		n += v
	}
	return n
}
