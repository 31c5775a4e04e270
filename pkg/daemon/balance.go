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

// rebalance recomputes a balance group's table after a policy event and
// writes it when it, or the slots' alternatives, changed, or the data
// plane marked a slot down; the guests whose bucket moved are announced,
// each on its new uplink.
func (d *Daemon) rebalance(g *group) {
	if !g.balanced() {
		return
	}
	carriers := g.policy.Carriers()
	next := balance.Assign(g.table, carriers, g.homeSlots(), g.cfg.Failback)
	for b, p := range g.pins {
		if slices.Contains(carriers, p.slot) {
			next[b] = p.slot
		} else {
			delete(g.pins, b) // its uplink failed: the pin is void
		}
	}
	alt := balance.Alternatives(carriers, g.policy.Fallback())
	_, down, ok, err := d.dp.Balance(g.id)
	if err == nil && ok && down == 0 && g.table != nil && next == *g.table && altEqual(alt, g.alt) {
		return
	}
	if err := d.dp.SetBalance(g.id, &next, alt); err != nil {
		d.log.Error("cannot write the bucket table", "group", g.cfg.Name, "err", err)
		return
	}
	var moved []int
	if g.table != nil {
		moved = balance.Moved(g.table, &next)
	}
	g.table, g.alt = &next, alt
	if len(moved) > 0 {
		d.log.Info("buckets moved", "group", g.cfg.Name, "buckets", len(moved), "per_uplink", d.bucketsPerUplink(g))
		d.ann.buckets(g, moved, "moved")
	}
}

// adoptBalance takes over the bucket table a previous daemon left for a
// balance group, so a restart moves and announces nothing; an
// active-backup group's entry is reset (it may have been a balance group
// before). Called from setup.
func (d *Daemon) adoptBalance(g *group) error {
	if !g.balanced() {
		return d.dp.SetBalance(g.id, nil, [limits.MaxUplinks][]limits.Slot{})
	}
	if t, _, ok, err := d.dp.Balance(g.id); err == nil && ok {
		g.table = &t
	}
	return nil
}

func altEqual(a, b [limits.MaxUplinks][]limits.Slot) bool {
	for i := range a {
		if !slices.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// bucketsPerUplink is for logs: uplink name -> buckets.
func (d *Daemon) bucketsPerUplink(g *group) map[string]int {
	out := map[string]int{}
	for s, n := range g.table.Count() {
		out[g.policy.UplinkName(s)] = n
	}
	return out
}

// slotOf is the uplink slot a guest of balance group g leaves through.
func (g *group) slotOf(mac net.HardwareAddr, vlan uint16) limits.Slot {
	if g.table == nil {
		return limits.NoSlot
	}
	return g.table[balance.Bucket(mac, vlan)]
}

// moveGuest is `uplinkctl move-guest`: the guest's bucket (and so every
// guest hashed to it) is pinned to the uplink while that uplink stays
// usable, and announced there.
func (d *Daemon) moveGuest(g *group, req control.MoveGuestRequest) error {
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
	b := balance.Bucket(mac, req.VLAN)
	if g.pins == nil {
		g.pins = map[int]pin{}
	}
	g.pins[b] = pin{slot: slot, operator: true}
	d.log.Info("guest moved by the operator", "group", groupName, "mac", mac, "vlan", req.VLAN, "bucket", b, "uplink", req.Uplink)
	d.rebalance(g)
	return nil
}

// minRebalanceGap: rebalancing leaves a gap between the busiest and the
// least busy uplink below this share of the group's load alone, so small
// fluctuations move no guest.
const minRebalanceGap = 0.1

// minRebalanceLoad: below this much upstream traffic (bytes/s, all the
// group's guests) there is nothing worth evening out, and the announcements
// a move costs would be most of the traffic.
const minRebalanceLoad = 100_000

// rebalanceTicks sends, every group's rebalance interval, the group's id
// on out until ctx ends.
func (d *Daemon) rebalanceTicks(ctx context.Context, out chan<- uint32) {
	for _, g := range d.groups {
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

// pin holds a bucket on a slot; the operator's (move-guest) the rebalancer
// leaves alone.
type pin struct {
	slot     limits.Slot
	operator bool
}

// onRebalanceTick measures each bucket's traffic since the last tick and
// moves up to max_buckets buckets from the busiest uplink to the least
// busy; moved buckets are pinned there (failback does not undo them) and
// their guests announced on their new uplink.
func (d *Daemon) onRebalanceTick(id uint32) {
	cur, err := d.dp.BucketBytes(id) // 256 per-CPU reads
	g := d.groupByID(id)
	if g == nil || g.table == nil {
		return
	}
	if err != nil {
		d.log.Warn("cannot read bucket load; not rebalancing", "group", g.cfg.Name, "err", err)
		return
	}
	now := time.Now()
	prev, since := g.lastBytes, g.lastBytesAt
	g.lastBytes, g.lastBytesAt = cur, now
	if prev == nil {
		return
	}
	var delta [limits.Buckets]uint64
	for b := range delta {
		if cur[b] >= prev[b] {
			delta[b] = cur[b] - prev[b]
		}
	}
	g.load = map[limits.Slot]uint64{}
	secs := now.Sub(since).Seconds()
	var total uint64
	for b, s := range g.table {
		if s != limits.NoSlot && secs > 0 {
			g.load[s] += uint64(float64(delta[b]) / secs)
			total += uint64(float64(delta[b]) / secs)
		}
	}
	if total < minRebalanceLoad {
		return
	}
	byOperator := map[int]bool{}
	for b, p := range g.pins {
		byOperator[b] = p.operator
	}
	next, moved := balance.Rebalance(*g.table, &delta, g.policy.Carriers(), byOperator, g.cfg.Rebalance.MaxBuckets, minRebalanceGap)
	if len(moved) == 0 {
		return
	}
	if g.pins == nil {
		g.pins = map[int]pin{}
	}
	for _, b := range moved {
		g.pins[b] = pin{slot: next[b]}
	}
	g.rebalances++
	d.log.Info("rebalancing", "group", g.cfg.Name, "buckets", moved, "load_bytes_per_s", g.load)
	d.rebalance(g)
}
