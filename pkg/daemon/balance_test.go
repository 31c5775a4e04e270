package daemon

import (
	"context"
	"errors"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/pkg/balance"
	"github.com/uplinkd/uplinkd/pkg/control"
	"github.com/uplinkd/uplinkd/pkg/limits"
)

// slots names slot numbers, for short tables.
func slots(s ...limits.Slot) []limits.Slot { return s }

// A balancer's next table: buckets spread over the carriers, kept where
// they are while their slot carries, pinned buckets on their pin, and a
// pin on a slot that stopped carrying dropped for good.
func TestBalancerNext(t *testing.T) {
	var b balancer
	home := slots(0, 1)
	next, _ := b.next(slots(0, 1), home, slots(0, 1), true)
	if moved := b.commit(next, [limits.MaxUplinks][]limits.Slot{}); moved != nil {
		t.Errorf("the first table moved %v", moved)
	}
	if c := b.table.Count(); c[0] != limits.Buckets/2 || c[1] != limits.Buckets/2 {
		t.Fatalf("spread %v, want half each", c)
	}
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	bucket := balance.Bucket(mac, 0)
	home1 := limits.Slot(bucket % 2)
	other := 1 - home1
	if got := b.pinGuest(mac, 0, other); got != bucket {
		t.Fatalf("pinned bucket %d, want %d", got, bucket)
	}
	next, alt := b.next(slots(0, 1), home, slots(0, 1), true)
	if next[bucket] != other {
		t.Errorf("a pinned bucket is on %d, want its pin %d", next[bucket], other)
	}
	if b.inForce(next, alt) {
		t.Error("a table with a new pin is in force already")
	}
	if moved := b.commit(next, alt); !slices.Equal(moved, []int{bucket}) || b.slotOf(mac, 0) != other {
		t.Errorf("commit moved %v, want [%d]; the guest leaves through %d", moved, bucket, b.slotOf(mac, 0))
	}
	if !b.inForce(next, alt) {
		t.Error("the committed table is not in force")
	}
	// The pin's slot stops carrying: the bucket goes to the other, and
	// stays there (failback) when it carries again, the pin being void.
	next, _ = b.next(slots(home1), home, slots(home1), true)
	if next[bucket] != home1 || len(b.pins) != 0 {
		t.Errorf("pinned slot failed: bucket on %d, pins %v; want on %d, no pins", next[bucket], b.pins, home1)
	}
	b.commit(next, alt)
	next, _ = b.next(slots(0, 1), home, slots(0, 1), true)
	if next[bucket] != home1 {
		t.Errorf("after the pin's slot came back: bucket on %d, want its home %d", next[bucket], home1)
	}
}

// A balancer's tick: the first only records the counters; a load below
// minRebalanceLoad moves nothing; an uneven load moves buckets, at most
// maxMoves, from the busiest carrier to the least busy, never the
// operator's, and pins them there.
func TestBalancerTick(t *testing.T) {
	var b balancer
	if moved := b.tick(&[limits.Buckets]uint64{}, time.Now(), slots(0, 1), 4); moved != nil {
		t.Fatalf("no table yet: moved %v", moved)
	}
	next, alt := b.next(slots(0, 1), slots(0, 1), slots(0, 1), true)
	b.commit(next, alt)
	// Slot 0 has the even buckets: give four of them 1 MB/s each, and
	// pin one of those for the operator.
	busy := []int{0, 2, 4, 6}
	b.pins = map[int]pin{0: {slot: 0, operator: true}}
	start := time.Unix(1000, 0)
	var c [limits.Buckets]uint64
	if moved := b.tick(&c, start, slots(0, 1), 4); moved != nil {
		t.Fatalf("first tick moved %v", moved)
	}
	small := c
	small[0] += 1000
	if moved := b.tick(&small, start.Add(time.Second), slots(0, 1), 4); moved != nil || b.load[0] != 1000 {
		t.Fatalf("1 kB/s: moved %v, load %v", moved, b.load)
	}
	big := small
	for _, i := range busy {
		big[i] += 1_000_000
	}
	moved := b.tick(&big, start.Add(2*time.Second), slots(0, 1), 4)
	if len(moved) == 0 || len(moved) > 4 || slices.Contains(moved, 0) {
		t.Fatalf("moved %v: want some of %v, never 0 (the operator's)", moved, busy)
	}
	for _, i := range moved {
		if p, ok := b.pins[i]; !ok || p.slot != 1 || p.operator {
			t.Errorf("moved bucket %d: pin %+v, want on 1, not the operator's", i, p)
		}
	}
	if b.rebalances != 1 || b.load[0] != 4_000_000 {
		t.Errorf("rebalances %d, load %v", b.rebalances, b.load)
	}
	// A counter that went back (the map was re-created) counts nothing.
	if moved := b.tick(&c, start.Add(3*time.Second), slots(0, 1), 4); moved != nil {
		t.Errorf("counters reset: moved %v", moved)
	}
}

const balanceYAML = `groups:
  - name: g
    mode: balance
    announce: {count: 0}
    rebalance: {interval: 1s, max_buckets: 2}
    uplinks: [{name: up1}, {name: up2}]
    guest_ports: [{name: vm1}]
`

// The daemon's balance glue: a rebalance tick writes the table the
// balancer decided, move-guest pins a guest's bucket, and both are
// refused or ignored where they do not apply.
func TestRebalanceAndMoveGuest(t *testing.T) {
	d, dp, _ := testDaemon(t, balanceYAML, "up1", "up2", "vm1")
	g := d.groups[0]
	if dp.tables[g.id] == nil || *dp.tables[g.id] != *g.bal.table {
		t.Fatal("start: the data plane does not hold the balancer's table")
	}
	d.onRebalanceTick(g.id)
	for _, i := range []int{0, 2, 4, 6} { // slot 0's
		dp.bytes[i] = 1_000_000_000 // within any tick interval, well above minRebalanceLoad
	}
	d.onRebalanceTick(g.id)
	moved := 0
	for i := range dp.tables[g.id] {
		if dp.tables[g.id][i] != g.bal.table[i] {
			t.Fatalf("bucket %d: data plane %d, balancer %d", i, dp.tables[g.id][i], g.bal.table[i])
		}
		if g.bal.pins[i].slot == 1 {
			moved++
		}
	}
	if moved != 2 || g.bal.rebalances != 1 {
		t.Errorf("rebalanced %d buckets in %d rounds, want max_buckets (2) in 1", moved, g.bal.rebalances)
	}

	serveCalls(t, d)
	api, ctx := controlAPI{d}, context.Background()
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 9}
	bucket := balance.Bucket(mac, 5)
	to := "up" + string(rune('1'+1-bucket%2)) // not its home
	if err := api.MoveGuest(ctx, "g", control.MoveGuestRequest{MAC: mac.String(), VLAN: 5, Uplink: to}); err != nil {
		t.Fatal(err)
	}
	var onDP limits.Slot
	onLoop(t, d, func() { onDP = dp.tables[g.id][bucket] })
	if want := limits.Slot(1 - bucket%2); onDP != want {
		t.Errorf("move-guest: bucket %d on slot %d in the data plane, want %d", bucket, onDP, want)
	}
	for _, tc := range []struct {
		req  control.MoveGuestRequest
		want error
	}{
		{control.MoveGuestRequest{MAC: "nope", Uplink: "up1"}, control.ErrRefused},
		{control.MoveGuestRequest{MAC: mac.String(), VLAN: 5000, Uplink: "up1"}, control.ErrRefused},
		{control.MoveGuestRequest{MAC: mac.String(), Uplink: "up9"}, control.ErrNotFound},
	} {
		if err := api.MoveGuest(ctx, "g", tc.req); !errors.Is(err, tc.want) {
			t.Errorf("move-guest %+v: %v, want %v", tc.req, err, tc.want)
		}
	}
}

// An active-backup group has no table: its balance entry is reset at
// start, move-guest is refused, rebalance ticks do nothing.
func TestActiveBackupHasNoBalance(t *testing.T) {
	d, dp, _ := testDaemon(t, groupYAML("failback: true"), "up1", "up2", "up3", "vm1")
	g := d.groups[0]
	d.onRebalanceTick(g.id)
	if dp.tables[g.id] != nil || g.bal.table != nil {
		t.Errorf("an active-backup group has a bucket table")
	}
	if err := g.moveGuest(control.MoveGuestRequest{MAC: "02:00:00:00:00:01", Uplink: "up1"}); !errors.Is(err, control.ErrRefused) {
		t.Errorf("move-guest: %v, want refused", err)
	}
}
