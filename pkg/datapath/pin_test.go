package datapath

import (
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
)

// A restarted daemon re-opens the pinned maps: the active uplink and the
// learned guests survive, and re-attaching swaps programs in place.
func TestReopenKeepsStateAndRemoveCleansUp(t *testing.T) {
	tp := newTopo(t)
	run(t, tp.dp.objs.XdpGuest, tp.vnet0, frame(t, broadcast, macA, 0, nil), false)
	if err := tp.dp.SetActive(0, 1); err != nil {
		t.Fatal(err)
	}
	before, err := tp.dp.Stats(tp.vnet0)
	if err != nil {
		t.Fatal(err)
	}
	tp.dp.Close()

	dp, err := Open(tp.pinDir+"/uplinkd", slog.New(slog.NewTextHandler(os.Stderr, nil)))
	if err != nil {
		t.Fatal(err)
	}
	tp.dp = dp
	ids, err := dp.AssignGroups([]string{"blue", "red"}) // order must not matter
	if err != nil {
		t.Fatal(err)
	}
	if ids["red"] != 0 || ids["blue"] != 1 {
		t.Errorf("group ids changed across restart: %v", ids)
	}
	if slot, _ := dp.ActiveSlot(ids["red"]); slot != 1 {
		t.Errorf("active slot after restart = %d, want 1", slot)
	}
	// Every pinned map is adopted as it is (none migrated): the uplink
	// slots still hold their devices.
	if ifi, err := dp.UplinkIfindex(ids["red"], 1); err != nil || ifi != tp.up1 {
		t.Errorf("uplink slot 1 after restart = %d, %v; want up1 (%d)", ifi, err, tp.up1)
	}
	fdb, _ := dp.FDB()
	if len(fdb) != 1 || fdb[0].MAC.String() != macA.String() {
		t.Errorf("fdb after restart = %v", fdb)
	}
	mode, err := dp.Attach(Port{Ifname: "vnet0", Ifindex: tp.vnet0, Group: ids["red"], Role: RoleGuest})
	if err != nil || mode != ModeNative {
		t.Fatalf("re-attach: %v %v", mode, err)
	}
	after, _ := dp.Stats(tp.vnet0)
	if after.RxPackets != before.RxPackets || after.RxPackets == 0 {
		t.Errorf("counters not kept across restart: %d -> %d", before.RxPackets, after.RxPackets)
	}
	links, _ := dp.PinnedLinks()
	if len(links) != 6 {
		t.Errorf("pinned links = %v, want the 6 ports", links)
	}

	// A group no longer configured releases its id and its uplinks.
	ids, err = dp.AssignGroups([]string{"red"})
	if err != nil {
		t.Fatal(err)
	}
	if ifx, _ := dp.UplinkIfindex(1, 0); ifx != 0 {
		t.Errorf("released group kept uplink %d", ifx)
	}

	if err := dp.Detach("vnet1", tp.vnet1); err != nil {
		t.Fatal(err)
	}
	if l, _ := netlink.LinkByIndex(tp.vnet1); l.Attrs().Xdp != nil && l.Attrs().Xdp.Attached {
		t.Error("vnet1 still has XDP after Detach")
	}
	dp.Close()
	tp.dp = nil
	if err := Remove(tp.pinDir + "/uplinkd"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(tp.pinDir + "/uplinkd"); !os.IsNotExist(err) {
		t.Errorf("pin dir still there: %v", err)
	}
	for _, ifx := range []int{tp.vnet0, tp.up0, tp.up1} {
		if l, _ := netlink.LinkByIndex(ifx); l.Attrs().Xdp != nil && l.Attrs().Xdp.Attached {
			t.Errorf("ifindex %d still has XDP after Remove", ifx)
		}
	}
}

// A device without native XDP (a bridge) falls back to generic mode.
func TestAttachFallsBackToGeneric(t *testing.T) {
	e := newTestEnv(t)
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br9"}}
	if err := netlink.LinkAdd(br); err != nil {
		t.Fatal(err)
	}
	ids, err := e.dp.AssignGroups([]string{"g"})
	if err != nil {
		t.Fatal(err)
	}
	mode, err := e.dp.Attach(Port{Ifname: "br9", Ifindex: e.ifindex("br9"), Group: ids["g"], Role: RoleGuest})
	if err != nil {
		t.Fatal(err)
	}
	if mode != ModeGeneric {
		t.Errorf("bridge attached in %q mode, want generic", mode)
	}
	// Re-attaching over the pinned link keeps reporting the real mode.
	if mode, err = e.dp.Attach(Port{Ifname: "br9", Ifindex: e.ifindex("br9"), Group: ids["g"], Role: RoleGuest}); err != nil || mode != ModeGeneric {
		t.Errorf("re-attach: %q, %v", mode, err)
	}
}

// After a switch the old uplink keeps delivering unicast to known guests
// for DrainTime (the upstream still sends there until it relearns), never
// broadcast (that comes in on the active uplink too), and nothing after.
func TestDrainAfterSwitch(t *testing.T) {
	tp := newTopo(t)
	run(t, tp.dp.objs.XdpGuest, tp.vnet0, frame(t, broadcast, macA, 0, nil), false)
	tp.dp.DrainTime = 300 * time.Millisecond
	if err := tp.dp.SetActive(0, 1); err != nil {
		t.Fatal(err)
	}
	up := tp.dp.objs.XdpUplink
	for _, c := range []struct {
		name    string
		ingress int
		frame   []byte
		want    uint32
	}{
		{"old uplink, unicast to a guest: delivered", tp.up0, frame(t, macA, macUp, 0, nil), xdpRedirect},
		{"old uplink, broadcast: dropped", tp.up0, frame(t, broadcast, macUp, 0, nil), xdpDrop},
		{"old uplink, unknown unicast: dropped", tp.up0, frame(t, macB, macUp, 0, nil), xdpDrop},
		{"new uplink, unicast to a guest: delivered", tp.up1, frame(t, macA, macUp, 0, nil), xdpRedirect},
	} {
		if got := run(t, up, c.ingress, c.frame, false); got != c.want {
			t.Errorf("%s: action %d, want %d", c.name, got, c.want)
		}
	}
	time.Sleep(350 * time.Millisecond)
	if got := run(t, up, tp.up0, frame(t, macA, macUp, 0, nil), false); got != xdpDrop {
		t.Errorf("after the drain: old uplink delivered (action %d)", got)
	}
	// A third uplink slot that was never active does not drain.
	if err := tp.dp.SetActive(0, 0); err != nil {
		t.Fatal(err)
	}
	if got := run(t, up, tp.up1, frame(t, macA, macUp, 0, nil), false); got != xdpRedirect {
		t.Errorf("switch back: the previous active (up1) does not drain (action %d)", got)
	}
}
