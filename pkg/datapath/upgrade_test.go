package datapath

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
)

// xdpDataplaneObject is the switch of commit e0aa35e, the last with the
// XDP data plane: its XDP programs, its devmaps (ports_tx, uplinks), its
// record of uplink devices (uplink_devs) and port_stats before DropMTU.
const xdpDataplaneObject = "testdata/xdp-dataplane/bpfswitch_bpfel.o"

// devmapVal mirrors struct bpf_devmap_val.
type devmapVal struct {
	Ifindex uint32
	ProgFD  int32
}

// oldPortStats is struct port_stats of the XDP data plane: six drop
// reasons, then learn_refused.
type oldPortStats struct {
	Rx, RxBytes, Tx, TxBytes, Host uint64
	Drops                          [6]uint64
	LearnRefused                   uint64
}

// xdpDataplane is a data plane an older uplinkd left under pin: group
// "red" with guest vnet0 (A learned behind it) and uplink up0 (slot 0,
// active), XDP links pinned under links/, as that daemon did. u0p gets
// an XDP program so that XDP redirects into up0 reach it (design.md §2).
type xdpDataplane struct {
	pin        string
	vnet0, up0 int
}

func newXDPDataplane(t *testing.T, e *testEnv, pin string) *xdpDataplane {
	t.Helper()
	x := &xdpDataplane{pin: pin, vnet0: e.veth("vnet0", "g0"), up0: e.veth("up0", "u0p")}
	spec, err := ebpf.LoadCollectionSpec(xdpDataplaneObject)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"ports_tx", "uplinks", "uplink_devs"} {
		if spec.Maps[m] == nil {
			t.Fatalf("%s has no map %s: not the XDP data plane", xdpDataplaneObject, m)
		}
	}
	if err := os.MkdirAll(linksDir(pin), 0o700); err != nil {
		t.Fatal(err)
	}
	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{Maps: ebpf.MapOptions{PinPath: pin}})
	if err != nil {
		t.Fatalf("load the XDP data plane: %v", err)
	}
	defer coll.Close()
	put := func(m string, k, v any) {
		t.Helper()
		if err := coll.Maps[m].Put(k, v); err != nil {
			t.Fatalf("write %s: %v", m, err)
		}
	}
	var red bpfSwitchGroupInfo
	for i, c := range "red" {
		red.Name[i] = int8(c)
	}
	red.InUse = 1
	put("groups", uint32(0), red)
	put("active", uint32(0), uint32(0))
	put("ports", uint32(x.vnet0), bpfSwitchPortInfo{Id: 0, Group: 0, Role: uint32(RoleGuest), Slot: mapNoSlot})
	put("ports", uint32(x.up0), bpfSwitchPortInfo{Id: 1, Group: 0, Role: uint32(RoleUplink), Slot: 0, Mac: macOf(e.mac("up0"))})
	egress, egressUp := coll.Programs["xdp_egress"], coll.Programs["xdp_egress_up"]
	put("ports_tx", uint32(x.vnet0), devmapVal{uint32(x.vnet0), int32(egress.FD())})
	put("ports_tx", uint32(x.up0), devmapVal{uint32(x.up0), int32(egress.FD())})
	put("uplinks", uint32(0), devmapVal{uint32(x.up0), int32(egressUp.FD())})
	put("uplink_ifs", uint32(0), uint32(x.up0))
	put("fdb", bpfSwitchFdbKey{Group: 0, Mac: [6]byte(macA)}, bpfSwitchFdbEntry{Ifindex: uint32(x.vnet0), PortId: 0})
	counters := make([]oldPortStats, ebpf.MustPossibleCPU())
	for i := range counters {
		counters[i] = oldPortStats{Rx: 5, RxBytes: 300, Drops: [6]uint64{DropVLAN: 2}, LearnRefused: 3}
	}
	put("stats", uint32(0), counters)
	for _, p := range []struct {
		name, prog string
		ifindex    int
	}{{"vnet0", "xdp_guest", x.vnet0}, {"up0", "xdp_uplink", x.up0}} {
		l, err := link.AttachXDP(link.XDPOptions{Program: coll.Programs[p.prog], Interface: p.ifindex})
		if err != nil {
			t.Fatalf("attach %s to %s: %v", p.prog, p.name, err)
		}
		if err := l.Pin(filepath.Join(linksDir(pin), p.name)); err != nil {
			t.Fatal(err)
		}
		l.Close() // the pin holds it, as a stopped daemon's did
	}
	pass, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type: ebpf.XDP, License: "GPL",
		Instructions: asm.Instructions{asm.LoadImm(asm.R0, 2 /* XDP_PASS */, asm.DWord), asm.Return()},
	})
	if err != nil {
		t.Fatal(err)
	}
	l, err := link.AttachXDP(link.XDPOptions{Program: pass, Interface: e.ifindex("u0p")})
	if err != nil {
		t.Fatalf("XDP_PASS on u0p: %v", err)
	}
	t.Cleanup(func() { l.Close(); pass.Close() })
	return x
}

// forwards sends a frame from A (behind vnet0) upstream and reports
// whether it reached u0p.
func (x *xdpDataplane) forwards(t *testing.T, e *testEnv, c *capture) bool {
	t.Helper()
	marker := newMarker(t)
	e.inject("g0", frame(t, macUp, macA, 0, marker))
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if len(c.drain(marker)) > 0 {
			return true
		}
	}
	return false
}

func runsXDP(t *testing.T, ifindex int) bool {
	t.Helper()
	l, err := netlink.LinkByIndex(ifindex)
	if err != nil {
		t.Fatal(err)
	}
	return l.Attrs().Xdp != nil && l.Attrs().Xdp.Attached
}

func requireNoRetiredPins(t *testing.T, pin, when string) {
	t.Helper()
	for _, name := range retiredMaps {
		if _, err := os.Stat(filepath.Join(pin, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: the pin of retired map %s is still there (%v)", when, name, err)
		}
	}
}

// TestUpgradeFromXDPDataplane: a data plane the XDP uplinkd left is taken
// over without a gap. Open removes the pins of the maps this version no
// longer has while the old programs go on forwarding with them, migrates
// the counters to the grown port_stats (each field in its place, the new
// drop reasons at zero) and adopts the rest as it is; Attach then puts
// the tc programs in and takes the XDP links out; Remove leaves nothing.
func TestUpgradeFromXDPDataplane(t *testing.T) {
	e := newTestEnv(t)
	e.dp.Close()
	e.dp = nil
	pin := filepath.Join(e.pinDir, "old")
	x := newXDPDataplane(t, e, pin)
	c := e.capture("u0p")
	if !x.forwards(t, e, c) {
		t.Fatal("the XDP data plane does not forward: the test cannot tell anything")
	}

	dp, err := Open(pin, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		t.Fatalf("open over the XDP data plane: %v", err)
	}
	e.dp = dp
	requireNoRetiredPins(t, pin, "after Open")
	if !x.forwards(t, e, c) {
		t.Error("the old programs stopped forwarding when the new daemon opened the pins")
	}

	cpus := uint64(ebpf.MustPossibleCPU())
	st, err := dp.Stats(x.vnet0)
	if err != nil {
		t.Fatal(err)
	}
	if st.RxPackets < 5*cpus || st.Drops[DropVLAN] != 2*cpus || st.LearnRefused != 3*cpus ||
		st.Drops[DropMTU] != 0 || st.Drops[DropNoDestination] != 0 {
		t.Errorf("counters after the migration: %+v; want rx >= %d, vlan drops %d, learn refused %d, no mtu or no_destination drops",
			st, 5*cpus, 2*cpus, 3*cpus)
	}
	ids, err := dp.AssignGroups([]string{"red"})
	if err != nil || ids["red"] != 0 {
		t.Fatalf("group ids %v, %v: want red kept at 0", ids, err)
	}
	if slot, err := dp.ActiveSlot(0); err != nil || slot != 0 {
		t.Errorf("active slot %d, %v: want 0 kept", slot, err)
	}
	if up, err := dp.UplinkIfindex(0, 0); err != nil || up != x.up0 {
		t.Errorf("uplink slot 0 holds %d, %v: want up0 (%d)", up, err, x.up0)
	}
	if fdb, err := dp.FDB(); err != nil || len(fdb) != 1 || fdb[0].MAC.String() != macA.String() {
		t.Errorf("FDB after the upgrade: %v, %v", fdb, err)
	}

	for _, p := range []Port{
		{Ifname: "up0", Ifindex: x.up0, Group: 0, Role: RoleUplink, Slot: 0, MAC: e.mac("up0")},
		{Ifname: "vnet0", Ifindex: x.vnet0, Group: 0, Role: RoleGuest},
	} {
		if _, err := dp.Attach(p); err != nil {
			t.Fatal(err)
		}
		if runsXDP(t, p.Ifindex) {
			t.Errorf("%s still runs XDP after Attach", p.Ifname)
		}
		if _, err := os.Stat(filepath.Join(linksDir(pin), p.Ifname)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the XDP link pin of %s is still there: %v", p.Ifname, err)
		}
	}
	requireOnly(t, x.vnet0, ingress, dp.objs.TcGuest)
	requireOnly(t, x.up0, ingress, dp.objs.TcUplink)
	if !x.forwards(t, e, c) {
		t.Error("the tc data plane does not forward after the takeover")
	}

	dp.Close()
	e.dp = nil
	if err := Remove(pin); err != nil {
		t.Fatalf("remove: %v", err)
	}
	if _, err := os.Stat(pin); !errors.Is(err, os.ErrNotExist) {
		entries, _ := os.ReadDir(pin)
		t.Errorf("pin dir still there after Remove (%v): %v", err, entries)
	}
}

// TestRemoveXDPDataplane: `uplinkd -cleanup` of this version over a data
// plane the XDP uplinkd left detaches its programs and deletes every pin,
// the retired maps' too, and the pin directory with them.
func TestRemoveXDPDataplane(t *testing.T) {
	e := newTestEnv(t)
	pin := filepath.Join(e.pinDir, "old")
	x := newXDPDataplane(t, e, pin)
	for _, name := range retiredMaps {
		if _, err := os.Stat(filepath.Join(pin, name)); err != nil {
			t.Fatalf("the XDP data plane pinned no %s: %v", name, err)
		}
	}
	if err := Remove(pin); err != nil {
		t.Fatalf("remove: %v", err)
	}
	requireNoRetiredPins(t, pin, "after Remove")
	if _, err := os.Stat(pin); !errors.Is(err, os.ErrNotExist) {
		entries, _ := os.ReadDir(pin)
		t.Errorf("pin dir still there after Remove (%v): %v", err, entries)
	}
	for _, ifx := range []int{x.vnet0, x.up0} {
		if runsXDP(t, ifx) {
			t.Errorf("ifindex %d still runs XDP after Remove", ifx)
		}
	}
}
