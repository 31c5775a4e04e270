package report

import (
	"math"
	"strings"
	"testing"
)

func idleResult() *Result {
	const mib = 1 << 20
	return &Result{Idle: []IdleRun{
		// Listed large first: the table sorts by size.
		{Groups: 16, Uplinks: 64, GuestPorts: 192, PollIntervalNs: 0, StartupNs: 2_300_000_000, RestartNs: 520_000_000, Windows: []IdleWindow{
			{Seconds: 10, CPUPercent: 12.345, BusiestThreadPercent: 0.05, WakeupsPerSec: 40_000, Threads: 12,
				RSSBytes: 100 * mib, CPUBusy: 0.95},
		}},
		{Groups: 1, Uplinks: 2, GuestPorts: 2, PollIntervalNs: 500_000, StartupNs: 150_000_000, Windows: []IdleWindow{
			{Seconds: 10, CPUPercent: 4.7, BusiestThreadPercent: 4.1, WakeupsPerSec: 2010.4, Threads: 8, RSSBytes: 20 * mib, HWMBytes: 24 * mib},
			{Seconds: 10, CPUPercent: 5.1, BusiestThreadPercent: 4.3, WakeupsPerSec: 2003, Threads: 9, RSSBytes: 22 * mib, HWMBytes: 25 * mib},
			{Seconds: 10, CPUPercent: 4.9, BusiestThreadPercent: 4.2, WakeupsPerSec: 2050, Threads: 9, RSSBytes: 21 * mib, HWMBytes: 25 * mib},
		}},
	}}
}

// The idle section: medians over the windows, the largest peak RSS and
// thread count, sorted by size, a disabled poll said as such, a restart
// not measured as a dash.
func TestIdleSection(t *testing.T) {
	md := markdownOf(t, idleResult())
	small := "| 1 | 2 | 2 | 500 µs | 3 | 4.9% / 5.1% | 4.2% | 2,010 | 9 | 21 MiB | 25 MiB | 150 ms | – |"
	large := "| 16 | 64 | 192 | off | 1 | 12.3% / 12.3% | 0.05% | 40,000 | 12 | 100 MiB | – | 2.3 s | 520 ms |"
	wantAll(t, "markdown", md, "## At rest (uplinkd)", "Restart to ready is the same", small, large)
	if i, j := strings.Index(md, small), strings.Index(md, large); i < 0 || j < 0 || i > j {
		t.Errorf("the 1-group row should come before the 16-group row")
	}
	if t.Failed() {
		t.Log(md)
	}

	wantAll(t, "HTML", htmlOf(t, idleResult()), "<h2>At rest (uplinkd)</h2>", "Restart to ready is the same",
		`<td class="num">4.9% / 5.1%</td>`, `<tr class="noisy"><td class="num">16</td>`)
}

// No idle runs, no section.
func TestIdleSectionAbsent(t *testing.T) {
	if strings.Contains(markdownOf(t, &Result{}), "At rest") {
		t.Error("an idle section without idle runs")
	}
}

func TestIdleCheck(t *testing.T) {
	r := idleResult()
	r.Idle[1].Windows[2].CPUPercent = math.NaN()
	if err := r.Check(); err == nil || !strings.Contains(err.Error(), "idle[1].windows[2] cpu_percent") {
		t.Errorf("Check = %v, want the NaN CPU share of idle[1].windows[2]", err)
	}
}
