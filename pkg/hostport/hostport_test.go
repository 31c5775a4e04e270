package hostport

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/uplinkd/uplinkd/pkg/config"
	"github.com/uplinkd/uplinkd/pkg/nldump"
	"github.com/uplinkd/uplinkd/test/testenv"
)

func hostPort(name string, mtu int) config.HostPort {
	return config.HostPort{Name: name, SwitchEnd: config.SwitchEnd(name), MAC: config.DeriveMAC("g", name), MTU: mtu}
}

// TestEnsureCreatesThenAdopts: a missing pair is made with the MAC and
// MTU, both ends up; the second call adopts it unchanged (same indexes),
// even after the host's end was set down; anything else under the names
// is refused.
func TestEnsureCreatesThenAdopts(t *testing.T) {
	testenv.RequireRoot(t, "creates veth pairs in a namespace")
	testenv.EnterNetns(t, testenv.UniqueName("ulxp"))
	hp := hostPort("ulxpmgmt0", 9000)

	first, err := Ensure(hp)
	if err != nil {
		t.Fatal(err)
	}
	if !first.Created {
		t.Error("first Ensure did not create the pair")
	}
	host, err := netlink.LinkByName(hp.Name)
	if err != nil {
		t.Fatal(err)
	}
	sw, err := netlink.LinkByName(hp.SwitchEnd)
	if err != nil {
		t.Fatal(err)
	}
	if a := host.Attrs(); !bytes.Equal(a.HardwareAddr, hp.MAC) || a.MTU != 9000 || a.Index != first.HostIndex {
		t.Errorf("host end: mac %s mtu %d index %d; want %s, 9000, %d", a.HardwareAddr, a.MTU, a.Index, hp.MAC, first.HostIndex)
	}
	if a := sw.Attrs(); a.MTU != 9000 || a.Index != first.SwitchIndex {
		t.Errorf("switch end: mtu %d index %d; want 9000, %d", a.MTU, a.Index, first.SwitchIndex)
	}
	for _, l := range []netlink.Link{host, sw} {
		if l.Attrs().OperState != netlink.OperUp && l.Attrs().RawFlags&1 == 0 {
			t.Errorf("%s is not up: %v", l.Attrs().Name, l.Attrs().Flags)
		}
	}

	if err := netlink.LinkSetDown(host); err != nil {
		t.Fatal(err)
	}
	changed := hp
	changed.MTU = 1500
	again, err := Ensure(changed)
	if err != nil {
		t.Fatal(err)
	}
	if again.Created || again.HostIndex != first.HostIndex || again.SwitchIndex != first.SwitchIndex {
		t.Errorf("second Ensure = %+v, want the pair of %+v adopted", again, first)
	}
	if len(again.Differs) != 1 || !strings.Contains(again.Differs[0], "mtu 1500") {
		t.Errorf("Differs = %q, want the MTU named", again.Differs)
	}
	if host, _ = netlink.LinkByName(hp.Name); host.Attrs().RawFlags&1 == 0 || host.Attrs().MTU != 9000 {
		t.Errorf("adopted host end: up %t, mtu %d; want up, its MTU kept", host.Attrs().RawFlags&1 != 0, host.Attrs().MTU)
	}
}

func TestEnsureRefusesOthers(t *testing.T) {
	testenv.RequireRoot(t, "creates interfaces in a namespace")
	testenv.EnterNetns(t, testenv.UniqueName("ulxp"))
	add := func(l netlink.Link) {
		t.Helper()
		if err := netlink.LinkAdd(l); err != nil {
			t.Fatal(err)
		}
	}
	add(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "ulxpbridge"}})
	add(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "ulxpother"}, PeerName: "ulxpother-x"})
	add(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "ulxpfree-sw"}})
	for _, tc := range []struct {
		name string
		want string
	}{
		{"ulxpbridge", "exists and is a bridge, not a veth pair"},
		{"ulxpother", "its peer is not ulxpother-sw"},
		{"ulxpfree", "its switch end's name ulxpfree-sw is taken by another interface (bridge)"},
	} {
		_, err := Ensure(hostPort(tc.name, 0))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Ensure(%s) = %v, want an error with %q", tc.name, err, tc.want)
		}
	}
	if _, err := netlink.LinkByName("ulxpfree"); err == nil {
		t.Error("Ensure created a pair whose switch end's name was taken")
	}
}

// TestSwitchEndHasNoIPv6: the switch end gets no IPv6 link-local
// address (it is a port, not the host's interface) while the host's end
// does.
func TestSwitchEndHasNoIPv6(t *testing.T) {
	testenv.RequireRoot(t, "creates veth pairs in a namespace")
	testenv.EnterNetns(t, testenv.UniqueName("ulxp"))
	hp := hostPort("ulxpv6", 0)
	if _, err := Ensure(hp); err != nil {
		t.Fatal(err)
	}
	ipv6Addrs := func(name string) ([]netlink.Addr, error) {
		link := mustLink(t, name)
		return nldump.Retry(func() ([]netlink.Addr, error) { return netlink.AddrList(link, netlink.FAMILY_V6) })
	}
	deadline := time.Now().Add(3 * time.Second)
	var host []netip.Addr
	for len(host) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		list, err := ipv6Addrs(hp.Name)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range list {
			host = append(host, netip.MustParseAddr(a.IP.String()))
		}
	}
	if len(host) == 0 {
		t.Fatalf("host end %s has no IPv6 address after 3s: is IPv6 on in this kernel?", hp.Name)
	}
	sw, err := ipv6Addrs(hp.SwitchEnd)
	if err != nil {
		t.Fatal(err)
	}
	if len(sw) > 0 {
		t.Errorf("switch end %s has IPv6 addresses %v, want none", hp.SwitchEnd, sw)
	}
}

// TestReadEnds: ReadEnds gives each host end's state, MAC and MTU, and
// lists the addresses the host answers for on it (on it only: one dump
// serves every end), both families, sorted, and not one still in DAD; a
// missing interface is no error.
func TestReadEnds(t *testing.T) {
	testenv.RequireRoot(t, "creates veth pairs in a namespace")
	testenv.EnterNetns(t, testenv.UniqueName("ulxp"))
	hp, other := hostPort("ulxpaddr", 0), hostPort("ulxpother", 0)
	for _, h := range []config.HostPort{hp, other} {
		if _, err := Ensure(h); err != nil {
			t.Fatal(err)
		}
	}
	link := mustLink(t, hp.Name)
	for _, a := range []struct {
		link  netlink.Link
		cidr  string
		flags int
	}{
		{link, "192.0.2.7/24", 0}, {link, "2001:db8::7/64", unix.IFA_F_NODAD}, {link, "2001:db8::8/64", 0},
		{mustLink(t, other.Name), "198.51.100.7/24", 0},
	} {
		addr, err := netlink.ParseAddr(a.cidr)
		if err != nil {
			t.Fatal(err)
		}
		addr.Flags = a.flags
		if err := netlink.AddrAdd(a.link, addr); err != nil {
			t.Fatalf("add %s: %v", a.cidr, err)
		}
	}
	global := func(addrs []netip.Addr) []netip.Addr {
		return slices.DeleteFunc(slices.Clone(addrs), netip.Addr.IsLinkLocalUnicast)
	}
	ends, errs := ReadEnds([]string{hp.Name, "ulxpnone", other.Name})
	if err := errors.Join(errs...); err != nil || len(ends) != 3 {
		t.Fatalf("ReadEnds: %d ends, %v", len(ends), err)
	}
	if end := ends[0]; !end.Exists || !end.Up || !bytes.Equal(end.MAC, hp.MAC) || end.MTU != link.Attrs().MTU {
		t.Errorf("ReadEnds(%s) = %+v, want it up, with MAC %s and MTU %d", hp.Name, end, hp.MAC, link.Attrs().MTU)
	}
	want := []netip.Addr{netip.MustParseAddr("192.0.2.7"), netip.MustParseAddr("2001:db8::7")}
	if got := global(ends[0].Addrs); !slices.Equal(got, want) {
		t.Errorf("ReadEnds(%s).Addrs = %v (link-local left out here), want %v: 2001:db8::8 is still tentative", hp.Name, got, want)
	}
	if ends[1].Exists {
		t.Errorf("ReadEnds of a missing interface = %+v; want it missing, no error", ends[1])
	}
	if got, want := global(ends[2].Addrs), []netip.Addr{netip.MustParseAddr("198.51.100.7")}; !ends[2].Exists || !slices.Equal(got, want) {
		t.Errorf("ReadEnds(%s) = %+v, want its own address %v only", other.Name, ends[2], want)
	}

	// The operator sets another MAC (systemd-networkd's MACAddress=, say)
	// and takes the interface down: ReadEnds sees both.
	mac := net.HardwareAddr{0x02, 0x42, 0, 0, 0, 0x99}
	if err := netlink.LinkSetHardwareAddr(link, mac); err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetDown(link); err != nil {
		t.Fatal(err)
	}
	if end, err := readEnd(hp.Name); err != nil || end.Up || !bytes.Equal(end.MAC, mac) {
		t.Errorf("after a MAC change and down: ReadEnds = %+v, %v; want down with %s", end, err, mac)
	}
	if ends, errs := ReadEnds(nil); len(ends) != 0 || len(errs) != 0 {
		t.Errorf("ReadEnds(nil) = %v, %v; want nothing", ends, errs)
	}
}

func readEnd(name string) (End, error) {
	ends, errs := ReadEnds([]string{name})
	return ends[0], errs[0]
}

// TestReadEndsWhileAddressesChange: addresses change in the namespace (a
// neighbour interface's, as when IPv6 DAD settles or a port comes up)
// while ReadEnds dumps a host end with enough addresses that the dump
// takes several reads. The kernel flags some of those dumps interrupted;
// ReadEnds retries them rather than fail.
func TestReadEndsWhileAddressesChange(t *testing.T) {
	testenv.RequireRoot(t, "creates veth pairs in a namespace")
	ns := testenv.EnterNetns(t, testenv.UniqueName("ulxp"))
	hp := hostPort("ulxpbusy", 0)
	if _, err := Ensure(hp); err != nil {
		t.Fatal(err)
	}
	link := mustLink(t, hp.Name)
	const many = 1000 // about 5 reads of the dump
	for i := range many {
		addr := &netlink.Addr{IPNet: &net.IPNet{IP: net.IPv4(10, 9, byte(i/250), byte(1+i%250)), Mask: net.CIDRMask(32, 32)}}
		if err := netlink.AddrAdd(link, addr); err != nil {
			t.Fatalf("add %s: %v", addr, err)
		}
	}
	// Changes come in bursts with quiet between (an address settles, a
	// port comes up): one change, then quiet for four dumps' time, which
	// interrupts a fraction of dumps on a fast machine and under
	// emulation alike.
	var took []time.Duration
	for range 5 {
		start := time.Now()
		if _, err := readEnd(hp.Name); err != nil {
			t.Fatal(err)
		}
		took = append(took, time.Since(start))
	}
	slices.Sort(took)
	quiet := 4 * took[len(took)/2]
	churned := mustLink(t, hp.SwitchEnd)
	stop := make(chan struct{})
	churnDone := make(chan error, 1)
	go func() {
		churnDone <- testenv.Go(ns.Handle, func() error {
			addr := &netlink.Addr{IPNet: &net.IPNet{IP: net.IPv4(192, 0, 2, 9), Mask: net.CIDRMask(32, 32)}}
			for i := 0; i < 100_000; i++ { // bounded; stop ends it sooner
				select {
				case <-stop:
					return nil
				default:
				}
				if err := netlink.AddrAdd(churned, addr); err != nil {
					return err
				}
				if err := netlink.AddrDel(churned, addr); err != nil {
					return err
				}
				time.Sleep(quiet)
			}
			return nil
		})
	}()

	const reads = 200
	plainInterrupted, failed := 0, 0
	for range reads {
		if _, err := netlink.AddrList(link, netlink.FAMILY_ALL); nldump.Interrupted(err) {
			plainInterrupted++
		}
		if _, err := readEnd(hp.Name); err != nil {
			failed++
			t.Logf("ReadEnds: %v", err)
		}
	}
	close(stop)
	if err := <-churnDone; err != nil {
		t.Fatalf("changing addresses: %v", err)
	}
	t.Logf("of %d dumps while addresses changed every %v: %d plain dumps interrupted; ReadEnds failed %d", reads, quiet, plainInterrupted, failed)
	if plainInterrupted == 0 {
		t.Fatal("no plain dump was interrupted: the changes did not reach the dumps, so this test shows nothing")
	}
	// All of ReadEnds' tries can be interrupted, rarely: a quarter of the
	// plain rate leaves room for that and still fails a single try.
	if failed > plainInterrupted/4 {
		t.Errorf("ReadEnds failed %d times of %d, with %d plain dumps interrupted; want at most a quarter of that", failed, reads, plainInterrupted)
	}
}

func mustLink(t *testing.T, name string) netlink.Link {
	t.Helper()
	l, err := netlink.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestRemove: Remove deletes our pair (both ends) and is fine with one
// that is not there; a foreign veth, a veth whose peer named like the
// switch end is in another namespace, and a bridge under a host port's
// name are refused and left in place.
func TestRemove(t *testing.T) {
	testenv.RequireRoot(t, "creates veth pairs in a namespace")
	ns := testenv.EnterNetns(t, testenv.UniqueName("ulhs"))
	other := testenv.NewNetns(t, testenv.UniqueName("ulhs"))
	hp := hostPort("ulhsmgmt0", 0)
	if _, err := Ensure(hp); err != nil {
		t.Fatal(err)
	}
	removed, err := Remove(hp)
	if err != nil || !removed {
		t.Fatalf("Remove(%s) = %t, %v; want removed", hp.Name, removed, err)
	}
	for _, name := range []string{hp.Name, hp.SwitchEnd} {
		if _, err := netlink.LinkByName(name); err == nil {
			t.Errorf("%s still exists after Remove", name)
		}
	}
	if removed, err := Remove(hp); err != nil || removed {
		t.Errorf("Remove of a missing pair = %t, %v; want false, no error", removed, err)
	}

	if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "ulhsbridge"}}); err != nil {
		t.Fatal(err)
	}
	testenv.AddVeth(t, ns, testenv.Veth{Name: "ulhsother", Peer: "ulhsother-x"})
	// The peer is named like the switch end but lives elsewhere; a bridge
	// here has the switch end's name.
	testenv.AddVeth(t, ns, testenv.Veth{Name: "ulhsaway", Peer: "ulhsaway-sw", PeerNS: other})
	if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "ulhsaway-sw"}}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, want string }{
		{"ulhsbridge", "exists and is a bridge, not a veth pair"},
		{"ulhsother", "its peer is not ulhsother-sw"},
		{"ulhsaway", "its peer is not ulhsaway-sw in this namespace"},
	} {
		removed, err := Remove(hostPort(tc.name, 0))
		if removed || err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "left in place") {
			t.Errorf("Remove(%s) = %t, %v; want an error with %q", tc.name, removed, err, tc.want)
		}
		if _, err := netlink.LinkByName(tc.name); err != nil {
			t.Errorf("%s was removed: %v", tc.name, err)
		}
	}
	if _, err := other.Netlink.LinkByName("ulhsaway-sw"); err != nil {
		t.Errorf("the peer in the other namespace was removed: %v", err)
	}
}
