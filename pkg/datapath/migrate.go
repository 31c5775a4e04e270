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
// zero); the others start empty: per-CPU counters restart, ring buffers
// are refilled by the daemon. Programs still attached keep the old map
// until the daemon swaps them (link.Update), moments later.
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
