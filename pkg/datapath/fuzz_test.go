package datapath

import (
	"encoding/binary"
	"runtime"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
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

// maxSentFrame is the largest frame the fuzz target sends for real: what
// a live test run carries, and what fits the MTU it gives its veths.
const maxSentFrame = 3000

// FuzzSwitchFrames feeds random and mutated frames into the guest program
// (from a guest port) and the uplink program (from the active and the
// standby uplink) and checks the invariants that keep a host safe from its
// guests and its upstream:
//   - nothing is ever sent out of the standby uplink;
//   - a malformed frame is dropped and counted as malformed;
//   - a multicast source is never learned.
//
// Every frame runs once as a plain test run, which gives the program's
// action. Frames up to maxSentFrame are then also sent for real, so the
// egress programs run too: as live test runs (BPF_F_TEST_XDP_LIVE_FRAMES)
// where the kernel allows them, else sent into the port's veth peer
// (AF_PACKET), every input, one at a time: cheap enough (60000 inputs in
// ~6 s on 2 vCPUs), so no sampling.
func FuzzSwitchFrames(f *testing.F) {
	tp := newTopo(f)
	live := tp.liveRuns()
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
		send    *sender // into the port's peer, where live runs are refused
	}{{"vnet0", tp.vnet0, true, nil}, {"up0", tp.up0, false, nil}, {"up1", tp.up1, false, nil}}
	if !live {
		// Frames as large as a live run's fit through every veth.
		for _, name := range []string{"vnet0", "g0", "vnet1", "g1", "up0", "u0p", "up1", "u1p"} {
			l, err := netlink.LinkByName(name)
			if err == nil {
				err = netlink.LinkSetMTU(l, maxSentFrame)
			}
			if err != nil {
				f.Fatalf("MTU %d on %s: %v", maxSentFrame, name, err)
			}
		}
		for i := range progs {
			progs[i].send = tp.sender(tp.peerOf(progs[i].ingress))
			f.Cleanup(progs[i].send.close)
		}
	}
	// A real frame's copies leave a moment after the program counted it:
	// a copy out of the standby uplink that comes later than this input's
	// check is caught at the next input's.
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

		prog := tp.dp.objs.XdpUplink
		if in.guest {
			prog = tp.dp.objs.XdpGuest
		}
		if len(data) < 14 {
			t.Skip("the kernel tests no frame shorter than Ethernet (nor does a NIC deliver one)")
		}
		before, standby := tp.stats(t, in.ingress), tp.stats(t, tp.up1)
		if standby.TxPackets != standbyTx {
			t.Errorf("the standby uplink sent %d frames after the previous input's check: % x", standby.TxPackets-standbyTx, previous[:min(len(previous), 32)])
		}
		previous = append(previous[:0], data...)
		ret, err := prog.Run(runOpts(data, in.ingress, false))
		if err != nil {
			t.Fatalf("%d-byte frame on %s: %v", len(data), in.name, err)
		}
		malformed, src, vlan := goParse(data)
		checkMalformed := func(how string, after PortStats, runs uint64) {
			if after.Drops[DropMalformed] != before.Drops[DropMalformed]+runs {
				t.Errorf("malformed %d-byte frame on %s (%s): malformed drops %d -> %d", len(data), in.name, how, before.Drops[DropMalformed], after.Drops[DropMalformed])
			}
		}
		if malformed {
			if ret != xdpDrop {
				t.Errorf("malformed %d-byte frame on %s: action %d", len(data), in.name, ret)
			}
			checkMalformed("test run", tp.stats(t, in.ingress), 1)
		}

		// For real, where the frame fits. Live runs report no action:
		// the counters say it.
		if len(data) <= maxSentFrame {
			how := "live test run"
			if live {
				if _, err := prog.Run(runOpts(data, in.ingress, true)); err != nil {
					t.Fatalf("%d-byte frame on %s: %v", len(data), in.name, err)
				}
			} else {
				how = "sent into " + in.send.name
				if err := in.send.send(data); err != nil {
					t.Fatal(err)
				}
				// Every frame is counted as received or as malformed.
				seen := func(s PortStats) uint64 { return s.RxPackets + s.Drops[DropMalformed] }
				want := seen(before) + 2 // the test run's and this one
				for deadline := time.Now().Add(time.Second); seen(tp.stats(t, in.ingress)) < want; time.Sleep(20 * time.Microsecond) {
					if time.Now().After(deadline) {
						t.Fatalf("%d-byte frame sent into %s: %s's program did not see it within a second", len(data), in.send.name, in.name)
					}
				}
			}
			if malformed {
				checkMalformed(how, tp.stats(t, in.ingress), 2)
			}
		}
		standbyTx = tp.stats(t, tp.up1).TxPackets
		if standbyTx != standby.TxPackets {
			t.Errorf("frame on %s went out of the standby uplink (tx %d -> %d): % x", in.name, standby.TxPackets, standbyTx, data[:min(len(data), 32)])
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
