// Package balance spreads the guests of a balance group over its usable
// uplinks. Each guest (source MAC and VLAN) hashes to one of
// limits.Buckets buckets and each bucket is pinned to one uplink slot, so a guest's frames
// always leave through one uplink (no reordering, one MAC behind one
// upstream port) and a failed uplink's guests move without the others
// noticing. Pure policy: no system calls.
package balance

import (
	"net"
	"slices"

	"github.com/uplinkd/uplinkd/pkg/limits"
)

// Table maps each bucket to a slot, NoSlot for a bucket with no usable
// uplink.
type Table [limits.Buckets]limits.Slot

// Bucket is the bucket of a guest, as the data plane computes it
// (bucket_of in bpf/balance.h): FNV-1a over the MAC and the VLAN
// (big-endian), folded to 8 bits.
func Bucket(mac net.HardwareAddr, vlan uint16) int {
	var key [8]byte
	copy(key[:6], mac)
	key[6], key[7] = byte(vlan>>8), byte(vlan)
	h := uint32(2166136261)
	for _, b := range key {
		h = (h ^ uint32(b)) * 16777619
	}
	return int((h ^ h>>8 ^ h>>16 ^ h>>24) & (limits.Buckets - 1))
}

// Assign returns the table for the uplinks usable now.
//
// usable are the usable slots, best first; home are the group's slots in
// configuration order, and a bucket's home is home[b mod len(home)], which
// spreads the buckets evenly while every uplink works. A bucket keeps the
// slot it has in prev (nil: none yet) while that slot is usable, so a
// change moves only the buckets it must; with failback, a bucket whose
// home is usable goes back there. Any other bucket goes home if it can,
// else to usable[b mod len(usable)]: a failed uplink's buckets spread
// over the rest, in the order the data plane's interim choice uses
// (balance_slot), so the daemon's rewrite moves nothing again.
func Assign(prev *Table, usable, home []limits.Slot, failback bool) Table {
	var t Table
	ok := make(map[limits.Slot]bool, len(usable))
	for _, s := range usable {
		ok[s] = true
	}
	for b := range t {
		homeSlot := limits.NoSlot
		if len(home) > 0 {
			homeSlot = home[b%len(home)]
		}
		switch {
		case len(usable) == 0:
			t[b] = limits.NoSlot
		case failback && ok[homeSlot]:
			t[b] = homeSlot
		case prev != nil && prev[b] != limits.NoSlot && ok[prev[b]]:
			t[b] = prev[b]
		case ok[homeSlot]:
			t[b] = homeSlot
		default:
			t[b] = usable[b%len(usable)]
		}
	}
	return t
}

// Alternatives lists, for each slot, where its buckets go while the data
// plane has it marked down and the daemon has not yet rewritten the table
// (alt[s][b mod len(alt[s])]): the other carriers in order, which is what
// Assign gives those buckets once s is no longer usable (their home being
// s). A slot that is the only carrier falls back to the other fallback
// uplinks (standby-only ones).
func Alternatives(carriers, fallback []limits.Slot) [limits.MaxUplinks][]limits.Slot {
	var alt [limits.MaxUplinks][]limits.Slot
	for s := range limits.Slot(limits.MaxUplinks) {
		alt[s] = slices.DeleteFunc(slices.Clone(carriers), func(x limits.Slot) bool { return x == s })
		if len(alt[s]) == 0 {
			alt[s] = slices.DeleteFunc(slices.Clone(fallback), func(x limits.Slot) bool { return x == s })
		}
	}
	return alt
}

// Moved lists the buckets whose slot differs between a and b.
func Moved(a, b *Table) []int {
	var out []int
	for i := range a {
		if a[i] != b[i] {
			out = append(out, i)
		}
	}
	return out
}

// Count is the number of buckets per slot.
func (t *Table) Count() map[limits.Slot]int {
	n := map[limits.Slot]int{}
	for _, s := range t {
		if s != limits.NoSlot {
			n[s]++
		}
	}
	return n
}

// Rebalance evens out the load of a balance group's carriers: it moves up
// to maxMoves buckets, one at a time, from the busiest carrier to the
// least busy, each time the heaviest bucket whose move narrows the gap
// (its load is below the gap), and stops once the gap is under minGap of
// the total load (no churn for a small imbalance). load is each bucket's
// load over the last interval (bytes); buckets in fixed (the operator's
// pins) are never moved. It returns the new table and the buckets it
// moved, in order.
func Rebalance(t Table, load *[limits.Buckets]uint64, carriers []limits.Slot, fixed map[int]bool, maxMoves int, minGap float64) (Table, []int) {
	if len(carriers) < 2 {
		return t, nil
	}
	per := map[limits.Slot]uint64{}
	var total uint64
	for b, s := range t {
		per[s] += load[b]
		if slices.Contains(carriers, s) {
			total += load[b]
		}
	}
	var moved []int
	for len(moved) < maxMoves {
		busy, idle := carriers[0], carriers[0]
		for _, s := range carriers {
			if per[s] > per[busy] {
				busy = s
			}
			if per[s] < per[idle] {
				idle = s
			}
		}
		gap := per[busy] - per[idle]
		if total == 0 || float64(gap) < minGap*float64(total) {
			break
		}
		best := -1
		for b, s := range t {
			if s == busy && !fixed[b] && load[b] > 0 && load[b] < gap && (best < 0 || load[b] > load[best]) {
				best = b
			}
		}
		if best < 0 {
			break
		}
		t[best] = idle
		per[busy] -= load[best]
		per[idle] += load[best]
		moved = append(moved, best)
	}
	return t, moved
}
