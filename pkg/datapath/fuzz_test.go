package datapath

import (
	"encoding/binary"
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// goParse mirrors the switch's parse_frame on a frame as a test run hands
// it over, the outer tag still in the frame: whether it is malformed (too
// short for the headers it claims), its source MAC and VLAN. The kernel
// runs no frame shorter than Ethernet's 14 bytes.
func goParse(f []byte) (malformed bool, src [6]byte, vlan uint16) {
	copy(src[:], f[6:12])
	proto, l3 := binary.BigEndian.Uint16(f[12:14]), 14
	if proto == 0x8100 {
		if len(f) < 18 {
			return true, src, 0
		}
		vlan = binary.BigEndian.Uint16(f[14:16]) & 0x0fff
		proto, l3 = binary.BigEndian.Uint16(f[16:18]), 18
		if (proto == 0x8100 || proto == 0x88a8) && len(f) < 22 {
			return true, src, vlan // a cut second tag
		}
	}
	return len(f) < l3+l3Need(proto), src, vlan
}

// l3Need is how much of a network header the switch reads for learning.
func l3Need(proto uint16) int {
	return map[uint16]int{0x0800: 20, 0x86dd: 40, 0x0806: 28}[proto]
}

// goParseReal is goParse for a real frame: before tc ingress the
// receiving device moves an outer 802.1Q or 802.1ad tag into skb metadata
// (and frees a tagged frame with less than 6 bytes behind the tag: the
// program never sees it), and the program parses no further tag.
func goParseReal(f []byte) (seen, malformed bool, vlan uint16) {
	switch binary.BigEndian.Uint16(f[12:14]) {
	case 0x8100, 0x88a8:
		if len(f) < 20 {
			return false, false, 0
		}
		vlan = binary.BigEndian.Uint16(f[14:16]) & 0x0fff
		return true, len(f) < 18+l3Need(binary.BigEndian.Uint16(f[16:18])), vlan
	}
	malformed, _, _ = goParse(f)
	return true, malformed, 0
}

// testRunRefuses says whether the kernel may refuse a tc test run of the
// frame (EINVAL): one larger than a page's room, or one whose IPv4 or IPv6
// header is cut (newer kernels check those).
func testRunRefuses(f []byte) bool {
	proto := binary.BigEndian.Uint16(f[12:14])
	return len(f) > maxTestRunFrame ||
		(proto == 0x0800 && len(f) < 14+20) || (proto == 0x86dd && len(f) < 14+40)
}

// maxTestRunFrame is the largest frame a tc test run takes on x86-64
// (a page less the skb's head- and tailroom).
const maxTestRunFrame = 3712

// jumboMTU is the MTU the fuzz target gives its veths: every frame up to
// a jumbo frame (maxSentFrame) is sent for real.
const (
	jumboMTU     = 9000
	maxSentFrame = jumboMTU + 14
)

// FuzzSwitchFrames feeds random and mutated frames into the guest program
// (from a guest port) and the uplink program (from the active and the
// standby uplink), tc_guest and tc_uplink as the switch runs them, and
// checks the invariants that keep a host safe from its guests and its
// upstream:
//   - nothing is ever sent out of the standby uplink (its tx counter, and
//     a capture at its far end);
//   - a malformed frame is dropped and counted as malformed;
//   - a multicast source is never learned.
//
// Every frame runs once as a plain tc test run where the kernel takes it
// (testRunRefuses), which gives the program's action; a flood's clones
// leave for real from there. Frames up to maxSentFrame are then sent for
// real into the port's veth peer (AF_PACKET), every input, one at a time,
// and the program counts them: where the outer tag is then in metadata.
func FuzzSwitchFrames(f *testing.F) {
	tp := newTopo(f)
	// Group red: up0 active, up1 standby; vnet0 and vnet1 guests.
	seeds := [][]byte{
		frame(f, macUp, macA, 0, nil),                                                          // guest to upstream
		frame(f, broadcast, macA, 0, nil),                                                      // broadcast
		frame(f, macB, macA, 100, nil),                                                         // tagged
		frame(f, macA, macUp, 0, nil),                                                          // upstream to a guest
		frame(f, macUp, broadcast, 0, nil),                                                     // multicast source
		append(frame(f, macUp, macA, 0, nil)[:12], 0x81, 0x00, 0x00),                           // truncated tag
		append(frame(f, macUp, macA, 0, nil)[:12], 0x81, 0x00, 0x00, 7, 0x08, 0x00, 0x45, 0),   // tag, IPv4 header cut
		append(frame(f, macUp, macA, 0, nil)[:12], 0x88, 0xa8, 0, 10, 0x81, 0, 0, 20, 0x08, 0), // stacked tags
		append(frame(f, macUp, macA, 0, nil)[:12], 0x08, 0x00, 0x45),                           // IPv4, header cut
		append(frame(f, macUp, macA, 0, nil)[:12], 0x86, 0xdd),                                 // IPv6, no header
		append(frame(f, macUp, macA, 0, nil)[:12], 0x08, 0x06, 0, 1),                           // ARP, cut
		append(frame(f, macUp, macA, 0, nil)[:12], 0xff, 0xff),                                 // odd ethertype
		append(frame(f, macUp, macA, 0, nil), make([]byte, maxSentFrame-60)...),                // jumbo
	}
	for i, s := range seeds {
		f.Add(s, byte(i%3))
	}
	progs := []struct {
		name    string
		ingress int
		guest   bool
		send    *sender // into the port's peer
	}{{"vnet0", tp.vnet0, true, nil}, {"up0", tp.up0, false, nil}, {"up1", tp.up1, false, nil}}
	for _, name := range []string{"vnet0", "g0", "vnet1", "g1", "up0", "u0p", "up1", "u1p"} {
		l, err := netlink.LinkByName(name)
		if err == nil {
			err = netlink.LinkSetMTU(l, jumboMTU)
		}
		if err != nil {
			f.Fatalf("MTU %d on %s: %v", jumboMTU, name, err)
		}
	}
	for i := range progs {
		progs[i].send = tp.sender(tp.peerOf(progs[i].ingress))
		f.Cleanup(progs[i].send.close)
	}
	// A real frame's copies leave a moment after the program counted it:
	// a copy out of the standby uplink that comes later than this input's
	// check is caught at the next input's.
	standbyWire := tp.capture("u1p")
	standbyTx := tp.stats(f, tp.up1).TxPackets
	var previous []byte

	f.Fuzz(func(t *testing.T, data []byte, which byte) {
		in := progs[int(which)%len(progs)]
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		orig, err := netns.Get()
		if err != nil {
			t.Fatal(err)
		}
		defer orig.Close()
		if err := netns.Set(tp.ns); err != nil {
			t.Fatal(err)
		}
		defer netns.Set(orig) //nolint:errcheck // back before the thread is unlocked

		prog := tp.dp.objs.TcUplink
		if in.guest {
			prog = tp.dp.objs.TcGuest
		}
		if len(data) < 14 {
			t.Skip("the kernel tests no frame shorter than Ethernet (nor does a NIC deliver one)")
		}
		before, standby := tp.stats(t, in.ingress), tp.stats(t, tp.up1)
		if standby.TxPackets != standbyTx {
			t.Errorf("the standby uplink sent %d frames after the previous input's check: % x", standby.TxPackets-standbyTx, previous[:min(len(previous), 32)])
		}
		if n := standbyWire.count(); n > 0 {
			t.Errorf("%d frames arrived behind the standby uplink after the previous input's check: % x", n, previous[:min(len(previous), 32)])
		}
		previous = append(previous[:0], data...)

		// seen counts the frames the program looked at: every one is
		// counted as received or as malformed.
		seen := func(s PortStats) uint64 { return s.RxPackets + s.Drops[DropMalformed] }
		var wantSeen, wantMalformed uint64
		malformed, src, vlan := goParse(data)
		ret, err := prog.Run(&ebpf.RunOptions{Data: data, Context: skbCtx{Ifindex: uint32(in.ingress)}, Repeat: 1})
		switch {
		case errors.Is(err, unix.EINVAL) && testRunRefuses(data):
			// No test run: the real frame below has to do.
		case err != nil:
			t.Fatalf("%d-byte frame on %s: %v", len(data), in.name, err)
		default:
			wantSeen++
			if malformed {
				wantMalformed++
				if ret != tcShot {
					t.Errorf("malformed %d-byte frame on %s: tc action %d, want %d (shot)", len(data), in.name, ret, tcShot)
				}
			}
		}

		// For real, where the frame fits.
		realVLAN := vlan
		if len(data) <= maxSentFrame {
			realSeen, realMalformed, v := goParseReal(data)
			realVLAN = v
			if err := in.send.send(data); err != nil {
				t.Fatal(err)
			}
			if realSeen {
				wantSeen++
				if realMalformed {
					wantMalformed++
				}
				want := seen(before) + wantSeen
				for deadline := time.Now().Add(time.Second); seen(tp.stats(t, in.ingress)) < want; time.Sleep(20 * time.Microsecond) {
					if time.Now().After(deadline) {
						t.Fatalf("%d-byte frame sent into %s: %s's program did not see it within a second", len(data), in.send.name, in.name)
					}
				}
			}
		}
		after := tp.stats(t, in.ingress)
		if seen(after) != seen(before)+wantSeen {
			t.Errorf("%d-byte frame on %s: the program saw %d frames, want %d", len(data), in.name, seen(after)-seen(before), wantSeen)
		}
		if got := after.Drops[DropMalformed] - before.Drops[DropMalformed]; got != wantMalformed {
			t.Errorf("%d-byte frame on %s: %d counted as malformed, want %d: % x", len(data), in.name, got, wantMalformed, data[:min(len(data), 32)])
		}
		standbyTx = tp.stats(t, tp.up1).TxPackets
		if standbyTx != standby.TxPackets {
			t.Errorf("frame on %s went out of the standby uplink (tx %d -> %d): % x", in.name, standby.TxPackets, standbyTx, data[:min(len(data), 32)])
		}
		if src[0]&1 == 1 {
			for _, v := range []uint16{vlan, realVLAN} {
				key := bpfSwitchFdbKey{Group: 0, Vlan: v, Mac: src}
				var e bpfSwitchFdbEntry
				if err := tp.dp.objs.Fdb.Lookup(key, &e); err == nil {
					t.Errorf("multicast source %x learned from %s on VLAN %d", src, in.name, v)
				}
			}
		}
	})
}

// count drains the capture and returns how many frames arrived.
func (c *capture) count() int {
	n := 0
	for range 10000 {
		if f, err := c.Next(); err != nil || f == nil {
			break
		}
		n++
	}
	return n
}
