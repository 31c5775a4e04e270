package daemon

import (
	"context"
	"fmt"
	"net"
	"slices"
	"time"

	"github.com/uplinkd/uplinkd/pkg/balance"
	"github.com/uplinkd/uplinkd/pkg/config"
	"github.com/uplinkd/uplinkd/pkg/control"
	"github.com/uplinkd/uplinkd/pkg/limits"
)

// Balance groups: each guest leaves through the uplink of its bucket. The
// daemon keeps the bucket table (pkg/balance decides it) in step with the
// policy's usable uplinks; the data plane and the poll mark a failed slot
// down between two of its writes.
//
// A group's balancer owns its balance state: the table in force, the
// pinned buckets, the measured load. Its methods are pure (no data plane,
// no clock of their own): the daemon's glue below reads the data plane,
// asks the balancer, writes what it decided and announces the guests
// whose bucket moved.

func (g *group) balanced() bool { return g.cfg.Mode == config.ModeBalance }

// homeSlots are g's uplink slots in slot order: a bucket's home is
// homeSlots[b mod n].
func (g *group) homeSlots() []limits.Slot {
	var out []limits.Slot
	for _, p := range g.uplinkPorts() {
		out = append(out, p.slot)
	}
	return out
}

// balancer is a balance group's bucket table and what decides it besides
// the carriers: the pins and the measured load.
type balancer struct {
	// table is the table in force (nil: none yet), alt the slots'
	// alternatives written with it.
	table *balance.Table
	alt   [limits.MaxUplinks][]limits.Slot
	// pins hold buckets on a slot (move-guest, or the rebalancer) while
	// that slot carries traffic.
	pins map[int]pin
	// The bucket byte counters at the last tick, the upstream load per
	// slot over the last interval (bytes/s), and how many ticks moved
	// buckets.
	lastBytes   *[limits.Buckets]uint64
	lastBytesAt time.Time
	load        map[limits.Slot]uint64
	rebalances  uint64
}

// pin holds a bucket on a slot; the operator's (move-guest) the rebalancer
// leaves alone.
type pin struct {
	slot     limits.Slot
	operator bool
}

// next is the table and alternatives for the carriers now (best first),
// with the group's home slots, fallback order and failback setting:
// buckets stay where they are unless their slot stopped carrying, pinned
// buckets stay on their pin. A pin whose slot stopped carrying is void.
func (b *balancer) next(carriers, home, fallback []limits.Slot, failback bool) (balance.Table, [limits.MaxUplinks][]limits.Slot) {
	next := balance.Assign(b.table, carriers, home, failback)
	for bucket, p := range b.pins {
		if slices.Contains(carriers, p.slot) {
			next[bucket] = p.slot
		} else {
			delete(b.pins, bucket) // its uplink failed: the pin is void
		}
	}
	return next, balance.Alternatives(carriers, fallback)
}

// inForce says whether t and alt are what the balancer last committed.
func (b *balancer) inForce(t balance.Table, alt [limits.MaxUplinks][]limits.Slot) bool {
	return b.table != nil && t == *b.table && altEqual(alt, b.alt)
}

// commit makes t and alt the ones in force (the data plane has them) and
// returns the buckets that moved (none for the first table).
func (b *balancer) commit(t balance.Table, alt [limits.MaxUplinks][]limits.Slot) []int {
	var moved []int
	if b.table != nil {
		moved = balance.Moved(b.table, &t)
	}
	b.table, b.alt = &t, alt
	return moved
}

// pinGuest pins the bucket of mac on vlan to slot for the operator, and
// returns the bucket.
func (b *balancer) pinGuest(mac net.HardwareAddr, vlan uint16, slot limits.Slot) int {
	bucket := balance.Bucket(mac, vlan)
	if b.pins == nil {
		b.pins = map[int]pin{}
	}
	b.pins[bucket] = pin{slot: slot, operator: true}
	return bucket
}

// minRebalanceGap: rebalancing leaves a gap between the busiest and the
// least busy uplink below this share of the group's load alone, so small
// fluctuations move no guest.
const minRebalanceGap = 0.1

// minRebalanceLoad: below this much upstream traffic (bytes/s, all the
// group's guests) there is nothing worth evening out, and the announcements
// a move costs would be most of the traffic.
const minRebalanceLoad = 100_000

// tick takes the bucket byte counters cur read at now: it measures each
// bucket's traffic since the last tick and moves up to maxMoves buckets
// from the busiest carrier to the least busy. Moved buckets are pinned
// there (failback does not undo them); it returns them. The caller writes
// the table (next, then commit).
func (b *balancer) tick(cur *[limits.Buckets]uint64, now time.Time, carriers []limits.Slot, maxMoves int) []int {
	if b.table == nil {
		return nil
	}
	prev, since := b.lastBytes, b.lastBytesAt
	b.lastBytes, b.lastBytesAt = cur, now
	if prev == nil {
		return nil
	}
	var delta [limits.Buckets]uint64
	for i := range delta {
		if cur[i] >= prev[i] { // a counter that went back (reset) counts nothing
			delta[i] = cur[i] - prev[i]
		}
	}
	b.load = map[limits.Slot]uint64{}
	secs := now.Sub(since).Seconds()
	var total uint64
	for i, s := range b.table {
		if s != limits.NoSlot && secs > 0 {
			b.load[s] += uint64(float64(delta[i]) / secs)
			total += uint64(float64(delta[i]) / secs)
		}
	}
	if total < minRebalanceLoad {
		return nil
	}
	byOperator := map[int]bool{}
	for i, p := range b.pins {
		byOperator[i] = p.operator
	}
	next, moved := balance.Rebalance(*b.table, &delta, carriers, byOperator, maxMoves, minRebalanceGap)
	if len(moved) == 0 {
		return nil
	}
	if b.pins == nil {
		b.pins = map[int]pin{}
	}
	for _, i := range moved {
		b.pins[i] = pin{slot: next[i]}
	}
	b.rebalances++
	return moved
}

// slotOf is the uplink slot a guest leaves through (NoSlot: no table yet).
func (b *balancer) slotOf(mac net.HardwareAddr, vlan uint16) limits.Slot {
	if b.table == nil {
		return limits.NoSlot
	}
	return b.table[balance.Bucket(mac, vlan)]
}

func altEqual(a, b [limits.MaxUplinks][]limits.Slot) bool {
	for i := range a {
		if !slices.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// rebalance recomputes a balance group's table after a policy event and
// writes it when it, or the slots' alternatives, changed, or the data
// plane marked a slot down; the guests whose bucket moved are announced,
// each on its new uplink.
func (g *group) rebalance() {
	if !g.balanced() {
		return
	}
	next, alt := g.bal.next(g.policy.Carriers(), g.homeSlots(), g.policy.Fallback(), g.cfg.Failback)
	_, down, ok, err := g.dp.Balance(g.id)
	if err == nil && ok && down == 0 && g.bal.inForce(next, alt) {
		return
	}
	if err := g.dp.SetBalance(g.id, &next, alt); err != nil {
		g.log.Error("cannot write the bucket table", "group", g.cfg.Name, "err", err)
		return
	}
	if moved := g.bal.commit(next, alt); len(moved) > 0 {
		perUplink := map[string]int{} // for the log
		for s, n := range g.bal.table.Count() {
			perUplink[g.policy.UplinkName(s)] = n
		}
		g.log.Info("buckets moved", "group", g.cfg.Name, "buckets", len(moved), "per_uplink", perUplink)
		g.ann.buckets(g, moved, "moved")
	}
}

// adoptBalance takes over the bucket table a previous daemon left for a
// balance group, so a restart moves and announces nothing; an
// active-backup group's entry is reset (it may have been a balance group
// before). Called from newGroup.
func (g *group) adoptBalance() error {
	if !g.balanced() {
		return g.dp.SetBalance(g.id, nil, [limits.MaxUplinks][]limits.Slot{})
	}
	if t, _, ok, err := g.dp.Balance(g.id); err == nil && ok {
		g.bal.table = &t
	}
	return nil
}

// moveGuest is `uplinkctl move-guest`: the guest's bucket (and so every
// guest hashed to it) is pinned to the uplink while that uplink stays
// usable, and announced there.
func (g *group) moveGuest(req control.MoveGuestRequest) error {
	groupName := g.cfg.Name
	if !g.balanced() {
		return fmt.Errorf("%w: group %s is not in balance mode", control.ErrRefused, groupName)
	}
	mac, err := net.ParseMAC(req.MAC)
	if err != nil || len(mac) != 6 {
		return fmt.Errorf("%w: %q is not a MAC address", control.ErrRefused, req.MAC)
	}
	if req.VLAN > config.MaxVLAN {
		return fmt.Errorf("%w: VLAN %d is not in 0..%d", control.ErrRefused, req.VLAN, config.MaxVLAN)
	}
	slot, ok := g.policy.Slot(req.Uplink)
	if !ok {
		return fmt.Errorf("group %s has no uplink %q: %w", groupName, req.Uplink, control.ErrNotFound)
	}
	if !slices.Contains(g.policy.Carriers(), slot) {
		return fmt.Errorf("%w: uplink %s carries no traffic now", control.ErrRefused, req.Uplink)
	}
	b := g.bal.pinGuest(mac, req.VLAN, slot)
	g.log.Info("guest moved by the operator", "group", groupName, "mac", mac, "vlan", req.VLAN, "bucket", b, "uplink", req.Uplink)
	g.rebalance()
	return nil
}

// rebalanceTicks sends, every balance group's rebalance interval, the
// group's id on out until ctx ends.
func rebalanceTicks(ctx context.Context, groups []*group, out chan<- uint32) {
	for _, g := range groups {
		if !g.balanced() || g.cfg.Rebalance.Interval <= 0 {
			continue
		}
		go func(id uint32, every time.Duration) {
			t := time.NewTicker(every)
			defer t.Stop()
			for {
				select {
				case <-t.C:
					select {
					case out <- id:
					case <-ctx.Done():
						return
					}
				case <-ctx.Done():
					return
				}
			}
		}(g.id, g.cfg.Rebalance.Interval)
	}
}

// onRebalanceTick gives a rebalance tick to its group.
func (d *Daemon) onRebalanceTick(id uint32) {
	if g := d.groupByID(id); g != nil {
		g.onRebalanceTick()
	}
}

// onRebalanceTick measures each bucket's traffic since the last tick and
// moves up to max_buckets buckets from the busiest uplink to the least
// busy (balancer.tick); their guests are announced on their new uplink.
func (g *group) onRebalanceTick() {
	if g.bal.table == nil {
		return
	}
	cur, err := g.dp.BucketBytes(g.id) // 256 per-CPU reads
	if err != nil {
		g.log.Warn("cannot read bucket load; not rebalancing", "group", g.cfg.Name, "err", err)
		return
	}
	if moved := g.bal.tick(cur, time.Now(), g.policy.Carriers(), g.cfg.Rebalance.MaxBuckets); len(moved) > 0 {
		g.log.Info("rebalancing", "group", g.cfg.Name, "buckets", moved, "load_bytes_per_s", g.bal.load)
		g.rebalance()
	}
}
