package report

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/uplinkd/uplinkd/test/bench/stats"
)

// idleTable: per testbed size, uplinkd's own CPU, wake-ups and memory at
// rest (medians over the windows) and how long it took to be ready.
func idleTable(runs []IdleRun) textTable {
	t := textTable{
		Head: []string{"Groups", "Uplinks", "Guest ports", "Carrier poll", "Windows",
			"CPU, % of one CPU p50 / max", "Busiest thread p50", "Wake-ups/s p50", "Threads", "RSS p50", "Peak RSS (VmHWM)", "Start-up to ready", "Restart to ready"},
		Num: []bool{true, true, true, true, true, true, true, true, true, true, true, true, true},
	}
	runs = slices.Clone(runs)
	slices.SortStableFunc(runs, func(a, b IdleRun) int {
		return cmp.Or(cmp.Compare(a.Groups, b.Groups), cmp.Compare(a.Uplinks+a.GuestPorts, b.Uplinks+b.GuestPorts))
	})
	for _, r := range runs {
		var cpu, thread, wakeups, rss []float64
		var hwm uint64
		threads := 0
		noisy := false
		for _, w := range r.Windows {
			cpu = append(cpu, w.CPUPercent)
			thread = append(thread, w.BusiestThreadPercent)
			wakeups = append(wakeups, w.WakeupsPerSec)
			rss = append(rss, float64(w.RSSBytes))
			hwm = max(hwm, w.HWMBytes)
			threads = max(threads, w.Threads)
			noisy = noisy || w.CPUBusy > noisyCPU
		}
		c := stats.Summarize(cpu)
		cpuCell, threadCell, wakeCell, rssCell := dash, dash, dash, dash
		if c.N > 0 {
			cpuCell = fmtCPUPercent(c.P50) + " / " + fmtCPUPercent(c.Max)
			threadCell = fmtCPUPercent(stats.Summarize(thread).P50)
			wakeCell = fmtCount(float64(int64(stats.Summarize(wakeups).P50 + 0.5)))
			rssCell = fmtMiB(stats.Summarize(rss).P50)
		}
		poll := fmtNs(float64(r.PollIntervalNs))
		if r.PollIntervalNs <= 0 {
			poll = "off"
		}
		startup, restart := dash, dash
		if r.StartupNs > 0 {
			startup = fmtNs(float64(r.StartupNs))
		}
		if r.RestartNs > 0 {
			restart = fmtNs(float64(r.RestartNs))
		}
		t.Rows = append(t.Rows, []string{fmt.Sprint(r.Groups), fmt.Sprint(r.Uplinks), fmt.Sprint(r.GuestPorts), poll,
			fmt.Sprint(len(r.Windows)), cpuCell, threadCell, wakeCell, threadsCell(threads), rssCell, fmtMiB(float64(hwm)), startup, restart})
		t.Noisy = append(t.Noisy, noisy)
	}
	return t
}

// fmtCPUPercent formats a percentage of one CPU with about three
// significant digits: idle costs are small.
func fmtCPUPercent(p float64) string { return sig3(max(p, 0)) + "%" }

// fmtMiB formats a byte count in MiB with about three significant digits.
func fmtMiB(b float64) string {
	if !(b > 0) {
		return dash
	}
	return sig3(b/(1<<20)) + " MiB"
}

func threadsCell(n int) string {
	if n <= 0 {
		return dash
	}
	return fmt.Sprint(n)
}

// writeIdleMarkdown is the idle section of the markdown report.
func writeIdleMarkdown(b *strings.Builder, r *Result) {
	if len(r.Idle) == 0 {
		return
	}
	b.WriteString("\n## At rest (uplinkd)\n\n" + idleCaption + "\n\n")
	writeMarkdownTable(b, idleTable(r.Idle))
}

// idleCaption explains the idle table, in the markdown and the HTML.
const idleCaption = "uplinkd's own cost with every uplink up and no traffic, after it settled: user+system time of the process " +
	"over each window in percent of one CPU (and of its busiest thread), context switches of all its threads per second, " +
	"and its resident memory; medians over the windows. Start-up to ready is from starting the process, on a host with " +
	"nothing of uplinkd's attached, to its control socket answering with an active uplink in every group. Restart to ready " +
	"is the same for a second process started over the data plane the first left attached, as after an upgrade or a crash: " +
	"it adopts the links in place. The cost at rest is the second process's."
