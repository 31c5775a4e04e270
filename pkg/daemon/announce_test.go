package daemon

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/pkg/announce"
	"github.com/uplinkd/uplinkd/pkg/balance"
	"github.com/uplinkd/uplinkd/pkg/config"
	"github.com/uplinkd/uplinkd/pkg/datapath"
	"github.com/uplinkd/uplinkd/pkg/limits"
	"github.com/uplinkd/uplinkd/pkg/linkwatch"
)

func guest(last byte) announce.Guest {
	return announce.Guest{MAC: net.HardwareAddr{2, 0xaa, 0, 0, 0, last}}
}

// planRun: one run with the group's setting, or none when there is
// nothing to send or nowhere to send it.
func TestPlanRun(t *testing.T) {
	set := config.Announce{Count: 3, Interval: 50 * time.Millisecond}
	up := outlet{name: "up1", ifindex: 10}
	guests := []announce.Guest{guest(1)}
	for _, tc := range []struct {
		name   string
		set    config.Announce
		up     outlet
		guests []announce.Guest
		ok     bool
	}{
		{"announcements off", config.Announce{Count: 0, Interval: time.Second}, up, guests, false},
		{"uplink not attached", set, outlet{name: "up1"}, guests, false},
		{"no guests", set, up, nil, false},
		{"a run", set, up, guests, true},
	} {
		req, ok := planRun("g", tc.set, tc.up, tc.guests, "k")
		if ok != tc.ok {
			t.Errorf("%s: planned %t, want %t", tc.name, ok, tc.ok)
			continue
		}
		want := announce.Request{Group: "g", Key: "k", Ifindex: 10, Ifname: "up1", Guests: guests, Count: 3, Interval: 50 * time.Millisecond}
		if ok && (req.Group != want.Group || req.Key != want.Key || req.Ifindex != want.Ifindex || req.Ifname != want.Ifname ||
			req.Count != want.Count || req.Interval != want.Interval || len(req.Guests) != 1) {
			t.Errorf("%s: %+v, want %+v", tc.name, req, want)
		}
	}
}

// planBySlot: each guest on its slot's uplink, one run per uplink in slot
// order; guests without a slot, and uplinks not attached, get none.
func TestPlanBySlot(t *testing.T) {
	slots := map[byte]limits.Slot{1: 1, 2: 0, 3: limits.NoSlot, 4: 1, 5: 2}
	slotOf := func(g announce.Guest) limits.Slot { return slots[g.MAC[5]] }
	guests := []announce.Guest{guest(1), guest(2), guest(3), guest(4), guest(5)}
	var ups [limits.MaxUplinks]outlet
	ups[0], ups[1], ups[2] = outlet{"up1", 10}, outlet{"up2", 11}, outlet{"up3", 0}
	set := config.Announce{Count: 1}
	var got []string
	for _, r := range planBySlot("g", set, ups, slotOf, guests, "moved") {
		s := r.Key + "@" + r.Ifname + ":"
		for _, g := range r.Guests {
			s += " " + g.MAC.String()
		}
		got = append(got, s)
	}
	want := []string{"moved/up1@up1: 02:aa:00:00:00:02", "moved/up2@up2: 02:aa:00:00:00:01 02:aa:00:00:00:04"}
	if !slices.Equal(got, want) {
		t.Errorf("runs %q, want %q", got, want)
	}
	if runs := planBySlot("g", config.Announce{}, ups, slotOf, guests, "moved"); len(runs) != 0 {
		t.Errorf("announcements off: %d runs", len(runs))
	}
}

// arrivalLog.among picks the guests that arrived lately; reset forgets
// them but not the count.
func TestArrivalLogAmong(t *testing.T) {
	var l arrivalLog
	now := time.Now()
	l.add(guest(1).MAC, 0, now)
	l.add(guest(2).MAC, 7, now)
	all := []announce.Guest{guest(1), guest(2), {MAC: guest(2).MAC, VLAN: 7}, guest(3)}
	if got := l.among(all); len(got) != 2 || got[0].MAC[5] != 1 || got[1].VLAN != 7 {
		t.Errorf("among: %+v, want guest 1 and guest 2 on VLAN 7", got)
	}
	l.reset()
	if got := l.among(all); len(got) != 0 || l.total != 2 {
		t.Errorf("after reset: %d recent, %d total; want 0, 2", len(got), l.total)
	}
}

// announceDaemon is a test daemon whose loop serves calls (so that
// announcements' results come back), with guests learned behind vm1 and
// vm2, and one of another group.
func announceDaemon(t *testing.T, yaml string, guests ...announce.Guest) (*Daemon, *fakeDataPlane, *fakeHost, *fakeSender) {
	t.Helper()
	d, dp, h := testDaemon(t, yaml, "up1", "up2", "vm1", "vm2")
	for i, g := range guests {
		port := []string{"vm1", "vm2"}[i%2]
		dp.guests = append(dp.guests, datapath.Guest{FDBEntry: datapath.FDBEntry{Group: 0, VLAN: g.VLAN, MAC: g.MAC, Ifindex: h.links[port].index}})
	}
	dp.guests = append(dp.guests, datapath.Guest{FDBEntry: datapath.FDBEntry{Group: 9, MAC: guest(99).MAC}})
	serveCalls(t, d)
	return d, dp, h, d.ann.send.(*fakeSender)
}

// announceStep is one thing that happens to an announcing daemon: guests
// arrive, or a link changes (up/down, or a bounce: down and up between
// two looks); runs are the announcements it starts, as fakeSender.take
// lists them.
type announceStep struct {
	name    string
	arrive  []announce.Guest
	group   uint32 // of the arrivals
	link    string
	up      bool
	bounced bool
	runs    []string
}

func playAnnounce(t *testing.T, d *Daemon, h *fakeHost, s *fakeSender, steps []announceStep) {
	t.Helper()
	for i, st := range steps {
		onLoop(t, d, func() {
			if st.arrive != nil {
				var batch []datapath.Arrival
				for _, g := range st.arrive {
					batch = append(batch, datapath.Arrival{Group: st.group, MAC: g.MAC, VLAN: g.VLAN})
				}
				d.ann.arrivals(d.groups, batch)
				return
			}
			l := h.links[st.link]
			if st.bounced {
				l.changes += 2
			} else if l.up != st.up {
				l.up = st.up
				l.changes++
			}
			d.onLink(h.state(st.link, linkwatch.SourceNetlink, time.Now()))
		})
		if got := s.take(); !slices.Equal(got, st.runs) {
			t.Errorf("step %d (%s): runs %q, want %q", i, st.name, got, st.runs)
		}
	}
}

// Active-backup: arrivals go out on the active uplink with the others that
// arrived lately; a failover announces every guest of the group on the new
// uplink and ends the arrivals' set; a bounce of the active uplink
// announces again, and so does failback; the result
// of a failover's run is recorded on its event.
func TestAnnounceActiveBackup(t *testing.T) {
	a, b := guest(1), guest(2)
	d, _, h, s := announceDaemon(t, `groups:
  - name: g
    announce: {count: 2, interval: 10ms}
    uplinks: [{name: up1, priority: 10}, {name: up2, priority: 20}]
    guest_ports: [{name: vm1, announce_priority: 5}, {name: vm2}]
`, a, b)
	const (
		ga = "02:aa:00:00:00:01!5" // behind vm1, announced first
		gb = "02:aa:00:00:00:02"
	)
	playAnnounce(t, d, h, s, []announceStep{
		{name: "a arrives", arrive: []announce.Guest{a}, runs: []string{"arrivals@up1: " + ga}},
		{name: "b arrives: a again with it", arrive: []announce.Guest{b}, runs: []string{"arrivals@up1: " + ga + " " + gb}},
		{name: "up1 fails", link: "up1", up: false, runs: []string{"@up2: " + ga + " " + gb}},
		{name: "b arrives after the failover: alone", arrive: []announce.Guest{b}, runs: []string{"arrivals@up2: " + gb}},
		{name: "a guest of another group arrives", arrive: []announce.Guest{guest(99)}, group: 9, runs: nil},
		{name: "up2 seen up: nothing changed", link: "up2", up: true, runs: nil},
		{name: "up2 bounced between two looks", link: "up2", bounced: true, runs: []string{"@up2: " + ga + " " + gb}},
		{name: "up1 is back: failback", link: "up1", up: true, runs: []string{"@up1: " + ga + " " + gb}},
	})
	// The failover's event gets its run's result, on the loop.
	deadline := time.Now().Add(5 * time.Second)
	for {
		var frames int
		var sent uint64
		onLoop(t, d, func() { frames, sent = d.timeline.events[1].AnnounceFrames, d.groups[0].announced.frames })
		if frames == 4 && sent == 2+4+4+2+4+4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("failover event: %d frames (want 4); group sent %d (want 20)", frames, sent)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Balance: the guests whose bucket moved are announced on their new
// uplink, arrivals and bounces each on the uplink its bucket leaves
// through.
func TestAnnounceBalance(t *testing.T) {
	// e leaves through up1 (even bucket: home slot 0), o through up2.
	var e, o announce.Guest
	for i := byte(1); e.MAC == nil || o.MAC == nil; i++ {
		g := guest(i)
		if balance.Bucket(g.MAC, 0)%2 == 0 && e.MAC == nil {
			e = g
		} else if balance.Bucket(g.MAC, 0)%2 == 1 && o.MAC == nil {
			o = g
		}
	}
	d, _, h, s := announceDaemon(t, `groups:
  - name: g
    mode: balance
    announce: {count: 1, interval: 10ms}
    uplinks: [{name: up1}, {name: up2}]
    guest_ports: [{name: vm1}, {name: vm2}]
`, e, o)
	playAnnounce(t, d, h, s, []announceStep{
		{name: "up1 fails: its buckets move to up2", link: "up1", up: false, runs: []string{"moved/up2@up2: " + e.MAC.String()}},
		{name: "up1 is back: they move home", link: "up1", up: true, runs: []string{"moved/up1@up1: " + e.MAC.String()}},
		{name: "both arrive", arrive: []announce.Guest{e, o}, runs: []string{"arrivals/up1@up1: " + e.MAC.String(), "arrivals/up2@up2: " + o.MAC.String()}},
		{name: "up2 seen up: nothing changed", link: "up2", up: true},
		{name: "up2 bounces", link: "up2", bounced: true, runs: []string{"bounced/up2@up2: " + o.MAC.String()}},
	})
}

// announce count 0: nothing is ever sent.
func TestAnnounceOff(t *testing.T) {
	d, _, h, s := announceDaemon(t, groupYAML("failback: true"), guest(1))
	playAnnounce(t, d, h, s, []announceStep{
		{name: "arrival", arrive: []announce.Guest{guest(1)}},
		{name: "failover", link: "up1", up: false},
		{name: "bounce", link: "up2", bounced: true},
	})
}

// withHostPorts: a learned host port gets the host's addresses added to
// the learned ones (once each, sorted); one not learned is added; a
// guest with the same MAC on another VLAN is another guest. Another MAC
// on the host port's VLAN (the one the host had before) loses the host's
// addresses and keeps its others; on another VLAN it keeps them all.
func TestWithHostPorts(t *testing.T) {
	ip := netip.MustParseAddr
	mac, old := net.HardwareAddr{2, 0xbb, 0, 0, 0, 1}, net.HardwareAddr{2, 0xbb, 0, 0, 0, 2}
	learned := []announce.Guest{
		{MAC: mac, VLAN: 10, Addrs: []netip.Addr{ip("10.0.0.9"), ip("fe80::1")}},
		{MAC: old, VLAN: 10, Addrs: []netip.Addr{ip("10.0.0.9"), ip("10.0.0.77"), ip("2001:db8::9")}},
		{MAC: old, VLAN: 30, Addrs: []netip.Addr{ip("10.0.0.9")}},
		guest(1),
	}
	hosts := []announce.Guest{
		{MAC: mac, VLAN: 10, Addrs: []netip.Addr{ip("2001:db8::9"), ip("10.0.0.9")}},
		{MAC: mac, VLAN: 20, Addrs: []netip.Addr{ip("192.0.2.1")}},
	}
	got := withHostPorts(learned, hosts)
	want := []announce.Guest{
		{MAC: mac, VLAN: 10, Addrs: []netip.Addr{ip("10.0.0.9"), ip("2001:db8::9"), ip("fe80::1")}},
		{MAC: old, VLAN: 10, Addrs: []netip.Addr{ip("10.0.0.77")}},
		{MAC: old, VLAN: 30, Addrs: []netip.Addr{ip("10.0.0.9")}},
		guest(1),
		{MAC: mac, VLAN: 20, Addrs: []netip.Addr{ip("192.0.2.1")}},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d guests %v, want %v", len(got), got, want)
	}
	for i := range want {
		if got[i].MAC.String() != want[i].MAC.String() || got[i].VLAN != want[i].VLAN || !slices.Equal(got[i].Addrs, want[i].Addrs) {
			t.Errorf("guest %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	if len(withHostPorts(nil, nil)) != 0 {
		t.Error("no guests and no host ports: want none")
	}
}

// A failover announces the host port with the addresses on the host's
// end, though the switch never learned it; and with the learned entry
// merged once it did. The group's two host ports are read with one
// address dump.
func TestAnnounceHostPort(t *testing.T) {
	d, dp, h, s := announceDaemon(t, strings.Replace(hostPortGroupYAML, "{name: mgmt0}", "{name: mgmt0, vlan: 7}, {name: stor0}", 1), guest(1))
	h.links["mgmt0"].addrs = []netip.Addr{netip.MustParseAddr("10.0.0.5"), netip.MustParseAddr("2001:db8::5")}
	hostMAC := h.link("mgmt0", h.links["mgmt0"]).Attrs().HardwareAddr
	hostRun := func(step string) announce.Guest {
		t.Helper()
		run := s.onlyRun(t, step)
		for _, gu := range run.Guests {
			if bytes.Equal(gu.MAC, hostMAC) {
				return gu
			}
		}
		t.Fatalf("%s: host port %s not announced: %+v", step, hostMAC, run.Guests)
		return announce.Guest{}
	}
	flip := func(name string, up bool) {
		onLoop(t, d, func() {
			h.links[name].up = up
			h.links[name].changes++
			d.onLink(h.state(name, linkwatch.SourceNetlink, time.Now()))
		})
	}
	calls := h.hostEndCalls
	flip("up1", false)
	if gu := hostRun("failover, not learned"); gu.VLAN != 7 || !slices.Equal(gu.Addrs, h.links["mgmt0"].addrs) {
		t.Errorf("host port announced as %+v, want VLAN 7 with %v", gu, h.links["mgmt0"].addrs)
	}
	if n := h.hostEndCalls - calls; n != 1 {
		t.Errorf("the failover read its two host ports with %d address dumps, want 1", n)
	}
	onLoop(t, d, func() {
		dp.guests = append(dp.guests, datapath.Guest{FDBEntry: datapath.FDBEntry{VLAN: 7, MAC: hostMAC, Ifindex: h.links["mgmt0-sw"].index},
			Addrs: []netip.Addr{netip.MustParseAddr("fe80::5")}})
	})
	flip("up1", true)
	want := []netip.Addr{netip.MustParseAddr("10.0.0.5"), netip.MustParseAddr("2001:db8::5"), netip.MustParseAddr("fe80::5")}
	if gu := hostRun("failback, learned"); !slices.Equal(gu.Addrs, want) {
		t.Errorf("learned host port announced with %v, want %v", gu.Addrs, want)
	}
}

// A host end that cannot be read is not announced on a guess: what the
// switch learned of it goes out, its MAC with the addresses it was
// learned with, or nothing. One whose addresses cannot be listed goes
// out with its MAC and the learned addresses.
func TestAnnounceHostPortNotRead(t *testing.T) {
	d, dp, h, s := announceDaemon(t, hostPortGroupYAML, guest(1))
	mgmt := h.links["mgmt0"]
	mgmt.addrs, mgmt.readErr = []netip.Addr{netip.MustParseAddr("10.0.0.5")}, errors.New("no buffer space available")
	hostMAC := h.link("mgmt0", mgmt).Attrs().HardwareAddr
	learned := []netip.Addr{netip.MustParseAddr("fe80::5")}
	flip := func(step string, up bool) map[string][]netip.Addr {
		t.Helper()
		onLoop(t, d, func() {
			h.links["up1"].up = up
			h.links["up1"].changes++
			d.onLink(h.state("up1", linkwatch.SourceNetlink, time.Now()))
		})
		out := map[string][]netip.Addr{}
		for _, gu := range s.onlyRun(t, step).Guests {
			out[gu.MAC.String()] = gu.Addrs
		}
		return out
	}
	if got := flip("failover, not read, not learned", false); len(got) != 1 {
		t.Errorf("announced %v; want guest 1 only, not the host port", got)
	}
	onLoop(t, d, func() {
		dp.guests = append(dp.guests, datapath.Guest{FDBEntry: datapath.FDBEntry{MAC: hostMAC, Ifindex: h.links["mgmt0-sw"].index}, Addrs: learned})
	})
	if got, ok := flip("failback, not read, learned", true)[hostMAC.String()]; !ok || !slices.Equal(got, learned) {
		t.Errorf("host port announced: %t with %v; want it with %v, as learned", ok, got, learned)
	}
	onLoop(t, d, func() { mgmt.readErr, mgmt.addrsErr = nil, errors.New("no buffer space available") })
	if got, ok := flip("failover, addresses not listed", false)[hostMAC.String()]; !ok || !slices.Equal(got, learned) {
		t.Errorf("host port announced: %t with %v; want it with %v, as learned", ok, got, learned)
	}
}

// Balance: a host port is announced like a guest, on the uplink its
// bucket moves to, though the switch never learned it.
func TestAnnounceHostPortBalance(t *testing.T) {
	d, _, h, s := announceDaemon(t, `groups:
  - name: g
    mode: balance
    announce: {count: 1, interval: 10ms}
    uplinks: [{name: up1}, {name: up2}]
    guest_ports: [{name: vm1}, {name: vm2}]
    host_ports: [{name: mgmt0}]
`)
	hostMAC := h.link("mgmt0", h.links["mgmt0"]).Attrs().HardwareAddr
	home, other := "up1", "up2" // even bucket: home slot 0
	if balance.Bucket(hostMAC, 0)%2 == 1 {
		home, other = other, home
	}
	playAnnounce(t, d, h, s, []announceStep{
		{name: "the host port's uplink fails", link: home, up: false,
			runs: []string{"moved/" + other + "@" + other + ": " + hostMAC.String()}},
	})
}

// hostPortGroupYAML is an active-backup group with two guest ports and
// the host port mgmt0, announcing once.
const hostPortGroupYAML = `groups:
  - name: g
    announce: {count: 1, interval: 10ms}
    uplinks: [{name: up1, priority: 10}, {name: up2, priority: 20}]
    guest_ports: [vm1, vm2]
    host_ports: [{name: mgmt0}]
`

// Arrivals read a host port's host end only when a guest arrived on its
// port lately: a guest's arrival, with no host port's among the recent
// ones, costs no netlink request.
func TestArrivalsReadHostAddrsOnlyForHostPorts(t *testing.T) {
	d, dp, h, s := announceDaemon(t, hostPortGroupYAML, guest(1))
	hostMAC := h.link("mgmt0", h.links["mgmt0"]).Attrs().HardwareAddr
	playAnnounce(t, d, h, s, []announceStep{
		{name: "a guest arrives", arrive: []announce.Guest{guest(1)}, runs: []string{"arrivals@up1: " + guest(1).MAC.String()}},
	})
	if h.hostEndReads != 0 {
		t.Errorf("a guest's arrival read host port addresses %d times, want 0", h.hostEndReads)
	}
	onLoop(t, d, func() {
		dp.guests = append(dp.guests, datapath.Guest{FDBEntry: datapath.FDBEntry{MAC: hostMAC, Ifindex: h.links["mgmt0-sw"].index}})
	})
	playAnnounce(t, d, h, s, []announceStep{
		{name: "the host port arrives", arrive: []announce.Guest{{MAC: hostMAC}},
			runs: []string{"arrivals@up1: " + guest(1).MAC.String() + " " + hostMAC.String()}},
	})
	if h.hostEndReads != 1 {
		t.Errorf("the host port's arrival read addresses %d times, want 1", h.hostEndReads)
	}
}

// The operator gives a host end another MAC (systemd-networkd's
// MACAddress=, say): the new MAC's arrival and the next failover announce
// it with the host's address, and the old MAC, still learned with that
// address, without it: the address must not go back to a MAC no one
// answers for.
func TestAnnounceHostPortNewMAC(t *testing.T) {
	d, dp, h, s := announceDaemon(t, hostPortGroupYAML)
	hostIP := []netip.Addr{netip.MustParseAddr("10.0.0.5")}
	oldMAC, newMAC := h.link("mgmt0", h.links["mgmt0"]).Attrs().HardwareAddr, net.HardwareAddr{2, 0x42, 0, 0, 0, 5}
	sw := h.links["mgmt0-sw"].index
	onLoop(t, d, func() {
		h.links["mgmt0"].addrs, h.links["mgmt0"].mac = hostIP, newMAC
		dp.guests = append(dp.guests,
			datapath.Guest{FDBEntry: datapath.FDBEntry{MAC: oldMAC, Ifindex: sw}, Addrs: hostIP},
			datapath.Guest{FDBEntry: datapath.FDBEntry{MAC: newMAC, Ifindex: sw}})
	})
	announced := func(step string) map[string][]netip.Addr {
		t.Helper()
		out := map[string][]netip.Addr{}
		for _, gu := range s.onlyRun(t, step).Guests {
			out[gu.MAC.String()] = gu.Addrs
		}
		return out
	}

	onLoop(t, d, func() { d.ann.arrivals(d.groups, []datapath.Arrival{{MAC: newMAC, Ifindex: sw}}) })
	if got := announced("the new MAC arrives"); !slices.Equal(got[newMAC.String()], hostIP) {
		t.Errorf("arrival of the new MAC announced %v, want %s with %v", got, newMAC, hostIP)
	}
	onLoop(t, d, func() {
		h.links["up1"].up = false
		h.links["up1"].changes++
		d.onLink(h.state("up1", linkwatch.SourceNetlink, time.Now()))
	})
	got := announced("failover")
	if old, ok := got[oldMAC.String()]; !slices.Equal(got[newMAC.String()], hostIP) || !ok || len(old) != 0 {
		t.Errorf("failover announced %v; want %s with %v, and %s with no address", got, newMAC, hostIP, oldMAC)
	}
}
