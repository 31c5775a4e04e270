package datapath

import (
	"github.com/uplinkd/uplinkd/pkg/balance"
	"github.com/uplinkd/uplinkd/pkg/limits"
)

// The data plane's encodings of limits.NoSlot: NO_SLOT in its maps
// (bpf/uplinkd.h), a byte in a bucket table. Its programs read any value
// past the last slot as none; these are the values the daemon writes.
// Every conversion between limits.Slot and the maps happens in this file.
const (
	mapNoSlot   = ^uint32(0)
	tableNoSlot = 0xff
)

// mapSlot encodes s for the maps; NoSlot and anything out of range
// become NO_SLOT.
func mapSlot(s limits.Slot) uint32 {
	if !s.Valid() {
		return mapNoSlot
	}
	return uint32(s)
}

// slotFromMap decodes a slot read from a map; anything past the last slot
// is NoSlot, as the programs read it.
func slotFromMap(v uint32) limits.Slot {
	if v >= limits.MaxUplinks {
		return limits.NoSlot
	}
	return limits.Slot(v)
}

// encodeTable is t as struct balance holds it: one byte per bucket.
func encodeTable(t *balance.Table) [limits.Buckets]uint8 {
	var out [limits.Buckets]uint8
	for b, s := range t {
		out[b] = tableNoSlot
		if s.Valid() {
			out[b] = uint8(s)
		}
	}
	return out
}

// decodeTable reads a bucket table written by encodeTable.
func decodeTable(in [limits.Buckets]uint8) balance.Table {
	var t balance.Table
	for b, v := range in {
		t[b] = slotFromMap(uint32(v))
	}
	return t
}
