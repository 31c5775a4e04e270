// Package harness runs the benchmark: failover trials and forwarding
// rounds for uplinkd and its peers on testbeds in network namespaces, with
// one traffic engine and one XDP receiver for every system.
package harness

import (
	"cmp"
	"fmt"
	"log/slog"
	"slices"
	"time"
)

// Options say what to measure.
type Options struct {
	Profile   string   // "quick" or "full": fills what is left zero
	Systems   []string // uplinkd, ovs, bridge, tcfwd, xdpfwd
	Scenarios []string // failover, forward, balance (uplinkd's balance mode), upgrade, tcp, idle (uplinkd at rest)
	// Failover.
	Trials       int
	RatePPS      int   // the rate every system carries (compare at this)
	HighRatePPS  int   // uplinkd alone at line-ish rate; 0 skips
	Guests       []int // guest MACs behind the switch
	Uplinks      []string
	TrialLength  time.Duration
	DownRatePPS  int // upstream -> receive-only guest
	SecondCutMax time.Duration
	// Forwarding.
	FrameSizes []int
	Rounds     int
	RoundTime  time.Duration
	// CPU per frame: every system, and the baseline (no switch), carries
	// CPURatePPS (negative: not measured) for CPURounds rounds of
	// CPURoundTime, in frames of CPUFrameSizes.
	CPURatePPS    int
	CPURounds     int
	CPURoundTime  time.Duration
	CPUFrameSizes []int
	// SocketTime is the length of each iperf3 TCP run and UDP stream of
	// the tcp scenario.
	SocketTime time.Duration
	// SocketRounds is how many times each system runs every iperf3 cell,
	// the systems taking turns round by round, so that a machine's drift
	// touches them alike; the report gives medians and ratios of runs in
	// the same round.
	SocketRounds int
	// TCPFailoverTrials is how many TCP connections, one after another,
	// each system carries across a cut and a restore of its active uplink.
	TCPFailoverTrials int
	// UpgradeBin holds the uplinkd the upgrade scenario starts over the
	// running one; "": the same binary again.
	UpgradeBin string
	// UplinkdPoll is uplinkd's carrier_poll_interval; 0: its default.
	UplinkdPoll time.Duration
	// Engine sends the traffic: "auto" (or ""), "live" or "afpacket"
	// (benchbpf.ChooseEngine).
	Engine string
	// Where uplinkd and uplinkctl are.
	BinDir string
	Log    *slog.Logger
}

// Profiles.
var profiles = map[string]Options{
	"quick": {
		Systems: []string{"uplinkd", "ovs", "bridge", "tcfwd", "xdpfwd"}, Scenarios: []string{"failover", "forward", "balance", "upgrade", "tcp", "idle"},
		Trials: 3, RatePPS: 50_000, HighRatePPS: 1_000_000, Guests: []int{1, 64, 1024},
		Uplinks: []string{"veth", "tap"}, TrialLength: 1200 * time.Millisecond, DownRatePPS: 10_000,
		SecondCutMax: time.Second, FrameSizes: []int{64, 1500}, Rounds: 5, RoundTime: 500 * time.Millisecond,
		CPURatePPS: 200_000, CPURounds: 3, CPURoundTime: 2 * time.Second, CPUFrameSizes: []int{64},
		SocketTime: 3 * time.Second, SocketRounds: 3, TCPFailoverTrials: 20,
	},
	"full": {
		Systems: []string{"uplinkd", "ovs", "bridge", "tcfwd", "xdpfwd"}, Scenarios: []string{"failover", "forward", "balance", "upgrade", "tcp", "idle"},
		Trials: 20, RatePPS: 50_000, HighRatePPS: 1_000_000, Guests: []int{1, 64, 1024},
		Uplinks: []string{"veth", "tap"}, TrialLength: 2 * time.Second, DownRatePPS: 10_000,
		SecondCutMax: time.Second, FrameSizes: []int{64, 1500}, Rounds: 5, RoundTime: 2 * time.Second,
		CPURatePPS: 200_000, CPURounds: 5, CPURoundTime: 5 * time.Second, CPUFrameSizes: []int{64, 1500},
		SocketTime: 10 * time.Second, SocketRounds: 5, TCPFailoverTrials: 50,
	},
}

// withDefaults fills zero fields from the profile.
func (o Options) withDefaults() (Options, error) {
	if o.Profile == "" {
		o.Profile = "quick"
	}
	p, ok := profiles[o.Profile]
	if !ok {
		return o, fmt.Errorf("unknown profile %q (quick, full)", o.Profile)
	}
	o.Systems, o.Scenarios = or(o.Systems, p.Systems), or(o.Scenarios, p.Scenarios)
	o.Guests, o.Uplinks, o.FrameSizes = or(o.Guests, p.Guests), or(o.Uplinks, p.Uplinks), or(o.FrameSizes, p.FrameSizes)
	o.Trials, o.Rounds = cmp.Or(o.Trials, p.Trials), cmp.Or(o.Rounds, p.Rounds)
	o.RatePPS, o.HighRatePPS, o.DownRatePPS = cmp.Or(o.RatePPS, p.RatePPS), cmp.Or(o.HighRatePPS, p.HighRatePPS), cmp.Or(o.DownRatePPS, p.DownRatePPS)
	o.TrialLength, o.SecondCutMax, o.RoundTime = cmp.Or(o.TrialLength, p.TrialLength), cmp.Or(o.SecondCutMax, p.SecondCutMax), cmp.Or(o.RoundTime, p.RoundTime)
	o.SocketTime, o.TCPFailoverTrials = cmp.Or(o.SocketTime, p.SocketTime), cmp.Or(o.TCPFailoverTrials, p.TCPFailoverTrials)
	o.SocketRounds = cmp.Or(o.SocketRounds, p.SocketRounds)
	o.CPURatePPS, o.CPURounds, o.CPURoundTime = cmp.Or(o.CPURatePPS, p.CPURatePPS), cmp.Or(o.CPURounds, p.CPURounds), cmp.Or(o.CPURoundTime, p.CPURoundTime)
	o.CPUFrameSizes = or(o.CPUFrameSizes, p.CPUFrameSizes)
	if o.TCPFailoverTrials < 0 {
		return o, fmt.Errorf("tcp failover trials: %d, want at least 1", o.TCPFailoverTrials)
	}
	o.Log = cmp.Or(o.Log, slog.Default())
	for _, s := range o.Systems {
		if !slices.Contains([]string{"uplinkd", "ovs", "bridge", "tcfwd", "xdpfwd"}, s) {
			return o, fmt.Errorf("unknown system %q (uplinkd, ovs, bridge, tcfwd, xdpfwd)", s)
		}
	}
	for _, s := range o.Scenarios {
		if s != "failover" && s != "forward" && s != "balance" && s != "upgrade" && s != "tcp" && s != "idle" {
			return o, fmt.Errorf("unknown scenario %q (failover, forward, balance, upgrade, tcp, idle)", s)
		}
	}
	for _, u := range o.Uplinks {
		if u != "veth" && u != "tap" {
			return o, fmt.Errorf("unknown uplink kind %q (veth, tap)", u)
		}
	}
	for _, f := range append(slices.Clone(o.FrameSizes), o.CPUFrameSizes...) {
		if f < 64 || f > 1518 {
			return o, fmt.Errorf("frame size %d: want 64..1518 (with the 4-byte FCS, as usual)", f)
		}
	}
	return o, nil
}

// or is cmp.Or for slices: s unless it is empty.
func or[S ~[]E, E any](s, fallback S) S {
	if len(s) == 0 {
		return fallback
	}
	return s
}

func (o Options) wants(scenario string) bool { return slices.Contains(o.Scenarios, scenario) }
func (o Options) has(system string) bool     { return slices.Contains(o.Systems, system) }
