package harness

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/uplinkd/uplinkd/test/bench/report"
	"github.com/uplinkd/uplinkd/test/bench/topo"
)

// upgradeScenario restarts uplinkd under traffic the way an upgrade does
// (SIGTERM, then the new binary, Options.UpgradeBin or the same one, over
// the running data plane) and counts what the guest's stream lost.
func (h *harness) upgradeScenario(ctx context.Context) {
	b, err := h.newBed(ctx, "uplinkd", topo.Veth)
	if err != nil {
		h.notRun("uplinkd", "upgrade", err)
		return
	}
	defer b.close()
	u, ok := b.sys.(*uplinkdSystem)
	if !ok {
		h.notRun("uplinkd", "upgrade", fmt.Errorf("not the uplinkd system"))
		return
	}
	rates := []int{h.opts.RatePPS}
	if h.opts.HighRatePPS > 0 {
		rates = append(rates, h.opts.HighRatePPS)
	}
	for _, rate := range rates {
		for trial := 1; trial <= h.opts.Trials && ctx.Err() == nil; trial++ {
			t, err := h.upgradeTrial(ctx, b, u, rate, trial)
			if err != nil {
				h.notRun("uplinkd", "upgrade", fmt.Errorf("%d pps, trial %d: %w", rate, trial, err))
				return
			}
			h.res.Upgrade = append(h.res.Upgrade, t)
			h.opts.Log.Info("upgrade trial", "pps", rate, "trial", trial, "lost", t.Lost, "dups", t.Duplicates,
				"sent", t.Sent, "at_full_ring", t.LostAtFullRing, "no_daemon", time.Duration(t.NoDaemonNs))
		}
	}
}

func (h *harness) upgradeTrial(ctx context.Context, b *bed, u *uplinkdSystem, rate, trial int) (report.UpgradeTrial, error) {
	o := h.opts
	res := report.UpgradeTrial{Trial: trial, RatePPS: rate}
	if err := h.prepare(ctx, b, 1); err != nil {
		return res, err
	}
	links, linksErr := b.tp.Counts()
	cpu := readCPU()
	length := max(o.TrialLength, 3*time.Second) // the restart takes a while: loading and verifying the programs
	up := send(ctx, b.tp, b.gen, topo.Guest, "eth0", guestTemplate(b.tp, 1, 64), rate, length, 0)
	time.Sleep(time.Duration(float64(length) * (0.1 + 0.1*rand.Float64())))
	gap, err := u.Restart(ctx, o.UpgradeBin)
	if err != nil {
		return res, err
	}
	res.NoDaemonNs = int64(gap)
	if err := up.wait(); err != nil {
		return res, fmt.Errorf("guest stream: %w", err)
	}
	time.Sleep(50 * time.Millisecond)
	res.CPUBusy = cpu.busy()
	var ft report.FailoverTrial
	if _, err := b.tally(&ft, up); err != nil {
		return res, err
	}
	res.Sent, res.Lost, res.Duplicates = ft.Sent, ft.Lost, ft.Duplicates
	if linksErr == nil {
		if _, fullRing, ok, err := b.linkLoss(links); err == nil && ok {
			res.LostAtFullRing = int64(min(fullRing, res.Lost))
		}
	}
	return res, nil
}
