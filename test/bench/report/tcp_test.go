package report

import (
	"slices"
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
			{System: SystemLinuxBridge, Trial: 1, Planned: 2, Setup: "over bond0", RateMbps: 100, Connected: true, LongestGapNs: 212_000_000,
				GapAtCutNs: 212_000_000, GapAtRestoreNs: 3_000_000, Retransmits: 14, Bytes: 68_750_000, BytesAtEnd: 6_250_000, Survived: true},
			{System: SystemLinuxBridge, Trial: 2, Planned: 2, Setup: "over bond0", RateMbps: 100, Connected: true, LongestGapNs: 15_000_000,
				GapAtCutNs: 15_000_000, GapAtRestoreNs: 1_000_000, Retransmits: 2, Bytes: 68_750_000, BytesAtEnd: 6_250_000, Survived: true},
			{System: SystemUplinkd, Trial: 1, Planned: 20, Setup: "3 uplinks", RateMbps: 100, LongestGapNs: -1, GapAtCutNs: -1, GapAtRestoreNs: -1,
				Note: "stopped after trial 1 of 20: no connection", Error: "connect: dial tcp4 198.18.0.2:5401: i/o timeout"},
		},
	}}
}

func TestTCPTables(t *testing.T) {
	md := markdownOf(t, tcpHand())
	wantAll(t, "markdown", md,
		"## Socket traffic: TCP and UDP",
		// Offloads: one row per system, uplinkd first; an interface with
		// an offload off is named.
		"| uplinkd | 2 | on | on | on | on |\n| Linux bridge | 2 | on | on | on | off on U/p0 |",
		// Bulk: by system, direction, streams; a broken path is 0 with
		// its error and the receiver's checksum errors.
		"| uplinkd | upstream host → guest | 1 | – | 0.00 | 0 | 6 | iperf3: unable to connect",
		"| Linux bridge | guest → upstream host | 1 | – | 12.5 | 0 | 0 | – |\n| Linux bridge | guest → upstream host | 4 | – | 14.2 | 3 | 0 | – |",
		// UDP: by rate within a system.
		"| uplinkd | guest → upstream host | 100 Mbit/s | 26,785 | 0 | 26,785 | 26,785 | 0 | – |\n| uplinkd | guest → upstream host | 1 Gbit/s | 267,857 |",
		"| Linux bridge | upstream host → guest | 100 Mbit/s | 26,785 | 26,780 | 5 | 0 | 5 | – |",
		// Failover: one row per system; unknown gaps are dashes, a
		// system that never connected says why and that it stopped.
		"| uplinkd | 3 uplinks | 100 Mbit/s | 1 of 20 | 0 of 1 | – | – | – | – | stopped after trial 1 of 20: no connection; trial 1: connect: dial tcp4 198.18.0.2:5401: i/o timeout |",
		"| Linux bridge | over bond0 | 100 Mbit/s | 2 | 2 of 2 | 15 ms / 212 ms / 212 ms | 15 ms / 212 ms | 1 ms / 3 ms | 2 / 14 | – |",
	)
	if t.Failed() {
		t.Log(md)
	}

	// Without the scenario there is no section.
	if strings.Contains(markdownOf(t, &Result{}), "Socket traffic") {
		t.Error("a result without the tcp scenario has its section")
	}
}

func TestTCPTablesInHTML(t *testing.T) {
	page := htmlOf(t, tcpHand())
	wantAll(t, "HTML", page,
		"<h2>Socket traffic: TCP and UDP</h2>",
		`<td class="">upstream host → guest</td><td class="num">1</td><td class="num">–</td><td class="num">0.00</td>`,
		`<td class="num">267,857</td>`,
		`<td class="num">15 ms / 212 ms / 212 ms</td>`,
	)
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

// TestTCPFailoverRows checks the aggregation by hand: nearest-rank
// percentiles over the trials where a figure is known, survivors counted
// over the trials run, errors grouped with the trials that saw them.
func TestTCPFailoverRows(t *testing.T) {
	var trials []TCPFailover
	// uplinkd: 20 trials, longest gaps 1..20 ms, trial 7 stalled for
	// good (its gap runs to the end), trial 20 lost its connection.
	for i := 1; i <= 20; i++ {
		ms := int64(i) * 1_000_000
		f := TCPFailover{System: SystemUplinkd, Trial: i, Planned: 20, Setup: "3 uplinks", RateMbps: 100, Connected: true,
			LongestGapNs: ms, GapAtCutNs: ms, GapAtRestoreNs: ms / 2, Retransmits: int64(i % 5), Survived: true}
		switch i {
		case 7:
			f.LongestGapNs, f.GapAtCutNs, f.GapAtRestoreNs, f.Survived = 2_000_000_000, 2_000_000_000, 1_000_000_000, false
			f.Error = "no bytes arrived in the last 500 ms"
		case 20:
			f.LongestGapNs, f.GapAtCutNs, f.GapAtRestoreNs, f.Connected, f.Survived = -1, -1, -1, false, false
			f.Error = "connect: refused"
		case 12:
			f.Survived, f.Error = false, "no bytes arrived in the last 500 ms"
		}
		trials = append(trials, f)
	}
	// Open vSwitch listed first, and a system that stopped after one.
	trials = append([]TCPFailover{{System: "ovs", Trial: 1, Planned: 20, Setup: "3 uplinks", LongestGapNs: -1, GapAtCutNs: -1,
		GapAtRestoreNs: -1, Error: "connect: i/o timeout", Note: "stopped after trial 1 of 20: no connection"}}, trials...)

	rows := tcpFailoverRows(trials)
	if len(rows) != 2 || rows[0].System != SystemUplinkd || rows[1].System != "ovs" {
		t.Fatalf("rows %+v, want uplinkd then ovs", rows)
	}
	u := rows[0]
	if u.Trials != 20 || u.Planned != 20 || u.Survived != 17 {
		t.Errorf("uplinkd: %d of %d trials, %d survived; want 20 of 20, 17", u.Trials, u.Planned, u.Survived)
	}
	// 19 known longest gaps: 1..6, 8..19 ms and 2 s. Nearest rank: p50
	// is the 10th smallest (11 ms), p99 the 19th (2 s).
	if u.LongestGap.N != 19 || u.LongestGap.P50 != 11e6 || u.LongestGap.P99 != 2e9 || u.LongestGap.Max != 2e9 {
		t.Errorf("longest gap %+v", u.LongestGap)
	}
	if u.GapAtRestore.N != 19 || u.GapAtRestore.P50 != 5.5e6 || u.GapAtRestore.Max != 1e9 {
		t.Errorf("gap at the restore %+v", u.GapAtRestore)
	}
	// Retransmits over the 19 connected trials: i%5 for i in 1..19.
	if u.Retransmits.N != 19 || u.Retransmits.P50 != 2 || u.Retransmits.Max != 4 {
		t.Errorf("retransmits %+v", u.Retransmits)
	}
	if want := "trials 7, 12: no bytes arrived in the last 500 ms; trial 20: connect: refused"; u.Note != want {
		t.Errorf("note %q, want %q", u.Note, want)
	}
	o := rows[1]
	if o.Trials != 1 || o.Planned != 20 || o.Survived != 0 || o.LongestGap.N != 0 || o.Retransmits.N != 0 {
		t.Errorf("ovs: %+v", o)
	}

	tab := tcpFailoverTable(&TCPResult{Failover: trials})
	if len(tab.Rows) != 2 {
		t.Fatalf("%d rows, want one per system", len(tab.Rows))
	}
	want := []string{"uplinkd", "3 uplinks", "100 Mbit/s", "20", "17 of 20", "11 ms / 2 s / 2 s (19 of 20)",
		"11 ms / 2 s (19 of 20)", "5.5 ms / 1 s (19 of 20)", "2 / 4 (19 of 20)", u.Note}
	if !slices.Equal(tab.Rows[0], want) {
		t.Errorf("uplinkd row\n%q\nwant\n%q", tab.Rows[0], want)
	}
	if got := tab.Rows[1][3:9]; !slices.Equal(got, []string{"1 of 20", "0 of 1", dash, dash, dash, dash}) {
		t.Errorf("ovs row %q", tab.Rows[1])
	}
}

func TestTCPBulkSummaryPairsRounds(t *testing.T) {
	run := func(sys string, round int, gbps float64) TCPBulkRun {
		return TCPBulkRun{System: sys, Direction: GuestToUplink, Streams: 1, Round: round, Gbps: gbps}
	}
	x := &TCPResult{Bulk: []TCPBulkRun{
		// A machine that slows down round by round: paired ratios stay
		// 1.2 for uplinkd, while its median over the bridge's is 1.5.
		run(SystemUplinkd, 1, 12), run(SystemLinuxBridge, 1, 10), run(SystemDirect, 1, 24),
		run(SystemUplinkd, 2, 6), run(SystemLinuxBridge, 2, 5), run(SystemDirect, 2, 12),
		run(SystemUplinkd, 3, 24), run(SystemLinuxBridge, 3, 20), run(SystemDirect, 3, 48),
		{System: SystemOVS, Direction: GuestToUplink, Streams: 1, Round: 1, Error: "unable to connect"},
	}}
	tab := tcpBulkSummaryTable(x)
	rows := map[string][]string{}
	for _, r := range tab.Rows {
		rows[r[0]] = r
	}
	u := rows[systemName(SystemUplinkd)]
	if u == nil || u[3] != "3" || u[8] != "1.20×" || u[9] != "0.50×" {
		t.Errorf("uplinkd row %q: want 3 rounds, 1.20× the bridge, 0.50× no switch", u)
	}
	if b := rows[systemName(SystemLinuxBridge)]; b == nil || b[8] != "–" || b[9] != "0.42×" {
		t.Errorf("bridge row %q: want – against itself, 0.42× no switch", b)
	}
	if o := rows[systemName(SystemOVS)]; o == nil || o[8] != "–" {
		t.Errorf("ovs row %q: a failed run has no ratio", o)
	}
	if tab.Rows[0][0] != systemName(SystemUplinkd) {
		t.Errorf("first row %q, want uplinkd first", tab.Rows[0])
	}
}

// TestTCPHostPortRows: the host's own traffic through uplinkd's host port
// gets rows of its own right after uplinkd's guest's, labelled as the
// host's, with its ratio to that guest paired by round; the captions
// explain them only where they are.
func TestTCPHostPortRows(t *testing.T) {
	run := func(sys, endpoint, dir string, round int, gbps float64) TCPBulkRun {
		return TCPBulkRun{System: sys, Endpoint: endpoint, Direction: dir, Streams: 1, Round: round, Gbps: gbps}
	}
	trial := func(sys, endpoint string, i int, gapMs int64, retrans int64, survived bool) TCPFailover {
		f := TCPFailover{System: sys, Endpoint: endpoint, Trial: i, Planned: 3, Setup: "3 uplinks", RateMbps: 100, Connected: true,
			LongestGapNs: gapMs * 1e6, GapAtCutNs: gapMs * 1e6, GapAtRestoreNs: 1e6, Retransmits: retrans, Survived: survived}
		if !survived {
			f.Error = "no bytes arrived in the last 500 ms"
		}
		return f
	}
	r := &Result{TCP: &TCPResult{
		Bulk: []TCPBulkRun{
			// The host port listed first: rows sort. Round 2 is slower
			// for all; paired, the host port is 0.92× its guest each time.
			run(SystemUplinkd, EndpointHostPort, GuestToUplink, 1, 9.2), run(SystemUplinkd, EndpointHostPort, GuestToUplink, 2, 4.6),
			run(SystemUplinkd, EndpointHostPort, UplinkToGuest, 1, 12),
			run(SystemUplinkd, "", GuestToUplink, 1, 10), run(SystemUplinkd, "", GuestToUplink, 2, 5),
			run(SystemUplinkd, "", UplinkToGuest, 1, 10),
			run(SystemLinuxBridge, "", GuestToUplink, 1, 8), run(SystemLinuxBridge, "", GuestToUplink, 2, 4),
		},
		Failover: []TCPFailover{
			trial(SystemUplinkd, EndpointHostPort, 1, 6, 1, true), trial(SystemUplinkd, EndpointHostPort, 2, 4, 0, true),
			trial(SystemUplinkd, EndpointHostPort, 3, 2000, 9, false),
			trial(SystemUplinkd, "", 1, 5, 0, true), trial(SystemUplinkd, "", 2, 3, 0, true), trial(SystemUplinkd, "", 3, 4, 2, true),
			trial(SystemLinuxBridge, "", 1, 1500, 57, true),
		},
	}}

	sum := tcpBulkSummaryTable(r.TCP)
	if n := len(sum.Head); n != 11 || sum.Head[10] != "Host port ÷ its guest" {
		t.Fatalf("summary head %q", sum.Head)
	}
	wantSum := [][]string{
		{"uplinkd", "guest → upstream host", "1", "2", "5.00", "5.00 – 10.0", "0", "0", "1.25×", dash, dash},
		{"uplinkd", "upstream host → guest", "1", "1", "10.0", "10.0 – 10.0", "0", "0", dash, dash, dash},
		{"uplinkd host port", "host → upstream host", "1", "2", "4.60", "4.60 – 9.20", "0", "0", dash, dash, "0.92×"},
		{"uplinkd host port", "upstream host → host", "1", "1", "12.0", "12.0 – 12.0", "0", "0", dash, dash, "1.20×"},
		{"Linux bridge", "guest → upstream host", "1", "2", "4.00", "4.00 – 8.00", "0", "0", dash, dash, dash},
	}
	if len(sum.Rows) != len(wantSum) {
		t.Fatalf("summary rows %q", sum.Rows)
	}
	for i, w := range wantSum {
		if !slices.Equal(sum.Rows[i], w) {
			t.Errorf("summary row %d\n%q\nwant\n%q", i, sum.Rows[i], w)
		}
	}
	every := tcpBulkTable(r.TCP)
	if got := every.Rows[3][:4]; !slices.Equal(got, []string{"uplinkd host port", "host → upstream host", "1", "1"}) {
		t.Errorf("every run, row 3: %q", every.Rows[3])
	}

	fo := tcpFailoverTable(r.TCP)
	if len(fo.Rows) != 3 {
		t.Fatalf("failover rows %q, want uplinkd's guest, its host port, the bridge", fo.Rows)
	}
	wantGuest := []string{"uplinkd", "3 uplinks", "100 Mbit/s", "3", "3 of 3", "4 ms / 5 ms / 5 ms", "4 ms / 5 ms", "1 ms / 1 ms", "0 / 2", dash}
	wantHost := []string{"uplinkd host port", "3 uplinks", "100 Mbit/s", "3", "2 of 3", "6 ms / 2 s / 2 s", "6 ms / 2 s", "1 ms / 1 ms", "1 / 9",
		"trial 3: no bytes arrived in the last 500 ms"}
	if !slices.Equal(fo.Rows[0], wantGuest) || !slices.Equal(fo.Rows[1], wantHost) || fo.Rows[2][0] != "Linux bridge" {
		t.Errorf("failover rows\n%q\nwant\n%q\n%q\nthen the bridge", fo.Rows, wantGuest, wantHost)
	}

	wantAll(t, "markdown", markdownOf(t, r),
		"| uplinkd host port | host → upstream host | 1 | 2 | 4.60 | 4.60 – 9.20 | 0 | 0 | – | – | 0.92× |",
		"| uplinkd host port | 3 uplinks | 100 Mbit/s | 3 | 2 of 3 | 6 ms / 2 s / 2 s |",
		hostPortBulkNote, hostPortFailoverNote,
	)
	wantAll(t, "HTML", htmlOf(t, r), `<td class="">uplinkd host port</td>`, "pairs it with that run",
		"crossed the same cut at the same time")

	// A result without a host port has no word of one.
	md, page := markdownOf(t, tcpHand()), htmlOf(t, tcpHand())
	if strings.Contains(md, "host port") || strings.Contains(page, "pairs it with that run") ||
		strings.Contains(page, "crossed the same cut at the same time") {
		t.Error("a result without host port rows explains them")
	}
}

// TestOffloadNotes checks the offload table's Note column: there with a
// note, a dash for a system without one, and absent, as in older results,
// when no system has a note.
func TestOffloadNotes(t *testing.T) {
	r := tcpHand()
	r.TCP.OffloadNotes = map[string]string{SystemLinuxBridge: "tx checksum offload off on G/eth0"}
	wantAll(t, "markdown", markdownOf(t, r),
		"| System | Interfaces | tx checksum | TSO | GSO | GRO | Note |",
		"| uplinkd | 2 | on | on | on | on | – |\n| Linux bridge | 2 | on | on | on | off on U/p0 | tx checksum offload off on G/eth0 |",
		"the Note column is a system's own setting",
	)
	// The note in its cell, and the caption explaining the Note column.
	wantAll(t, "HTML", htmlOf(t, r), `<td class="">tx checksum offload off on G/eth0</td>`,
		"the Note column is a system&#39;s own setting")

	if md := markdownOf(t, tcpHand()); strings.Contains(md, "| GRO | Note |") || strings.Contains(md, "Note column") {
		t.Error("a result without offload notes has a Note column")
	}
}
