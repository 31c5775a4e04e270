package report

import (
	"cmp"
	"fmt"
	"math"
	"slices"

	"github.com/uplinkd/uplinkd/test/bench/stats"
)

// FailoverKey groups failover trials that measured the same thing. The rate
// is part of it: frames lost scale with the offered load, so 50 kpps and
// 1 Mpps trials must not share a percentile.
type FailoverKey struct {
	System        string
	Uplink        string
	Guests        int
	RatePPS       int
	SecondFailure bool
	Planned       bool
}

// FailoverRow summarizes the trials of one FailoverKey. The duration
// summaries are in nanoseconds and leave out unknown (negative) values, so
// their N says in how many trials the figure was known.
type FailoverRow struct {
	FailoverKey
	Trials                 int
	Sent, Lost, Duplicates uint64        // totals over the trials
	LostFrames             stats.Summary // near the cut: the failover's own loss
	// LinkLoss and OwnLoss split LostFrames: lost inside the links (on a
	// cut link's wire, or at a full ring of a working one) and the rest.
	LinkLoss, OwnLoss stats.Summary
	LostInRun         stats.Summary // the whole run
	Interruption      stats.Summary
	CutToSwitch       stats.Summary
	CutToAnnounce     stats.Summary
	CutToReceiveOnly  stats.Summary
	CPUBusyMax        float64 // the noisiest trial's share of busy CPU
	NoisyTrials       int     // trials with the CPU more than 90% busy
}

// ForwardKey groups forwarding rounds that measured the same thing.
type ForwardKey struct {
	System    string
	Direction string
	FrameSize int
}

// ForwardRow summarizes the rounds of one ForwardKey; the figure of record
// is the median, Mpps.P50.
type ForwardRow struct {
	ForwardKey
	Rounds int
	Mpps   stats.Summary
	Gbps   stats.Summary
}

// Comparison metrics.
const (
	MetricLost         = "lost"         // median frames lost per failover
	MetricInterruption = "interruption" // median interruption, ns
	MetricMpps         = "mpps"         // median forwarding rate, Mpps
	// MetricSwitchCPU is the kernel time per frame a system adds to the
	// baseline at the same offered rate, ns.
	MetricSwitchCPU = "switch-cpu"
)

// Comparison is uplinkd against one peer on one metric in one setting, both
// from the same run.
type Comparison struct {
	Metric    string
	Peer      string
	Context   string  // the setting, e.g. "veth, 1 guest, 50 kpps"
	Uplinkd   float64 // uplinkd's median
	PeerValue float64 // the peer's median
	Ratio     float64 // Uplinkd / PeerValue; NaN when PeerValue is 0
	Text      string  // one sentence for people
}

// TableSet is what the markdown and HTML reports show.
type TableSet struct {
	Failover    []FailoverRow
	Forwarding  []ForwardRow
	CPUCost     []CPUCostRow
	Comparisons []Comparison
}

// order ranks systems (uplinkd first, then peers by name), uplink kinds and
// directions so every table and plot lists them the same way.
type order struct{ systems map[string]int }

func newOrder(r *Result) order {
	seen := map[string]bool{}
	for _, t := range r.Failover {
		seen[t.System] = true
	}
	for _, f := range r.Forwarding {
		seen[f.System] = true
	}
	for _, n := range r.NotRun {
		seen[n.System] = true
	}
	names := make([]string, 0, len(seen))
	for s := range seen {
		names = append(names, s)
	}
	slices.SortFunc(names, func(a, b string) int {
		if (a == SystemUplinkd) != (b == SystemUplinkd) {
			if a == SystemUplinkd {
				return -1
			}
			return 1
		}
		return cmp.Compare(a, b)
	})
	o := order{systems: map[string]int{}}
	for i, s := range names {
		o.systems[s] = i
	}
	return o
}

// systemList is the systems in report order.
func (o order) systemList() []string {
	out := make([]string, len(o.systems))
	for s, i := range o.systems {
		out[i] = s
	}
	return out
}

// byKnownOrder puts the listed values first, in that order, then the rest by name.
func byKnownOrder(a, b string, first ...string) int {
	ia, ib := slices.Index(first, a), slices.Index(first, b)
	if ia < 0 {
		ia = len(first)
	}
	if ib < 0 {
		ib = len(first)
	}
	return cmp.Or(cmp.Compare(ia, ib), cmp.Compare(a, b))
}

func boolRank(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (o order) failover(a, b FailoverKey) int {
	return cmp.Or(
		cmp.Compare(o.systems[a.System], o.systems[b.System]),
		byKnownOrder(a.Uplink, b.Uplink, UplinkVeth, UplinkTap),
		cmp.Compare(a.RatePPS, b.RatePPS),
		cmp.Compare(boolRank(a.SecondFailure), boolRank(b.SecondFailure)),
		cmp.Compare(boolRank(a.Planned), boolRank(b.Planned)),
		cmp.Compare(a.Guests, b.Guests),
	)
}

func (o order) forward(a, b ForwardKey) int {
	return cmp.Or(
		byKnownOrder(a.Direction, b.Direction, GuestToUplink, UplinkToGuest),
		cmp.Compare(a.FrameSize, b.FrameSize),
		cmp.Compare(o.systems[a.System], o.systems[b.System]),
	)
}

// durations turns nanosecond figures into float64 samples, leaving out the
// unknown ones.
func durations(ns []int64) []float64 {
	out := make([]float64, 0, len(ns))
	for _, v := range ns {
		if v >= 0 {
			out = append(out, float64(v))
		}
	}
	return out
}

func keyOf(t FailoverTrial) FailoverKey {
	return FailoverKey{t.System, t.Uplink, t.Guests, t.RatePPS, t.SecondFailure, t.Planned}
}

// Tables summarizes r: failover trials grouped by FailoverKey, forwarding
// rounds by ForwardKey, and uplinkd compared with every peer wherever both
// ran the same setting.
func Tables(r *Result) TableSet {
	o := newOrder(r)
	var ts TableSet

	groups := map[FailoverKey][]FailoverTrial{}
	for _, t := range r.Failover {
		groups[keyOf(t)] = append(groups[keyOf(t)], t)
	}
	for k, trials := range groups {
		row := FailoverRow{FailoverKey: k, Trials: len(trials)}
		var lost, lostRun, link, own []float64
		var intr, sw, ann, rx []int64
		for _, t := range trials {
			row.Sent += t.Sent
			row.Lost += t.Lost
			row.Duplicates += t.Duplicates
			row.CPUBusyMax = max(row.CPUBusyMax, t.CPUBusy)
			if t.CPUBusy > noisyCPU {
				row.NoisyTrials++
			}
			lost = append(lost, float64(t.LostNearCut))
			link = append(link, float64(t.LostNearCut-t.OwnLoss()))
			own = append(own, float64(t.OwnLoss()))
			lostRun = append(lostRun, float64(t.Lost))
			intr = append(intr, t.InterruptionNs)
			sw = append(sw, t.CutToSwitchNs)
			ann = append(ann, t.CutToAnnounceNs)
			rx = append(rx, t.CutToReceiveOnlyNs)
		}
		row.LostFrames = stats.Summarize(lost)
		row.LinkLoss = stats.Summarize(link)
		row.OwnLoss = stats.Summarize(own)
		row.LostInRun = stats.Summarize(lostRun)
		row.Interruption = stats.Summarize(durations(intr))
		row.CutToSwitch = stats.Summarize(durations(sw))
		row.CutToAnnounce = stats.Summarize(durations(ann))
		row.CutToReceiveOnly = stats.Summarize(durations(rx))
		ts.Failover = append(ts.Failover, row)
	}
	slices.SortFunc(ts.Failover, func(a, b FailoverRow) int { return o.failover(a.FailoverKey, b.FailoverKey) })

	rounds := map[ForwardKey][]ForwardRound{}
	for _, f := range r.Forwarding {
		k := ForwardKey{f.System, f.Direction, f.FrameSize}
		rounds[k] = append(rounds[k], f)
	}
	for k, rs := range rounds {
		var mpps, gbps []float64
		for _, f := range rs {
			mpps = append(mpps, f.Mpps)
			gbps = append(gbps, f.Gbps)
		}
		ts.Forwarding = append(ts.Forwarding, ForwardRow{ForwardKey: k, Rounds: len(rs),
			Mpps: stats.Summarize(mpps), Gbps: stats.Summarize(gbps)})
	}
	slices.SortFunc(ts.Forwarding, func(a, b ForwardRow) int { return o.forward(a.ForwardKey, b.ForwardKey) })

	ts.CPUCost = cpuCostRows(r)
	ts.Comparisons = compare(ts)
	return ts
}

// compare pairs every peer row with uplinkd's row of the same setting.
func compare(ts TableSet) []Comparison {
	var out []Comparison
	fo := map[FailoverKey]FailoverRow{}
	for _, row := range ts.Failover {
		fo[row.FailoverKey] = row
	}
	for _, peer := range ts.Failover {
		if peer.System == SystemUplinkd {
			continue
		}
		k := peer.FailoverKey
		k.System = SystemUplinkd
		u, ok := fo[k]
		if !ok {
			continue
		}
		ctx := failoverContext(k)
		if u.LostFrames.N > 0 && peer.LostFrames.N > 0 {
			out = append(out, newComparison(MetricLost, peer.System, ctx, u.LostFrames.P50, peer.LostFrames.P50))
		}
		if u.Interruption.N > 0 && peer.Interruption.N > 0 {
			out = append(out, newComparison(MetricInterruption, peer.System, ctx, u.Interruption.P50, peer.Interruption.P50))
		}
	}
	fw := map[ForwardKey]ForwardRow{}
	for _, row := range ts.Forwarding {
		fw[row.ForwardKey] = row
	}
	for _, peer := range ts.Forwarding {
		if peer.System == SystemUplinkd {
			continue
		}
		k := peer.ForwardKey
		k.System = SystemUplinkd
		if u, ok := fw[k]; ok && u.Mpps.N > 0 && peer.Mpps.N > 0 {
			out = append(out, newComparison(MetricMpps, peer.System, forwardContext(k), u.Mpps.P50, peer.Mpps.P50))
		}
	}
	cpu := map[CPUCostKey]CPUCostRow{}
	for _, row := range ts.CPUCost {
		cpu[row.CPUCostKey] = row
	}
	for _, peer := range ts.CPUCost {
		if peer.System == SystemUplinkd || peer.System == SystemBaseline || math.IsNaN(peer.Switching) {
			continue
		}
		k := peer.CPUCostKey
		k.System = SystemUplinkd
		if u, ok := cpu[k]; ok && !math.IsNaN(u.Switching) {
			ctx := fmt.Sprintf("%s, %d B frames, %s", directionName(k.Direction), k.FrameSize, fmtRate(k.RatePPS))
			out = append(out, newComparison(MetricSwitchCPU, peer.System, ctx, u.Switching, peer.Switching))
		}
	}
	return out
}

func failoverContext(k FailoverKey) string {
	s := fmt.Sprintf("%s, %s, %s", k.Uplink, plural(k.Guests, "guest", "guests"), fmtRate(k.RatePPS))
	if k.SecondFailure {
		s += ", second failure within 1 s"
	}
	if k.Planned {
		s += ", planned switch"
	}
	return s
}

// eventName says what moved the traffic in a failover row.
func eventName(second, planned bool) string {
	switch {
	case planned:
		return "planned"
	case second:
		return "2nd cut within 1 s"
	}
	return "cut"
}

func forwardContext(k ForwardKey) string {
	return fmt.Sprintf("%s, %d B frames", directionName(k.Direction), k.FrameSize)
}

func newComparison(metric, peer, ctx string, u, p float64) Comparison {
	c := Comparison{Metric: metric, Peer: peer, Context: ctx, Uplinkd: u, PeerValue: p, Ratio: stats.Ratio(u, p)}
	name := systemName(peer)
	switch metric {
	case MetricLost:
		switch {
		case u == 0 && p == 0:
			c.Text = fmt.Sprintf("neither uplinkd nor %s loses a frame (median per failover; %s)", name, ctx)
		case u == 0:
			c.Text = fmt.Sprintf("uplinkd loses no frames where %s loses %s (median per failover; %s)", name, fmtCount(p), ctx)
		case p == 0:
			c.Text = fmt.Sprintf("uplinkd loses %s frames where %s loses none (median per failover; %s)", fmtCount(u), name, ctx)
		default:
			c.Text = fmt.Sprintf("uplinkd loses %s the frames %s loses (median %s vs %s per failover; %s)",
				fmtRatio(c.Ratio), name, fmtCount(u), fmtCount(p), ctx)
		}
	case MetricInterruption:
		if math.IsNaN(c.Ratio) {
			c.Text = fmt.Sprintf("uplinkd interrupts traffic for %s, %s for %s (median; %s)", fmtNs(u), name, fmtNs(p), ctx)
		} else {
			c.Text = fmt.Sprintf("uplinkd interrupts traffic %s as long as %s (median %s vs %s; %s)",
				fmtRatio(c.Ratio), name, fmtNs(u), fmtNs(p), ctx)
		}
	case MetricSwitchCPU:
		if u <= 0 || p <= 0 {
			c.Ratio = math.NaN() // at or below the baseline: noise, no ratio
		}
		if math.IsNaN(c.Ratio) {
			c.Text = fmt.Sprintf("switching a frame costs uplinkd %s µs of kernel time, %s %s µs (beyond the baseline; median; %s)",
				fmtPerFrame(u), name, fmtPerFrame(p), ctx)
		} else {
			c.Text = fmt.Sprintf("uplinkd spends %s the kernel time %s spends switching a frame (beyond the baseline; median %s vs %s µs; %s)",
				fmtRatio(c.Ratio), name, fmtPerFrame(u), fmtPerFrame(p), ctx)
		}
	case MetricMpps:
		if math.IsNaN(c.Ratio) {
			c.Text = fmt.Sprintf("uplinkd forwards %s Mpps, %s %s Mpps (median; %s)", fmtMpps(u), name, fmtMpps(p), ctx)
		} else {
			c.Text = fmt.Sprintf("uplinkd forwards %s the rate of %s (median %s vs %s Mpps; %s)",
				fmtRatio(c.Ratio), name, fmtMpps(u), fmtMpps(p), ctx)
		}
	}
	return c
}
