package report

import (
	"cmp"
	"fmt"
	"html/template"
	"io"
	"maps"
	"math"
	"slices"

	"github.com/uplinkd/uplinkd/test/bench/stats"
)

const (
	panelWidth = 556 // two plots side by side in the page
	panelH     = 330
	wideWidth  = 1140
)

// look is how a system and setting is drawn, the same in every plot.
type look struct {
	colors map[string]string
}

func newLook(o order) look {
	l := look{colors: map[string]string{}}
	for i, s := range o.systemList() {
		l.colors[s] = palette[i%len(palette)]
	}
	return l
}

// dash tells uplink kinds (solid veth, dashed tap) and second failures
// (dotted) apart within a system's colour.
func trialDash(uplink string, second bool) string {
	switch {
	case uplink == UplinkTap && second:
		return "7 3 2 3"
	case uplink == UplinkTap:
		return "7 4"
	case second:
		return "2 3"
	}
	return ""
}

func seriesName(system, uplink string, second bool) string {
	s := systemName(system) + " · " + uplink
	if second {
		s += " · 2nd failure"
	}
	return s
}

// rates lists the offered loads of the failover trials, ascending.
func rates(r *Result) []int {
	set := map[int]bool{}
	for _, t := range r.Failover {
		set[t.RatePPS] = true
	}
	return slices.Sorted(maps.Keys(set))
}

// cdfPanels draws one CDF per offered load (loss scales with the load, so
// loads are never mixed), one line per system, uplink kind and second
// failure, pooling guest counts.
func cdfPanels(r *Result, o order, l look, title, xLabel string, xFmt func(float64) string, integer bool,
	value func(FailoverTrial) (float64, bool)) []template.HTML {
	var out []template.HTML
	for _, rate := range rates(r) {
		type key struct {
			system, uplink string
			second         bool
		}
		vals := map[key][]float64{}
		trials := map[key]int{}
		for _, t := range r.Failover {
			if t.RatePPS != rate || t.Planned {
				continue // planned switches are not failures: the table has them
			}
			k := key{t.System, t.Uplink, t.SecondFailure}
			trials[k]++
			if v, ok := value(t); ok {
				vals[k] = append(vals[k], v)
			}
		}
		keys := slices.SortedFunc(maps.Keys(trials), func(a, b key) int {
			return o.failover(FailoverKey{System: a.system, Uplink: a.uplink, SecondFailure: a.second},
				FailoverKey{System: b.system, Uplink: b.uplink, SecondFailure: b.second})
		})
		c := lineChart{Title: fmt.Sprintf("%s at %s", title, fmtRate(rate)), XLabel: xLabel,
			YLabel: "share of trials ≤ x", XFmt: xFmt, XLog: true, XInt: integer, CDF: true,
			Width: panelWidth, Height: panelH}
		for _, k := range keys {
			name := seriesName(k.system, k.uplink, k.second)
			if n := len(vals[k]); n < trials[k] {
				name += fmt.Sprintf(" (%d of %d known)", n, trials[k])
			}
			c.Series = append(c.Series, lineSeries{Name: name, Color: l.colors[k.system],
				Dash: trialDash(k.uplink, k.second), Points: stats.CDF(vals[k]), Step: true})
		}
		out = append(out, template.HTML(c.svg()))
	}
	if len(out) == 0 {
		c := lineChart{Title: title, XLabel: xLabel, YLabel: "share of trials ≤ x", XFmt: xFmt, CDF: true,
			Width: panelWidth, Height: panelH}
		out = append(out, template.HTML(c.svg()))
	}
	return out
}

// guestPanels draws uplinkd's cut → switch, cut → announce and cut →
// receive-only times against the number of guests, one panel per uplink
// kind, over single-failure trials at every load: median with a whisker to
// p99.
func guestPanels(r *Result) []template.HTML {
	metrics := []struct {
		name  string
		color string
		ns    func(FailoverTrial) int64
	}{
		{"cut → switch", palette[0], func(t FailoverTrial) int64 { return t.CutToSwitchNs }},
		{"cut → announce", palette[1], func(t FailoverTrial) int64 { return t.CutToAnnounceNs }},
		{"cut → receive-only guest", palette[2], func(t FailoverTrial) int64 { return t.CutToReceiveOnlyNs }},
	}
	byUplink := map[string]map[int][]FailoverTrial{}
	for _, t := range r.Failover {
		if t.System != SystemUplinkd || t.SecondFailure || t.Planned {
			continue
		}
		if byUplink[t.Uplink] == nil {
			byUplink[t.Uplink] = map[int][]FailoverTrial{}
		}
		byUplink[t.Uplink][t.Guests] = append(byUplink[t.Uplink][t.Guests], t)
	}
	uplinks := slices.SortedFunc(maps.Keys(byUplink), func(a, b string) int { return byKnownOrder(a, b, UplinkVeth, UplinkTap) })
	var out []template.HTML
	for _, up := range uplinks {
		guests := slices.Sorted(maps.Keys(byUplink[up]))
		c := lineChart{Title: "uplinkd on " + up + ": time after the cut vs guests", XLabel: "guests (MAC addresses)",
			YLabel: "time after the cut", XFmt: func(v float64) string { return fmtCount(v) }, YFmt: fmtNs,
			XLog: true, YLog: true, Width: panelWidth, Height: panelH}
		for _, g := range guests {
			c.XTicks = append(c.XTicks, float64(g))
		}
		for mi, m := range metrics {
			s := lineSeries{Name: m.name, Color: m.color, Marker: true, Offset: float64(mi-1) * 6}
			for _, g := range guests {
				var ns []int64
				for _, t := range byUplink[up][g] {
					ns = append(ns, m.ns(t))
				}
				sum := stats.Summarize(durations(ns))
				if sum.N == 0 {
					continue
				}
				s.Points = append(s.Points, stats.Point{X: float64(g), Y: sum.P50})
				s.Upper = append(s.Upper, sum.P99)
			}
			c.Series = append(c.Series, s)
		}
		out = append(out, template.HTML(c.svg()))
	}
	if len(out) == 0 {
		c := lineChart{Title: "uplinkd: time after the cut vs guests", Width: panelWidth, Height: panelH}
		out = append(out, template.HTML(c.svg()))
	}
	return out
}

// forwardBars draws median Mpps per system, grouped by direction and frame
// size, with the min–max of the rounds as a whisker.
func forwardBars(ts TableSet, o order, l look) template.HTML {
	type gkey struct {
		dir  string
		size int
	}
	rows := map[gkey]map[string]ForwardRow{}
	systems := map[string]bool{}
	for _, row := range ts.Forwarding {
		k := gkey{row.Direction, row.FrameSize}
		if rows[k] == nil {
			rows[k] = map[string]ForwardRow{}
		}
		rows[k][row.System] = row
		systems[row.System] = true
	}
	sys := slices.SortedFunc(maps.Keys(systems), func(a, b string) int { return cmp.Compare(o.systems[a], o.systems[b]) })
	groups := slices.SortedFunc(maps.Keys(rows), func(a, b gkey) int {
		return cmp.Or(byKnownOrder(a.dir, b.dir, GuestToUplink, UplinkToGuest), cmp.Compare(a.size, b.size))
	})
	c := barChart{Title: "Forwarding rate (median of the rounds; whisker: min – max)", YLabel: "million frames per second",
		YFmt: fmtMpps, Width: wideWidth, Height: 380}
	for _, s := range sys {
		c.Legend = append(c.Legend, legendEntry{Name: systemName(s), Color: l.colors[s], Box: true})
	}
	for _, g := range groups {
		bg := barGroup{Label: fmt.Sprintf("%s\n%d B frames", directionName(g.dir), g.size)}
		for _, s := range sys {
			row, ok := rows[g][s]
			if !ok {
				bg.Bars = append(bg.Bars, bar{Color: l.colors[s], Value: math.NaN()})
				continue
			}
			bg.Bars = append(bg.Bars, bar{Color: l.colors[s], Value: row.Mpps.P50, Lo: row.Mpps.Min, Hi: row.Mpps.Max})
		}
		c.Groups = append(c.Groups, bg)
	}
	return template.HTML(c.svg())
}

// card is one headline number.
type card struct {
	Big, Label, Sub string
}

// headlines are the figures at the top of the page: for each peer the first
// setting (in table order) compared on each metric, then uplinkd's own best.
func headlines(ts TableSet) []card {
	var out []card
	seen := map[string]bool{}
	for _, c := range ts.Comparisons {
		k := c.Metric + "\x00" + c.Peer
		if seen[k] {
			continue
		}
		seen[k] = true
		name := systemName(c.Peer)
		cd := card{Big: fmtRatio(c.Ratio)}
		switch c.Metric {
		case MetricLost:
			cd.Label = "frames lost per failover, vs " + name
			cd.Sub = fmt.Sprintf("median %s vs %s · %s", fmtCount(c.Uplinkd), fmtCount(c.PeerValue), c.Context)
			if math.IsNaN(c.Ratio) || c.Ratio == 0 {
				cd.Big = fmtCount(c.Uplinkd) + " vs " + fmtCount(c.PeerValue)
				cd.Sub = "median · " + c.Context
			}
		case MetricInterruption:
			cd.Label = "interruption at failover, vs " + name
			cd.Sub = fmt.Sprintf("median %s vs %s · %s", fmtNs(c.Uplinkd), fmtNs(c.PeerValue), c.Context)
		case MetricMpps:
			cd.Label = "forwarding rate, vs " + name
			cd.Sub = fmt.Sprintf("median %s vs %s Mpps · %s", fmtMpps(c.Uplinkd), fmtMpps(c.PeerValue), c.Context)
		case MetricSwitchCPU:
			cd.Label = "kernel CPU per frame switched, vs " + name
			cd.Sub = fmt.Sprintf("median %s vs %s µs beyond the baseline · %s", fmtPerFrame(c.Uplinkd), fmtPerFrame(c.PeerValue), c.Context)
		}
		if math.IsNaN(c.Ratio) && c.Metric != MetricLost {
			cd.Big = dash
		}
		out = append(out, cd)
	}
	// uplinkd alone at its highest load: the figure no peer could be run at.
	var top *FailoverRow
	for i, row := range ts.Failover {
		if row.System == SystemUplinkd && !row.SecondFailure && !row.Planned && row.Interruption.N > 0 &&
			(top == nil || row.RatePPS > top.RatePPS) {
			top = &ts.Failover[i]
		}
	}
	if top != nil {
		out = append(out, card{Big: fmtNs(top.Interruption.P99),
			Label: "uplinkd p99 interruption at " + fmtRate(top.RatePPS),
			Sub:   fmt.Sprintf("p99 %s frames lost · %s", fmtCount(top.LostFrames.P99), failoverContext(top.FailoverKey))})
	}
	var best *ForwardRow
	for i, row := range ts.Forwarding {
		if row.System == SystemUplinkd && row.Mpps.N > 0 && (best == nil || row.Mpps.P50 > best.Mpps.P50) {
			best = &ts.Forwarding[i]
		}
	}
	if best != nil {
		out = append(out, card{Big: fmtMpps(best.Mpps.P50) + " Mpps", Label: "uplinkd forwarding rate",
			Sub: "median · " + forwardContext(best.ForwardKey)})
	}
	return out
}

type envItem struct{ Key, Value string }

// page is what the HTML template renders.
type page struct {
	Title           string
	When, Profile   string
	EnvLine         string
	Command         string
	Cards           []card
	NotRun          []NotRun
	ComparisonTable textTable
	LostPlots       []template.HTML
	IntrPlots       []template.HTML
	ForwardPlot     template.HTML
	GuestPlots      []template.HTML
	FailoverTable   textTable
	ForwardTable    textTable
	TrialTable      textTable
	RoundTable      textTable
	BalanceForward  textTable
	BalanceFailover textTable
	HasBalance      bool
	UpgradeTable    textTable
	TCP             *tcpTables
	IdleTable       textTable
	IdleCaption     string
	CPUCost         []cpuCostSection
	CPUCostCaption  string
	CPUCostShort    string
	Env             []envItem
	NoisyPercent    string
	EngineNotes     []string
}

// WriteHTML writes one self-contained page (inline CSS and SVG, no scripts,
// nothing fetched): the headline numbers, CDFs of frames lost and of
// interruption, forwarding bars, uplinkd's switch and announcement times vs
// guests, the tables, every trial, the environment and what did not run.
func WriteHTML(w io.Writer, r *Result) error {
	o := newOrder(r)
	l := newLook(o)
	ts := Tables(r)
	p := page{
		Title:           "uplinkd benchmark",
		When:            runWhen(r),
		Profile:         orDash(r.Profile),
		EnvLine:         envLine(r),
		Command:         orDash(r.Command),
		Cards:           headlines(ts),
		NotRun:          r.NotRun,
		ComparisonTable: comparisonTable(ts.Comparisons),
		LostPlots: cdfPanels(r, o, l, "Frames lost per failover", "frames lost", fmtCount, true,
			func(t FailoverTrial) (float64, bool) { return float64(t.LostNearCut), true }),
		IntrPlots: cdfPanels(r, o, l, "Interruption per failover", "last frame on the old uplink → first on the new",
			fmtNs, false, func(t FailoverTrial) (float64, bool) {
				return float64(t.InterruptionNs), t.InterruptionNs >= 0
			}),
		ForwardPlot:     forwardBars(ts, o, l),
		GuestPlots:      guestPanels(r),
		FailoverTable:   failoverTable(ts.Failover),
		ForwardTable:    forwardTable(ts.Forwarding),
		TrialTable:      trialTable(r, o),
		RoundTable:      roundTable(r, o),
		BalanceForward:  balanceForwardTable(r.Balance),
		BalanceFailover: balanceFailoverTable(r.Balance),
		HasBalance:      r.Balance != nil,
		UpgradeTable:    upgradeTable(r.Upgrade),
		TCP:             newTCPTables(r.TCP),
		IdleTable:       idleTable(r.Idle),
		IdleCaption:     idleCaption,
		CPUCost:         cpuCostSections(r),
		CPUCostCaption:  cpuCostCaption,
		CPUCostShort:    cpuCostShortNote,
		NoisyPercent:    fmtPercent(noisyCPU),
		EngineNotes:     engineNotes(r, ts),
	}
	markFailoverLimits(&p.FailoverTable, ts.Failover, r.Engine)
	markForwardLimits(&p.ForwardTable, ts.Forwarding, r.Engine)
	e := r.Env
	p.Env = []envItem{{"Host", orDash(e.Hostname)}, {"Kernel", orDash(e.Kernel)},
		{"CPUs", fmt.Sprintf("%d × %s", e.CPUs, orDash(e.CPUModel))}, {"Memory", fmtBytes(e.MemoryBytes)},
		{"Go", orDash(e.GoVersion)}, {"Harness", orDash(r.Version)}, {"Result format", FormatVersion}}
	for _, k := range slices.Sorted(maps.Keys(e.Versions)) {
		p.Env = append(p.Env, envItem{k, e.Versions[k]})
	}
	if err := pageTemplate.Execute(w, p); err != nil {
		return fmt.Errorf("write HTML report: %w", err)
	}
	return nil
}

var pageTemplate = template.Must(template.New("page").Funcs(template.FuncMap{
	"systemName": systemName,
	"align": func(t textTable, i int) string {
		if i < len(t.Num) && t.Num[i] {
			return "num"
		}
		return ""
	},
	"noisy": func(t textTable, i int) bool { return i < len(t.Noisy) && t.Noisy[i] },
}).Parse(pageHTML))

// pageHTML is well-formed XML as well as HTML, so tests can parse the whole
// page with encoding/xml.
const pageHTML = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8" />
<meta name="viewport" content="width=device-width, initial-scale=1" />
<title>{{.Title}} — {{.When}}</title>
<style>
:root { --fg: #1d2329; --muted: #5b6570; --line: #e3e6ea; --accent: #0072B2; --bg: #fafbfc; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: var(--fg); background: var(--bg); }
main { max-width: 1200px; margin: 0 auto; padding: 24px 20px 60px; }
header h1 { margin: 0 0 4px; font-size: 26px; }
header p { margin: 2px 0; color: var(--muted); }
code, pre { font: 12.5px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
pre { background: #f0f2f4; padding: 8px 12px; border-radius: 6px; overflow-x: auto; white-space: pre-wrap; }
h2 { font-size: 19px; margin: 34px 0 6px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
p.caption { color: var(--muted); margin: 4px 0 10px; max-width: 900px; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(260px, 1fr)); gap: 12px; margin: 20px 0 8px; }
.card { background: #fff; border: 1px solid var(--line); border-left: 4px solid var(--accent); border-radius: 8px; padding: 12px 14px; }
.card .big { font-size: 30px; font-weight: 700; line-height: 1.1; font-variant-numeric: tabular-nums; }
.card .label { font-weight: 600; margin-top: 4px; }
.card .sub { color: var(--muted); font-size: 12.5px; margin-top: 2px; }
.warn { background: #fff6e5; border: 1px solid #f0c36d; border-radius: 8px; padding: 10px 14px; margin: 14px 0; }
.plots { display: grid; grid-template-columns: repeat(auto-fill, minmax(480px, 1fr)); gap: 16px; }
.plot.wide { grid-column: 1 / -1; }
.plot { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 6px; min-width: 0; }
.plot svg { display: block; width: 100%; height: auto; }
.tablewrap { overflow-x: auto; background: #fff; border: 1px solid var(--line); border-radius: 8px; }
table { border-collapse: collapse; width: 100%; font-size: 12.5px; }
th, td { padding: 5px 8px; border-bottom: 1px solid var(--line); text-align: left; white-space: nowrap; vertical-align: top; }
th { background: #f3f5f7; font-weight: 600; white-space: normal; vertical-align: bottom; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.noisy td { background: #fff3f0; }
td.wrap { white-space: normal; min-width: 260px; }
td:last-child:not(.num) { white-space: normal; min-width: 180px; }
details { margin: 12px 0; }
summary { cursor: pointer; font-weight: 600; }
dl.env { display: grid; grid-template-columns: max-content 1fr; gap: 3px 16px; }
dl.env dt { color: var(--muted); }
dl.env dd { margin: 0; }
</style>
</head>
<body>
<main>
<header>
<h1>{{.Title}}</h1>
<p>Measured {{.When}} · {{.Profile}} profile · {{.EnvLine}}</p>
<pre>{{.Command}}</pre>
</header>
{{if .NotRun}}<div class="warn"><strong>{{len .NotRun}} not run</strong> on this machine — the reasons are <a href="#not-run">at the bottom</a>.</div>{{end}}
{{if .Cards}}<div class="cards">
{{range .Cards}}<div class="card"><div class="big">{{.Big}}</div><div class="label">{{.Label}}</div><div class="sub">{{.Sub}}</div></div>
{{end}}</div>{{end}}
{{if .ComparisonTable.Rows}}<p class="caption">Ratios are uplinkd over the peer, from the same run, same traffic generator and receiver; below 1× uplinkd loses fewer frames or is interrupted for less time, above 1× it forwards more.</p>{{end}}

<h2>Frames lost per failover</h2>
<p class="caption">Cumulative distribution over the trials, one line per system, uplink kind (solid veth, dashed tap) and second failure within 1 s (dotted); guest counts pooled. One plot per offered load, because loss scales with it. Counted from the sequence numbers that reached the upstream receiver.</p>
<div class="plots">{{range .LostPlots}}<div class="plot">{{.}}</div>{{end}}</div>

<h2>Interruption per failover</h2>
<p class="caption">From the last frame the receiver saw on the old uplink to the first on the new one.</p>
<div class="plots">{{range .IntrPlots}}<div class="plot">{{.}}</div>{{end}}</div>

<h2>Forwarding rate</h2>
<div class="plots"><div class="plot wide">{{.ForwardPlot}}</div></div>

<h2>uplinkd: switch and announcement time vs guests</h2>
<p class="caption">From the cut to uplinkd's own switch event, to the first announcement (RARP) seen on the new uplink, and to the first frame a receive-only guest gets from upstream again. Dot: median; whisker: p99; single-failure trials at every load.</p>
<div class="plots">{{range .GuestPlots}}<div class="plot">{{.}}</div>{{end}}</div>

<h2>uplinkd compared with its peers</h2>
<p class="caption">Every setting measured for both uplinkd and a peer in this run; medians.</p>
{{template "table" .ComparisonTable}}

<h2>Failover summary</h2>
<p class="caption">p50 / p99 / max over the trials of each setting (nearest rank); “(n of m)”: the figure was known in n of m trials. CPU busy max: the busiest trial's share of the machine; in brackets, the number of noisy trials, run with the CPU more than {{.NoisyPercent}} busy (shaded in the list of every trial).</p>
{{template "table" .FailoverTable}}

<h2>Forwarding summary</h2>
{{template "table" .ForwardTable}}
{{range .EngineNotes}}<p class="note">{{.}}</p>
{{end}}
{{range .CPUCost}}<h2>{{.Title}}</h2>
<p class="caption">{{$.CPUCostCaption}}</p>
{{template "table" .Table}}
{{if .Short}}<p class="note">{{$.CPUCostShort}}</p>
{{end}}{{end}}

{{if .UpgradeTable.Rows}}<h2>Upgrade under traffic (uplinkd)</h2>
<p class="caption">uplinkd stopped and started again over its running data plane while the guest sends; no daemon: from the signal to the new process serving.</p>
{{template "table" .UpgradeTable}}
{{end}}{{if .HasBalance}}<h2>Balance mode (uplinkd)</h2>
<p class="caption">Guests spread over the uplinks by bucket. Forwarding through one uplink and through two (median of the rounds); one uplink of three cut under traffic: the loss of the guests that moved and of the others, which must be 0.</p>
{{template "table" .BalanceForward}}
{{template "table" .BalanceFailover}}
{{end}}{{if .IdleTable.Rows}}<h2>At rest (uplinkd)</h2>
<p class="caption">{{.IdleCaption}}</p>
{{template "table" .IdleTable}}
{{end}}
{{with .TCP}}<h2>Socket traffic: TCP and UDP</h2>
<p class="caption">Traffic from the stacks of the sending guest and the upstream host, through each system. The harness leaves every veth's offloads at their defaults (GRO on, as the testbed needs it); ethtool's view while the system ran, where an offload shown off was turned off by the kernel (a veth whose peer has an XDP program loses TSO){{.OffloadNote}}:</p>
{{template "table" .Offloads}}
<p class="caption">TCP bulk with iperf3; Gbit/s as received (0 when no connection could be made); checksum errors counted in the receiving namespace's /proc/net/snmp over the run.{{.HostPortBulk}}</p>
{{template "table" .BulkSummary}}
{{template "table" .Bulk}}
<p class="caption">UDP at a fixed rate of payload, sent and counted by the harness's own sockets (iperf3's control channel is TCP). UdpInCsumErrors: datagrams the receiver dropped for a bad checksum; RcvbufErrors: dropped because the receiving socket fell behind.</p>
{{template "table" .UDP}}
<p class="caption">Trials of one paced TCP connection each, a fresh one per trial, from the guest to the upstream host while the active uplink is cut and later restored: p50 / p99 / max over a system's trials (nearest rank) of the time without delivered bytes, the sender's retransmits (TCP_INFO), and how many connections still carried bytes at the end with no reset. A system that cannot connect at all stops after its first trial.{{.HostPortFailover}}</p>
{{template "table" .Failover}}
{{end}}<details><summary>Every failover trial ({{len .TrialTable.Rows}})</summary>{{template "table" .TrialTable}}</details>
<details><summary>Every forwarding round ({{len .RoundTable.Rows}})</summary>{{template "table" .RoundTable}}</details>

<h2>Environment</h2>
<dl class="env">{{range .Env}}<dt>{{.Key}}</dt><dd>{{.Value}}</dd>{{end}}</dl>

<h2 id="not-run">Not run</h2>
{{if .NotRun}}<div class="tablewrap"><table><thead><tr><th>System</th><th>Scenario</th><th>Reason</th></tr></thead><tbody>
{{range .NotRun}}<tr><td>{{systemName .System}}</td><td>{{.Scenario}}</td><td class="wrap">{{.Reason}}</td></tr>
{{end}}</tbody></table></div>{{else}}<p>Everything ran.</p>{{end}}
</main>
</body>
</html>
{{define "table"}}{{if .Rows}}<div class="tablewrap"><table><thead><tr>{{$t := .}}{{range $i, $h := .Head}}<th class="{{align $t $i}}">{{$h}}</th>{{end}}</tr></thead><tbody>
{{range $r, $row := .Rows}}<tr{{if noisy $t $r}} class="noisy"{{end}}>{{range $i, $c := $row}}<td class="{{align $t $i}}">{{$c}}</td>{{end}}</tr>
{{end}}</tbody></table></div>{{else}}<p>No data in this run.</p>{{end}}{{end}}`
