package datapath

import (
	"slices"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// vlanOf is the 802.1Q VID a captured frame carries, 0 when untagged.
func vlanOf(f []byte) uint16 {
	pkt := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
	if q, ok := pkt.Layer(layers.LayerTypeDot1Q).(*layers.Dot1Q); ok {
		return q.VLANIdentifier
	}
	return 0
}

// TestVLANs: an access port's frames are untagged at the guest and carry
// the port's VLAN upstream; a tagged frame from it is dropped and counted;
// frames for its VLAN reach it untagged, others not at all; a trunk with
// a VLAN list carries only those (and untagged frames).
func TestVLANs(t *testing.T) {
	tp := newTopo(t)
	// vnet1: access VLAN 42; vnet0: a trunk of VLAN 7 only.
	for _, p := range []Port{
		{Ifname: "vnet1", Ifindex: tp.vnet1, Group: 0, Role: RoleGuest, VLAN: 42},
		{Ifname: "vnet0", Ifindex: tp.vnet0, Group: 0, Role: RoleGuest, Trunk: []uint16{7}},
	} {
		if _, err := tp.dp.Attach(p); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tp.dp.Attach(Port{Ifname: "vnet0", Ifindex: tp.vnet0, Role: RoleGuest, Trunk: []uint16{4095}}); err == nil {
		t.Error("VLAN 4095 accepted on a trunk")
	}
	caps := map[string]*capture{}
	for _, n := range []string{"g0", "g1", "u0p", "u1p"} {
		caps[n] = tp.capture(n)
	}
	// copies sends one frame into the switch through the peer of a port
	// and returns, per port, the VLANs of the copies that arrived. Real
	// traffic, as in production: the receiving veth moves a frame's tag
	// into skb metadata before tc ingress, where a test run would leave
	// it in the frame.
	copies := func(from string, build func(m []byte) []byte) map[string][]uint16 {
		t.Helper()
		marker := newMarker(t)
		tp.inject(from, build(marker))
		time.Sleep(60 * time.Millisecond)
		got := map[string][]uint16{}
		for n, c := range caps {
			for _, f := range c.drain(marker) {
				got[n] = append(got[n], vlanOf(f))
			}
		}
		return got
	}
	// B speaks on vnet1: learned on VLAN 42.
	if got := copies("g1", func(m []byte) []byte { return frame(t, macUp, macB, 0, m) }); !slices.Equal(got["u0p"], []uint16{42}) || len(got) != 1 {
		t.Errorf("access port to upstream: %v, want u0p tagged 42 only", got)
	}
	fdb, _ := tp.dp.FDB()
	if !slices.ContainsFunc(fdb, func(e FDBEntry) bool { return e.MAC.String() == macB.String() && e.VLAN == 42 }) {
		t.Errorf("B not learned on VLAN 42: %+v", fdb)
	}
	before := tp.stats(t, tp.vnet1)
	if got := copies("g1", func(m []byte) []byte { return frame(t, macUp, macB, 42, m) }); len(got) != 0 {
		t.Errorf("tagged frame from an access port went to %v", got)
	}
	if d := tp.stats(t, tp.vnet1).Drops[DropVLAN] - before.Drops[DropVLAN]; d != 1 {
		t.Errorf("vlan drops +%d, want 1", d)
	}

	cases := []struct {
		name  string
		from  string // the peer the frame is sent from
		build func(m []byte) []byte
		want  map[string][]uint16
	}{
		{"upstream to B on VLAN 42: untagged at the access port", "u0p",
			func(m []byte) []byte { return frame(t, macB, macUp, 42, m) }, map[string][]uint16{"g1": {0}}},
		{"upstream to B on another VLAN: unknown there, flooded to no port of it", "u0p",
			func(m []byte) []byte { return frame(t, macB, macUp, 43, m) }, map[string][]uint16{}},
		{"upstream broadcast on 42: the access port only", "u0p",
			func(m []byte) []byte { return frame(t, broadcast, macUp, 42, m) }, map[string][]uint16{"g1": {0}}},
		{"upstream broadcast on 7: the trunk, tagged", "u0p",
			func(m []byte) []byte { return frame(t, broadcast, macUp, 7, m) }, map[string][]uint16{"g0": {7}}},
		{"upstream broadcast untagged: the trunk only", "u0p",
			func(m []byte) []byte { return frame(t, broadcast, macUp, 0, m) }, map[string][]uint16{"g0": {0}}},
		{"trunk sends on its VLAN", "g0",
			func(m []byte) []byte { return frame(t, macUp, macA, 7, m) }, map[string][]uint16{"u0p": {7}}},
		{"trunk sends on a VLAN outside its list: dropped", "g0",
			func(m []byte) []byte { return frame(t, macUp, macA, 42, m) }, map[string][]uint16{}},
		{"access guest broadcast: tagged upstream, not to the trunk of VLAN 7", "g1",
			func(m []byte) []byte { return frame(t, broadcast, macB, 0, m) }, map[string][]uint16{"u0p": {42}}},
	}
	// An 802.1ad (S-) tag is payload to the switch:
	// S-VID 42 from upstream must not reach the access port of VLAN 42
	// (the kernel moves an S-tag into skb metadata too).
	sTagged := func(m []byte) []byte {
		f := frame(t, macB, macUp, 42, m)
		f[12], f[13] = 0x88, 0xa8
		return f
	}
	if got := copies("u0p", sTagged); len(got["g1"]) != 0 {
		t.Errorf("802.1ad frame with S-VID 42 reached the access port of VLAN 42: %v", got)
	}
	for _, c := range cases {
		got := copies(c.from, c.build)
		if len(got) != len(c.want) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
			continue
		}
		for n, w := range c.want {
			if !slices.Equal(got[n], w) {
				t.Errorf("%s: %v, want %v", c.name, got, c.want)
			}
		}
	}
}
