package datapath

import (
	"fmt"

	"github.com/uplinkd/uplinkd/pkg/balance"
	"github.com/uplinkd/uplinkd/pkg/limits"
)

// SetBalance puts a group in balance mode with table t (bucket -> slot)
// and the alternatives of each slot while it is marked down (see
// balance.Alternatives), or back in active-backup mode with t nil, and
// clears the slots marked down: the table is the daemon's answer to them.
// A slot the kernel marks down between the daemon's read and this write is
// cleared too; the next frame bound for it finds the carrier gone and
// marks it again.
func (d *Datapath) SetBalance(group uint32, t *balance.Table, alt [limits.MaxUplinks][]limits.Slot) error {
	var v bpfSwitchBalance
	if t != nil {
		v.Mode = uint32(bpfSwitchGroupModeMODE_BALANCE)
		v.Slots = encodeTable(t)
		for s, list := range alt {
			for _, a := range list {
				if int(v.AltN[s]) < len(v.Alt[s]) && a.Valid() {
					v.Alt[s][v.AltN[s]] = uint8(a)
					v.AltN[s]++
				}
			}
		}
	}
	d.balanceMu.Lock()
	defer d.balanceMu.Unlock()
	if err := d.objs.Balances.Put(group, v); err != nil {
		return fmt.Errorf("set balances[%d]: %w", group, err)
	}
	return nil
}

// Balance reads a group's bucket table and the slots the kernel marked
// down since the last SetBalance; ok is false for an active-backup group.
func (d *Datapath) Balance(group uint32) (t balance.Table, down uint32, ok bool, err error) {
	var v bpfSwitchBalance
	if err := d.objs.Balances.Lookup(group, &v); err != nil {
		return t, 0, false, fmt.Errorf("read balances[%d]: %w", group, err)
	}
	return decodeTable(v.Slots), v.Down, v.Mode == uint32(bpfSwitchGroupModeMODE_BALANCE), nil
}

// BucketBytes reads the bytes each bucket of a balance group sent
// upstream since the data plane was loaded (all CPUs together).
func (d *Datapath) BucketBytes(group uint32) (*[limits.Buckets]uint64, error) {
	var out [limits.Buckets]uint64
	var perCPU []uint64
	for b := range out {
		k := group*limits.Buckets + uint32(b)
		if err := d.objs.BucketBytes.Lookup(k, &perCPU); err != nil {
			return nil, fmt.Errorf("read bucket_bytes[%d]: %w", k, err)
		}
		for _, v := range perCPU {
			out[b] += v
		}
	}
	return &out, nil
}
