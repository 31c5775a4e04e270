package datapath

import (
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/uplinkd/uplinkd/pkg/limits"
	"golang.org/x/sys/unix"
)

// TestMigratePinnedMaps: a data plane pinned by an older uplinkd whose map
// layouts differ (a balance entry before the alternatives were appended,
// a smaller FDB, per-CPU counters of another size) is taken over: kept
// entries keep their fields and read zero in the new ones, and maps that
// cannot be copied start empty.
func TestMigratePinnedMaps(t *testing.T) {
	root := t.TempDir()
	if err := unix.Mount("bpf", root, "bpf", 0, "mode=0700"); err != nil {
		t.Skipf("mount bpffs: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(root, unix.MNT_DETACH) })
	pin := filepath.Join(root, "uplinkd")
	if err := os.Mkdir(pin, 0o700); err != nil {
		t.Fatal(err)
	}
	pinned := func(name string, spec *ebpf.MapSpec) *ebpf.Map {
		t.Helper()
		spec.Name = name
		m, err := ebpf.NewMap(spec)
		if err != nil {
			t.Fatalf("old %s: %v", name, err)
		}
		if err := m.Pin(filepath.Join(pin, name)); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		return m
	}
	// balances before alt_n/alt: mode, down, 256 slots.
	oldBal := pinned("balances", &ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 264, MaxEntries: limits.MaxGroups})
	val := make([]byte, 264)
	val[0] = 1   // mode balance
	val[8+5] = 2 // bucket 5 -> slot 2
	if err := oldBal.Put(uint32(3), val); err != nil {
		t.Fatal(err)
	}
	// An FDB with fewer entries, one guest in it.
	oldFDB := pinned("fdb", &ebpf.MapSpec{Type: ebpf.LRUHash, KeySize: 12, ValueSize: 16, MaxEntries: 1024})
	key := []byte{0, 0, 0, 0, 0, 0, 0x02, 0, 0, 0, 0, 0x0a}
	if err := oldFDB.Put(key, make([]byte, 16)); err != nil {
		t.Fatal(err)
	}
	// Counters of an older layout, which cannot be copied: the new map
	// starts empty.
	oldStats := pinned("stats", &ebpf.MapSpec{Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: 16})
	perCPU := make([]uint64, ebpf.MustPossibleCPU())
	for i := range perCPU {
		perCPU[i] = 77
	}
	if err := oldStats.Put(uint32(1), perCPU); err != nil {
		t.Fatal(err)
	}

	dp, err := Open(pin, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		t.Fatalf("Open over the old layout: %v", err)
	}
	defer dp.Close()
	tab, down, ok, err := dp.Balance(3)
	if err != nil || !ok || tab[5] != 2 || down != 0 {
		t.Errorf("balance entry after migration: ok %t, slot of bucket 5 = %d, down %#x, %v", ok, tab[5], down, err)
	}
	var v bpfSwitchBalance
	if err := dp.objs.Balances.Lookup(uint32(3), &v); err != nil || v.AltN != [8]uint8{} {
		t.Errorf("appended fields %v, %v: want zero", v.AltN, err)
	}
	fdb, err := dp.FDB()
	if err != nil || len(fdb) != 1 || fdb[0].MAC.String() != "02:00:00:00:00:0a" {
		t.Errorf("FDB after migration: %+v, %v", fdb, err)
	}
	var st []bpfSwitchPortStats
	if err := dp.objs.Stats.Lookup(uint32(1), &st); err != nil || slices.ContainsFunc(st, func(s bpfSwitchPortStats) bool { return s != bpfSwitchPortStats{} }) {
		t.Errorf("stats after migration: %+v, %v; want a fresh (zero) map", st, err)
	}
	if dp.objs.Fdb.MaxEntries() != 65536 || dp.objs.Stats.ValueSize() == 8 {
		t.Errorf("maps not in this version's layout: fdb %d entries, stats value %d bytes", dp.objs.Fdb.MaxEntries(), dp.objs.Stats.ValueSize())
	}
}
