package datapath

import (
	"errors"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"

	"github.com/uplinkd/uplinkd/pkg/limits"
)

// A restarted daemon re-opens the pinned maps: the active uplink and the
// learned guests survive, and re-attaching swaps programs in place.
func TestReopenKeepsStateAndRemoveCleansUp(t *testing.T) {
	tp := newTopo(t)
	mode := tp.expectedMode(t)
	run(t, tp.dp.objs.TcGuest, tp.vnet0, frame(t, broadcast, macA, 0, nil))
	if err := tp.dp.SetActive(0, 1); err != nil {
		t.Fatal(err)
	}
	before, err := tp.dp.Stats(tp.vnet0)
	if err != nil {
		t.Fatal(err)
	}
	if mode == ModeTCX {
		// Every port's ingress link, and each uplink's egress link, is
		// pinned where a restarted daemon finds it.
		pinned := func(dir direction) []string {
			entries, _ := os.ReadDir(filepath.Join(tp.dp.PinDir(), dir.name))
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			return names
		}
		if got, want := pinned(ingress), []string{"up0", "up1", "up2", "vnet0", "vnet1", "vnet2"}; !slices.Equal(got, want) {
			t.Errorf("pinned ingress links %v, want %v", got, want)
		}
		if got, want := pinned(egress), []string{"up0", "up1", "up2"}; !slices.Equal(got, want) {
			t.Errorf("pinned egress links %v, want %v", got, want)
		}
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
	got, err := dp.Attach(Port{Ifname: "vnet0", Ifindex: tp.vnet0, Group: ids["red"], Role: RoleGuest})
	if err != nil || got != mode {
		t.Fatalf("re-attach: %v %v, want %v", got, err, mode)
	}
	requireOnly(t, tp.vnet0, ingress, dp.objs.TcGuest)
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
	// A name as long as the configuration allows fills the pinned field
	// (no NUL) and still maps back to its id; a longer one is refused.
	long := strings.Repeat("n", limits.MaxGroupNameLen)
	first, err := dp.AssignGroups([]string{"red", long})
	if err != nil {
		t.Fatalf("a %d-byte group name: %v", len(long), err)
	}
	if again, err := dp.AssignGroups([]string{"red", long}); err != nil || again[long] != first[long] {
		t.Errorf("a %d-byte group name: id %d, then %d (%v)", len(long), first[long], again[long], err)
	}
	if _, err := dp.AssignGroups([]string{"red", long + "n"}); err == nil {
		t.Errorf("a %d-byte group name accepted", len(long)+1)
	}

	if err := dp.Detach("vnet1", tp.vnet1); err != nil {
		t.Fatal(err)
	}
	if progs := tcProgs(tp.vnet1, ingress); len(progs) != 0 {
		t.Errorf("vnet1 still runs %v at tc ingress after Detach", progs)
	}
	if _, err := os.Stat(filepath.Join(dp.PinDir(), ingress.name, "vnet1")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("vnet1's link still pinned after Detach: %v", err)
	}
	dp.Close()
	tp.dp = nil
	if err := Remove(tp.pinDir + "/uplinkd"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(tp.pinDir + "/uplinkd"); !os.IsNotExist(err) {
		t.Errorf("pin dir still there: %v", err)
	}
	for _, ifx := range []int{tp.vnet0, tp.vnet2, tp.up0, tp.up1, tp.up2} {
		for _, dir := range []direction{ingress, egress} {
			if progs := tcProgs(ifx, dir); len(progs) != 0 {
				t.Errorf("ifindex %d still runs %v at %s after Remove", ifx, progs, dir.name)
			}
		}
	}
}

// TestAttachTCXInPlace: a port attaches with tcx where the kernel has it
// (else a clsact filter); a daemon that adopts the interface from a
// previous one swaps its programs in place: the same pinned tcx link (or
// the same filter slot) now runs the new program, ingress and egress,
// and frames go on through the switch.
func TestAttachTCXInPlace(t *testing.T) {
	tp := newTopo(t)
	mode := tp.expectedMode(t)
	t.Logf("this kernel's hook: %s", mode)
	up0 := Port{Ifname: "up0", Ifindex: tp.up0, Group: 0, Role: RoleUplink, Slot: 0, MAC: tp.mac("up0")}
	vnet0 := Port{Ifname: "vnet0", Ifindex: tp.vnet0, Group: 0, Role: RoleGuest}
	linkIDs := func() map[string]link.ID {
		ids := map[string]link.ID{}
		if mode != ModeTCX {
			return ids
		}
		for _, p := range []struct {
			name string
			dir  direction
		}{{"up0", ingress}, {"up0", egress}, {"vnet0", ingress}} {
			l, err := link.LoadPinnedLink(filepath.Join(tp.dp.PinDir(), p.dir.name, p.name), nil)
			if err != nil {
				t.Fatalf("pinned %s link of %s: %v", p.dir.name, p.name, err)
			}
			info, err := l.Info()
			l.Close()
			if err != nil {
				t.Fatal(err)
			}
			if info.Type != link.TCXType {
				t.Fatalf("pinned %s link of %s has type %v, want tcx", p.dir.name, p.name, info.Type)
			}
			ids[p.dir.name+"/"+p.name] = info.ID
		}
		return ids
	}
	before := linkIDs()
	requireOnly(t, tp.up0, ingress, tp.dp.objs.TcUplink)
	requireOnly(t, tp.up0, egress, tp.dp.objs.TcUplinkOut)
	requireOnly(t, tp.vnet0, ingress, tp.dp.objs.TcGuest)
	// vnet0's guest is known: the frames below are unicast to it.
	run(t, tp.dp.objs.TcGuest, tp.vnet0, frame(t, broadcast, macA, 0, nil))

	tp.dp.Close()
	dp, err := Open(tp.pinDir+"/uplinkd", slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		t.Fatal(err)
	}
	tp.dp = dp
	dp.DrainTime = 0
	for _, p := range []Port{up0, vnet0} {
		got, err := dp.Attach(p)
		if err != nil || got != mode {
			t.Fatalf("adopt %s: %q, %v; want %q", p.Ifname, got, err, mode)
		}
	}
	// One program per hook, the new daemon's: the old ones were replaced
	// in place, not stacked beside the new.
	requireOnly(t, tp.up0, ingress, dp.objs.TcUplink)
	requireOnly(t, tp.up0, egress, dp.objs.TcUplinkOut)
	requireOnly(t, tp.vnet0, ingress, dp.objs.TcGuest)
	if after := linkIDs(); !maps.Equal(before, after) {
		t.Errorf("pinned tcx links %v before, %v after adoption: want the same links updated", before, after)
	}
	// Frames flow through the adopted ports: upstream to the guest.
	c := tp.capture("g0")
	marker := newMarker(t)
	tp.send(dp.objs.TcUplink, tp.up0, frame(t, macA, macUp, 0, marker))
	waitFor(t, time.Second, "frame through the adopted ports", func() bool { return len(c.drain(marker)) > 0 })
}

// TestAttachReplacesXDPLink: an interface the older (XDP) data plane
// pinned a link for is taken over: the tc program runs and the XDP link
// is gone, its pin too.
func TestAttachReplacesXDPLink(t *testing.T) {
	e := newTestEnv(t)
	ifindex := e.veth("vnet0", "g0")
	old, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type: ebpf.XDP, License: "GPL",
		Instructions: asm.Instructions{asm.LoadImm(asm.R0, 2 /* XDP_PASS */, asm.DWord), asm.Return()},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	xl, err := link.AttachXDP(link.XDPOptions{Program: old, Interface: ifindex})
	if err != nil {
		t.Fatalf("the older data plane's XDP link: %v", err)
	}
	pin := filepath.Join(linksDir(e.dp.PinDir()), "vnet0")
	if err := xl.Pin(pin); err != nil {
		t.Fatal(err)
	}
	xl.Close() // the pin holds it, as a stopped daemon's did

	ids, err := e.dp.AssignGroups([]string{"g"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.dp.Attach(Port{Ifname: "vnet0", Ifindex: ifindex, Group: ids["g"], Role: RoleGuest}); err != nil {
		t.Fatal(err)
	}
	requireOnly(t, ifindex, ingress, e.dp.objs.TcGuest)
	if l, err := netlink.LinkByIndex(ifindex); err != nil || (l.Attrs().Xdp != nil && l.Attrs().Xdp.Attached) {
		t.Errorf("vnet0 still runs XDP after Attach (%v)", err)
	}
	if _, err := os.Stat(pin); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the XDP link's pin is still there: %v", err)
	}
	if links, err := e.dp.PinnedLinks(); err != nil || !slices.Equal(links, []string{"vnet0"}) {
		t.Errorf("pinned links %v, %v; want vnet0 once", links, err)
	}
}

// expectedMode is the hook Attach must choose on this kernel: tcx where
// the kernel has it, else a clsact filter.
func (e *testEnv) expectedMode(t *testing.T) AttachMode {
	t.Helper()
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type: ebpf.SchedCLS, License: "GPL",
		Instructions: asm.Instructions{asm.LoadImm(asm.R0, 0, asm.DWord), asm.Return()},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Close()
	// lo of the test's namespace: nothing else runs there.
	l, err := link.AttachTCX(link.TCXOptions{Interface: e.ifindex("lo"), Program: prog, Attach: ebpf.AttachTCXIngress})
	if errors.Is(err, ebpf.ErrNotSupported) {
		return ModeClsact
	}
	if err != nil {
		t.Fatalf("probe tcx: %v", err)
	}
	l.Close()
	return ModeTCX
}

// requireOnly fails the test unless prog is the one program at dir of
// ifindex.
func requireOnly(t *testing.T, ifindex int, dir direction, prog *ebpf.Program) {
	t.Helper()
	info, err := prog.Info()
	if err != nil {
		t.Fatal(err)
	}
	id, _ := info.ID()
	if got := tcProgs(ifindex, dir); !slices.Equal(got, []ebpf.ProgramID{id}) {
		t.Errorf("ifindex %d runs %v at %s, want only %s (%d)", ifindex, got, dir.name, prog, id)
	}
}

// After a switch the old uplink keeps delivering unicast to known guests
// for DrainTime (the upstream still sends there until it relearns), never
// broadcast (that comes in on the active uplink too), and nothing after.
func TestDrainAfterSwitch(t *testing.T) {
	tp := newTopo(t)
	run(t, tp.dp.objs.TcGuest, tp.vnet0, frame(t, broadcast, macA, 0, nil))
	tp.dp.DrainTime = 300 * time.Millisecond
	if err := tp.dp.SetActive(0, 1); err != nil {
		t.Fatal(err)
	}
	up := tp.dp.objs.TcUplink
	for _, c := range []struct {
		name    string
		ingress int
		frame   []byte
		want    uint32
	}{
		{"old uplink, unicast to a guest: delivered", tp.up0, frame(t, macA, macUp, 0, nil), tcRedirect},
		{"old uplink, broadcast: dropped", tp.up0, frame(t, broadcast, macUp, 0, nil), tcShot},
		{"old uplink, unknown unicast: dropped", tp.up0, frame(t, macB, macUp, 0, nil), tcShot},
		{"new uplink, unicast to a guest: delivered", tp.up1, frame(t, macA, macUp, 0, nil), tcRedirect},
	} {
		if got := run(t, up, c.ingress, c.frame); got != c.want {
			t.Errorf("%s: action %d, want %d", c.name, got, c.want)
		}
	}
	time.Sleep(350 * time.Millisecond)
	if got := run(t, up, tp.up0, frame(t, macA, macUp, 0, nil)); got != tcShot {
		t.Errorf("after the drain: old uplink delivered (action %d)", got)
	}
	// A third uplink slot that was never active does not drain.
	if err := tp.dp.SetActive(0, 0); err != nil {
		t.Fatal(err)
	}
	if got := run(t, up, tp.up1, frame(t, macA, macUp, 0, nil)); got != tcRedirect {
		t.Errorf("switch back: the previous active (up1) does not drain (action %d)", got)
	}
}

// TestClsactFiltersFoundAndRemoved: uplinkd's clsact filters are found
// (PinnedLinks) and removed (Remove) on whichever interface carries them,
// on every kernel: one carrying none, with or without a qdisc, is not
// listed, and another program's filter stays.
func TestClsactFiltersFoundAndRemoved(t *testing.T) {
	e := newTestEnv(t)
	ours := e.veth("vnet0", "g0")
	e.veth("vnet1", "g1") // no qdisc at all
	foreign := e.veth("vnet2", "g2")
	other, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: "not_uplinkd", Type: ebpf.SchedCLS, License: "GPL",
		Instructions: asm.Instructions{asm.LoadImm(asm.R0, 0, asm.DWord), asm.Return()},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := attachClsact(ours, e.dp.objs.TcGuest, ingress); err != nil {
		t.Fatal(err)
	}
	if err := attachClsact(ours, e.dp.objs.TcUplinkOut, egress); err != nil {
		t.Fatal(err)
	}
	if err := attachClsact(foreign, other, ingress); err != nil {
		t.Fatal(err)
	}
	if links, err := e.dp.PinnedLinks(); err != nil || !slices.Equal(links, []string{"vnet0"}) {
		t.Errorf("pinned links %v, %v; want vnet0 (its clsact filter)", links, err)
	}
	otherInfo, err := other.Info()
	if err != nil {
		t.Fatal(err)
	}
	otherID, _ := otherInfo.ID()
	e.dp.Close()
	e.dp = nil
	if err := Remove(e.pinDir + "/uplinkd"); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []direction{ingress, egress} {
		if progs := tcProgs(ours, dir); len(progs) != 0 {
			t.Errorf("vnet0 still runs %v at %s after Remove", progs, dir.name)
		}
	}
	if progs := tcProgs(foreign, ingress); !slices.Equal(progs, []ebpf.ProgramID{otherID}) {
		t.Errorf("vnet2 runs %v at ingress after Remove, want only the other program's filter (%d)", progs, otherID)
	}
}
