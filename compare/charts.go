package compare

import (
	"fmt"
	"image/color"
	"io"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// WriteChart draws the metric name of runs as an SVG chart: a group of
// bars per workload, a bar per path at its median, with whiskers from
// the minimum to the maximum. The axis is logarithmic when the medians
// span more than a hundredfold (the ratios of sizes often span decades).
func WriteChart(w io.Writer, runs []Run, name, title string) error {
	return writeChart(w, runs, name, title, "svg")
}

// writeChart is WriteChart in format (svg, png, pdf: what gonum/plot
// writes).
func writeChart(w io.Writer, runs []Run, name, title, format string) error {
	summary := Summarize(runs)
	workloads, paths := order(runs)
	p := plot.New()
	p.Title.Text = title
	p.Y.Label.Text = name
	p.Legend.Top = true
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, s := range summary {
		if st, ok := s[name]; ok && st.Median > 0 {
			lo, hi = math.Min(lo, st.Min), math.Max(hi, st.Max)
		}
	}
	logScale := hi/lo > 100
	if logScale {
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	}
	width := vg.Points(60 / float64(max(len(paths), 1)))
	for i, path := range paths {
		series := bars{width: width, offset: width * vg.Length(float64(i)-float64(len(paths)-1)/2), color: plotutil.Color(i), fromZero: !logScale}
		for j, wl := range workloads {
			if st, ok := summary[Key{wl, path}][name]; ok {
				series.points = append(series.points, errorPoint{x: float64(j), y: st.Median, low: st.Median - st.Min, high: st.Max - st.Median})
			}
		}
		p.Add(series)
		p.Legend.Add(path, series)
	}
	p.NominalX(workloads...)
	// Room for every group's bars, and above them for the legend.
	p.X.Min, p.X.Max = -0.5, float64(len(workloads))-0.5
	if logScale {
		p.Y.Min, p.Y.Max = p.Y.Min/5, p.Y.Max*20
	} else {
		p.Y.Max *= 1.35
	}
	wt, err := p.WriterTo(vg.Points(float64(80+90*len(workloads))), 4*vg.Inch, format)
	if err != nil {
		return fmt.Errorf("chart %s: %w", name, err)
	}
	_, err = wt.WriteTo(w)
	return err
}

// errorPoint is a bar's median and how far below and above it its
// whisker goes.
type errorPoint struct{ x, y, low, high float64 }

// bars is one path's series: a bar per workload at its median, from the
// axis's bottom, with a whisker from its minimum to its maximum. (gonum's
// BarChart starts bars at zero, which a log axis cannot show, and its
// error bars cannot be offset like its bars.)
type bars struct {
	points        []errorPoint
	width, offset vg.Length
	color         color.Color
	// fromZero says that the axis is linear: its range includes zero.
	fromZero bool
}

// Plot implements plot.Plotter.
func (b bars) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	line := plotter.DefaultLineStyle
	const capWidth = vg.Length(3)
	for _, pt := range b.points {
		x := trX(pt.x) + b.offset
		top := trY(pt.y)
		c.FillPolygon(b.color, c.ClipPolygonY([]vg.Point{
			{X: x - b.width/2, Y: c.Min.Y}, {X: x + b.width/2, Y: c.Min.Y},
			{X: x + b.width/2, Y: top}, {X: x - b.width/2, Y: top},
		}))
		if pt.low == 0 && pt.high == 0 {
			continue
		}
		lo, hi := trY(pt.y-pt.low), trY(pt.y+pt.high)
		c.StrokeLine2(line, x, lo, x, hi)
		c.StrokeLine2(line, x-capWidth, lo, x+capWidth, lo)
		c.StrokeLine2(line, x-capWidth, hi, x+capWidth, hi)
	}
}

// DataRange implements plot.DataRanger: the whiskers' extent (and zero,
// on a linear axis).
func (b bars) DataRange() (xmin, xmax, ymin, ymax float64) {
	xmin, ymin = math.Inf(1), math.Inf(1)
	xmax, ymax = math.Inf(-1), math.Inf(-1)
	for _, pt := range b.points {
		xmin, xmax = math.Min(xmin, pt.x), math.Max(xmax, pt.x)
		ymin, ymax = math.Min(ymin, pt.y-pt.low), math.Max(ymax, pt.y+pt.high)
	}
	if b.fromZero {
		ymin = math.Min(ymin, 0)
	}
	return xmin, xmax, ymin, ymax
}

// Thumbnail implements plot.Thumbnailer: the legend's swatch.
func (b bars) Thumbnail(c *draw.Canvas) {
	c.FillPolygon(b.color, []vg.Point{
		{X: c.Min.X, Y: c.Min.Y}, {X: c.Max.X, Y: c.Min.Y},
		{X: c.Max.X, Y: c.Max.Y}, {X: c.Min.X, Y: c.Max.Y},
	})
}
