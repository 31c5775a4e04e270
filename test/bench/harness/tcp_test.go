package harness

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/pkg/config"
	"github.com/uplinkd/uplinkd/test/bench/peer"
	"github.com/uplinkd/uplinkd/test/bench/report"
	"github.com/uplinkd/uplinkd/test/bench/topo"
	"github.com/uplinkd/uplinkd/test/testenv"
)

// Open vSwitch's userspace TSO setting reaches the report's offload table.
var _ offloadNoter = (*peer.OVS)(nil)

func TestParseSNMP(t *testing.T) {
	// From a 6.18 kernel, shortened.
	data := []byte(`Ip: Forwarding DefaultTTL InReceives
Ip: 2 64 1523
Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens InCsumErrors
Tcp: 1 200 120000 -1 7 12
Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors
Udp: 40 0 100 3 0 0 100 0 0
UdpLite: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors
UdpLite: 0 0 0 0 0 0 0 0 0
`)
	got, err := parseSNMP(data)
	if err != nil {
		t.Fatal(err)
	}
	if got["Udp"]["InCsumErrors"] != 100 || got["Tcp"]["InCsumErrors"] != 12 || got["Udp"]["InDatagrams"] != 40 ||
		got["Tcp"]["MaxConn"] != 0 || got["UdpLite"]["InCsumErrors"] != 0 {
		t.Errorf("parsed %v", got)
	}
	before := snmpCounters{"Udp": {"InCsumErrors": 30}}
	if d := got.delta(before, "Udp", "InCsumErrors"); d != 70 {
		t.Errorf("delta = %d, want 70", d)
	}
	if d := before.delta(got, "Udp", "InCsumErrors"); d != 0 {
		t.Errorf("a counter that went back gave %d, want 0", d)
	}
	if _, err := parseSNMP([]byte("Udp: A B\nUdp: 1\n")); err == nil {
		t.Error("a values line shorter than its names parsed")
	}
}

func TestParseIperf(t *testing.T) {
	// iperf3 3.12 -J, shortened.
	ok := `{"start": {"connected": [{"socket": 5}]}, "intervals": [],
	"end": {"sum_sent": {"seconds": 3.0001, "bytes": 4500000000, "bits_per_second": 1.2e10, "retransmits": 3, "sender": true},
	"sum_received": {"seconds": 3.0402, "bytes": 4400000000, "bits_per_second": 1.1578e10, "sender": true}}}`
	var run report.TCPBulkRun
	if err := parseIperf([]byte(ok), &run); err != nil {
		t.Fatal(err)
	}
	if run.Gbps != 11.578 || run.Retransmits != 3 || run.Seconds != 3.0402 {
		t.Errorf("parsed %+v", run)
	}
	failed := `{"start": {"connected": [], "version": "iperf 3.12"}, "intervals": [], "end": {},
	"error": "unable to connect to server - server may have stopped running or use a different port, firewall issue, etc.: Connection timed out"}`
	run = report.TCPBulkRun{}
	err := parseIperf([]byte(failed), &run)
	if err == nil || !strings.Contains(err.Error(), "unable to connect") || run.Gbps != 0 {
		t.Errorf("a failed run: %+v, %v", run, err)
	}
	if err := parseIperf(nil, &run); err == nil {
		t.Error("no output parsed")
	}
}

// TestUplinkdHostPortConfig: the tcp scenario's uplinkd gets its host
// port in the group, as uplinkd reads it; the other scenarios' none.
func TestUplinkdHostPortConfig(t *testing.T) {
	u := newUplinkd("bin", 0)
	guests, uplinks := []string{"vnet0", "vnet1"}, []string{"up0", "up1", "up2"}
	c, err := config.Parse([]byte(u.configYAML("/tmp/x/bpffs", "/tmp/x/uplinkd.sock", guests, uplinks)))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(c.Groups[0].HostPorts); n != 0 {
		t.Errorf("%d host ports without any asked for", n)
	}
	u.hostPorts, u.mode = []string{tcpHostPort}, "balance"
	yaml := u.configYAML("/tmp/x/bpffs", "/tmp/x/uplinkd.sock", guests, uplinks)
	c, err = config.Parse([]byte(yaml))
	if err != nil {
		t.Fatalf("%v in\n%s", err, yaml)
	}
	g := c.Groups[0]
	if len(g.HostPorts) != 1 || g.HostPorts[0].Name != tcpHostPort || len(g.Uplinks) != 3 || g.Mode != "balance" {
		t.Errorf("group %+v from\n%s", g, yaml)
	}
}

// TestEnds: who sends and who listens where, for the guest and for the
// host on its host port.
func TestEnds(t *testing.T) {
	for _, c := range []struct {
		endpoint, dir              string
		sender, receiver, listenAt string
	}{
		{"", report.GuestToUplink, topo.Guest, topo.Sender, tcpUpstreamAddr},
		{"", report.UplinkToGuest, topo.Sender, topo.Guest, tcpGuestAddr},
		{report.EndpointHostPort, report.GuestToUplink, topo.Host, topo.Sender, tcpUpstreamAddr},
		{report.EndpointHostPort, report.UplinkToGuest, topo.Sender, topo.Host, tcpHostAddr},
	} {
		s, r, a := ends(c.endpoint, c.dir)
		if s != c.sender || r != c.receiver || a != c.listenAt {
			t.Errorf("ends(%q, %s) = %s, %s, %s; want %s, %s, %s", c.endpoint, c.dir, s, r, a, c.sender, c.receiver, c.listenAt)
		}
	}
	if got := (&socketBed{}).endpoints(); len(got) != 1 || got[0] != "" {
		t.Errorf("a system without a host port sends from %q", got)
	}
	if got := (&socketBed{hostPort: tcpHostPort}).endpoints(); len(got) != 2 || got[1] != report.EndpointHostPort {
		t.Errorf("uplinkd with a host port sends from %q", got)
	}
}

func TestStreamGaps(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	cut, restore, end := at(1000), at(3000), at(5500)
	var steady []arrival
	for i := 5; i <= 5500; i += 5 {
		steady = append(steady, arrival{at(i), 100})
	}

	// A stream that pauses 230 ms at the cut and 40 ms at the restore.
	var resumed []arrival
	for _, a := range steady {
		if !(a.at.After(at(1000)) && a.at.Before(at(1230))) && !(a.at.After(at(3000)) && a.at.Before(at(3040))) {
			resumed = append(resumed, a)
		}
	}
	l, c, r := streamGaps(resumed, t0, cut, restore, end)
	if ms(l) != 230 || ms(c) != 230 || ms(r) != 40 {
		t.Errorf("resumed: longest %v, at cut %v, at restore %v; want 230, 230, 40 ms", l, c, r)
	}

	// A stream that stops at the cut for good: its gap runs to the end.
	var stopped []arrival
	for _, a := range steady {
		if !a.at.After(cut) {
			stopped = append(stopped, a)
		}
	}
	l, c, r = streamGaps(stopped, t0, cut, restore, end)
	if ms(l) != 4500 || ms(c) != 4500 || ms(r) != 4500 {
		t.Errorf("stopped: longest %v, at cut %v, at restore %v; want 4.5 s each", l, c, r)
	}

	// No data at all: the whole run is one gap; arrivals after the end
	// do not count.
	l, _, _ = streamGaps([]arrival{{at(6000), 1}}, t0, cut, restore, end)
	if ms(l) != 5500 {
		t.Errorf("nothing arrived: longest %v, want 5.5 s", l)
	}
}

// TestSocketTrafficOnBridge runs the scenario's measurements, shortened,
// on a Linux bridge, which carries socket traffic: TCP arrives, UDP
// arrives without checksum errors, and a cut of its only uplink shows
// as a gap at least as long as the cut in a connection that survives.
func TestSocketTrafficOnBridge(t *testing.T) {
	testenv.RequireRoot(t, "needs root: namespaces")
	if testing.Short() {
		t.Skip("runs about 12 s of traffic")
	}
	if _, err := exec.LookPath("iperf3"); err != nil {
		t.Skip("iperf3 is not installed (scripts/deps.sh)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	o, err := Options{}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{opts: o, work: t.TempDir(), res: &report.Result{}}
	b, err := h.newSocketBed(ctx, "bridge", "ulkh3", false)
	if err != nil {
		t.Fatal(err)
	}
	prefix := b.tp.Prefix
	defer func() {
		b.close()
		if left, _ := filepath.Glob("/run/netns/" + prefix + "*"); len(left) > 0 {
			t.Errorf("namespaces left behind: %v", left)
		}
	}()

	offloads, err := b.offloads()
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range offloads {
		if !x.TxCsum || !x.TSO || !x.GRO {
			t.Errorf("%s/%s: offloads %+v, want the defaults on (and GRO)", x.Namespace, x.Interface, x)
		}
	}
	for _, dir := range []string{report.GuestToUplink, report.UplinkToGuest} {
		r := b.iperf(ctx, "", dir, 1, time.Second)
		if r.Error != "" || r.Gbps <= 0 || r.TCPInCsumErrors != 0 {
			t.Errorf("TCP %s: %+v", dir, r)
		}
		u := b.udp(ctx, dir, 100, time.Second)
		if u.Error != "" || u.Sent < 8000 || u.Received < u.Sent*99/100 || u.UDPInCsumErrors != 0 {
			t.Errorf("UDP %s: %+v", dir, u)
		}
	}
	// Two trials, one after another on the same testbed: each a fresh
	// connection that waits out the cut.
	trials := b.failovers(ctx, 2, h.opts.Log)
	if len(trials) != 2 {
		t.Fatalf("%d trials, want 2: %+v", len(trials), trials)
	}
	for i, f := range trials {
		if f.Trial != i+1 || f.Planned != 2 || !f.Connected || !f.Survived || f.Error != "" ||
			f.GapAtCutNs < int64(streamCutFor) || f.BytesAtEnd == 0 {
			t.Errorf("trial %d, failover with no failover: %+v", i+1, f)
		}
	}
}
