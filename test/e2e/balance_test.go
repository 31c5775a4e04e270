package e2e

import (
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/pkg/balance"
)

var broadcastMAC = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// TestBalanceGroup: a balance group with 3 uplinks and 8 guests spreads the
// guests over the uplinks, each guest on exactly one; upstream broadcasts
// reach every guest exactly once (only the designated uplink delivers
// them); when an uplink fails only its guests move, the upstream relearns
// them from announcements (they stay silent), and the other guests lose
// nothing.
func TestBalanceGroup(t *testing.T) {
	const guests = 8
	l := newLab(t, labOptions{failback: false, priorities: []int{10, 20, 30}, guests: guests, extra: "    mode: balance\n"})
	l.disableIPv6()
	l.startDaemon()
	if g := l.waitActive("up0"); g.Mode != "balance" {
		t.Fatalf("mode %q, want balance", g.Mode)
	}
	for i := range guests {
		l.hello(guestRole(i), guestIP(i))
	}
	peers := []string{"p0", "p1", "p2"}
	rs := map[string]*receiver{}

	stream := func(i int) uint8 { return uint8(20 + i) }
	on := l.guestUplinks(guests, stream)
	perPeer := map[string][]int{}
	for i, p := range on {
		perPeer[p] = append(perPeer[p], i)
	}
	t.Logf("FIGURES balance: 8 guests over 3 uplinks: %v", perPeer)
	if len(perPeer) < 2 {
		t.Errorf("all guests on %v: not spread", perPeer)
	}
	st := l.status()
	for _, u := range st.Uplinks {
		if want := len(perPeer["p"+strings.TrimPrefix(u.Name, "up")]); u.Guests != want {
			t.Errorf("status: %s carries %d guests, %d seen on the wire", u.Name, u.Guests, want)
		}
	}

	// Upstream broadcasts: every guest gets each exactly once.
	const bcast = 60
	var grs []*receiver
	for i := range guests {
		grs = append(grs, l.receive(guestRole(i), "eth0"))
	}
	testbed := l.testbedDrops()
	b := l.send("U", "br0", broadcastMAC, l.macs["br0"], bcast, 1000, 100*time.Millisecond)
	b.wait()
	time.Sleep(50 * time.Millisecond)
	bLost := 0
	for i, r := range grs {
		r.close()
		lost, dups := missing(b.sent, bcast, r)
		bLost += lost
		if lost != 0 || dups != 0 {
			t.Logf("guest %d: %d of %d upstream broadcasts lost, %d duplicated", i, lost, b.sent, dups)
		}
		if dups != 0 {
			t.Errorf("guest %d: %d upstream broadcasts duplicated", i, dups)
		}
	}
	if n := testbed.unexplained(bLost, grs...); n != 0 {
		t.Errorf("%d upstream broadcasts lost in the switch", n)
	}

	// Fail the uplink that carries the most guests.
	victim := slices.MaxFunc(slices.Sorted(maps.Keys(perPeer)), func(a, b string) int { return len(perPeer[a]) - len(perPeer[b]) })
	moved := perPeer[victim]
	var stay []int
	for i := range guests {
		if on[i] != victim {
			stay = append(stay, i)
		}
	}
	for _, p := range peers {
		rs[p] = l.receive("U", p)
	}
	const rate, length = 2000, 1500 * time.Millisecond
	testbed = l.testbedDrops()
	var senders []*sender
	for _, i := range stay {
		senders = append(senders, l.send(guestRole(i), "eth0", l.macs["br0"], l.macs[guestRole(i)], stream(i), rate, length))
	}
	time.Sleep(400 * time.Millisecond)
	l.cut(victim)
	for _, s := range senders {
		s.wait()
	}
	time.Sleep(100 * time.Millisecond)
	for _, p := range peers {
		rs[p].close()
	}
	all := slices.Collect(maps.Values(rs))
	stayLost := 0
	for k, i := range stay {
		lost, dups := missing(senders[k].sent, stream(i), all...)
		stayLost += lost
		if lost != 0 {
			t.Logf("guest %d (on %s, not moved): %d of %d lost", i, on[i], lost, senders[k].sent)
		}
		if dups != 0 {
			t.Errorf("guest %d (on %s, not moved): %d of %d duplicated", i, on[i], dups, senders[k].sent)
		}
		for p, r := range rs {
			if n := len(r.stream(stream(i))); p != on[i] && n > 0 {
				t.Errorf("guest %d (on %s) moved: %d frames left through %s", i, on[i], n, p)
			}
		}
	}
	if n := testbed.unexplained(stayLost, all...); n != 0 {
		t.Errorf("guests not moved lost %d frames in the switch", n)
	}
	// The moved guests, silent since their hello, are relearned upstream
	// behind the uplinks that carry them now.
	fdbOK := waitFor(2*time.Second, func() bool {
		fdb := l.bridgeFDB()
		for _, i := range moved {
			if p := fdb[l.macs[guestRole(i)].String()]; p == "" || p == victim {
				return false
			}
		}
		return true
	})
	fdb := l.bridgeFDB()
	var where []string
	for _, i := range moved {
		where = append(where, fmt.Sprintf("G%d:%s", i, fdb[l.macs[guestRole(i)].String()]))
	}
	t.Logf("FIGURES balance: %s failed; its guests relearned upstream at %v; %d other guests under %d pps each: %d frames lost (%d dropped by the testbed)", victim, where, len(stay), rate, stayLost, testbed.count(all...))
	if !fdbOK {
		t.Errorf("moved guests not relearned upstream off %s: %v", victim, where)
	}
	st = l.status()
	for _, u := range st.Uplinks {
		if "p"+strings.TrimPrefix(u.Name, "up") == victim && (u.Buckets != 0 || u.Guests != 0) {
			t.Errorf("failed %s still has %d buckets, %d guests", u.Name, u.Buckets, u.Guests)
		}
	}
	if out, err := execCtl(l, "status"); err != nil || !strings.Contains(out, "(balance)") || !strings.Contains(out, "BUCKETS") {
		t.Errorf("status does not show the balance group (%v):\n%s", err, out)
	}
}

// guestUplinks sends a short stream from each of the first n guests
// (stream(i)) and returns the upstream peer each one's frames reached;
// it fails the test if a guest's frames reached none or several.
func (l *lab) guestUplinks(n int, stream func(int) uint8) map[int]string {
	l.t.Helper()
	peers := []string{"p0", "p1", "p2"}
	rs := map[string]*receiver{}
	for _, p := range peers {
		rs[p] = l.receive("U", p)
	}
	for i := range n {
		l.send(guestRole(i), "eth0", l.macs["br0"], l.macs[guestRole(i)], stream(i), 1000, 50*time.Millisecond).wait()
	}
	time.Sleep(50 * time.Millisecond)
	for _, p := range peers {
		rs[p].close()
	}
	on := map[int]string{}
	for i := range n {
		var where []string
		for _, p := range peers {
			if len(rs[p].stream(stream(i))) > 0 {
				where = append(where, p)
			}
		}
		if len(where) != 1 {
			l.t.Fatalf("guest %d's frames reached %v, want exactly one uplink", i, where)
		}
		on[i] = where[0]
	}
	return on
}

// TestBalanceRebalances: two busy guests that hash to the same uplink are
// split by the rebalancer (interval 300 ms, one bucket a round); the one
// that moves is announced on its new uplink; with no imbalance nothing
// moves.
func TestBalanceRebalances(t *testing.T) {
	const guests = 8
	l := newLab(t, labOptions{failback: true, priorities: []int{10, 20, 30}, guests: guests,
		extra: "    mode: balance\n    rebalance: {interval: 300ms, max_buckets: 1}\n"})
	l.disableIPv6()
	l.startDaemon()
	l.waitActive("up0")
	for i := range guests {
		l.hello(guestRole(i), guestIP(i))
	}
	stream := func(i int) uint8 { return uint8(20 + i) }
	on := l.guestUplinks(guests, stream)
	// Two guests on one uplink, in different buckets (one bucket moves
	// whole: two guests in it cannot be split).
	a, b := -1, -1
	bucket := func(i int) int { return balance.Bucket(l.macs[guestRole(i)], 0) }
	for i := range guests {
		for j := i + 1; j < guests && a < 0; j++ {
			if on[i] == on[j] && bucket(i) != bucket(j) {
				a, b = i, j
			}
		}
	}
	if a < 0 {
		t.Skipf("no two of %d guests share an uplink: %v", guests, on)
	}
	time.Sleep(700 * time.Millisecond) // quiet rounds: nothing to even out
	if g := l.status(); g.Rebalances != 0 {
		t.Fatalf("%d rebalancing rounds without load", g.Rebalances)
	}
	rs := map[string]*receiver{}
	for _, p := range []string{"p0", "p1", "p2"} {
		rs[p] = l.receive("U", p)
	}
	testbed := l.testbedDrops()
	sa := l.send(guestRole(a), "eth0", l.macs["br0"], l.macs[guestRole(a)], stream(a), 5000, 1500*time.Millisecond)
	sb := l.send(guestRole(b), "eth0", l.macs["br0"], l.macs[guestRole(b)], stream(b), 5000, 1500*time.Millisecond)
	sa.wait()
	sb.wait()
	time.Sleep(50 * time.Millisecond)
	for _, r := range rs {
		r.close()
	}
	// Two quiet rounds before the probe: a round that saw the end of the
	// load and the probe's first frames could move a probed guest that
	// shares the busy uplink, halfway through its probe. Quiet rounds see
	// the probe alone, under the rebalancer's floor.
	time.Sleep(700 * time.Millisecond)
	g := l.status()
	after := l.guestUplinks(guests, stream)
	t.Logf("FIGURES rebalancing: guests %d and %d both on %s; after 1.5 s of load: %s and %s; %d rounds moved buckets", a, b, on[a], after[a], after[b], g.Rebalances)
	if g.Rebalances == 0 || after[a] == after[b] {
		t.Fatalf("the busy guests were not split: %s and %s, %d rounds", after[a], after[b], g.Rebalances)
	}
	movedGuest := a
	if after[a] == on[a] {
		movedGuest = b
	}
	if rarps := rs[after[movedGuest]].rarps(); len(rarps) == 0 {
		t.Errorf("no announcement on %s, where guest %d moved", after[movedGuest], movedGuest)
	}
	all := slices.Collect(maps.Values(rs))
	busyLost := 0
	for _, x := range []struct {
		i int
		s *sender
	}{{a, sa}, {b, sb}} {
		lost, dups := missing(x.s.sent, stream(x.i), all...)
		busyLost += lost
		if lost != 0 || dups != 0 {
			t.Logf("guest %d lost %d, duplicated %d of %d while rebalanced", x.i, lost, dups, x.s.sent)
		}
		if dups != 0 {
			t.Errorf("guest %d: %d frames duplicated while rebalanced", x.i, dups)
		}
	}
	if n := testbed.unexplained(busyLost, all...); n != 0 {
		t.Errorf("the busy guests lost %d frames in the switch while rebalanced", n)
	}

	// By hand: guest a to an uplink it is not on.
	target := "p0"
	for _, p := range []string{"p2", "p1", "p0"} {
		if p != after[a] {
			target = p
			break
		}
	}
	if out, err := execCtl(l, "move-guest", "lab", l.macs[guestRole(a)].String(), "up"+strings.TrimPrefix(target, "p")); err != nil {
		t.Fatalf("move-guest: %v\n%s", err, out)
	}
	if got := l.guestUplinks(guests, stream)[a]; got != target {
		t.Errorf("after move-guest to %s guest %d leaves through %s", target, a, got)
	}
	if _, err := execCtl(l, "move-guest", "lab", "not-a-mac", "up0"); err == nil {
		t.Error("move-guest accepted a bad MAC")
	}
}
