package datapath

import (
	"testing"

	"github.com/uplinkd/uplinkd/test/testenv"
)

// TestPeerFlagOnlyAcrossNamespaces: a guest veth whose peer is in another
// namespace (a container) gets PORT_F_PEER, so frames to it take
// bpf_redirect_peer; a host port's switch end, whose peer is the host's
// own interface in the same namespace, must not: bpf_redirect_peer drops
// a frame whose peer device is in the redirecting namespace.
func TestPeerFlagOnlyAcrossNamespaces(t *testing.T) {
	e := newTestEnv(t)
	other := testenv.NewNetns(t, testenv.UniqueName("ulxp"))
	e.veth("ulxphost", "ulxphost-sw")
	sameNS := e.ifindex("ulxphost-sw")
	container, _ := testenv.AddVeth(t, nil, testenv.Veth{Name: "ulxpguest", Peer: "eth0", PeerNS: other})
	for _, tc := range []struct {
		name     string
		ifindex  int
		wantPeer bool
	}{
		{"ulxphost-sw", sameNS, false},
		{"ulxpguest", container, true},
	} {
		if _, err := e.dp.Attach(Port{Ifname: tc.name, Ifindex: tc.ifindex, Role: RoleGuest}); err != nil {
			t.Fatal(err)
		}
		var info bpfSwitchPortInfo
		if err := e.dp.objs.Ports.Lookup(uint32(tc.ifindex), &info); err != nil {
			t.Fatal(err)
		}
		if got := info.Flags&portFlagPeer != 0; got != tc.wantPeer {
			t.Errorf("%s: PORT_F_PEER %t, want %t (flags %#x)", tc.name, got, tc.wantPeer, info.Flags)
		}
	}
}
