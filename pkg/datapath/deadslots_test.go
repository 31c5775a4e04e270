package datapath

import (
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/uplinkd/uplinkd/pkg/limits"
)

// threeUplinks adds a third uplink (slot 2, "ulxic", its peer "ulxicp")
// to group red of tp, gives red the fallback order slot 0, 1, 2 and
// returns red's id and the new uplink's ifindex.
func (tp *topo) threeUplinks(t *testing.T) (red uint32, up int) {
	t.Helper()
	ids, err := tp.dp.AssignGroups([]string{"red", "blue"})
	if err != nil {
		t.Fatal(err)
	}
	red = ids["red"]
	up = tp.veth("ulxic", "ulxicp")
	if _, err := tp.dp.Attach(Port{Ifname: "ulxic", Ifindex: up, Group: red, Role: RoleUplink, Slot: 2, MAC: tp.mac("ulxic")}); err != nil {
		t.Fatal(err)
	}
	if err := tp.dp.SetFallback(red, []limits.Slot{0, 1, 2}); err != nil {
		t.Fatal(err)
	}
	return red, up
}

// cutCarrier takes the carrier of the uplinks whose veth peers are named.
func cutCarrier(t *testing.T, peers ...string) {
	t.Helper()
	for _, name := range peers {
		l, err := netlink.LinkByName(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := netlink.LinkSetDown(l); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSecondFailureSkipsDeadUplink: uplinks A (active), B and C, fallback
// order A, B, C; A and B lose carrier before the daemon rewrites the
// order. A guest's frame that meets A's egress must move the group to C
// and leave through C: not back to A, which B's egress would pick as the
// first slot other than B (the frame then bounces between the two dead
// uplinks' egress programs until the kernel's recursion limit drops it).
// Where fentry loads (6.1), the carrier hook moves the group at each cut
// and must not move it back to A either.
func TestSecondFailureSkipsDeadUplink(t *testing.T) {
	tp := newTopo(t)
	kf := tp.armKernelFailover(t)
	if !tpHasPath(kf, PathCarrierAtRedirect) {
		t.Skipf("the switch cannot read carrier here: %s", kf.Refused()[PathCarrierAtRedirect])
	}
	red, upC := tp.threeUplinks(t)
	for _, up := range []int{tp.up0, tp.up1, upC} {
		tp.requireEgress(t, up)
	}
	run(t, tp.dp.objs.TcGuest, tp.vnet0, frame(t, broadcast, macA, 0, nil)) // learn macA
	c := tp.capture("ulxicp")

	cutCarrier(t, "u0p", "u1p")
	if tpHasPath(kf, PathCarrierHook) {
		// No frame was sent yet: only the hook can have moved the group.
		if slot, err := tp.dp.ActiveSlot(red); err != nil || slot != 2 {
			t.Errorf("carrier hook: active slot %d (%v) after A and B lost carrier, want 2 (C)", slot, err)
		}
	}
	marker := newMarker(t)
	tp.send(tp.dp.objs.TcGuest, tp.vnet0, frame(t, macUp, macA, 0, marker))
	n := 0
	for i := 0; i < 50 && n == 0; i++ {
		time.Sleep(5 * time.Millisecond)
		n = len(c.drain(marker))
	}
	if n != 1 {
		t.Errorf("the guest's frame left through the live uplink C %d times, want once", n)
	}
	if slot, err := tp.dp.ActiveSlot(red); err != nil || slot != 2 {
		t.Errorf("active slot %d (%v) after A and B lost carrier, want 2 (C)", slot, err)
	}
}

// TestMoveOffSkipsDeadSlots: the poll's MoveOff and the kernel's
// move_group remember the same dead slots and make the same choice: a
// second failure before the daemon rewrites the fallback order never
// moves the group back to a slot one of them found dead; a fresh order
// from the daemon forgets them.
func TestMoveOffSkipsDeadSlots(t *testing.T) {
	tp := newTopo(t)
	kf := tp.armKernelFailover(t)
	red, _ := tp.threeUplinks(t)
	guestOut := frame(t, macUp, macA, 0, nil)
	run(t, tp.dp.objs.TcGuest, tp.vnet0, frame(t, broadcast, macA, 0, nil)) // learn macA

	moveOff := func(step string, from, want limits.Slot) {
		t.Helper()
		to, moved, err := tp.dp.MoveOff(red, from)
		if err != nil || !moved || to != want {
			t.Errorf("%s: MoveOff(%d) = %d, %t, %v; want %d, true", step, from, to, moved, err, want)
		}
	}
	active := func(step string, want limits.Slot) {
		t.Helper()
		if got, err := tp.dp.ActiveSlot(red); err != nil || got != want {
			t.Errorf("%s: active slot %d (%v), want %d", step, got, err, want)
		}
	}

	// The poll moves A -> B, then B fails too: C, not A.
	moveOff("poll, A fails", 0, 1)
	moveOff("poll, B fails next", 1, 2)
	active("poll twice", 2)

	// A fresh order from the daemon (it knows the carriers) is trusted.
	if err := tp.dp.SetActive(red, 1); err != nil {
		t.Fatal(err)
	}
	if err := tp.dp.SetFallback(red, []limits.Slot{0, 1, 2}); err != nil {
		t.Fatal(err)
	}
	moveOff("after a fresh order", 1, 0)

	// The poll moves A -> B; B's egress then finds B without carrier: the
	// kernel skips A, which the poll found dead.
	if !tpHasPath(kf, PathCarrierAtRedirect) {
		t.Skipf("the switch cannot read carrier here: %s", kf.Refused()[PathCarrierAtRedirect])
	}
	if err := tp.dp.SetFallback(red, []limits.Slot{0, 1, 2}); err != nil {
		t.Fatal(err)
	}
	moveOff("poll, A fails (before the kernel)", 0, 1)
	cutCarrier(t, "u1p")
	// Where the carrier hook loads, it has moved the group already.
	if got := runCtx(t, tp.dp.objs.TcUplinkOut, guestOut, skbCtx{Ifindex: uint32(tp.up1)}); got != tcRedirect {
		t.Errorf("a guest's frame at B's egress without carrier: tc action %d, want a redirect", got)
	}
	active("kernel after the poll", 2)

	// The kernel moves B -> C at B's egress; the poll then sees C fail:
	// A, not B.
	if err := tp.dp.SetActive(red, 1); err != nil {
		t.Fatal(err)
	}
	if err := tp.dp.SetFallback(red, []limits.Slot{1, 2, 0}); err != nil {
		t.Fatal(err)
	}
	runCtx(t, tp.dp.objs.TcUplinkOut, guestOut, skbCtx{Ifindex: uint32(tp.up1)})
	active("kernel, B fails", 2)
	moveOff("poll after the kernel, C fails", 2, 0)
}
