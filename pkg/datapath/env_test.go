package datapath

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/uplinkd/uplinkd/test/testenv"
)

// testEnv is a network namespace of the test's own with veth pairs in it,
// and a private bpffs. Tests run on a goroutine locked inside it.
type testEnv struct {
	t      testing.TB
	ns     netns.NsHandle
	pinDir string
	dp     *Datapath
	// peers names the veth peer of each interface veth made, by ifindex.
	peers map[int]string
}

func requireRoot(t testing.TB) {
	t.Helper()
	testenv.RequireRoot(t, "needs root: BPF programs, network namespaces")
}

// newTestEnv enters a fresh namespace on this goroutine's thread until the
// test ends (subtests run on other goroutines: tests here use tables instead).
func newTestEnv(t testing.TB) *testEnv {
	t.Helper()
	requireRoot(t)
	env := &testEnv{t: t, peers: map[int]string{}}
	env.ns = testenv.EnterNetns(t, testenv.UniqueName("ulkdp")).Handle

	// No IPv6 autoconfiguration chatter: every frame seen is the test's.
	for _, f := range []string{"/proc/sys/net/ipv6/conf/default/disable_ipv6", "/proc/sys/net/ipv6/conf/all/disable_ipv6"} {
		if err := os.WriteFile(f, []byte("1"), 0o644); err != nil {
			t.Logf("disable IPv6: %v", err)
		}
	}

	env.pinDir = t.TempDir()
	if err := unix.Mount("bpf", env.pinDir, "bpf", 0, "mode=0700"); err != nil {
		t.Fatalf("mount bpffs: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(env.pinDir, unix.MNT_DETACH) })

	dp, err := Open(env.pinDir+"/uplinkd", slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		t.Fatalf("open datapath: %v", err)
	}
	env.dp = dp
	t.Cleanup(func() { // tests may close it and open another
		if env.dp != nil {
			env.dp.Close()
		}
	})
	return env
}

// veth creates name<->peer, both up, and returns the name's index.
func (e *testEnv) veth(name, peer string) int {
	e.t.Helper()
	index, _ := testenv.AddVeth(e.t, nil, testenv.Veth{Name: name, Peer: peer})
	e.peers[index] = peer
	return index
}

func (e *testEnv) ifindex(name string) int {
	e.t.Helper()
	l, err := netlink.LinkByName(name)
	if err != nil {
		e.t.Fatal(err)
	}
	return l.Attrs().Index
}

func (e *testEnv) mac(name string) net.HardwareAddr {
	e.t.Helper()
	l, err := netlink.LinkByName(name)
	if err != nil {
		e.t.Fatal(err)
	}
	return l.Attrs().HardwareAddr
}

// skbCtx is the head of struct __sk_buff, up to the ifindex a tc test
// run takes its device from.
type skbCtx struct {
	Len, PktType, Mark, QueueMapping, Protocol, VlanPresent, VlanTCI, VlanProto uint32
	Priority, IngressIfindex, Ifindex                                           uint32
}

// tc actions.
const (
	tcOK       = 0
	tcShot     = 2
	tcRedirect = 7
)

// run feeds one frame to a tc program as if it arrived on ifindex and
// returns the tc action. The clones of a flood are sent for real, never
// the frame the program redirects.
func run(t testing.TB, prog *ebpf.Program, ifindex int, frame []byte) uint32 {
	t.Helper()
	return runCtx(t, prog, frame, skbCtx{Ifindex: uint32(ifindex)})
}

// runCtx is run with the skb fields of ctx (an skbCtx, or a longer head
// of struct __sk_buff).
func runCtx(t testing.TB, prog *ebpf.Program, frame []byte, ctx any) uint32 {
	t.Helper()
	ret, err := prog.Run(&ebpf.RunOptions{Data: frame, Context: ctx, Repeat: 1})
	if err != nil {
		t.Fatalf("run %s (context %+v): %v", prog, ctx, err)
	}
	if ret != tcOK && ret != tcShot && ret != tcRedirect {
		t.Fatalf("run %s (context %+v): tc action %d", prog, ctx, ret)
	}
	return ret
}

// inject sends frame out of interface name (AF_PACKET): a veth delivers
// it to its peer, whose tc program sees it as real traffic.
func (e *testEnv) inject(name string, frame []byte) {
	e.t.Helper()
	s := e.sender(name)
	defer s.close()
	if err := s.send(frame); err != nil {
		e.t.Fatal(err)
	}
}

// sender sends frames out of one interface through an AF_PACKET socket
// that skips the qdisc (a veth hands each frame straight to its peer).
// The socket belongs to the namespace it was made in, so any goroutine
// may use it.
type sender struct {
	fd   int
	name string
	to   unix.SockaddrLinklayer
}

func (e *testEnv) sender(name string) *sender {
	e.t.Helper()
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		e.t.Fatalf("AF_PACKET socket for %s: %v", name, err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1); err != nil {
		unix.Close(fd)
		e.t.Fatalf("PACKET_QDISC_BYPASS on %s: %v", name, err)
	}
	return &sender{fd: fd, name: name, to: unix.SockaddrLinklayer{Ifindex: e.ifindex(name), Halen: 6}}
}

func (s *sender) close() { unix.Close(s.fd) }

func (s *sender) send(frame []byte) error {
	if err := unix.Sendto(s.fd, frame, 0, &s.to); err != nil {
		return fmt.Errorf("send a %d-byte frame on %s: %w", len(frame), s.name, err)
	}
	return nil
}

// burst sends frame up to count times as fast as one thread can, for at
// most within, and returns how many the kernel took. A full veth ring
// refuses frames (ENOBUFS): those are not counted, and the burst goes on.
func (s *sender) burst(frame []byte, count int, within time.Duration) (int, error) {
	sent := 0
	deadline := time.Now().Add(within)
	for i := 0; i < count; i++ {
		// The clock is read every 256 frames: a syscall per frame is
		// the cost that matters.
		if i%256 == 0 && time.Now().After(deadline) {
			break
		}
		err := unix.Sendto(s.fd, frame, 0, &s.to)
		switch {
		case err == nil:
			sent++
		case errors.Is(err, unix.ENOBUFS), errors.Is(err, unix.EAGAIN):
		default:
			return sent, fmt.Errorf("burst on %s after %d frames: %w", s.name, sent, err)
		}
	}
	return sent, nil
}

// peerOf names the veth peer of the interface with ifindex: sending into
// it makes a frame arrive at the interface.
func (e *testEnv) peerOf(ifindex int) string {
	e.t.Helper()
	peer, ok := e.peers[ifindex]
	if !ok {
		e.t.Fatalf("ifindex %d is no veth this test made", ifindex)
	}
	return peer
}

// send makes frame arrive at the switch port with ifindex ingress, for
// real: the frame is sent into the port's veth peer, where prog (it must
// be the port's program) sees it. It returns once the port's program has
// counted the frame; what the program redirected may still be on its way.
func (e *testEnv) send(prog *ebpf.Program, ingress int, frame []byte) {
	e.t.Helper()
	e.requireAttached(prog, ingress)
	before := e.seen(ingress)
	e.inject(e.peerOf(ingress), frame)
	e.waitSeen(ingress, before+1)
}

// seen counts the frames the switch program on ifindex has looked at:
// every frame is counted as received or dropped as malformed.
func (e *testEnv) seen(ifindex int) uint64 {
	e.t.Helper()
	s, err := e.dp.Stats(ifindex)
	if err != nil {
		e.t.Fatal(err)
	}
	return s.RxPackets + s.Drops[DropMalformed]
}

// waitSeen waits up to a second for the program on ifindex to have seen
// want frames.
func (e *testEnv) waitSeen(ifindex int, want uint64) {
	e.t.Helper()
	deadline := time.Now().Add(time.Second)
	for got := e.seen(ifindex); got < want; got = e.seen(ifindex) {
		if time.Now().After(deadline) {
			e.t.Fatalf("the program on ifindex %d saw %d frames within a second, want %d", ifindex, got, want)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// requireAttached fails the test unless prog is the program attached to
// ifindex at tc ingress (tcx or a clsact filter): a real frame meets the
// port's program, not the one named.
func (e *testEnv) requireAttached(prog *ebpf.Program, ifindex int) {
	e.t.Helper()
	l, err := netlink.LinkByIndex(ifindex)
	if err != nil {
		e.t.Fatal(err)
	}
	info, err := prog.Info()
	if err != nil {
		e.t.Fatal(err)
	}
	id, _ := info.ID()
	if slices.Contains(tcIngressProgs(ifindex), id) {
		return
	}
	e.t.Fatalf("%s does not run %s at tc ingress: a frame sent into its peer would not test it", l.Attrs().Name, prog)
}

// tcIngressProgs lists the programs at tc ingress of ifindex: tcx, or
// clsact filters.
func tcIngressProgs(ifindex int) []ebpf.ProgramID {
	var ids []ebpf.ProgramID
	if res, err := link.QueryPrograms(link.QueryOptions{Target: ifindex, Attach: ebpf.AttachTCXIngress}); err == nil {
		for _, p := range res.Programs {
			ids = append(ids, p.ID)
		}
	}
	if l, err := netlink.LinkByIndex(ifindex); err == nil {
		filters, _ := netlink.FilterList(l, netlink.HANDLE_MIN_INGRESS)
		for _, f := range filters {
			if bf, ok := f.(*netlink.BpfFilter); ok {
				ids = append(ids, ebpf.ProgramID(bf.Id))
			}
		}
	}
	return ids
}

// capture receives the frames that arrive at an interface.
type capture struct {
	*testenv.Capture
	name string
}

func (e *testEnv) capture(name string) *capture {
	e.t.Helper()
	return &capture{Capture: testenv.OpenCapture(e.t, e.ifindex(name), testenv.CaptureOptions{}), name: name}
}

// drain returns the frames carrying marker received so far, with any VLAN
// tag the kernel moved into metadata put back in place.
func (c *capture) drain(marker []byte) [][]byte {
	var out [][]byte
	for range 10000 {
		f, err := c.Next()
		if err != nil || f == nil {
			break
		}
		if containsMarker(f, marker) {
			out = append(out, f)
		}
	}
	return out
}

func containsMarker(frame, marker []byte) bool {
	for i := 0; i+len(marker) <= len(frame); i++ {
		if string(frame[i:i+len(marker)]) == string(marker) {
			return true
		}
	}
	return false
}
