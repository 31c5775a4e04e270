package e2e

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"golang.org/x/sys/unix"
)

const (
	streamUp   = 1 // G0 -> upstream gateway, the guest traffic
	streamDown = 2 // upstream -> G1, the receive-only guest
	guestRate  = 10000
	downRate   = 5000
)

// disableIPv6 keeps kernels' own chatter (router solicitations, MLD) out
// of the namespaces: a receive-only guest must stay silent.
func (l *lab) disableIPv6() {
	for role := range l.ns {
		l.in(role, func() {
			for _, f := range []string{"all", "default"} {
				_ = os.WriteFile("/proc/sys/net/ipv6/conf/"+f+"/disable_ipv6", []byte("1"), 0o644)
			}
		})
	}
}

// hello makes G1 speak once (a UDP datagram to the gateway) so that the
// switch learns its MAC and address; after that it only receives.
func (l *lab) hello(role string, ip net.IP) {
	l.t.Helper()
	eth := &layers.Ethernet{SrcMAC: l.macs[role], DstMAC: l.macs["br0"], EthernetType: layers.EthernetTypeIPv4}
	ip4 := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: ip, DstIP: net.IP{10, 77, 0, 1}}
	udp := &layers.UDP{SrcPort: 9, DstPort: 9}
	l.check(udp.SetNetworkLayerForChecksum(ip4))
	buf := gopacket.NewSerializeBuffer()
	l.check(gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		eth, ip4, udp, gopacket.Payload("hello")))
	l.in(role, func() {
		fd, err := packetSocket("eth0", 0)
		l.check(err)
		defer unix.Close(fd)
		l.check(unix.Send(fd, buf.Bytes(), 0))
	})
}

// cut takes an uplink's carrier away from the upstream side, as a pulled
// cable would, and returns when; restore gives it back.
func (l *lab) cut(port string) time.Time     { return l.upstreamPort(port, false) }
func (l *lab) restore(port string) time.Time { return l.upstreamPort(port, true) }

func (l *lab) upstreamPort(port string, up bool) time.Time {
	var at time.Time
	l.in("U", func() {
		at = time.Now()
		if up {
			l.setUp(port)
		} else {
			l.setDown(port)
		}
	})
	return at
}

// lostSeqs counts the sequence numbers below n that never arrived, and
// returns the highest of them.
func lostSeqs(n uint32, as []arrival) (lost int, highest uint32) {
	seen := make([]bool, n)
	for _, a := range as {
		if a.seq < n {
			seen[a.seq] = true
		}
	}
	for i, ok := range seen {
		if !ok {
			lost, highest = lost+1, uint32(i)
		}
	}
	return lost, highest
}

func ms(d time.Duration) string { return fmt.Sprintf("%.3f ms", float64(d)/float64(time.Millisecond)) }

// TestFailoverAndFailback cuts the active uplink under 10 kpps of guest
// traffic, checks that guest frames move to the standby and that traffic
// to a receive-only guest resumes because the upstream bridge relearned it
// from the announcements, then restores the uplink and checks failback.
func TestFailoverAndFailback(t *testing.T) {
	l := newLab(t, labOptions{failback: true})
	l.disableIPv6()
	l.startDaemon()
	if g := l.status(); g.Active != "up0" {
		t.Fatalf("active at start = %q, want up0\n%s", g.Active, l.d.logs)
	}
	l.hello("G1", net.IP{10, 77, 0, 11})
	if !waitFor(2*time.Second, func() bool { return l.bridgeFDB()[l.macs["G1"].String()] == "p0" }) {
		t.Fatalf("upstream never learned G1 on p0: %v", l.bridgeFDB())
	}

	p0, p1, g1 := l.receive("U", "p0"), l.receive("U", "p1"), l.receive("G1", "eth0")
	up := l.send("G0", "eth0", l.macs["br0"], l.macs["G0"], streamUp, guestRate, 3*time.Second)
	down := l.send("U", "br0", l.macs["G1"], l.macs["br0"], streamDown, downRate, 3*time.Second)
	if up.err != nil || down.err != nil {
		t.Fatalf("senders: %v / %v", up.err, down.err)
	}
	time.Sleep(time.Second)
	cutAt := l.cut("p0")
	up.wait()
	down.wait()
	time.Sleep(200 * time.Millisecond)
	for _, r := range []*receiver{p0, p1, g1} {
		r.close()
		if r.err != nil {
			t.Fatalf("receiver %s: %v", r.name, r.err)
		}
	}

	g := l.status()
	// Whichever path saw it first: the daemon (netlink, carrier poll) or
	// the kernel (the uplink's tc egress, or the carrier hook where allowed).
	cutReasons := map[string]bool{"carrier lost": true, "carrier lost (in kernel)": true}
	if g.Active != "up1" || g.Failovers != 1 || g.LastFailover == nil || !cutReasons[g.LastFailover.Reason] {
		t.Fatalf("after the cut: active %q, failovers %d, last %+v\n%s", g.Active, g.Failovers, g.LastFailover, l.d.logs)
	}
	ev := g.LastFailover

	// Guest frames moved to the new uplink.
	onNew, ok := firstAfter(p1.stream(streamUp), cutAt)
	if !ok {
		t.Fatalf("no guest frame reached the standby uplink after the cut (sent %d, p0 %d, p1 %d)",
			up.sent, len(p0.stream(streamUp)), len(p1.stream(streamUp)))
	}
	lastOld, _ := lastBefore(p0.stream(streamUp), onNew.at)
	lost, dups := missing(up.sent, streamUp, p0, p1)

	// The receive-only guest is reached again. Time gaps here mostly show
	// the sender's own pauses, so go by sequence numbers: frames lost,
	// and when the first frame sent after the last lost one arrived.
	downArr := g1.stream(streamDown)
	if _, ok := firstAfter(downArr, cutAt); !ok {
		t.Fatalf("the receive-only guest got nothing after the cut (%d frames before)", len(downArr))
	}
	downLost, lastLost := lostSeqs(down.sent, downArr)
	backAt := time.Duration(0)
	for _, a := range downArr {
		if downLost > 0 && a.seq > lastLost {
			backAt = a.at.Sub(cutAt)
			break
		}
	}
	// ...because the upstream bridge learned it behind p1 from the
	// announcements: G1 sent nothing since its hello.
	fdb := l.bridgeFDB()
	if fdb[l.macs["G1"].String()] != "p1" {
		t.Errorf("upstream bridge has G1 (%s) on %q, want p1 (relearned from announcements): %v", l.macs["G1"], fdb[l.macs["G1"].String()], fdb)
	}
	rarps := p1.rarps()
	if len(rarps) == 0 || ev.AnnounceFrames == 0 {
		t.Errorf("no announcements seen on the new uplink (captured %d RARPs, daemon reports %d frames)", len(rarps), ev.AnnounceFrames)
	}

	// Generous bounds: they catch a broken path, not a slow machine.
	if d := onNew.at.Sub(cutAt); d > 2*time.Second {
		t.Errorf("guest frames took %v to reach the new uplink", d)
	}
	if backAt > 3*time.Second {
		t.Errorf("the receive-only guest was unreachable for %v", backAt)
	}
	firstRARP := time.Time{}
	if len(rarps) > 0 {
		firstRARP = rarps[0]
	}
	t.Logf("FIGURES failover (veth uplink, peer set down, %d pps guest traffic, %d pps to a receive-only guest; switched by: %s):", guestRate, downRate, ev.Reason)
	t.Logf("  cut -> daemon switched:                 %s (netlink event -> map write %s)", ms(ev.Switched.Sub(cutAt)), ms(ev.Latency))
	t.Logf("  cut -> first guest frame on new uplink: %s (last on old uplink %s after the cut)", ms(onNew.at.Sub(cutAt)), ms(lastOld.at.Sub(cutAt)))
	t.Logf("  cut -> first RARP on new uplink:        %s (%d frames announced)", ms(firstRARP.Sub(cutAt)), ev.AnnounceFrames)
	if downLost == 0 {
		t.Logf("  receive-only guest: no frame lost of %d", down.sent)
	} else {
		t.Logf("  receive-only guest: %d of %d frames lost; first frame after them at cut + %s", downLost, down.sent, ms(backAt))
	}
	t.Logf("  guest frames lost: %d of %d, duplicated: %d", lost, up.sent, dups)
	if dups != 0 {
		t.Errorf("%d guest frames were delivered twice", dups)
	}

	// Failback: p0 returns, the better uplink takes over again and the
	// guests are announced on it.
	p0 = l.receive("U", "p0")
	restoredAt := l.restore("p0")
	if !waitFor(3*time.Second, func() bool { return l.status().Active == "up0" }) {
		t.Fatalf("no failback to up0: %+v\n%s", l.status(), l.d.logs)
	}
	up = l.send("G0", "eth0", l.macs["br0"], l.macs["G0"], streamUp, guestRate, 300*time.Millisecond)
	up.wait()
	time.Sleep(100 * time.Millisecond)
	p0.close()
	if n := len(p0.stream(streamUp)); n == 0 {
		t.Errorf("after failback no guest frame on up0")
	}
	if !waitFor(2*time.Second, func() bool { return l.bridgeFDB()[l.macs["G1"].String()] == "p0" }) {
		t.Errorf("after failback the bridge has G1 on %q, want p0", l.bridgeFDB()[l.macs["G1"].String()])
	}
	g = l.status()
	if g.Failovers != 2 || g.LastFailover.Reason != "failback" {
		t.Errorf("after failback: failovers %d, last %+v", g.Failovers, g.LastFailover)
	}
	t.Logf("  failback: restore -> switched %s", ms(g.LastFailover.Switched.Sub(restoredAt)))
}

// TestKillDashNineUnderTraffic kills the daemon while guests send and
// restarts it: forwarding never stops, and the restarted daemon adopts
// the pinned state without switching or announcing.
func TestKillDashNineUnderTraffic(t *testing.T) {
	l := newLab(t, labOptions{failback: true})
	l.disableIPv6()
	l.startDaemon()
	p0, p1 := l.receive("U", "p0"), l.receive("U", "p1")
	testbed := l.testbedDrops()
	up := l.send("G0", "eth0", l.macs["br0"], l.macs["G0"], streamUp, guestRate, 3*time.Second)
	time.Sleep(time.Second)
	pid := l.d.cmd.Process.Pid
	l.stopDaemon(syscall.SIGKILL)
	time.Sleep(time.Second)
	l.startDaemon()
	restartedAt := time.Now()
	up.wait()
	time.Sleep(200 * time.Millisecond)
	p0.close()
	p1.close()

	lost, dups := missing(up.sent, streamUp, p0, p1)
	t.Logf("FIGURES kill -9 of uplinkd (pid %d) under %d pps: %d of %d frames lost, %d duplicated, %d on the standby",
		pid, guestRate, lost, up.sent, dups, len(p1.stream(streamUp)))
	if up.sent < guestRate { // the sender itself must have worked
		t.Fatalf("only %d frames sent", up.sent)
	}
	if n := testbed.unexplained(lost, p0, p1); n != 0 || dups != 0 {
		t.Errorf("kill -9 under traffic: %d lost in the switch, %d duplicated (want 0)", n, dups)
	}
	g := l.status()
	if g.Active != "up0" || g.Failovers != 0 || g.LastFailover != nil {
		t.Errorf("restarted daemon switched: active %q, failovers %d, last %+v", g.Active, g.Failovers, g.LastFailover)
	}
	for _, r := range []*receiver{p0, p1} {
		for _, at := range r.rarps() {
			if at.After(restartedAt.Add(-time.Second)) {
				t.Errorf("restarted daemon re-announced (RARP on %s)", r.name)
				break
			}
		}
	}
}

// TestManualSwitch moves a group by hand and back to automatic, and
// refuses an uplink without carrier.
func TestManualSwitch(t *testing.T) {
	l := newLab(t, labOptions{failback: true})
	l.disableIPv6()
	l.startDaemon()
	c := l.client()
	st, err := c.SetActive("lab", "up1")
	if err != nil || st.Groups[0].Active != "up1" || st.Groups[0].Manual != "up1" {
		t.Fatalf("set-active up1: %+v %v", st.Groups, err)
	}
	p1 := l.receive("U", "p1")
	up := l.send("G0", "eth0", l.macs["br0"], l.macs["G0"], streamUp, 2000, 200*time.Millisecond)
	up.wait()
	time.Sleep(100 * time.Millisecond)
	p1.close()
	if n := len(p1.stream(streamUp)); n == 0 {
		t.Error("after set-active up1 no guest frame on up1")
	}
	if _, err := c.ClearManual("lab"); err != nil || l.status().Active != "up0" {
		t.Errorf("set-active auto: active %q, %v", l.status().Active, err)
	}
	l.cut("p1")
	if !waitFor(2*time.Second, func() bool {
		for _, u := range l.status().Uplinks {
			if u.Name == "up1" {
				return !u.Carrier
			}
		}
		return false
	}) {
		t.Fatal("daemon never saw up1 lose carrier")
	}
	if _, err := c.SetActive("lab", "up1"); err == nil || !strings.Contains(err.Error(), "no carrier") {
		t.Errorf("set-active to an uplink without carrier: %v", err)
	}
	if _, err := c.SetActive("lab", "eth9"); err == nil || !strings.Contains(err.Error(), "no uplink") {
		t.Errorf("set-active to an unknown uplink: %v", err)
	}
	out, err := execCtl(l, "status")
	if err != nil || !strings.Contains(out, "group lab: active up0") {
		t.Errorf("uplinkctl status:\n%s\n%v", out, err)
	}
}

func execCtl(l *lab, args ...string) (string, error) {
	cmd := exec.Command(l.d.bin+"/uplinkctl", append([]string{"-socket", l.d.socket}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// runUplinkd runs uplinkd in H with the lab's configuration file and
// args, and returns its output and exit code.
func (l *lab) runUplinkd(args ...string) (string, int) {
	l.t.Helper()
	args = append([]string{"netns", "exec", l.nsName("H"), l.d.bin + "/uplinkd", "-config", l.d.config}, args...)
	out, err := exec.Command("ip", args...).CombinedOutput()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		return string(out), exit.ExitCode()
	case err != nil:
		l.t.Fatal(err)
	}
	return string(out), 0
}

// TestBadConfigKeepsDataPlane: a stopped daemon leaves the data plane
// forwarding, and a daemon started with a bad configuration refuses with
// an error naming the field and touches nothing.
func TestBadConfigKeepsDataPlane(t *testing.T) {
	l := newLab(t, labOptions{failback: true})
	l.disableIPv6()
	l.startDaemon()
	l.stopDaemon(syscall.SIGTERM)

	good, err := os.ReadFile(l.d.config)
	l.check(err)
	bad := strings.Replace(string(good), "priority: 20", "priority: 70000", 1)
	l.check(os.WriteFile(l.d.config, []byte(bad), 0o600))
	out, code := l.runUplinkd()
	if code == 0 {
		t.Fatalf("uplinkd accepted a bad configuration:\n%s", out)
	}
	if !strings.Contains(out, "groups[0].uplinks[1].priority") {
		t.Errorf("error does not name the field:\n%s", out)
	}

	p0 := l.receive("U", "p0")
	testbed := l.testbedDrops()
	up := l.send("G0", "eth0", l.macs["br0"], l.macs["G0"], streamUp, 2000, 250*time.Millisecond)
	up.wait()
	time.Sleep(100 * time.Millisecond)
	p0.close()
	if lost, _ := missing(up.sent, streamUp, p0); testbed.unexplained(lost, p0) != 0 || up.sent == 0 {
		t.Errorf("with the daemon stopped and a bad config refused: %d of %d frames lost", lost, up.sent)
	}
}

// TestPlannedSwitchLosesNothing: set-active and the return to automatic
// selection (a failback) move traffic with zero loss in both directions:
// the target is usable before the slot flips, frames already queued for
// the old uplink still leave, and the old uplink keeps delivering to the
// guests until the upstream has relearned them.
func TestPlannedSwitchLosesNothing(t *testing.T) {
	l := newLab(t, labOptions{failback: true})
	l.disableIPv6()
	l.startDaemon()
	l.hello("G1", net.IP{10, 77, 0, 11})
	if !waitFor(2*time.Second, func() bool { return l.bridgeFDB()[l.macs["G1"].String()] == "p0" }) {
		t.Fatalf("upstream never learned G1 on p0: %v", l.bridgeFDB())
	}
	// Rates high enough that frames are queued and in flight when the
	// slot flips (at a few kpps a switch usually falls between frames).
	const rate = 50_000
	p0, p1, g1 := l.receive("U", "p0"), l.receive("U", "p1"), l.receive("G1", "eth0")
	testbed := l.testbedDrops()
	up := l.send("G0", "eth0", l.macs["br0"], l.macs["G0"], streamUp, rate, 2*time.Second)
	down := l.send("U", "br0", l.macs["G1"], l.macs["br0"], streamDown, rate, 2*time.Second)
	time.Sleep(600 * time.Millisecond)
	c := l.client()
	if _, err := c.SetActive("lab", "up1"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(600 * time.Millisecond)
	if _, err := c.ClearManual("lab"); err != nil { // failback to up0
		t.Fatal(err)
	}
	up.wait()
	down.wait()
	time.Sleep(200 * time.Millisecond)
	for _, r := range []*receiver{p0, p1, g1} {
		r.close()
	}
	upLost, upDups := missing(up.sent, streamUp, p0, p1)
	downLost, downDups := missing(down.sent, streamDown, g1)
	t.Logf("FIGURES planned switches up0 -> up1 -> up0 under %d pps up / %d pps down: lost %d of %d up, %d of %d down; duplicates %d / %d; frames on up1: %d",
		rate, rate, upLost, up.sent, downLost, down.sent, upDups, downDups, len(p1.stream(streamUp)))
	if len(p1.stream(streamUp)) == 0 {
		t.Fatal("traffic never moved to up1")
	}
	if n := testbed.unexplained(upLost+downLost, p0, p1, g1); n != 0 || upDups != 0 || downDups != 0 {
		t.Errorf("planned switches lost %d frames in the switch (%d/%d up/down in all), duplicated %d/%d: want none", n, upLost, downLost, upDups, downDups)
	}
	if g := l.status(); g.Active != "up0" || g.Failovers != 2 {
		t.Errorf("after the planned switches: active %q, failovers %d", g.Active, g.Failovers)
	}
}
