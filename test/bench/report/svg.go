package report

import (
	"fmt"
	"html"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/uplinkd/uplinkd/test/bench/stats"
)

// The plots are plain SVG 1.1 written by hand: a line chart (CDF staircases,
// or points with whiskers) and a grouped bar chart. Everything that could be
// NaN or infinite is filtered before it reaches a coordinate, and a chart
// without data still renders a frame that says so.

// palette is Okabe–Ito: distinct on white and for most colour-blind readers.
var palette = []string{"#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#999999"}

const (
	fontSize  = 12
	charWidth = 6.6 // average glyph width at fontSize, for layout
	logGap    = 0.08
)

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// positive is the finite values > 0 of vs.
func positive(vs []float64) []float64 {
	var out []float64
	for _, v := range vs {
		if finite(v) && v > 0 {
			out = append(out, v)
		}
	}
	return out
}

// px formats a coordinate; non-finite values never get this far, but a
// broken coordinate must not break the document either.
func px(v float64) string {
	if !finite(v) {
		return "0"
	}
	return strconv.FormatFloat(math.Round(v*10)/10, 'f', -1, 64)
}

// esc makes text safe in XML character data and attribute values.
func esc(s string) string { return html.EscapeString(s) }

// scale maps data values to pixels, linear or log10.
type scale struct {
	lo, hi float64
	log    bool
	zero   bool    // log scale with a slot for values <= 0 at its start
	step   float64 // linear tick step
	p0, p1 float64 // pixels of lo and hi
}

// niceStep is 1, 2, 2.5 or 5 times a power of ten, at least raw.
func niceStep(raw float64) float64 {
	if raw <= 0 || !finite(raw) {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if raw <= m*p*(1+1e-9) {
			return m * p
		}
	}
	return 10 * p
}

// newScale fits vals: log10 when allowLog and the positive values span 1.5
// decades or more (a factor of 30), otherwise linear from 0 (or the minimum, if negative).
// integer keeps linear ticks on whole numbers.
func newScale(vals []float64, allowLog, integer bool) scale {
	minPos, maxV, minV, found, nonPos := math.Inf(1), math.Inf(-1), math.Inf(1), false, false
	for _, v := range vals {
		if !finite(v) {
			continue
		}
		found = true
		maxV, minV = max(maxV, v), min(minV, v)
		if v > 0 {
			minPos = min(minPos, v)
		} else {
			nonPos = true
		}
	}
	if !found {
		return scale{lo: 0, hi: 1, step: 0.25}
	}
	if allowLog && finite(minPos) && maxV/minPos >= 30 {
		lo := math.Pow(10, math.Floor(math.Log10(minPos)))
		hi := math.Pow(10, math.Ceil(math.Log10(maxV)))
		if hi <= lo {
			hi = lo * 10
		}
		return scale{lo: lo, hi: hi, log: true, zero: nonPos}
	}
	lo, hi := min(0, minV), maxV
	if hi <= lo {
		hi = lo + 1
	}
	step := niceStep((hi - lo) / 5)
	if integer {
		step = max(step, 1)
	}
	return scale{lo: math.Floor(lo/step) * step, hi: math.Ceil(hi/step-1e-9) * step, step: step}
}

func (s scale) pixels(p0, p1 float64) scale {
	s.p0, s.p1 = p0, p1
	return s
}

// at is the pixel of v; values outside the domain are clamped to it.
func (s scale) at(v float64) float64 {
	if !s.log {
		f := (min(max(v, s.lo), s.hi) - s.lo) / (s.hi - s.lo)
		return s.p0 + f*(s.p1-s.p0)
	}
	start := s.p0
	if s.zero {
		if v <= 0 {
			return s.p0
		}
		start = s.p0 + logGap*(s.p1-s.p0)
	}
	v = min(max(v, s.lo), s.hi)
	f := (math.Log10(v) - math.Log10(s.lo)) / (math.Log10(s.hi) - math.Log10(s.lo))
	return start + f*(s.p1-start)
}

// ticks are the values to label: nice steps, or decades (with 2 and 5 in
// between when there are few decades) on a log scale.
func (s scale) ticks() []float64 {
	var out []float64
	if !s.log {
		n := int(math.Round((s.hi - s.lo) / s.step))
		for i := 0; i <= n && i <= 50; i++ {
			out = append(out, s.lo+float64(i)*s.step)
		}
		return out
	}
	if s.zero {
		out = append(out, 0)
	}
	decades := int(math.Round(math.Log10(s.hi / s.lo)))
	mults := []float64{1}
	if decades <= 2 {
		mults = []float64{1, 2, 5}
	}
	for d := 0; d <= decades && d <= 30; d++ {
		base := s.lo * math.Pow(10, float64(d))
		for _, m := range mults {
			if v := base * m; v <= s.hi*(1+1e-9) {
				out = append(out, v)
			}
		}
	}
	return out
}

// axisLabel says when an axis is logarithmic.
func (s scale) axisLabel(label string) string {
	if s.log {
		label += " — log scale"
	}
	return label
}

// legendEntry is one line of a legend: a line sample or a filled box.
type legendEntry struct {
	Name, Color, Dash string
	Box               bool
}

// legendHeight is the height the legend of width w needs.
func legendHeight(entries []legendEntry, w float64) float64 {
	if len(entries) == 0 {
		return 0
	}
	rows, x := 1, 0.0
	for _, e := range entries {
		ew := legendEntryWidth(e)
		if x > 0 && x+ew > w {
			rows, x = rows+1, 0
		}
		x += ew
	}
	return float64(rows)*18 + 6
}

func legendEntryWidth(e legendEntry) float64 {
	return 34 + charWidth*float64(len([]rune(e.Name))) + 18
}

// writeLegend lays entries out in rows from (x0, y0), wrapping at width w.
func writeLegend(b *strings.Builder, entries []legendEntry, x0, y0, w float64) {
	if len(entries) == 0 {
		return
	}
	b.WriteString(`<g class="legend">`)
	x, y := 0.0, y0+12
	for _, e := range entries {
		ew := legendEntryWidth(e)
		if x > 0 && x+ew > w {
			x, y = 0, y+18
		}
		if e.Box {
			fmt.Fprintf(b, `<rect x="%s" y="%s" width="24" height="10" fill="%s"/>`, px(x0+x), px(y-9), esc(e.Color))
		} else {
			fmt.Fprintf(b, `<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="2.5"%s/>`,
				px(x0+x), px(y-4), px(x0+x+24), px(y-4), esc(e.Color), dashAttr(e.Dash))
		}
		fmt.Fprintf(b, `<text x="%s" y="%s">%s</text>`, px(x0+x+30), px(y), esc(e.Name))
		x += ew
	}
	b.WriteString(`</g>`)
}

func dashAttr(d string) string {
	if d == "" {
		return ""
	}
	return ` stroke-dasharray="` + esc(d) + `"`
}

// svgOpen starts an SVG document of w×h with the shared text style.
func svgOpen(b *strings.Builder, w, h float64, title string) {
	fmt.Fprintf(b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %s %s" width="%s" height="%s" role="img" aria-label="%s" font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif" font-size="%d" fill="#222">`,
		px(w), px(h), px(w), px(h), esc(title), fontSize)
	fmt.Fprintf(b, `<title>%s</title>`, esc(title))
	fmt.Fprintf(b, `<text x="%s" y="20" font-size="14" font-weight="600">%s</text>`, px(12), esc(title))
}

// noData fills the plot area with a note; the chart stays valid SVG.
func noData(b *strings.Builder, left, top, w, h float64) {
	fmt.Fprintf(b, `<rect x="%s" y="%s" width="%s" height="%s" fill="#f6f6f6" stroke="#ccc"/>`, px(left), px(top), px(w), px(h))
	fmt.Fprintf(b, `<text x="%s" y="%s" text-anchor="middle" fill="#777">no data in this run</text>`, px(left+w/2), px(top+h/2))
}

// lineSeries is one line of a line chart.
type lineSeries struct {
	Name   string
	Color  string
	Dash   string // stroke-dasharray; "" is solid
	Points []stats.Point
	Step   bool      // a CDF: horizontal, then vertical steps up from y=0
	Marker bool      // a dot at each point
	Upper  []float64 // per point, the top of a whisker (e.g. p99); optional
	Offset float64   // pixels to shift right, so whiskers of series do not overlap
}

// lineChart draws series on two axes.
type lineChart struct {
	Title          string
	XLabel, YLabel string
	XFmt, YFmt     func(float64) string
	XLog, YLog     bool      // use a log scale when the data spans decades
	XInt           bool      // linear x ticks on whole numbers
	XTicks         []float64 // fixed x ticks instead of automatic ones
	CDF            bool      // y is a share 0..1, shown in percent
	Series         []lineSeries
	Width, Height  float64 // of the plot including axes, without the legend
}

const (
	marginLeft   = 74
	marginRight  = 22
	marginTop    = 34
	marginBottom = 48
)

// clean drops points with a non-finite coordinate (and their whiskers).
func (s lineSeries) clean() lineSeries {
	out := s
	out.Points, out.Upper = nil, nil
	for i, p := range s.Points {
		if !finite(p.X) || !finite(p.Y) {
			continue
		}
		out.Points = append(out.Points, p)
		if len(s.Upper) == len(s.Points) {
			out.Upper = append(out.Upper, s.Upper[i])
		}
	}
	return out
}

func (c lineChart) svg() string {
	var series []lineSeries
	var xs, ys []float64
	for _, s := range c.Series {
		s = s.clean()
		if len(s.Points) == 0 {
			continue
		}
		series = append(series, s)
		for i, p := range s.Points {
			xs, ys = append(xs, p.X), append(ys, p.Y)
			if s.Upper != nil && finite(s.Upper[i]) {
				ys = append(ys, s.Upper[i])
			}
		}
	}
	xs = append(xs, c.XTicks...)
	legend := make([]legendEntry, 0, len(series))
	for _, s := range series {
		legend = append(legend, legendEntry{Name: s.Name, Color: s.Color, Dash: s.Dash})
	}
	plotW := c.Width - marginLeft - marginRight
	plotH := c.Height - marginTop - marginBottom
	h := c.Height + legendHeight(legend, plotW)

	var b strings.Builder
	svgOpen(&b, c.Width, h, c.Title)
	if len(series) == 0 {
		noData(&b, marginLeft, marginTop, plotW, plotH)
		b.WriteString(`</svg>`)
		return b.String()
	}
	x := newScale(xs, c.XLog, c.XInt).pixels(marginLeft, marginLeft+plotW)
	if fixed := positive(c.XTicks); c.XLog && len(fixed) > 0 && len(fixed) == len(c.XTicks) {
		// Fixed ticks (e.g. 1, 64, 1024 guests): fit the axis to them.
		lo, hi := slices.Min(fixed), slices.Max(fixed)
		x = scale{lo: lo / 1.6, hi: hi * 1.6, log: true}.pixels(marginLeft, marginLeft+plotW)
	}
	y := newScale(ys, c.YLog, false).pixels(marginTop+plotH, marginTop)
	if c.CDF {
		y = scale{lo: 0, hi: 1, step: 0.25}.pixels(marginTop+plotH, marginTop)
	}
	yFmt := c.YFmt
	if c.CDF {
		yFmt = func(v float64) string { return trimFloat(v*100, 0) + "%" }
	}
	xTicks := x.ticks()
	if c.XTicks != nil {
		xTicks = c.XTicks
	}
	writeAxes(&b, x, y, xTicks, y.ticks(), c.XFmt, yFmt, x.axisLabel(c.XLabel), y.axisLabel(c.YLabel))

	for _, s := range series {
		fmt.Fprintf(&b, `<g class="series" data-series="%s" fill="none" stroke="%s" stroke-width="2.2"%s>`,
			esc(s.Name), esc(s.Color), dashAttr(s.Dash))
		var d strings.Builder
		for j, p := range s.Points {
			px0, py := x.at(p.X)+s.Offset, y.at(p.Y)
			switch {
			case j == 0 && s.Step:
				fmt.Fprintf(&d, "M%s %sV%s", px(px0), px(y.at(0)), px(py))
			case j == 0:
				fmt.Fprintf(&d, "M%s %s", px(px0), px(py))
			case s.Step:
				fmt.Fprintf(&d, "H%sV%s", px(px0), px(py))
			default:
				fmt.Fprintf(&d, "L%s %s", px(px0), px(py))
			}
		}
		fmt.Fprintf(&b, `<path d="%s"/>`, d.String())
		last := s.Points[len(s.Points)-1]
		for j, p := range s.Points {
			cx, cy := x.at(p.X)+s.Offset, y.at(p.Y)
			if s.Upper != nil && finite(s.Upper[j]) && s.Upper[j] != p.Y {
				top := y.at(s.Upper[j])
				fmt.Fprintf(&b, `<path d="M%s %sV%sM%s %sH%s" stroke-width="1.3" stroke-dasharray="none"/>`,
					px(cx), px(cy), px(top), px(cx-4), px(top), px(cx+4))
			}
			if s.Marker || (s.Step && p == last) {
				fmt.Fprintf(&b, `<circle cx="%s" cy="%s" r="3.5" fill="%s" stroke="none"/>`, px(cx), px(cy), esc(s.Color))
			}
		}
		b.WriteString(`</g>`)
	}
	writeLegend(&b, legend, marginLeft, c.Height-4, plotW)
	b.WriteString(`</svg>`)
	return b.String()
}

// writeAxes draws the grid, both axes with their ticks and labels.
func writeAxes(b *strings.Builder, x, y scale, xTicks, yTicks []float64, xFmt, yFmt func(float64) string,
	xLabel, yLabel string) {
	left, right, top, bottom := x.p0, x.p1, y.p1, y.p0
	b.WriteString(`<g class="axes" stroke="#ddd" stroke-width="1">`)
	for _, t := range yTicks {
		fmt.Fprintf(b, `<line x1="%s" y1="%s" x2="%s" y2="%s"/>`, px(left), px(y.at(t)), px(right), px(y.at(t)))
	}
	for _, t := range xTicks {
		fmt.Fprintf(b, `<line x1="%s" y1="%s" x2="%s" y2="%s"/>`, px(x.at(t)), px(top), px(x.at(t)), px(bottom))
	}
	fmt.Fprintf(b, `<path d="M%s %sV%sH%s" stroke="#555" fill="none"/>`, px(left), px(top), px(bottom), px(right))
	if x.log && x.zero { // a break in the axis between 0 and the first decade
		bx := x.p0 + logGap*(x.p1-x.p0)/2
		fmt.Fprintf(b, `<path d="M%s %sl4 -8M%s %sl4 -8" stroke="#555"/>`, px(bx-5), px(bottom+4), px(bx-1), px(bottom+4))
	}
	b.WriteString(`</g><g class="ticks">`)
	for _, t := range yTicks {
		fmt.Fprintf(b, `<text x="%s" y="%s" text-anchor="end">%s</text>`, px(left-6), px(y.at(t)+4), esc(yFmt(t)))
	}
	for _, t := range xTicks {
		fmt.Fprintf(b, `<text x="%s" y="%s" text-anchor="middle">%s</text>`, px(x.at(t)), px(bottom+16), esc(xFmt(t)))
	}
	fmt.Fprintf(b, `<text x="%s" y="%s" text-anchor="middle" fill="#444">%s</text>`, px((left+right)/2), px(bottom+36), esc(xLabel))
	fmt.Fprintf(b, `<text transform="translate(%s %s) rotate(-90)" text-anchor="middle" fill="#444">%s</text>`,
		px(16), px((top+bottom)/2), esc(yLabel))
	b.WriteString(`</g>`)
}

// bar is one bar: a value with an optional range (e.g. min–max of rounds).
type bar struct {
	Color         string
	Value, Lo, Hi float64
}

// barGroup is the bars of one setting, e.g. guest → uplink at 64 B.
type barGroup struct {
	Label string // "\n" splits it into lines
	Bars  []bar
}

// barChart draws grouped vertical bars on a linear axis from zero: bar length
// is the figure, so a log axis would mislead; every bar is labelled with its
// value so short bars stay readable.
type barChart struct {
	Title, YLabel string
	YFmt          func(float64) string
	Groups        []barGroup
	Legend        []legendEntry
	Width, Height float64
}

func (c barChart) svg() string {
	var ys []float64
	maxBars := 0
	for _, g := range c.Groups {
		for _, br := range g.Bars {
			if finite(br.Value) {
				ys = append(ys, br.Value, br.Hi)
			}
		}
		maxBars = max(maxBars, len(g.Bars))
	}
	plotW := c.Width - marginLeft - marginRight
	plotH := c.Height - marginTop - marginBottom - 14 // two-line group labels
	h := c.Height + legendHeight(c.Legend, plotW)
	var b strings.Builder
	svgOpen(&b, c.Width, h, c.Title)
	if len(ys) == 0 {
		noData(&b, marginLeft, marginTop, plotW, plotH)
		b.WriteString(`</svg>`)
		return b.String()
	}
	y := newScale(append(ys, 0), false, false).pixels(marginTop+plotH, marginTop)
	x := scale{lo: 0, hi: 1, step: 1}.pixels(marginLeft, marginLeft+plotW)
	tickFmt := func(v float64) string { return trimFloat(v, 3) }
	writeAxes(&b, x, y, nil, y.ticks(), nil, tickFmt, "", c.YLabel)

	groupW := plotW / float64(len(c.Groups))
	barW := min(44, groupW*0.8/float64(max(maxBars, 1)))
	for gi, g := range c.Groups {
		gx := marginLeft + groupW*float64(gi)
		start := gx + (groupW-barW*float64(len(g.Bars)))/2
		for i, br := range g.Bars {
			if !finite(br.Value) {
				continue
			}
			bx := start + barW*float64(i)
			top := y.at(br.Value)
			fmt.Fprintf(&b, `<rect x="%s" y="%s" width="%s" height="%s" fill="%s"/>`,
				px(bx+1), px(top), px(barW-2), px(y.at(0)-top), esc(br.Color))
			labelY := top
			if finite(br.Lo) && finite(br.Hi) && br.Hi > br.Lo {
				cx, lo, hi := bx+barW/2, y.at(br.Lo), y.at(br.Hi)
				fmt.Fprintf(&b, `<path d="M%s %sV%sM%s %sH%sM%s %sH%s" stroke="#333" stroke-width="1.2" fill="none"/>`,
					px(cx), px(lo), px(hi), px(cx-4), px(hi), px(cx+4), px(cx-4), px(lo), px(cx+4))
				labelY = min(labelY, hi)
			}
			fmt.Fprintf(&b, `<text x="%s" y="%s" text-anchor="middle" font-size="10.5">%s</text>`,
				px(bx+barW/2), px(labelY-4), esc(c.YFmt(br.Value)))
		}
		for li, line := range strings.Split(g.Label, "\n") {
			fmt.Fprintf(&b, `<text x="%s" y="%s" text-anchor="middle">%s</text>`,
				px(gx+groupW/2), px(marginTop+plotH+16+14*float64(li)), esc(line))
		}
	}
	writeLegend(&b, c.Legend, marginLeft, c.Height-4, plotW)
	b.WriteString(`</svg>`)
	return b.String()
}
