package datapath

import (
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cilium/ebpf/asm"
	"github.com/safchain/ethtool"
	"github.com/vishvananda/netns"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
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
	if len(paths)+len(kf.Refused()) != 4 {
		t.Errorf("every in-kernel path must be in use or refused with a reason: %v / %v", paths, kf.Refused())
	}
	// This project's kernels allow tp_btf (design.md §2); a kernel that
	// does not would be reported, but here it is a regression.
	if !kf.InKernel() {
		t.Fatalf("no in-kernel path loaded: %v", kf.Refused())
	}
}

// TestXmitErrorFlipsActive: a transmit that fails (the uplink's peer is
// down: -ENXIO) moves the group to the next uplink inside the kernel; a
// transmit into a healthy uplink does not. The switch does not know up0's
// device here (as for the first frames into a new uplink), so its own
// carrier check cannot step in first.
func TestXmitErrorFlipsActive(t *testing.T) {
	tp := newTopo(t)
	kf := tp.armKernelFailover(t)
	run(t, tp.dp.objs.XdpGuest, tp.vnet0, frame(t, broadcast, macA, 0, nil), false)

	// Healthy: frames go out up0, nothing moves.
	txBefore := tp.stats(t, tp.up0).TxPackets
	for range 10 {
		tp.send(tp.dp.objs.XdpGuest, tp.vnet0, frame(t, macUp, macA, 0, nil))
	}
	// Real frames leave up0 a moment after its program saw them.
	waitFor(t, time.Second, "10 frames out of up0", func() bool { return tp.stats(t, tp.up0).TxPackets >= txBefore+10 })
	if slot, _ := tp.dp.ActiveSlot(0); slot != 0 {
		t.Fatalf("active moved to %d with a healthy uplink", slot)
	}
	if err := tp.dp.objs.UplinkDevs.Put(uplinkKey(0, 0), bpfSwitchUplinkDev{}); err != nil {
		t.Fatal(err)
	}

	// up0's peer goes down: the next redirect into up0 fails.
	peer, err := netlink.LinkByName("u0p")
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetDown(peer); err != nil {
		t.Fatal(err)
	}
	if !tpHasPath(kf, PathXmitError) && !tpHasPath(kf, PathCarrierHook) {
		t.Skip("no in-kernel path on this kernel")
	}
	// With the carrier hook the switch already happened at carrier loss;
	// with the transmit hook it happens at the first failed redirect.
	flipped := func() bool { slot, _ := tp.dp.ActiveSlot(0); return slot == 1 }
	for i := 0; i < 10 && !flipped(); i++ {
		tp.send(tp.dp.objs.XdpGuest, tp.vnet0, frame(t, macUp, macA, 0, nil))
		// A real frame's transmit fails a moment after the program saw
		// it; a live run's has failed already.
		waitFor(t, 50*time.Millisecond, "", flipped)
	}
	if slot, _ := tp.dp.ActiveSlot(0); slot != 1 {
		t.Fatalf("active slot %d after transmits into a dead uplink, want 1", slot)
	}
	done := make(chan KernelSwitch, 1)
	go func() {
		ev, err := kf.Next()
		if err == nil {
			done <- ev
		}
	}()
	select {
	case ev := <-done:
		if ev.Path == PathCarrierAtRedirect || ev.Group != 0 || ev.From != 0 || ev.To != 1 || ev.Ifindex != tp.up0 {
			t.Errorf("event %+v", ev)
		}
		if d := time.Since(ev.At); d < 0 || d > time.Minute {
			t.Errorf("event time %v is off by %v", ev.At, d)
		}
		t.Logf("kernel switch: %+v", ev)
	case <-time.After(5 * time.Second):
		t.Fatal("no failover event")
	}
}

// TestCarrierAtRedirectLosesNothing: once the switch knows an uplink's
// device (recorded by the transmit hook), it reads the carrier before it
// redirects, so the first frame after the carrier loss already leaves
// through the next uplink and no transmit fails.
func TestCarrierAtRedirectLosesNothing(t *testing.T) {
	tp := newTopo(t)
	kf := tp.armKernelFailover(t)
	if !tpHasPath(kf, PathCarrierAtRedirect) {
		t.Skipf("the switch cannot read carrier here: %s", kf.Refused()[PathCarrierAtRedirect])
	}
	caps := []*capture{tp.capture("u0p"), tp.capture("u1p")}
	run(t, tp.dp.objs.XdpGuest, tp.vnet0, frame(t, broadcast, macA, 0, nil), false)
	if got := tp.delivery(t, "guest", tp.vnet0, func(m []byte) []byte { return frame(t, macUp, macA, 0, m) }, []string{"u0p"}, caps...); !slices.Equal(got, []string{"u0p"}) {
		t.Fatalf("healthy uplink: delivered to %v", got)
	}
	var dev bpfSwitchUplinkDev
	if err := tp.dp.objs.UplinkDevs.Lookup(uplinkKey(0, 0), &dev); err != nil || dev.Dev == 0 || int(dev.Ifindex) != tp.up0 {
		t.Fatalf("the transmit hook did not record up0's device: %+v, %v", dev, err)
	}

	dropped := txDropped(t, tp.up0)
	peer, err := netlink.LinkByName("u0p")
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetDown(peer); err != nil {
		t.Fatal(err)
	}
	if got := tp.delivery(t, "guest", tp.vnet0, func(m []byte) []byte { return frame(t, macUp, macA, 0, m) }, []string{"u1p"}, caps...); !slices.Equal(got, []string{"u1p"}) {
		t.Errorf("first frame after carrier loss delivered to %v, want u1p", got)
	}
	if d := txDropped(t, tp.up0) - dropped; d != 0 {
		t.Errorf("%d frames failed to transmit into up0 after its carrier loss", d)
	}
	ev, err := kf.Next()
	if err != nil {
		t.Fatal(err)
	}
	// Where fentry loads, the carrier hook is first to see the loss.
	if (ev.Path != PathCarrierAtRedirect && ev.Path != PathCarrierHook) || ev.From != 0 || ev.To != 1 || ev.Ifindex != tp.up0 {
		t.Errorf("event %+v, want a carrier path moving slot 0 -> 1 off up0", ev)
	}

	// A slot refilled by the daemon forgets the device it held.
	if _, err := tp.dp.Attach(Port{Ifname: "up0", Ifindex: tp.up0, Group: 0, Role: RoleUplink, Slot: 0, MAC: tp.mac("up0")}); err != nil {
		t.Fatal(err)
	}
	if err := tp.dp.objs.UplinkDevs.Lookup(uplinkKey(0, 0), &dev); err != nil || dev.Dev != 0 {
		t.Errorf("uplink_devs after refilling the slot: %+v, %v", dev, err)
	}
}

// slowConsumer replaces the XDP_PASS on a peer with one that spins ~100k
// instructions per frame before passing it.
func (e *testEnv) slowConsumer(t *testing.T, name string) {
	t.Helper()
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type: ebpf.XDP, License: "GPL",
		Instructions: asm.Instructions{
			asm.Mov.Imm(asm.R1, 0),
			asm.Add.Imm(asm.R1, 1).WithSymbol("spin"),
			asm.JLT.Imm(asm.R1, 100_000, "spin"),
			asm.Mov.Imm(asm.R0, 2),
			asm.Return(),
		},
	})
	if err != nil {
		t.Fatalf("slow consumer: %v", err)
	}
	t.Cleanup(func() { prog.Close() })
	// The peer already runs XDP_PASS through a link: update it in place.
	for _, lk := range e.peerLinks[name] {
		if err := lk.Update(prog); err != nil {
			t.Fatalf("slow consumer on %s: %v", name, err)
		}
	}
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
	if err := tp.dp.SetFallback(0, []int{0, 1}); err != nil {
		t.Fatal(err)
	}
	return kf
}

// redirectInto sends n frames into the device with ifindex out in the
// current namespace (an XDP program redirecting from a fresh veth) and
// returns how many the device failed to transmit, from its counters: the
// test needs proof that the transmit hook was exercised.
func tpHasPath(kf *KernelFailover, p string) bool {
	for _, x := range kf.Paths() {
		if x == p {
			return true
		}
	}
	return false
}

// TestFullRingDoesNotFlip: a burst larger than the veth ring drops frames
// with err == 0; that is a busy link, not a dead one, and must not move
// the group.
func TestFullRingDoesNotFlip(t *testing.T) {
	tp := newTopo(t)
	kf := tp.armKernelFailover(t)
	if !tpHasPath(kf, PathXmitError) {
		t.Skip("transmit-error path not available on this kernel")
	}
	run(t, tp.dp.objs.XdpGuest, tp.vnet0, frame(t, broadcast, macA, 0, nil), false)
	tp.slowConsumer(t, "u0p")
	before, _ := tp.dp.Stats(tp.up0)

	// Producers on both CPUs, a consumer that needs ~100 µs a frame: the
	// peer's ring (256 frames) overflows, and the kernel drops with
	// err == 0. The producers are live test runs of the guest program, or
	// where the kernel refuses those, real frames sent into vnet0's peer
	// as fast as a thread can (each frame's softirq work runs on the
	// sender's CPU, as a live run's does).
	const burst = 20_000
	prog := tp.dp.objs.XdpGuest
	f := frame(t, macUp, macA, 0, nil)
	live := tp.liveRuns()
	cpus := min(2, runtime.NumCPU())
	senders := make([]*sender, cpus)
	if !live {
		// One queue per sender's CPU into vnet0 (AF_PACKET picks the
		// queue by CPU): each CPU then runs its own vnet0 NAPI, and one
		// stuck behind the slow consumer's poll on its CPU does not hold
		// the other back. u0p keeps one ring, which both fill.
		setQueues(t, "vnet0", func(ch *ethtool.Channels) { ch.RxCount = uint32(cpus) })
		// (The kernel wants the receiving end's queues first.)
		setQueues(t, "g0", func(ch *ethtool.Channels) { ch.TxCount = uint32(cpus) })
		for cpu := range senders {
			senders[cpu] = tp.sender("g0")
			defer senders[cpu].close()
		}
	}
	var wg sync.WaitGroup
	var injected atomic.Int64
	for cpu := range cpus {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			var set unix.CPUSet
			set.Set(cpu)
			_ = unix.SchedSetaffinity(0, &set)
			if !live {
				n, err := senders[cpu].burst(f, burst, 5*time.Second)
				injected.Add(int64(n))
				if err != nil {
					t.Error(err)
				}
				return
			}
			if err := netns.Set(tp.ns); err != nil {
				t.Error(err)
				return
			}
			if _, err := prog.Run(&ebpf.RunOptions{Data: f, Context: xdpMd{DataEnd: uint32(len(f)), IngressIfindex: uint32(tp.vnet0)},
				Repeat: burst, Flags: unix.BPF_F_TEST_XDP_LIVE_FRAMES}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if !live {
		t.Logf("the kernel took %d of %d x %d real frames into g0", injected.Load(), cpus, burst)
	}
	time.Sleep(100 * time.Millisecond)
	after, _ := tp.dp.Stats(tp.up0)
	var peerRx uint64
	if l, err := netlink.LinkByName("u0p"); err == nil && l.Attrs().Statistics != nil {
		peerRx = l.Attrs().Statistics.RxPackets
	}
	sent := after.TxPackets - before.TxPackets
	t.Logf("%d x %d frames: %d passed the egress program, the peer received %d", cpus, burst, sent, peerRx)
	if peerRx >= sent {
		t.Skip("the ring never overflowed: nothing to prove on this machine")
	}
	if slot, _ := tp.dp.ActiveSlot(0); slot != 0 {
		t.Errorf("a full ring (%d dropped, err == 0) moved the group to slot %d", sent-peerRx, slot)
	}
}

// setQueues changes the queues of a veth.
func setQueues(t *testing.T, name string, change func(*ethtool.Channels)) {
	t.Helper()
	et, err := ethtool.NewEthtool()
	if err != nil {
		t.Fatal(err)
	}
	defer et.Close()
	ch, err := et.GetChannels(name)
	if err != nil {
		t.Fatalf("channels of %s: %v", name, err)
	}
	change(&ch)
	if _, err := et.SetChannels(name, ch); err != nil {
		t.Fatalf("%d rx and %d tx queues on %s: %v", ch.RxCount, ch.TxCount, name, err)
	}
}

// TestCarrierHookFlipsActive: where the kernel allows fentry, the slot
// moves in the call that takes the carrier away, before any frame is
// sent. This machine's kernel refuses fentry; `make test-kernels` runs
// this on Debian 12's 6.1, where it must work.
func TestCarrierHookFlipsActive(t *testing.T) {
	tp := newTopo(t)
	kf := tp.armKernelFailover(t)
	if !tpHasPath(kf, PathCarrierHook) {
		if strings.HasPrefix(os.Getenv("UPLINKD_TEST_KERNEL"), "6.1") {
			t.Fatalf("the carrier hook must load on 6.1: %v", kf.Refused())
		}
		t.Skipf("this kernel refuses the carrier hook (%s); make test-kernels covers it", kf.Refused()[PathCarrierHook])
	}
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
	ev, err := kf.Next()
	if err != nil {
		t.Fatal(err)
	}
	if ev.Path != PathCarrierHook || ev.From != 0 || ev.To != 1 || ev.Ifindex != tp.up0 {
		t.Errorf("event %+v, want the carrier hook moving slot 0 -> 1 off up0", ev)
	}
}

// TestHooksIgnoreOtherNamespaces: an ifindex names a device only within
// its namespace. Failed transmits into a device elsewhere that has up0's
// ifindex must not move the group; the same failed transmits into up0
// itself must (which proves they reach the hook).
func TestHooksIgnoreOtherNamespaces(t *testing.T) {
	tp := newTopo(t)
	kf := tp.armKernelFailover(t)
	if !tpHasPath(kf, PathXmitError) {
		t.Skip("transmit-error path not available on this kernel")
	}
	other, err := netns.New() // enters it
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	twin := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "twin", Index: tp.up0}, PeerName: "twinp"}
	if err := netlink.LinkAdd(twin); err != nil {
		t.Fatalf("veth with ifindex %d in another namespace: %v", tp.up0, err)
	}
	// Set up like up0 and its peer: both up, the peer with XDP, then the
	// peer down, so transmits into twin fail exactly as into up0 below.
	for _, n := range []string{"twin", "twinp"} {
		l, _ := netlink.LinkByName(n)
		if err := netlink.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
	}
	tp.passOn("twinp")
	p, _ := netlink.LinkByName("twinp")
	if err := netlink.LinkSetDown(p); err != nil {
		t.Fatal(err)
	}
	redirectInto(t, tp.testEnv, tp.up0, 64)
	if slot, _ := tp.dp.ActiveSlot(0); slot != 0 {
		t.Fatalf("failed transmits into ifindex %d of another namespace moved the group to slot %d", tp.up0, slot)
	}

	if err := netns.Set(tp.ns); err != nil {
		t.Fatal(err)
	}
	p, _ = netlink.LinkByName("u0p")
	if err := netlink.LinkSetDown(p); err != nil {
		t.Fatal(err)
	}
	redirectInto(t, tp.testEnv, tp.up0, 64)
	if slot, _ := tp.dp.ActiveSlot(0); slot != 1 {
		t.Errorf("failed transmits into up0 itself did not move the group (slot %d)", slot)
	}
}

// redirectInto sends n frames into the device with ifindex out in the
// current namespace (an XDP program redirecting from a fresh veth: live
// test runs, or real frames into the veth where those are refused) and
// fails the test unless the device dropped some: they must have failed.
func redirectInto(t *testing.T, e *testEnv, out, n int) {
	t.Helper()
	src := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "src"}, PeerName: "srcp"}
	if err := netlink.LinkAdd(src); err != nil {
		t.Fatal(err)
	}
	defer netlink.LinkDel(src)
	for _, name := range []string{"src", "srcp"} {
		l, _ := netlink.LinkByName(name)
		_ = netlink.LinkSetUp(l)
	}
	l, _ := netlink.LinkByName("src")
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type: ebpf.XDP, License: "GPL",
		Instructions: asm.Instructions{
			asm.Mov.Imm(asm.R1, int32(out)),
			asm.Mov.Imm(asm.R2, 0),
			asm.FnRedirect.Call(),
			asm.Return(),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Close()
	before := txDropped(t, out)
	f := frame(t, macUp, macA, 0, nil)
	if e.liveRuns() {
		if _, err := prog.Run(&ebpf.RunOptions{Data: f, Context: xdpMd{DataEnd: uint32(len(f)), IngressIfindex: uint32(l.Attrs().Index)},
			Repeat: uint32(n), Flags: unix.BPF_F_TEST_XDP_LIVE_FRAMES}); err != nil {
			t.Fatal(err)
		}
	} else {
		// The same program on src for real (native: the frames meet it
		// in src's NAPI), fed from srcp.
		xl, err := link.AttachXDP(link.XDPOptions{Program: prog, Interface: l.Attrs().Index, Flags: link.XDPDriverMode})
		if err != nil {
			t.Fatalf("attach the redirect to src: %v", err)
		}
		defer xl.Close()
		s := e.sender("srcp")
		defer s.close()
		for range n {
			if err := s.send(f); err != nil {
				t.Fatal(err)
			}
		}
	}
	// A real frame's transmit fails a moment after it was sent.
	waitFor(t, time.Second, "", func() bool { return txDropped(t, out) != before })
	if txDropped(t, out) == before {
		t.Fatalf("no transmit into ifindex %d failed: the test would prove nothing", out)
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

func txDropped(t *testing.T, ifindex int) uint64 {
	t.Helper()
	l, err := netlink.LinkByIndex(ifindex)
	if err != nil {
		t.Fatal(err)
	}
	return l.Attrs().Statistics.TxDropped
}
