package report

import (
	"strings"
	"testing"
)

func TestEngineMarks(t *testing.T) {
	r := &Result{
		Engine: &Engine{Name: "afpacket", Reason: "auto: no live frames", Ceiling: []EngineCeiling{
			{FrameSize: 64, Rounds: 3, Mpps: 1.0}, {FrameSize: 1500, Rounds: 3, Mpps: 0.6}}},
		Forwarding: []ForwardRound{
			{System: SystemXDPRedirect, Direction: GuestToUplink, FrameSize: 64, Round: 1, Mpps: 0.95},
			{System: SystemUplinkd, Direction: GuestToUplink, FrameSize: 64, Round: 1, Mpps: 0.5},
			{System: SystemUplinkd, Direction: GuestToUplink, FrameSize: 1500, Round: 1, Mpps: 0.55},
		},
		Failover: []FailoverTrial{
			{System: SystemUplinkd, Uplink: UplinkVeth, Guests: 1, RatePPS: 1_000_000, Trial: 1},
			{System: SystemUplinkd, Uplink: UplinkVeth, Guests: 1, RatePPS: 50_000, Trial: 1},
		},
	}
	wantAll(t, "markdown", markdownOf(t, r),
		"| 0.95 †", "| 0.55 †", "| 1 Mpps †", // at >= 90% of the ceiling
		"| 0.50 |", "| 50 kpps |", // far below it
		"Traffic engine: afpacket (auto: no live frames)", "1.00 Mpps at 64 B, 0.60 Mpps at 1500 B",
		"†: at 90% or more of the engine's ceiling",
		"The bare XDP redirect (xdpfwd) cannot reach 2 Mpps with 64-byte frames here (measured: 0.95 Mpps) because the afpacket engine's ceiling is lower: 1.00 Mpps.",
	)
	wantAll(t, "HTML", htmlOf(t, r), "0.95 †", "cannot reach 2 Mpps")

	// A fast engine: no 2 Mpps sentence, no marks far below its ceiling.
	r.Engine.Ceiling[0].Mpps = 7
	if out := markdownOf(t, r); strings.Contains(out, "cannot reach 2 Mpps") || strings.Contains(out, "0.95 †") {
		t.Errorf("fast engine: unexpected mark or note in\n%s", out)
	}
	// No engine recorded (an older result): no notes, no marks.
	r.Engine = nil
	if md := markdownOf(t, r); strings.Contains(md, "†") || strings.Contains(md, "Traffic engine") {
		t.Error("result without an engine got engine marks")
	}
}
