package report

import (
	"testing"
)

// The balance and upgrade sections: medians per uplink count with the
// ratio to one uplink, and per rate the loss of moved and other guests,
// and of restarts.
func TestBalanceAndUpgradeSections(t *testing.T) {
	r := &Result{
		Balance: &BalanceResult{
			Forwarding: []BalanceRound{
				{Uplinks: 1, Sources: 64, FrameSize: 64, Round: 1, Mpps: 4, PerUplink: []uint64{100}},
				{Uplinks: 2, Sources: 64, FrameSize: 64, Round: 1, Mpps: 6, PerUplink: []uint64{50, 50}},
			},
			Failover: []BalanceTrial{
				{Trial: 1, RatePPS: 50_000, Sources: 64, MovedSources: 20, LostMoved: 3, CutToSwitchNs: -1},
				{Trial: 2, RatePPS: 50_000, Sources: 64, MovedSources: 22, LostMoved: 1, LostStayed: 0, CutToSwitchNs: 1_000_000},
			},
		},
		Upgrade: []UpgradeTrial{
			{Trial: 1, RatePPS: 1_000_000, NoDaemonNs: 300_000_000},
			{Trial: 1, RatePPS: 50_000, Lost: 2, NoDaemonNs: 250_000_000},
		},
	}
	md := markdownOf(t, r)
	wantAll(t, "markdown", md,
		"| 2 | 64 B | 64 | 1 | 6.00 | 1.5× | up0 50%, up1 50% |",
		"| 50 kpps | 64 | 2 | 20 | 1 / 3 / 3 | 0 / 0 / 0 | 0 | 1 ms / 1 ms (1 of 2) |",
		"| 50 kpps | 1 | 2 / 2 / 2 | 0 | 0 | 250 ms / 250 ms |",
		"| 1 Mpps | 1 | 0 / 0 / 0 | 0 | 0 | 300 ms / 300 ms |",
	)
	if t.Failed() {
		t.Log(md)
	}
}
