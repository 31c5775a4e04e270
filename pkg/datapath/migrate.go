package datapath

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"
)

// migratePinned replaces every pinned map whose layout differs from the
// one this build needs, so a new uplinkd can take over a data plane left
// by an older one instead of refusing to start. The entries of a hash or
// array map move over when the key is unchanged and the value kept or
// grew (this project's layout changes append fields: a new field reads
// zero), and the per-CPU port counters of a known older layout move field
// by field (statsLayouts); the others start empty. Programs still
// attached keep the old map until the daemon swaps them (link.Update),
// moments later: what they count in between is not carried over.
func migratePinned(spec *ebpf.CollectionSpec, pinDir string, log *slog.Logger) error {
	for name, ms := range spec.Maps {
		if ms.Pinning != ebpf.PinByName {
			continue
		}
		path := filepath.Join(pinDir, name)
		old, err := ebpf.LoadPinnedMap(path, nil)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("pinned map %s: %w", name, err)
		}
		if ms.Compatible(old) == nil { // cilium/ebpf's own test when it adopts a pin
			old.Close()
			continue
		}
		kept, err := migrateMap(old, ms, path)
		old.Close()
		if err != nil {
			return fmt.Errorf("migrate pinned map %s: %w", name, err)
		}
		log.Warn("migrated a pinned map to this version's layout", "map", name,
			"value_size", fmt.Sprintf("%d -> %d", old.ValueSize(), ms.ValueSize),
			"max_entries", fmt.Sprintf("%d -> %d", old.MaxEntries(), ms.MaxEntries), "entries_kept", kept)
	}
	return nil
}

// retiredMaps are maps an older uplinkd pinned that this one no longer
// has: the XDP data plane's devmaps (ports_tx, uplinks) and its record of
// the uplinks' devices (uplink_devs). Their pins are removed at load and
// by Remove; programs of the older data plane still attached keep the
// maps themselves until the tc programs replace them.
var retiredMaps = []string{"ports_tx", "uplinks", "uplink_devs"}

// removeRetiredPins deletes the pins of retiredMaps under pinDir. A pin
// that cannot be removed only leaves a stale file: logged, not fatal.
func removeRetiredPins(pinDir string, log *slog.Logger) {
	for _, name := range retiredMaps {
		err := os.Remove(filepath.Join(pinDir, name))
		switch {
		case err == nil:
			log.Info("removed the pin of a map this version no longer uses", "map", name)
		case !errors.Is(err, os.ErrNotExist):
			log.Warn("could not remove the pin of a retired map", "map", name, "err", err)
		}
	}
}

// statsLayouts are the layouts struct port_stats had in earlier versions,
// by value size: how many drop reasons drops[] held, and whether
// learn_refused followed it. Drop reasons are only ever appended, so an
// older version's reason i is this one's reason i.
var statsLayouts = map[uint32]statsLayout{
	88: {drops: 6},                     // before learn_refused
	96: {drops: 6, learnRefused: true}, // before DropMTU, DropNoDestination
}

type statsLayout struct {
	drops        int
	learnRefused bool
}

// statsHead counts the port_stats fields before drops[]: rx and tx
// packets and bytes, host_packets.
const statsHead = 5

// convertibleStats is the older layout of old when old is the per-CPU
// stats map of an earlier version and ms this version's, else nil.
func convertibleStats(old *ebpf.Map, ms *ebpf.MapSpec) *statsLayout {
	if ms.Name != "stats" || ms.Type != ebpf.PerCPUArray || old.Type() != ms.Type ||
		old.KeySize() != ms.KeySize || ms.ValueSize != 8*(statsHead+uint32(dropReasons)+1) {
		return nil
	}
	l, ok := statsLayouts[old.ValueSize()]
	if !ok || l.drops > dropReasons {
		return nil
	}
	return &l
}

// copyStats copies every port's per-CPU counters from old (in layout l)
// into m (this version's), each field to its own place: the drop reasons
// this version added start at zero.
func copyStats(old, m *ebpf.Map, l *statsLayout) (int, error) {
	cpus, err := ebpf.PossibleCPU()
	if err != nil {
		return 0, err
	}
	oldWords := int(old.ValueSize() / 8)
	kept := 0
	for key := uint32(0); key < min(old.MaxEntries(), m.MaxEntries()); key++ {
		from := make([][]uint64, cpus)
		for i := range from {
			from[i] = make([]uint64, oldWords)
		}
		if err := old.Lookup(key, from); err != nil {
			return kept, fmt.Errorf("read entry %d: %w", key, err)
		}
		to := make([]bpfSwitchPortStats, cpus)
		nonzero := false
		for i, w := range from {
			to[i].RxPackets, to[i].RxBytes, to[i].TxPackets, to[i].TxBytes, to[i].HostPackets = w[0], w[1], w[2], w[3], w[4]
			copy(to[i].Drops[:], w[statsHead:statsHead+l.drops])
			if l.learnRefused {
				to[i].LearnRefused = w[statsHead+l.drops]
			}
			nonzero = nonzero || to[i] != bpfSwitchPortStats{}
		}
		if !nonzero {
			continue
		}
		if err := m.Put(key, to); err != nil {
			return kept, fmt.Errorf("write entry %d: %w", key, err)
		}
		kept++
	}
	return kept, nil
}

// migrateMap creates the map ms describes, copies what old's entries can
// give it, and pins it at path in old's place.
func migrateMap(old *ebpf.Map, ms *ebpf.MapSpec, path string) (int, error) {
	fresh := ms.Copy()
	fresh.Pinning = ebpf.PinNone
	m, err := ebpf.NewMap(fresh)
	if err != nil {
		return 0, err
	}
	defer m.Close()
	kept := 0
	copyable := (ms.Type == ebpf.Hash || ms.Type == ebpf.LRUHash || ms.Type == ebpf.Array) &&
		old.Type() == ms.Type && old.KeySize() == ms.KeySize && old.ValueSize() <= ms.ValueSize
	if stats := convertibleStats(old, ms); stats != nil {
		n, err := copyStats(old, m, stats)
		kept += n
		if err != nil {
			return kept, err
		}
	}
	if copyable {
		key, val := make([]byte, old.KeySize()), make([]byte, old.ValueSize())
		it := old.Iterate()
		for it.Next(&key, &val) && kept < int(ms.MaxEntries) {
			grown := make([]byte, ms.ValueSize)
			copy(grown, val)
			if err := m.Put(key, grown); err != nil {
				continue // e.g. an array index beyond the new size
			}
			kept++
		}
		if err := it.Err(); err != nil {
			return kept, err
		}
	}
	if err := os.Remove(path); err != nil {
		return kept, err
	}
	return kept, m.Pin(path)
}
