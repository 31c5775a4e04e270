// Package datapath loads, pins and attaches the switch (tc programs) and
// hides its maps behind typed methods. It is the only package that
// touches BPF maps.
//
// Every interface index handled here is resolved in the network namespace
// of the calling thread: run the daemon inside the switch's namespace.
package datapath

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// Role says which program a port runs.
type Role uint32

const (
	RoleGuest  Role = Role(bpfSwitchPortRoleROLE_GUEST)
	RoleUplink Role = Role(bpfSwitchPortRoleROLE_UPLINK)
)

func (r Role) String() string {
	switch r {
	case RoleGuest:
		return "guest"
	case RoleUplink:
		return "uplink"
	}
	return fmt.Sprintf("role(%d)", uint32(r))
}

// DropReason indexes PortStats.Drops.
type DropReason int

const (
	DropMalformed DropReason = DropReason(bpfSwitchDropReasonDROP_MALFORMED)
	DropBadSource DropReason = DropReason(bpfSwitchDropReasonDROP_BAD_SRC)
	DropStandby   DropReason = DropReason(bpfSwitchDropReasonDROP_STANDBY)
	DropNoUplink  DropReason = DropReason(bpfSwitchDropReasonDROP_NO_UPLINK)
	DropHairpin   DropReason = DropReason(bpfSwitchDropReasonDROP_HAIRPIN)
	DropVLAN      DropReason = DropReason(bpfSwitchDropReasonDROP_VLAN)
	// DropMTU: longer than the destination port's MTU allows (the
	// kernel's forwarding rule: MTU + Ethernet header + one VLAN tag;
	// GSO passes).
	DropMTU DropReason = DropReason(bpfSwitchDropReasonDROP_MTU)
	// DropNoDestination: flooded, but no other port of the group
	// carries the frame's VLAN.
	DropNoDestination DropReason = DropReason(bpfSwitchDropReasonDROP_NO_DEST)
	dropReasons                  = int(bpfSwitchDropReasonDROP_REASONS)
)

var dropReasonNames = [...]string{
	DropMalformed:     "malformed",
	DropBadSource:     "bad_source",
	DropStandby:       "standby",
	DropNoUplink:      "no_uplink",
	DropHairpin:       "hairpin",
	DropVLAN:          "vlan",
	DropMTU:           "mtu",
	DropNoDestination: "no_destination",
}

func (r DropReason) String() string {
	if r >= 0 && int(r) < len(dropReasonNames) {
		return dropReasonNames[r]
	}
	return fmt.Sprintf("drop(%d)", int(r))
}

// DropReasons lists every reason in counter order.
func DropReasons() []DropReason {
	out := make([]DropReason, dropReasons)
	for i := range out {
		out[i] = DropReason(i)
	}
	return out
}

// DefaultDrainTime is how long the uplink active before a switch still
// delivers unicast to known guests: the upstream relearns the guests from
// the announcements within milliseconds; this also covers a lost first
// round (3 rounds, 100 ms apart, by default).
const DefaultDrainTime = 2 * time.Second

// Datapath is the loaded switch: its programs and its pinned maps.
type Datapath struct {
	// DrainTime: see DefaultDrainTime. 0 disables draining.
	DrainTime time.Duration

	pinDir string
	objs   bpfSwitchObjects
	log    *slog.Logger
	// carrierCheckRefused says why the switch runs without reading the
	// uplinks' carrier before a redirect ("" when it reads it).
	carrierCheckRefused string
	// balanceMu orders the daemon's table writes (SetBalance) and the
	// poll thread's read-and-write of the down bits (MoveOff), so neither
	// puts back what the other replaced.
	balanceMu sync.Mutex
	// fallbackMu orders the daemon's order writes (SetFallback) and the
	// poll thread's read-and-write of the dead bits (MoveOff) in the same
	// way.
	fallbackMu sync.Mutex
}

// Open loads the programs and creates the maps, or re-opens the maps a
// previous daemon pinned under pinDir, so learned state and the active
// uplinks survive a restart.
func Open(pinDir string, log *slog.Logger) (*Datapath, error) {
	if log == nil {
		log = slog.Default()
	}
	if err := ensureBPFFS(pinDir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(linksDir(pinDir), 0o700); err != nil {
		return nil, fmt.Errorf("create pin directory: %w", err)
	}
	spec, err := loadBpfSwitch()
	if err != nil {
		return nil, fmt.Errorf("load BPF spec: %w", err)
	}
	if err := migratePinned(spec, pinDir, log); err != nil {
		return nil, err
	}
	removeRetiredPins(pinDir, log)
	d := &Datapath{pinDir: pinDir, log: log, DrainTime: DefaultDrainTime}
	opts := &ebpf.CollectionOptions{Maps: ebpf.MapOptions{PinPath: pinDir}}
	// Read an uplink's carrier at its tc egress where the kernel lets the
	// programs read kernel memory; where it does not (lockdown, no
	// CAP_PERFMON), the same programs without the check.
	if err := spec.Variables[bpfSwitchVarCarrierCheck].Set(uint32(1)); err != nil {
		return nil, fmt.Errorf("set carrier_check: %w", err)
	}
	err = spec.LoadAndAssign(&d.objs, opts)
	var verr *ebpf.VerifierError
	if errors.As(err, &verr) {
		d.carrierCheckRefused = fmt.Sprintf("the kernel does not let the switch read the uplink's state: %v", verr)
		if err := spec.Variables[bpfSwitchVarCarrierCheck].Set(uint32(0)); err != nil {
			return nil, fmt.Errorf("set carrier_check: %w", err)
		}
		err = spec.LoadAndAssign(&d.objs, opts)
	}
	if err != nil {
		// (Pinned maps of an older layout were migrated above.)
		if errors.As(err, &verr) {
			return nil, fmt.Errorf("load BPF programs: %+v", verr)
		}
		return nil, fmt.Errorf("load BPF programs: %w", err)
	}
	if d.carrierCheckRefused != "" {
		log.Warn("switch loaded without the carrier check at redirect", "reason", d.carrierCheckRefused)
	}
	return d, nil
}

// PinDir is the bpffs directory holding the switch's state.
func (d *Datapath) PinDir() string { return d.pinDir }

// Close releases this process's handles. Pinned maps and links stay, and
// so does forwarding.
func (d *Datapath) Close() error { return d.objs.Close() }

func linksDir(pinDir string) string { return filepath.Join(pinDir, "links") }

// ensureBPFFS checks that dir is (or will be created) on a bpffs mount,
// mounting one at /sys/fs/bpf when that is where it should be and is not.
func ensureBPFFS(dir string) error {
	probe := dir
	for {
		if _, err := os.Stat(probe); err == nil {
			break
		}
		parent := filepath.Dir(probe)
		if parent == probe {
			break
		}
		probe = parent
	}
	isBPF := func(p string) bool {
		var st unix.Statfs_t
		return unix.Statfs(p, &st) == nil && st.Type == unix.BPF_FS_MAGIC
	}
	if isBPF(probe) {
		return nil
	}
	if strings.HasPrefix(dir+"/", "/sys/fs/bpf/") && (probe == "/sys/fs/bpf" || probe == "/sys/fs") {
		if err := unix.Mount("bpf", "/sys/fs/bpf", "bpf", 0, "mode=0700"); err != nil {
			return fmt.Errorf("mount bpffs at /sys/fs/bpf: %w", err)
		}
		if isBPF(probe) {
			return nil
		}
	}
	return fmt.Errorf("pin path %s is not on a bpffs mount (mount one with `mount -t bpf bpf %s`)", dir, probe)
}

// macOf returns a 6-byte address or zeros.
func macOf(hw net.HardwareAddr) [6]byte {
	var m [6]byte
	if len(hw) == 6 {
		copy(m[:], hw)
	}
	return m
}
