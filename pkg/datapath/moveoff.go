package datapath

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"

	"github.com/uplinkd/uplinkd/pkg/limits"
)

// SetFallback gives the order in which a group's uplinks may take over,
// best first (only usable ones): the in-kernel failover paths and MoveOff
// pick from it. An empty order makes them stand aside (the daemon then
// decides, e.g. while a down-delay runs). It also forgets the slots they
// found dead: the daemon's order reflects the carriers it knows. A slot
// the kernel marks dead during the write may be forgotten too; its next
// guest frame marks it again.
func (d *Datapath) SetFallback(group uint32, slots []limits.Slot) error {
	d.fallbackMu.Lock()
	defer d.fallbackMu.Unlock()
	var fb bpfFailoverFallback
	for _, s := range slots {
		if int(fb.Count) < len(fb.Slots) && s.Valid() {
			fb.Slots[fb.Count] = mapSlot(s)
			fb.Count++
		}
	}
	if err := d.objs.Fallbacks.Put(group, fb); err != nil {
		return fmt.Errorf("set fallbacks[%d]: %w", group, err)
	}
	return nil
}

// MoveOff moves group off slot from to the first slot of its fallback
// order not found dead, if from is still its active slot: the kernel
// paths' move, for the daemon's carrier poll, which sees a loss they did
// not (no guest traffic at that moment, no carrier hook). Like them it
// first marks from dead in the order, so a second failure before the
// daemon's next order does not move the group back to from. It is not
// atomic with their compare-and-swap, but all of them pick from the same
// order, so a race writes the same slot. No drain: the old uplink is dead.
//
// In a balance group the slot is also marked down, which moves its buckets
// (see bpf/balance.h), and moved reports that too.
//
// to is the group's new active slot, NoSlot when the active slot did not
// move.
func (d *Datapath) MoveOff(group uint32, from limits.Slot) (to limits.Slot, moved bool, err error) {
	if !from.Valid() {
		return limits.NoSlot, false, fmt.Errorf("move off slot %d: out of range", from)
	}
	// As the kernel's move_group: no fallback order (a down-delay runs),
	// no move; the daemon decides.
	fb, err := d.markDead(group, from)
	if err != nil {
		return limits.NoSlot, false, err
	}
	if fb.Count == 0 {
		return limits.NoSlot, false, nil
	}
	if moved, err = d.markDown(group, from); err != nil {
		return limits.NoSlot, false, err
	}
	cur, err := d.ActiveSlot(group)
	if err != nil {
		return limits.NoSlot, moved, err
	}
	if cur != from {
		return limits.NoSlot, moved, nil
	}
	for _, v := range fb.Slots[:min(fb.Count, uint32(len(fb.Slots)))] {
		if s := slotFromMap(v); s.Valid() && fb.Dead&(1<<s) == 0 {
			if err := d.objs.Active.Put(group, mapSlot(s)); err != nil {
				return limits.NoSlot, moved, fmt.Errorf("set active[%d]=%d: %w", group, s, err)
			}
			return s, true, nil
		}
	}
	return limits.NoSlot, moved, nil
}

// markDead sets slot's dead bit in group's fallback order, if it has one,
// and returns the order with it. Ordered with SetFallback, so it never
// puts back an order the daemon replaced; not atomic with the kernel's
// fetch-and-or of another slot's bit, which can be lost: the kernel then
// may pick that slot once more, and its egress marks it again.
func (d *Datapath) markDead(group uint32, slot limits.Slot) (bpfFailoverFallback, error) {
	d.fallbackMu.Lock()
	defer d.fallbackMu.Unlock()
	var fb bpfFailoverFallback
	if err := d.objs.Fallbacks.Lookup(group, &fb); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fb, fmt.Errorf("read fallbacks[%d]: %w", group, err)
	}
	if fb.Count == 0 || fb.Dead&(1<<slot) != 0 {
		return fb, nil
	}
	fb.Dead |= 1 << slot
	if err := d.objs.Fallbacks.Put(group, fb); err != nil {
		return fb, fmt.Errorf("mark slot %d dead in fallbacks[%d]: %w", slot, group, err)
	}
	return fb, nil
}

// markDown sets slot's down bit in a balance group's entry; marked is
// false for an active-backup group or a slot already down. Ordered with
// SetBalance; not atomic with the kernel's fetch-and-or of another slot's
// bit, which the daemon's next table write settles.
func (d *Datapath) markDown(group uint32, slot limits.Slot) (marked bool, err error) {
	d.balanceMu.Lock()
	defer d.balanceMu.Unlock()
	var bal bpfSwitchBalance
	if err := d.objs.Balances.Lookup(group, &bal); err != nil || bal.Mode != uint32(bpfSwitchGroupModeMODE_BALANCE) || bal.Down&(1<<slot) != 0 {
		return false, nil
	}
	bal.Down |= 1 << slot
	if err := d.objs.Balances.Put(group, bal); err != nil {
		return false, fmt.Errorf("set balances[%d]: %w", group, err)
	}
	return true, nil
}
