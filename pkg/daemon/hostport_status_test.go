package daemon

import (
	"context"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/pkg/hostport"
)

// offLoopHost is a fakeHost that notes the host ports whose addresses
// were read on the event loop: there, a call to the loop cannot be taken.
type offLoopHost struct {
	*fakeHost
	calls  *callQueue
	mu     sync.Mutex
	onLoop []string
}

func (h *offLoopHost) HostEnd(name string) (hostport.End, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := h.calls.call(ctx, func() {}); err != nil {
		h.mu.Lock()
		h.onLoop = append(h.onLoop, name)
		h.mu.Unlock()
	}
	return h.fakeHost.HostEnd(name)
}

// Status lists each group's host ports with the host end's state and
// addresses, read off the event loop; one without an address has none
// listed, and a host end that has gone is missing, with its configured
// MAC.
func TestStatusHostPorts(t *testing.T) {
	d, _, h := testDaemon(t, hostPortYAML, "eth1", "eth2", "vnet0")
	spy := &offLoopHost{fakeHost: h, calls: d.calls}
	d.host = spy
	serveCalls(t, d)
	api, ctx := controlAPI{d}, context.Background()
	mgmt := []netip.Addr{netip.MustParseAddr("192.0.2.7"), netip.MustParseAddr("2001:db8::7")}
	h.links["mgmt0"].addrs = mgmt
	h.links["stor0"].up = false

	st, err := api.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	hps := st.Groups[0].HostPorts
	if len(hps) != 2 {
		t.Fatalf("host ports %+v, want mgmt0 and stor0", hps)
	}
	mgmt0, stor0 := hps[0], hps[1]
	wantMAC := h.link("mgmt0", h.links["mgmt0"]).Attrs().HardwareAddr.String() // the interface's, not the configured
	if mgmt0.Name != "mgmt0" || mgmt0.SwitchEnd != "mgmt0-sw" || mgmt0.VLAN != 10 || mgmt0.State != "up" || mgmt0.MAC != wantMAC ||
		!slices.Equal(mgmt0.Addrs, []string{"192.0.2.7", "2001:db8::7"}) || mgmt0.Error != "" {
		t.Errorf("mgmt0: %+v; want switch end mgmt0-sw, vlan 10, up, mac %s, its two addresses", mgmt0, wantMAC)
	}
	if stor0.Name != "stor0" || stor0.VLAN != 0 || stor0.State != "down" || len(stor0.Addrs) != 0 || stor0.Error != "" {
		t.Errorf("stor0: %+v; want untagged, down, no address", stor0)
	}
	if spy.onLoop != nil {
		t.Errorf("addresses of %v read on the event loop", spy.onLoop)
	}

	delete(h.links, "stor0")
	st, err = api.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stor0 = st.Groups[0].HostPorts[1]
	configured := d.cfg.Groups[0].HostPorts[1].MAC.String()
	if stor0.State != "missing" || stor0.MAC != configured || len(stor0.Addrs) != 0 {
		t.Errorf("stor0 gone: %+v; want missing, with the configured mac %s", stor0, configured)
	}
}
