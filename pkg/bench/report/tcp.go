package report

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
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

// offloadTable: per system, which offloads every testbed interface had,
// naming the interfaces where one was off.
func offloadTable(x *TCPResult) textTable {
	t := textTable{
		Head: []string{"System", "Interfaces", "tx checksum", "TSO", "GSO", "GRO"},
		Num:  []bool{false, true, false, false, false, false},
	}
	if x == nil {
		return t
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
		t.Rows = append(t.Rows, []string{systemName(s), fmt.Sprint(len(states)),
			cell(func(o OffloadState) bool { return o.TxCsum }), cell(func(o OffloadState) bool { return o.TSO }),
			cell(func(o OffloadState) bool { return o.GSO }), cell(func(o OffloadState) bool { return o.GRO })})
	}
	return t
}

// tcpBulkTable: every iperf3 run, by system, direction and streams.
func tcpBulkTable(x *TCPResult) textTable {
	t := textTable{
		Head: []string{"System", "Direction", "Streams", "Gbit/s", "Retransmits", "TcpInCsumErrors at the receiver", "Error"},
		Num:  []bool{false, false, true, true, true, true, false},
	}
	if x == nil {
		return t
	}
	runs := slices.Clone(x.Bulk)
	slices.SortStableFunc(runs, func(a, b TCPBulkRun) int {
		return cmp.Or(bySystem(a.System, b.System), byKnownOrder(a.Direction, b.Direction, GuestToUplink, UplinkToGuest),
			cmp.Compare(a.Streams, b.Streams))
	})
	for _, r := range runs {
		t.Rows = append(t.Rows, []string{systemName(r.System), socketDirection(r.Direction), fmt.Sprint(r.Streams),
			fmtMpps(r.Gbps), fmtCount(float64(r.Retransmits)), fmtCount(float64(r.TCPInCsumErrors)), orDash(r.Error)})
	}
	return t
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
		t.Rows = append(t.Rows, []string{systemName(r.System), socketDirection(r.Direction), fmtMbps(r.RateMbps),
			fmtCount(float64(r.Sent)), fmtCount(float64(r.Received)), fmtCount(float64(r.Lost)),
			fmtCount(float64(r.UDPInCsumErrors)), fmtCount(float64(r.UDPRcvbufErrors)), orDash(r.Error)})
	}
	return t
}

// tcpFailoverTable: one TCP connection across a cut and a restore, per
// system.
func tcpFailoverTable(x *TCPResult) textTable {
	t := textTable{
		Head: []string{"System", "Setup", "Rate", "Connected", "Longest gap", "Gap at the cut", "Gap at the restore",
			"Retransmits", "Delivered", "Survived", "Note"},
		Num: []bool{false, false, true, false, true, true, true, true, true, false, false},
	}
	if x == nil {
		return t
	}
	runs := slices.Clone(x.Failover)
	slices.SortStableFunc(runs, func(a, b TCPFailover) int { return bySystem(a.System, b.System) })
	yes := map[bool]string{true: "yes", false: "no"}
	for _, r := range runs {
		note := r.Note
		if r.Error != "" {
			note = strings.TrimPrefix(note+"; "+r.Error, "; ")
		}
		t.Rows = append(t.Rows, []string{systemName(r.System), r.Setup, fmtMbps(r.RateMbps), yes[r.Connected],
			nsCell(r.LongestGapNs), nsCell(r.GapAtCutNs), nsCell(r.GapAtRestoreNs), fmtCount(float64(r.Retransmits)),
			fmtDelivered(r.Bytes), yes[r.Survived], orDash(note)})
	}
	return t
}

func socketDirection(d string) string {
	switch d {
	case GuestToUplink:
		return "guest → upstream host"
	case UplinkToGuest:
		return "upstream host → guest"
	}
	return d
}

// fmtDelivered is a byte count in MB, 0 as 0.
func fmtDelivered(b uint64) string {
	if b == 0 {
		return "0"
	}
	return sig3(float64(b)/1e6) + " MB"
}

func fmtMbps(mbps int) string {
	if mbps >= 1000 && mbps%1000 == 0 {
		return fmt.Sprintf("%d Gbit/s", mbps/1000)
	}
	return fmt.Sprintf("%d Mbit/s", mbps)
}

// tcpTables are the tcp scenario's tables for the HTML report.
type tcpTables struct{ Offloads, Bulk, UDP, Failover textTable }

// newTCPTables is nil when the scenario did not run.
func newTCPTables(x *TCPResult) *tcpTables {
	if x == nil {
		return nil
	}
	return &tcpTables{offloadTable(x), tcpBulkTable(x), udpTable(x), tcpFailoverTable(x)}
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
		"turned off by the kernel (a veth whose peer has an XDP program loses TSO):\n\n")
	writeMarkdownTable(b, offloadTable(r.TCP))
	b.WriteString("\nTCP bulk with iperf3; Gbit/s as received (0 when no connection could be made); checksum errors " +
		"counted in the receiving namespace's /proc/net/snmp over the run.\n\n")
	writeMarkdownTable(b, tcpBulkTable(r.TCP))
	b.WriteString("\nUDP at a fixed rate of payload, sent and counted by the harness's own sockets (iperf3's control " +
		"channel is TCP); UdpInCsumErrors: datagrams the receiving stack dropped for a bad checksum; RcvbufErrors: dropped " +
		"because the receiving socket fell behind.\n\n")
	writeMarkdownTable(b, udpTable(r.TCP))
	b.WriteString("\nOne paced TCP connection from the guest to the upstream host while the active uplink is cut and " +
		"later restored. Gaps are between reads that returned data at the receiver; retransmits are the sender's " +
		"TCP_INFO total_retrans; it survived when bytes still arrived at the end and neither end saw a reset.\n\n")
	writeMarkdownTable(b, tcpFailoverTable(r.TCP))
}
