package report

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/uplinkd/uplinkd/test/bench/stats"
)

func TestNewScale(t *testing.T) {
	nan := math.NaN()
	tests := []struct {
		name      string
		vals      []float64
		allowLog  bool
		integer   bool
		log, zero bool
		lo, hi    float64
		ticks     []float64
	}{
		{"linear from zero", []float64{3, 7, 9}, true, false, false, false, 0, 10, []float64{0, 2, 4, 6, 8, 10}},
		{"nice 2.5 steps", []float64{0, 12}, false, false, false, false, 0, 12.5, []float64{0, 2.5, 5, 7.5, 10, 12.5}},
		{"integer ticks", []float64{0, 2}, false, true, false, false, 0, 2, []float64{0, 1, 2}},
		{"negative", []float64{-4, 6}, false, false, false, false, -4, 6, []float64{-4, -2, 0, 2, 4, 6}},
		{"span under 30x stays linear", []float64{2, 50}, true, false, false, false, 0, 50, []float64{0, 10, 20, 30, 40, 50}},
		{"decades go log", []float64{3, 40, 2500}, true, false, true, false, 1, 10000, []float64{1, 10, 100, 1000, 10000}},
		{"log not allowed", []float64{3, 40, 2500}, false, false, false, false, 0, 2500, []float64{0, 500, 1000, 1500, 2000, 2500}},
		{"few decades get 2 and 5", []float64{15, 900}, true, false, true, false, 10, 1000, []float64{10, 20, 50, 100, 200, 500, 1000}},
		{"zero slot on log", []float64{0, 1, 120, 300}, true, true, true, true, 1, 1000, []float64{0, 1, 10, 100, 1000}},
		{"NaN and Inf ignored", []float64{nan, 4, math.Inf(1)}, true, false, false, false, 0, 4, []float64{0, 1, 2, 3, 4}},
		{"nothing finite", []float64{nan}, true, false, false, false, 0, 1, []float64{0, 0.25, 0.5, 0.75, 1}},
		{"all zero", []float64{0, 0}, true, false, false, false, 0, 1, []float64{0, 0.2, 0.4, 0.6, 0.8, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newScale(tt.vals, tt.allowLog, tt.integer)
			if s.log != tt.log || s.zero != tt.zero || s.lo != tt.lo || s.hi != tt.hi {
				t.Errorf("scale %+v, want log %v zero %v [%v, %v]", s, tt.log, tt.zero, tt.lo, tt.hi)
			}
			ticks := s.ticks()
			if !slices.EqualFunc(ticks, tt.ticks, func(a, b float64) bool { return math.Abs(a-b) < 1e-9*math.Max(1, b) }) {
				t.Errorf("ticks %v, want %v", ticks, tt.ticks)
			}
			// Pixels: monotonic, lo and hi at the ends, in range everywhere.
			s = s.pixels(100, 500)
			prev := math.Inf(-1)
			for _, v := range ticks {
				p := s.at(v)
				if p < 100 || p > 500 || p <= prev {
					t.Errorf("tick %v at pixel %v (after %v)", v, p, prev)
				}
				prev = p
			}
			if got := s.at(s.hi); got != 500 {
				t.Errorf("hi at %v, want 500", got)
			}
		})
	}
}

func TestLogScaleZeroSlot(t *testing.T) {
	s := newScale([]float64{0, 10, 1000}, true, false).pixels(0, 1000)
	if s.at(0) != 0 || s.at(-5) != 0 {
		t.Errorf("zero and below at %v, %v; want the start", s.at(0), s.at(-5))
	}
	if got := s.at(10); math.Abs(got-logGap*1000) > 1e-9 {
		t.Errorf("the first decade at %v, want %v past the zero slot", got, logGap*1000)
	}
	if got := s.at(100); math.Abs(got-(80+920/2.0)) > 1e-9 {
		t.Errorf("100 at %v, want halfway between 10 and 1000", got)
	}
}

// svgCheck parses one SVG strictly and checks that no coordinate is broken.
func svgCheck(t *testing.T, doc string) (counts map[string]int, text string) {
	t.Helper()
	counts, texts := xmlCheck(t, doc)
	if counts["svg"] != 1 {
		t.Errorf("%d svg elements", counts["svg"])
	}
	for _, bad := range []string{"NaN", "Inf", "e+", "e-0"} {
		if strings.Contains(doc, bad) {
			t.Errorf("SVG contains %q:\n%s", bad, doc)
		}
	}
	return counts, strings.Join(texts, "\n")
}

func TestLineChartSVG(t *testing.T) {
	nan := math.NaN()
	base := lineChart{Title: "t <&>", XLabel: "frames lost", YLabel: "share", XFmt: fmtCount, YFmt: fmtCount,
		XLog: true, CDF: true, Width: 500, Height: 300}
	tests := []struct {
		name    string
		series  []lineSeries
		paths   int // series paths plus the axis path (+1 when the x axis has a break)
		drawn   int // series drawn
		noData  bool
		legends []string
	}{
		{"no series", nil, 0, 0, true, nil},
		{"empty series", []lineSeries{{Name: "a", Color: "#000"}}, 0, 0, true, nil},
		{"only NaN points", []lineSeries{{Name: "a", Points: []stats.Point{{X: nan, Y: 0.5}, {X: 1, Y: nan}}}}, 0, 0, true, nil},
		{"one point", []lineSeries{{Name: "uplinkd · veth", Color: palette[0], Step: true,
			Points: stats.CDF([]float64{0})}}, 2, 1, false, []string{"uplinkd · veth"}},
		{"two series across decades with zero", []lineSeries{
			{Name: "uplinkd · veth", Color: palette[0], Step: true, Points: stats.CDF([]float64{0, 0, 1, 3, 5})},
			{Name: "Open vSwitch · tap", Color: palette[1], Dash: "7 4", Step: true, Points: stats.CDF([]float64{110, 130, 150, nan})},
		}, 4, 2, false, []string{"uplinkd · veth", "Open vSwitch · tap", "frames lost — log scale"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base
			c.Series = tt.series
			doc := c.svg()
			counts, text := svgCheck(t, doc)
			if got := strings.Contains(text, "no data in this run"); got != tt.noData {
				t.Errorf("says no data: %v, want %v", got, tt.noData)
			}
			if !strings.Contains(text, "t <&>") {
				t.Errorf("title not escaped and parsed back:\n%s", text)
			}
			if counts["path"] != tt.paths {
				t.Errorf("%d paths, want %d", counts["path"], tt.paths)
			}
			for _, l := range tt.legends {
				if !strings.Contains(text, l) {
					t.Errorf("no %q in the chart", l)
				}
			}
			if got, want := strings.Count(doc, `class="series"`), tt.drawn; got != want {
				t.Errorf("%d series drawn, want %d", got, want)
			}
		})
	}
}

func TestLineChartWhiskersAndFixedTicks(t *testing.T) {
	c := lineChart{Title: "vs guests", XFmt: fmtCount, YFmt: fmtNs, XLog: true, YLog: true, Width: 500, Height: 300,
		XTicks: []float64{1, 64, 1024},
		Series: []lineSeries{{Name: "cut → switch", Color: palette[0], Marker: true,
			Points: []stats.Point{{X: 1, Y: 20_000}, {X: 64, Y: 25_000}, {X: 1024, Y: 30_000}},
			Upper:  []float64{40_000, math.NaN(), 30_000}}}}
	doc := c.svg()
	counts, text := svgCheck(t, doc)
	if counts["circle"] != 3 {
		t.Errorf("%d markers, want 3", counts["circle"])
	}
	// One whisker: the NaN one and the one equal to its median are left out.
	if got := strings.Count(doc, `stroke-width="1.3"`); got != 1 {
		t.Errorf("%d whiskers, want 1", got)
	}
	for _, tick := range []string{"1", "64", "1,024"} {
		if !strings.Contains(text, "\n"+tick+"\n") {
			t.Errorf("no x tick %q", tick)
		}
	}
}

func TestBarChartSVG(t *testing.T) {
	legend := []legendEntry{{Name: "uplinkd", Color: palette[0], Box: true}, {Name: "Open vSwitch", Color: palette[1], Box: true}}
	tests := []struct {
		name   string
		groups []barGroup
		rects  int
		noData bool
		labels []string
	}{
		{"no groups", nil, 1, true, nil},
		{"only NaN bars", []barGroup{{Label: "g", Bars: []bar{{Value: math.NaN()}}}}, 1, true, nil},
		{"bars, a missing one and a zero", []barGroup{
			{Label: "guest → uplink\n64 B frames", Bars: []bar{{Color: palette[0], Value: 9.1, Lo: 8.5, Hi: 9.2}, {Color: palette[1], Value: math.NaN()}}},
			{Label: "uplink → guest\n64 B frames", Bars: []bar{{Color: palette[0], Value: 9.0}, {Color: palette[1], Value: 0}}},
		}, 3 + 2, false, []string{"9.10", "9.00", "0.00", "guest → uplink", "64 B frames", "Open vSwitch"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := barChart{Title: "Forwarding", YLabel: "Mpps", YFmt: fmtMpps, Groups: tt.groups, Legend: legend,
				Width: 600, Height: 320}
			counts, text := svgCheck(t, c.svg())
			if got := strings.Contains(text, "no data in this run"); got != tt.noData {
				t.Errorf("says no data: %v, want %v", got, tt.noData)
			}
			if !tt.noData && counts["rect"] != tt.rects { // bars plus legend boxes
				t.Errorf("%d rects, want %d", counts["rect"], tt.rects)
			}
			for _, l := range tt.labels {
				if !strings.Contains(text, l) {
					t.Errorf("no %q in the chart", l)
				}
			}
		})
	}
}
