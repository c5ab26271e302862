package load

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteSummary writes r as a short human-readable table.
func (r *Result) WriteSummary(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	title := r.Kind + "  " + r.Target
	if r.Proto != "" {
		title += "  (" + r.Proto + ")"
	}
	fmt.Fprintln(tw, title)
	loop := "closed loop"
	if r.Offered > 0 {
		loop = fmt.Sprintf("open loop, offered %.0f/s", r.Offered)
	}
	fmt.Fprintf(tw, "  duration\t%.2fs\t%s\n", r.Duration.Seconds(), loop)
	switch r.Kind {
	case "tcp-throughput":
		fmt.Fprintf(tw, "  throughput\t%s\t%d chunks echoed\n", formatBytesRate(r.Rate), r.Ops)
	case "udp":
		fmt.Fprintf(tw, "  answered\t%d\t%.1f/s\n", r.Ops, r.Rate)
		fmt.Fprintf(tw, "  sent\t%d\tloss %.3f%%, late %d\n", r.Sent, 100*r.Loss, r.Late)
	default:
		unit := map[string]string{"http": "requests", "tcp-connect": "connections"}[r.Kind]
		fmt.Fprintf(tw, "  %s\t%d\t%.1f/s\n", unit, r.Ops, r.Rate)
	}
	if r.Unsent > 0 {
		fmt.Fprintf(tw, "  unsent\t%d\tscheduled but never started: the target or the generator fell behind\n", r.Unsent)
	}
	if r.Kind != "tcp-connect" || r.Connections != r.Ops {
		fmt.Fprintf(tw, "  connections\t%d\t\n", r.Connections)
	}
	fmt.Fprintf(tw, "  transfer\tsent %s\treceived %s\n", formatBytes(float64(r.BytesSent)), formatBytes(float64(r.BytesReceived)))
	l := r.Latency
	fmt.Fprintf(tw, "  latency\tp50 %s  p90 %s  p99 %s  p99.9 %s\tmax %s  mean %s\n",
		fmtDur(l.P50), fmtDur(l.P90), fmtDur(l.P99), fmtDur(l.P999), fmtDur(l.Max), fmtDur(l.Mean))
	fmt.Fprintf(tw, "  errors\t%s\t\n", formatErrors(r.Errors))
	return tw.Flush()
}

func formatErrors(m map[string]uint64) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

// fmtDur prints a latency with three significant digits.
func fmtDur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.3gs", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.3gms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.3gµs", float64(d)/float64(time.Microsecond))
}
