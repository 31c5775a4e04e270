package balance

import (
	"net"
	"slices"
	"testing"

	"github.com/uplinkd/uplinkd/pkg/limits"
)

func TestAssign(t *testing.T) {
	home := []limits.Slot{0, 1, 2}
	start := Assign(nil, []limits.Slot{0, 1, 2}, home, true)
	if c := start.Count(); c[0] != 86 || c[1] != 85 || c[2] != 85 {
		t.Fatalf("initial spread %v, want 86/85/85", c)
	}

	// Slot 1 fails: only its buckets move, spread over 0 and 2 as the
	// data plane's interim choice (usable[b mod n]) spreads them.
	failed := Assign(&start, []limits.Slot{2, 0}, home, true)
	moved := Moved(&start, &failed)
	if len(moved) != 85 {
		t.Errorf("%d buckets moved, want slot 1's 85", len(moved))
	}
	for _, b := range moved {
		if start[b] != 1 || failed[b] != []limits.Slot{2, 0}[b%2] {
			t.Errorf("bucket %d: %d -> %d, want 1 -> %d", b, start[b], failed[b], []limits.Slot{2, 0}[b%2])
		}
	}
	if c := failed.Count(); c[1] != 0 || c[0] < 120 || c[2] < 120 {
		t.Errorf("after the failure %v: slot 1's buckets not spread", c)
	}

	// Back, with failback: home again. Without: nothing moves.
	if back := Assign(&failed, []limits.Slot{0, 1, 2}, home, true); back != start {
		t.Errorf("failback did not restore the initial table: %d differ", len(Moved(&back, &start)))
	}
	if kept := Assign(&failed, []limits.Slot{0, 1, 2}, home, false); kept != failed {
		t.Errorf("without failback %d buckets moved back", len(Moved(&kept, &failed)))
	}
	// Without failback a newly usable uplink gets nothing, but buckets
	// that had nowhere to go go home.
	none := Assign(&start, nil, home, false)
	if c := none.Count(); len(c) != 0 || none[0] != limits.NoSlot {
		t.Errorf("nothing usable: %v", c)
	}
	if again := Assign(&none, []limits.Slot{0, 1, 2}, home, false); again != start {
		t.Errorf("from nothing: %d buckets not home", len(Moved(&again, &start)))
	}
}

// The hash is the data plane's: a few values are pinned here so a change
// of Bucket alone shows (TestBalance in pkg/datapath checks that the BPF
// side puts guests where Bucket says).
func TestBucket(t *testing.T) {
	mac := net.HardwareAddr{0x02, 0, 0, 0, 0, 0x0a}
	seen := map[int]bool{}
	for v := range uint16(64) {
		b := Bucket(mac, v)
		if b < 0 || b >= limits.Buckets {
			t.Fatalf("bucket %d out of range", b)
		}
		seen[b] = true
	}
	if len(seen) < 50 {
		t.Errorf("64 VLANs of one MAC fall into %d buckets: the hash does not spread", len(seen))
	}
	for vlan, want := range map[uint16]int{0: 201, 1: 64, 100: 181} {
		if got := Bucket(mac, vlan); got != want {
			t.Errorf("Bucket(%s, %d) = %d, want %d (FNV-1a of MAC and VLAN, folded)", mac, vlan, got, want)
		}
	}
}

func TestRebalance(t *testing.T) {
	slots := []limits.Slot{0, 1, 2}
	base := Assign(nil, slots, slots, true)
	var load [limits.Buckets]uint64
	// Slot 0 carries two heavy buckets and slot 2 one light one; slot 1
	// nothing.
	heavy := []int{0, 3} // home slot 0
	for _, b := range heavy {
		load[b] = 1000
	}
	load[2] = 100 // home slot 2

	got, moved := Rebalance(base, &load, slots, nil, 4, 0.1)
	if len(moved) != 1 || got[moved[0]] != 1 || base[moved[0]] != 0 {
		t.Fatalf("moved %v (%v), want one heavy bucket from slot 0 to slot 1", moved, got.Count())
	}
	// The operator's pin holds: with that bucket fixed, the other moves.
	if _, m := Rebalance(base, &load, slots, map[int]bool{moved[0]: true}, 4, 0.1); len(m) != 1 || m[0] == moved[0] || !slices.Contains(heavy, m[0]) {
		t.Errorf("with bucket %d fixed, moved %v; want the other heavy bucket", moved[0], m)
	}
	// Balanced now (1000 / 1000 / 100): a second pass moves nothing that
	// would not just swap the imbalance, and the cap holds.
	if _, again := Rebalance(got, &load, slots, nil, 4, 0.1); len(again) != 0 {
		t.Errorf("second pass moved %v", again)
	}
	// A bucket heavier than the gap is never moved (it would only move
	// the hot spot).
	var one [limits.Buckets]uint64
	one[0] = 5000
	if _, m := Rebalance(base, &one, slots, nil, 4, 0.1); len(m) != 0 {
		t.Errorf("a single hot bucket moved: %v", m)
	}
	// Small imbalance: under minGap, nothing moves.
	var even [limits.Buckets]uint64
	for b := range even {
		even[b] = 10
	}
	even[0] = 12
	if _, m := Rebalance(base, &even, slots, nil, 4, 0.1); len(m) != 0 {
		t.Errorf("moved %v for a tiny imbalance", m)
	}
	// At most maxMoves.
	var skew [limits.Buckets]uint64
	for b := range skew {
		if base[b] == 0 {
			skew[b] = 100
		}
	}
	if _, m := Rebalance(base, &skew, slots, nil, 3, 0.01); len(m) != 3 {
		t.Errorf("moved %d, want the cap of 3", len(m))
	}
	// One carrier: nothing to do.
	if _, m := Rebalance(base, &skew, []limits.Slot{0}, nil, 4, 0.01); m != nil {
		t.Errorf("one carrier: moved %v", m)
	}
}
