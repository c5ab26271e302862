package report

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Plot size: small PNGs that stay commit-friendly and readable on a page.
const (
	plotWidth  = 6 * vg.Inch
	plotHeight = 3.6 * vg.Inch
)

// systemColor gives each system (by its index in the part) a distinct,
// colour-blind-safe colour (Okabe-Ito).
func systemColor(i int) color.Color {
	palette := [...]color.RGBA{
		{0, 114, 178, 255},   // blue
		{213, 94, 0, 255},    // vermillion
		{0, 158, 115, 255},   // green
		{204, 121, 167, 255}, // purple
		{230, 159, 0, 255},   // orange
		{86, 180, 233, 255},  // sky
	}
	return palette[i%len(palette)]
}

// WritePlots writes the part's PNGs into dir and records their names in
// p.Plots: <name>-latency.png (p50 and p99 against the offered rate, one
// colour per system), <name>-throughput.png and <name>-cpu.png (bars of the
// medians, a dot per round).
func WritePlots(dir string, p *Part) error {
	p.Plots = nil
	type plotFn struct {
		suffix string
		make   func(*Part) (*plot.Plot, error)
		legend bool
	}
	first := plotFn{"latency", latencyPlot, true}
	if p.NoLatency {
		first = plotFn{"delivery", deliveryPlot, true}
	}
	for _, f := range []plotFn{
		first,
		{"throughput", throughputPlot, false},
		{"cpu", cpuPlot, false},
	} {
		pl, err := f.make(p)
		if err != nil {
			return fmt.Errorf("%s %s plot: %w", p.Name, f.suffix, err)
		}
		name := p.Name + "-" + f.suffix + ".png"
		if err := savePNG(pl, f.legend, filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("saving %s: %w", name, err)
		}
		p.Plots = append(p.Plots, name)
	}
	return nil
}

// legendWidth is the strip right of the plot that holds the legend, so the
// legend never covers a line.
const legendWidth = 1.45 * vg.Inch

// savePNG draws pl on a white canvas, with its legend in a strip on the
// right when legend is set, and writes it as PNG.
func savePNG(pl *plot.Plot, legend bool, path string) error {
	c := vgimg.NewWith(vgimg.UseWH(plotWidth, plotHeight), vgimg.UseDPI(96))
	dc := draw.New(c)
	dc.SetColor(color.White)
	dc.Fill(dc.Rectangle.Path())
	if legend {
		leg := pl.Legend
		pl.Legend = plot.NewLegend()
		pl.Draw(draw.Crop(dc, 0, -legendWidth, 0, 0))
		leg.Top, leg.Left = true, true
		leg.XOffs = vg.Points(8)
		leg.YOffs = -vg.Points(24) // level with the top of the data area
		leg.Draw(draw.Crop(dc, plotWidth-legendWidth, 0, 0, 0))
	} else {
		pl.Draw(dc)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: c}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// logTicks labels every decade of a log axis, and 2 and 5 too when the
// axis spans at most two decades.
type logTicks struct{}

func (logTicks) Ticks(lo, hi float64) []plot.Tick {
	var ticks []plot.Tick
	few := math.Log10(hi/lo) <= 2.01
	for e := math.Floor(math.Log10(lo)); e <= math.Ceil(math.Log10(hi)); e++ {
		base := math.Pow(10, e)
		for m := 1.0; m <= 9; m++ {
			v := m * base
			if v < lo*(1-1e-9) || v > hi*(1+1e-9) {
				continue
			}
			t := plot.Tick{Value: v}
			if m == 1 || few && (m == 2 || m == 5) {
				t.Label = strconv.FormatFloat(v, 'f', -1, 64)
			}
			ticks = append(ticks, t)
		}
	}
	return ticks
}

// labelledTicks are gonum's default ticks with labels in our format.
type labelledTicks struct{ format func(float64) string }

func (t labelledTicks) Ticks(lo, hi float64) []plot.Tick {
	ticks := plot.DefaultTicks{}.Ticks(lo, hi)
	for i := range ticks {
		switch {
		case ticks[i].Label == "":
		case ticks[i].Value == 0:
			ticks[i].Label = "0"
		default:
			ticks[i].Label = t.format(ticks[i].Value)
		}
	}
	return ticks
}

func latencyPlot(p *Part) (*plot.Plot, error) {
	pl := plot.New()
	pl.Title.Text = p.short() + ": latency against offered rate"
	pl.X.Label.Text = "offered rate (" + p.Unit + ")"
	pl.Y.Label.Text = "latency (ms, log scale)"
	pl.Y.Scale = plot.LogScale{}
	pl.Y.Tick.Marker = logTicks{}
	pl.Add(plotter.NewGrid())
	drawn := false
	lo, hi := math.Inf(1), 0.0
	for i, sys := range p.Systems {
		for q, pick := range []struct {
			label string
			value func(SweepPoint) time.Duration
		}{
			{"p50", func(s SweepPoint) time.Duration { return s.P50 }},
			{"p99", func(s SweepPoint) time.Duration { return s.P99 }},
		} {
			var xys plotter.XYs
			for _, s := range p.Sweep {
				if v := pick.value(s); s.System == sys && v > 0 {
					ms := float64(v) / float64(time.Millisecond)
					xys = append(xys, plotter.XY{X: s.Offered, Y: ms})
					lo, hi = math.Min(lo, ms), math.Max(hi, ms)
				}
			}
			if len(xys) == 0 {
				continue
			}
			line, points, err := plotter.NewLinePoints(xys)
			if err != nil {
				return nil, err
			}
			line.Color = systemColor(i)
			line.Width = vg.Points(1.5)
			points.Color = systemColor(i)
			points.Shape = draw.CircleGlyph{}
			if q == 1 {
				line.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
				points.Shape = draw.TriangleGlyph{}
			}
			pl.Add(line, points)
			pl.Legend.Add(sys+" "+pick.label, line, points)
			drawn = true
		}
	}
	if !drawn {
		return nil, fmt.Errorf("no latency measured")
	}
	// Whole decades, so the log axis always has labelled ticks.
	pl.Y.Min = math.Pow(10, math.Floor(math.Log10(lo)))
	pl.Y.Max = math.Pow(10, math.Ceil(math.Log10(hi)))
	pl.X.Min = 0
	return pl, nil
}

// deliveryPlot is the delivered rate against the offered rate, one line
// per system: a system that keeps up follows the diagonal.
func deliveryPlot(p *Part) (*plot.Plot, error) {
	pl := plot.New()
	pl.Title.Text = p.short() + ": delivered against offered rate"
	pl.X.Label.Text = "offered rate (" + p.Unit + ")"
	pl.Y.Label.Text = "delivered (" + p.Unit + ")"
	pl.X.Tick.Marker = labelledTicks{fmtRate}
	pl.Y.Tick.Marker = labelledTicks{fmtRate}
	pl.Add(plotter.NewGrid())
	drawn := false
	for i, sys := range p.Systems {
		var xys plotter.XYs
		for _, s := range p.Sweep {
			if s.System == sys && s.Offered > 0 {
				xys = append(xys, plotter.XY{X: s.Offered, Y: s.Achieved})
			}
		}
		if len(xys) == 0 {
			continue
		}
		line, points, err := plotter.NewLinePoints(xys)
		if err != nil {
			return nil, err
		}
		line.Color, points.Color = systemColor(i), systemColor(i)
		line.Width = vg.Points(1.5)
		points.Shape = draw.CircleGlyph{}
		pl.Add(line, points)
		pl.Legend.Add(sys, line, points)
		drawn = true
	}
	if !drawn {
		return nil, fmt.Errorf("no paced rate measured")
	}
	pl.X.Min, pl.Y.Min = 0, 0
	return pl, nil
}

func throughputPlot(p *Part) (*plot.Plot, error) {
	return barPlot(p, p.short()+": closed-loop rate", "max rate ("+p.Unit+")",
		func(s SystemSummary) (float64, []float64) { return s.MaxRate, s.MaxRates }, fmtRate)
}

func cpuPlot(p *Part) (*plot.Plot, error) {
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	title := fmt.Sprintf("%s: CPU per %s at %s %s", p.short(), p.Op, fmtRate(p.FixedRate), p.Unit)
	return barPlot(p, title, "CPU µs per "+p.Op+" ("+cpuLabel(p.CPUMethod)+")",
		func(s SystemSummary) (float64, []float64) {
			if !p.cpuMeasured(s.System) {
				return 0, nil // not attributable: an empty bar, as the table's n/a
			}
			var rounds []float64
			for _, d := range s.CPUPerOpRounds {
				rounds = append(rounds, us(d))
			}
			return us(s.CPUPerOp), rounds
		},
		func(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) })
}

const barWidth vg.Length = 56 // points

// barPlot draws one bar per system (the median) with a dot per round and
// the median written above the bar.
func barPlot(p *Part, title, ylabel string, value func(SystemSummary) (float64, []float64), label func(float64) string) (*plot.Plot, error) {
	pl := plot.New()
	pl.Title.Text = title
	pl.X.Label.Text = "system (bar: median of the rounds, dot: each round)"
	pl.Y.Label.Text = ylabel
	pl.Y.Tick.Marker = labelledTicks{label}
	grid := plotter.NewGrid()
	grid.Vertical.Color = nil
	pl.Add(grid)
	var names []string
	var labels plotter.XYLabels
	top := 0.0
	for i, s := range p.Summary {
		med, rounds := value(s)
		names = append(names, s.System)
		bar, err := plotter.NewBarChart(plotter.Values{med}, barWidth)
		if err != nil {
			return nil, err
		}
		bar.XMin = float64(i)
		bar.Color = systemColor(i)
		bar.LineStyle.Width = 0
		pl.Add(bar)
		if len(rounds) > 0 {
			var xys plotter.XYs
			for _, r := range rounds {
				xys = append(xys, plotter.XY{X: float64(i), Y: r})
				top = math.Max(top, r)
			}
			dots, err := plotter.NewScatter(xys)
			if err != nil {
				return nil, err
			}
			dots.Shape = draw.CircleGlyph{}
			dots.Color = color.Black
			dots.Radius = vg.Points(2)
			pl.Add(dots)
		}
		top = math.Max(top, med)
		// Right of the bar's top, clear of the dots on its centre line.
		labels.XYs = append(labels.XYs, plotter.XY{X: float64(i), Y: med})
		labels.Labels = append(labels.Labels, label(med))
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("no systems")
	}
	pl.NominalX(names...)
	pl.X.Min, pl.X.Max = -0.6, float64(len(names))-0.4
	pl.Y.Min = 0
	// Head room for the value labels.
	pl.Y.Max = top * 1.15
	if pl.Y.Max == 0 {
		pl.Y.Max = 1
	}
	text, err := plotter.NewLabels(labels)
	if err != nil {
		return nil, err
	}
	for i := range text.TextStyle {
		text.TextStyle[i].XAlign = draw.XLeft
		text.TextStyle[i].YAlign = draw.YCenter
	}
	text.Offset = vg.Point{X: barWidth/2 + vg.Points(3)}
	pl.Add(text)
	return pl, nil
}
