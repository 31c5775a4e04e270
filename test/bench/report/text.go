package report

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/uplinkd/uplinkd/test/bench/stats"
)

// noisyCPU is the busy share above which a trial is flagged as run under
// contention.
const noisyCPU = 0.9

// textTable is a table of formatted cells shared by the markdown and HTML
// reports so both always say the same.
type textTable struct {
	Head  []string
	Num   []bool // right-aligned (numeric) columns
	Rows  [][]string
	Noisy []bool // per row: run under CPU contention
}

// triple is "p50 / p99 / max" of s, with the count of known values when
// some trials did not know the figure.
func triple(s stats.Summary, trials int, f func(float64) string) string {
	if s.N == 0 {
		return dash
	}
	return fmt.Sprintf("%s / %s / %s", f(s.P50), f(s.P99), f(s.Max)) + knownOf(s.N, trials)
}

// pair is "p50 / p99" of s.
func pair(s stats.Summary, trials int, f func(float64) string) string {
	if s.N == 0 {
		return dash
	}
	return fmt.Sprintf("%s / %s", f(s.P50), f(s.P99)) + knownOf(s.N, trials)
}

func knownOf(n, trials int) string {
	if n < trials {
		return fmt.Sprintf(" (%d of %d)", n, trials)
	}
	return ""
}

func nsCell(ns int64) string {
	if ns < 0 {
		return dash
	}
	return fmtNs(float64(ns))
}

func failoverTable(rows []FailoverRow) textTable {
	t := textTable{
		Head: []string{"System", "Uplink", "Rate", "Event", "Guests", "Trials",
			"Lost near the cut p50 / p99 / max", "of which in the links p50 / p99 / max", "the switch's own p50 / p99 / max", "Lost in the run p50", "Interruption p50 / p99 / max",
			"Cut → switch p50 / p99", "Cut → announce p50 / p99", "Cut → receive-only p50 / p99", "CPU busy max (noisy)"},
		Num: []bool{false, false, true, false, true, true, true, true, true, true, true, true, true, true, true},
	}
	for _, r := range rows {
		cpu := fmtPercent(r.CPUBusyMax)
		if r.NoisyTrials > 0 {
			cpu += fmt.Sprintf(" (%d)", r.NoisyTrials)
		}
		t.Rows = append(t.Rows, []string{
			systemName(r.System), r.Uplink, fmtRate(r.RatePPS), eventName(r.SecondFailure, r.Planned),
			fmtCount(float64(r.Guests)), fmt.Sprint(r.Trials),
			triple(r.LostFrames, r.Trials, fmtCount), triple(r.LinkLoss, r.Trials, fmtCount), triple(r.OwnLoss, r.Trials, fmtCount), fmtCount(r.LostInRun.P50), triple(r.Interruption, r.Trials, fmtNs),
			pair(r.CutToSwitch, r.Trials, fmtNs), pair(r.CutToAnnounce, r.Trials, fmtNs),
			pair(r.CutToReceiveOnly, r.Trials, fmtNs), cpu,
		})
	}
	return t
}

func forwardTable(rows []ForwardRow) textTable {
	t := textTable{
		Head: []string{"System", "Direction", "Frame", "Rounds", "Mpps (median)", "Gbps (median)", "Mpps min – max"},
		Num:  []bool{false, false, true, true, true, true, true},
	}
	for _, r := range rows {
		t.Rows = append(t.Rows, []string{
			systemName(r.System), directionName(r.Direction), fmt.Sprintf("%d B", r.FrameSize), fmt.Sprint(r.Rounds),
			fmtMpps(r.Mpps.P50), fmtMpps(r.Gbps.P50), fmtMpps(r.Mpps.Min) + " – " + fmtMpps(r.Mpps.Max),
		})
	}
	return t
}

func comparisonTable(cs []Comparison) textTable {
	t := textTable{
		Head: []string{"Figure", "Peer", "Setting", "uplinkd", "Peer's", "uplinkd ÷ peer"},
		Num:  []bool{false, false, false, true, true, true},
	}
	for _, c := range cs {
		figure, f := "", fmtCount
		switch c.Metric {
		case MetricLost:
			figure = "frames lost per failover"
		case MetricInterruption:
			figure, f = "interruption", fmtNs
		case MetricMpps:
			figure, f = "forwarding rate, Mpps", fmtMpps
		case MetricSwitchCPU:
			figure, f = "kernel µs per frame switched", fmtPerFrame
		}
		t.Rows = append(t.Rows, []string{figure, systemName(c.Peer), c.Context, f(c.Uplinkd), f(c.PeerValue), fmtRatio(c.Ratio)})
	}
	return t
}

func trialTable(r *Result, o order) textTable {
	t := textTable{
		Head: []string{"System", "Uplink", "Rate", "Event", "Guests", "Trial", "Sent", "Lost", "Duplicates",
			"Interruption", "Cut → switch", "Cut → announce", "Cut → receive-only", "CPU busy", "Note"},
		Num: []bool{false, false, true, false, true, true, true, true, true, true, true, true, true, true, false},
	}
	trials := append([]FailoverTrial(nil), r.Failover...)
	slices.SortStableFunc(trials, func(a, b FailoverTrial) int { return o.failover(keyOf(a), keyOf(b)) })
	for _, x := range trials {
		t.Rows = append(t.Rows, []string{
			systemName(x.System), x.Uplink, fmtRate(x.RatePPS), eventName(x.SecondFailure, x.Planned), fmtCount(float64(x.Guests)),
			fmt.Sprint(x.Trial), fmtCount(float64(x.Sent)), fmtCount(float64(x.Lost)), fmtCount(float64(x.Duplicates)),
			nsCell(x.InterruptionNs), nsCell(x.CutToSwitchNs), nsCell(x.CutToAnnounceNs), nsCell(x.CutToReceiveOnlyNs),
			fmtPercent(x.CPUBusy), x.Note,
		})
		t.Noisy = append(t.Noisy, x.CPUBusy > noisyCPU)
	}
	return t
}

func roundTable(r *Result, o order) textTable {
	t := textTable{
		Head: []string{"System", "Direction", "Frame", "Round", "Mpps", "Gbps", "Sent", "Received", "CPU busy"},
		Num:  []bool{false, false, true, true, true, true, true, true, true},
	}
	rounds := append([]ForwardRound(nil), r.Forwarding...)
	slices.SortStableFunc(rounds, func(a, b ForwardRound) int {
		return o.forward(ForwardKey{a.System, a.Direction, a.FrameSize}, ForwardKey{b.System, b.Direction, b.FrameSize})
	})
	for _, x := range rounds {
		t.Rows = append(t.Rows, []string{
			systemName(x.System), directionName(x.Direction), fmt.Sprintf("%d B", x.FrameSize), fmt.Sprint(x.Round),
			fmtMpps(x.Mpps), fmtMpps(x.Gbps), fmtCount(float64(x.Sent)), fmtCount(float64(x.Received)), fmtPercent(x.CPUBusy),
		})
		t.Noisy = append(t.Noisy, x.CPUBusy > noisyCPU)
	}
	return t
}

// mdCell keeps a cell on one line and its pipes out of the table syntax.
func mdCell(s string) string {
	s = strings.NewReplacer("|", `\|`, "<", "&lt;", "\r\n", " ", "\n", " ", "\r", " ").Replace(s)
	if s == "" {
		return " "
	}
	return s
}

func writeMarkdownTable(b *strings.Builder, t textTable) {
	if len(t.Rows) == 0 {
		b.WriteString("No data in this run.\n")
		return
	}
	b.WriteString("|")
	for _, h := range t.Head {
		b.WriteString(" " + mdCell(h) + " |")
	}
	b.WriteString("\n|")
	for i := range t.Head {
		if t.Num[i] {
			b.WriteString("---:|")
		} else {
			b.WriteString("---|")
		}
	}
	b.WriteString("\n")
	for _, row := range t.Rows {
		b.WriteString("|")
		for _, c := range row {
			b.WriteString(" " + mdCell(c) + " |")
		}
		b.WriteString("\n")
	}
}

// envLine is the one-line description of the machine and software.
func envLine(r *Result) string {
	e := r.Env
	parts := []string{"kernel " + orDash(e.Kernel), plural(e.CPUs, "CPU", "CPUs")}
	if e.CPUModel != "" {
		parts[1] += " (" + e.CPUModel + ")"
	}
	if e.MemoryBytes > 0 {
		parts = append(parts, fmtBytes(e.MemoryBytes)+" memory")
	}
	for _, k := range slices.Sorted(maps.Keys(e.Versions)) {
		parts = append(parts, k+" "+e.Versions[k])
	}
	if e.GoVersion != "" {
		parts = append(parts, e.GoVersion)
	}
	return strings.Join(parts, ", ")
}

func orDash(s string) string {
	if s == "" {
		return dash
	}
	return s
}

func runWhen(r *Result) string {
	if r.Started.IsZero() {
		return dash
	}
	s := r.Started.UTC().Format("2006-01-02 15:04 MST")
	if d := r.Finished.Sub(r.Started); d > 0 {
		s += ", took " + d.Round(time.Second).String()
	}
	return s
}

// WriteMarkdown writes the content of docs/benchmarks.md: when and where the
// run was measured, the exact command, the failover and forwarding tables,
// uplinkd against its peers and what did not run.
func WriteMarkdown(w io.Writer, r *Result) error {
	ts := Tables(r)
	var b strings.Builder
	b.WriteString("# Benchmarks\n\n")
	b.WriteString("<!-- Generated by the uplinkd benchmark harness from one run; do not edit by hand. -->\n\n")
	fmt.Fprintf(&b, "Measured %s (%s profile) on %s.\n\n", runWhen(r), orDash(r.Profile), envLine(r))
	b.WriteString("Produced by:\n\n```sh\n" + orDash(r.Command) + "\n```\n\n")

	b.WriteString("## uplinkd compared with its peers\n\n")
	b.WriteString("Ratios are uplinkd's median over the peer's median, in the same setting and the same run.\n\n")
	if len(ts.Comparisons) == 0 {
		b.WriteString("No setting was measured for both uplinkd and a peer in this run.\n")
	}
	for _, c := range ts.Comparisons {
		b.WriteString("- " + mdCell(c.Text) + "\n")
	}

	b.WriteString("\n## Failover\n\n")
	b.WriteString("Per setting, over its trials: p50 / p99 / max (nearest rank). Interruption is the gap between the " +
		"last frame on the old uplink and the first on the new one; \"(n of m)\" marks figures known in only n trials. " +
		"Of the frames lost near the cut, \"in the links\" were accepted by a cut uplink's link and died with it (frames on " +
		"the wire) or refused by a full ring of a link that was not cut (the testbed's receiver or the switch's guest port fell behind), from the veth counters " +
		"where a system redirects with XDP; the rest is the switch's own. " +
		"CPU busy max is the busiest trial's share of the machine; in brackets, the number of trials run with the CPU more than " +
		fmtPercent(noisyCPU) + " busy.\n\n")
	failoverT := failoverTable(ts.Failover)
	markFailoverLimits(&failoverT, ts.Failover, r.Engine)
	writeMarkdownTable(&b, failoverT)

	b.WriteString("\n## Forwarding\n\n")
	b.WriteString("Median of the rounds; frame sizes with the 4-byte FCS, as on a wire.\n\n")
	forwardT := forwardTable(ts.Forwarding)
	markForwardLimits(&forwardT, ts.Forwarding, r.Engine)
	writeMarkdownTable(&b, forwardT)
	for _, n := range engineNotes(r, ts) {
		b.WriteString("\n" + mdCell(n) + "\n")
	}

	writeCPUCostMarkdown(&b, r)
	writeBalanceMarkdown(&b, r)
	writeUpgradeMarkdown(&b, r)
	writeTCPMarkdown(&b, r)
	writeIdleMarkdown(&b, r)

	b.WriteString("\n## Not run\n\n")
	if len(r.NotRun) == 0 {
		b.WriteString("Everything ran.\n")
	}
	for _, n := range r.NotRun {
		fmt.Fprintf(&b, "- **%s**, %s: %s\n", mdCell(systemName(n.System)), mdCell(orDash(n.Scenario)), mdCell(n.Reason))
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write markdown report: %w", err)
	}
	return nil
}
