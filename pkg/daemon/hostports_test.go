package daemon

import (
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/uplinkd/uplinkd/pkg/config"
	"github.com/uplinkd/uplinkd/pkg/control"
	"github.com/uplinkd/uplinkd/pkg/datapath"
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
	cfg, err := config.Parse([]byte(hostPortYAML))
	if err != nil {
		t.Fatal(err)
	}
	dp := newFakeDataPlane()
	d := newDaemon(cfg, slog.New(slog.DiscardHandler), dp, h)
	d.ann.send = &fakeSender{}
	t.Cleanup(func() { d.Close() })
	if err := d.setup(); err != nil {
		t.Fatal(err)
	}
	if p := dp.attached["mgmt0-sw"]; p.Ifindex != index {
		t.Errorf("restarted daemon attached mgmt0-sw at %d, want the adopted %d", p.Ifindex, index)
	}
}

// An interface in a host port's way stops the start with the field named.
func TestHostPortInTheWay(t *testing.T) {
	cfg, err := config.Parse([]byte(hostPortYAML))
	if err != nil {
		t.Fatal(err)
	}
	h := &fakeHost{links: map[string]*fakeLink{"eth1": {index: 1}, "stor0": {index: 2}}}
	d := newDaemon(cfg, slog.New(slog.DiscardHandler), newFakeDataPlane(), h)
	d.ann.send = &fakeSender{}
	t.Cleanup(func() { d.Close() })
	err = d.setup()
	if err == nil || !strings.Contains(err.Error(), "groups[0].host_ports[1]: host port stor0") {
		t.Errorf("setup = %v, want an error naming groups[0].host_ports[1]", err)
	}
}
