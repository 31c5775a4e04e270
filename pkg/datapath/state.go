package datapath

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"github.com/uplinkd/uplinkd/pkg/limits"
)

// AssignGroups gives every name a group id, keeping the id a name already
// has in the pinned state (so a restarted daemon finds its active uplinks
// and learned guests), and frees the ids of groups no longer named.
func (d *Datapath) AssignGroups(names []string) (map[string]uint32, error) {
	if len(names) > limits.MaxGroups {
		return nil, fmt.Errorf("%d groups, at most %d", len(names), limits.MaxGroups)
	}
	want := make(map[string]bool, len(names))
	for _, n := range names {
		// A name may fill the field (limits.MaxGroupNameLen): groupName
		// stops at its end when there is no NUL.
		if len(n) > len(bpfSwitchGroupInfo{}.Name) {
			return nil, fmt.Errorf("group name %q too long", n)
		}
		want[n] = true
	}
	ids := make(map[string]uint32, len(names))
	var free []uint32
	for id := uint32(0); id < limits.MaxGroups; id++ {
		var gi bpfSwitchGroupInfo
		if err := d.objs.Groups.Lookup(id, &gi); err != nil {
			return nil, fmt.Errorf("read groups: %w", err)
		}
		name := groupName(gi)
		switch {
		case gi.InUse != 0 && want[name]:
			ids[name] = id
		case gi.InUse != 0:
			if err := d.releaseGroup(id); err != nil {
				return nil, err
			}
			free = append(free, id)
		default:
			free = append(free, id)
		}
	}
	for _, n := range names {
		if _, ok := ids[n]; ok {
			continue
		}
		id := free[0]
		free = free[1:]
		var gi bpfSwitchGroupInfo
		for i := range len(n) {
			gi.Name[i] = int8(n[i])
		}
		gi.InUse = 1
		// A fresh group has no active uplink until the policy picks one.
		if err := d.objs.Active.Put(id, mapNoSlot); err != nil {
			return nil, fmt.Errorf("init active[%d]: %w", id, err)
		}
		if err := d.objs.Groups.Put(id, gi); err != nil {
			return nil, fmt.Errorf("write groups: %w", err)
		}
		ids[n] = id
	}
	return ids, nil
}

func (d *Datapath) releaseGroup(id uint32) error {
	if err := d.objs.Active.Put(id, mapNoSlot); err != nil {
		return fmt.Errorf("release group %d: %w", id, err)
	}
	for slot := range limits.Slot(limits.MaxUplinks) {
		_ = d.fillUplinkSlot(uplinkKey(id, slot), 0)
	}
	if err := d.objs.Groups.Put(id, bpfSwitchGroupInfo{}); err != nil {
		return fmt.Errorf("release group %d: %w", id, err)
	}
	return nil
}

func groupName(gi bpfSwitchGroupInfo) string {
	b := make([]byte, 0, len(gi.Name))
	for _, c := range gi.Name {
		if c == 0 {
			break
		}
		b = append(b, byte(c))
	}
	return string(b)
}

// SetActive points a group's guests at the uplink in slot (or at none,
// with NoSlot). This one write moves every guest of the group. The uplink
// active until now keeps delivering unicast to known guests for DrainTime
// (make before break: the upstream still sends there until it relearns).
func (d *Datapath) SetActive(group uint32, slot limits.Slot) error {
	if slot != limits.NoSlot && !slot.Valid() {
		return fmt.Errorf("set active: slot %d out of range", slot)
	}
	if prev, err := d.ActiveSlot(group); err == nil && prev != slot && prev != limits.NoSlot && d.DrainTime > 0 {
		now, err := monotonicNow()
		if err != nil {
			return err
		}
		dr := bpfSwitchDrain{Slot: mapSlot(prev), UntilNs: now + uint64(d.DrainTime)}
		if err := d.objs.Draining.Put(group, dr); err != nil {
			return fmt.Errorf("set draining[%d]: %w", group, err)
		}
	}
	if err := d.objs.Active.Put(group, mapSlot(slot)); err != nil {
		return fmt.Errorf("set active[%d]=%d: %w", group, slot, err)
	}
	return nil
}

// ActiveSlot reads a group's active slot (NoSlot when none).
func (d *Datapath) ActiveSlot(group uint32) (limits.Slot, error) {
	var v uint32
	if err := d.objs.Active.Lookup(group, &v); err != nil {
		return limits.NoSlot, fmt.Errorf("read active[%d]: %w", group, err)
	}
	return slotFromMap(v), nil
}

// UplinkIfindex is the interface in a group's uplink slot, 0 when empty.
func (d *Datapath) UplinkIfindex(group uint32, slot limits.Slot) (int, error) {
	var ifindex uint32
	if err := d.objs.UplinkIfs.Lookup(uplinkKey(group, slot), &ifindex); err != nil {
		return 0, fmt.Errorf("read uplink_ifs: %w", err)
	}
	return int(ifindex), nil
}

// FDBEntry is one learned guest address.
type FDBEntry struct {
	Group   uint32
	VLAN    uint16
	MAC     net.HardwareAddr
	Ifindex int
	Age     time.Duration // since the data plane last refreshed it
}

// FDB lists the learned guests.
func (d *Datapath) FDB() ([]FDBEntry, error) {
	now, err := monotonicNow()
	if err != nil {
		return nil, err
	}
	var (
		k   bpfSwitchFdbKey
		v   bpfSwitchFdbEntry
		out []FDBEntry
	)
	it := d.objs.Fdb.Iterate()
	for it.Next(&k, &v) {
		out = append(out, FDBEntry{
			Group:   k.Group,
			VLAN:    k.Vlan,
			MAC:     append(net.HardwareAddr(nil), k.Mac[:]...),
			Ifindex: int(v.Ifindex),
			Age:     age(now, v.SeenNs),
		})
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read fdb: %w", err)
	}
	return out, nil
}

// Neighbour is an address a guest has used as source.
type Neighbour struct {
	Group uint32
	VLAN  uint16
	MAC   net.HardwareAddr
	Addr  netip.Addr
	Age   time.Duration
}

// Neighbours lists the learned guest addresses.
func (d *Datapath) Neighbours() ([]Neighbour, error) {
	now, err := monotonicNow()
	if err != nil {
		return nil, err
	}
	var (
		k   bpfSwitchNeighKey
		v   bpfSwitchNeighEntry
		out []Neighbour
	)
	it := d.objs.Neigh.Iterate()
	for it.Next(&k, &v) {
		var addr netip.Addr
		switch k.Family {
		case 4:
			addr = netip.AddrFrom4([4]byte(k.Addr[:4]))
		case 6:
			addr = netip.AddrFrom16(k.Addr)
		default:
			continue
		}
		out = append(out, Neighbour{
			Group: k.Group,
			VLAN:  k.Vlan,
			MAC:   append(net.HardwareAddr(nil), v.Mac[:]...),
			Addr:  addr,
			Age:   age(now, v.SeenNs),
		})
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read neigh: %w", err)
	}
	return out, nil
}

// Guest is a learned guest with the addresses it has used as source.
type Guest struct {
	FDBEntry
	Addrs []netip.Addr // sorted
}

// Guests joins the FDB with the neighbour table.
func (d *Datapath) Guests() ([]Guest, error) {
	fdb, err := d.FDB()
	if err != nil {
		return nil, err
	}
	neigh, err := d.Neighbours()
	if err != nil {
		return nil, err
	}
	type key struct {
		group uint32
		vlan  uint16
		mac   string
	}
	addrs := map[key][]netip.Addr{}
	for _, n := range neigh {
		k := key{n.Group, n.VLAN, n.MAC.String()}
		addrs[k] = append(addrs[k], n.Addr)
	}
	out := make([]Guest, 0, len(fdb))
	for _, e := range fdb {
		as := addrs[key{e.Group, e.VLAN, e.MAC.String()}]
		slices.SortFunc(as, netip.Addr.Compare)
		out = append(out, Guest{FDBEntry: e, Addrs: as})
	}
	return out, nil
}

// PortStats are one port's counters, summed over CPUs.
type PortStats struct {
	RxPackets, RxBytes uint64
	TxPackets, TxBytes uint64
	HostPackets        uint64 // handed to the host stack
	LearnRefused       uint64 // new MACs not learned: max_macs reached, or locked to another port
	Drops              map[DropReason]uint64
}

// Stats reads the counters of the port on ifindex.
func (d *Datapath) Stats(ifindex int) (PortStats, error) {
	var info bpfSwitchPortInfo
	if err := d.objs.Ports.Lookup(uint32(ifindex), &info); err != nil {
		return PortStats{}, fmt.Errorf("port %d: %w", ifindex, err)
	}
	var perCPU []bpfSwitchPortStats
	if err := d.objs.Stats.Lookup(info.Id, &perCPU); err != nil {
		return PortStats{}, fmt.Errorf("read stats[%d]: %w", info.Id, err)
	}
	out := PortStats{Drops: make(map[DropReason]uint64, dropReasons)}
	for _, s := range perCPU {
		out.RxPackets += s.RxPackets
		out.RxBytes += s.RxBytes
		out.TxPackets += s.TxPackets
		out.TxBytes += s.TxBytes
		out.HostPackets += s.HostPackets
		out.LearnRefused += s.LearnRefused
		for r := range dropReasons {
			out.Drops[DropReason(r)] += s.Drops[r]
		}
	}
	return out, nil
}

// TotalDrops sums the drops of every reason.
func (s PortStats) TotalDrops() uint64 {
	var n uint64
	for _, v := range s.Drops {
		n += v
	}
	return n
}

// monotonicNow reads the clock bpf_ktime_get_ns uses.
func monotonicNow() (uint64, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0, fmt.Errorf("clock_gettime: %w", err)
	}
	return uint64(ts.Nano()), nil
}

func age(now, seen uint64) time.Duration {
	if seen > now {
		return 0
	}
	return time.Duration(now - seen)
}

// RecountLearned sets every guest port's count of learned MACs (which
// max_macs bounds) from the FDB: entries that aged out of the LRU or were
// deleted are not seen by the data plane's own count.
func (d *Datapath) RecountLearned() error {
	counts := make([]uint32, limits.MaxPorts)
	var (
		k bpfSwitchFdbKey
		v bpfSwitchFdbEntry
	)
	it := d.objs.Fdb.Iterate()
	for it.Next(&k, &v) {
		if v.PortId < limits.MaxPorts {
			counts[v.PortId]++
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("read fdb: %w", err)
	}
	for id, n := range counts {
		if err := d.objs.LearnedMacs.Put(uint32(id), n); err != nil {
			return fmt.Errorf("write learned_macs[%d]: %w", id, err)
		}
	}
	return nil
}
