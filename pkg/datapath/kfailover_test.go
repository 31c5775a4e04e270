package datapath

import (
	"encoding/binary"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/uplinkd/uplinkd/pkg/limits"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

func TestKernelFailoverPaths(t *testing.T) {
	tp := newTopo(t)
	kf, err := tp.dp.OpenKernelFailover()
	if err != nil {
		t.Fatal(err)
	}
	defer kf.Close()
	paths := kf.Paths()
	t.Logf("failover paths in use: %v; refused: %v", paths, kf.Refused())
	if paths[len(paths)-1] != PathUserspace {
		t.Errorf("paths %v: user space must always be the last resort", paths)
	}
	// Every hook, the switch's own carrier check and user space.
	if want := len(hookPrograms) + 2; len(paths)+len(kf.Refused()) != want {
		t.Errorf("every in-kernel path must be in use or refused with a reason: %v / %v", paths, kf.Refused())
	}
	// The carrier check at the uplinks' tc egress needs no tracing
	// program: on this project's kernels it is always there.
	if !tpHasPath(kf, PathCarrierAtRedirect) {
		t.Fatalf("no carrier check at the uplinks' egress: %v", kf.Refused())
	}
}

// TestCarrierAtRedirectLosesNothing: a guest sends a burst of real frames
// upstream and the active uplink's peer goes down in the middle of it. At
// the uplink's tc egress the switch sees the carrier gone, moves the group
// and sends the frame out of the next uplink: every frame the guest sent
// after the carrier loss leaves through up1, and every frame the switch
// took in arrives at one uplink's peer or was refused by u0p itself while
// it went down (the wire's loss, not the switch's).
func TestCarrierAtRedirectLosesNothing(t *testing.T) {
	tp := newTopo(t)
	kf := tp.armKernelFailover(t)
	if !tpHasPath(kf, PathCarrierAtRedirect) {
		t.Skipf("the switch cannot read carrier here: %s", kf.Refused()[PathCarrierAtRedirect])
	}
	tp.requireEgress(t, tp.up0)
	// u0p receives through its backlog (no XDP, so no NAPI ring whose
	// frames would vanish uncounted when it goes down): a frame it
	// refuses is counted in its rx_dropped.
	run(t, tp.dp.objs.TcGuest, tp.vnet0, frame(t, broadcast, macA, 0, nil))
	caps := map[string]*capture{"u0p": tp.capture("u0p"), "u1p": tp.capture("u1p")}
	for name, c := range caps {
		// Room for the whole burst: the test reads after it.
		if err := unix.SetsockoptInt(c.FD(), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 32<<20); err != nil {
			t.Fatalf("receive buffer of %s: %v", name, err)
		}
	}

	marker := newMarker(t)
	tmpl := frame(t, macUp, macA, 0, append(append([]byte(nil), marker...), 0, 0, 0, 0))
	seqAt := 14 + len(marker)
	const (
		before   = 3000 // frames before the cut
		after    = 3000 // and after the carrier loss
		maxBurst = 100_000
	)
	seenBefore := tp.stats(t, tp.vnet0).RxPackets
	vnetDropped, peerDropped, upDropped := rxDropped(t, tp.vnet0), rxDropped(t, tp.ifindex("u0p")), txDropped(t, tp.up0)

	s := tp.sender("g0")
	defer s.close()
	// started counts the frames whose send began: one sent at the
	// moment of the cut may still meet up0's carrier.
	var started, stopAt atomic.Int64
	stopAt.Store(maxBurst)
	done := make(chan error, 1)
	go func() {
		f := append([]byte(nil), tmpl...)
		deadline := time.Now().Add(10 * time.Second)
		for seq := int64(0); seq < stopAt.Load() && time.Now().Before(deadline); seq++ {
			binary.BigEndian.PutUint32(f[seqAt:], uint32(seq))
			started.Store(seq + 1)
			if err := s.send(f); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	waitFor(t, 5*time.Second, "guest frames before the cut", func() bool { return started.Load() >= before })
	peer, err := netlink.LinkByName("u0p")
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetDown(peer); err != nil {
		t.Fatal(err)
	}
	// up0 has had no carrier since u0p's close returned: every frame
	// from here on is the switch's to carry.
	cut := started.Load()
	stopAt.Store(cut + after)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	total := started.Load()
	waitFor(t, 2*time.Second, "guest frames seen by the switch", func() bool {
		return tp.stats(t, tp.vnet0).RxPackets-seenBefore+rxDropped(t, tp.vnet0)-vnetDropped >= uint64(total)
	})
	seen := tp.stats(t, tp.vnet0).RxPackets - seenBefore

	// Read what arrived until both sockets stay quiet.
	at := map[string]map[uint32]bool{"u0p": {}, "u1p": {}}
	for quiet, rounds := 0, 0; quiet < 3 && rounds < 200; rounds++ {
		n := 0
		for name, c := range caps {
			for _, f := range c.drain(marker) {
				at[name][binary.BigEndian.Uint32(f[seqAt:])] = true
				n++
			}
		}
		if n == 0 {
			quiet++
		} else {
			quiet = 0
		}
		time.Sleep(20 * time.Millisecond)
	}
	for name, c := range caps {
		if st, err := unix.GetsockoptTpacketStats(c.FD(), unix.SOL_PACKET, unix.PACKET_STATISTICS); err == nil && st.Drops > 0 {
			t.Fatalf("the capture on %s dropped %d frames: the count would prove nothing", name, st.Drops)
		}
	}
	refused := rxDropped(t, tp.ifindex("u0p")) - peerDropped
	t.Logf("%d guest frames (%d before the cut), the switch saw %d (%d dropped before it); u0p received %d, u1p %d; u0p refused %d while going down; up0 tx_dropped +%d",
		total, cut, seen, rxDropped(t, tp.vnet0)-vnetDropped, len(at["u0p"]), len(at["u1p"]), refused, txDropped(t, tp.up0)-upDropped)

	if len(at["u1p"]) == 0 || len(at["u0p"]) == 0 {
		t.Fatalf("the burst did not span the cut: u0p %d, u1p %d frames", len(at["u0p"]), len(at["u1p"]))
	}
	var late []int64
	for seq := cut; seq < total; seq++ {
		if !at["u1p"][uint32(seq)] {
			late = append(late, seq)
		}
	}
	if len(late) > 0 {
		t.Errorf("%d of the %d frames sent after the carrier loss did not leave through up1 (first: seq %d)", len(late), total-cut, late[0])
	}
	for seq := range at["u0p"] {
		if int64(seq) >= cut {
			t.Errorf("frame %d, sent after the carrier loss, arrived at u0p", seq)
			break
		}
	}
	if got := uint64(len(at["u0p"])+len(at["u1p"])) + refused; got != seen {
		t.Errorf("the switch took in %d frames; %d arrived and u0p refused %d while going down: %d lost by the switch",
			seen, len(at["u0p"])+len(at["u1p"]), refused, int64(seen)-int64(got))
	}
	if slot, _ := tp.dp.ActiveSlot(0); slot != 1 {
		t.Errorf("active slot %d after the carrier loss, want 1", slot)
	}
	ev := nextSwitch(t, kf)
	// Where fentry loads, the carrier hook is first to see the loss.
	if (ev.Path != PathCarrierAtRedirect && ev.Path != PathCarrierHook) || ev.Group != 0 || ev.From != 0 || ev.To != 1 || ev.Ifindex != tp.up0 {
		t.Errorf("event %+v, want a carrier path moving slot 0 -> 1 off up0", ev)
	}
	if d := time.Since(ev.At); d < 0 || d > time.Minute {
		t.Errorf("event time %v is off by %v", ev.At, d)
	}
}

// TestCarrierCheckLeavesHostFrames: at the egress of an uplink without
// carrier only a guest's frame (its source in the FDB) is carried off to
// the next uplink; the host's own frames are left where the host sent
// them. Both go through the qdisc path (an AF_PACKET socket without
// bypass), as the host stack's do, so they meet tc egress.
func TestCarrierCheckLeavesHostFrames(t *testing.T) {
	tp := newTopo(t)
	kf := tp.armKernelFailover(t)
	if !tpHasPath(kf, PathCarrierAtRedirect) {
		t.Skipf("the switch cannot read carrier here: %s", kf.Refused()[PathCarrierAtRedirect])
	}
	tp.requireEgress(t, tp.up0)
	run(t, tp.dp.objs.TcGuest, tp.vnet0, frame(t, broadcast, macA, 0, nil))
	peer, err := netlink.LinkByName("u0p")
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetDown(peer); err != nil {
		t.Fatal(err)
	}
	c := tp.capture("u1p")
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	out := func(src []byte) int {
		t.Helper()
		marker := newMarker(t)
		if err := unix.Sendto(fd, frame(t, macUp, src, 0, marker), 0, &unix.SockaddrLinklayer{Ifindex: tp.up0, Halen: 6}); err != nil {
			t.Fatalf("send out of up0: %v", err)
		}
		n := 0
		for i := 0; i < 20 && n == 0; i++ {
			time.Sleep(5 * time.Millisecond)
			n = len(c.drain(marker))
		}
		return n
	}
	if n := out(tp.mac("up0")); n != 0 {
		t.Errorf("a host frame out of up0 left through up1 (%d copies)", n)
	}
	if n := out(macA); n != 1 {
		t.Errorf("a guest's frame out of up0 without carrier: %d copies through up1, want 1", n)
	}
}

// nextSwitch waits up to five seconds for the kernel's next failover event.
func nextSwitch(t *testing.T, kf *KernelFailover) KernelSwitch {
	t.Helper()
	type result struct {
		ev  KernelSwitch
		err error
	}
	got := make(chan result, 1)
	go func() {
		ev, err := kf.Next()
		got <- result{ev, err}
	}()
	select {
	case r := <-got:
		if r.err != nil {
			t.Fatalf("failover event: %v", r.err)
		}
		return r.ev
	case <-time.After(5 * time.Second):
		t.Fatal("no failover event")
	}
	return KernelSwitch{}
}

// requireEgress fails the test unless the uplink with ifindex runs
// tc_uplink_out at tc egress (tcx or a clsact filter).
func (tp *topo) requireEgress(t *testing.T, ifindex int) {
	t.Helper()
	info, err := tp.dp.objs.TcUplinkOut.Info()
	if err != nil {
		t.Fatal(err)
	}
	id, _ := info.ID()
	for _, p := range tcProgs(ifindex, egress) {
		if p == id {
			return
		}
	}
	t.Fatalf("ifindex %d does not run tc_uplink_out at egress", ifindex)
}

// armKernelFailover loads the hooks; group 0 (up0, up1) may fall back
// to either, up0 first.
func (tp *topo) armKernelFailover(t *testing.T) *KernelFailover {
	t.Helper()
	kf, err := tp.dp.OpenKernelFailover()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { kf.Close() })
	if err := tp.dp.SetFallback(0, []limits.Slot{0, 1}); err != nil {
		t.Fatal(err)
	}
	return kf
}

func tpHasPath(kf *KernelFailover, p string) bool {
	for _, x := range kf.Paths() {
		if x == p {
			return true
		}
	}
	return false
}

// TestCarrierHookFlipsActive: where the kernel allows fentry, the slot
// moves in the call that takes the carrier away, before any frame is
// sent. This machine's kernel refuses fentry; `make test-kernels` runs
// this on Debian 12's 6.1, where it must work.
func TestCarrierHookFlipsActive(t *testing.T) {
	tp := newTopo(t)
	kf := tp.armKernelFailover(t)
	requireCarrierHook(t, kf)
	peer, err := netlink.LinkByName("u0p")
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetDown(peer); err != nil {
		t.Fatal(err)
	}
	// No frame was sent: only the hook can have moved the group.
	if slot, _ := tp.dp.ActiveSlot(0); slot != 1 {
		t.Fatalf("active slot %d right after carrier loss, want 1", slot)
	}
	ev := nextSwitch(t, kf)
	if ev.Path != PathCarrierHook || ev.From != 0 || ev.To != 1 || ev.Ifindex != tp.up0 {
		t.Errorf("event %+v, want the carrier hook moving slot 0 -> 1 off up0", ev)
	}
}

// requireCarrierHook skips the test where the kernel refuses fentry, and
// fails it on 6.1, whose fentry the hook must use.
func requireCarrierHook(t *testing.T, kf *KernelFailover) {
	t.Helper()
	if tpHasPath(kf, PathCarrierHook) {
		return
	}
	if strings.HasPrefix(os.Getenv("UPLINKD_TEST_KERNEL"), "6.1") {
		t.Fatalf("the carrier hook must load on 6.1: %v", kf.Refused())
	}
	t.Skipf("this kernel refuses the carrier hook (%s); make test-kernels covers it", kf.Refused()[PathCarrierHook])
}

// TestHooksIgnoreOtherNamespaces: an ifindex names a device only within
// its namespace. The carrier loss of a device elsewhere that has up0's
// ifindex must not move the group; the same loss on up0 itself must
// (which proves the hook sees it). No frame is sent: the switch's own
// check at egress has no part in it.
func TestHooksIgnoreOtherNamespaces(t *testing.T) {
	tp := newTopo(t)
	kf := tp.armKernelFailover(t)
	requireCarrierHook(t, kf)
	other, err := netns.New() // enters it
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	twin := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "twin", Index: tp.up0}, PeerName: "twinp"}
	if err := netlink.LinkAdd(twin); err != nil {
		t.Fatalf("veth with ifindex %d in another namespace: %v", tp.up0, err)
	}
	// Set up like up0 and its peer, then the peer down: twin loses its
	// carrier exactly as up0 does below.
	for _, n := range []string{"twin", "twinp"} {
		l, err := netlink.LinkByName(n)
		if err != nil {
			t.Fatal(err)
		}
		if err := netlink.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
	}
	p, err := netlink.LinkByName("twinp")
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetDown(p); err != nil {
		t.Fatal(err)
	}
	if slot, _ := tp.dp.ActiveSlot(0); slot != 0 {
		t.Fatalf("the carrier loss of ifindex %d in another namespace moved the group to slot %d", tp.up0, slot)
	}

	if err := netns.Set(tp.ns); err != nil {
		t.Fatal(err)
	}
	p, err = netlink.LinkByName("u0p")
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetDown(p); err != nil {
		t.Fatal(err)
	}
	if slot, _ := tp.dp.ActiveSlot(0); slot != 1 {
		t.Errorf("the carrier loss of up0 itself did not move the group (slot %d)", slot)
	}
}

// waitFor polls cond until it holds or within has passed; with a
// description it fails the test then.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(within); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			if what != "" {
				t.Fatalf("no %s within %v", what, within)
			}
			return
		}
	}
}

// tcProgs lists the programs at a tc hook of ifindex: tcx, or clsact
// filters.
func tcProgs(ifindex int, dir direction) []ebpf.ProgramID {
	var ids []ebpf.ProgramID
	if res, err := link.QueryPrograms(link.QueryOptions{Target: ifindex, Attach: dir.attach}); err == nil {
		for _, p := range res.Programs {
			ids = append(ids, p.ID)
		}
	}
	if l, err := netlink.LinkByIndex(ifindex); err == nil {
		filters, _ := netlink.FilterList(l, dir.parent)
		for _, f := range filters {
			if bf, ok := f.(*netlink.BpfFilter); ok {
				ids = append(ids, ebpf.ProgramID(bf.Id))
			}
		}
	}
	return ids
}

func txDropped(t *testing.T, ifindex int) uint64 {
	t.Helper()
	return linkStats(t, ifindex).TxDropped
}

func rxDropped(t *testing.T, ifindex int) uint64 {
	t.Helper()
	return linkStats(t, ifindex).RxDropped
}

func linkStats(t *testing.T, ifindex int) *netlink.LinkStatistics {
	t.Helper()
	l, err := netlink.LinkByIndex(ifindex)
	if err != nil {
		t.Fatal(err)
	}
	if l.Attrs().Statistics == nil {
		t.Fatalf("no statistics for ifindex %d", ifindex)
	}
	return l.Attrs().Statistics
}
