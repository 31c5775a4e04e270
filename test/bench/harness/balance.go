package harness

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"time"

	"github.com/uplinkd/uplinkd/pkg/balance"
	"github.com/uplinkd/uplinkd/pkg/limits"
	"github.com/uplinkd/uplinkd/test/bench/report"
	"github.com/uplinkd/uplinkd/test/bench/stats"
	"github.com/uplinkd/uplinkd/test/bench/topo"
)

// balanceSources is how many guest MACs the sending guest's frames cycle
// through in the balance scenario: enough to spread over the uplinks.
const balanceSources = 64

// balanceScenario measures uplinkd's balance mode: the forwarding rate of
// many guests through one uplink and through two, and cuts of one uplink
// of three, with the loss split between the guests that moved and the
// others.
func (h *harness) balanceScenario(ctx context.Context) {
	res := &report.BalanceResult{}
	h.res.Balance = res
	for _, n := range []int{1, 2} {
		b, err := h.newBedWith(ctx, "uplinkd", topo.Veth, n, "balance")
		if err != nil {
			h.notRun("uplinkd", fmt.Sprintf("balance/forward %d uplinks", n), err)
			continue
		}
		rounds, err := h.balanceRounds(ctx, b)
		b.close()
		if err != nil {
			h.notRun("uplinkd", fmt.Sprintf("balance/forward %d uplinks", n), err)
		}
		res.Forwarding = append(res.Forwarding, rounds...)
	}
	b, err := h.newBedWith(ctx, "uplinkd", topo.Veth, 3, "balance")
	if err != nil {
		h.notRun("uplinkd", "balance/failover", err)
		return
	}
	defer b.close()
	for trial := 1; trial <= h.opts.Trials && ctx.Err() == nil; trial++ {
		t, err := h.balanceTrial(ctx, b, trial)
		if err != nil {
			h.notRun("uplinkd", "balance/failover", fmt.Errorf("trial %d: %w", trial, err))
			return
		}
		res.Failover = append(res.Failover, t)
		h.opts.Log.Info("balance trial", "trial", trial, "moved_sources", t.MovedSources, "lost_moved", t.LostMoved,
			"lost_stayed", t.LostStayed, "dups", t.Duplicates, "sent", t.Sent, "by", t.SwitchedBy)
	}
}

// balanceRounds sends flat out from balanceSources MACs and counts what
// arrives behind every uplink.
func (h *harness) balanceRounds(ctx context.Context, b *bed) ([]report.BalanceRound, error) {
	o := h.opts
	if err := h.settle(ctx, b); err != nil {
		return nil, err
	}
	if err := h.warmUp(ctx, b, balanceSources); err != nil {
		return nil, err
	}
	var out []report.BalanceRound
	for _, size := range o.FrameSizes {
		for round := 1; round <= o.Rounds; round++ {
			if err := b.resetCounters(); err != nil {
				return nil, err
			}
			cpu := readCPU()
			s := send(ctx, b.tp, b.gen, topo.Guest, "eth0", guestTemplate(b.tp, balanceSources, size), 0, o.RoundTime, 0)
			if err := s.wait(); err != nil {
				return nil, err
			}
			time.Sleep(30 * time.Millisecond)
			r := report.BalanceRound{Uplinks: len(b.tp.Uplinks), Sources: balanceSources, FrameSize: size, Round: round,
				Sent: s.sent, CPUBusy: cpu.busy()}
			var first, last time.Time
			for slot := range b.tp.Uplinks {
				st, err := b.rec.stats(slot)
				if err != nil {
					return nil, err
				}
				r.PerUplink = append(r.PerUplink, st.Count)
				r.Received += st.Count
				if st.Count > 0 && (first.IsZero() || st.First.Before(first)) {
					first = st.First
				}
				if st.Last.After(last) {
					last = st.Last
				}
			}
			if span := last.Sub(first); r.Received > 1 && span > 0 {
				r.Mpps = float64(r.Received-1) / span.Seconds() / 1e6
			}
			out = append(out, r)
			o.Log.Info("balance forwarding round", "uplinks", r.Uplinks, "size", size, "round", round,
				"mpps", fmt.Sprintf("%.3f", r.Mpps), "per_uplink", r.PerUplink)
		}
	}
	return out, nil
}

// balanceTrial cuts one uplink of three (slot 1, the designated slot 0 on
// even trials) while the guest sends at RatePPS from balanceSources MACs,
// and splits the loss by whether a MAC's bucket was on the cut uplink.
func (h *harness) balanceTrial(ctx context.Context, b *bed, trial int) (report.BalanceTrial, error) {
	o := h.opts
	res := report.BalanceTrial{Trial: trial, RatePPS: o.RatePPS, Sources: balanceSources, CutToSwitchNs: -1}
	if err := h.prepare(ctx, b, balanceSources); err != nil {
		return res, err
	}
	cutSlot := trial % 2
	// Settled with every uplink and failback on, the table is the home
	// spread (pkg/balance), which says which guests the cut moves.
	slots := []limits.Slot{0, 1, 2}
	table := balance.Assign(nil, slots, slots, true)
	tmpl := guestTemplate(b.tp, balanceSources, 64)
	moved := make([]bool, balanceSources)
	for s := range balanceSources {
		moved[s] = table[balance.Bucket(sourceMAC(tmpl.Src, s), 0)] == limits.Slot(cutSlot)
		if moved[s] {
			res.MovedSources++
		}
	}

	cutAfter := time.Duration(float64(o.TrialLength) * (0.3 + 0.2*rand.Float64()))
	cpu := readCPU()
	up := send(ctx, b.tp, b.gen, topo.Guest, "eth0", tmpl, o.RatePPS, o.TrialLength, 0)
	time.Sleep(cutAfter)
	var ft report.FailoverTrial
	cutAt, err := b.cut(cutSlot, &ft)
	if err != nil {
		return res, err
	}
	if err := up.wait(); err != nil {
		return res, fmt.Errorf("guest stream: %w", err)
	}
	time.Sleep(50 * time.Millisecond)
	res.CPUBusy = cpu.busy()
	union, err := b.tally(&ft, up)
	if err != nil {
		return res, err
	}
	res.Sent, res.Duplicates = ft.Sent, ft.Duplicates
	for _, r := range stats.MissingRuns(union, up.sent, 0) {
		for seq := r.Start; seq < r.Start+r.Len; seq++ {
			if moved[seq%balanceSources] {
				res.LostMoved++
			} else {
				res.LostStayed++
			}
		}
	}
	if times, err := b.sys.SwitchTimes(ctx); err == nil {
		for _, t := range times {
			if t.After(cutAt.Add(-time.Duration(ft.CutCallNs))) {
				res.CutToSwitchNs = max(0, int64(t.Sub(cutAt)))
			}
		}
	}
	if s, ok := b.sys.(interface{ LastSwitchBy() string }); ok && res.CutToSwitchNs >= 0 {
		res.SwitchedBy = s.LastSwitchBy()
	}
	return res, nil
}

// sourceMAC is the source of frame seq with seq % Sources = s: the
// template's Src with s added to its low 24 bits (benchbpf.Template).
func sourceMAC(src net.HardwareAddr, s int) net.HardwareAddr {
	low := (uint32(src[3])<<16 | uint32(src[4])<<8 | uint32(src[5])) + uint32(s)
	return net.HardwareAddr{src[0], src[1], src[2], byte(low >> 16), byte(low >> 8), byte(low)}
}
