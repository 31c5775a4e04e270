package benchbpf

import (
	"math/bits"
	"net"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/uplinkd/uplinkd/test/testenv"
)

func requireRoot(t *testing.T) {
	t.Helper()
	testenv.RequireRoot(t, "needs root: BPF programs, network namespaces")
}

// enterNewNS puts the test's goroutine, locked to its thread, into a fresh
// network namespace until the test ends. Subtests run on goroutines of
// their own: they call enter with the handle.
func enterNewNS(t *testing.T) netns.NsHandle {
	t.Helper()
	requireRoot(t)
	ns := testenv.EnterNetns(t, testenv.UniqueName("ulkbb")).Handle
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		t.Fatal(err)
	}
	return ns
}

// enter locks the calling goroutine (a subtest) into ns until it ends.
func enter(t *testing.T, ns netns.NsHandle) {
	t.Helper()
	testenv.Enter(t, ns)
}

// veth creates name<->peer in the current namespace, both up, and returns
// their indexes.
func veth(t *testing.T, name, peer string) (int, int) {
	t.Helper()
	return vethQueues(t, name, peer, 1)
}

// vethQueues is veth with queues transmit and receive queues on each end.
func vethQueues(t *testing.T, name, peer string, queues int) (int, int) {
	t.Helper()
	return testenv.AddVeth(t, nil, testenv.Veth{Name: name, Peer: peer, Queues: queues})
}

// waitUp waits until every named link reports operstate up: a veth drops
// what is sent before its peer is up.
func waitUp(t *testing.T, names ...string) {
	t.Helper()
	testenv.WaitUp(t, nil, names...)
}

func loIndex(t *testing.T) int {
	t.Helper()
	l, err := netlink.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	return l.Attrs().Index
}

// runOnce feeds one frame to prog as if it arrived on ifindex (not live)
// and returns the action and the frame after the program.
func runOnce(t *testing.T, prog *ebpf.Program, ifindex int, frame []byte) (uint32, []byte) {
	t.Helper()
	if prog.Type() == ebpf.SchedCLS {
		// A tc run: its context is an __sk_buff (up to ifindex), and
		// TC_ACT_SHOT / TC_ACT_OK read as XDP_DROP / XDP_PASS.
		type skbCtx struct {
			Head    [10]uint32
			Ifindex uint32
		}
		ret, err := prog.Run(&ebpf.RunOptions{Data: frame, Context: skbCtx{Ifindex: uint32(ifindex)}, Repeat: 1})
		if err != nil {
			t.Fatalf("run %s on ifindex %d: %v", prog, ifindex, err)
		}
		switch ret {
		case 2:
			return xdpDrop, nil
		case 0:
			return xdpPass, nil
		}
		return ret + 100, nil // neither: fails any comparison
	}
	out := make([]byte, len(frame)+256)
	opts := &ebpf.RunOptions{
		Data:    frame,
		DataOut: out,
		Context: xdpMd{DataEnd: uint32(len(frame)), IngressIfindex: uint32(ifindex)},
		Repeat:  1,
	}
	ret, err := prog.Run(opts)
	if err != nil {
		t.Fatalf("run %s on ifindex %d: %v", prog, ifindex, err)
	}
	return ret, opts.DataOut
}

func mustMAC(t *testing.T, s string) net.HardwareAddr {
	t.Helper()
	m, err := net.ParseMAC(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// received counts the set bits for sequence numbers 0..n-1 (the statistics
// live in test/bench/stats; this is the test's own check).
func received(words []uint64, n uint64) uint64 {
	var c uint64
	for i, w := range words {
		if lo := uint64(i) * 64; lo+64 > n {
			if lo >= n {
				break
			}
			w &= 1<<(n-lo) - 1
		}
		c += uint64(bits.OnesCount64(w))
	}
	return c
}

// waitCount polls slot until it has counted want stream frames or the
// traffic has stopped arriving: frames are delivered by NAPI after the
// test run returns.
func waitCount(t *testing.T, r *Receiver, slot int, want uint64) SlotStats {
	t.Helper()
	var st SlotStats
	var prev uint64
	deadline := time.Now().Add(5 * time.Second)
	for stable := 0; time.Now().Before(deadline) && stable < 20; {
		var err error
		if st, err = r.Stats(slot); err != nil {
			t.Fatal(err)
		}
		if st.Count >= want {
			return st
		}
		if st.Count == prev {
			stable++
		} else {
			stable = 0
		}
		prev = st.Count
		time.Sleep(10 * time.Millisecond)
	}
	return st
}
