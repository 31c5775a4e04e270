package datapath

import (
	"bufio"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
)

// architectureDoc holds the table of every map the product's BPF objects
// declare, under mapTableHeading.
const (
	architectureDoc = "../../docs/ARCHITECTURE.md"
	mapTableHeading = "## Maps"
)

// docMap is one row of the map table: its name (first column, in
// backticks), type (second column) and pinning (third: "yes" or "no").
type docMap struct {
	name, typ, pinned string
	line              int
}

// readMapTable parses the rows of the first table under mapTableHeading.
func readMapTable(t *testing.T) []docMap {
	t.Helper()
	f, err := os.Open(architectureDoc)
	if errors.Is(err, os.ErrNotExist) && os.Getenv("UPLINKD_TEST_KERNEL") != "" {
		// scripts/test-kernels.sh copies a package's testdata into the VM,
		// not docs/; the table is checked against the same objects by
		// make test-unit.
		t.Skipf("%s is not in the test VM (UPLINKD_TEST_KERNEL=%s)", architectureDoc, os.Getenv("UPLINKD_TEST_KERNEL"))
	}
	if err != nil {
		t.Fatalf("open the architecture document: %v", err)
	}
	defer f.Close()
	var (
		rows     []docMap
		inside   bool
		inTable  bool
		lineNo   int
		scanner  = bufio.NewScanner(f)
		foundSec bool
	)
	scanner.Buffer(make([]byte, 64*1024), 1024*1024)
	for scanner.Scan() {
		lineNo++
		line := strings.TrimSpace(scanner.Text())
		if strings.HasPrefix(line, "#") {
			if inside {
				break // the next section
			}
			inside = line == mapTableHeading
			foundSec = foundSec || inside
			continue
		}
		if !inside {
			continue
		}
		if !strings.HasPrefix(line, "|") {
			if inTable {
				break // the table ended
			}
			continue
		}
		inTable = true
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		name, ok := strings.CutPrefix(cells[0], "`")
		if !ok {
			continue // the header or the separator row
		}
		name, ok = strings.CutSuffix(name, "`")
		if !ok || len(cells) < 3 {
			t.Fatalf("%s:%d: a map row needs `name` | type | pinned first, got %q", architectureDoc, lineNo, line)
		}
		rows = append(rows, docMap{name: name, typ: cells[1], pinned: cells[2], line: lineNo})
	}
	if err := scanner.Err(); err != nil {
		t.Fatalf("read %s: %v", architectureDoc, err)
	}
	if !foundSec {
		t.Fatalf("%s has no %q section", architectureDoc, mapTableHeading)
	}
	if len(rows) == 0 {
		t.Fatalf("%s: no map rows under %q", architectureDoc, mapTableHeading)
	}
	return rows
}

// compiledMaps are the maps of the product's BPF objects (bpf/switch.c and
// bpf/failover.c, which share the maps of bpf/shared_maps.h by name),
// without the loader's internal maps (.rodata, .bss, ...).
func compiledMaps(t *testing.T) map[string]*ebpf.MapSpec {
	t.Helper()
	out := map[string]*ebpf.MapSpec{}
	for _, load := range []func() (*ebpf.CollectionSpec, error){loadBpfSwitch, loadBpfFailover} {
		spec, err := load()
		if err != nil {
			t.Fatalf("load BPF spec: %v", err)
		}
		for name, ms := range spec.Maps {
			if !strings.HasPrefix(name, ".") {
				out[name] = ms
			}
		}
	}
	return out
}

// normalType makes "PERCPU_ARRAY" (the document, as in BPF_MAP_TYPE_*) and
// "PerCPUArray" (cilium/ebpf's name) compare equal.
func normalType(s string) string {
	s = strings.Trim(s, "`")
	s = strings.TrimPrefix(s, "BPF_MAP_TYPE_")
	return strings.ToLower(strings.ReplaceAll(s, "_", ""))
}

// TestArchitectureMapTable checks that docs/ARCHITECTURE.md lists exactly
// the maps the compiled BPF objects declare, each once, with their type
// and pinning: a map added, removed or renamed in C fails here until the
// document says so.
func TestArchitectureMapTable(t *testing.T) {
	rows := readMapTable(t)
	compiled := compiledMaps(t)

	documented := map[string]bool{}
	for _, r := range rows {
		if documented[r.name] {
			t.Errorf("%s:%d: map %q is listed twice", architectureDoc, r.line, r.name)
		}
		documented[r.name] = true
		ms, ok := compiled[r.name]
		if !ok {
			t.Errorf("%s:%d: map %q is documented but no compiled BPF object declares it", architectureDoc, r.line, r.name)
			continue
		}
		if got, want := normalType(r.typ), normalType(ms.Type.String()); got != want {
			t.Errorf("%s:%d: map %q: type %q documented, the object says %s", architectureDoc, r.line, r.name, r.typ, ms.Type)
		}
		wantPinned := "no"
		if ms.Pinning == ebpf.PinByName {
			wantPinned = "yes"
		}
		if r.pinned != wantPinned {
			t.Errorf("%s:%d: map %q: pinned %q documented, the object says %q", architectureDoc, r.line, r.name, r.pinned, wantPinned)
		}
	}
	var missing []string
	for name := range compiled {
		if !documented[name] {
			missing = append(missing, name)
		}
	}
	slices.Sort(missing)
	for _, name := range missing {
		t.Errorf("map %q is declared by a compiled BPF object but missing from the table under %q in %s", name, mapTableHeading, architectureDoc)
	}
}
