package e2e

import (
	"bytes"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/uplinkd/uplinkd/pkg/control"
)

// announcement is a gratuitous ARP or an unsolicited neighbour
// advertisement seen on an upstream port: who it says is where.
type announcement struct {
	mac  string
	addr netip.Addr
}

func (a announcement) String() string { return a.mac + " " + a.addr.String() }

// announcements records the gratuitous ARPs and unsolicited neighbour
// advertisements arriving on one interface, until close.
type announcements struct {
	r    *receiver
	mu   sync.Mutex
	seen map[announcement]int
}

func (l *lab) watchAnnouncements(role, ifname string) *announcements {
	a := &announcements{seen: map[announcement]int{}}
	a.r = l.receiveEach(role, ifname, func(frame []byte, _ time.Time) {
		if an, ok := parseAnnouncement(frame); ok {
			a.mu.Lock()
			a.seen[an]++
			a.mu.Unlock()
		}
	})
	return a
}

// parseAnnouncement reads a gratuitous ARP (sender and target address
// the same) or an unsolicited neighbour advertisement (to all nodes),
// tagged or not.
func parseAnnouncement(frame []byte) (announcement, bool) {
	p := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.NoCopy)
	if arp, ok := p.Layer(layers.LayerTypeARP).(*layers.ARP); ok {
		if bytes.Equal(arp.SourceProtAddress, arp.DstProtAddress) {
			addr, _ := netip.AddrFromSlice(arp.SourceProtAddress)
			return announcement{net.HardwareAddr(arp.SourceHwAddress).String(), addr}, true
		}
		return announcement{}, false
	}
	na, ok := p.Layer(layers.LayerTypeICMPv6NeighborAdvertisement).(*layers.ICMPv6NeighborAdvertisement)
	ip6, ok6 := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
	eth, okEth := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	if !ok || !ok6 || !okEth || !ip6.DstIP.Equal(net.IPv6linklocalallnodes) {
		return announcement{}, false
	}
	addr, _ := netip.AddrFromSlice(na.TargetAddress)
	return announcement{eth.SrcMAC.String(), addr}, true
}

// has says whether an was seen.
func (a *announcements) has(an announcement) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.seen[an] > 0
}

// close stops the receiver and returns what it saw; a receiver that
// failed fails the test, rather than passing for "not announced".
func (a *announcements) close(t *testing.T) map[announcement]int {
	t.Helper()
	a.r.close()
	if a.r.err != nil {
		t.Fatalf("announcement receiver: %v", a.r.err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.seen
}

// TestHostPortAnnouncedAndReloaded: with both uplinks up, a broadcast
// from upstream reaches the host once (not also through the standby).
// After a failover the host port's MAC is announced on the new uplink
// with every address on the host's end, IPv4 (gratuitous ARP) and IPv6
// (unsolicited NA), though the host sent nothing the switch could learn
// them from, and the upstream bridge has it behind the new uplink. Once
// the operator gives the host end another MAC, the failback announces the
// addresses with that one only. Then reload adds a host port (made and
// attached, carrying the host's ping) and removes one (detached, its pair
// left in place), and a reload of the same file re-creates a host port
// deleted while uplinkd ran.
func TestHostPortAnnouncedAndReloaded(t *testing.T) {
	l := newLab(t, labOptions{failback: true, extra: "    host_ports: [{name: mgmt0}]\n"})
	l.startDaemon()
	l.waitActive("up0")
	_, hostMAC := l.hostPortUp("mgmt0", hostPortIP)
	mac := hostMAC.String()
	v4, v6 := netip.MustParseAddr(hostPortIP.String()), netip.MustParseAddr("2001:db8:77::50")
	l.in("H", func() {
		host, err := netlink.LinkByName("mgmt0")
		l.check(err)
		addr, err := netlink.ParseAddr(v6.String() + "/64")
		l.check(err)
		addr.Flags = unix.IFA_F_NODAD // no DAD: the host says nothing of it before the cut
		l.check(netlink.AddrAdd(host, addr))
	})

	// A broadcast from upstream, which the upstream bridge floods out of
	// both uplinks' peers, reaches the host once: through the active
	// uplink and the host port, not also through the standby.
	const streamBroadcast = 9
	rx := l.receive("H", "mgmt0")
	testbed := l.testbedDrops()
	b := l.send("U", "br0", broadcastMAC, l.macs["br0"], streamBroadcast, 1000, 100*time.Millisecond)
	if b.err != nil {
		t.Fatalf("sender: %v", b.err)
	}
	b.wait()
	time.Sleep(50 * time.Millisecond) // for copies that must not come
	rx.close()
	lost, dups := missing(b.sent, streamBroadcast, rx)
	if n := testbed.unexplained(lost, rx); n != 0 || dups != 0 || b.sent == 0 {
		t.Errorf("%d broadcasts from upstream with both uplinks up: %d lost in the switch, %d reached the host port twice; want each once",
			b.sent, n, dups)
	}
	t.Logf("FIGURES host port: %d broadcasts from upstream, %d lost (testbed drops included), %d duplicated", b.sent, lost, dups)

	watch := l.watchAnnouncements("U", "p1")
	cutAt := l.cut("p0")
	l.waitActive("up1")
	announced := waitFor(3*time.Second, func() bool { return watch.has(announcement{mac, v4}) && watch.has(announcement{mac, v6}) })
	seenAfter := time.Since(cutAt)
	seen := watch.close(t)
	if !announced {
		t.Errorf("host port %s not announced with %s and %s on the new uplink within 3s of the cut; seen: %v", mac, v4, v6, seen)
	}
	if !waitFor(2*time.Second, func() bool { return l.bridgeFDB()[mac] == "p1" }) {
		t.Errorf("upstream bridge has the host port %s on %q, want p1", mac, l.bridgeFDB()[mac])
	}
	t.Logf("FIGURES host port announced with its IPv4 and IPv6 addresses, both seen within %v of the cut", seenAfter.Round(time.Millisecond))

	// The host speaks from its IPv4 address, so the switch learns the old
	// MAC with it: the state in which the old MAC could take the address
	// along.
	teach := l.ping("H", upstreamHost.ip)
	learned := waitFor(2*time.Second, func() bool {
		gs, err := l.client().Guests()
		return err == nil && slices.ContainsFunc(gs, func(g control.Guest) bool { return g.MAC == mac && slices.Contains(g.Addrs, v4.String()) })
	})
	teach.finish()
	if !learned {
		t.Fatalf("the switch did not learn %s with %s", mac, v4)
	}

	// The operator gives mgmt0 another MAC (systemd-networkd's
	// MACAddress=, say): the failback announces the host's addresses with
	// it, and not with the old one, which the switch learned with them.
	newMAC := "02:42:00:00:77:50"
	l.in("H", func() {
		host, err := netlink.LinkByName("mgmt0")
		l.check(err)
		hw, err := net.ParseMAC(newMAC)
		l.check(err)
		l.check(netlink.LinkSetHardwareAddr(host, hw))
	})
	watch = l.watchAnnouncements("U", "p0")
	l.restore("p0")
	l.waitActive("up0")
	waitFor(3*time.Second, func() bool { return watch.has(announcement{newMAC, v4}) && watch.has(announcement{newMAC, v6}) })
	time.Sleep(100 * time.Millisecond) // the rest of the run's round
	seen = watch.close(t)
	for _, addr := range []netip.Addr{v4, v6} {
		if seen[announcement{newMAC, addr}] == 0 || seen[announcement{mac, addr}] > 0 {
			t.Errorf("after mgmt0's MAC changed from %s to %s, the failback announced %s with the old MAC %d times and the new %d: want only the new; seen %v",
				mac, newMAC, addr, seen[announcement{mac, addr}], seen[announcement{newMAC, addr}], seen)
		}
	}

	// Reload: stor0 in, mgmt0 out.
	orig, err := os.ReadFile(l.d.config)
	if err != nil {
		t.Fatal(err)
	}
	reload := func(cfg string, want ...string) {
		t.Helper()
		if err := os.WriteFile(l.d.config, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := execCtl(l, "reload")
		if err != nil {
			t.Fatalf("reload: %v\n%s", err, out)
		}
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("reload output lacks %q:\n%s", w, out)
			}
		}
	}
	swapped := strings.Replace(string(orig), "host_ports: [{name: mgmt0}]", "host_ports: [{name: stor0}]", 1)
	reload(swapped, "host port stor0 added", "host port mgmt0 removed; its veth pair mgmt0/mgmt0-sw is left in place")
	g := l.status()
	if _, ok := guestPortOf(g, "stor0-sw"); !ok {
		t.Errorf("after the reload stor0-sw is no port: %+v", g.GuestPorts)
	}
	if _, ok := guestPortOf(g, "mgmt0-sw"); ok {
		t.Errorf("after the reload mgmt0-sw is still a port")
	}
	l.in("H", func() {
		host, err := netlink.LinkByName("mgmt0")
		if err != nil {
			t.Errorf("mgmt0 deleted by the reload that dropped it: %v", err)
			return
		}
		// The host's address moves to the new host port, as an operator
		// would move it.
		l.check(netlink.AddrDel(host, &netlink.Addr{IPNet: &net.IPNet{IP: hostPortIP, Mask: net.CIDRMask(24, 32)}}))
		l.addr("stor0", hostPortIP.String()+"/24")
	})
	pings := l.ping("H", upstreamHost.ip)
	time.Sleep(time.Second)
	pings.finish()
	if f := pings.lossIn(time.Time{}, time.Now()); !f.answers {
		t.Errorf("no answer to the host's ping through the added host port stor0: %v", f)
	}

	// Deleted while uplinkd runs: a reload of the same file re-creates it.
	l.in("H", func() {
		host, err := netlink.LinkByName("stor0")
		l.check(err)
		l.check(netlink.LinkDel(host))
	})
	reload(swapped, "host port stor0 was deleted; re-creating it")
	l.in("H", func() {
		if _, err := netlink.LinkByName("stor0"); err != nil {
			t.Errorf("stor0 not re-created: %v", err)
		}
	})
	if !waitFor(2*time.Second, func() bool { p, ok := guestPortOf(l.status(), "stor0-sw"); return ok && p.Ifindex > 0 && p.Error == "" }) {
		p, _ := guestPortOf(l.status(), "stor0-sw")
		t.Errorf("re-created stor0-sw not attached: %+v", p)
	}
}
