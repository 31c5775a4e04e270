package peer

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/uplinkd/uplinkd/test/testenv"
)

// testbed is a miniature of the harness's topology:
//
//	ns G eth0 10.99.0.10 ── vnet0 ┐ ns H ┌ up0 ══ p0 ┐
//	                              └──────┤          ├ br0 10.99.0.1  ns U
//	                                     └ up1 ══ p1 ┘
//
// With taps, up0/up1 are tap devices whose fd the test holds and U is not
// built.
type testbed struct {
	H, U, G string
	taps    map[string]*os.File
}

const (
	upstreamIP = "10.99.0.1"
	guestIP    = "10.99.0.10"
)

func requireRoot(t *testing.T) {
	t.Helper()
	testenv.RequireRoot(t, "needs root (network namespaces)")
}

func newTestbed(t *testing.T, taps bool) *testbed {
	t.Helper()
	suffix := make([]byte, 3)
	_, _ = rand.Read(suffix)
	p := "ulkpr" + hex.EncodeToString(suffix)
	tb := &testbed{H: p + "h", U: p + "u", G: p + "g", taps: map[string]*os.File{}}
	nss := []string{tb.H, tb.G}
	if !taps {
		nss = append(nss, tb.U)
	}
	for _, ns := range nss {
		testenv.NewNetns(t, ns)
		// No IPv6 chatter: the pings below are the only traffic.
		sh(t, "ip", "netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
		sh(t, "ip", "-n", ns, "link", "set", "lo", "up")
	}
	sh(t, "ip", "-n", tb.H, "link", "add", "vnet0", "type", "veth", "peer", "name", "eth0", "netns", tb.G)
	sh(t, "ip", "-n", tb.G, "addr", "add", guestIP+"/24", "dev", "eth0")
	sh(t, "ip", "-n", tb.G, "link", "set", "eth0", "up")
	sh(t, "ip", "-n", tb.H, "link", "set", "vnet0", "up")
	if taps {
		for _, up := range []string{"up0", "up1"} {
			f := openTap(t, tb.H, up)
			tb.taps[up] = f
			t.Cleanup(func() { f.Close() })
			sh(t, "ip", "-n", tb.H, "link", "set", up, "up")
		}
		return tb
	}
	sh(t, "ip", "-n", tb.U, "link", "add", "br0", "type", "bridge")
	for i, up := range []string{"up0", "up1"} {
		peer := fmt.Sprintf("p%d", i)
		// Distinct ifindexes on the two ends: a veth whose ifindex equals
		// its peer's (easily so across namespaces) has its carrier changes
		// handled as non-urgent by linkwatch, so a restored p0 starts
		// forwarding in U's bridge up to a second late, after OVS has
		// already failed back and sent its one learning packet, and U
		// keeps sending G's traffic to p1 until its ARP entry is probed.
		sh(t, "ip", "-n", tb.H, "link", "add", up, "index", fmt.Sprint(10+i), "type", "veth", "peer", "name", peer, "netns", tb.U, "index", fmt.Sprint(20+i))
		sh(t, "ip", "-n", tb.U, "link", "set", peer, "master", "br0")
		sh(t, "ip", "-n", tb.U, "link", "set", peer, "up")
		sh(t, "ip", "-n", tb.H, "link", "set", up, "up")
	}
	sh(t, "ip", "-n", tb.U, "addr", "add", upstreamIP+"/24", "dev", "br0")
	sh(t, "ip", "-n", tb.U, "link", "set", "br0", "up")
	return tb
}

func (tb *testbed) topology(t *testing.T) Topology {
	return Topology{HostNS: tb.H, GuestPorts: []string{"vnet0"}, Uplinks: []string{"up0", "up1"}, WorkDir: t.TempDir()}
}

func sh(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
}

// setPeer takes an upstream port down or up by netlink, returning the time
// just before the change, so cut-to-switch figures are not stretched by a
// fork.
func (tb *testbed) setPeer(t *testing.T, peer string, up bool) time.Time {
	t.Helper()
	h, err := nsHandle(tb.U)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	l, err := h.LinkByName(peer)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now()
	if up {
		err = h.LinkSetUp(l)
	} else {
		err = h.LinkSetDown(l)
	}
	if err != nil {
		t.Fatalf("set %s up=%v: %v", peer, up, err)
	}
	return at
}

// ping runs one bounded ping from the upstream namespace to the guest.
func (tb *testbed) ping(count int, wait string) error {
	out, err := exec.Command("ip", "netns", "exec", tb.U, "ping", "-n", "-q", "-c", fmt.Sprint(count), "-W", wait, "-i", "0.2", guestIP).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ping: %v: %s", err, lastLines(string(out), 2))
	}
	return nil
}

// pingEventually pings (-c 3 -W 1) up to 5 times while the system settles.
func (tb *testbed) pingEventually(t *testing.T) {
	t.Helper()
	var err error
	for range 5 {
		if err = tb.ping(3, "1"); err == nil {
			return
		}
	}
	t.Fatalf("U cannot reach G: %v", err)
}

// firstPing pings once at a time (-W 0.2) until a reply comes, for at most
// 50 tries, and returns when the successful ping ended.
func (tb *testbed) firstPing(t *testing.T) time.Time {
	t.Helper()
	var err error
	for range 50 {
		if err = tb.ping(1, "0.2"); err == nil {
			return time.Now()
		}
	}
	t.Fatalf("U cannot reach G again: %v", err)
	return time.Time{}
}

// poll calls f every 5 ms for up to 5 s until it returns true.
func poll(t *testing.T, what string, f func() (bool, error)) time.Time {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		var ok bool
		if ok, err = f(); ok {
			return time.Now()
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("%s: not within 5 s (last error: %v)", what, err)
	return time.Time{}
}

func waitActive(t *testing.T, s System, want string) time.Time {
	t.Helper()
	var got string
	return poll(t, "active uplink "+want, func() (bool, error) {
		var err error
		got, err = s.Active(context.Background())
		if err != nil {
			return false, err
		}
		if got != want {
			return false, fmt.Errorf("active is %q", got)
		}
		return true, nil
	})
}

func TestBridge(t *testing.T) {
	requireRoot(t)
	if ok, reason := Available(BridgeName); !ok {
		t.Fatalf("bridge not available: %s", reason)
	}
	tb := newTestbed(t, false)
	b, err := New(BridgeName)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.Start(ctx, tb.topology(t)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Stop() })
	if err := b.Start(ctx, tb.topology(t)); err == nil {
		t.Error("second Start succeeded")
	}
	tb.pingEventually(t)
	if a, err := b.Active(ctx); err != nil || a != "up0" {
		t.Errorf("Active = %q, %v; want up0", a, err)
	}
	if st, err := b.SwitchTimes(ctx); err != nil || st != nil {
		t.Errorf("SwitchTimes = %v, %v; want nil", st, err)
	}
	if m := masterOf(t, tb.H, "up1"); m != "" {
		t.Errorf("up1 enslaved to %q: the bridge must have one uplink", m)
	}
	// No failover: with up0 cut, G is unreachable.
	tb.setPeer(t, "p0", false)
	if err := tb.ping(2, "1"); err == nil {
		t.Error("ping works with up0 cut: the bridge forwards over up1")
	}
	tb.setPeer(t, "p0", true)
	tb.pingEventually(t)

	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := b.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if linkExists(t, tb.H, BridgeDevice) {
		t.Errorf("%s left in %s", BridgeDevice, tb.H)
	}
	for _, p := range []string{"vnet0", "up0"} {
		if m := masterOf(t, tb.H, p); m != "" {
			t.Errorf("%s still enslaved to %s", p, m)
		}
	}
	if _, err := b.Active(ctx); err == nil {
		t.Error("Active after Stop succeeded")
	}
}

// startOVS starts o on a fresh testbed (with taps for the uplinks if
// taps) and stops it when t ends; the context bounds the test's calls.
func startOVS(t *testing.T, o *OVS, taps bool) (*testbed, Topology, context.Context) {
	t.Helper()
	requireRoot(t)
	if ok, reason := Available(OVSName); !ok {
		t.Fatalf("ovs not available: %s", reason)
	}
	tb := newTestbed(t, taps)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	topo := tb.topology(t)
	if err := o.Start(ctx, topo); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = o.Stop() })
	return tb, topo, ctx
}

func TestOVSFailover(t *testing.T) {
	o := &OVS{}
	t0 := time.Now()
	tb, topo, ctx := startOVS(t, o, false)
	t.Logf("Start took %v; versions %v; settings %v", time.Since(t0).Round(time.Millisecond), o.Versions(), o.Settings())
	pids := o.PIDs()
	checkOVSProcesses(t, o, pids)

	tb.pingEventually(t)
	if a, err := o.Active(ctx); err != nil || a != "up0" {
		t.Fatalf("Active = %q, %v; want up0", a, err)
	}
	if st, err := o.SwitchTimes(ctx); err != nil || st == nil || len(st) != 0 {
		t.Fatalf("SwitchTimes before any cut = %#v, %v; want empty (known: none)", st, err)
	}

	// Cut and restore up0 a few times: failover to up1, then back to the
	// primary (bond_updelay=0).
	const cycles = 5
	var toSwitch, toPing, backSwitch, backPing []time.Duration
	for i := range cycles {
		cut := tb.setPeer(t, "p0", false)
		working := tb.firstPing(t) // pinging starts right after the cut
		if a, err := o.Active(ctx); err != nil || a != "up1" {
			t.Fatalf("cycle %d: ping works after the cut but Active = %q, %v", i, a, err)
		}
		sw := waitSwitch(t, o, 2*i+1, "up1")
		// The log keeps milliseconds, truncated.
		if sw.Before(cut.Truncate(time.Millisecond)) || sw.After(working) {
			t.Errorf("cycle %d: switch logged at %v, outside cut %v .. ping working %v", i, sw, cut, working)
		}
		toSwitch = append(toSwitch, sw.Sub(cut.Truncate(time.Millisecond)))
		toPing = append(toPing, working.Sub(cut))

		back := tb.setPeer(t, "p0", true)
		working = tb.firstPing(t)
		waitActive(t, o, "up0")
		sw = waitSwitch(t, o, 2*i+2, "up0")
		if sw.Before(back.Truncate(time.Millisecond)) {
			t.Errorf("cycle %d: failback logged at %v, before the restore at %v", i, sw, back)
		}
		backSwitch = append(backSwitch, sw.Sub(back.Truncate(time.Millisecond)))
		backPing = append(backPing, working.Sub(back))
	}
	times, err := o.SwitchTimes(ctx)
	if err != nil || len(times) != 2*cycles {
		t.Errorf("SwitchTimes = %v, %v; want %d", times, err, 2*cycles)
	}
	t.Logf("OVS veth, %d cuts of up0 (min/median/max): cut -> switch in log %s; cut -> first ping reply %s", cycles, summary(toSwitch), summary(toPing))
	t.Logf("OVS veth, %d restores of up0: restore -> failback in log %s; restore -> first ping reply %s", cycles, summary(backSwitch), summary(backPing))
	t.Logf("(log times have 1 ms resolution, measured from the cut truncated to the ms; ping times include starting ping, which retries every 0.2 s)")

	stopOVS(t, o, pids, topo)
}

// TestOVSTapCarrier checks what the harness's tap trials rely on: OVS sees
// a tap losing carrier (TUNSETCARRIER) and fails over.
func TestOVSTapCarrier(t *testing.T) {
	o := &OVS{NoPin: true}
	tb, topo, ctx := startOVS(t, o, true)
	pids := o.PIDs()
	if got := o.PinnedCPUs(); got != nil {
		t.Errorf("NoPin: pinned to %v", got)
	}
	if a, err := o.Active(ctx); err != nil || a != "up0" {
		t.Fatalf("Active = %q, %v; want up0", a, err)
	}
	cut := time.Now()
	setTapCarrier(t, tb.taps["up0"], false)
	seen := waitActive(t, o, "up1")
	var events []BondEvent
	poll(t, "the switch in ovs-vswitchd.log", func() (bool, error) {
		var err error
		events, err = o.SwitchEvents(ctx)
		return len(events) > 0, err
	})
	if len(events) != 1 || events[0].Member != "up1" || events[0].Time.Before(cut.Truncate(time.Millisecond)) {
		t.Fatalf("switch events after the carrier drop: %v, want one to up1 after %v", events, cut)
	}
	t.Logf("OVS tap carrier drop: cut -> switch (log) %v, cut -> Active()=up1 seen %v",
		events[0].Time.Sub(cut.Truncate(time.Millisecond)), seen.Sub(cut).Round(time.Microsecond))

	// Carrier back and lost again in quick succession: taps get no urgent
	// linkwatch handling, so the kernel may batch these notifications for
	// up to a second, and OVS learns of them no sooner.
	back := time.Now()
	setTapCarrier(t, tb.taps["up0"], true)
	seenBack := waitActive(t, o, "up0")
	swBack := waitSwitch(t, o, 2, "up0")
	second := time.Now()
	setTapCarrier(t, tb.taps["up0"], false)
	waitActive(t, o, "up1")
	sw2 := waitSwitch(t, o, 3, "up1")
	if sw2.Before(second.Truncate(time.Millisecond)) {
		t.Errorf("second switch logged at %v, before the second carrier drop at %v", sw2, second)
	}
	t.Logf("OVS tap: carrier back -> failback (log) %v (Active seen %v); second drop %v after the first -> switch (log) %v",
		swBack.Sub(back.Truncate(time.Millisecond)), seenBack.Sub(back).Round(time.Millisecond),
		second.Sub(cut).Round(time.Millisecond), sw2.Sub(second.Truncate(time.Millisecond)))
	stopOVS(t, o, pids, topo)
}

// TestOVSStopWithoutControl: when ovs-vswitchd cannot be asked to exit
// (its control socket is gone), Stop kills it by PID and still removes
// what it left: the datapath's persistent taps, promiscuity, files.
func TestOVSStopWithoutControl(t *testing.T) {
	o := &OVS{NoPin: true}
	tb, topo, _ := startOVS(t, o, false)
	pids := o.PIDs()
	tb.pingEventually(t)
	if err := os.Remove(o.path("ovs-vswitchd.ctl")); err != nil {
		t.Fatal(err)
	}
	stopOVS(t, o, pids, topo)
}

// waitSwitch waits until SwitchEvents has n entries, the last to member.
func waitSwitch(t *testing.T, o *OVS, n int, member string) time.Time {
	t.Helper()
	var events []BondEvent
	poll(t, fmt.Sprintf("switch %d in ovs-vswitchd.log", n), func() (bool, error) {
		var err error
		events, err = o.SwitchEvents(context.Background())
		return len(events) >= n, err
	})
	if len(events) != n || events[n-1].Member != member {
		t.Fatalf("switch events %v, want %d, the last to %s", events, n, member)
	}
	return events[n-1].Time
}

// summary is "min/median/max" of ds.
func summary(ds []time.Duration) string {
	s := slices.Clone(ds)
	slices.Sort(s)
	r := func(d time.Duration) time.Duration { return d.Round(100 * time.Microsecond) }
	return fmt.Sprintf("%v/%v/%v", r(s[0]), r(s[len(s)/2]), r(s[len(s)-1]))
}

// TestStartFailureCleansUp: a port that does not exist makes Start fail,
// and what Start made so far is gone.
func TestStartFailureCleansUp(t *testing.T) {
	requireRoot(t)
	for _, name := range Names() {
		t.Run(name, func(t *testing.T) {
			if ok, reason := Available(name); !ok {
				t.Fatalf("%s not available: %s", name, reason)
			}
			tb := newTestbed(t, false)
			topo := tb.topology(t)
			topo.GuestPorts = []string{"vnet0", "vnet9"}
			s, err := New(name)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err = s.Start(ctx, topo)
			if err == nil {
				_ = s.Stop()
				t.Fatal("Start with a missing port succeeded")
			}
			t.Logf("Start failed as it should: %v", err)
			if left := ownChildren(t); len(left) != 0 {
				t.Errorf("processes left: %v", left)
			}
			if entries, _ := os.ReadDir(topo.WorkDir); len(entries) != 0 {
				t.Errorf("WorkDir not empty: %v", entries)
			}
			for _, dev := range []string{BridgeDevice, OVSBridge, "ovs-netdev"} {
				if linkExists(t, tb.H, dev) {
					t.Errorf("%s left in %s", dev, tb.H)
				}
			}
			if m := masterOf(t, tb.H, "vnet0"); m != "" {
				t.Errorf("vnet0 still enslaved to %s", m)
			}
			if err := s.Stop(); err != nil {
				t.Errorf("Stop after a failed Start: %v", err)
			}
		})
	}
}

func TestAvailableUnknown(t *testing.T) {
	if ok, reason := Available("xdpfwd"); ok || reason == "" {
		t.Errorf("Available(xdpfwd) = %v, %q; want false with a reason", ok, reason)
	}
	if _, err := New("nope"); err == nil {
		t.Error("New(nope) succeeded")
	}
}

func TestTopologyValidate(t *testing.T) {
	requireRoot(t)
	tb := newTestbed(t, true)
	good := Topology{HostNS: tb.H, GuestPorts: []string{"vnet0"}, Uplinks: []string{"up0"}, WorkDir: "/tmp/x"}
	tests := []struct {
		name    string
		mod     func(*Topology)
		wantErr bool
	}{
		{name: "good", mod: func(*Topology) {}},
		{name: "no namespace", mod: func(t *Topology) { t.HostNS = tb.H + "-gone" }, wantErr: true},
		{name: "no guests", mod: func(t *Topology) { t.GuestPorts = nil }, wantErr: true},
		{name: "no uplinks", mod: func(t *Topology) { t.Uplinks = nil }, wantErr: true},
		{name: "repeated port", mod: func(t *Topology) { t.Uplinks = []string{"up0", "vnet0"} }, wantErr: true},
		{name: "relative WorkDir", mod: func(t *Topology) { t.WorkDir = "work" }, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			topo := good
			tc.mod(&topo)
			if err := topo.validate(true); (err != nil) != tc.wantErr {
				t.Errorf("validate: %v, wantErr %v", err, tc.wantErr)
			}
		})
	}
}

// checkOVSProcesses: two processes, ours, ovs-vswitchd pinned as reported.
func checkOVSProcesses(t *testing.T, o *OVS, pids []int) {
	t.Helper()
	if len(pids) != 2 {
		t.Fatalf("PIDs = %v, want ovsdb-server and ovs-vswitchd", pids)
	}
	for i, want := range []string{"ovsdb-server", "ovs-vswitchd"} {
		comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pids[i]))
		if err != nil || strings.TrimSpace(string(comm)) != want {
			t.Errorf("pid %d is %q (%v), want %s", pids[i], comm, err, want)
		}
		if ppid := parentOf(t, pids[i]); ppid != os.Getpid() {
			t.Errorf("%s's parent is %d, want this test (%d)", want, ppid, os.Getpid())
		}
	}
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(pids[1], &set); err != nil {
		t.Fatal(err)
	}
	pinned := o.PinnedCPUs()
	if runtime.NumCPU() >= 2 && len(pinned) != 1 {
		t.Errorf("with %d CPUs ovs-vswitchd should be pinned to one, got %v", runtime.NumCPU(), pinned)
	}
	if len(pinned) > 0 {
		if set.Count() != len(pinned) || !set.IsSet(pinned[0]) {
			t.Errorf("ovs-vswitchd affinity has %d CPUs, want %v", set.Count(), pinned)
		}
	}
	// Our own threads are not pinned along with it.
	var own unix.CPUSet
	if err := unix.SchedGetaffinity(0, &own); err != nil {
		t.Fatal(err)
	}
	if len(pinned) > 0 && own.Count() < 2 {
		t.Errorf("the test's own thread got pinned too (%d CPUs)", own.Count())
	}
}

// stopOVS stops and checks nothing is left: processes, files, interfaces,
// promiscuity.
func stopOVS(t *testing.T, o *OVS, pids []int, topo Topology) {
	t.Helper()
	if err := o.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := o.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	for _, pid := range pids {
		if err := unix.Kill(pid, 0); !errors.Is(err, unix.ESRCH) {
			t.Errorf("pid %d still there after Stop (kill 0: %v)", pid, err)
		}
	}
	if left := o.PIDs(); len(left) != 0 {
		t.Errorf("PIDs after Stop = %v", left)
	}
	entries, err := os.ReadDir(topo.WorkDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("WorkDir not empty after Stop: %v", entries)
	}
	for _, dev := range []string{OVSBridge, "ovs-netdev"} {
		if linkExists(t, topo.HostNS, dev) {
			t.Errorf("%s left in %s", dev, topo.HostNS)
		}
	}
	h, err := nsHandle(topo.HostNS)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	for _, p := range append(append([]string{}, topo.GuestPorts...), topo.Uplinks...) {
		l, err := h.LinkByName(p)
		if err != nil {
			t.Fatal(err)
		}
		if l.Attrs().RawFlags&unix.IFF_PROMISC != 0 {
			t.Errorf("%s still promiscuous", p)
		}
	}
	if _, err := o.Active(context.Background()); err == nil {
		t.Error("Active after Stop succeeded")
	}
}

// ownChildren lists the OVS processes whose parent is this test process
// (other runs on the machine may have their own).
func ownChildren(t *testing.T) []int {
	t.Helper()
	var own []int
	for _, pid := range ovsProcesses() {
		if parentOf(t, pid) == os.Getpid() {
			own = append(own, pid)
		}
	}
	return own
}

// ovsProcesses lists the PIDs of running ovs-vswitchd and ovsdb-server
// processes, whoever started them.
func ovsProcesses() []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, err := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
		if err != nil {
			continue
		}
		switch strings.TrimSpace(string(comm)) {
		case "ovs-vswitchd", "ovsdb-server":
			pids = append(pids, pid)
		}
	}
	return pids
}

func parentOf(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0 // gone meanwhile
	}
	// pid (comm) state ppid ...; comm may hold spaces, so cut after ')'.
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	var ppid int
	fmt.Sscan(fields[1], &ppid)
	return ppid
}

func linkExists(t *testing.T, ns, name string) bool {
	t.Helper()
	h, err := nsHandle(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	_, err = h.LinkByName(name)
	return err == nil
}

func masterOf(t *testing.T, ns, name string) string {
	t.Helper()
	h, err := nsHandle(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	l, err := h.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	if l.Attrs().MasterIndex == 0 {
		return ""
	}
	m, err := h.LinkByIndex(l.Attrs().MasterIndex)
	if err != nil {
		return fmt.Sprintf("ifindex %d", l.Attrs().MasterIndex)
	}
	return m.Attrs().Name
}

// openTap creates tap name in ns and returns its fd (carrier on while open).
func openTap(t *testing.T, ns, name string) *os.File {
	t.Helper()
	var f *os.File
	errc := make(chan error, 1)
	go func() {
		// The thread changes namespace and is left for the runtime to end.
		runtime.LockOSThread()
		h, err := netns.GetFromName(ns)
		if err != nil {
			errc <- err
			return
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			errc <- err
			return
		}
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- err
			return
		}
		ifr, err := unix.NewIfreq(name)
		if err != nil {
			unix.Close(fd)
			errc <- err
			return
		}
		ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI)
		if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
			unix.Close(fd)
			errc <- err
			return
		}
		f = os.NewFile(uintptr(fd), name)
		errc <- nil
	}()
	if err := <-errc; err != nil {
		t.Fatalf("tap %s in %s: %v", name, ns, err)
	}
	if _, err := netlinkLink(ns, name); err != nil {
		t.Fatal(err)
	}
	return f
}

func netlinkLink(ns, name string) (netlink.Link, error) {
	h, err := nsHandle(ns)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	return h.LinkByName(name)
}

// tunSetCarrier is TUNSETCARRIER, _IOW('T', 226, int).
const tunSetCarrier = 0x400454e2

func setTapCarrier(t *testing.T, f *os.File, on bool) {
	t.Helper()
	v := int32(0)
	if on {
		v = 1
	}
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), tunSetCarrier, uintptr(unsafe.Pointer(&v))); errno != 0 {
		t.Fatalf("TUNSETCARRIER %v on %s: %v", on, f.Name(), errno)
	}
}
