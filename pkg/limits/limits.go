// Package limits is the one Go source of the limits compiled into the data
// plane (bpf/uplinkd.h), of the uplink slot type, and of where the daemon
// pins its state. It imports nothing, so the pure policy packages
// (failover, balance, config) use it without pulling in cilium/ebpf.
// pkg/datapath's TestLimitsMatchObjects fails when these numbers and the
// compiled BPF objects disagree: change both sides together.
package limits

// Limits of the data plane, each named after its C constant.
const (
	// MaxGroups is the number of groups (MAX_GROUPS).
	MaxGroups = 64
	// MaxUplinks is the number of uplink slots per group (MAX_UPLINKS).
	MaxUplinks = 8
	// MaxPorts is the number of interfaces, guest ports and uplinks of
	// all groups (MAX_PORTS).
	MaxPorts = 1024
	// MaxGroupPorts is the number of ports one group floods to
	// (MAX_GROUP_PORTS): its guest ports and its uplinks.
	MaxGroupPorts = 208
	// MaxGuestPorts is what MaxGroupPorts leaves for guest ports.
	MaxGuestPorts = MaxGroupPorts - MaxUplinks
	// Buckets is the size of a balance group's bucket table (NBUCKETS); a
	// power of two, as the data plane masks the hash with Buckets-1.
	Buckets = 256
	// FDBEntries is the number of (group, VLAN, MAC) entries the switch
	// learns over all ports (FDB_ENTRIES).
	FDBEntries = 65536
	// MaxGroupNameLen is the longest group name (GROUP_NAME_LEN): the
	// pinned state keeps it NUL-terminated when shorter.
	MaxGroupNameLen = 32
)

// DefaultPinPath is where the daemon keeps its state in bpffs.
const DefaultPinPath = "/sys/fs/bpf/uplinkd"

// Slot is an uplink's position in its group, 0..MaxUplinks-1, or NoSlot.
// The data plane's encodings of "no slot" (0xffffffff in its maps, 0xff in
// a bucket table) exist only in pkg/datapath, where it reads and writes
// the maps.
type Slot int

// NoSlot stands for no uplink: no active uplink, no manual pin, a bucket
// with nowhere to go.
const NoSlot Slot = -1

// Valid reports whether s names one of a group's slots.
func (s Slot) Valid() bool { return s >= 0 && s < MaxUplinks }
