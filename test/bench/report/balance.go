package report

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/uplinkd/uplinkd/test/bench/stats"
)

// balanceForwardTable: per uplink count and frame size, the median of
// the rounds, and the rate against one uplink.
func balanceForwardTable(b *BalanceResult) textTable {
	t := textTable{
		Head: []string{"Uplinks", "Frame", "Guests (MACs)", "Rounds", "Mpps p50", "vs 1 uplink", "Share per uplink (last round)"},
		Num:  []bool{true, true, true, true, true, true, false},
	}
	if b == nil {
		return t
	}
	type key struct{ uplinks, size int }
	var keys []key
	rounds := map[key][]BalanceRound{}
	for _, r := range b.Forwarding {
		k := key{r.Uplinks, r.FrameSize}
		if _, ok := rounds[k]; !ok {
			keys = append(keys, k)
		}
		rounds[k] = append(rounds[k], r)
	}
	slices.SortFunc(keys, func(a, b key) int { return cmp.Or(cmp.Compare(a.size, b.size), cmp.Compare(a.uplinks, b.uplinks)) })
	median := func(k key) float64 {
		var xs []float64
		for _, r := range rounds[k] {
			xs = append(xs, r.Mpps)
		}
		return stats.Summarize(xs).P50
	}
	for _, k := range keys {
		rs := rounds[k]
		last := rs[len(rs)-1]
		var shares []string
		var total uint64
		for _, n := range last.PerUplink {
			total += n
		}
		for i, n := range last.PerUplink {
			if total > 0 {
				shares = append(shares, fmt.Sprintf("up%d %s", i, fmtPercent(float64(n)/float64(total))))
			}
		}
		ratio := dash
		if _, ok := rounds[key{1, k.size}]; ok && k.uplinks != 1 {
			ratio = fmtRatio(median(k) / median(key{1, k.size}))
		}
		t.Rows = append(t.Rows, []string{fmt.Sprint(k.uplinks), fmt.Sprintf("%d B", k.size), fmt.Sprint(last.Sources),
			fmt.Sprint(len(rs)), fmtMpps(median(k)), ratio, strings.Join(shares, ", ")})
		t.Noisy = append(t.Noisy, last.CPUBusy > noisyCPU)
	}
	return t
}

// balanceFailoverTable: per rate, over the trials, the loss of the guests
// that moved and of those that did not.
func balanceFailoverTable(b *BalanceResult) textTable {
	t := textTable{
		Head: []string{"Rate", "Guests (MACs)", "Trials", "Moved guests p50", "Lost, moved guests p50 / p99 / max", "Lost, other guests p50 / p99 / max", "Duplicates max", "Cut → switch p50 / p99"},
		Num:  []bool{true, true, true, true, true, true, true, true},
	}
	if b == nil {
		return t
	}
	rates, byRate := groupByRate(b.Failover, func(x BalanceTrial) int { return x.RatePPS })
	for _, rate := range rates {
		ts := byRate[rate]
		var moved, lostMoved, lostStayed, dups []float64
		var cutNs []int64
		noisy := false
		for _, x := range ts {
			moved = append(moved, float64(x.MovedSources))
			lostMoved = append(lostMoved, float64(x.LostMoved))
			lostStayed = append(lostStayed, float64(x.LostStayed))
			dups = append(dups, float64(x.Duplicates))
			cutNs = append(cutNs, x.CutToSwitchNs)
			noisy = noisy || x.CPUBusy > noisyCPU
		}
		n := len(ts)
		t.Rows = append(t.Rows, []string{fmtRate(rate), fmt.Sprint(ts[0].Sources), fmt.Sprint(n),
			fmtCount(stats.Summarize(moved).P50),
			triple(stats.Summarize(lostMoved), n, fmtCount), triple(stats.Summarize(lostStayed), n, fmtCount),
			fmtCount(stats.Summarize(dups).Max), pair(stats.Summarize(durations(cutNs)), n, fmtNs)})
		t.Noisy = append(t.Noisy, noisy)
	}
	return t
}

// writeBalanceMarkdown is the balance section of the markdown report.
func writeBalanceMarkdown(b *strings.Builder, r *Result) {
	if r.Balance == nil {
		return
	}
	b.WriteString("\n## Balance mode (uplinkd)\n\n")
	b.WriteString("A balance group pins each guest (source MAC and VLAN) to one usable uplink. Forwarding: the sending guest's " +
		"frames cycle through many source MACs, flat out, through one uplink and through two; the share shows how the guests " +
		"spread. Failover: one uplink of three is cut under traffic; the guests whose bucket was on it move, the others must " +
		"lose nothing (a frame counts as lost when no uplink delivered it).\n\n")
	writeMarkdownTable(b, balanceForwardTable(r.Balance))
	b.WriteString("\n")
	writeMarkdownTable(b, balanceFailoverTable(r.Balance))
}

// upgradeTable: per rate, over the restarts, what the guest's stream lost.
func upgradeTable(ts []UpgradeTrial) textTable {
	t := textTable{
		Head: []string{"Rate", "Restarts", "Lost p50 / p99 / max", "of which at a full ring max", "Duplicates max", "No daemon p50 / max"},
		Num:  []bool{true, true, true, true, true, true},
	}
	rates, byRate := groupByRate(ts, func(x UpgradeTrial) int { return x.RatePPS })
	for _, rate := range rates {
		xs := byRate[rate]
		var lost, ring, dups, gap []float64
		noisy := false
		for _, x := range xs {
			lost = append(lost, float64(x.Lost))
			ring = append(ring, float64(x.LostAtFullRing))
			dups = append(dups, float64(x.Duplicates))
			gap = append(gap, float64(x.NoDaemonNs))
			noisy = noisy || x.CPUBusy > noisyCPU
		}
		g := stats.Summarize(gap)
		t.Rows = append(t.Rows, []string{fmtRate(rate), fmt.Sprint(len(xs)), triple(stats.Summarize(lost), len(xs), fmtCount),
			fmtCount(stats.Summarize(ring).Max), fmtCount(stats.Summarize(dups).Max), fmtNs(g.P50) + " / " + fmtNs(g.Max)})
		t.Noisy = append(t.Noisy, noisy)
	}
	return t
}

// writeUpgradeMarkdown is the upgrade section of the markdown report.
func writeUpgradeMarkdown(b *strings.Builder, r *Result) {
	if len(r.Upgrade) == 0 {
		return
	}
	b.WriteString("\n## Upgrade under traffic (uplinkd)\n\n")
	b.WriteString("uplinkd is stopped (SIGTERM) and started again over its running data plane while the guest sends: " +
		"the new process adopts the pinned maps and swaps the programs in place. \"No daemon\" is from the signal to the new " +
		"process serving; the data plane forwards all along.\n\n")
	writeMarkdownTable(b, upgradeTable(r.Upgrade))
}

// groupByRate groups records by their rate; the rates come sorted.
func groupByRate[T any](xs []T, rate func(T) int) ([]int, map[int][]T) {
	by := map[int][]T{}
	for _, x := range xs {
		by[rate(x)] = append(by[rate(x)], x)
	}
	return slices.Sorted(maps.Keys(by)), by
}
