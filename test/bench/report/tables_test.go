package report

import (
	"math"
	"strings"
	"testing"
)

// handResult has numbers small enough to summarize by hand.
func handResult() *Result {
	tr := func(sys string, rate int, second bool, lost uint64, intr, sw int64, busy float64) FailoverTrial {
		return FailoverTrial{System: sys, Uplink: UplinkVeth, Guests: 1, RatePPS: rate, SecondFailure: second,
			Sent: 100_000, Lost: lost, LostNearCut: lost, InterruptionNs: intr, CutToSwitchNs: sw, CutToAnnounceNs: -1,
			CutToReceiveOnlyNs: -1, CPUBusy: busy}
	}
	fw := func(sys string, mpps ...float64) []ForwardRound {
		var out []ForwardRound
		for i, m := range mpps {
			out = append(out, ForwardRound{System: sys, Direction: GuestToUplink, FrameSize: 64, Round: i + 1, Mpps: m})
		}
		return out
	}
	r := &Result{Failover: []FailoverTrial{
		// Listed peer first and out of order: the tables sort.
		tr(SystemOVS, 50_000, false, 100, 2_000_000, -1, 0.5),
		tr(SystemOVS, 50_000, false, 120, 3_000_000, -1, 0.5),
		tr(SystemOVS, 50_000, false, 110, 4_000_000, -1, 0.95),
		tr(SystemUplinkd, 50_000, false, 2, 10_000, 6_000, 0.2),
		tr(SystemUplinkd, 50_000, false, 4, 30_000, 7_000, 0.4),
		tr(SystemUplinkd, 50_000, false, 3, -1, 5_000, 0.3),
		tr(SystemUplinkd, 1_000_000, false, 40, 40_000, 5_000, 0.9),
		tr(SystemUplinkd, 50_000, true, 9, 90_000, 8_000, 0.3), // no peer ran this: no comparison
	}}
	r.Forwarding = append(r.Forwarding, fw(SystemLinuxBridge, 1, 2, 1.5, 2, 2.5)...)
	r.Forwarding = append(r.Forwarding, fw(SystemUplinkd, 9, 10, 8, 11, 10)...)
	r.Forwarding = append(r.Forwarding, fw(SystemXDPRedirect, 0, 0)...) // a peer that forwarded nothing
	return r
}

func TestTablesFailover(t *testing.T) {
	ts := Tables(handResult())
	type want struct {
		key                      FailoverKey
		trials                   int
		lostP50, lostP99, lostMx float64
		intrN                    int
		intrP50, intrMax         float64
		swN                      int
		swP50                    float64
		lost                     uint64
		noisy                    int
	}
	wants := []want{
		{FailoverKey{SystemUplinkd, UplinkVeth, 1, 50_000, false, false}, 3, 3, 4, 4, 2, 10_000, 30_000, 3, 6_000, 9, 0},
		{FailoverKey{SystemUplinkd, UplinkVeth, 1, 50_000, true, false}, 1, 9, 9, 9, 1, 90_000, 90_000, 1, 8_000, 9, 0},
		{FailoverKey{SystemUplinkd, UplinkVeth, 1, 1_000_000, false, false}, 1, 40, 40, 40, 1, 40_000, 40_000, 1, 5_000, 40, 0},
		{FailoverKey{SystemOVS, UplinkVeth, 1, 50_000, false, false}, 3, 110, 120, 120, 3, 3_000_000, 4_000_000, 0, math.NaN(), 330, 1},
	}
	// wants is in table order: uplinkd first; within a system by uplink,
	// then rate, then second failure.
	if len(ts.Failover) != len(wants) {
		t.Fatalf("%d failover rows, want %d: %+v", len(ts.Failover), len(wants), ts.Failover)
	}
	for i, w := range wants {
		got := ts.Failover[i]
		if got.FailoverKey != w.key {
			t.Errorf("row %d is %+v, want %+v", i, got.FailoverKey, w.key)
			continue
		}
		if got.Trials != w.trials || got.LostFrames.P50 != w.lostP50 || got.LostFrames.P99 != w.lostP99 ||
			got.LostFrames.Max != w.lostMx || got.Lost != w.lost || got.NoisyTrials != w.noisy {
			t.Errorf("row %v: trials %d lost %+v total %d noisy %d, want %d, p50 %v p99 %v max %v total %d noisy %d",
				w.key, got.Trials, got.LostFrames, got.Lost, got.NoisyTrials, w.trials, w.lostP50, w.lostP99, w.lostMx, w.lost, w.noisy)
		}
		if got.Interruption.N != w.intrN || got.Interruption.P50 != w.intrP50 || got.Interruption.Max != w.intrMax {
			t.Errorf("row %v: interruption %+v, want N %d p50 %v max %v", w.key, got.Interruption, w.intrN, w.intrP50, w.intrMax)
		}
		if got.CutToSwitch.N != w.swN || !(got.CutToSwitch.P50 == w.swP50 || math.IsNaN(w.swP50) && math.IsNaN(got.CutToSwitch.P50)) {
			t.Errorf("row %v: cut to switch %+v, want N %d p50 %v", w.key, got.CutToSwitch, w.swN, w.swP50)
		}
		if got.CutToAnnounce.N != 0 {
			t.Errorf("row %v: unknown announce times were summarized: %+v", w.key, got.CutToAnnounce)
		}
	}
}

func TestTablesForwardingAndComparisons(t *testing.T) {
	ts := Tables(handResult())
	if len(ts.Forwarding) != 3 {
		t.Fatalf("%d forwarding rows, want 3", len(ts.Forwarding))
	}
	// uplinkd first, then peers by name.
	for i, w := range []struct {
		sys    string
		median float64
		rounds int
	}{{SystemUplinkd, 10, 5}, {SystemLinuxBridge, 2, 5}, {SystemXDPRedirect, 0, 2}} {
		got := ts.Forwarding[i]
		if got.System != w.sys || got.Mpps.P50 != w.median || got.Rounds != w.rounds {
			t.Errorf("forwarding row %d: %s median %v rounds %d, want %s %v %d", i, got.System, got.Mpps.P50, got.Rounds,
				w.sys, w.median, w.rounds)
		}
	}

	want := []struct {
		metric, peer string
		u, p, ratio  float64
		text         string
	}{
		{MetricLost, SystemOVS, 3, 110, 3.0 / 110,
			"uplinkd loses 0.027× the frames Open vSwitch loses (median 3 vs 110 per failover; veth, 1 guest, 50 kpps)"},
		{MetricInterruption, SystemOVS, 10_000, 3_000_000, 10_000.0 / 3_000_000,
			"uplinkd interrupts traffic 0.0033× as long as Open vSwitch (median 10 µs vs 3 ms; veth, 1 guest, 50 kpps)"},
		{MetricMpps, SystemLinuxBridge, 10, 2, 5,
			"uplinkd forwards 5× the rate of Linux bridge (median 10.0 vs 2.00 Mpps; guest → uplink, 64 B frames)"},
		{MetricMpps, SystemXDPRedirect, 10, 0, math.NaN(),
			"uplinkd forwards 10.0 Mpps, XDP redirect (bare) 0.00 Mpps (median; guest → uplink, 64 B frames)"},
	}
	if len(ts.Comparisons) != len(want) {
		t.Fatalf("%d comparisons, want %d: %+v", len(ts.Comparisons), len(want), ts.Comparisons)
	}
	for i, w := range want {
		c := ts.Comparisons[i]
		ratioOK := c.Ratio == w.ratio || (math.IsNaN(c.Ratio) && math.IsNaN(w.ratio))
		if c.Metric != w.metric || c.Peer != w.peer || c.Uplinkd != w.u || c.PeerValue != w.p || !ratioOK {
			t.Errorf("comparison %d = %+v, want %s vs %s: %v / %v = %v", i, c, w.metric, w.peer, w.u, w.p, w.ratio)
		}
		if c.Text != w.text {
			t.Errorf("comparison %d text\n got %q\nwant %q", i, c.Text, w.text)
		}
	}
}

func TestLossComparisonWithZeros(t *testing.T) {
	tests := []struct {
		u, p float64
		want string
	}{
		{0, 150, "uplinkd loses no frames where Open vSwitch loses 150"},
		{0, 0, "neither uplinkd nor Open vSwitch loses a frame"},
		{3, 0, "uplinkd loses 3 frames where Open vSwitch loses none"},
		{1500, 150, "uplinkd loses 10× the frames Open vSwitch loses (median 1,500 vs 150"},
	}
	for _, tt := range tests {
		c := newComparison(MetricLost, SystemOVS, "veth", tt.u, tt.p)
		if !strings.HasPrefix(c.Text, tt.want) {
			t.Errorf("lost %v vs %v: %q, want it to start with %q", tt.u, tt.p, c.Text, tt.want)
		}
	}
}

func TestFormatting(t *testing.T) {
	tests := []struct {
		name string
		got  string
		want string
	}{
		{"ns", fmtNs(850), "850 ns"},
		{"µs", fmtNs(37_612), "37.6 µs"},
		{"µs 3 digits", fmtNs(207_000), "207 µs"},
		{"ms", fmtNs(2_430_000), "2.43 ms"},
		{"ms round", fmtNs(3_000_000), "3 ms"},
		{"s", fmtNs(1.5e9), "1.5 s"},
		{"zero", fmtNs(0), "0"},
		{"NaN duration", fmtNs(math.NaN()), "–"},
		{"count", fmtCount(1234567), "1,234,567"},
		{"small count", fmtCount(999), "999"},
		{"negative count", fmtCount(-1000), "-1,000"},
		{"NaN count", fmtCount(math.NaN()), "–"},
		{"ratio tiny", fmtRatio(0.0083), "0.0083×"},
		{"ratio small", fmtRatio(0.81), "0.81×"},
		{"ratio", fmtRatio(6.14), "6.1×"},
		{"ratio big", fmtRatio(29.4), "29×"},
		{"ratio zero", fmtRatio(0), "0×"},
		{"ratio NaN", fmtRatio(math.NaN()), "–"},
		{"rate kpps", fmtRate(50_000), "50 kpps"},
		{"rate Mpps", fmtRate(1_000_000), "1 Mpps"},
		{"rate 1.25 Mpps", fmtRate(1_250_000), "1.25 Mpps"},
		{"rate pps", fmtRate(500), "500 pps"},
		{"rate max", fmtRate(0), "max rate"},
		{"Mpps", fmtMpps(9.104), "9.10"},
		{"Mpps big", fmtMpps(11.34), "11.3"},
		{"percent", fmtPercent(0.973), "97%"},
		{"GiB", fmtBytes(4 << 30), "4 GiB"},
		{"MiB", fmtBytes(512 << 20), "512 MiB"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, tt.got, tt.want)
		}
	}
}

func TestMarkdownEscapesCells(t *testing.T) {
	if got := mdCell("a | b\nc <d>"); got != `a \| b c &lt;d>` {
		t.Errorf("mdCell = %q", got)
	}
}

// TestTablesSplitLoss: the loss near the cut splits into what the links
// account for and the switch's own; a trial whose links say more than
// was lost near the cut never yields a negative own loss.
func TestTablesSplitLoss(t *testing.T) {
	tr := func(near uint64, inLinks, fullRing int64) FailoverTrial {
		return FailoverTrial{System: SystemUplinkd, Uplink: UplinkVeth, Guests: 1, RatePPS: 1_000_000, Sent: 1000,
			Lost: near, LostNearCut: near, LostInLinks: inLinks, LostAtFullRing: fullRing,
			InterruptionNs: -1, CutToSwitchNs: -1, CutToAnnounceNs: -1, CutToReceiveOnlyNs: -1}
	}
	r := &Result{Failover: []FailoverTrial{tr(0, 0, 0), tr(48, 48, 0), tr(40, 32, 0), tr(30, 0, 30), tr(5, -1, -1)}}
	for _, x := range r.Failover {
		if x.OwnLoss() > x.LostNearCut {
			t.Errorf("%+v: own loss %d exceeds the loss near the cut", x, x.OwnLoss())
		}
	}
	row := Tables(r).Failover[0]
	// own: 0, 0, 8, 0, 5; links: 0, 48, 32, 30, 0 (unknown counts as none).
	if row.OwnLoss.Max != 8 || row.OwnLoss.P50 != 0 || row.LinkLoss.Max != 48 || row.LinkLoss.P50 != 30 {
		t.Errorf("own %+v, links %+v", row.OwnLoss, row.LinkLoss)
	}
	if !strings.Contains(markdownOf(t, r), "the switch's own") {
		t.Error("the markdown table does not show the switch's own loss")
	}
}
