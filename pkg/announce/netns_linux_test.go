//go:build linux

package announce

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"testing"
	"time"
	"unsafe"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// vethNetns is a fresh network namespace (name prefix "ulkann") holding one
// veth pair, both ends up: tx stands for the uplink, rx for the upstream
// switch.
type vethNetns struct {
	ns      netns.NsHandle
	handle  *netlink.Handle
	tx, rx  string
	txIndex int
	rxIndex int
}

func newVethNetns(t *testing.T) *vethNetns {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a network namespace and raw sockets")
	}
	name := fmt.Sprintf("ulkann%08x", rand.Uint32())

	// netns.NewNamed moves the calling thread into the new namespace: move it
	// back, and if that fails keep the thread locked so the runtime drops it.
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("current netns: %v", err)
	}
	ns, nsErr := netns.NewNamed(name)
	restoreErr := netns.Set(orig)
	orig.Close()
	if restoreErr != nil {
		t.Fatalf("return to original netns: %v", restoreErr)
	}
	runtime.UnlockOSThread()
	if nsErr != nil {
		t.Fatalf("create netns %s: %v", name, nsErr)
	}
	t.Cleanup(func() {
		ns.Close()
		if err := netns.DeleteNamed(name); err != nil {
			t.Errorf("delete netns %s: %v", name, err)
		}
	})

	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		t.Fatalf("netlink handle in %s: %v", name, err)
	}
	t.Cleanup(h.Close)

	v := &vethNetns{ns: ns, handle: h, tx: "ulkann-tx", rx: "ulkann-rx"}
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: v.tx}, PeerName: v.rx}
	if err := h.LinkAdd(veth); err != nil {
		t.Fatalf("add veth: %v", err)
	}
	for _, ifname := range []string{v.tx, v.rx} {
		link, err := h.LinkByName(ifname)
		if err != nil {
			t.Fatalf("find %s: %v", ifname, err)
		}
		if err := h.LinkSetUp(link); err != nil {
			t.Fatalf("set %s up: %v", ifname, err)
		}
	}
	v.txIndex = v.waitUp(t, v.tx)
	v.rxIndex = v.waitUp(t, v.rx)
	return v
}

// waitUp waits (bounded) for operstate UP and returns the ifindex.
func (v *vethNetns) waitUp(t *testing.T, ifname string) int {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		link, err := v.handle.LinkByName(ifname)
		if err != nil {
			t.Fatalf("find %s: %v", ifname, err)
		}
		if link.Attrs().OperState == netlink.OperUp {
			return link.Attrs().Index
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not operationally up after 5s (state %v)", ifname, link.Attrs().OperState)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (v *vethNetns) setTxUp(t *testing.T, up bool) {
	t.Helper()
	link, err := v.handle.LinkByName(v.tx)
	if err != nil {
		t.Fatalf("find %s: %v", v.tx, err)
	}
	set := v.handle.LinkSetDown
	if up {
		set = v.handle.LinkSetUp
	}
	if err := set(link); err != nil {
		t.Fatalf("set %s up=%v: %v", v.tx, up, err)
	}
	if up {
		v.waitUp(t, v.tx)
		v.waitUp(t, v.rx)
	}
}

// do runs fn on a thread inside the namespace. Sockets created there keep the
// namespace after the thread leaves it.
func (v *vethNetns) do(t *testing.T, fn func()) {
	t.Helper()
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("current netns: %v", err)
	}
	defer orig.Close()
	if err := netns.Set(v.ns); err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("enter netns: %v", err)
	}
	defer func() {
		if err := netns.Set(orig); err != nil {
			t.Errorf("return to original netns: %v", err) // thread stays locked and dies
			return
		}
		runtime.UnlockOSThread()
	}()
	fn()
}

// capture receives frames on one interface with ETH_P_ALL, the way the
// upstream switch would see them.
type capture struct {
	fd int
}

func htons(v uint16) uint16 { return binary.NativeEndian.Uint16(binary.BigEndian.AppendUint16(nil, v)) }

// openCapture must run inside the namespace (vethNetns.do).
func openCapture(t *testing.T, ifindex int) *capture {
	t.Helper()
	proto := htons(unix.ETH_P_ALL)
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(proto))
	if err != nil {
		t.Fatalf("capture socket: %v", err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: proto, Ifindex: ifindex}); err != nil {
		t.Fatalf("bind capture socket: %v", err)
	}
	// The kernel moves a received 802.1Q tag into metadata; AUXDATA gives it back.
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_AUXDATA, 1); err != nil {
		t.Fatalf("PACKET_AUXDATA: %v", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20); err != nil {
		t.Fatalf("SO_RCVBUFFORCE: %v", err)
	}
	tv := unix.NsecToTimeval((50 * time.Millisecond).Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatalf("SO_RCVTIMEO: %v", err)
	}
	return &capture{fd: fd}
}

// read returns the next received (not outgoing) frame with its VLAN tag
// restored, or nil after the 50 ms read timeout.
func (c *capture) read() ([]byte, error) {
	buf := make([]byte, 2048)
	oob := make([]byte, unix.CmsgSpace(int(unsafe.Sizeof(unix.TpacketAuxdata{}))))
	n, oobn, _, from, err := unix.Recvmsg(c.fd, buf, oob, 0)
	if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("recvmsg: %w", err)
	}
	if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
		return nil, nil
	}
	frame := buf[:n]
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return nil, fmt.Errorf("parse cmsg: %w", err)
	}
	for _, m := range msgs {
		if m.Header.Level != unix.SOL_PACKET || m.Header.Type != unix.PACKET_AUXDATA ||
			len(m.Data) < int(unsafe.Sizeof(unix.TpacketAuxdata{})) {
			continue
		}
		aux := (*unix.TpacketAuxdata)(unsafe.Pointer(&m.Data[0]))
		if aux.Status&unix.TP_STATUS_VLAN_VALID == 0 {
			continue
		}
		tpid := uint16(unix.ETH_P_8021Q)
		if aux.Status&unix.TP_STATUS_VLAN_TPID_VALID != 0 {
			tpid = aux.Vlan_tpid
		}
		tagged := append([]byte{}, frame[:12]...)
		tagged = binary.BigEndian.AppendUint16(tagged, tpid)
		tagged = binary.BigEndian.AppendUint16(tagged, aux.Vlan_tci)
		frame = append(tagged, frame[12:]...)
	}
	return frame, nil
}

// collect gathers, in arrival order, the frames whose source MAC is in
// from. It returns once it has at least want of them and quiet has passed
// without another (so extra frames are caught), or after limit.
func (c *capture) collect(t *testing.T, from []net.HardwareAddr, want int, quiet, limit time.Duration) [][]byte {
	t.Helper()
	sources := make(map[string]bool, len(from))
	for _, mac := range from {
		sources[mac.String()] = true
	}
	var got [][]byte
	start := time.Now()
	last := start
	for time.Since(start) < limit {
		frame, err := c.read()
		if err != nil {
			t.Fatalf("capture: %v", err)
		}
		if frame == nil || len(frame) < 14 || !sources[net.HardwareAddr(frame[6:12]).String()] {
			if len(got) >= want && time.Since(last) >= quiet {
				return got
			}
			continue
		}
		got = append(got, frame)
		last = time.Now()
	}
	if len(got) < want {
		t.Errorf("captured %d frames from %v within %v, want %d", len(got), from, limit, want)
	}
	return got
}
