package datapath

import (
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/pkg/limits"
	"github.com/vishvananda/netlink"
)

// TestDropReasonNames: every reason the data plane counts has a name of
// its own (status, metrics and uplinkctl print them).
func TestDropReasonNames(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range DropReasons() {
		name := r.String()
		if int(r) >= len(dropReasonNames) || dropReasonNames[r] == "" || seen[name] {
			t.Errorf("drop reason %d has no name of its own (%q)", int(r), name)
		}
		seen[name] = true
	}
	if len(DropReasons()) != len(dropReasonNames) {
		t.Errorf("%d reasons in the data plane, %d names", len(DropReasons()), len(dropReasonNames))
	}
	if DropMTU.String() != "mtu" || DropNoDestination.String() != "no_destination" {
		t.Errorf("names %q, %q", DropMTU, DropNoDestination)
	}
}

func (e *testEnv) setMTU(name string, mtu int) {
	e.t.Helper()
	l, err := netlink.LinkByName(name)
	if err == nil {
		err = netlink.LinkSetMTU(l, mtu)
	}
	if err != nil {
		e.t.Fatalf("MTU %d on %s: %v", mtu, name, err)
	}
}

// sized is a frame of exactly size bytes (Ethernet header, and the tag
// when vlan != 0, included).
func sized(t *testing.T, dst, src []byte, vlan uint16, size int) []byte {
	t.Helper()
	f := frame(t, dst, src, vlan, nil)
	if len(f) > size {
		t.Fatalf("a frame of %d bytes is shorter than its headers", size)
	}
	return append(f, make([]byte, size-len(f))...)
}

// skbCtxGSO is struct __sk_buff up to gso_size, for a test run of a GSO
// skb.
type skbCtxGSO struct {
	skbCtx
	TcIndex                                                             uint32
	Cb                                                                  [5]uint32
	Hash, TcClassid, Data, DataEnd, NapiID, Family, RemoteIP4, LocalIP4 uint32
	RemoteIP6, LocalIP6                                                 [4]uint32
	RemotePort, LocalPort, DataMeta                                     uint32
	FlowKeys, Tstamp                                                    uint64
	WireLen, GsoSegs                                                    uint32
	Sk                                                                  uint64
	GsoSize                                                             uint32
	_                                                                   uint32
}

// TestDropMTU: a frame longer than its destination port takes is dropped
// and counted as mtu, on the ingress port; the kernel's own forwarding
// rule decides (MTU + Ethernet header, + one VLAN tag in the frame; GSO
// passes), so a frame of exactly the MTU passes, and so does one whose
// 802.1Q tag is in the frame or (pushed for an uplink) in skb metadata.
func TestDropMTU(t *testing.T) {
	tp := newTopo(t)
	const mtu = 1000
	// B lives behind vnet1 (a trunk), A behind vnet0.
	run(t, tp.dp.objs.TcGuest, tp.vnet1, frame(t, broadcast, macB, 0, nil))
	run(t, tp.dp.objs.TcGuest, tp.vnet1, frame(t, broadcast, macB, 42, nil))
	run(t, tp.dp.objs.TcGuest, tp.vnet0, frame(t, broadcast, macA, 0, nil))
	tp.setMTU("vnet1", mtu)
	tp.setMTU("up0", mtu)
	access := tp.veth("vnet3", "g3")
	if _, err := tp.dp.Attach(Port{Ifname: "vnet3", Ifindex: access, Group: 0, Role: RoleGuest, VLAN: 7}); err != nil {
		t.Fatal(err)
	}
	// The rule of the kernel (is_skb_forwardable): MTU + 14 + 4.
	const limit = mtu + 14 + 4
	guest := tp.dp.objs.TcGuest

	cases := []struct {
		name    string
		ingress int
		frame   []byte
		gso     bool
		want    uint32
	}{
		{"exactly the MTU, untagged", tp.vnet0, sized(t, macB, macA, 0, mtu+14), false, tcRedirect},
		{"at the kernel's limit, untagged", tp.vnet0, sized(t, macB, macA, 0, limit), false, tcRedirect},
		{"one byte over the limit", tp.vnet0, sized(t, macB, macA, 0, limit+1), false, tcShot},
		{"far over the limit", tp.vnet0, sized(t, macB, macA, 0, 2000), false, tcShot},
		{"MTU payload and a tag in the frame", tp.vnet0, sized(t, macB, macA, 42, mtu+18), false, tcRedirect},
		{"a tag in the frame, one byte over", tp.vnet0, sized(t, macB, macA, 42, mtu+19), false, tcShot},
		{"access port to the uplink: tag pushed into metadata", access, sized(t, macUp, macA, 0, limit), false, tcRedirect},
		{"access port to the uplink, one byte over", access, sized(t, macUp, macA, 0, limit+1), false, tcShot},
		{"GSO over the MTU: segmented on the way out", tp.vnet0, sized(t, macB, macA, 0, 2000), true, tcRedirect},
		{"the other way, to a port of MTU 1500", tp.vnet1, sized(t, macA, macB, 0, 1500+18), false, tcRedirect},
		{"the other way, over MTU 1500", tp.vnet1, sized(t, macA, macB, 0, 1500+19), false, tcShot},
	}
	for _, c := range cases {
		before := tp.stats(t, c.ingress)
		ctx := skbCtxGSO{skbCtx: skbCtx{Ifindex: uint32(c.ingress)}}
		if c.gso {
			ctx.GsoSize, ctx.GsoSegs = 500, 4
		}
		got := runCtx(t, guest, c.frame, ctx)
		after := tp.stats(t, c.ingress)
		if got != c.want {
			t.Errorf("%s (%d bytes): action %d, want %d", c.name, len(c.frame), got, c.want)
		}
		wantDrops := uint64(0)
		if c.want == tcShot {
			wantDrops = 1
		}
		if d := after.Drops[DropMTU] - before.Drops[DropMTU]; d != wantDrops {
			t.Errorf("%s: mtu drops went up by %d, want %d", c.name, d, wantDrops)
		}
		if after.TotalDrops()-before.TotalDrops() != wantDrops {
			t.Errorf("%s: drops of other reasons counted: %v -> %v", c.name, before.Drops, after.Drops)
		}
	}

	// Real frames: the receiving veth moves a tag into skb metadata. A
	// tagged frame of the full MTU from a trunk reaches the uplink; an
	// untagged one beyond the limit is counted and goes nowhere.
	tp.setMTU("g1", 2000)
	tp.setMTU("vnet1", 2000)
	tp.setMTU("u0p", mtu)
	u0p := tp.capture("u0p")
	for _, c := range []struct {
		name      string
		vlan      uint16
		size      int
		delivered bool
	}{
		{"tagged, MTU payload", 42, mtu + 18, true},
		{"untagged, exactly the MTU", 0, mtu + 14, true},
		{"untagged, beyond the limit", 0, limit + 1, false},
	} {
		marker := newMarker(t)
		f := frame(t, macUp, macB, c.vlan, marker)
		f = append(f, make([]byte, c.size-len(f))...)
		before := tp.stats(t, tp.vnet1)
		tp.send(guest, tp.vnet1, f)
		after := tp.stats(t, tp.vnet1)
		var got [][]byte
		deadline := time.Now().Add(300 * time.Millisecond)
		for len(got) == 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
			got = u0p.drain(marker)
		}
		if c.delivered != (len(got) == 1) {
			t.Errorf("%s (%d bytes): %d copies at u0p, want delivered %t", c.name, c.size, len(got), c.delivered)
		}
		if c.delivered && len(got) == 1 && len(got[0]) != c.size {
			t.Errorf("%s: arrived with %d bytes, sent %d", c.name, len(got[0]), c.size)
		}
		if d := after.Drops[DropMTU] - before.Drops[DropMTU]; (d == 1) == c.delivered {
			t.Errorf("%s: mtu drops went up by %d", c.name, d)
		}
	}
}

// TestFloodDrops: a flood that reaches no port is counted as
// no_destination; a flood copy too long for its port is counted as mtu
// and the others still go.
func TestFloodDrops(t *testing.T) {
	tp := newTopo(t)
	guest, uplink := tp.dp.objs.TcGuest, tp.dp.objs.TcUplink
	const blue = 1

	// Blue has one guest port and one uplink: without an active uplink a
	// broadcast from its guest has nowhere to go.
	if err := tp.dp.SetActive(blue, limits.NoSlot); err != nil {
		t.Fatal(err)
	}
	before := tp.stats(t, tp.vnet2)
	if got := run(t, guest, tp.vnet2, frame(t, broadcast, macA, 0, nil)); got != tcShot {
		t.Errorf("broadcast with no other port: action %d, want shot", got)
	}
	after := tp.stats(t, tp.vnet2)
	if d := after.Drops[DropNoDestination] - before.Drops[DropNoDestination]; d != 1 || after.TotalDrops()-before.TotalDrops() != 1 {
		t.Errorf("broadcast with no other port: no_destination drops +%d, all drops %v -> %v", d, before.Drops, after.Drops)
	}
	// Upstream's broadcast with no guest port left in the group.
	if err := tp.dp.SetActive(blue, 0); err != nil {
		t.Fatal(err)
	}
	if err := tp.dp.Detach("vnet2", tp.vnet2); err != nil {
		t.Fatal(err)
	}
	before = tp.stats(t, tp.up2)
	if got := run(t, uplink, tp.up2, frame(t, broadcast, macUp, 0, nil)); got != tcShot {
		t.Errorf("upstream broadcast to no guest: action %d, want shot", got)
	}
	after = tp.stats(t, tp.up2)
	if d := after.Drops[DropNoDestination] - before.Drops[DropNoDestination]; d != 1 {
		t.Errorf("upstream broadcast to no guest: no_destination drops +%d, want 1", d)
	}

	// Red: vnet0 floods to vnet1 (a clone) and up0 (the last, the skb
	// itself). With vnet1's MTU too small its copy is counted, up0's goes.
	tp.setMTU("vnet1", 1000)
	caps := map[string]*capture{"g1": tp.capture("g1"), "u0p": tp.capture("u0p")}
	marker := newMarker(t)
	big := frame(t, broadcast, macA, 0, marker)
	big = append(big, make([]byte, 1200-len(big))...)
	before = tp.stats(t, tp.vnet0)
	if got := run(t, guest, tp.vnet0, big); got != tcRedirect {
		t.Errorf("flood, one copy too long: action %d, want redirect (to up0)", got)
	}
	after = tp.stats(t, tp.vnet0)
	if d := after.Drops[DropMTU] - before.Drops[DropMTU]; d != 1 || after.TotalDrops()-before.TotalDrops() != 1 {
		t.Errorf("flood, one copy too long: mtu drops +%d, all drops %v -> %v", d, before.Drops, after.Drops)
	}
	time.Sleep(50 * time.Millisecond)
	if n := len(caps["g1"].drain(marker)); n != 0 {
		t.Errorf("g1 received %d copies of a frame longer than vnet1 takes", n)
	}
	// A test run's own skb is not sent: up0's copy is the redirect above.

	// Every target too small: the clone and the last are both counted.
	tp.setMTU("up0", 1000)
	before = tp.stats(t, tp.vnet0)
	if got := run(t, guest, tp.vnet0, big); got != tcShot {
		t.Errorf("flood, every copy too long: action %d, want shot", got)
	}
	after = tp.stats(t, tp.vnet0)
	if d := after.Drops[DropMTU] - before.Drops[DropMTU]; d != 2 {
		t.Errorf("flood, every copy too long: mtu drops +%d, want 2", d)
	}
	// A frame that fits floods as before.
	small := frame(t, broadcast, macA, 0, newMarker(t))
	before = tp.stats(t, tp.vnet0)
	if got := run(t, guest, tp.vnet0, small); got != tcRedirect {
		t.Errorf("flood that fits: action %d, want redirect", got)
	}
	if after := tp.stats(t, tp.vnet0); after.TotalDrops() != before.TotalDrops() {
		t.Errorf("flood that fits: drops %v -> %v", before.Drops, after.Drops)
	}
}
