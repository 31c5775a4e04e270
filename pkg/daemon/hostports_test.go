package daemon

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/uplinkd/uplinkd/pkg/config"
	"github.com/uplinkd/uplinkd/pkg/control"
	"github.com/uplinkd/uplinkd/pkg/datapath"
	"github.com/uplinkd/uplinkd/pkg/limits"
)

const hostPortYAML = `groups:
  - name: a
    uplinks: [{name: eth1}, {name: eth2}]
    guest_ports: [vnet0, {match: "*"}]
    host_ports: [{name: mgmt0, vlan: 10}, {name: stor0}]
`

// A host port's pair is made at setup and its switch end attached as a
// guest port (with the access VLAN); the host's end is no port, and no
// pattern takes either end.
func TestHostPortAttachedAsGuest(t *testing.T) {
	d, dp, h := testDaemon(t, hostPortYAML, "eth1", "eth2", "vnet0")
	for name, vlan := range map[string]uint16{"mgmt0-sw": 10, "stor0-sw": 0} {
		p, ok := dp.attached[name]
		if !ok {
			t.Fatalf("switch end %s not attached: %v", name, dp.writes)
		}
		if p.Role != datapath.RoleGuest || p.VLAN != vlan || p.Ifindex != h.links[name].index {
			t.Errorf("%s attached as %+v, want a guest port, VLAN %d, ifindex %d", name, p, vlan, h.links[name].index)
		}
	}
	for _, name := range []string{"mgmt0", "stor0"} {
		if _, ok := h.links[name]; !ok {
			t.Errorf("host end %s not created", name)
		}
		if _, ok := dp.attached[name]; ok {
			t.Errorf("host end %s attached to the switch", name)
		}
		if _, ok := d.ports[name]; ok {
			t.Errorf("host end %s is a port (a pattern took it?)", name)
		}
	}
	g := d.groups[0]
	if err := d.addPort(g, config.GuestPort{Name: "mgmt0"}); !errors.Is(err, control.ErrRefused) || !strings.Contains(err.Error(), "host's end of host port mgmt0") {
		t.Errorf("add-port of a host end: %v, want refused", err)
	}
	if err := d.removePort(g, "mgmt0-sw"); !errors.Is(err, control.ErrRefused) {
		t.Errorf("remove-port of a switch end: %v, want refused", err)
	}
	if _, ok := dp.attached["mgmt0-sw"]; !ok {
		t.Error("switch end detached by a refused remove-port")
	}
}

// A restarted daemon adopts the pairs it made: same interfaces, no error.
func TestHostPortAdoptedAtRestart(t *testing.T) {
	_, _, h := testDaemon(t, hostPortYAML, "eth1", "eth2", "vnet0")
	index := h.links["mgmt0-sw"].index
	dp := newFakeDataPlane()
	if err := fakeDaemon(t, hostPortYAML, dp, h).setup(); err != nil {
		t.Fatal(err)
	}
	if p := dp.attached["mgmt0-sw"]; p.Ifindex != index {
		t.Errorf("restarted daemon attached mgmt0-sw at %d, want the adopted %d", p.Ifindex, index)
	}
}

// An interface in a host port's way stops the start with the field named.
func TestHostPortInTheWay(t *testing.T) {
	err := fakeDaemon(t, hostPortYAML, newFakeDataPlane(), hostWith("eth1", "stor0")).setup()
	if err == nil || !strings.Contains(err.Error(), "groups[0].host_ports[1]: host port stor0") {
		t.Errorf("setup = %v, want an error naming groups[0].host_ports[1]", err)
	}
}

// Reload adds a host port (pair made, switch end attached), re-attaches
// one whose VLAN changed, re-creates one deleted while uplinkd ran, and
// removes one: its switch end detached, its pair left in place.
func TestReloadHostPorts(t *testing.T) {
	// A pattern that takes no end: "*" would take a dropped host port's
	// ends as guest ports, as the operator's pattern says.
	d, dp, h := testDaemon(t, strings.Replace(hostPortYAML, `"*"`, `"vnet*"`, 1), "eth1", "eth2", "vnet0")
	apply := func(yaml string) []string {
		t.Helper()
		changes, err := d.applyConfig(mustParse(t, yaml))
		if err != nil {
			t.Fatalf("reload: %v (changes %q)", err, changes)
		}
		return changes
	}
	const next = `groups:
  - name: a
    uplinks: [{name: eth1}, {name: eth2}]
    guest_ports: [vnet0, {match: "vnet*"}]
    host_ports: [{name: mgmt0, vlan: 20}, {name: mig0}]
`
	stor := h.links["stor0"].index
	changes := strings.Join(apply(next), "\n")
	for _, want := range []string{
		"host port stor0 removed; its veth pair stor0/stor0-sw is left in place",
		"host port mgmt0 re-attached with its new settings",
		"host port mig0 added (switch end mig0-sw, vlan 0)",
	} {
		if !strings.Contains(changes, want) {
			t.Errorf("reload changes %q, want %q", changes, want)
		}
	}
	if _, ok := dp.attached["stor0-sw"]; ok {
		t.Error("removed host port stor0: its switch end is still attached")
	}
	if l, ok := h.links["stor0"]; !ok || l.index != stor {
		t.Error("removed host port stor0: its pair was deleted")
	}
	if p := dp.attached["mgmt0-sw"]; p.VLAN != 20 {
		t.Errorf("mgmt0-sw attached with VLAN %d, want the new 20", p.VLAN)
	}
	if p, ok := dp.attached["mig0-sw"]; !ok || p.Ifindex != h.links["mig0-sw"].index || d.ports["mig0-sw"].hostEnd != "mig0" {
		t.Errorf("added host port mig0: attached %v (%+v)", ok, p)
	}

	// Deleted while uplinkd ran: the same file re-creates it.
	delete(h.links, "mig0")
	delete(h.links, "mig0-sw")
	if changes := strings.Join(apply(next), "\n"); !strings.Contains(changes, "host port mig0 was deleted; re-creating it") {
		t.Errorf("reload changes %q, want mig0 re-created", changes)
	}
	if p, ok := dp.attached["mig0-sw"]; !ok || p.Ifindex != h.links["mig0-sw"].index {
		t.Errorf("re-created mig0-sw: attached %v at %d, want %d", ok, p.Ifindex, h.links["mig0-sw"].index)
	}
	if changes := apply(next); len(changes) != 0 {
		t.Errorf("reload of the same file changed %q", changes)
	}
}

// A reload whose new host port is named like an interface that is a
// guest port now (here, by the pattern "*") is refused with the name.
func TestReloadHostPortOverAGuestPort(t *testing.T) {
	d, dp, _ := testDaemon(t, hostPortYAML, "eth1", "eth2", "vnet0", "vnet9")
	if _, ok := dp.attached["vnet9"]; !ok {
		t.Fatal("vnet9 not taken by the pattern")
	}
	cfg := mustParse(t, strings.Replace(hostPortYAML, "{name: stor0}", "{name: stor0}, {name: vnet9}", 1))
	if _, err := d.applyConfig(cfg); !errors.Is(err, control.ErrRefused) || !strings.Contains(err.Error(), "host port vnet9: refused: vnet9 is already a guest") {
		t.Errorf("reload = %v, want refused naming vnet9", err)
	}
}

// fullGroupDaemon is a daemon of hostPortYAML whose group patterns filled
// with guest ports.
func fullGroupDaemon(t *testing.T) (*Daemon, *fakeDataPlane, *fakeHost) {
	t.Helper()
	links := []string{"eth1", "eth2"}
	for i := range limits.MaxGuestPorts - 2 { // and the switch ends of mgmt0 and stor0
		links = append(links, fmt.Sprintf("vnet%d", i))
	}
	d, dp, h := testDaemon(t, hostPortYAML, links...)
	if n := len(d.groups[0].guests); n != limits.MaxGuestPorts {
		t.Fatalf("group has %d guest ports, want it full (%d)", n, limits.MaxGuestPorts)
	}
	return d, dp, h
}

// A reload's new host port is refused, with the group named and no pair
// made, when ports a pattern took since the start fill the group.
func TestReloadHostPortIntoAFullGroup(t *testing.T) {
	d, dp, h := fullGroupDaemon(t)
	cfg := mustParse(t, strings.Replace(hostPortYAML, "{name: stor0}", "{name: stor0}, {name: mig0}", 1))
	_, err := d.applyConfig(cfg)
	if want := fmt.Sprintf("group a: refused: host port mig0: the group has %d guest ports already", limits.MaxGuestPorts); !errors.Is(err, control.ErrRefused) || !strings.Contains(err.Error(), want) {
		t.Errorf("reload = %v, want refused: %q", err, want)
	}
	if _, ok := h.links["mig0"]; ok {
		t.Error("the refused host port's pair was made")
	}
	if _, ok := dp.attached["mgmt0-sw"]; !ok {
		t.Error("a refused reload detached the host port mgmt0")
	}
}

// In a full group, a reload that changes a host port (its switch end is
// re-attached) and adds a named guest port re-attaches the host port and
// refuses the guest port: the host's own traffic is not the one left out.
func TestReloadFullGroupKeepsHostPort(t *testing.T) {
	d, dp, _ := fullGroupDaemon(t)
	yaml := strings.Replace(hostPortYAML, "{name: mgmt0, vlan: 10}", "{name: mgmt0, vlan: 11}", 1)
	yaml = strings.Replace(yaml, "guest_ports: [vnet0,", "guest_ports: [vnet0, vmx,", 1)
	_, err := d.applyConfig(mustParse(t, yaml))
	if !errors.Is(err, control.ErrRefused) || !strings.Contains(err.Error(), fmt.Sprintf("group a has %d guest ports already", limits.MaxGuestPorts)) {
		t.Errorf("reload = %v, want the guest port vmx refused", err)
	}
	if p, ok := dp.attached["mgmt0-sw"]; !ok || p.VLAN != 11 {
		t.Errorf("host port mgmt0: attached %t with VLAN %d, want attached with the new VLAN 11", ok, p.VLAN)
	}
}
