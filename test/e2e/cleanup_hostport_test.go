package e2e

// uplinkd -cleanup leaves host ports in place, with the host's addresses
// on them; -cleanup -remove-host-ports deletes their veth pairs.

import (
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/uplinkd/uplinkd/pkg/nldump"
)

// TestCleanupKeepsHostPorts: status shows the host port with its address
// and the second, address-less one as such; after uplinkd stops, -cleanup
// keeps both pairs and the address; -remove-host-ports alone is refused;
// -cleanup -remove-host-ports deletes both pairs, and a second run finds
// nothing to remove.
func TestCleanupKeepsHostPorts(t *testing.T) {
	l := newLab(t, labOptions{extra: "    host_ports: [{name: mgmt0}, {name: spare0}]\n"})
	l.startDaemon()
	l.in("H", func() { l.addr("mgmt0", hostPortIP.String()+"/24") })

	hps := l.status().HostPorts
	if len(hps) != 2 {
		t.Fatalf("status host ports %+v, want mgmt0 and spare0", hps)
	}
	if hp := hps[0]; hp.Name != "mgmt0" || hp.SwitchEnd != "mgmt0-sw" || hp.State != "up" || !slices.Contains(hp.Addrs, hostPortIP.String()) || hp.Error != "" {
		t.Errorf("status of mgmt0: %+v; want up with %s", hp, hostPortIP)
	}
	if hp := hps[1]; hp.Name != "spare0" || hp.State != "up" || slices.ContainsFunc(hp.Addrs, func(a string) bool { return strings.Contains(a, ".") }) {
		t.Errorf("status of spare0: %+v; want up, no IPv4 address", hp)
	}
	ctl, err := execCtl(l, "status")
	if err != nil || !strings.Contains(ctl, hostPortIP.String()) || !strings.Contains(ctl, "no address: the host's traffic does not use it") {
		t.Errorf("uplinkctl status: %v; want mgmt0's address and spare0 without one:\n%s", err, ctl)
	}
	l.stopDaemon(syscall.SIGTERM)

	present := func() (names []string, hasAddr bool) {
		l.in("H", func() {
			for _, name := range []string{"mgmt0", "mgmt0-sw", "spare0", "spare0-sw"} {
				link, err := netlink.LinkByName(name)
				if err != nil {
					continue
				}
				names = append(names, name)
				if name != "mgmt0" {
					continue
				}
				addrs, err := nldump.Retry(func() ([]netlink.Addr, error) { return netlink.AddrList(link, netlink.FAMILY_V4) })
				l.check(err)
				hasAddr = slices.ContainsFunc(addrs, func(a netlink.Addr) bool { return a.IP.Equal(hostPortIP) })
			}
		})
		return names, hasAddr
	}

	if out, code := l.runUplinkd("-remove-host-ports"); code != 2 || !strings.Contains(out, "-remove-host-ports is only valid with -cleanup") {
		t.Errorf("-remove-host-ports without -cleanup: exit %d, want 2 and the flag named:\n%s", code, out)
	}
	if out, code := l.runUplinkd("-cleanup"); code != 0 {
		t.Fatalf("uplinkd -cleanup: exit %d:\n%s", code, out)
	}
	if names, hasAddr := present(); len(names) != 4 || !hasAddr {
		t.Errorf("after -cleanup: %v, mgmt0's address there %t; want both pairs and the address kept", names, hasAddr)
	}

	out, code := l.runUplinkd("-cleanup", "-remove-host-ports")
	if code != 0 || !strings.Contains(out, "removed host port mgmt0 (veth pair mgmt0/mgmt0-sw)") || !strings.Contains(out, "removed host port spare0") {
		t.Errorf("uplinkd -cleanup -remove-host-ports: exit %d; want both host ports removed:\n%s", code, out)
	}
	if names, _ := present(); len(names) != 0 {
		t.Errorf("after -cleanup -remove-host-ports: %v remain", names)
	}
	out, code = l.runUplinkd("-cleanup", "-remove-host-ports")
	if code != 0 || !strings.Contains(out, "host port mgmt0 of group lab is not there: nothing to remove") {
		t.Errorf("second -cleanup -remove-host-ports: exit %d; want nothing to remove:\n%s", code, out)
	}
}
