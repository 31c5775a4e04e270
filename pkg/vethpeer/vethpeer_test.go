package vethpeer

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/uplinkd/uplinkd/pkg/datapath/liveframes"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

const (
	testPrefix = "ulkvp"
	portName   = testPrefix + "-port" // the veth the data plane would redirect into
	peerName   = testPrefix + "-peer"
	frames     = 1000 // redirected per delivery check
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces, veth, BPF)")
	}
}

func randSuffix(t *testing.T) string {
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// ns is a network namespace made for a test: path opens it for tools.
type ns struct {
	h    netns.NsHandle
	path string
	nl   *netlink.Handle
}

func (n *ns) close() {
	if n.nl != nil {
		n.nl.Close()
	}
	n.h.Close()
}

func attachNetlink(t *testing.T, n *ns) *ns {
	t.Helper()
	var err error
	if n.nl, err = netlink.NewHandleAt(n.h, unix.NETLINK_ROUTE); err != nil {
		t.Fatalf("netlink handle: %v", err)
	}
	if err := n.nl.LinkSetUp(mustLink(t, n.nl, "lo")); err != nil {
		t.Fatal(err)
	}
	return n
}

// namedNS makes a namespace the way `ip netns add` does.
func namedNS(t *testing.T, tag string) *ns {
	t.Helper()
	name := testPrefix + randSuffix(t) + tag
	var h netns.NsHandle
	err := onThread(func() error {
		orig, err := netns.Get()
		if err != nil {
			return err
		}
		defer orig.Close()
		if h, err = netns.NewNamed(name); err != nil {
			return err
		}
		return netns.Set(orig)
	})
	if err != nil {
		t.Fatalf("create netns %s: %v", name, err)
	}
	n := &ns{h: h, path: "/run/netns/" + name}
	t.Cleanup(func() {
		n.close()
		if err := netns.DeleteNamed(name); err != nil {
			t.Errorf("delete netns %s: %v", name, err)
		}
	})
	return attachNetlink(t, n)
}

// hiddenNS makes a namespace held only by a file descriptor of this
// process: neither named nor any process's namespace.
func hiddenNS(t *testing.T) *ns {
	t.Helper()
	var h netns.NsHandle
	err := onThread(func() error {
		orig, err := netns.Get()
		if err != nil {
			return err
		}
		defer orig.Close()
		if h, err = netns.New(); err != nil {
			return err
		}
		return netns.Set(orig)
	})
	if err != nil {
		t.Fatalf("create hidden netns: %v", err)
	}
	n := &ns{h: h, path: fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), int(h))}
	t.Cleanup(n.close)
	return attachNetlink(t, n)
}

// processNS starts a process in a new, unnamed namespace.
func processNS(t *testing.T) *ns {
	t.Helper()
	self, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("unshare", "--net", "sleep", "120")
	if err := cmd.Start(); err != nil {
		t.Fatalf("start unshare: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	path := fmt.Sprintf("/proc/%d/ns/net", cmd.Process.Pid)
	for deadline := time.Now().Add(5 * time.Second); ; {
		if cur, err := os.Readlink(path); err == nil && cur != self {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d did not enter a new namespace", cmd.Process.Pid)
		}
		time.Sleep(5 * time.Millisecond)
	}
	h, err := netns.GetFromPath(path)
	if err != nil {
		t.Fatal(err)
	}
	n := &ns{h: h, path: path}
	t.Cleanup(n.close)
	return attachNetlink(t, n)
}

// onThread runs fn on a fresh locked OS thread that is thrown away if fn
// leaves it in another namespace.
func onThread(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		fnErr := fn()
		if cur, err := netns.Get(); err == nil {
			if cur.Equal(orig) {
				runtime.UnlockOSThread()
			}
			cur.Close()
		}
		errc <- fnErr
	}()
	return <-errc
}

// inNS runs fn on a thread inside n.
func inNS(n *ns, fn func() error) error {
	return onThread(func() error {
		orig, err := netns.Get()
		if err != nil {
			return err
		}
		defer orig.Close()
		if err := netns.Set(n.h); err != nil {
			return err
		}
		fnErr := fn()
		return errors.Join(fnErr, netns.Set(orig))
	})
}

func mustLink(t *testing.T, h *netlink.Handle, name string) netlink.Link {
	t.Helper()
	l, err := h.LinkByName(name)
	if err != nil {
		t.Fatalf("link %s: %v", name, err)
	}
	return l
}

func setUp(t *testing.T, n *ns, name string) {
	t.Helper()
	if err := n.nl.LinkSetUp(mustLink(t, n.nl, name)); err != nil {
		t.Fatalf("set %s up: %v", name, err)
	}
}

// addVeth creates portName in main with peerName in peerNS (main if nil),
// both up.
func addVeth(t *testing.T, main, peerNS *ns) {
	t.Helper()
	v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: portName}, PeerName: peerName}
	if peerNS != nil {
		v.PeerNamespace = netlink.NsFd(int(peerNS.h))
	} else {
		peerNS = main
	}
	if err := main.nl.LinkAdd(v); err != nil {
		t.Fatalf("add veth: %v", err)
	}
	setUp(t, peerNS, peerName)
	setUp(t, main, portName)
}

// groOnCLI asks the ethtool tool, inside the peer's namespace.
func groOnCLI(t *testing.T, n *ns) bool {
	t.Helper()
	out, err := exec.Command("nsenter", "--net="+n.path, "ethtool", "-k", peerName).CombinedOutput()
	if err != nil {
		t.Fatalf("ethtool -k %s: %v\n%s", peerName, err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "generic-receive-offload: "); ok {
			return strings.HasPrefix(v, "on")
		}
	}
	t.Fatalf("no generic-receive-offload in ethtool -k output:\n%s", out)
	return false
}

func setGROCLI(t *testing.T, n *ns, on string) {
	t.Helper()
	if out, err := exec.Command("nsenter", "--net="+n.path, "ethtool", "-K", peerName, "gro", on).CombinedOutput(); err != nil {
		t.Fatalf("ethtool -K %s gro %s: %v\n%s", peerName, on, err, out)
	}
}

// attachXDP attaches an XDP_PASS program to the peer in the given mode.
func attachXDP(t *testing.T, n *ns, flags link.XDPAttachFlags) {
	t.Helper()
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:         ebpf.XDP,
		License:      "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 2 /* XDP_PASS */), asm.Return()},
	})
	if err != nil {
		t.Fatalf("load XDP_PASS: %v", err)
	}
	t.Cleanup(func() { prog.Close() })
	index := mustLink(t, n.nl, peerName).Attrs().Index
	var l link.Link
	// The interface index is resolved in the attaching thread's namespace.
	if err := inNS(n, func() (err error) {
		l, err = link.AttachXDP(link.XDPOptions{Program: prog, Interface: index, Flags: flags})
		return err
	}); err != nil {
		t.Fatalf("attach XDP to %s: %v", peerName, err)
	}
	t.Cleanup(func() { l.Close() })
}

// delivered redirects frames into portName and returns how many the peer
// received. The frames come from an in-kernel generator (BPF_PROG_RUN
// live frames, run in main) where the kernel allows it, else for real:
// sent (AF_PACKET) into a second veth in main whose native XDP program
// redirects them into portName.
func delivered(t *testing.T, main, peerNS *ns) uint64 {
	t.Helper()
	if peerNS == nil {
		peerNS = main
	}
	portIndex := mustLink(t, main.nl, portName).Attrs().Index
	peerMAC := mustLink(t, peerNS.nl, peerName).Attrs().HardwareAddr
	// The program counts what it redirects: real frames are paced by it.
	count, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: 1})
	if err != nil {
		t.Fatalf("counter map: %v", err)
	}
	defer count.Close()
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:    ebpf.XDP,
		License: "GPL",
		Instructions: asm.Instructions{
			asm.StoreImm(asm.RFP, -4, 0, asm.Word),
			asm.LoadMapPtr(asm.R1, count.FD()),
			asm.Mov.Reg(asm.R2, asm.RFP),
			asm.Add.Imm(asm.R2, -4),
			asm.FnMapLookupElem.Call(),
			asm.JEq.Imm(asm.R0, 0, "redirect"),
			asm.Mov.Imm(asm.R1, 1),
			asm.StoreXAdd(asm.R0, asm.R1, asm.DWord),
			asm.Mov.Imm(asm.R1, int32(portIndex)).WithSymbol("redirect"),
			asm.Mov.Imm(asm.R2, 0),
			asm.FnRedirect.Call(),
			asm.Return(),
		},
	})
	if err != nil {
		t.Fatalf("load redirect program: %v", err)
	}
	defer prog.Close()

	frame := make([]byte, 64)
	copy(frame, peerMAC)
	copy(frame[6:], []byte{0x02, 0, 0, 0, 0, 1})
	frame[12], frame[13] = 0x88, 0xb5 // local experimental ethertype: counted, then dropped by the stack

	rx := func() uint64 { return mustLink(t, peerNS.nl, peerName).Attrs().Statistics.RxPackets }
	before := rx()
	if liveframes.Available() == nil {
		if err := inNS(main, func() error {
			_, err := prog.Run(&ebpf.RunOptions{Data: frame, Repeat: frames, Flags: unix.BPF_F_TEST_XDP_LIVE_FRAMES})
			return err
		}); err != nil {
			t.Fatalf("run live frames: %v", err)
		}
	} else {
		sendThrough(t, main, prog, count, frame)
	}
	var got uint64
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if got = rx() - before; got >= frames {
			break
		}
	}
	return got
}

// The veth in main that real frames come in through, to the redirect.
const (
	srcName     = testPrefix + "-src"
	srcPeerName = testPrefix + "-srcp"
)

// sendThrough attaches prog natively to a fresh veth srcName in main and
// sends frames into it from its peer, in batches the veth's ring (256)
// holds, each waited for until prog counted it: what is lost is lost
// after the redirect, not before it.
func sendThrough(t *testing.T, main *ns, prog *ebpf.Program, count *ebpf.Map, frame []byte) {
	t.Helper()
	const batch = 64
	v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: srcName}, PeerName: srcPeerName}
	if err := main.nl.LinkAdd(v); err != nil {
		t.Fatalf("add veth %s: %v", srcName, err)
	}
	defer main.nl.LinkDel(v)
	setUp(t, main, srcPeerName)
	setUp(t, main, srcName)
	srcIndex := mustLink(t, main.nl, srcName).Attrs().Index
	var (
		l  link.Link
		fd int
	)
	// The interface index and the socket belong to the namespace of the
	// thread that makes them.
	if err := inNS(main, func() (err error) {
		if l, err = link.AttachXDP(link.XDPOptions{Program: prog, Interface: srcIndex, Flags: link.XDPDriverMode}); err != nil {
			return fmt.Errorf("attach the redirect to %s: %w", srcName, err)
		}
		if fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0); err != nil {
			l.Close()
			return fmt.Errorf("AF_PACKET socket: %w", err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	defer unix.Close(fd)
	to := &unix.SockaddrLinklayer{Ifindex: mustLink(t, main.nl, srcPeerName).Attrs().Index, Halen: 6}
	redirected := func() uint64 {
		var n uint64
		if err := count.Lookup(uint32(0), &n); err != nil {
			t.Fatalf("read the redirect count: %v", err)
		}
		return n
	}
	for sent := uint64(0); sent < frames; {
		for i := 0; i < batch && sent < frames; i++ {
			if err := unix.Sendto(fd, frame, 0, to); err != nil {
				t.Fatalf("send into %s: %v", srcPeerName, err)
			}
			sent++
		}
		for deadline := time.Now().Add(time.Second); redirected() < sent; time.Sleep(100 * time.Microsecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%d frames sent into %s, %d reached the redirect within a second", sent, srcPeerName, redirected())
			}
		}
	}
}

func ensureIn(t *testing.T, main *ns, ifname string) (Result, error) {
	t.Helper()
	var (
		res Result
		err error
	)
	if nsErr := inNS(main, func() error {
		res, err = Ensure(ifname)
		return nil
	}); nsErr != nil {
		t.Fatal(nsErr)
	}
	t.Logf("Ensure(%s) = %+v, %v", ifname, res, err)
	return res, err
}

// TestFreshVethGRO records the kernel default this package exists for.
func TestFreshVethGRO(t *testing.T) {
	requireRoot(t)
	main := namedNS(t, "m")
	addVeth(t, main, nil)
	t.Logf("GRO on a fresh veth: %t", groOnCLI(t, main))
}

func TestEnsureVeth(t *testing.T) {
	requireRoot(t)
	if err := liveframes.Available(); err != nil {
		t.Logf("frames to redirect are sent for real through %s: %v", srcName, err)
	}
	cases := []struct {
		name     string
		peerNS   func(t *testing.T) *ns // nil: same namespace
		prepare  func(t *testing.T, peer *ns)
		dropping bool // frames are dropped before Ensure
		wantMode string
		wantGRO  bool
	}{
		{name: "same namespace, GRO off", dropping: true, wantMode: ModeEnabledGRO, wantGRO: true},
		{name: "named namespace, GRO off", peerNS: func(t *testing.T) *ns { return namedNS(t, "p") },
			dropping: true, wantMode: ModeEnabledGRO, wantGRO: true},
		{name: "process namespace, GRO off", peerNS: processNS, dropping: true, wantMode: ModeEnabledGRO, wantGRO: true},
		{name: "GRO already on", peerNS: func(t *testing.T) *ns { return namedNS(t, "p") },
			prepare: func(t *testing.T, p *ns) { setGROCLI(t, p, "on") }, wantMode: ModePeerGROOn, wantGRO: true},
		{name: "native XDP on the peer", peerNS: func(t *testing.T) *ns { return namedNS(t, "p") },
			prepare: func(t *testing.T, p *ns) { attachXDP(t, p, link.XDPDriverMode) }, wantMode: ModePeerHasXDP, wantGRO: false},
		{name: "generic XDP on the peer is not enough", peerNS: func(t *testing.T) *ns { return namedNS(t, "p") },
			prepare: func(t *testing.T, p *ns) { attachXDP(t, p, link.XDPGenericMode) }, dropping: true, wantMode: ModeEnabledGRO, wantGRO: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			main := namedNS(t, "m")
			var peer *ns
			if tc.peerNS != nil {
				peer = tc.peerNS(t)
			}
			addVeth(t, main, peer)
			peerSide := peer
			if peerSide == nil {
				peerSide = main
			}
			if groOnCLI(t, peerSide) {
				t.Fatalf("GRO is on on a fresh veth peer: the cases below assume the kernel default off")
			}
			if tc.prepare != nil {
				tc.prepare(t, peerSide)
			}
			n := delivered(t, main, peer)
			t.Logf("before Ensure: %d of %d redirected frames reached the peer", n, frames)
			if tc.dropping != (n < frames/2) {
				t.Errorf("before Ensure %d of %d frames arrived, dropping=%t expected", n, frames, tc.dropping)
			}

			res, err := ensureIn(t, main, portName)
			if err != nil {
				t.Fatalf("Ensure: %v", err)
			}
			// The kernel's view: -1 for a peer in the same namespace.
			wantNSID := mustLink(t, main.nl, portName).Attrs().NetNsID
			if (peer != nil) != (wantNSID >= 0) {
				t.Fatalf("netns id of the port's peer is %d with the peer in another namespace: %t", wantNSID, peer != nil)
			}
			peerIndex := mustLink(t, peerSide.nl, peerName).Attrs().Index
			want := Result{Ifname: portName, IsVeth: true, PeerIfindex: peerIndex, PeerName: peerName, PeerNetnsID: wantNSID, Mode: tc.wantMode}
			if res != want {
				t.Errorf("Ensure = %+v, want %+v", res, want)
			}
			if got := groOnCLI(t, peerSide); got != tc.wantGRO {
				t.Errorf("GRO on the peer after Ensure: %t, want %t", got, tc.wantGRO)
			}
			if n := delivered(t, main, peer); n < frames {
				t.Errorf("after Ensure only %d of %d redirected frames reached the peer", n, frames)
			}
			// Idempotent: a second call finds the state it left.
			again, err := ensureIn(t, main, portName)
			if err != nil {
				t.Fatalf("second Ensure: %v", err)
			}
			if tc.wantMode == ModeEnabledGRO && again.Mode != ModePeerGROOn {
				t.Errorf("second Ensure mode %q, want %q", again.Mode, ModePeerGROOn)
			}
		})
	}
}

// TestEnsureNotVeth: anything but a veth is left alone. (This kernel has
// no dummy driver; a bridge and loopback stand in.)
func TestEnsureNotVeth(t *testing.T) {
	requireRoot(t)
	main := namedNS(t, "m")
	const bridge = testPrefix + "-br"
	if err := main.nl.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: bridge}}); err != nil {
		t.Fatalf("add bridge: %v", err)
	}
	for _, name := range []string{bridge, "lo"} {
		res, err := ensureIn(t, main, name)
		want := Result{Ifname: name, PeerNetnsID: -1, Mode: ModeNotVeth}
		if err != nil || res != want {
			t.Errorf("Ensure(%s) = %+v, %v; want %+v", name, res, err, want)
		}
	}
}

func TestEnsureErrors(t *testing.T) {
	requireRoot(t)
	t.Run("missing interface", func(t *testing.T) {
		main := namedNS(t, "m")
		if _, err := ensureIn(t, main, testPrefix+"-none"); err == nil || !strings.Contains(err.Error(), testPrefix+"-none") {
			t.Fatalf("Ensure of a missing interface: %v", err)
		}
	})
	t.Run("peer namespace not reachable", func(t *testing.T) {
		main := namedNS(t, "m")
		hidden := hiddenNS(t)
		addVeth(t, main, hidden)
		res, err := ensureIn(t, main, portName)
		if err == nil {
			t.Fatalf("Ensure succeeded with a peer in an unreachable namespace: %+v", res)
		}
		peerIndex := mustLink(t, hidden.nl, peerName).Attrs().Index
		for _, want := range []string{portName, fmt.Sprintf("ifindex %d", peerIndex), "ethtool -K", "gro on", "XDP"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not mention %q", err, want)
			}
		}
		if !res.IsVeth || res.PeerIfindex != peerIndex || res.PeerNetnsID < 0 {
			t.Errorf("partial result %+v", res)
		}
		if groOnCLI(t, hidden) {
			t.Errorf("GRO turned on in a namespace Ensure said it could not reach")
		}
	})
}
