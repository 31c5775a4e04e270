package report

import (
	"bytes"
	"strings"
	"testing"
)

// tcpHand is a tcp scenario result small enough to check by hand: a
// system that breaks socket traffic next to one that carries it.
func tcpHand() *Result {
	on := func(sys, ns, ifname string) OffloadState {
		return OffloadState{System: sys, Namespace: ns, Interface: ifname, TxCsum: true, TSO: true, GSO: true, GRO: true}
	}
	noGRO := on(SystemLinuxBridge, "U", "p0")
	noGRO.GRO = false
	return &Result{TCP: &TCPResult{
		Offloads: []OffloadState{on(SystemLinuxBridge, "G", "eth0"), noGRO, on(SystemUplinkd, "G", "eth0"), on(SystemUplinkd, "H", "vnet0")},
		Bulk: []TCPBulkRun{
			// Listed out of order: the table sorts.
			{System: SystemLinuxBridge, Direction: GuestToUplink, Streams: 4, Seconds: 3, Gbps: 14.2, Retransmits: 3},
			{System: SystemLinuxBridge, Direction: GuestToUplink, Streams: 1, Seconds: 3, Gbps: 12.5},
			{System: SystemUplinkd, Direction: UplinkToGuest, Streams: 1, TCPInCsumErrors: 6,
				Error: "iperf3: unable to connect to server - server may have stopped running or use a different port, firewall issue, etc.: Connection timed out"},
		},
		UDP: []UDPRun{
			{System: SystemUplinkd, Direction: GuestToUplink, RateMbps: 1000, PayloadBytes: 1400, Sent: 267_857, Lost: 267_857, UDPInCsumErrors: 267_857},
			{System: SystemUplinkd, Direction: GuestToUplink, RateMbps: 100, PayloadBytes: 1400, Sent: 26_785, Lost: 26_785, UDPInCsumErrors: 26_785},
			{System: SystemLinuxBridge, Direction: UplinkToGuest, RateMbps: 100, PayloadBytes: 1400, Sent: 26_785, Received: 26_780, Lost: 5, UDPRcvbufErrors: 5},
		},
		Failover: []TCPFailover{
			{System: SystemLinuxBridge, Setup: "over bond0", RateMbps: 100, Connected: true, LongestGapNs: 212_000_000,
				GapAtCutNs: 212_000_000, GapAtRestoreNs: 3_000_000, Retransmits: 14, Bytes: 68_750_000, BytesAtEnd: 6_250_000, Survived: true},
			{System: SystemUplinkd, Setup: "3 uplinks", RateMbps: 100, LongestGapNs: -1, GapAtCutNs: -1, GapAtRestoreNs: -1,
				Error: "connect: dial tcp4 198.18.0.2:5401: i/o timeout"},
		},
	}}
}

func TestTCPTables(t *testing.T) {
	var b strings.Builder
	if err := WriteMarkdown(&b, tcpHand()); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	for _, want := range []string{
		"## Socket traffic: TCP and UDP",
		// Offloads: one row per system, uplinkd first; an interface with
		// an offload off is named.
		"| uplinkd | 2 | on | on | on | on |\n| Linux bridge | 2 | on | on | on | off on U/p0 |",
		// Bulk: by system, direction, streams; a broken path is 0 with
		// its error and the receiver's checksum errors.
		"| uplinkd | upstream host → guest | 1 | 0.00 | 0 | 6 | iperf3: unable to connect",
		"| Linux bridge | guest → upstream host | 1 | 12.5 | 0 | 0 | – |\n| Linux bridge | guest → upstream host | 4 | 14.2 | 3 | 0 | – |",
		// UDP: by rate within a system.
		"| uplinkd | guest → upstream host | 100 Mbit/s | 26,785 | 0 | 26,785 | 26,785 | 0 | – |\n| uplinkd | guest → upstream host | 1 Gbit/s | 267,857 |",
		"| Linux bridge | upstream host → guest | 100 Mbit/s | 26,785 | 26,780 | 5 | 0 | 5 | – |",
		// Failover: unknown gaps are dashes, a connection that never was
		// says why.
		"| uplinkd | 3 uplinks | 100 Mbit/s | no | – | – | – | 0 | 0 | no | connect: dial tcp4 198.18.0.2:5401: i/o timeout |",
		"| Linux bridge | over bond0 | 100 Mbit/s | yes | 212 ms | 212 ms | 3 ms | 14 | 68.8 MB | yes | – |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q", want)
		}
	}
	if t.Failed() {
		t.Log(md)
	}

	// Without the scenario there is no section.
	b.Reset()
	if err := WriteMarkdown(&b, &Result{}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "Socket traffic") {
		t.Error("a result without the tcp scenario has its section")
	}
}

func TestTCPTablesInHTML(t *testing.T) {
	var b bytes.Buffer
	if err := WriteHTML(&b, tcpHand()); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	for _, want := range []string{
		"<h2>Socket traffic: TCP and UDP</h2>",
		`<td class="">upstream host → guest</td><td class="num">1</td><td class="num">0.00</td>`,
		`<td class="num">267,857</td>`,
		`<td class="num">212 ms</td>`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("HTML lacks %q", want)
		}
	}
	// Still well-formed, as the report's other tests require; four tables.
	if counts, _ := xmlCheck(t, page); counts["table"] < 4 {
		t.Errorf("%d tables in the page, want at least the scenario's 4", counts["table"])
	}
}

func TestTCPResultCheck(t *testing.T) {
	r := tcpHand()
	if err := r.Check(); err != nil {
		t.Fatal(err)
	}
	r.TCP.Bulk[0].Gbps = -1 / zero()
	if err := r.Check(); err == nil || !strings.Contains(err.Error(), "tcp.bulk[0]") {
		t.Errorf("an infinite Gbit/s passed the check: %v", err)
	}
}

func zero() float64 { return 0 }
