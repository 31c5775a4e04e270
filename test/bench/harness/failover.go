package harness

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/uplinkd/uplinkd/test/bench/benchbpf"
	"github.com/uplinkd/uplinkd/test/bench/report"
	"github.com/uplinkd/uplinkd/test/bench/stats"
	"github.com/uplinkd/uplinkd/test/bench/topo"
)

// bed is a testbed with a system running on it and the tools attached.
type bed struct {
	tp       *topo.Topo
	sys      system
	rec      recorder
	gen      benchbpf.Engine // the sending guest's stream
	down     benchbpf.Engine // upstream -> receive-only guest (veth only)
	recvSlot int             // receiver slot of the receive-only guest; -1 none
	cleanup  teardown
}

// tally counts what the guest's stream up lost and duplicated over every
// uplink (within one uplink and across uplinks) into res, and returns the
// union of the sequence numbers that arrived.
func (b *bed) tally(res *report.FailoverTrial, up *stream) ([]uint64, error) {
	var union []uint64
	res.Sent = up.sent
	for slot := range len(b.tp.Uplinks) {
		words, err := b.rec.seen(slot, up.sent)
		if err != nil {
			return nil, err
		}
		st, err := b.rec.stats(slot)
		if err != nil {
			return nil, err
		}
		if st.Beyond > 0 {
			return nil, fmt.Errorf("%d frames beyond the receiver's bitmap: make it larger", st.Beyond)
		}
		res.Duplicates += st.Dups
		if union == nil {
			union = words
			continue
		}
		res.Duplicates += stats.PopCount(stats.Intersect(union, words))
		union = stats.Union(union, words)
	}
	res.Lost = stats.Missing(union, up.sent)
	return union, nil
}

// cut takes uplink i's carrier away and returns when the carrier went. A
// tap loses it inside TUNSETCARRIER, just before the call returns, after
// waiting for the RTNL lock, which the kernel's own link-watch work may
// hold for milliseconds (a real NIC's driver drops the carrier without
// it): its cut is the moment the call returned. A veth loses its carrier
// in the middle of `ip link set down` (after an RCU grace period, before
// its peer's ring is freed): its cut is the moment the call began, which
// counts that grace period against the system. res.CutCallNs keeps the
// longest call.
func (b *bed) cut(i int, res *report.FailoverTrial) (time.Time, error) {
	start := time.Now()
	if err := b.tp.Cut(i); err != nil {
		return start, err
	}
	end := time.Now()
	res.CutCallNs = max(res.CutCallNs, int64(end.Sub(start)))
	if b.tp.Kind == topo.Tap {
		return end, nil
	}
	return start, nil
}

// linkLoss splits, since the links were counted before (the uplinks,
// then the sending guest's; topo.Counts), what they did with the frames
// redirected into them: accepted by an uplink but never received (lost
// inside a link, e.g. on the wire of one that was cut), and refused by a
// link that was not cut because its peer's ring was full (the testbed's
// receiver, or the switch's guest port, fell behind: on this 2-vCPU
// testbed a veth's NAPI can be held by the other, busy CPU). ok is false
// when no frame was redirected into the uplinks: a system that sends
// through the stack, which these counters do not see.
func (b *bed) linkLoss(before []topo.LinkCount, cut ...int) (inLinks, fullRing uint64, ok bool, err error) {
	after, err := b.tp.Counts()
	if err != nil {
		return 0, 0, false, err
	}
	uplinks := len(b.tp.Uplinks)
	for i := range uplinks {
		st, err := b.rec.stats(i)
		if err != nil {
			return 0, 0, false, err
		}
		accepted := after[i].Accepted - before[i].Accepted
		ok = ok || accepted > 0
		if accepted > st.Count {
			inLinks += accepted - st.Count
		}
		if !slices.Contains(cut, i) {
			fullRing += after[i].Refused - before[i].Refused
		}
	}
	if !ok {
		return 0, 0, false, nil
	}
	fullRing += after[uplinks].Refused - before[uplinks].Refused
	return inLinks, fullRing, true, nil
}

// attribute records which part of the loss near the switch the links
// account for; the rest is the switch's own.
func attribute(res *report.FailoverTrial, inLinks, fullRing uint64) {
	res.LostInLinks = int64(min(inLinks, res.LostNearCut))
	res.LostAtFullRing = int64(min(fullRing, res.LostNearCut-uint64(res.LostInLinks)))
}

// prepare starts every trial alike: all uplinks back and the system
// settled, the guests learned, receivers and sequence numbers at zero.
func (h *harness) prepare(ctx context.Context, b *bed, guests int) error {
	if err := h.settle(ctx, b); err != nil {
		return err
	}
	if err := h.warmUp(ctx, b, guests); err != nil {
		return err
	}
	return b.resetCounters()
}

// resetCounters starts the receiver and every sender of the bed afresh:
// no frames seen, sequence numbers from 0.
func (b *bed) resetCounters() error {
	if err := b.rec.reset(); err != nil {
		return err
	}
	for _, g := range []benchbpf.Engine{b.gen, b.down} {
		if g == nil {
			continue // tap testbeds have no upstream sender
		}
		if err := g.Reset(); err != nil {
			return err
		}
	}
	return nil
}

// downTemplate is the upstream host's stream to the receive-only guest.
func downTemplate(tp *topo.Topo) benchbpf.Template {
	return benchbpf.Template{Dst: tp.MAC[topo.RecvOnly], Src: tp.MAC[topo.Sender], Sources: 1, Size: benchbpf.MinFrameSize, Stream: 2}
}

func (b *bed) close() { b.cleanup.close() }

// failoverTrial cuts the active uplink (and with second, the next one
// within SecondCutMax) while the guest sends at rate, and computes every
// figure from what the receivers recorded.
func (h *harness) failoverTrial(ctx context.Context, b *bed, kind string, guests, rate, trial int, second bool) (report.FailoverTrial, error) {
	o := h.opts
	res := report.FailoverTrial{System: b.sys.Name(), Uplink: kind, Guests: guests, RatePPS: rate, Trial: trial,
		SecondFailure: second, CutToSwitchNs: -1, CutToAnnounceNs: -1, CutToReceiveOnlyNs: -1}
	if err := h.prepare(ctx, b, guests); err != nil {
		return res, err
	}
	// Plan the cuts first: the streams must outlast the last of them.
	firstCut := time.Duration(float64(o.TrialLength) * (0.3 + 0.2*rand.Float64()))
	var secondCut time.Duration
	if second {
		secondCut = time.Duration(float64(o.SecondCutMax) * (0.2 + 0.6*rand.Float64()))
	}
	length := max(o.TrialLength, firstCut+secondCut+o.TrialLength/2)
	res.InterruptionNs = -1

	links, linksErr := b.tp.Counts()
	cpu := readCPU()
	var down *stream
	if b.down != nil {
		down = send(ctx, b.tp, b.down, topo.Sender, "sA", downTemplate(b.tp), o.DownRatePPS, length, 0)
	}
	up := send(ctx, b.tp, b.gen, topo.Guest, "eth0", guestTemplate(b.tp, guests, 64), rate, length, 0)

	// Cut at a random moment in the middle of the run.
	time.Sleep(firstCut)
	cutAt, err := b.cut(0, &res)
	if err != nil {
		return res, err
	}
	lastCut := cutAt
	if second {
		time.Sleep(secondCut)
		if lastCut, err = b.cut(1, &res); err != nil {
			return res, err
		}
	}
	if err := up.wait(); err != nil {
		return res, fmt.Errorf("guest stream: %w", err)
	}
	if down != nil {
		if err := down.wait(); err != nil {
			return res, fmt.Errorf("upstream stream: %w", err)
		}
	}
	time.Sleep(50 * time.Millisecond) // let the last frames land
	res.CPUBusy = cpu.busy()

	union, err := b.tally(&res, up)
	if err != nil {
		return res, err
	}
	// The failover's own loss: frames sent from 10 ms before the first cut
	// to 100 ms after the last (the paced sender gives seq -> send time).
	res.LostNearCut = lostBetween(union, up.sent,
		seqAt(up, rate, cutAt.Add(-10*time.Millisecond)), seqAt(up, rate, lastCut.Add(100*time.Millisecond)))
	if linksErr == nil {
		cut := []int{0}
		if second {
			cut = append(cut, 1)
		}
		inLinks, fullRing, ok, err := b.linkLoss(links, cut...)
		if err != nil {
			return res, err
		}
		if ok {
			attribute(&res, inLinks, fullRing)
		}
	}
	if res.Lost > 0 {
		// Where the loss was: around the cut, or spread over the run.
		runs := stats.MissingRuns(union, up.sent, 0)
		longest := stats.Run{}
		for _, r := range runs {
			if r.Len > longest.Len {
				longest = r
			}
		}
		at := time.Duration(float64(longest.Start) / up.achieved(rate) * float64(time.Second))
		res.Note = fmt.Sprintf("%d gaps; longest %d frames from %s into the run (first cut at %s)",
			len(runs), longest.Len, at.Round(time.Millisecond), firstCut.Round(time.Millisecond))
	}

	// Interruption: last frame on the old uplink -> first on the new one.
	// Which uplink a system moves to is its own choice (an OVS bond picks
	// any member), so go by what arrived: the new uplink carried the last
	// frames, the old one is the other with the latest last frame.
	slots := make([]slotStats, len(b.tp.Uplinks))
	for i := range slots {
		st, err := b.rec.stats(i)
		if err != nil {
			return res, err
		}
		slots[i] = st
	}
	newSlot, oldSlot := -1, -1
	for i, st := range slots {
		if st.Count > 0 && (newSlot < 0 || st.Last.After(slots[newSlot].Last)) {
			newSlot = i
		}
	}
	for i, st := range slots {
		if i != newSlot && st.Count > 0 && (oldSlot < 0 || st.Last.After(slots[oldSlot].Last)) {
			oldSlot = i
		}
	}
	if newSlot <= 0 {
		res.Note = "no frame reached a standby uplink after the cut"
		return res, nil
	}
	newSt := slots[newSlot]
	if oldSlot >= 0 {
		res.InterruptionNs = int64(newSt.First.Sub(slots[oldSlot].Last))
	}
	if !newSt.FirstRARP.IsZero() {
		res.CutToAnnounceNs = int64(newSt.FirstRARP.Sub(cutAt))
		if newSt.FirstRARP.After(lastCut) {
			res.CutToAnnounceNs = int64(newSt.FirstRARP.Sub(lastCut))
		}
	}
	// The system's own record of its last switch, from the cut before it.
	if times, err := b.sys.SwitchTimes(ctx); err == nil {
		for _, t := range times {
			// A switch inside the cut call (the carrier went just before
			// the call returned) counts as at the cut.
			early := time.Duration(res.CutCallNs)
			switch {
			case t.After(lastCut.Add(-early)):
				res.CutToSwitchNs = max(0, int64(t.Sub(lastCut)))
			case t.After(cutAt.Add(-early)):
				res.CutToSwitchNs = max(0, int64(t.Sub(cutAt)))
			}
		}
	}
	if s, ok := b.sys.(interface{ LastSwitchBy() string }); ok {
		res.SwitchedBy = s.LastSwitchBy()
	}
	// The receive-only guest: sequence numbers say how long it heard
	// nothing; the paced sender says when the first frame after that gap
	// was sent.
	if down != nil && b.recvSlot >= 0 && down.sent > 0 {
		words, err := b.rec.seen(b.recvSlot, down.sent)
		if err != nil {
			return res, err
		}
		start, run := stats.LongestMissingRun(words, down.sent)
		res.CutToReceiveOnlyNs = 0
		if run > 0 {
			resume := down.started.Add(time.Duration(float64(start+run) / float64(o.DownRatePPS) * float64(time.Second)))
			cut := cutAt
			if resume.After(lastCut) {
				cut = lastCut
			}
			res.CutToReceiveOnlyNs = max(0, int64(resume.Sub(cut)))
		}
	}
	return res, nil
}

// lostBetween counts the missing sequence numbers in [from, to).
func lostBetween(words []uint64, n, from, to uint64) uint64 {
	var lost uint64
	for _, r := range stats.MissingRuns(words, n, 0) {
		if lo, hi := max(r.Start, from), min(r.Start+r.Len, to, n); hi > lo {
			lost += hi - lo
		}
	}
	return lost
}

// seqAt is the sequence number a paced stream sent at t.
func seqAt(s *stream, rate int, t time.Time) uint64 {
	return uint64(max(0, t.Sub(s.started).Seconds()) * s.achieved(rate))
}

// planner is a system an operator can switch by hand.
type planner interface {
	SetActive(ctx context.Context, uplink string) error
}

// plannedTrial switches to the second uplink by hand in the middle of a
// run at rate, and back later, with traffic both ways; nothing may be lost.
func (h *harness) plannedTrial(ctx context.Context, b *bed, rate, trial int) (report.FailoverTrial, error) {
	o := h.opts
	res := report.FailoverTrial{System: b.sys.Name(), Uplink: "veth", Guests: 1, RatePPS: rate, Trial: trial,
		Planned: true, InterruptionNs: -1, CutToSwitchNs: -1, CutToAnnounceNs: -1, CutToReceiveOnlyNs: -1}
	p, ok := b.sys.(planner)
	if !ok {
		return res, fmt.Errorf("%s cannot be switched by hand", b.sys.Name())
	}
	if err := h.prepare(ctx, b, 1); err != nil {
		return res, err
	}
	length := max(o.TrialLength, time.Second)
	links, linksErr := b.tp.Counts()
	cpu := readCPU()
	down := send(ctx, b.tp, b.down, topo.Sender, "sA", downTemplate(b.tp), o.DownRatePPS, length, 0)
	up := send(ctx, b.tp, b.gen, topo.Guest, "eth0", guestTemplate(b.tp, 1, 64), rate, length, 0)
	time.Sleep(length / 3)
	switchAt := time.Now()
	if err := p.SetActive(ctx, b.tp.Uplinks[1]); err != nil {
		return res, err
	}
	time.Sleep(length / 3)
	back := "" // uplinkd: back to automatic selection, i.e. a failback
	if b.sys.Name() != "uplinkd" {
		back = b.tp.Uplinks[0]
	}
	backAt := time.Now()
	if err := p.SetActive(ctx, back); err != nil {
		return res, err
	}
	if err := up.wait(); err != nil {
		return res, err
	}
	if err := down.wait(); err != nil {
		return res, err
	}
	time.Sleep(50 * time.Millisecond)
	res.CPUBusy = cpu.busy()
	union, err := b.tally(&res, up)
	if err != nil {
		return res, err
	}
	words, err := b.rec.seen(b.recvSlot, down.sent)
	if err != nil {
		return res, err
	}
	downLost := stats.Missing(words, down.sent)
	res.Lost += downLost
	// The switches' own loss, both ways, from 10 ms before to 100 ms after
	// each; the rest of the run shows what the machine dropped anyway.
	for _, at := range []time.Time{switchAt, backAt} {
		from, to := at.Add(-10*time.Millisecond), at.Add(100*time.Millisecond)
		res.LostNearCut += lostBetween(union, up.sent, seqAt(up, rate, from), seqAt(up, rate, to))
		res.LostNearCut += lostBetween(words, down.sent, seqAt(down, o.DownRatePPS, from), seqAt(down, o.DownRatePPS, to))
	}
	if st, err := b.rec.stats(1); err == nil && st.Count == 0 {
		res.Note = "traffic never moved to the second uplink"
	} else if res.Lost > 0 {
		res.Note = fmt.Sprintf("%d lost toward the uplinks, %d toward the receive-only guest", res.Lost-downLost, downLost)
		if linksErr == nil {
			if inLinks, fullRing, ok, err := b.linkLoss(links); err == nil && ok {
				attribute(&res, inLinks, fullRing)
			}
		}
		if start, n := stats.LongestMissingRun(union, up.sent); n > 0 {
			at := up.started.Add(time.Duration(float64(start) / up.achieved(rate) * float64(time.Second)))
			res.Note += fmt.Sprintf("; longest gap %d frames at switch %+v / switch back %+v",
				n, at.Sub(switchAt).Round(time.Microsecond), at.Sub(backAt).Round(time.Microsecond))
		}
	}
	if times, err := b.sys.SwitchTimes(ctx); err == nil {
		for _, t := range times {
			if t.After(switchAt) {
				res.CutToSwitchNs = int64(t.Sub(switchAt))
				break
			}
		}
	}
	return res, nil
}

// settle restores every uplink and waits until the system uses the first
// one again (failback), so every trial starts alike.
func (h *harness) settle(ctx context.Context, b *bed) error {
	for i := range b.tp.Uplinks {
		if err := b.tp.Restore(i); err != nil {
			return err
		}
	}
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if a, err := b.sys.Active(ctx); err == nil && (a == b.tp.Uplinks[0] || a == "") && quiet(ctx, b.sys) {
			// Let a rate cap's token bucket refill too.
			time.Sleep(300 * time.Millisecond)
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("%s did not return to %s", b.sys.Name(), b.tp.Uplinks[0])
}

// quiet asks a system that can tell whether it is done announcing.
func quiet(ctx context.Context, s system) bool {
	q, ok := s.(interface {
		Quiet(context.Context) (bool, error)
	})
	if !ok {
		return true
	}
	done, err := q.Quiet(ctx)
	return err == nil && done
}

// warmUp makes the switch (and the upstream bridge) learn every guest and
// the upstream host.
func (h *harness) warmUp(ctx context.Context, b *bed, guests int) error {
	if b.down != nil {
		if err := send(ctx, b.tp, b.down, topo.Sender, "sA", downTemplate(b.tp), 10_000, time.Second, 20).wait(); err != nil {
			return err
		}
	}
	if err := hello(b.tp, topo.RecvOnly, upstreamMAC(b.tp)); err != nil {
		return fmt.Errorf("hello from the receive-only guest: %w", err)
	}
	n := uint64(max(4*guests, 256))
	if err := send(ctx, b.tp, b.gen, topo.Guest, "eth0", guestTemplate(b.tp, guests, 64), 100_000, 5*time.Second, n).wait(); err != nil {
		return err
	}
	time.Sleep(50 * time.Millisecond)
	return nil
}
