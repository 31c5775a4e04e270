package testenv

import (
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Veth describes a veth pair for AddVeth.
type Veth struct {
	Name, Peer string
	// PeerNS, if set, holds the peer; otherwise it is beside Name.
	PeerNS *Netns
	// Queues is the number of transmit and receive queues on each end
	// (0: the kernel's default of one).
	Queues int
	// Down leaves both ends down.
	Down bool
}

// AddVeth creates the pair in the namespace in, or in the calling thread's
// namespace if in is nil, sets both ends up (the peer first, so Name has
// its carrier as soon as it is up) unless v.Down, and returns their
// ifindexes. The pair goes when its namespace does, so the namespace must
// be one the test made: AddVeth fails the test in the one the test binary
// started in.
func AddVeth(t testing.TB, in *Netns, v Veth) (index, peerIndex int) {
	t.Helper()
	h := handle(t, in)
	la := netlink.LinkAttrs{Name: v.Name}
	veth := &netlink.Veth{LinkAttrs: la, PeerName: v.Peer}
	if v.Queues > 0 {
		veth.NumTxQueues, veth.NumRxQueues = v.Queues, v.Queues
		veth.PeerNumTxQueues, veth.PeerNumRxQueues = uint32(v.Queues), uint32(v.Queues)
	}
	peerHandle := h
	if v.PeerNS != nil {
		veth.PeerNamespace = netlink.NsFd(int(v.PeerNS.Handle))
		peerHandle = v.PeerNS.Netlink
	}
	if err := h.LinkAdd(veth); err != nil {
		t.Fatalf("add veth %s/%s: %v", v.Name, v.Peer, err)
	}
	peer := link(t, peerHandle, v.Peer)
	if !v.Down {
		if err := peerHandle.LinkSetUp(peer); err != nil {
			t.Fatalf("set %s up: %v", v.Peer, err)
		}
	}
	l := link(t, h, v.Name)
	if !v.Down {
		if err := h.LinkSetUp(l); err != nil {
			t.Fatalf("set %s up: %v", v.Name, err)
		}
	}
	return l.Attrs().Index, peer.Attrs().Index
}

// WaitUp waits up to five seconds, failing t after, for each named link in
// the namespace in (nil: the calling thread's) to report operstate up: a
// veth drops what is sent before its peer is up.
func WaitUp(t testing.TB, in *Netns, names ...string) {
	t.Helper()
	h := handle(t, in)
	deadline := time.Now().Add(5 * time.Second)
	for _, n := range names {
		for {
			l := link(t, h, n)
			if l.Attrs().OperState == netlink.OperUp {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s not operationally up after 5s (operstate %s)", n, l.Attrs().OperState)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// handle is in's netlink handle, or one in the calling thread's namespace,
// closed at cleanup, if that is not the namespace the test binary started
// in.
func handle(t testing.TB, in *Netns) *netlink.Handle {
	t.Helper()
	if in != nil {
		return in.Netlink
	}
	cur, err := netns.Get()
	if err != nil {
		t.Fatalf("current netns: %v", err)
	}
	defer cur.Close()
	if cur.Equal(initialNS) {
		t.Fatal("testenv: links are made in a namespace of the test's own, not the host's")
	}
	h, err := netlink.NewHandleAt(cur, unix.NETLINK_ROUTE)
	if err != nil {
		t.Fatalf("netlink handle: %v", err)
	}
	t.Cleanup(h.Close)
	return h
}

func link(t testing.TB, h *netlink.Handle, name string) netlink.Link {
	t.Helper()
	l, err := h.LinkByName(name)
	if err != nil {
		t.Fatalf("link %s: %v", name, err)
	}
	return l
}
