package datapath

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"

	"github.com/uplinkd/uplinkd/pkg/limits"
)

// Port is one interface of the switch.
type Port struct {
	Ifname  string
	Ifindex int
	MAC     net.HardwareAddr // the port's own address (uplinks: host traffic)
	Group   uint32
	Role    Role
	Slot    limits.Slot // uplinks only: position in the group
	// Guests only: VLAN makes an access port (untagged at the guest, that
	// VLAN upstream); otherwise a trunk, carrying only Trunk's VLANs (and
	// untagged frames) when Trunk is set.
	VLAN  uint16
	Trunk []uint16
	// MaxMACs bounds the MACs learned behind a guest port (0: no bound);
	// with MACLock, MACs learned behind it are not learned behind another
	// port.
	MaxMACs uint32
	MACLock bool
}

// AttachMode says which hook a port's programs run at: ModeTCX or
// ModeClsact.
type AttachMode string

// Attach adds p to the switch: first its map entries, then its tc
// programs (ingress; an uplink's egress too), so the programs never see a
// half-configured port. A link that a previous daemon pinned for the same
// interface is updated in place (link.Update), which swaps the program
// without a gap; an XDP link of the older data plane is removed once the
// tc programs run.
func (d *Datapath) Attach(p Port) (AttachMode, error) {
	if p.Ifindex <= 0 {
		return "", fmt.Errorf("attach %s: no interface index", p.Ifname)
	}
	if p.Group >= limits.MaxGroups {
		return "", fmt.Errorf("attach %s: group id %d out of range", p.Ifname, p.Group)
	}
	if p.Role == RoleUplink && !p.Slot.Valid() {
		return "", fmt.Errorf("attach %s: uplink slot %d out of range", p.Ifname, p.Slot)
	}
	id, err := d.portID(uint32(p.Ifindex))
	if err != nil {
		return "", fmt.Errorf("attach %s: %w", p.Ifname, err)
	}
	info := bpfSwitchPortInfo{
		Id:    id,
		Group: p.Group,
		Role:  uint32(p.Role),
		Slot:  mapNoSlot,
		Mac:   macOf(p.MAC),
	}
	if p.Role == RoleUplink {
		info.Slot = mapSlot(p.Slot)
	} else {
		info.Vlan, info.MaxMacs = p.VLAN, p.MaxMACs
		if p.MACLock {
			info.Flags |= portFlagMACLock
		}
		if peerInOtherNetns(p.Ifindex) {
			info.Flags |= portFlagPeer
		}
	}
	var set bpfSwitchVlanSet
	if p.Role == RoleGuest && p.VLAN == 0 && len(p.Trunk) > 0 {
		info.Flags |= portFlagVLANFilter
		for _, v := range p.Trunk {
			if v == 0 || v > 4094 {
				return "", fmt.Errorf("attach %s: VLAN %d out of range 1..4094", p.Ifname, v)
			}
			set.Bits[v/64] |= 1 << (v % 64)
		}
	}
	if err := d.objs.VlanSets.Put(id, set); err != nil {
		return "", fmt.Errorf("attach %s: write vlan_sets: %w", p.Ifname, err)
	}
	ifindex := uint32(p.Ifindex)
	if err := d.objs.Ports.Put(ifindex, info); err != nil {
		return "", fmt.Errorf("attach %s: write ports: %w", p.Ifname, err)
	}
	prog := d.objs.TcGuest
	if p.Role == RoleUplink {
		prog = d.objs.TcUplink
		if err := d.fillUplinkSlot(uplinkKey(p.Group, p.Slot), ifindex); err != nil {
			return "", fmt.Errorf("attach %s: %w", p.Ifname, err)
		}
	}
	if err := d.listPort(p.Group, ifindex, true); err != nil {
		return "", fmt.Errorf("attach %s: %w", p.Ifname, err)
	}
	if p.Role == RoleUplink {
		// Egress first: the rescue of frames that meet a dead uplink
		// runs before the first frame is sent there.
		if _, err := d.attachTC(p.Ifname, p.Ifindex, d.objs.TcUplinkOut, egress); err != nil {
			return "", fmt.Errorf("attach %s: egress: %w", p.Ifname, err)
		}
	}
	mode, err := d.attachTC(p.Ifname, p.Ifindex, prog, ingress)
	if err != nil {
		return "", fmt.Errorf("attach %s: %w", p.Ifname, err)
	}
	d.removeXDPLink(p.Ifname)
	return mode, nil
}

// peerInOtherNetns says whether ifindex is a veth whose peer lives in
// another network namespace (bpf_redirect_peer can deliver into it).
func peerInOtherNetns(ifindex int) bool {
	l, err := netlink.LinkByIndex(ifindex)
	if err != nil {
		return false
	}
	_, veth := l.(*netlink.Veth)
	return veth && l.Attrs().NetNsID >= 0
}

// listPort adds ifindex to (or, with add false, removes it from) its
// group's port list, which the tc programs flood to.
func (d *Datapath) listPort(group, ifindex uint32, add bool) error {
	var list bpfSwitchPortList
	if err := d.objs.GroupPorts.Lookup(group, &list); err != nil {
		return fmt.Errorf("read group_ports: %w", err)
	}
	n := min(int(list.N), len(list.Ifindex))
	at := slices.Index(list.Ifindex[:n], ifindex)
	switch {
	case add && at >= 0, !add && at < 0:
		return nil
	case add:
		if n == len(list.Ifindex) {
			return fmt.Errorf("group %d has %d ports already", group, n)
		}
		list.Ifindex[n] = ifindex
		n++
	default:
		copy(list.Ifindex[at:], list.Ifindex[at+1:n])
		n--
		list.Ifindex[n] = 0
	}
	list.N = uint32(n)
	if err := d.objs.GroupPorts.Put(group, &list); err != nil {
		return fmt.Errorf("write group_ports: %w", err)
	}
	return nil
}

func uplinkKey(group uint32, slot limits.Slot) uint32 {
	return group*limits.MaxUplinks + uint32(slot)
}

// Port flags: PORT_F_VLAN_FILTER and PORT_F_MAC_LOCK (bpf/uplinkd.h).
const (
	portFlagVLANFilter = 1
	portFlagMACLock    = 2
	portFlagPeer       = 4
)

// fillUplinkSlot puts the interface ifindex into an uplink slot (0
// empties it).
func (d *Datapath) fillUplinkSlot(key, ifindex uint32) error {
	if err := d.objs.UplinkIfs.Put(key, ifindex); err != nil {
		return fmt.Errorf("write uplink_ifs: %w", err)
	}
	return nil
}

// portID returns the counter index of ifindex: the one it already has, or
// the lowest free one, with its counters zeroed.
func (d *Datapath) portID(ifindex uint32) (uint32, error) {
	var info bpfSwitchPortInfo
	if err := d.objs.Ports.Lookup(ifindex, &info); err == nil {
		return info.Id, nil
	}
	used := make(map[uint32]bool)
	var k uint32
	it := d.objs.Ports.Iterate()
	for it.Next(&k, &info) {
		used[info.Id] = true
	}
	if err := it.Err(); err != nil {
		return 0, fmt.Errorf("read ports: %w", err)
	}
	for id := uint32(0); id < limits.MaxPorts; id++ {
		if !used[id] {
			zero := make([]bpfSwitchPortStats, ebpf.MustPossibleCPU())
			if err := d.objs.Stats.Put(id, zero); err != nil {
				return 0, fmt.Errorf("reset stats: %w", err)
			}
			// A reused id must not inherit the last port's learned count.
			if err := d.objs.LearnedMacs.Put(id, uint32(0)); err != nil {
				return 0, fmt.Errorf("reset learned_macs: %w", err)
			}
			return id, nil
		}
	}
	return 0, fmt.Errorf("more than %d ports", limits.MaxPorts)
}

// linkPath is where the XDP data plane pinned an interface's link: read
// to take that link over (removeXDPLink) or to detach it.
func (d *Datapath) linkPath(ifname string) string {
	return filepath.Join(linksDir(d.pinDir), ifname)
}

// Detach removes a port from the switch: its programs first, then its
// map entries and what was learned behind it.
func (d *Datapath) Detach(ifname string, ifindex int) error {
	var errs []error
	if l, err := link.LoadPinnedLink(d.linkPath(ifname), nil); err == nil {
		if err := l.Unpin(); err != nil {
			errs = append(errs, fmt.Errorf("unpin link: %w", err))
		}
		l.Close() // the last reference: the program is detached
	}
	errs = append(errs, d.detachTC(ifname, ifindex, ingress), d.detachTC(ifname, ifindex, egress))
	if ifindex > 0 {
		key := uint32(ifindex)
		var info bpfSwitchPortInfo
		if err := d.objs.Ports.Lookup(key, &info); err == nil {
			errs = append(errs, d.listPort(info.Group, key, false))
			if slot := slotFromMap(info.Slot); info.Role == uint32(RoleUplink) && slot.Valid() {
				var cur uint32
				k := uplinkKey(info.Group, slot)
				if d.objs.UplinkIfs.Lookup(k, &cur) == nil && cur == key {
					errs = append(errs, d.fillUplinkSlot(k, 0))
				}
			}
			errs = append(errs, d.forgetPort(key))
		}
		errs = append(errs, ignoreNotExist(d.objs.Ports.Delete(key)))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("detach %s: %w", ifname, err)
	}
	return nil
}

// forgetPort deletes the FDB entries that point at ifindex.
func (d *Datapath) forgetPort(ifindex uint32) error {
	var (
		k     bpfSwitchFdbKey
		v     bpfSwitchFdbEntry
		stale []bpfSwitchFdbKey
	)
	it := d.objs.Fdb.Iterate()
	for it.Next(&k, &v) {
		if v.Ifindex == ifindex {
			stale = append(stale, k)
		}
	}
	for _, k := range stale {
		_ = d.objs.Fdb.Delete(k)
	}
	return it.Err()
}

func ignoreNotExist(err error) error {
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		return nil
	}
	return err
}

// PinnedLinks lists the interfaces the switch is attached to (a pinned
// link, or one of its clsact filters), so the daemon can detach the ones
// its configuration no longer names.
func (d *Datapath) PinnedLinks() ([]string, error) {
	var names []string
	for _, dir := range []string{linksDir(d.pinDir), filepath.Join(d.pinDir, ingress.name)} {
		entries, err := os.ReadDir(dir)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("list pinned links: %w", err)
		}
		for _, e := range entries {
			names = append(names, e.Name())
		}
	}
	names = append(names, clsactPorts()...)
	slices.Sort(names)
	return slices.Compact(names), nil
}

// Remove detaches every program pinned under pinDir and deletes the pinned
// maps: the switch stops forwarding. Used by `uplinkd -cleanup`.
func Remove(pinDir string) error {
	var errs []error
	for _, dir := range []string{linksDir(pinDir), filepath.Join(pinDir, ingress.name), filepath.Join(pinDir, egress.name), filepath.Join(pinDir, "hooks")} {
		errs = append(errs, unpinAll(dir))
	}
	errs = append(errs, removeClsact())
	for _, name := range append(pinnedMapNames(), retiredMaps...) {
		err := os.Remove(filepath.Join(pinDir, name))
		if !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := os.Remove(pinDir); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, fmt.Errorf("remove %s (not empty?): %w", pinDir, err))
	}
	return errors.Join(errs...)
}

func pinnedMapNames() []string {
	seen := map[string]bool{}
	var names []string
	for _, load := range []func() (*ebpf.CollectionSpec, error){loadBpfSwitch, loadBpfFailover} {
		spec, err := load()
		if err != nil {
			continue
		}
		for name, m := range spec.Maps {
			if m.Pinning == ebpf.PinByName && !strings.HasPrefix(name, ".") && !seen[name] {
				seen[name] = true
				names = append(names, name)
			}
		}
	}
	return names
}
