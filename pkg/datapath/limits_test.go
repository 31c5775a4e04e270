package datapath

import (
	"testing"
	"unsafe"

	"github.com/cilium/ebpf"

	"github.com/uplinkd/uplinkd/pkg/limits"
)

// TestLimitsMatchObjects: every limit pkg/limits declares for Go is the one
// compiled into the BPF objects (bpf/uplinkd.h), read from the generated
// types' array lengths and the map specs' sizes. Change a limit on one side
// only and this fails. Needs no privileges: it only parses the objects.
func TestLimitsMatchObjects(t *testing.T) {
	sw, err := loadBpfSwitch()
	if err != nil {
		t.Fatal(err)
	}
	fo, err := loadBpfFailover()
	if err != nil {
		t.Fatal(err)
	}
	arrays := []struct {
		what     string
		compiled int
		goSide   int
	}{
		{"struct port_list.ifindex (MAX_GROUP_PORTS)", len(bpfSwitchPortList{}.Ifindex), limits.MaxGroupPorts},
		{"struct balance.slots (NBUCKETS)", len(bpfSwitchBalance{}.Slots), limits.Buckets},
		{"struct balance.alt_n (MAX_UPLINKS)", len(bpfSwitchBalance{}.AltN), limits.MaxUplinks},
		{"struct balance.alt (MAX_UPLINKS)", len(bpfSwitchBalance{}.Alt), limits.MaxUplinks},
		{"struct balance.alt[] (MAX_UPLINKS)", len(bpfSwitchBalance{}.Alt[0]), limits.MaxUplinks},
		{"struct fallback.slots (MAX_UPLINKS)", len(bpfFailoverFallback{}.Slots), limits.MaxUplinks},
		{"struct group_info.name (GROUP_NAME_LEN)", len(bpfSwitchGroupInfo{}.Name), limits.MaxGroupNameLen},
	}
	for _, a := range arrays {
		if a.compiled != a.goSide {
			t.Errorf("%s: compiled %d, pkg/limits %d", a.what, a.compiled, a.goSide)
		}
	}
	maps := []struct {
		obj  string
		spec *ebpf.CollectionSpec
		name string
		want int
	}{
		{"switch", sw, bpfSwitchMapPorts, limits.MaxPorts},
		{"switch", sw, bpfSwitchMapStats, limits.MaxPorts},
		{"switch", sw, bpfSwitchMapVlanSets, limits.MaxPorts},
		{"switch", sw, bpfSwitchMapLearnedMacs, limits.MaxPorts},
		{"switch", sw, bpfSwitchMapActive, limits.MaxGroups},
		{"switch", sw, bpfSwitchMapFallbacks, limits.MaxGroups},
		{"switch", sw, bpfSwitchMapBalances, limits.MaxGroups},
		{"switch", sw, bpfSwitchMapDraining, limits.MaxGroups},
		{"switch", sw, bpfSwitchMapGroups, limits.MaxGroups},
		{"switch", sw, bpfSwitchMapGroupPorts, limits.MaxGroups},
		{"switch", sw, bpfSwitchMapUplinkIfs, limits.MaxGroups * limits.MaxUplinks},
		{"switch", sw, bpfSwitchMapBucketBytes, limits.MaxGroups * limits.Buckets},
		{"switch", sw, bpfSwitchMapFdb, limits.FDBEntries},
		{"failover", fo, bpfFailoverMapPorts, limits.MaxPorts},
		{"failover", fo, bpfFailoverMapActive, limits.MaxGroups},
		{"failover", fo, bpfFailoverMapFallbacks, limits.MaxGroups},
		{"failover", fo, bpfFailoverMapBalances, limits.MaxGroups},
	}
	for _, m := range maps {
		ms, ok := m.spec.Maps[m.name]
		if !ok {
			t.Errorf("%s object: no map %s", m.obj, m.name)
			continue
		}
		if int(ms.MaxEntries) != m.want {
			t.Errorf("%s object: map %s has %d entries, pkg/limits says %d", m.obj, m.name, ms.MaxEntries, m.want)
		}
	}
	// The data plane reads any slot past the last as none; Go's encodings
	// of NoSlot must be such values.
	if mapNoSlot < limits.MaxUplinks || tableNoSlot < limits.MaxUplinks {
		t.Errorf("NoSlot encodings %#x, %#x name a slot", mapNoSlot, tableNoSlot)
	}
	// The data plane masks bucket and alternative indexes with n-1, and
	// keeps one down bit per slot in struct balance.down.
	if limits.Buckets&(limits.Buckets-1) != 0 || limits.MaxUplinks&(limits.MaxUplinks-1) != 0 {
		t.Errorf("Buckets %d, MaxUplinks %d: not powers of two", limits.Buckets, limits.MaxUplinks)
	}
	if bits := 8 * unsafe.Sizeof(bpfSwitchBalance{}.Down); limits.MaxUplinks > bits {
		t.Errorf("MaxUplinks %d: more than struct balance.down's %d bits", limits.MaxUplinks, bits)
	}
}
