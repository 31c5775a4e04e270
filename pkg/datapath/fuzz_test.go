package datapath

import (
	"encoding/binary"
	"runtime"
	"testing"

	"github.com/vishvananda/netns"
)

// goParse mirrors the switch's parse(): whether a frame is malformed (too
// short for the headers it claims) and its source MAC and VLAN.
// The kernel runs no frame shorter than Ethernet's 14 bytes.
func goParse(f []byte) (malformed bool, src [6]byte, vlan uint16) {
	copy(src[:], f[6:12])
	proto, l3 := binary.BigEndian.Uint16(f[12:14]), 14
	if proto == 0x8100 {
		if len(f) < 18 {
			return true, src, 0
		}
		vlan = binary.BigEndian.Uint16(f[14:16]) & 0x0fff
		proto, l3 = binary.BigEndian.Uint16(f[16:18]), 18
	}
	need := map[uint16]int{0x0800: 20, 0x86dd: 40, 0x0806: 28}[proto]
	return len(f) < l3+need, src, vlan
}

// FuzzSwitchFrames feeds random and mutated frames into the guest program
// (from a guest port) and the uplink program (from the active and the
// standby uplink) and checks the invariants that keep a host safe from its
// guests and its upstream:
//   - nothing is ever sent out of the standby uplink;
//   - a malformed frame is dropped and counted as malformed;
//   - a multicast source is never learned.
//
// Frames the kernel's live test mode can carry (14..3000 bytes) really go
// out (BPF_F_TEST_XDP_LIVE_FRAMES), so the egress programs run too.
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
		append(frame(f, macUp, macA, 0, nil)[:12], 0x88, 0xa8, 0, 10, 0x81, 0, 0, 20, 0x08, 0), // stacked tags
		append(frame(f, macUp, macA, 0, nil)[:12], 0x08, 0x00, 0x45),                           // IPv4, header cut
		append(frame(f, macUp, macA, 0, nil)[:12], 0x86, 0xdd),                                 // IPv6, no header
		append(frame(f, macUp, macA, 0, nil)[:12], 0x08, 0x06, 0, 1),                           // ARP, cut
		append(frame(f, macUp, macA, 0, nil)[:12], 0xff, 0xff),                                 // odd ethertype
		append(frame(f, macUp, macA, 0, nil), make([]byte, 9000)...),                           // jumbo
	}
	for i, s := range seeds {
		f.Add(s, byte(i%3))
	}
	progs := []struct {
		name    string
		ingress int
		guest   bool
	}{{"vnet0", tp.vnet0, true}, {"up0", tp.up0, false}, {"up1", tp.up1, false}}

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

		prog := tp.dp.objs.XdpUplink
		if in.guest {
			prog = tp.dp.objs.XdpGuest
		}
		if len(data) < 14 {
			t.Skip("the kernel tests no frame shorter than Ethernet (nor does a NIC deliver one)")
		}
		before, standby := tp.stats(t, in.ingress), tp.stats(t, tp.up1)
		// Larger frames run without live mode: the action and counters are
		// checked, but no egress program runs.
		live := len(data) <= 3000
		ret, err := prog.Run(runOpts(data, in.ingress, live))
		if err != nil {
			t.Fatalf("%d-byte frame on %s: %v", len(data), in.name, err)
		}
		after := tp.stats(t, in.ingress)
		malformed, src, vlan := goParse(data)
		if malformed {
			// Live runs report no action: the counter says it.
			if (!live && ret != xdpDrop) || after.Drops[DropMalformed] != before.Drops[DropMalformed]+1 {
				t.Errorf("malformed %d-byte frame on %s: action %d, malformed drops %d -> %d", len(data), in.name, ret, before.Drops[DropMalformed], after.Drops[DropMalformed])
			}
			return
		}
		if got := tp.stats(t, tp.up1).TxPackets; got != standby.TxPackets {
			t.Errorf("frame on %s went out of the standby uplink (tx %d -> %d): % x", in.name, standby.TxPackets, got, data[:min(len(data), 32)])
		}
		if src[0]&1 == 1 {
			key := bpfSwitchFdbKey{Group: 0, Vlan: vlan, Mac: src}
			var e bpfSwitchFdbEntry
			if err := tp.dp.objs.Fdb.Lookup(key, &e); err == nil {
				t.Errorf("multicast source %x learned from %s", src, in.name)
			}
		}
	})
}
