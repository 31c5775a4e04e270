package datapath

import (
	"maps"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/uplinkd/uplinkd/pkg/balance"
	"github.com/uplinkd/uplinkd/pkg/limits"
)

// TestBalance: in a balance group each guest leaves through its bucket's
// uplink (the data plane's hash is pkg/balance's), its broadcasts too;
// upstream broadcasts come in only through the designated (active) uplink,
// unicast to a known guest through any; a slot marked down spreads its
// buckets over the others at once.
func TestBalance(t *testing.T) {
	tp := newTopo(t)
	ids, err := tp.dp.AssignGroups([]string{"red", "blue"})
	if err != nil {
		t.Fatal(err)
	}
	red := ids["red"]
	table := balance.Assign(nil, []limits.Slot{0, 1}, []limits.Slot{0, 1}, true)
	if err := tp.dp.SetFallback(red, []limits.Slot{0, 1}); err != nil {
		t.Fatal(err)
	}
	if err := tp.dp.SetBalance(red, &table, balance.Alternatives([]limits.Slot{0, 1}, []limits.Slot{0, 1})); err != nil {
		t.Fatal(err)
	}
	// Four guests per uplink, found by the Go hash: with a different hash
	// in the data plane they would scatter.
	var guests [2][]net.HardwareAddr
	for i := 1; len(guests[0]) < 4 || len(guests[1]) < 4; i++ {
		mac := net.HardwareAddr{0x02, 0, 0, 0, byte(i >> 8), byte(i)}
		if s := table[balance.Bucket(mac, 0)]; len(guests[s]) < 4 {
			guests[s] = append(guests[s], mac)
		}
	}
	caps := map[string]*capture{}
	for _, n := range []string{"g0", "g1", "u0p", "u1p"} {
		caps[n] = tp.capture(n)
	}
	copies := func(from string, build func(m []byte) []byte) map[string]int {
		t.Helper()
		marker := newMarker(t)
		tp.inject(from, build(marker))
		time.Sleep(30 * time.Millisecond)
		got := map[string]int{}
		for n, c := range caps {
			if k := len(c.drain(marker)); k > 0 {
				got[n] = k
			}
		}
		return got
	}
	uplinkPeer := []string{"u0p", "u1p"}
	for slot, macs := range guests {
		for _, mac := range macs {
			if got := copies("g0", func(m []byte) []byte { return frame(t, macUp, mac, 0, m) }); !maps.Equal(got, map[string]int{uplinkPeer[slot]: 1}) {
				t.Errorf("guest %s (bucket %d, slot %d) upstream: %v", mac, balance.Bucket(mac, 0), slot, got)
			}
		}
		// A guest's broadcast: its own uplink and the other guest.
		if got := copies("g0", func(m []byte) []byte { return frame(t, broadcast, macs[0], 0, m) }); !maps.Equal(got, map[string]int{uplinkPeer[slot]: 1, "g1": 1}) {
			t.Errorf("broadcast from %s (slot %d): %v", macs[0], slot, got)
		}
	}
	// Every guest's upstream bytes are counted in its bucket (the
	// rebalancer's load).
	load, err := tp.dp.BucketBytes(red)
	if err != nil {
		t.Fatal(err)
	}
	for _, macs := range guests {
		for _, mac := range macs {
			if load[balance.Bucket(mac, 0)] == 0 {
				t.Errorf("no bytes counted in guest %s's bucket", mac)
			}
		}
	}
	var counted uint64
	for _, n := range load {
		counted += n
	}
	if counted == 0 || counted > 64*1024 {
		t.Errorf("%d bytes counted for a few dozen small frames", counted)
	}

	// From upstream: a broadcast through the designated uplink only; a
	// unicast to a known guest through either.
	if got := copies("u1p", func(m []byte) []byte { return frame(t, broadcast, macUp, 0, m) }); len(got) != 0 {
		t.Errorf("broadcast on the non-designated uplink delivered: %v", got)
	}
	if got := copies("u0p", func(m []byte) []byte { return frame(t, broadcast, macUp, 0, m) }); !maps.Equal(got, map[string]int{"g0": 1, "g1": 1}) {
		t.Errorf("broadcast on the designated uplink: %v", got)
	}
	for _, peer := range uplinkPeer {
		if got := copies(peer, func(m []byte) []byte { return frame(t, guests[0][0], macUp, 0, m) }); !maps.Equal(got, map[string]int{"g0": 1}) {
			t.Errorf("unicast to a known guest via %s: %v", peer, got)
		}
	}

	// Slot 0 marked down (the poll's or a kernel path's move): its guests
	// leave through slot 1 at once, the designated uplink moves too.
	if to, moved, err := tp.dp.MoveOff(red, 0); err != nil || !moved || to != 1 {
		t.Fatalf("MoveOff = %d, %t, %v", to, moved, err)
	}
	if _, down, ok, err := tp.dp.Balance(red); err != nil || !ok || down != 1 {
		t.Errorf("after MoveOff: down %#x, balance %t, %v", down, ok, err)
	}
	for _, mac := range append(guests[0], guests[1]...) {
		if got := copies("g0", func(m []byte) []byte { return frame(t, macUp, mac, 0, m) }); !maps.Equal(got, map[string]int{"u1p": 1}) {
			t.Errorf("guest %s with slot 0 down: %v", mac, got)
		}
	}
	// The daemon's rewrite clears the mark; back in active-backup mode
	// every guest follows the active slot (1 now).
	if err := tp.dp.SetBalance(red, nil, [limits.MaxUplinks][]limits.Slot{}); err != nil {
		t.Fatal(err)
	}
	if got := copies("g0", func(m []byte) []byte { return frame(t, macUp, guests[0][0], 0, m) }); !maps.Equal(got, map[string]int{"u1p": 1}) {
		t.Errorf("active-backup again: %v", got)
	}
}

// TestBalanceCarrierAtRedirect: in a balance group the switch's carrier
// check moves only the buckets of the uplink that lost carrier (marked
// down, the designated uplink stays) and reports it; the first frame of a
// moved guest already leaves through the alternative.
func TestBalanceCarrierAtRedirect(t *testing.T) {
	tp := newTopo(t)
	kf := tp.armKernelFailover(t)
	if !tpHasPath(kf, PathCarrierAtRedirect) {
		t.Skipf("the switch cannot read carrier here: %s", kf.Refused()[PathCarrierAtRedirect])
	}
	const red = 0
	table := balance.Assign(nil, []limits.Slot{0, 1}, []limits.Slot{0, 1}, true)
	if err := tp.dp.SetBalance(red, &table, balance.Alternatives([]limits.Slot{0, 1}, []limits.Slot{0, 1})); err != nil {
		t.Fatal(err)
	}
	var on [2]net.HardwareAddr
	for i := 1; on[0] == nil || on[1] == nil; i++ {
		mac := net.HardwareAddr{0x02, 0, 0, 0, 0x10, byte(i)}
		on[table[balance.Bucket(mac, 0)]] = mac
	}
	caps := []*capture{tp.capture("u0p"), tp.capture("u1p")}
	up := func(mac net.HardwareAddr) func(m []byte) []byte {
		return func(m []byte) []byte { return frame(t, macUp, mac, 0, m) }
	}
	for slot, want := range []string{"u0p", "u1p"} {
		if got := tp.delivery(t, "guest", tp.vnet0, up(on[slot]), []string{want}, caps...); !slices.Equal(got, []string{want}) {
			t.Fatalf("guest on slot %d: delivered to %v", slot, got)
		}
	}
	peer, err := netlink.LinkByName("u1p")
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetDown(peer); err != nil {
		t.Fatal(err)
	}
	if got := tp.delivery(t, "guest", tp.vnet0, up(on[1]), []string{"u0p"}, caps...); !slices.Equal(got, []string{"u0p"}) {
		t.Errorf("slot 1's guest after its uplink lost carrier: delivered to %v, want u0p", got)
	}
	if got := tp.delivery(t, "guest", tp.vnet0, up(on[0]), []string{"u0p"}, caps...); !slices.Equal(got, []string{"u0p"}) {
		t.Errorf("slot 0's guest: delivered to %v", got)
	}
	if _, down, _, err := tp.dp.Balance(red); err != nil || down != 1<<1 {
		t.Errorf("down %#x, %v; want slot 1 marked", down, err)
	}
	if a, err := tp.dp.ActiveSlot(red); err != nil || a != 0 {
		t.Errorf("the designated slot moved to %d (%v)", a, err)
	}
	ev, err := kf.Next()
	if err != nil {
		t.Fatal(err)
	}
	if (ev.Path != PathCarrierAtRedirect && ev.Path != PathCarrierHook) || ev.From != 1 || ev.To != limits.NoSlot || ev.Ifindex != tp.up1 {
		t.Errorf("event %+v, want slot 1 reported down, the active slot unmoved", ev)
	}
}
