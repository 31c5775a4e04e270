package report

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/uplinkd/uplinkd/test/bench/stats"
)

// bySystem orders the tcp scenario's rows: uplinkd first, then the peers
// by name.
func bySystem(a, b string) int {
	if (a == SystemUplinkd) != (b == SystemUplinkd) {
		if a == SystemUplinkd {
			return -1
		}
		return 1
	}
	return cmp.Compare(a, b)
}

// socketSystem labels a row of socket traffic: the system, and for the
// host's own traffic through uplinkd's host port, that port.
func socketSystem(system, endpoint string) string {
	if endpoint == EndpointHostPort {
		return systemName(system) + " host port"
	}
	return systemName(system)
}

// byEndpoint orders a system's rows: the guest's, then the host port's.
func byEndpoint(a, b string) int { return byKnownOrder(a, b, "", EndpointHostPort) }

// offloadTable: per system, which offloads every testbed interface had,
// naming the interfaces where one was off, and, when some system has
// one, its offload note.
func offloadTable(x *TCPResult) textTable {
	t := textTable{
		Head: []string{"System", "Interfaces", "tx checksum", "TSO", "GSO", "GRO"},
		Num:  []bool{false, true, false, false, false, false},
	}
	if x == nil {
		return t
	}
	notes := len(x.OffloadNotes) > 0
	if notes {
		t.Head, t.Num = append(t.Head, "Note"), append(t.Num, false)
	}
	by := map[string][]OffloadState{}
	for _, o := range x.Offloads {
		by[o.System] = append(by[o.System], o)
	}
	systems := make([]string, 0, len(by))
	for s := range by {
		systems = append(systems, s)
	}
	slices.SortFunc(systems, bySystem)
	for _, s := range systems {
		states := by[s]
		cell := func(on func(OffloadState) bool) string {
			var off []string
			for _, o := range states {
				if !on(o) {
					off = append(off, o.Namespace+"/"+o.Interface)
				}
			}
			if len(off) == 0 {
				return "on"
			}
			return "off on " + strings.Join(off, ", ")
		}
		row := []string{systemName(s), fmt.Sprint(len(states)),
			cell(func(o OffloadState) bool { return o.TxCsum }), cell(func(o OffloadState) bool { return o.TSO }),
			cell(func(o OffloadState) bool { return o.GSO }), cell(func(o OffloadState) bool { return o.GRO })}
		if notes {
			row = append(row, orDash(x.OffloadNotes[s]))
		}
		t.Rows = append(t.Rows, row)
	}
	return t
}

// offloadNoteCaption ends the offload table's caption: what its Note
// column is, when it has one.
func offloadNoteCaption(x *TCPResult) string {
	if x == nil || len(x.OffloadNotes) == 0 {
		return ""
	}
	return "; the Note column is a system's own setting for frames sent with offloads"
}

// tcpBulkTable: every iperf3 run, by system, direction, streams and round.
func tcpBulkTable(x *TCPResult) textTable {
	t := textTable{
		Head: []string{"System", "Direction", "Streams", "Round", "Gbit/s", "Retransmits", "TcpInCsumErrors at the receiver", "Error"},
		Num:  []bool{false, false, true, true, true, true, true, false},
	}
	if x == nil {
		return t
	}
	runs := slices.Clone(x.Bulk)
	slices.SortStableFunc(runs, func(a, b TCPBulkRun) int {
		return cmp.Or(bySystem(a.System, b.System), byEndpoint(a.Endpoint, b.Endpoint),
			byKnownOrder(a.Direction, b.Direction, GuestToUplink, UplinkToGuest),
			cmp.Compare(a.Streams, b.Streams), cmp.Compare(a.Round, b.Round))
	})
	for _, r := range runs {
		t.Rows = append(t.Rows, []string{socketSystem(r.System, r.Endpoint), socketDirection(r.Direction, r.Endpoint), fmt.Sprint(r.Streams), roundCell(r.Round),
			fmtMpps(r.Gbps), fmtCount(float64(r.Retransmits)), fmtCount(float64(r.TCPInCsumErrors)), orDash(r.Error)})
	}
	return t
}

// tcpBulkKey names one iperf3 cell of one system: its guest's, or the
// host's own through its host port.
type tcpBulkKey struct {
	System, Endpoint, Direction string
	Streams                     int
}

// pairedRatio is the median over rounds of a's Gbit/s divided by ref's in
// the same round (the systems take turns, so one round shares the
// machine's state); NaN without a pair.
func pairedRatio(a, ref []TCPBulkRun) float64 {
	byRound := map[int]float64{}
	for _, r := range ref {
		if r.Gbps > 0 && r.Error == "" {
			byRound[r.Round] = r.Gbps
		}
	}
	var ratios []float64
	for _, r := range a {
		if d, ok := byRound[r.Round]; ok && r.Error == "" {
			ratios = append(ratios, r.Gbps/d)
		}
	}
	return stats.Summarize(ratios).P50
}

// tcpBulkSummaryTable: per system and cell, the median over rounds and
// the paired ratios to the Linux bridge's and no switch's guest; a host
// port's row also to the guest of its own system.
func tcpBulkSummaryTable(x *TCPResult) textTable {
	t := textTable{
		Head: []string{"System", "Direction", "Streams", "Rounds", "Gbit/s (median)", "min – max", "Retransmits (median)",
			"TcpInCsumErrors", "÷ Linux bridge", "÷ no switch", "Host port ÷ its guest"},
		Num: []bool{false, false, true, true, true, true, true, true, true, true, true},
	}
	if x == nil {
		return t
	}
	by := map[tcpBulkKey][]TCPBulkRun{}
	var keys []tcpBulkKey
	for _, r := range x.Bulk {
		k := tcpBulkKey{r.System, r.Endpoint, r.Direction, r.Streams}
		if _, ok := by[k]; !ok {
			keys = append(keys, k)
		}
		by[k] = append(by[k], r)
	}
	slices.SortStableFunc(keys, func(a, b tcpBulkKey) int {
		return cmp.Or(bySystem(a.System, b.System), byEndpoint(a.Endpoint, b.Endpoint),
			byKnownOrder(a.Direction, b.Direction, GuestToUplink, UplinkToGuest), cmp.Compare(a.Streams, b.Streams))
	})
	// ratio is k's to the guest of the system ref.
	ratio := func(k tcpBulkKey, ref string) string {
		if k.System == ref && k.Endpoint == "" {
			return "–"
		}
		v := pairedRatio(by[k], by[tcpBulkKey{ref, "", k.Direction, k.Streams}])
		if math.IsNaN(v) {
			return "–"
		}
		return fmt.Sprintf("%.2f×", v)
	}
	for _, k := range keys {
		runs := by[k]
		var gbps, retrans []float64
		var csum uint64
		for _, r := range runs {
			gbps = append(gbps, r.Gbps)
			retrans = append(retrans, float64(r.Retransmits))
			csum += r.TCPInCsumErrors
		}
		g := stats.Summarize(gbps)
		// A host port's traffic is the host's own: only its guest beside
		// it, through the same switch, is a like comparison.
		ofBridge, ofDirect, ofGuest := ratio(k, SystemLinuxBridge), ratio(k, SystemDirect), dash
		if k.Endpoint == EndpointHostPort {
			ofBridge, ofDirect, ofGuest = dash, dash, ratio(k, k.System)
		}
		t.Rows = append(t.Rows, []string{socketSystem(k.System, k.Endpoint), socketDirection(k.Direction, k.Endpoint), fmt.Sprint(k.Streams),
			fmt.Sprint(len(runs)), fmtMpps(g.P50), fmtMpps(g.Min) + " – " + fmtMpps(g.Max),
			fmtCount(stats.Summarize(retrans).P50), fmtCount(float64(csum)), ofBridge, ofDirect, ofGuest})
	}
	return t
}

// roundCell is a run's round; results from before rounds have none.
func roundCell(round int) string {
	if round == 0 {
		return "–"
	}
	return fmt.Sprint(round)
}

// udpTable: every fixed-rate UDP run.
func udpTable(x *TCPResult) textTable {
	t := textTable{
		Head: []string{"System", "Direction", "Rate", "Sent", "Received", "Lost", "UdpInCsumErrors at the receiver", "RcvbufErrors", "Error"},
		Num:  []bool{false, false, true, true, true, true, true, true, false},
	}
	if x == nil {
		return t
	}
	runs := slices.Clone(x.UDP)
	slices.SortStableFunc(runs, func(a, b UDPRun) int {
		return cmp.Or(bySystem(a.System, b.System), byKnownOrder(a.Direction, b.Direction, GuestToUplink, UplinkToGuest),
			cmp.Compare(a.RateMbps, b.RateMbps))
	})
	for _, r := range runs {
		t.Rows = append(t.Rows, []string{systemName(r.System), socketDirection(r.Direction, ""), fmtMbps(r.RateMbps),
			fmtCount(float64(r.Sent)), fmtCount(float64(r.Received)), fmtCount(float64(r.Lost)),
			fmtCount(float64(r.UDPInCsumErrors)), fmtCount(float64(r.UDPRcvbufErrors)), orDash(r.Error)})
	}
	return t
}

// tcpFailoverRow summarizes one system's TCP failover trials. Gaps are
// nanoseconds over the trials where they are known (a connection that
// never was has none); retransmits over the connected trials.
type tcpFailoverRow struct {
	System, Endpoint, Setup string
	RateMbps                int
	// Trials ran out of Planned; Survived of them carried the connection
	// through.
	Trials, Planned, Survived          int
	LongestGap, GapAtCut, GapAtRestore stats.Summary
	Retransmits                        stats.Summary
	Note                               string // the trials' notes, then their errors naming the trials
}

// tcpFailoverRows groups the trials by system, uplinkd first, and within
// a system by who sent: its guest, then the host port.
func tcpFailoverRows(trials []TCPFailover) []tcpFailoverRow {
	type key struct{ system, endpoint string }
	by := map[key][]TCPFailover{}
	var keys []key
	for _, t := range trials {
		k := key{t.System, t.Endpoint}
		if _, ok := by[k]; !ok {
			keys = append(keys, k)
		}
		by[k] = append(by[k], t)
	}
	slices.SortFunc(keys, func(a, b key) int {
		return cmp.Or(bySystem(a.system, b.system), byEndpoint(a.endpoint, b.endpoint))
	})
	rows := make([]tcpFailoverRow, 0, len(keys))
	for _, k := range keys {
		ts := by[k]
		slices.SortStableFunc(ts, func(a, b TCPFailover) int { return cmp.Compare(a.Trial, b.Trial) })
		row := tcpFailoverRow{System: k.system, Endpoint: k.endpoint, Setup: ts[0].Setup, RateMbps: ts[0].RateMbps, Trials: len(ts)}
		var longest, atCut, atRestore []int64
		var retrans []float64
		var notes []string
		var errs []string // in the order first seen
		errTrials := map[string][]string{}
		for _, t := range ts {
			row.Planned = max(row.Planned, t.Planned)
			if t.Survived {
				row.Survived++
			}
			longest, atCut, atRestore = append(longest, t.LongestGapNs), append(atCut, t.GapAtCutNs), append(atRestore, t.GapAtRestoreNs)
			if t.Connected {
				retrans = append(retrans, float64(t.Retransmits))
			}
			if t.Note != "" && !slices.Contains(notes, t.Note) {
				notes = append(notes, t.Note)
			}
			if t.Error != "" {
				if _, ok := errTrials[t.Error]; !ok {
					errs = append(errs, t.Error)
				}
				errTrials[t.Error] = append(errTrials[t.Error], fmt.Sprint(t.Trial))
			}
		}
		row.Planned = max(row.Planned, row.Trials)
		row.LongestGap, row.GapAtCut, row.GapAtRestore = stats.Summarize(durations(longest)), stats.Summarize(durations(atCut)), stats.Summarize(durations(atRestore))
		row.Retransmits = stats.Summarize(retrans)
		for _, e := range errs {
			n := errTrials[e]
			which := "trial "
			if len(n) > 1 {
				which = "trials "
			}
			notes = append(notes, which+strings.Join(n, ", ")+": "+e)
		}
		row.Note = strings.Join(notes, "; ")
		rows = append(rows, row)
	}
	return rows
}

// tcpFailoverTable: per system, its TCP connections across a cut and a
// restore of the active uplink.
func tcpFailoverTable(x *TCPResult) textTable {
	t := textTable{
		Head: []string{"System", "Setup", "Rate", "Trials", "Survived", "Longest gap p50 / p99 / max", "Gap at the cut p50 / p99",
			"Gap at the restore p50 / p99", "Retransmits p50 / max", "Note"},
		Num: []bool{false, false, true, true, true, true, true, true, true, false},
	}
	if x == nil {
		return t
	}
	for _, r := range tcpFailoverRows(x.Failover) {
		trials := fmt.Sprint(r.Trials)
		if r.Planned > r.Trials {
			trials = fmt.Sprintf("%d of %d", r.Trials, r.Planned)
		}
		retrans := dash
		if r.Retransmits.N > 0 {
			retrans = fmtCount(r.Retransmits.P50) + " / " + fmtCount(r.Retransmits.Max) + knownOf(r.Retransmits.N, r.Trials)
		}
		t.Rows = append(t.Rows, []string{socketSystem(r.System, r.Endpoint), r.Setup, fmtMbps(r.RateMbps), trials,
			fmt.Sprintf("%d of %d", r.Survived, r.Trials), triple(r.LongestGap, r.Trials, fmtNs), pair(r.GapAtCut, r.Trials, fmtNs),
			pair(r.GapAtRestore, r.Trials, fmtNs), retrans, orDash(r.Note)})
	}
	return t
}

// socketDirection says who sends: the guest, or the host through its
// host port, and the upstream host.
func socketDirection(d, endpoint string) string {
	near := "guest"
	if endpoint == EndpointHostPort {
		near = "host"
	}
	switch d {
	case GuestToUplink:
		return near + " → upstream host"
	case UplinkToGuest:
		return "upstream host → " + near
	}
	return d
}

func fmtMbps(mbps int) string {
	if mbps >= 1000 && mbps%1000 == 0 {
		return fmt.Sprintf("%d Gbit/s", mbps/1000)
	}
	return fmt.Sprintf("%d Mbit/s", mbps)
}

// The host port's rows, in the markdown and the HTML report alike.
const (
	hostPortBulkNote = "\"uplinkd host port\" is the host's own stack (the namespace uplinkd runs in) through a host " +
		"port of uplinkd's, to and from the same upstream host, in the same rounds, right after the guest's run of the " +
		"same cell; \"host port ÷ its guest\" pairs it with that run. The other systems have no host port."
	hostPortFailoverNote = "\"uplinkd host port\": in each trial of uplinkd's where both connected, a second connection, " +
		"from the host's own stack through its host port to the upstream host, crossed the same cut at the same time as " +
		"the guest's; the other systems' connections crossed theirs alone."
)

func bulkHasHostPort(x *TCPResult) bool {
	return slices.ContainsFunc(x.Bulk, func(r TCPBulkRun) bool { return r.Endpoint == EndpointHostPort })
}

func failoverHasHostPort(x *TCPResult) bool {
	return slices.ContainsFunc(x.Failover, func(r TCPFailover) bool { return r.Endpoint == EndpointHostPort })
}

// hostPortNote is " "+note where the table has host port rows, else "".
func hostPortNote(has bool, note string) string {
	if !has {
		return ""
	}
	return " " + note
}

// tcpTables are the tcp scenario's tables for the HTML report, and the
// captions' sentences on the host port where it has rows.
type tcpTables struct {
	Offloads, BulkSummary, Bulk, UDP, Failover textTable
	HostPortBulk, HostPortFailover             string
	OffloadNote                                string // offloadNoteCaption
}

// newTCPTables is nil when the scenario did not run.
func newTCPTables(x *TCPResult) *tcpTables {
	if x == nil {
		return nil
	}
	return &tcpTables{offloadTable(x), tcpBulkSummaryTable(x), tcpBulkTable(x), udpTable(x), tcpFailoverTable(x),
		hostPortNote(bulkHasHostPort(x), hostPortBulkNote), hostPortNote(failoverHasHostPort(x), hostPortFailoverNote),
		offloadNoteCaption(x)}
}

// writeTCPMarkdown is the tcp scenario's section of the markdown report.
func writeTCPMarkdown(b *strings.Builder, r *Result) {
	if r.TCP == nil {
		return
	}
	b.WriteString("\n## Socket traffic: TCP and UDP\n\n")
	b.WriteString("Traffic from the stacks of the sending guest and the upstream host (their own sockets, not the frame " +
		"generator), through each system. The harness leaves every veth's offloads at their defaults (checksum offload, " +
		"TSO/GSO; GRO is on, as the testbed needs it); ethtool's view while the system ran, where an offload shown off was " +
		"turned off by the kernel (a veth whose peer has an XDP program loses TSO)" + offloadNoteCaption(r.TCP) + ":\n\n")
	writeMarkdownTable(b, offloadTable(r.TCP))
	b.WriteString("\nTCP bulk with iperf3; Gbit/s as received (0 when no connection could be made); checksum errors " +
		"counted in the receiving namespace's /proc/net/snmp over the run. The systems take turns, round by round, each " +
		"on a fresh testbed; a ratio is the median over rounds of a system's rate divided by the other's in the same " +
		"round. \"No switch\" plugs the guest's link straight into the upstream bridge, one hop fewer than through " +
		"any switch on the host: the ceiling for any of them." + hostPortNote(bulkHasHostPort(r.TCP), hostPortBulkNote) + "\n\n")
	writeMarkdownTable(b, tcpBulkSummaryTable(r.TCP))
	b.WriteString("\nEvery run:\n\n")
	writeMarkdownTable(b, tcpBulkTable(r.TCP))
	b.WriteString("\nUDP at a fixed rate of payload, sent and counted by the harness's own sockets (iperf3's control " +
		"channel is TCP); UdpInCsumErrors: datagrams the receiving stack dropped for a bad checksum; RcvbufErrors: dropped " +
		"because the receiving socket fell behind.\n\n")
	writeMarkdownTable(b, udpTable(r.TCP))
	b.WriteString("\nTrials of one paced TCP connection each, a fresh one per trial, from the guest to the upstream host " +
		"while the active uplink is cut and later restored (the system back on its first uplink before each trial); " +
		"p50 / p99 / max over a system's trials (nearest rank). Gaps are between reads that returned data at the receiver; " +
		"retransmits are the sender's TCP_INFO total_retrans; a connection survived when bytes still arrived at the end " +
		"and neither end saw a reset. A system that cannot connect at all stops after its first trial." +
		hostPortNote(failoverHasHostPort(r.TCP), hostPortFailoverNote) + "\n\n")
	writeMarkdownTable(b, tcpFailoverTable(r.TCP))
}
