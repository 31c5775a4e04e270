// Package report defines the benchmark harness's result file (JSON) and
// turns a result into the summary tables, docs/benchmarks.md and a
// self-contained HTML report (inline CSS and SVG, no scripts, no network).
//
// Every figure is computed from the records of one Result, so comparisons
// between uplinkd and its peers always come from the same run.
package report

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"time"
)

// FormatVersion identifies the layout of the JSON file (Result.Format). It
// changes when a field changes meaning or is removed; adding a field keeps it.
const FormatVersion = "uplinkd-bench/1"

// Names the harness should use, so tables and ratios line up. Peers are free
// to use other names; these get friendlier labels in the report.
const (
	SystemUplinkd     = "uplinkd" // the reference of every ratio
	SystemOVS         = "ovs"
	SystemLinuxBridge = "bridge"
	SystemXDPRedirect = "xdpfwd" // bare XDP devmap redirect, the upper bound
	// SystemTCRedirect is a bare tc redirect (bpf_redirect) at the hook
	// uplinkd uses: what a tc switch that redirects so costs at least.
	SystemTCRedirect = "tcfwd"
	// SystemBaseline is no switch: the host end of the sending link drops
	// every frame on arrival. What the CPU spends there is the engine's
	// and the link's share of every system's cost.
	SystemBaseline = "baseline"
	// SystemDirect is no switch in the host at all: the guest's link
	// plugs straight into the upstream bridge, one hop fewer. In the tcp
	// scenario it is the ceiling for any switch on the host.
	SystemDirect = "direct"

	UplinkVeth = "veth"
	UplinkTap  = "tap"

	GuestToUplink = "guest-to-uplink"
	UplinkToGuest = "uplink-to-guest"

	// EndpointHostPort marks socket traffic of the host's own stack
	// through a host port of uplinkd's (in the namespace where uplinkd
	// runs) in place of the sending guest's; "" is the guest. A direction
	// then reads with the host port for the guest: GuestToUplink is the
	// host sending.
	EndpointHostPort = "host-port"

	ProfileQuick = "quick"
	ProfileFull  = "full"
)

// Result is everything one harness run measured.
type Result struct {
	// Format is FormatVersion; WriteJSON fills it in.
	Format string `json:"format"`
	// Version is the version of the harness (uplinkd's build) that ran.
	Version    string          `json:"version"`
	Profile    string          `json:"profile"` // ProfileQuick or ProfileFull
	Command    string          `json:"command"` // exactly what was run, e.g. "make bench"
	Started    time.Time       `json:"started"`
	Finished   time.Time       `json:"finished"`
	Env        Env             `json:"env"`
	Failover   []FailoverTrial `json:"failover"`
	Forwarding []ForwardRound  `json:"forwarding"`
	// Balance is uplinkd's balance mode: forwarding over one uplink and
	// over two, and uplink failures split by the guests that moved.
	Balance *BalanceResult `json:"balance,omitempty"`
	// Upgrade is uplinkd restarted under traffic, as an upgrade does.
	Upgrade []UpgradeTrial `json:"upgrade,omitempty"`
	// TCP is socket traffic (TCP and UDP) from the guest's and the
	// upstream host's own stacks, with the veths' default offloads.
	TCP *TCPResult `json:"tcp,omitempty"`
	// Idle is uplinkd's own cost at rest, with no traffic, per testbed size.
	Idle []IdleRun `json:"idle,omitempty"`
	// NotRun lists every peer or scenario that could not run, with the
	// reason; nothing is silently dropped.
	NotRun []NotRun `json:"not_run"`
	// Engine is the traffic engine that sent every stream, and its own
	// ceiling (older results have none).
	Engine *Engine `json:"engine,omitempty"`
	// CPUCost is what forwarding costs the CPU at one paced rate offered
	// to every system and to the baseline (older results have none).
	CPUCost []CPURound `json:"cpu_cost,omitempty"`
}

// Env describes the machine the run measured.
type Env struct {
	Kernel      string `json:"kernel"`
	Hostname    string `json:"hostname"`
	GoVersion   string `json:"go_version"`
	CPUModel    string `json:"cpu_model"`
	CPUs        int    `json:"cpus"`
	MemoryBytes uint64 `json:"memory_bytes"`
	// Versions of the software measured: uplinkd, ovs, iproute2, ...
	Versions map[string]string `json:"versions"`
}

// FailoverTrial is one cut of an active uplink. Durations are nanoseconds; a
// negative duration means unknown or not applicable (-1 by convention) and is
// left out of every summary.
type FailoverTrial struct {
	System  string `json:"system"`   // SystemUplinkd, SystemOVS, ...
	Uplink  string `json:"uplink"`   // UplinkVeth or UplinkTap
	Guests  int    `json:"guests"`   // guest MACs behind the switch
	RatePPS int    `json:"rate_pps"` // offered load; 0 means as fast as possible
	Trial   int    `json:"trial"`    // 1-based within its scenario
	// SecondFailure: this trial cut a second uplink within 1 s of the first.
	SecondFailure bool `json:"second_failure"`
	// Planned: no cut, an operator's switch to a working uplink
	// (set-active) and back; every figure "cut" means that switch.
	Planned bool   `json:"planned,omitempty"`
	Sent    uint64 `json:"sent"`
	// Lost counts every frame of the run that never arrived; LostNearCut
	// only those sent from 10 ms before the (first) cut to 100 ms after
	// the last: the failover's own loss, apart from loss a system shows
	// all along (e.g. a user-space switch starved of CPU).
	Lost        uint64 `json:"lost"`
	LostNearCut uint64 `json:"lost_near_cut"`
	Duplicates  uint64 `json:"duplicates"`
	// Of LostNearCut, what the uplinks' links account for (from their
	// counters, where the system redirects into veths; else 0):
	// LostInLinks were accepted by a link and never arrived there (frames
	// on the wire of a link that was cut, dropped with its peer's ring);
	// LostAtFullRing were refused by a link that was not cut because its
	// peer's ring was full: an uplink's (the testbed's receiver fell
	// behind) or the sending guest's (the switch's guest port did). The
	// rest, OwnLoss, is the switch's.
	LostInLinks    int64 `json:"lost_in_links"`
	LostAtFullRing int64 `json:"lost_at_full_ring"`
	// InterruptionNs: last frame on the old uplink -> first on the new one.
	InterruptionNs int64 `json:"interruption_ns"`
	// CutToSwitchNs: from the system's own event timestamps. The cut is
	// when the carrier went (see harness: a tap's at the end of the
	// TUNSETCARRIER call, a veth's at the start of `ip link set down`).
	CutToSwitchNs int64 `json:"cut_to_switch_ns"`
	// CutCallNs is how long the longest cut call took (waiting for the
	// RTNL lock, for a tap; the close path, for a veth).
	CutCallNs int64 `json:"cut_call_ns,omitempty"`
	// SwitchedBy: what made the switch, where the system says (uplinkd:
	// the event source, e.g. "kernel/carrier-at-redirect" or "poll").
	SwitchedBy string `json:"switched_by,omitempty"`
	// CutToAnnounceNs: cut -> first announcement (RARP) on the new uplink.
	CutToAnnounceNs int64 `json:"cut_to_announce_ns"`
	// CutToReceiveOnlyNs: cut -> first frame a receive-only guest gets from
	// upstream again.
	CutToReceiveOnlyNs int64 `json:"cut_to_receive_only_ns"`
	// CPUBusy is the share of the machine busy during the trial, 0..1, so
	// trials run under contention can be told apart.
	CPUBusy float64 `json:"cpu_busy"`
	Note    string  `json:"note"`
}

// ForwardRound is one forwarding-rate measurement.
type ForwardRound struct {
	System    string  `json:"system"`
	Direction string  `json:"direction"`  // GuestToUplink or UplinkToGuest
	FrameSize int     `json:"frame_size"` // bytes with the 4-byte FCS (64, 1500): the generator sends size-4
	Round     int     `json:"round"`      // 1-based
	Mpps      float64 `json:"mpps"`
	Gbps      float64 `json:"gbps"`
	Sent      uint64  `json:"sent"`
	Received  uint64  `json:"received"`
	CPUBusy   float64 `json:"cpu_busy"`
}

// CPURound is one interval of traffic at a paced rate through a system
// (or SystemBaseline), with the machine's CPU time over the interval from
// /proc/stat: whole-machine figures, as the bench leaves the machine
// otherwise idle.
type CPURound struct {
	System    string `json:"system"`
	Direction string `json:"direction"`
	FrameSize int    `json:"frame_size"`
	Round     int    `json:"round"`
	RatePPS   int    `json:"rate_pps"` // offered
	// Seconds is the measured interval: the stream and the drain after it.
	Seconds float64 `json:"seconds"`
	Sent    uint64  `json:"sent"`
	// Delivered: frames the receiver behind the system counted; for the
	// baseline, the frames sent (each is dropped on arrival).
	Delivered uint64 `json:"delivered"`
	CPUs      int    `json:"cpus"`
	// UserHZ is the unit of Ticks: ticks per second.
	UserHZ int      `json:"user_hz"`
	Ticks  CPUTicks `json:"ticks"`
	// SenderNs is the CPU time of the harness's process (the engine's
	// sending threads; the rest of it sleeps meanwhile) and
	// KsoftirqdNs that of every ksoftirqd over the round, exact (not
	// sampled) and blind to other work on the machine. A veth hands a
	// frame to NAPI on the sending CPU, so a kernel switch's work on it
	// (and the receiving veths') runs in the softirq that ends the send
	// call, or in ksoftirqd when deferred; a user-space switch's does
	// not show here. 0: not measured (older results).
	SenderNs    uint64 `json:"sender_ns,omitempty"`
	KsoftirqdNs uint64 `json:"ksoftirqd_ns,omitempty"`
}

// CPUTicks are deltas of the aggregate "cpu" line of /proc/stat. The
// kernel samples them at its timer tick (CONFIG_TICK_CPU_ACCOUNTING), so
// they are a statistical estimate: the more ticks, the finer.
type CPUTicks struct {
	User    uint64 `json:"user"` // includes guest time
	Nice    uint64 `json:"nice"`
	System  uint64 `json:"system"`
	Idle    uint64 `json:"idle"`
	IOWait  uint64 `json:"iowait"`
	IRQ     uint64 `json:"irq"`
	SoftIRQ uint64 `json:"softirq"`
	Steal   uint64 `json:"steal"`
}

// Kernel is the time the CPUs spent in the kernel: system, hardirq and
// softirq, where a software switch does its work.
func (t CPUTicks) Kernel() uint64 { return t.System + t.IRQ + t.SoftIRQ }

// KernelNsPerFrame is the kernel time per delivered frame in nanoseconds;
// NaN when nothing was delivered or the unit is unknown.
func (c CPURound) KernelNsPerFrame() float64 { return c.perFrame(c.Ticks.Kernel()) }

// UserNsPerFrame is the user time (the engine's, and a user-space
// switch's) per delivered frame in nanoseconds.
func (c CPURound) UserNsPerFrame() float64 { return c.perFrame(c.Ticks.User + c.Ticks.Nice) }

// SenderPathNsPerFrame is SenderNs + KsoftirqdNs per delivered frame;
// NaN when not measured.
func (c CPURound) SenderPathNsPerFrame() float64 {
	if c.SenderNs == 0 || c.Delivered == 0 {
		return math.NaN()
	}
	return float64(c.SenderNs+c.KsoftirqdNs) / float64(c.Delivered)
}

func (c CPURound) perFrame(ticks uint64) float64 {
	if c.Delivered == 0 || c.UserHZ <= 0 {
		return math.NaN()
	}
	return float64(ticks) * 1e9 / float64(c.UserHZ) / float64(c.Delivered)
}

// BalanceResult is what the balance scenario measured.
type BalanceResult struct {
	Forwarding []BalanceRound `json:"forwarding"`
	Failover   []BalanceTrial `json:"failover"`
}

// BalanceRound is one flat-out round of many guests (source MACs) to the
// upstream through a balance group with Uplinks uplinks.
type BalanceRound struct {
	Uplinks   int      `json:"uplinks"`
	Sources   int      `json:"sources"` // guest MACs the frames cycle through
	FrameSize int      `json:"frame_size"`
	Round     int      `json:"round"`
	Mpps      float64  `json:"mpps"` // all uplinks together
	Sent      uint64   `json:"sent"`
	Received  uint64   `json:"received"`
	PerUplink []uint64 `json:"per_uplink"` // frames received behind each uplink
	CPUBusy   float64  `json:"cpu_busy"`
}

// BalanceTrial is one uplink cut in a balance group: the loss of the
// guests whose bucket was on the cut uplink (they move) and of the others
// (they must lose nothing).
type BalanceTrial struct {
	Trial         int     `json:"trial"`
	RatePPS       int     `json:"rate_pps"`
	Sources       int     `json:"sources"`
	MovedSources  int     `json:"moved_sources"`
	Sent          uint64  `json:"sent"`
	LostMoved     uint64  `json:"lost_moved"`
	LostStayed    uint64  `json:"lost_stayed"`
	Duplicates    uint64  `json:"duplicates"`
	CutToSwitchNs int64   `json:"cut_to_switch_ns"` // -1: unknown
	SwitchedBy    string  `json:"switched_by,omitempty"`
	CPUBusy       float64 `json:"cpu_busy"`
}

// UpgradeTrial is one restart of uplinkd (SIGTERM, then a new process
// over the running data plane) while the guest sends at RatePPS.
type UpgradeTrial struct {
	Trial          int     `json:"trial"`
	RatePPS        int     `json:"rate_pps"`
	Sent           uint64  `json:"sent"`
	Lost           uint64  `json:"lost"`
	Duplicates     uint64  `json:"duplicates"`
	LostAtFullRing int64   `json:"lost_at_full_ring"` // of Lost: refused by a full ring of the testbed
	NoDaemonNs     int64   `json:"no_daemon_ns"`      // from SIGTERM to the new daemon serving
	CPUBusy        float64 `json:"cpu_busy"`
}

// IdleRun is uplinkd at rest on one testbed: every uplink up, no traffic,
// its own process measured over a few windows.
type IdleRun struct {
	Groups     int `json:"groups"`
	Uplinks    int `json:"uplinks"`     // over all groups
	GuestPorts int `json:"guest_ports"` // over all groups
	// PollIntervalNs is the carrier_poll_interval uplinkd ran with.
	PollIntervalNs int64 `json:"poll_interval_ns"`
	// StartupNs: from starting the process, on a host with nothing of
	// uplinkd's attached, to its control socket answering with an active
	// uplink in every group.
	StartupNs int64 `json:"startup_ns"`
	// RestartNs: the same for a second process started over the data
	// plane the first left attached (0: not measured).
	RestartNs int64        `json:"restart_ns,omitempty"`
	Windows   []IdleWindow `json:"windows"`
}

// IdleWindow is one measurement window of an IdleRun.
type IdleWindow struct {
	Seconds float64 `json:"seconds"`
	// CPUPercent is the process's user+system time over the window, in
	// percent of one CPU; BusiestThreadPercent the same for its busiest
	// thread (a poll on a thread of its own shows up there).
	CPUPercent           float64 `json:"cpu_percent"`
	BusiestThreadPercent float64 `json:"busiest_thread_cpu_percent"`
	// WakeupsPerSec: context switches of all its threads per second.
	WakeupsPerSec float64 `json:"wakeups_per_sec"`
	Threads       int     `json:"threads"`
	RSSBytes      uint64  `json:"rss_bytes"` // VmRSS at the end of the window
	HWMBytes      uint64  `json:"hwm_bytes"` // VmHWM: the peak RSS so far
	// CPUBusy is the machine's busy share over the window, 0..1.
	CPUBusy float64 `json:"cpu_busy"`
}

// TCPResult is what the tcp scenario measured: traffic that sockets in
// the sending guest (G) and the upstream host (S) send through each
// system, as users' workloads do, with every veth's offloads left at
// their defaults (checksum offload, TSO/GSO, GRO), which the scenario
// records. A system that breaks this traffic shows it here as zero
// throughput, errors and checksum failures; nothing is filtered out.
type TCPResult struct {
	Offloads []OffloadState `json:"offloads"`
	// OffloadNotes, by system, say what a system was itself set to do
	// with frames sent with offloads, where it needed a setting for them
	// (Open vSwitch's userspace TSO); older results have none.
	OffloadNotes map[string]string `json:"offload_notes,omitempty"`
	Bulk         []TCPBulkRun      `json:"bulk"`
	UDP          []UDPRun          `json:"udp"`
	Failover     []TCPFailover     `json:"failover"`
}

// OffloadState is one testbed interface's offload features as ethtool
// reported them while a system ran.
type OffloadState struct {
	System    string `json:"system"`
	Namespace string `json:"namespace"` // the testbed role: G, H, U, S
	Interface string `json:"interface"`
	TxCsum    bool   `json:"tx_checksum"` // tx-checksum-ip-generic
	TSO       bool   `json:"tso"`         // tx-tcp-segmentation
	GSO       bool   `json:"gso"`         // tx-generic-segmentation
	GRO       bool   `json:"gro"`         // rx-gro
}

// TCPBulkRun is one iperf3 TCP run between the guest and the upstream
// host (Direction says who sends).
type TCPBulkRun struct {
	System    string `json:"system"`
	Direction string `json:"direction"` // GuestToUplink: the guest sends
	Streams   int    `json:"streams"`
	// Endpoint is who sends or receives on the switch's side: "" the
	// sending guest, EndpointHostPort the host's own stack.
	Endpoint string  `json:"endpoint,omitempty"`
	Round    int     `json:"round,omitempty"` // systems take turns: runs of one round are paired
	Seconds  float64 `json:"seconds"`
	Gbps     float64 `json:"gbps"` // as received; 0 when nothing arrived
	// Retransmits: iperf3's count from the sender's TCP_INFO.
	Retransmits int64 `json:"retransmits"`
	// TCPInCsumErrors: the receiving namespace's TcpInCsumErrors (from
	// /proc/net/snmp) during the run: segments dropped for a bad checksum.
	TCPInCsumErrors uint64 `json:"tcp_in_csum_errors"`
	Error           string `json:"error,omitempty"` // e.g. iperf3's "unable to connect"
}

// UDPRun is one UDP stream at a fixed rate between the guest and the
// upstream host, sent and counted by the harness's own sockets (iperf3's
// control channel is TCP: it could not measure UDP where TCP is broken).
type UDPRun struct {
	System       string `json:"system"`
	Direction    string `json:"direction"`
	RateMbps     int    `json:"rate_mbps"`     // offered, UDP payload bits
	PayloadBytes int    `json:"payload_bytes"` // per datagram
	Sent         uint64 `json:"sent"`
	Received     uint64 `json:"received"` // by the receiving socket
	Lost         uint64 `json:"lost"`     // sent - received
	// Deltas of the receiving namespace's /proc/net/snmp over the run:
	// datagrams dropped for a bad checksum, and those dropped because
	// the socket's buffer was full (the receiver fell behind, not the
	// switch).
	UDPInCsumErrors uint64 `json:"udp_in_csum_errors"`
	UDPRcvbufErrors uint64 `json:"udp_rcvbuf_errors"`
	Error           string `json:"error,omitempty"`
}

// TCPFailover is one trial: one TCP connection from the guest to the
// upstream host carried across a cut of the active uplink and its
// restoration. Gaps are between successive reads that returned data at
// the receiver; durations are nanoseconds, -1 when unknown.
type TCPFailover struct {
	System string `json:"system"`
	// Trial counts a system's trials from 1; Planned is how many it was
	// to run (fewer ran when it could not connect at all).
	Trial   int `json:"trial"`
	Planned int `json:"planned"`
	// Setup says what failed over: e.g. "3 uplinks", or the bond under
	// a Linux bridge.
	Setup string `json:"setup"`
	// Endpoint is who sends: "" the guest, EndpointHostPort the host's
	// own stack; the trials of both with the same Trial crossed the same
	// cut at the same time.
	Endpoint  string `json:"endpoint,omitempty"`
	RateMbps  int    `json:"rate_mbps"` // the sender's paced rate
	Connected bool   `json:"connected"`
	// LongestGapNs: the longest time without delivered bytes over the
	// whole connection; GapAtCutNs the longest that spans or follows the
	// cut (until the restore), GapAtRestoreNs after the restore.
	LongestGapNs   int64 `json:"longest_gap_ns"`
	GapAtCutNs     int64 `json:"gap_at_cut_ns"`
	GapAtRestoreNs int64 `json:"gap_at_restore_ns"`
	// Retransmits is TCP_INFO's total_retrans of the sending socket.
	Retransmits int64  `json:"retransmits"`
	Bytes       uint64 `json:"bytes"`        // delivered over the run
	BytesAtEnd  uint64 `json:"bytes_at_end"` // delivered in the run's last 500 ms
	// Survived: the connection carried bytes at the end, after the
	// restore, and neither end saw a reset or an error.
	Survived bool   `json:"survived"`
	Error    string `json:"error,omitempty"`
	Note     string `json:"note,omitempty"`
}

// NotRun is a peer or scenario that could not run on this machine.
type NotRun struct {
	System   string `json:"system"`
	Scenario string `json:"scenario"`
	Reason   string `json:"reason"`
}

// OwnLoss is the switch's own loss near the switch: LostNearCut less what
// the links account for.
func (t FailoverTrial) OwnLoss() uint64 {
	return t.LostNearCut - uint64(max(0, t.LostInLinks)) - uint64(max(0, t.LostAtFullRing))
}

// Check reports what would make r unwritable: a foreign format and
// non-finite numbers (JSON has no NaN; the harness should record an unknown
// CPU share as 0 with a note rather than lose the run).
func (r *Result) Check() error {
	var errs []error
	if r.Format != "" && r.Format != FormatVersion {
		errs = append(errs, fmt.Errorf("format %q is not %q", r.Format, FormatVersion))
	}
	finite := func(what string, v float64) {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			errs = append(errs, fmt.Errorf("%s is %v", what, v))
		}
	}
	for i, t := range r.Failover {
		finite(fmt.Sprintf("failover[%d] (%s %s trial %d) cpu_busy", i, t.System, t.Uplink, t.Trial), t.CPUBusy)
	}
	for i, f := range r.Forwarding {
		what := fmt.Sprintf("forwarding[%d] (%s %s %d B round %d)", i, f.System, f.Direction, f.FrameSize, f.Round)
		finite(what+" mpps", f.Mpps)
		finite(what+" gbps", f.Gbps)
		finite(what+" cpu_busy", f.CPUBusy)
	}
	for i, x := range r.Upgrade {
		finite(fmt.Sprintf("upgrade[%d] cpu_busy", i), x.CPUBusy)
	}
	for i, x := range r.CPUCost {
		finite(fmt.Sprintf("cpu_cost[%d] (%s %s %d B round %d) seconds", i, x.System, x.Direction, x.FrameSize, x.Round), x.Seconds)
	}
	for i, x := range r.Idle {
		for j, w := range x.Windows {
			what := fmt.Sprintf("idle[%d].windows[%d]", i, j)
			finite(what+" cpu_percent", w.CPUPercent)
			finite(what+" busiest_thread_cpu_percent", w.BusiestThreadPercent)
			finite(what+" wakeups_per_sec", w.WakeupsPerSec)
			finite(what+" cpu_busy", w.CPUBusy)
		}
	}
	if x := r.TCP; x != nil {
		for i, b := range x.Bulk {
			finite(fmt.Sprintf("tcp.bulk[%d] (%s %s %d streams) gbps", i, b.System, b.Direction, b.Streams), b.Gbps)
			finite(fmt.Sprintf("tcp.bulk[%d] seconds", i), b.Seconds)
		}
	}
	if b := r.Balance; b != nil {
		for i, x := range b.Forwarding {
			finite(fmt.Sprintf("balance.forwarding[%d] mpps", i), x.Mpps)
			finite(fmt.Sprintf("balance.forwarding[%d] cpu_busy", i), x.CPUBusy)
		}
		for i, x := range b.Failover {
			finite(fmt.Sprintf("balance.failover[%d] cpu_busy", i), x.CPUBusy)
		}
	}
	return errors.Join(errs...)
}

// WriteJSON writes r to path, indented, through a temporary file in the same
// directory so a reader never sees half a result. Times are written in UTC.
func WriteJSON(path string, r *Result) error {
	if err := r.Check(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	c := *r
	c.Format = FormatVersion
	c.Started, c.Finished = c.Started.UTC(), c.Finished.UTC()
	data, err := json.MarshalIndent(&c, "", "  ")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename this is a no-op
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// ReadJSON reads a result written by WriteJSON. Unknown fields are ignored
// (a newer harness may add some); a different format is an error.
func ReadJSON(path string) (*Result, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read result: %w", err)
	}
	var r Result
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("read result %s: %w", path, err)
	}
	if r.Format != FormatVersion {
		return nil, fmt.Errorf("read result %s: format %q, want %q", path, r.Format, FormatVersion)
	}
	return &r, nil
}
