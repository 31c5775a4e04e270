package e2e

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/uplinkd/uplinkd/pkg/control"
)

// carrying sends a short burst from guest G0 and returns the upstream
// ports (p0, p1, ...) it arrived on.
func (l *lab) carrying(uplinks int) []string {
	l.t.Helper()
	var rs []*receiver
	for i := range uplinks {
		rs = append(rs, l.receive("U", fmt.Sprintf("p%d", i)))
	}
	l.send("G0", "eth0", l.macs["br0"], l.macs["G0"], streamUp, 2000, 100*time.Millisecond).wait()
	time.Sleep(50 * time.Millisecond)
	var got []string
	for i, r := range rs {
		r.close()
		if len(r.stream(streamUp)) > 0 {
			got = append(got, fmt.Sprintf("p%d", i))
		}
	}
	return got
}

// waitActive waits for the group's active uplink to become want and
// returns the status then.
func (l *lab) waitActive(want string) control.GroupStatus {
	l.t.Helper()
	var g control.GroupStatus
	if !waitFor(3*time.Second, func() bool { g = l.status(); return g.Active == want }) {
		l.t.Fatalf("active uplink %q, want %q; last reason %q\n%s", g.Active, want, g.LastReason, l.d.logs)
	}
	return g
}

func uplinkOf(g control.GroupStatus, name string) control.UplinkStatus {
	for _, u := range g.Uplinks {
		if u.Name == name {
			return u
		}
	}
	return control.UplinkStatus{}
}

// guestPortOf is the group's guest port name; ok false if it has none.
func guestPortOf(g control.GroupStatus, name string) (p control.PortStatus, ok bool) {
	for _, p := range g.GuestPorts {
		if p.Name == name {
			return p, true
		}
	}
	return control.PortStatus{}, false
}

// waitRelearned waits until the upstream bridge has G0's MAC behind port.
func (l *lab) waitRelearned(port string) {
	l.t.Helper()
	mac := l.macs["G0"].String()
	if !waitFor(2*time.Second, func() bool { return l.bridgeFDB()[mac] == port }) {
		l.t.Errorf("upstream bridge has G0 (%s) behind %q, want %s", mac, l.bridgeFDB()[mac], port)
	}
}

// TestPriorityAmongThreeUplinks: the best usable uplink by priority is
// active, not the first or the next one listed; a priority raised at run
// time takes over at once with failback on (and the upstream relearns the
// guest there); a disabled uplink is left; a recovered better one takes
// over again.
func TestPriorityAmongThreeUplinks(t *testing.T) {
	l := newLab(t, labOptions{failback: true, priorities: []int{30, 10, 20}})
	l.disableIPv6()
	l.startDaemon()

	l.waitActive("up1")
	if got := l.carrying(3); strings.Join(got, ",") != "p1" {
		t.Fatalf("guest traffic on %v, want p1 (priority 10)", got)
	}

	l.cut("p1")
	// up2 has priority 20: the best left, though up0 is listed first. The
	// reason reads "carrier lost (in kernel)" where the carrier hook loads.
	g := l.waitActive("up2")
	if !strings.HasPrefix(g.LastReason, "carrier lost") {
		t.Errorf("reason %q, want carrier lost", g.LastReason)
	}
	if got := l.carrying(3); strings.Join(got, ",") != "p2" {
		t.Errorf("after the cut guest traffic on %v, want p2", got)
	}
	l.waitRelearned("p2")

	if out, err := execCtl(l, "set-priority", "lab", "up0", "5"); err != nil || !strings.Contains(out, "uplink up0 priority 5") {
		t.Fatalf("set-priority: %v\n%s", err, out)
	}
	g = l.waitActive("up0")
	if g.LastReason != "failback" || uplinkOf(g, "up0").Priority != 5 {
		t.Errorf("after set-priority: reason %q, up0 %+v", g.LastReason, uplinkOf(g, "up0"))
	}
	if got := l.carrying(3); strings.Join(got, ",") != "p0" {
		t.Errorf("after set-priority guest traffic on %v, want p0", got)
	}
	l.waitRelearned("p0") // announced on the new uplink: the upstream moved the guest

	if out, err := execCtl(l, "set-state", "lab", "up0", "disabled"); err != nil {
		t.Fatalf("set-state: %v\n%s", err, out)
	}
	g = l.waitActive("up2")
	if u := uplinkOf(g, "up0"); u.State != "disabled" || u.Usable || g.LastReason != "admin state" {
		t.Errorf("after disabling up0: %+v, reason %q", u, g.LastReason)
	}
	if _, err := l.client().SetActive("lab", "up0"); err == nil || !strings.Contains(err.Error(), "disabled") {
		t.Errorf("set-active to a disabled uplink: %v", err)
	}
	if _, err := execCtl(l, "set-state", "lab", "up0", "sideways"); err == nil {
		t.Error("set-state accepted an unknown state")
	}

	l.restore("p1")
	l.waitActive("up1")
	out, err := execCtl(l, "status")
	if err != nil || !strings.Contains(out, "disabled") || !strings.Contains(out, "FAILOVERS") {
		t.Errorf("uplinkctl status:\n%s\n%v", out, err)
	}
	t.Logf("status:\n%s", out)
}

// TestFailbackOffAndUpDelay: with failback off the active uplink stays
// until it fails, whatever recovers or changes priority; a recovered
// uplink shows its up-delay in status and is usable only after it; when
// the active fails the best usable one takes over.
func TestFailbackOffAndUpDelay(t *testing.T) {
	const upDelay = 600 * time.Millisecond
	l := newLab(t, labOptions{failback: false, priorities: []int{10, 20, 30}, extra: "    up_delay: 600ms\n"})
	l.disableIPv6()
	l.startDaemon()
	l.waitActive("up0")

	l.cut("p0")
	l.waitActive("up1")
	restored := l.restore("p0")
	var u control.UplinkStatus
	if !waitFor(3*time.Second, func() bool { u = uplinkOf(l.status(), "up0"); return u.Carrier }) {
		t.Fatal("daemon never saw up0's carrier return")
	}
	if since := time.Since(restored); since < upDelay/2 && (u.Hold <= 0 || u.Usable) {
		t.Errorf("%v after up0 came back: %+v, want its up-delay running and not usable", since, u)
	}
	if !waitFor(3*time.Second, func() bool { u = uplinkOf(l.status(), "up0"); return u.Usable }) {
		t.Fatalf("up0 never usable after its up-delay: %+v", u)
	}
	if since := time.Since(restored); since < upDelay {
		t.Errorf("up0 usable %v after it came back, before its %v up-delay", since, upDelay)
	}
	if g := l.status(); g.Active != "up1" || g.UpDelay != upDelay {
		t.Errorf("failback off: active %q (want up1 kept), up-delay %v", g.Active, g.UpDelay)
	}

	if _, err := execCtl(l, "set-priority", "lab", "up2", "1"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if g := l.status(); g.Active != "up1" {
		t.Errorf("failback off: a better priority took over (active %q)", g.Active)
	}
	l.cut("p1")
	l.waitActive("up2") // now the best usable: priority 1
	if got := l.carrying(3); strings.Join(got, ",") != "p2" {
		t.Errorf("guest traffic on %v, want p2", got)
	}
}

// TestDeadPathDetectedByProbes: the upstream port of the active uplink
// keeps its carrier but leaves the switch (its path is dead): the path
// probes notice, the group moves to the standby uplink, whose probes were
// answered all along, and comes back when the path heals.
func TestDeadPathDetectedByProbes(t *testing.T) {
	l := newLab(t, labOptions{failback: true, extra: "    probe: {targets: [10.77.0.1], interval: 50ms, missed: 3}\n"})
	l.disableIPv6()
	// The gateway answers ARP only on its own interface (by default Linux
	// answers for any of its addresses on any interface, so a port that
	// left the bridge would still answer).
	l.in("U", func() {
		l.check(os.WriteFile("/proc/sys/net/ipv4/conf/all/arp_ignore", []byte("1"), 0o644))
	})
	l.startDaemon()
	l.waitActive("up0")
	// Both uplinks' probes are answered, the standby one's too.
	if !waitFor(2*time.Second, func() bool {
		g := l.status()
		return uplinkOf(g, "up0").Probe == "ok" && uplinkOf(g, "up1").Probe == "ok"
	}) {
		t.Fatalf("probes not ok on both uplinks: %+v", l.status().Uplinks)
	}
	l.carrying(2) // the guest is learned, so it is announced below

	cutAt := time.Now()
	l.bridged("p0", false)
	g := l.waitActive("up1")
	took := time.Since(cutAt)
	u0 := uplinkOf(g, "up0")
	if g.LastReason != "path probes failed" || !u0.Carrier || u0.Probe != "failed" || u0.Usable {
		t.Errorf("after the path died: reason %q, up0 %+v", g.LastReason, u0)
	}
	t.Logf("FIGURES dead path with carrier up: moved after %v (probes every 50 ms, 3 missed)", took.Round(time.Millisecond))
	if got := l.carrying(2); strings.Join(got, ",") != "p1" {
		t.Errorf("guest traffic on %v, want p1", got)
	}
	l.waitRelearned("p1")

	l.bridged("p0", true)
	g = l.waitActive("up0")
	if g.LastReason != "failback" || uplinkOf(g, "up0").Probe != "ok" {
		t.Errorf("after the path healed: reason %q, up0 %+v", g.LastReason, uplinkOf(g, "up0"))
	}
}

// TestRuntimePortChanges: uplinks and guest ports added and removed at run
// time, under guest traffic that none of the changes may interrupt: an
// added uplink that is not preferred carries nothing, one made preferred
// takes over, removing the active uplink moves the group first (and the
// upstream relearns the guest), a guest port added later forwards at once
// and forwards nothing once removed.
func TestRuntimePortChanges(t *testing.T) {
	l := newLab(t, labOptions{failback: true})
	l.disableIPv6()
	// Interfaces that exist but are not in the configuration.
	l.uplinkPair("up2", "p2")
	l.veth("vnet2", "H", "eth1", "G1")
	l.in("H", func() { l.setUp("up2"); l.setUp("vnet2") })
	l.in("G1", func() { l.setUp("eth1") })
	l.startDaemon()
	l.waitActive("up0")

	// Guest traffic all along: the changes below concern other ports.
	p0, p2 := l.receive("U", "p0"), l.receive("U", "p2")
	// Sent until the changes are done (at most 10 s): under emulation the
	// uplinkctl runs alone can take seconds.
	const rate, length = 2000, 10 * time.Second
	testbed := l.testbedDrops()
	s := l.send("G0", "eth0", l.macs["br0"], l.macs["G0"], streamUp, rate, length)

	if out, err := execCtl(l, "add-uplink", "lab", "up2", "15"); err != nil || !strings.Contains(out, "up2 (prio 15)") {
		t.Fatalf("add-uplink: %v\n%s", err, out)
	}
	if _, err := execCtl(l, "add-uplink", "lab", "up2"); err == nil {
		t.Error("the same uplink added twice")
	}
	if _, err := execCtl(l, "add-uplink", "lab", "vnet0"); err == nil {
		t.Error("a guest port added as an uplink")
	}
	if g := l.status(); g.Active != "up0" || !uplinkOf(g, "up2").Usable || uplinkOf(g, "up2").Slot != 2 {
		t.Errorf("after adding up2 (priority 15): active %q, up2 %+v", g.Active, uplinkOf(g, "up2"))
	}
	time.Sleep(300 * time.Millisecond)
	if _, err := execCtl(l, "set-priority", "lab", "up2", "5"); err != nil {
		t.Fatal(err)
	}
	l.waitActive("up2")
	time.Sleep(300 * time.Millisecond)
	if out, err := execCtl(l, "remove-uplink", "lab", "up2"); err != nil || strings.Contains(out, "up2") {
		t.Fatalf("remove-uplink: %v\n%s", err, out)
	}
	g := l.waitActive("up0")
	if g.LastReason != "uplink removed" || len(g.Uplinks) != 2 {
		t.Errorf("after removing the active up2: reason %q, uplinks %+v", g.LastReason, g.Uplinks)
	}
	l.waitRelearned("p0")
	time.Sleep(100 * time.Millisecond) // some traffic on up0 again
	close(s.stop)
	s.wait()
	time.Sleep(100 * time.Millisecond)
	p0.close()
	p2.close()
	lost, dups := missing(s.sent, streamUp, p0, p2)
	t.Logf("FIGURES runtime uplink add, priority change, removal of the active uplink under %d pps: %d lost, %d duplicated", rate, lost, dups)
	if len(p2.stream(streamUp)) == 0 {
		t.Error("no guest frame went out up2 while it was active")
	}
	// A planned move loses nothing; removing the active uplink is one too.
	if n := testbed.unexplained(lost, p0, p2); n > 0 || dups > 0 {
		t.Errorf("%d frames lost in the switch, %d duplicated across the run-time changes", n, dups)
	}

	// A guest port added at run time forwards at once; removed, nothing.
	var mac2 = l.macOf("G1", "eth1")
	forwarded := func() int {
		r := l.receive("U", "p0")
		l.send("G1", "eth1", l.macs["br0"], mac2, streamDown, 2000, 100*time.Millisecond).wait()
		time.Sleep(50 * time.Millisecond)
		r.close()
		return len(r.stream(streamDown))
	}
	if n := forwarded(); n != 0 {
		t.Errorf("%d frames from an unconfigured port went upstream", n)
	}
	if _, err := execCtl(l, "add-port", "lab", "vnet2"); err != nil {
		t.Fatal(err)
	}
	if n := forwarded(); n == 0 {
		t.Error("a guest port added at run time forwards nothing")
	}
	if _, err := execCtl(l, "remove-port", "lab", "vnet2"); err != nil {
		t.Fatal(err)
	}
	if n := forwarded(); n != 0 {
		t.Errorf("%d frames forwarded from a removed guest port", n)
	}
	if out, _ := execCtl(l, "fdb"); strings.Contains(out, mac2.String()) {
		t.Errorf("the removed port's guest is still in the FDB:\n%s", out)
	}
	if _, err := execCtl(l, "remove-port", "lab", "vnet2"); err == nil {
		t.Error("a port removed twice")
	}
}

// taggedFrom watches an upstream port and records, per source MAC, the
// VLANs of the frames that arrived (0: untagged). This kernel has neither
// 802.1Q nor a VLAN-filtering bridge, so the VLAN-aware upstream switch is
// this observer: a switch learns a MAC on the port and VLAN a frame from it
// arrives on, so that is what relearning means.
type taggedFrom struct {
	mu   sync.Mutex
	seen map[string][]uint16 // MAC -> VLANs, in arrival order
	rarp map[string][]uint16 // MAC -> VLANs of its RARPs (announcements)
	stop chan struct{}
	done chan struct{}
}

func (l *lab) watchTags(port string) *taggedFrom {
	l.t.Helper()
	w := &taggedFrom{seen: map[string][]uint16{}, rarp: map[string][]uint16{}, stop: make(chan struct{}), done: make(chan struct{})}
	ready := make(chan error, 1)
	go func() {
		defer close(w.done)
		runtime.LockOSThread()
		if err := netns.Set(l.ns["U"]); err != nil {
			ready <- err
			return
		}
		fd, err := packetSocket(port, unix.ETH_P_ALL)
		if err != nil {
			ready <- err
			return
		}
		defer unix.Close(fd)
		_ = unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_AUXDATA, 1)
		_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 20000})
		ready <- nil
		buf, oob := make([]byte, 2048), make([]byte, 256)
		for {
			select {
			case <-w.stop:
				return
			default:
			}
			n, oobn, _, from, err := unix.Recvmsg(fd, buf, oob, 0)
			if err != nil || n < 14 {
				continue
			}
			if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
				continue
			}
			vlan, etype := uint16(0), uint16(buf[12])<<8|uint16(buf[13])
			if etype == unix.ETH_P_8021Q && n >= 18 {
				vlan = uint16(buf[14])<<8&0x0f00 | uint16(buf[15])
				etype = uint16(buf[16])<<8 | uint16(buf[17])
			}
			if msgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
				for _, m := range msgs {
					if m.Header.Level == unix.SOL_PACKET && m.Header.Type == unix.PACKET_AUXDATA && len(m.Data) >= int(unsafe.Sizeof(unix.TpacketAuxdata{})) {
						if aux := (*unix.TpacketAuxdata)(unsafe.Pointer(&m.Data[0])); aux.Status&unix.TP_STATUS_VLAN_VALID != 0 {
							vlan = aux.Vlan_tci & 0x0fff
						}
					}
				}
			}
			w.mu.Lock()
			mac := net.HardwareAddr(buf[6:12]).String()
			w.seen[mac] = append(w.seen[mac], vlan)
			if etype == unix.ETH_P_RARP {
				w.rarp[mac] = append(w.rarp[mac], vlan)
			}
			w.mu.Unlock()
		}
	}()
	if err := <-ready; err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(w.close)
	return w
}

func (w *taggedFrom) close() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

// vlans are the VLANs frames from mac arrived with.
func (w *taggedFrom) vlans(mac string) []uint16 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.seen[mac])
}

// rarps are the VLANs RARPs from mac arrived with.
func (w *taggedFrom) rarps(mac string) []uint16 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.rarp[mac])
}

// TestAccessVLANGuestRelearned: a guest on an access port (untagged at the
// guest, VLAN 100 upstream) reaches the upstream switch on VLAN 100 only,
// and after a failover its tagged announcement makes the switch relearn it
// on VLAN 100 behind the new port.
func TestAccessVLANGuestRelearned(t *testing.T) {
	const vlan = 100
	l := newLab(t, labOptions{failback: true, guestPorts: "[{name: vnet0, vlan: 100}, vnet1]"})
	l.disableIPv6()
	l.startDaemon()
	l.waitActive("up0")
	mac := l.macs["G0"].String()
	p0, p1 := l.watchTags("p0"), l.watchTags("p1")

	l.carrying(2)
	waitFor(2*time.Second, func() bool { return len(p0.vlans(mac)) > 0 }) // its reader may lag
	if got := p0.vlans(mac); len(got) == 0 || slices.ContainsFunc(got, func(v uint16) bool { return v != vlan }) {
		t.Fatalf("G0's frames reached p0 on VLANs %v, want only %d", got, vlan)
	}
	if out, err := execCtl(l, "fdb"); err != nil || !strings.Contains(out, fmt.Sprintf("%d", vlan)) {
		t.Errorf("uplinkd's FDB does not show G0 on VLAN %d:\n%s", vlan, out)
	}
	if len(p1.vlans(mac)) != 0 {
		t.Fatalf("frames from G0 on the standby uplink before the failover: %v", p1.vlans(mac))
	}
	l.cut("p0")
	l.waitActive("up1")
	// No guest traffic now: only the announcement reaches p1.
	if !waitFor(2*time.Second, func() bool { return slices.Contains(p1.vlans(mac), vlan) }) {
		t.Errorf("after the failover no frame from G0 on VLAN %d behind p1 (the switch cannot relearn it): %v", vlan, p1.vlans(mac))
	}
	if got := p1.vlans(mac); slices.Contains(got, 0) {
		t.Errorf("G0 announced untagged behind p1: %v", got)
	}
	if out, _ := execCtl(l, "status"); !strings.Contains(out, "vnet0 (vlan 100)") {
		t.Errorf("status does not show the access port's VLAN:\n%s", out)
	}
}

// TestGroupsAreIndependent: two groups on one host, each with its own
// guests, uplinks and active slot: a failover in one moves nothing and
// loses nothing in the other.
func TestGroupsAreIndependent(t *testing.T) {
	l := newLab(t, labOptions{failback: true, guestPorts: "[vnet0]", moreGroups: `  - name: blue
    guest_ports: [vnet1]
    uplinks: [{name: up2, priority: 10}, {name: up3, priority: 20}]
`})
	l.disableIPv6()
	for _, i := range []string{"2", "3"} {
		l.uplinkPair("up"+i, "p"+i)
		l.in("H", func() { l.setUp("up" + i) })
	}
	l.startDaemon()
	l.waitActive("up0")
	blue := func() control.GroupStatus {
		st, err := l.client().Status()
		l.check(err)
		for _, g := range st.Groups {
			if g.Name == "blue" {
				return g
			}
		}
		t.Fatal("no group blue")
		return control.GroupStatus{}
	}
	if g := blue(); g.Active != "up2" {
		t.Fatalf("blue active %q, want up2", g.Active)
	}

	p2 := l.receive("U", "p2")
	testbed := l.testbedDrops()
	s := l.send("G1", "eth0", l.macs["br0"], l.macs["G1"], streamDown, 2000, time.Second)
	time.Sleep(300 * time.Millisecond)
	l.cut("p0")
	l.waitActive("up1")
	s.wait()
	time.Sleep(100 * time.Millisecond)
	p2.close()
	lost, _ := missing(s.sent, streamDown, p2)
	g := blue()
	t.Logf("FIGURES group lab failed over; group blue: %d of %d frames lost, %d failovers", lost, s.sent, g.Failovers)
	if n := testbed.unexplained(lost, p2); n != 0 || g.Active != "up2" || g.Failovers != 0 {
		t.Errorf("group blue disturbed by lab's failover: %d lost in the switch, active %q, %d failovers", n, g.Active, g.Failovers)
	}
	if got := l.carrying(4); strings.Join(got, ",") != "p1" {
		t.Errorf("lab's guest on %v after its failover, want p1", got)
	}
}

// TestGuestPortsByPattern: interfaces that match a guest port pattern are
// attached with the pattern's profile, whether there at start or created
// later; a guest that arrives on one is announced on the active uplink
// (on its VLAN) at once, without any failover; an interface that goes is
// cleaned up; one the operator removed stays out until it is re-created.
func TestGuestPortsByPattern(t *testing.T) {
	const vlan = 100
	l := newLab(t, labOptions{failback: true, guestPorts: `[vnet0, vnet1, {match: "vm*", vlan: 100, announce_priority: 5}]`})
	for _, role := range []string{"G2", "G3"} {
		l.ns[role] = l.newNS(role)
	}
	l.disableIPv6()
	guest := func(port, role, ip string) {
		l.veth(port, "H", "eth0", role)
		l.in(role, func() {
			l.setUp("eth0")
			l.macs[role] = l.mac("eth0")
			l.addr("eth0", ip+"/24")
		})
		l.in("H", func() { l.setUp(port) })
	}
	guest("vm1", "G2", "10.77.0.12") // there before the daemon
	l.veth("other0", "H", "eth1", "G2")
	l.startDaemon()
	l.waitActive("up0")
	portOf := func(name string) *control.PortStatus {
		if p, ok := guestPortOf(l.status(), name); ok {
			return &p
		}
		return nil
	}
	if p := portOf("vm1"); p == nil || p.Match != "vm*" || p.VLAN != vlan || p.AnnouncePriority != 5 || p.Error != "" {
		t.Fatalf("vm1 at start: %+v, want attached by vm* with VLAN %d", p, vlan)
	}
	if portOf("other0") != nil {
		t.Error("an interface no pattern matches was attached")
	}

	p0 := l.watchTags("p0")
	created := time.Now()
	guest("vm7", "G3", "10.77.0.13")
	if !waitFor(2*time.Second, func() bool { p := portOf("vm7"); return p != nil && p.Error == "" && p.Ifindex > 0 }) {
		t.Fatalf("vm7 not attached by its pattern: %+v", portOf("vm7"))
	}
	attached := time.Since(created)
	mac := l.macs["G3"].String()
	l.hello("G3", net.IP{10, 77, 0, 13})
	said := time.Now()
	if !waitFor(2*time.Second, func() bool { return slices.Contains(p0.rarps(mac), vlan) }) {
		t.Fatalf("the new guest was not announced on the active uplink on VLAN %d: RARPs on %v, frames on %v", vlan, p0.rarps(mac), p0.vlans(mac))
	}
	announced := time.Since(said)
	t.Logf("FIGURES guest port created -> attached by pattern %v; first frame -> announced upstream %v", attached.Round(time.Millisecond), announced.Round(time.Millisecond))
	g := l.status()
	if g.Failovers != 0 || g.Arrivals == 0 {
		t.Errorf("failovers %d (want 0: the announcement is the arrival's), arrivals %d", g.Failovers, g.Arrivals)
	}
	if got := p0.rarps(mac); slices.Contains(got, 0) {
		t.Errorf("the access port's guest announced untagged: %v", got)
	}
	if out, _ := execCtl(l, "status"); !strings.Contains(out, "guest port patterns: vm*") || !strings.Contains(out, "vm7 (vlan 100)") {
		t.Errorf("status does not show the pattern and its port:\n%s", out)
	}

	// Gone: the port and what was learned behind it.
	l.in("H", func() {
		lk, err := netlink.LinkByName("vm7")
		l.check(err)
		l.check(netlink.LinkDel(lk))
	})
	if !waitFor(2*time.Second, func() bool { return portOf("vm7") == nil }) {
		t.Error("vm7 still a port after its interface was deleted")
	}
	if out, err := execCtl(l, "fdb"); err != nil || strings.Contains(out, mac) {
		t.Errorf("the deleted port's guest is still in the FDB (%v):\n%s", err, out)
	}

	// Removed by the operator: a link event does not bring it back.
	if _, err := execCtl(l, "remove-port", "lab", "vm1"); err != nil {
		t.Fatal(err)
	}
	l.in("H", func() { l.setDown("vm1"); l.setUp("vm1") })
	time.Sleep(300 * time.Millisecond)
	if p := portOf("vm1"); p != nil {
		t.Errorf("vm1 came back after remove-port: %+v", p)
	}
	// ...until the interface is re-created.
	l.in("H", func() {
		link, err := netlink.LinkByName("vm1")
		l.check(err)
		l.check(netlink.LinkDel(link))
	})
	guest("vm1", "G2", "10.77.0.12")
	if !waitFor(2*time.Second, func() bool { return portOf("vm1") != nil }) {
		t.Error("vm1 not attached again after it was re-created")
	}
}
