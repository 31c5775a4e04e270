package daemon

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
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

func (h *offLoopHost) HostEnds(names []string) ([]hostport.End, []error) {
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := h.calls.call(ctx, func() {}); err != nil {
		h.mu.Lock()
		h.onLoop = append(h.onLoop, names...)
		h.mu.Unlock()
	}
	return h.fakeHost.HostEnds(names)
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
	if h.hostEndCalls != 1 {
		t.Errorf("status read its two host ports with %d address dumps, want 1", h.hostEndCalls)
	}

	configured := d.cfg.Groups[0].HostPorts[1].MAC.String()
	h.links["stor0"].readErr = errors.New("no buffer space available")
	h.links["mgmt0"].addrsErr = errors.New("no buffer space available")
	st, err = api.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mgmt0, stor0 = st.Groups[0].HostPorts[0], st.Groups[0].HostPorts[1]
	if stor0.State != "unknown" || stor0.MAC != configured || !strings.Contains(stor0.Error, "no buffer space") {
		t.Errorf("stor0 not read: %+v; want unknown, with the configured mac %s and the error", stor0, configured)
	}
	if mgmt0.State != "up" || mgmt0.MAC != wantMAC || len(mgmt0.Addrs) != 0 || !strings.Contains(mgmt0.Error, "list addresses") {
		t.Errorf("mgmt0's addresses not listed: %+v; want up, mac %s, no address and the error", mgmt0, wantMAC)
	}

	delete(h.links, "stor0")
	st, err = api.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stor0 = st.Groups[0].HostPorts[1]
	if stor0.State != "missing" || stor0.MAC != configured || len(stor0.Addrs) != 0 {
		t.Errorf("stor0 gone: %+v; want missing, with the configured mac %s", stor0, configured)
	}
}
