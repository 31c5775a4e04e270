package report

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/uplinkd/uplinkd/test/bench/stats"
)

// CPUCostKey groups CPU rounds that measured the same thing.
type CPUCostKey struct {
	System    string
	Direction string
	FrameSize int
	RatePPS   int
}

// CPUCostRow summarizes the rounds of one CPUCostKey. Per-frame figures
// are nanoseconds per delivered frame.
type CPUCostRow struct {
	CPUCostKey
	Rounds int
	// Delivered is the median share of the sent frames that arrived.
	Delivered float64
	// Kernel is system + irq + softirq time per frame; User the user
	// time per frame (the engine's, and a user-space switch's).
	Kernel, User stats.Summary
	// KernelTicks is the median of the kernel ticks a round counted: the
	// figure's resolution (a tick more or less is 1/KernelTicks of it).
	KernelTicks float64
	// Switching is Kernel's median less the baseline's at the same
	// direction, frame size and rate: what the switch adds to what the
	// engine and the links cost anyway. NaN without a baseline, and for
	// the baseline itself.
	Switching float64
	// VsBridge is Switching over the Linux bridge's Switching; NaN where
	// either is unknown or not positive.
	VsBridge float64
	// SenderPath is the sending thread's and ksoftirqd's exact CPU time
	// per frame (CPURound.SenderPathNsPerFrame); PathSwitching and
	// PathVsBridge are Switching and VsBridge on it.
	SenderPath                  stats.Summary
	PathSwitching, PathVsBridge float64
}

// shortDelivery is the delivered share below which a system did not carry
// the offered rate: its per-frame figures are for a different load.
const shortDelivery = 0.98

// cpuCostRows summarizes r.CPUCost: one row per system, direction, frame
// size and rate; uplinkd first, the baseline last.
func cpuCostRows(r *Result) []CPUCostRow {
	groups := map[CPUCostKey][]CPURound{}
	for _, c := range r.CPUCost {
		k := CPUCostKey{c.System, c.Direction, c.FrameSize, c.RatePPS}
		groups[k] = append(groups[k], c)
	}
	rows := make([]CPUCostRow, 0, len(groups))
	for k, rounds := range groups {
		var kernel, user, path, ticks, delivered []float64
		for _, c := range rounds {
			kernel = append(kernel, c.KernelNsPerFrame())
			path = append(path, c.SenderPathNsPerFrame())
			user = append(user, c.UserNsPerFrame())
			ticks = append(ticks, float64(c.Ticks.Kernel()))
			if c.Sent > 0 {
				delivered = append(delivered, float64(c.Delivered)/float64(c.Sent))
			}
		}
		rows = append(rows, CPUCostRow{CPUCostKey: k, Rounds: len(rounds),
			Delivered: stats.Summarize(delivered).P50, Kernel: stats.Summarize(kernel), User: stats.Summarize(user),
			KernelTicks: stats.Summarize(ticks).P50, SenderPath: stats.Summarize(path)})
	}
	for i := range rows {
		r := &rows[i]
		r.Switching, r.VsBridge = switchingCost(rows, r.CPUCostKey, func(r CPUCostRow) stats.Summary { return r.Kernel })
		r.PathSwitching, r.PathVsBridge = switchingCost(rows, r.CPUCostKey, func(r CPUCostRow) stats.Summary { return r.SenderPath })
	}
	slices.SortFunc(rows, func(a, b CPUCostRow) int {
		return cmp.Or(
			cmp.Compare(a.RatePPS, b.RatePPS),
			byKnownOrder(a.Direction, b.Direction, GuestToUplink, UplinkToGuest),
			cmp.Compare(a.FrameSize, b.FrameSize),
			cmp.Compare(cpuSystemRank(a.System), cpuSystemRank(b.System)),
			cmp.Compare(a.System, b.System),
		)
	})
	return rows
}

// switchingCost is the median figure of k's row less the baseline's in
// the same setting, and that over the Linux bridge's; NaN where unknown.
// A cost at or below the baseline's is lost in the noise: no ratio.
func switchingCost(rows []CPUCostRow, k CPUCostKey, figure func(CPUCostRow) stats.Summary) (cost, vsBridge float64) {
	of := func(system string) float64 {
		for _, r := range rows {
			if r.System == system && r.Direction == k.Direction && r.FrameSize == k.FrameSize && r.RatePPS == k.RatePPS && figure(r).N > 0 {
				return figure(r).P50
			}
		}
		return math.NaN()
	}
	if k.System == SystemBaseline {
		return math.NaN(), math.NaN()
	}
	base := of(SystemBaseline)
	cost = of(k.System) - base
	bridge := of(SystemLinuxBridge) - base
	if cost > 0 && bridge > 0 {
		return cost, cost / bridge
	}
	return cost, math.NaN()
}

// cpuSystemRank puts uplinkd first and the baseline last.
func cpuSystemRank(s string) int {
	switch s {
	case SystemUplinkd:
		return 0
	case SystemBaseline:
		return 2
	}
	return 1
}

// fmtPerFrame formats nanoseconds per frame in µs, the unit of the table.
func fmtPerFrame(ns float64) string {
	if math.IsNaN(ns) || math.IsInf(ns, 0) {
		return dash
	}
	us := ns / 1e3
	if us < 0 {
		return "−" + sig3(-us)
	}
	return sig3(us)
}

// cpuCostTable is the rows of one rate.
func cpuCostTable(rows []CPUCostRow) textTable {
	t := textTable{
		Head: []string{"System", "Direction", "Frame", "Rounds", "Delivered", "Kernel µs/frame p50 (min – max)",
			"User µs/frame p50", "Switching µs/frame (kernel − baseline)", "Switching ÷ Linux bridge's", "Kernel ticks/round",
			"Sender + ksoftirqd µs/frame p50", "Switching on that (− baseline)", "÷ Linux bridge's"},
		Num: []bool{false, false, true, true, true, true, true, true, true, true, true, true, true},
	}
	for _, r := range rows {
		kernel := dash
		if r.Kernel.N > 0 {
			kernel = fmt.Sprintf("%s (%s – %s)", fmtPerFrame(r.Kernel.P50), fmtPerFrame(r.Kernel.Min), fmtPerFrame(r.Kernel.Max))
		}
		user := dash
		if r.User.N > 0 {
			user = fmtPerFrame(r.User.P50)
		}
		delivered := fmtPercent(r.Delivered)
		if r.System == SystemBaseline {
			delivered = "dropped"
		} else if r.Delivered < shortDelivery {
			delivered += " *"
		}
		path := dash
		if r.SenderPath.N > 0 {
			path = fmtPerFrame(r.SenderPath.P50)
		}
		t.Rows = append(t.Rows, []string{systemName(r.System), directionName(r.Direction), fmt.Sprintf("%d B", r.FrameSize),
			fmt.Sprint(r.Rounds), delivered, kernel, user, fmtPerFrame(r.Switching), fmtRatio(r.VsBridge), fmtCount(r.KernelTicks),
			path, fmtPerFrame(r.PathSwitching), fmtRatio(r.PathVsBridge)})
	}
	return t
}

// cpuCostSection is one table, with its heading, per offered rate.
type cpuCostSection struct {
	Title string
	Table textTable
	Short bool // some system delivered less than shortDelivery of the frames
}

func cpuCostSections(r *Result) []cpuCostSection {
	rows := cpuCostRows(r)
	var out []cpuCostSection
	for i := 0; i < len(rows); {
		j := i
		for j < len(rows) && rows[j].RatePPS == rows[i].RatePPS {
			j++
		}
		s := cpuCostSection{Title: "CPU per frame at " + fmtRate(rows[i].RatePPS) + " offered", Table: cpuCostTable(rows[i:j])}
		for _, row := range rows[i:j] {
			s.Short = s.Short || (row.System != SystemBaseline && row.Delivered < shortDelivery)
		}
		out = append(out, s)
		i = j
	}
	return out
}

// cpuCostCaption says how the figures were measured.
const cpuCostCaption = "The same paced rate offered to every system, so a system's CPU is compared at the same load whatever " +
	"its flat-out rate. CPU time of the whole machine over each round from /proc/stat, divided by the frames delivered: " +
	"kernel is system + irq + softirq time (where a kernel switch works), user is the engine's own user time plus a " +
	"user-space switch's. The baseline is no switch: the host end of the sending link drops each frame at tc ingress, " +
	"so it costs what the engine, the link and the frame's arrival cost every system; switching is the rest. The kernel " +
	"samples these times at its tick, so they are estimates: kernel ticks/round gives their resolution, and other work " +
	"on the machine counts too. Sender + ksoftirqd is exact and sees only the harness's sending threads (their send calls run the " +
	"veths' and a kernel switch's softirq work on their way out) and the deferred softirq work: it does not see a " +
	"user-space switch. Medians of the rounds."

// cpuCostShortNote explains the mark on the delivered share.
const cpuCostShortNote = "*: the system delivered less than the offered rate; its per-frame figures are for the frames it delivered."

// writeCPUCostMarkdown is the CPU-per-frame section of the markdown report.
func writeCPUCostMarkdown(b *strings.Builder, r *Result) {
	for _, s := range cpuCostSections(r) {
		b.WriteString("\n## " + s.Title + "\n\n")
		b.WriteString(cpuCostCaption + "\n\n")
		writeMarkdownTable(b, s.Table)
		if s.Short {
			b.WriteString("\n" + mdCell(cpuCostShortNote) + "\n")
		}
	}
}
