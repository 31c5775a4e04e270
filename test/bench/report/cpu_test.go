package report

import (
	"math"
	"strings"
	"testing"
)

// cpuResult: at UserHZ 100 a tick is 10 ms, so with 100,000 frames
// delivered every kernel tick is 100 ns per frame.
func cpuResult() *Result {
	round := func(sys, dir string, i int, system, soft, irq, user uint64, delivered uint64) CPURound {
		return CPURound{System: sys, Direction: dir, FrameSize: 64, Round: i, RatePPS: 200_000, Seconds: 2,
			Sent: 100_000, Delivered: delivered, CPUs: 2, UserHZ: 100,
			Ticks: CPUTicks{User: user, System: system, SoftIRQ: soft, IRQ: irq, Idle: 300}}
	}
	return &Result{CPUCost: []CPURound{
		// Listed out of order: the table sorts (uplinkd, peers, baseline).
		round(SystemBaseline, GuestToUplink, 1, 6, 4, 0, 5, 100_000), // 1000 ns
		round(SystemBaseline, GuestToUplink, 2, 7, 5, 0, 5, 100_000), // 1200 ns
		round(SystemBaseline, GuestToUplink, 3, 6, 4, 1, 5, 100_000), // 1100 ns
		round(SystemLinuxBridge, GuestToUplink, 1, 10, 10, 0, 5, 100_000),
		round(SystemLinuxBridge, GuestToUplink, 2, 9, 10, 0, 5, 100_000),
		round(SystemLinuxBridge, GuestToUplink, 3, 11, 10, 0, 5, 100_000), // median 2000 ns
		round(SystemUplinkd, GuestToUplink, 1, 8, 7, 0, 6, 100_000),
		round(SystemUplinkd, GuestToUplink, 2, 7, 7, 0, 4, 100_000),
		round(SystemUplinkd, GuestToUplink, 3, 8, 8, 0, 5, 100_000),     // median 1500 ns
		round(SystemXDPRedirect, GuestToUplink, 1, 5, 5, 0, 5, 100_000), // 1000 ns: below the baseline
		// uplink -> guest: no baseline, the bridge short of the rate.
		round(SystemUplinkd, UplinkToGuest, 1, 10, 10, 0, 5, 100_000),
		round(SystemLinuxBridge, UplinkToGuest, 1, 9, 9, 0, 5, 90_000), // 1800 ticks*ns / 90k = 2000 ns
	}}
}

func TestCPUCostRows(t *testing.T) {
	rows := cpuCostRows(cpuResult())
	type want struct {
		sys, dir               string
		rounds                 int
		kernel, user, switched float64
		vsBridge               float64
		delivered              float64
	}
	nan := math.NaN()
	wants := []want{
		{SystemUplinkd, GuestToUplink, 3, 1500, 500, 400, 400.0 / 900, 1},
		{SystemLinuxBridge, GuestToUplink, 3, 2000, 500, 900, 1, 1},
		{SystemXDPRedirect, GuestToUplink, 1, 1000, 500, -100, nan, 1},
		{SystemBaseline, GuestToUplink, 3, 1100, 500, nan, nan, 1},
		{SystemUplinkd, UplinkToGuest, 1, 2000, 500, nan, nan, 1},
		{SystemLinuxBridge, UplinkToGuest, 1, 2000, 5e7 / 9e4, nan, nan, 0.9},
	}
	if len(rows) != len(wants) {
		t.Fatalf("%d rows, want %d: %+v", len(rows), len(wants), rows)
	}
	same := func(a, b float64) bool { return math.Abs(a-b) < 1e-6 || math.IsNaN(a) && math.IsNaN(b) }
	for i, w := range wants {
		r := rows[i]
		if r.System != w.sys || r.Direction != w.dir || r.RatePPS != 200_000 || r.FrameSize != 64 {
			t.Errorf("row %d is %+v, want %s %s", i, r.CPUCostKey, w.sys, w.dir)
			continue
		}
		if r.Rounds != w.rounds || !same(r.Kernel.P50, w.kernel) || !same(r.User.P50, w.user) || !same(r.Switching, w.switched) ||
			!same(r.VsBridge, w.vsBridge) || !same(r.Delivered, w.delivered) {
			t.Errorf("row %d (%s %s): rounds %d kernel %v user %v switching %v ÷bridge %v delivered %v; want %d %v %v %v %v %v",
				i, w.sys, w.dir, r.Rounds, r.Kernel.P50, r.User.P50, r.Switching, r.VsBridge, r.Delivered,
				w.rounds, w.kernel, w.user, w.switched, w.vsBridge, w.delivered)
		}
	}
	if rows[0].KernelTicks != 15 || rows[0].Kernel.Min != 1400 || rows[0].Kernel.Max != 1600 {
		t.Errorf("uplinkd: ticks %v, kernel %+v; want 15 ticks, 1400..1600 ns", rows[0].KernelTicks, rows[0].Kernel)
	}
}

func TestCPUPerFrame(t *testing.T) {
	c := CPURound{Delivered: 200_000, UserHZ: 100, Ticks: CPUTicks{User: 3, Nice: 1, System: 2, IRQ: 1, SoftIRQ: 3, Idle: 99}}
	if got := c.KernelNsPerFrame(); got != 300 {
		t.Errorf("kernel per frame %v ns, want (2+1+3) ticks × 10 ms / 200k = 300", got)
	}
	if got := c.UserNsPerFrame(); got != 200 {
		t.Errorf("user per frame %v ns, want (3+1) ticks × 10 ms / 200k = 200", got)
	}
	for _, c := range []CPURound{{UserHZ: 100, Ticks: CPUTicks{System: 5}}, {Delivered: 10, Ticks: CPUTicks{System: 5}}} {
		if got := c.KernelNsPerFrame(); !math.IsNaN(got) {
			t.Errorf("%+v: kernel per frame %v, want NaN (nothing delivered or no unit)", c, got)
		}
	}
}

func TestCPUCostSection(t *testing.T) {
	md := markdownOf(t, cpuResult())
	wantAll(t, "markdown", md,
		"## CPU per frame at 200 kpps offered",
		"| uplinkd | guest → uplink | 64 B | 3 | 100% | 1.5 (1.4 – 1.6) | 0.5 | 0.4 | 0.44× | 15 |",
		"| Linux bridge | guest → uplink | 64 B | 3 | 100% | 2 (1.9 – 2.1) | 0.5 | 0.9 | 1× | 20 |",
		"| XDP redirect (bare) | guest → uplink | 64 B | 1 | 100% | 1 (1 – 1) | 0.5 | −0.1 | – | 10 |",
		"| baseline (no switch) | guest → uplink | 64 B | 3 | dropped | 1.1 (1 – 1.2) | 0.5 | – | – | 11 |",
		"| Linux bridge | uplink → guest | 64 B | 1 | 90% * | 2 (2 – 2) |",
		"*: the system delivered less than the offered rate",
		"uplinkd spends 0.44× the kernel time Linux bridge spends switching a frame (beyond the baseline; median 0.4 vs 0.9 µs; guest → uplink, 64 B frames, 200 kpps)",
	)
	if strings.Contains(md, "XDP redirect (bare) spends") || strings.Contains(md, "spends -") {
		t.Error("a cost below the baseline must not be compared as a ratio")
	}
	if t.Failed() {
		t.Log(md)
	}

	wantAll(t, "HTML", htmlOf(t, cpuResult()), "<h2>CPU per frame at 200 kpps offered</h2>", `<td class="num">0.44×</td>`,
		"kernel CPU per frame switched, vs Linux bridge")
}

// No CPU rounds, no section; a NaN interval cannot be written.
func TestCPUCostAbsentAndCheck(t *testing.T) {
	if strings.Contains(markdownOf(t, &Result{}), "CPU per frame") {
		t.Error("a CPU section without CPU rounds")
	}
	r := cpuResult()
	r.CPUCost[4].Seconds = math.NaN()
	if err := r.Check(); err == nil || !strings.Contains(err.Error(), "cpu_cost[4]") {
		t.Errorf("Check = %v, want the NaN seconds of cpu_cost[4]", err)
	}
}

// The exact sender-path figures get their own switching cost and ratio;
// rounds without them (older results) leave the columns empty.
func TestCPUCostSenderPath(t *testing.T) {
	r := cpuResult()
	perFrame := map[string]uint64{SystemBaseline: 800, SystemUplinkd: 1000, SystemLinuxBridge: 1400}
	for i, c := range r.CPUCost {
		if ns, ok := perFrame[c.System]; ok && c.Direction == GuestToUplink {
			r.CPUCost[i].SenderNs = ns*c.Delivered - 100*c.Delivered
			r.CPUCost[i].KsoftirqdNs = 100 * c.Delivered
		}
	}
	rows := cpuCostRows(r)
	u, br := rows[0], rows[1]
	if u.System != SystemUplinkd || br.System != SystemLinuxBridge {
		t.Fatalf("rows out of order: %+v", rows)
	}
	if u.SenderPath.P50 != 1000 || u.PathSwitching != 200 || br.PathSwitching != 600 || math.Abs(u.PathVsBridge-1.0/3) > 1e-9 {
		t.Errorf("uplinkd path %v switching %v ÷bridge %v, bridge switching %v; want 1000, 200, 0.33, 600",
			u.SenderPath.P50, u.PathSwitching, u.PathVsBridge, br.PathSwitching)
	}
	if x := rows[2]; x.SenderPath.N != 0 || !math.IsNaN(x.PathSwitching) {
		t.Errorf("xdpfwd without sender figures: %+v", x)
	}
	if md, want := markdownOf(t, r), "| 0.44× | 15 | 1 | 0.2 | 0.33× |"; !strings.Contains(md, want) {
		t.Errorf("markdown lacks %q:\n%s", want, md)
	}
}
