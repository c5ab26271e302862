package report

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Table returns the part's summary as a markdown table: per system the
// median closed-loop rate, CPU per operation and latency at the fixed rate,
// then for each numerator N the ratios N ÷ the row's system.
func Table(p *Part) string {
	if p.NoLatency {
		return deliveryTable(p)
	}
	var b strings.Builder
	head := []string{
		"system",
		"max " + p.Unit,
		"CPU µs/" + p.Op + " (" + cpuLabel(p.CPUMethod) + ")",
		fmt.Sprintf("p50 at %s %s", fmtRate(p.FixedRate), p.Unit),
		"p99",
	}
	for _, n := range p.Numerators {
		head = append(head, n+" ÷ row: "+p.Unit, "CPU/"+p.Op, "p50", "p99")
	}
	header(&b, head)
	for _, s := range p.Summary {
		cpu := "n/a"
		if p.cpuMeasured(s.System) {
			cpu = fmtMicros(s.CPUPerOp)
		}
		cells := []string{s.System, fmtRate(s.MaxRate), cpu, fmtLatency(s.P50), fmtLatency(s.P99)}
		for _, n := range p.Numerators {
			r, ok := p.ratio(n, s.System)
			if !ok {
				cells = append(cells, "—", "—", "—", "—")
				continue
			}
			cpuRatio := "n/a"
			if p.cpuMeasured(n) && p.cpuMeasured(s.System) {
				cpuRatio = fmtRatio(r.CPUPerOp)
			}
			cells = append(cells, fmtRatio(r.MaxRate), cpuRatio, fmtRatio(r.P50), fmtRatio(r.P99))
		}
		row(&b, cells)
	}
	return b.String()
}

// deliveryTable is Table for a part without latency: the highest rate
// delivered, CPU per operation and loss at the fixed rate, and the ratios
// of the first two.
func deliveryTable(p *Part) string {
	var b strings.Builder
	head := []string{
		"system",
		"max " + p.Unit + " (under 1% loss)",
		"CPU µs/" + p.Op + " (" + cpuLabel(p.CPUMethod) + ")",
		fmt.Sprintf("delivered at %s %s", fmtRate(p.FixedRate), p.Unit),
		"loss",
	}
	for _, n := range p.Numerators {
		head = append(head, n+" ÷ row: "+p.Unit, "CPU/"+p.Op)
	}
	header(&b, head)
	for _, s := range p.Summary {
		cpu := "n/a"
		if p.cpuMeasured(s.System) {
			cpu = fmtMicros(s.CPUPerOp)
		}
		loss := strconv.FormatFloat(100*s.Loss, 'f', 2, 64) + "%"
		cells := []string{s.System, fmtRate(s.MaxRate), cpu, fmtRate(s.FixedAchieved), loss}
		for _, n := range p.Numerators {
			r, ok := p.ratio(n, s.System)
			if !ok {
				cells = append(cells, "—", "—")
				continue
			}
			cpuRatio := "n/a"
			if p.cpuMeasured(n) && p.cpuMeasured(s.System) {
				cpuRatio = fmtRatio(r.CPUPerOp)
			}
			cells = append(cells, fmtRatio(r.MaxRate), cpuRatio)
		}
		row(&b, cells)
	}
	return b.String()
}

func (p *Part) ratio(num, den string) (Ratio, bool) {
	for _, r := range p.Ratios {
		if r.Num == num && r.Den == den {
			return r, true
		}
	}
	return Ratio{}, false
}

// header writes the heading row and the alignment row (first column left,
// the figures right).
func header(b *strings.Builder, head []string) {
	row(b, head)
	sep := make([]string, len(head))
	for i := range sep {
		sep[i] = "---"
		if i > 0 {
			sep[i] = "--:"
		}
	}
	row(b, sep)
}

func row(b *strings.Builder, cells []string) {
	b.WriteString("| " + strings.Join(cells, " | ") + " |\n")
}

func cpuLabel(method string) string {
	if method == CPUGatewayCore {
		return "gateway core"
	}
	return "process"
}

// Markdown renders the report: a heading of level heading ("#", "##"), the
// command, machine and settings, and per part its table, notes and plots
// (linked under imgDir, relative to the document).
func Markdown(r *Report, imgDir, heading string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s — %s\n\n", heading, r.Title, r.Date.Format("2006-01-02"))
	if r.Description != "" {
		b.WriteString(r.Description + "\n\n")
	}
	fmt.Fprintf(&b, "Command: `%s` (%s).\n\n", r.Command, r.Date.UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&b, "Machine: %s.\n\n", r.Machine)
	if r.Body != "" {
		b.WriteString(strings.TrimRight(r.Body, "\n") + "\n\n")
	} else {
		st := r.Settings
		fmt.Fprintf(&b, "Settings: %d interleaved round(s); each measurement %s after a %s warmup (sweep points %s); "+
			"load generator on core %d, system under test on core %d.\n\n",
			st.Rounds, st.Duration, st.Warmup, st.SweepDuration, st.LoadCPU, st.GatewayCPU)
	}
	for _, p := range r.Parts {
		fmt.Fprintf(&b, "%s# %s\n\n", heading, p.Title)
		b.WriteString(Table(p))
		b.WriteString("\n")
		for _, n := range partNotes(p) {
			b.WriteString("- " + n + "\n")
		}
		b.WriteString("\n")
		for _, f := range p.Plots {
			fmt.Fprintf(&b, "![%s](%s/%s)\n", plotAlt(p, f), imgDir, f)
		}
		if len(p.Plots) > 0 {
			b.WriteString("\n")
		}
	}
	if len(r.Method) > 0 {
		fmt.Fprintf(&b, "%s# How these figures were got\n\n", heading)
		for _, m := range r.Method {
			b.WriteString(m + "\n\n")
		}
	}
	return strings.TrimRight(b.String(), "\n") + "\n"
}

// partNotes says what a reader must know to trust the table: rounds,
// where the load side was the limit, errors and loss.
func partNotes(p *Part) []string {
	var notes []string
	rounds := 0
	for _, s := range p.Summary {
		rounds = max(rounds, len(s.MaxRates))
	}
	if p.NoLatency {
		notes = append(notes, fmt.Sprintf("Medians of %d round(s); %d flows; max is the highest offered rate delivered "+
			"with under 1%% loss (the generator's full speed when the system kept up with it); the fixed rate is paced.", rounds, p.Connections))
	} else {
		notes = append(notes, fmt.Sprintf("Medians of %d round(s); %d concurrent connections (sockets for udp); "+
			"the fixed rate is open loop (latency from each %s's scheduled send time).", rounds, p.Connections, p.Op))
	}
	for _, s := range p.Summary {
		var per []string
		for _, r := range s.MaxRates {
			per = append(per, fmtRate(r))
		}
		line := fmt.Sprintf("%s: max per round %s %s, gateway core %.0f%% busy and %s µs/%s at max; at the fixed rate %s %s achieved",
			s.System, strings.Join(per, " / "), p.Unit, 100*s.MaxGatewayUtil, fmtMicros(s.CPUPerOpMax), p.Op, fmtRate(s.FixedAchieved), p.Unit)
		if p.CPUMethod == CPUGatewayCore {
			line += fmt.Sprintf(", all cores minus the generator %s µs/%s", fmtMicros(s.CPUPerOpOthers), p.Op)
		}
		if s.Others >= 0.05 {
			line += fmt.Sprintf(", other processes on the machine used %.2f cores meanwhile", s.Others)
		}
		if s.Loss > 0 {
			line += fmt.Sprintf(", median loss %s%%", strconv.FormatFloat(100*s.Loss, 'g', 2, 64))
		}
		if s.Errors > 0 {
			line += fmt.Sprintf(", %d failed %ss over all its runs", s.Errors, p.Op)
		}
		notes = append(notes, line+".")
	}
	return notes
}

func plotAlt(p *Part, file string) string {
	switch {
	case strings.HasSuffix(file, "-latency.png"):
		return p.Title + ": latency against offered rate"
	case strings.HasSuffix(file, "-delivery.png"):
		return p.Title + ": delivered against offered rate"
	case strings.HasSuffix(file, "-throughput.png"):
		return p.Title + ": closed-loop rate"
	case strings.HasSuffix(file, "-cpu.png"):
		return p.Title + ": CPU per " + p.Op
	}
	return p.Title
}

// fmtRate formats ops/s with thousands separators: 12,345.
func fmtRate(r float64) string {
	if r <= 0 || math.IsNaN(r) || math.IsInf(r, 0) {
		return "—"
	}
	s := strconv.FormatInt(int64(math.Round(r)), 10)
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	return string(out)
}

func fmtMicros(d time.Duration) string {
	if d <= 0 {
		return "—"
	}
	us := float64(d) / float64(time.Microsecond)
	if us < 10 {
		return strconv.FormatFloat(us, 'f', 2, 64)
	}
	return strconv.FormatFloat(us, 'f', 1, 64)
}

func fmtLatency(d time.Duration) string {
	switch {
	case d <= 0:
		return "—"
	case d < time.Millisecond:
		return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
	case d < time.Second:
		return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

func fmtRatio(r float64) string {
	if r <= 0 || math.IsNaN(r) || math.IsInf(r, 0) {
		return "—"
	}
	return strconv.FormatFloat(r, 'f', 2, 64)
}
