package datapath

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/uplinkd/uplinkd/pkg/nldump"
)

// Hooks a port's programs run at.
const (
	// ModeTCX: tcx links (kernel 6.6 and later), pinned under pinDir.
	ModeTCX AttachMode = "tcx"
	// ModeClsact: direct-action BPF filters on a clsact qdisc, for
	// kernels without tcx. The kernel keeps them attached when uplinkd
	// stops; they carry the program's name, which is how uplinkd finds
	// them again.
	ModeClsact AttachMode = "tc"
)

// direction is a tc hook of an interface.
type direction struct {
	name   string // pinned link directory under pinDir
	attach ebpf.AttachType
	parent uint32 // clsact filter parent
}

var (
	ingress = direction{name: "tcx-ingress", attach: ebpf.AttachTCXIngress, parent: netlink.HANDLE_MIN_INGRESS}
	egress  = direction{name: "tcx-egress", attach: ebpf.AttachTCXEgress, parent: netlink.HANDLE_MIN_EGRESS}
)

// tcProgNames name uplinkd's clsact filters: the kernel reports a BPF
// filter's name as "<program name>:[<id>]".
var tcProgNames = []string{bpfSwitchProgTcGuest, bpfSwitchProgTcUplink, bpfSwitchProgTcUplinkOut}

// attachTC runs prog at dir of the interface: a tcx link updated in place
// when a previous daemon pinned one for the same interface, a new pinned
// tcx link, or, where the kernel has no tcx, a clsact filter that replaces
// the previous one in place.
func (d *Datapath) attachTC(ifname string, ifindex int, prog *ebpf.Program, dir direction) (AttachMode, error) {
	path := filepath.Join(d.pinDir, dir.name, ifname)
	if l, err := link.LoadPinnedLink(path, nil); err == nil {
		if tcxOn(l, ifindex, dir) {
			err := l.Update(prog)
			l.Close()
			if err != nil {
				return "", fmt.Errorf("update pinned tcx link: %w", err)
			}
			return ModeTCX, nil
		}
		// The link of a re-created interface: dead, replaced below.
		l.Close()
	}
	l, err := link.AttachTCX(link.TCXOptions{Interface: ifindex, Program: prog, Attach: dir.attach})
	if err == nil {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			l.Close()
			return "", err
		}
		_ = os.Remove(path) // a dead link of a re-created interface
		if err := l.Pin(path); err != nil {
			l.Close()
			return "", fmt.Errorf("pin tcx link: %w", err)
		}
		l.Close()
		return ModeTCX, nil
	}
	if !errors.Is(err, ebpf.ErrNotSupported) {
		return "", fmt.Errorf("attach tcx: %w", err)
	}
	if err := attachClsact(ifindex, prog, dir); err != nil {
		return "", fmt.Errorf("attach clsact filter (no tcx in this kernel): %w", err)
	}
	return ModeClsact, nil
}

func tcxOn(l link.Link, ifindex int, dir direction) bool {
	info, err := l.Info()
	if err != nil || info.Type != link.TCXType {
		return false
	}
	tcx := info.TCX()
	return tcx != nil && int(tcx.Ifindex) == ifindex && ebpf.AttachType(tcx.AttachType) == dir.attach
}

// clsact filters: one per direction, at a fixed priority and handle, so a
// new program replaces the old in one netlink call.
const (
	clsactPriority = 1
	clsactHandle   = 1
)

func attachClsact(ifindex int, prog *ebpf.Program, dir direction) error {
	qdisc := &netlink.GenericQdisc{
		QdiscAttrs: netlink.QdiscAttrs{
			LinkIndex: ifindex,
			Handle:    netlink.MakeHandle(0xffff, 0),
			Parent:    netlink.HANDLE_CLSACT,
		},
		QdiscType: "clsact",
	}
	if err := netlink.QdiscReplace(qdisc); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("add clsact qdisc: %w", err)
	}
	info, err := prog.Info()
	if err != nil {
		return fmt.Errorf("program info: %w", err)
	}
	filter := &netlink.BpfFilter{
		FilterAttrs: netlink.FilterAttrs{
			LinkIndex: ifindex,
			Parent:    dir.parent,
			Handle:    clsactHandle,
			Protocol:  unix.ETH_P_ALL,
			Priority:  clsactPriority,
		},
		Fd:           prog.FD(),
		Name:         info.Name,
		DirectAction: true,
	}
	if err := netlink.FilterReplace(filter); err != nil {
		return fmt.Errorf("add BPF filter: %w", err)
	}
	return nil
}

// ourFilters lists the clsact filters of uplinkd's programs at dir of the
// interface.
func ourFilters(ifindex int, dir direction) []netlink.Filter {
	// The dump needs only the index: no look-up of the link first (one
	// netlink request less per interface).
	dev := &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: ifindex}}
	filters, err := nldump.Retry(func() ([]netlink.Filter, error) { return netlink.FilterList(dev, dir.parent) })
	if err != nil && !nldump.Interrupted(err) { // interrupted still: a recent list finds more than none
		return nil
	}
	var ours []netlink.Filter
	for _, f := range filters {
		if bf, ok := f.(*netlink.BpfFilter); ok && isOurProgName(bf.Name) {
			ours = append(ours, f)
		}
	}
	return ours
}

func isOurProgName(name string) bool {
	name, _, _ = strings.Cut(name, ":")
	for _, p := range tcProgNames {
		// The kernel keeps 15 characters of a program's name.
		if name == p || (len(p) > 15 && name == p[:15]) {
			return true
		}
	}
	return false
}

// detachTC removes what attachTC put at dir of the interface.
func (d *Datapath) detachTC(ifname string, ifindex int, dir direction) error {
	var errs []error
	path := filepath.Join(d.pinDir, dir.name, ifname)
	if l, err := link.LoadPinnedLink(path, nil); err == nil {
		errs = append(errs, l.Unpin())
		l.Close()
	}
	if ifindex > 0 {
		for _, f := range ourFilters(ifindex, dir) {
			if err := netlink.FilterDel(f); err != nil && !errors.Is(err, unix.ENOENT) {
				errs = append(errs, fmt.Errorf("delete clsact filter: %w", err))
			}
		}
	}
	return errors.Join(errs...)
}

// clsactPorts lists the interfaces of this namespace that carry one of
// uplinkd's clsact filters (ingress), by name.
func clsactPorts() []string {
	links, err := nldump.Retry(netlink.LinkList)
	if err != nil && !nldump.Interrupted(err) { // interrupted still: a recent list finds more than none
		return nil
	}
	var names []string
	for _, l := range mayHaveFilters(links) {
		if len(ourFilters(l.Attrs().Index, ingress)) > 0 {
			names = append(names, l.Attrs().Name)
		}
	}
	return names
}

// mayHaveFilters narrows links to those with a qdisc that tc ingress and
// egress filters hang off (clsact, or ingress): one dump of every qdisc
// instead of a filter dump per interface, which on a large host (and on
// every tcx kernel, where uplinkd adds no qdisc) is most of the work of
// listing the switch's ports. If the qdiscs cannot be listed in full,
// every link is a candidate.
func mayHaveFilters(links []netlink.Link) []netlink.Link {
	qdiscs, err := nldump.Retry(func() ([]netlink.Qdisc, error) { return netlink.QdiscList(nil) })
	if err != nil { // an interrupted dump too: it may have missed one
		return links
	}
	withQdisc := map[int]bool{}
	for _, q := range qdiscs {
		if q.Type() == "clsact" || q.Type() == "ingress" {
			withQdisc[q.Attrs().LinkIndex] = true
		}
	}
	var out []netlink.Link
	for _, l := range links {
		if withQdisc[l.Attrs().Index] {
			out = append(out, l)
		}
	}
	return out
}

// removeClsact deletes uplinkd's clsact filters from every interface of
// this namespace (uplinkd -cleanup).
func removeClsact() error {
	links, err := nldump.Retry(netlink.LinkList)
	if err != nil && !nldump.Interrupted(err) {
		return fmt.Errorf("list links: %w", err)
	}
	var errs []error
	if err != nil { // interrupted still: remove what the recent list shows, and say it may not be all
		errs = append(errs, fmt.Errorf("list links: %w", err))
	}
	for _, l := range mayHaveFilters(links) {
		for _, dir := range []direction{ingress, egress} {
			for _, f := range ourFilters(l.Attrs().Index, dir) {
				if err := netlink.FilterDel(f); err != nil && !errors.Is(err, unix.ENOENT) {
					errs = append(errs, fmt.Errorf("%s: delete clsact filter: %w", l.Attrs().Name, err))
				}
			}
		}
	}
	return errors.Join(errs...)
}

// removeXDPLink unpins the XDP link the older data plane pinned for the
// interface, once the tc hooks run: frames went to XDP until this moment
// and to tc from it, none lost in between.
func (d *Datapath) removeXDPLink(ifname string) {
	path := d.linkPath(ifname)
	l, err := link.LoadPinnedLink(path, nil)
	if err != nil {
		return
	}
	defer l.Close()
	if info, err := l.Info(); err == nil && info.Type == link.XDPType {
		if err := l.Unpin(); err != nil {
			d.log.Warn("could not remove the XDP link of the previous data plane", "ifname", ifname, "err", err)
			return
		}
		d.log.Info("replaced the XDP hook of the previous data plane with tc", "ifname", ifname)
	}
}
