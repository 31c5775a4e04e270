// Package hostport creates and adopts the veth pairs of host ports: the
// host's own interfaces on the switch. One end, with the configured name,
// belongs to the host's network stack (its addresses are the operator's);
// the other is the switch's port. A pair outlives uplinkd: the daemon
// never deletes one, so a restart or kill -9 never takes the host's
// addresses away. Only Remove does, for `uplinkd -cleanup
// -remove-host-ports`.
package hostport

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/uplinkd/uplinkd/pkg/config"
	"github.com/uplinkd/uplinkd/pkg/nldump"
)

// Result says what Ensure found or made.
type Result struct {
	Created bool // the pair was made now; false: adopted
	// HostIndex and SwitchIndex are the two ends' interface indexes.
	HostIndex, SwitchIndex int
	// Differs lists configured settings an adopted pair does not have
	// ("mac 02:..", "mtu 9000"): adopted as it is, never changed under
	// the host's traffic.
	Differs []string
}

// Ensure makes hp's veth pair exist in the calling thread's network
// namespace, both ends up: it creates a missing pair (the host's end with
// hp's MAC and MTU) and adopts an existing one, which must be a veth pair
// of hp.Name and hp.SwitchEnd. Anything else under those names is an
// error: uplinkd does not take over interfaces it did not make.
func Ensure(hp config.HostPort) (Result, error) {
	host, err := netlink.LinkByName(hp.Name)
	var notFound netlink.LinkNotFoundError
	switch {
	case errors.As(err, &notFound):
		return create(hp)
	case err != nil:
		return Result{}, fmt.Errorf("host port %s: %w", hp.Name, err)
	}
	return adopt(hp, host)
}

func create(hp config.HostPort) (Result, error) {
	if l, err := netlink.LinkByName(hp.SwitchEnd); err == nil {
		return Result{}, fmt.Errorf("host port %s: its switch end's name %s is taken by another interface (%s); rename or remove that one",
			hp.Name, hp.SwitchEnd, l.Type())
	}
	veth := &netlink.Veth{
		LinkAttrs: netlink.LinkAttrs{Name: hp.Name, HardwareAddr: hp.MAC, MTU: hp.MTU},
		PeerName:  hp.SwitchEnd,
	}
	if err := netlink.LinkAdd(veth); err != nil {
		return Result{}, fmt.Errorf("host port %s: create veth pair %s/%s: %w", hp.Name, hp.Name, hp.SwitchEnd, err)
	}
	host, err := netlink.LinkByName(hp.Name)
	if err != nil {
		return Result{}, fmt.Errorf("host port %s: created but not found: %w", hp.Name, err)
	}
	sw, err := netlink.LinkByName(hp.SwitchEnd)
	if err != nil {
		return Result{}, fmt.Errorf("host port %s: switch end %s created but not found: %w", hp.Name, hp.SwitchEnd, err)
	}
	if hp.MTU > 0 && sw.Attrs().MTU != hp.MTU {
		if err := netlink.LinkSetMTU(sw, hp.MTU); err != nil {
			return Result{}, fmt.Errorf("host port %s: set MTU %d on %s: %w", hp.Name, hp.MTU, hp.SwitchEnd, err)
		}
	}
	if err := disableIPv6(hp.SwitchEnd); err != nil {
		return Result{}, fmt.Errorf("host port %s: %w", hp.Name, err)
	}
	if err := setUp(sw, host); err != nil {
		return Result{}, fmt.Errorf("host port %s: %w", hp.Name, err)
	}
	return Result{Created: true, HostIndex: host.Attrs().Index, SwitchIndex: sw.Attrs().Index}, nil
}

func adopt(hp config.HostPort, host netlink.Link) (Result, error) {
	sw, err := switchEnd(hp, host)
	if err != nil {
		return Result{}, fmt.Errorf("host port %s: %w; remove it or choose another name", hp.Name, err)
	}
	res := Result{HostIndex: host.Attrs().Index, SwitchIndex: sw.Attrs().Index}
	if a := host.Attrs(); !bytes.Equal(a.HardwareAddr, hp.MAC) {
		res.Differs = append(res.Differs, fmt.Sprintf("mac %s (it has %s)", hp.MAC, a.HardwareAddr))
	}
	if a := host.Attrs(); hp.MTU > 0 && a.MTU != hp.MTU {
		res.Differs = append(res.Differs, fmt.Sprintf("mtu %d (it has %d)", hp.MTU, a.MTU))
	}
	if err := disableIPv6(hp.SwitchEnd); err != nil {
		return Result{}, fmt.Errorf("host port %s: %w", hp.Name, err)
	}
	if err := setUp(sw, host); err != nil {
		return Result{}, fmt.Errorf("host port %s: %w", hp.Name, err)
	}
	return res, nil
}

// switchEnd is the switch's end of host, if host is hp's veth pair: a
// veth whose peer is hp.SwitchEnd in this namespace. Anything else under
// hp.Name is not uplinkd's to adopt or remove.
func switchEnd(hp config.HostPort, host netlink.Link) (netlink.Link, error) {
	veth, ok := host.(*netlink.Veth)
	if !ok {
		return nil, fmt.Errorf("interface %s exists and is a %s, not a veth pair uplinkd made", hp.Name, host.Type())
	}
	peerIndex, err := netlink.VethPeerIndex(veth)
	if err != nil {
		return nil, fmt.Errorf("read the veth peer of %s: %w", hp.Name, err)
	}
	sw, err := netlink.LinkByName(hp.SwitchEnd)
	if err != nil || sw.Attrs().Index != peerIndex || host.Attrs().NetNsID >= 0 {
		return nil, fmt.Errorf("veth %s exists but its peer is not %s in this namespace", hp.Name, hp.SwitchEnd)
	}
	return sw, nil
}

// Remove deletes hp's veth pair in the calling thread's network namespace
// (deleting the host's end takes the switch's with it), and with it the
// host's addresses on it. A pair that is not there is no error (removed
// false). Anything else under hp.Name is left in place and an error:
// uplinkd removes only what it would have adopted.
func Remove(hp config.HostPort) (removed bool, err error) {
	host, err := netlink.LinkByName(hp.Name)
	var notFound netlink.LinkNotFoundError
	switch {
	case errors.As(err, &notFound):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("host port %s: %w", hp.Name, err)
	}
	if _, err := switchEnd(hp, host); err != nil {
		return false, fmt.Errorf("host port %s: %w; left in place", hp.Name, err)
	}
	if err := netlink.LinkDel(host); err != nil {
		return false, fmt.Errorf("host port %s: delete veth pair %s/%s: %w", hp.Name, hp.Name, hp.SwitchEnd, err)
	}
	return true, nil
}

// disableIPv6 turns IPv6 off on a switch end: it is a switch port, not an
// interface of the host, so it must get no link-local address and send
// no router solicitation, DAD or MLD report into the host's end. A host
// without IPv6 has nothing to turn off.
func disableIPv6(name string) error {
	path := "/proc/sys/net/ipv6/conf/" + name + "/disable_ipv6"
	if _, err := os.Stat("/proc/sys/net/ipv6"); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err := os.WriteFile(path, []byte("1"), 0); err != nil {
		return fmt.Errorf("turn IPv6 off on switch end %s: %w", name, err)
	}
	return nil
}

// setUp sets the switch's end up first, so the host's end has its
// carrier as soon as it is up.
func setUp(sw, host netlink.Link) error {
	for _, l := range []netlink.Link{sw, host} {
		if l.Attrs().Flags&net.FlagUp != 0 {
			continue
		}
		if err := netlink.LinkSetUp(l); err != nil {
			return fmt.Errorf("set %s up: %w", l.Attrs().Name, err)
		}
	}
	return nil
}

// End is the host's end of a host port as it is now.
type End struct {
	Exists bool
	Up     bool // administratively up, with carrier
	MAC    net.HardwareAddr
	MTU    int
	// Addrs are the IPv4 and IPv6 addresses the host answers for on it:
	// tentative and duplicate ones (still in, or failed, duplicate
	// address detection) are left out. Sorted.
	Addrs []netip.Addr
}

// ReadEnds reads the interfaces names: a link request each, and one
// address dump for them all (netlink.AddrList dumps every address of the
// namespace and keeps one link's, so a dump per name would repeat it). ends[i] is names[i]: a missing interface is an End that
// does not exist, not an error. errs[i] says why names[i] was not read in
// full: its End does not exist when its link could not be read, and has
// no addresses when the dump failed (but those of a dump interrupted on
// every try, a recent view).
func ReadEnds(names []string) (ends []End, errs []error) {
	ends, errs = make([]End, len(names)), make([]error, len(names))
	at := map[int]int{} // an existing end's ifindex: its i
	for i, name := range names {
		link, err := netlink.LinkByName(name)
		var notFound netlink.LinkNotFoundError
		if errors.As(err, &notFound) {
			continue
		}
		if err != nil {
			errs[i] = fmt.Errorf("%s: %w", name, err)
			continue
		}
		a := link.Attrs()
		ends[i] = End{Exists: true, Up: a.RawFlags&unix.IFF_UP != 0 && a.RawFlags&unix.IFF_LOWER_UP != 0,
			MAC: a.HardwareAddr, MTU: a.MTU}
		at[a.Index] = i
	}
	if len(at) == 0 {
		return ends, errs
	}
	list, err := nldump.Retry(func() ([]netlink.Addr, error) { return netlink.AddrList(nil, netlink.FAMILY_ALL) })
	if err != nil {
		for _, i := range at {
			errs[i] = fmt.Errorf("%s: list addresses: %w", names[i], err)
		}
		if !nldump.Interrupted(err) {
			return ends, errs
		}
	}
	for _, a := range list {
		i, ok := at[a.LinkIndex]
		if !ok || a.Flags&(unix.IFA_F_TENTATIVE|unix.IFA_F_DADFAILED) != 0 {
			continue
		}
		if ip, ok := netip.AddrFromSlice(a.IP); ok {
			ends[i].Addrs = append(ends[i].Addrs, ip.Unmap())
		}
	}
	for i := range ends {
		slices.SortFunc(ends[i].Addrs, netip.Addr.Compare)
	}
	return ends, errs
}
