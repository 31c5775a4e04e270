// Package vethpeer makes sure a veth the data plane redirects into can
// receive redirected frames.
//
// An XDP_REDIRECT into a veth hands the frame to the veth's peer, which
// takes it only if it runs NAPI: a native-mode XDP program attached to the
// peer, or GRO enabled on it. Otherwise the kernel drops every frame and
// counts it only as an xmit error. GRO is off on a fresh veth (kernel 6.18),
// so Ensure turns it on, or says exactly what to do when it cannot.
//
// Ensure works on an interface of the caller's network namespace; the peer
// may live in another namespace, which is found through its netns id.
package vethpeer

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/safchain/ethtool"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Result modes.
const (
	ModeNotVeth    = "not-veth"     // nothing to ensure
	ModePeerHasXDP = "peer-has-xdp" // the peer runs a native XDP program
	ModePeerGROOn  = "peer-gro-on"  // GRO was already on on the peer
	ModeEnabledGRO = "enabled-gro"  // Ensure turned GRO on on the peer
)

// groFeature is the ethtool feature name of GRO (`ethtool -k` shows it as
// generic-receive-offload).
const groFeature = "rx-gro"

// Result says what Ensure found or did.
type Result struct {
	Ifname      string
	IsVeth      bool
	PeerIfindex int    // in the peer's namespace
	PeerName    string // empty if the peer could not be looked at
	PeerNetnsID int    // netns id of the peer's namespace as seen from ours; -1: same namespace
	Mode        string
}

// Ensure checks that frames redirected into ifname can be received and,
// for a veth whose peer has neither a native XDP program nor GRO, enables
// GRO on the peer. The error names the port, the peer and the fix.
func Ensure(ifname string) (Result, error) {
	res := Result{Ifname: ifname, PeerNetnsID: -1}
	link, err := netlink.LinkByName(ifname)
	if err != nil {
		return res, fmt.Errorf("look up %s: %w", ifname, err)
	}
	veth, ok := link.(*netlink.Veth)
	if !ok {
		res.Mode = ModeNotVeth
		return res, nil
	}
	res.IsVeth = true

	if res.PeerIfindex, err = netlink.VethPeerIndex(veth); err != nil {
		return res, fmt.Errorf("find the peer of veth %s: %w", ifname, err)
	}
	peerNS := netns.None()
	if nsid := link.Attrs().NetNsID; nsid >= 0 {
		res.PeerNetnsID = nsid
		if peerNS, err = findNetns(nsid); err != nil {
			return res, res.fail(fmt.Errorf("find the peer's network namespace (netns id %d): %w", nsid, err))
		}
		defer peerNS.Close()
	}

	h, err := netlink.NewHandleAt(peerNS, unix.NETLINK_ROUTE)
	if err != nil {
		return res, res.fail(fmt.Errorf("open netlink in the peer's namespace: %w", err))
	}
	defer h.Close()
	peer, err := h.LinkByIndex(res.PeerIfindex)
	if err != nil {
		return res, res.fail(fmt.Errorf("look up the peer: %w", err))
	}
	res.PeerName = peer.Attrs().Name

	// Only a native (driver) program gives the peer NAPI; a generic-mode
	// one runs after the point where redirected frames are dropped. With
	// several modes attached netlink does not say whether one is native,
	// so GRO is ensured then too (harmless next to XDP).
	if xdp := peer.Attrs().Xdp; xdp != nil && xdp.AttachMode == nl.XDP_ATTACHED_DRV {
		res.Mode = ModePeerHasXDP
		return res, nil
	}

	var groWasOn bool
	err = withEthtool(peerNS, func(et *ethtool.Ethtool) error {
		on, err := groOn(et, res.PeerName)
		if err != nil {
			return err
		}
		if groWasOn = on; on {
			return nil
		}
		if err := et.Change(res.PeerName, map[string]bool{groFeature: true}); err != nil {
			return fmt.Errorf("enable GRO: %w", err)
		}
		if on, err = groOn(et, res.PeerName); err != nil {
			return err
		} else if !on {
			return errors.New("GRO is still off after enabling it")
		}
		return nil
	})
	if err != nil {
		return res, res.fail(err)
	}
	res.Mode = ModeEnabledGRO
	if groWasOn {
		res.Mode = ModePeerGROOn
	}
	return res, nil
}

// fail wraps err with what is at stake and how to fix it by hand.
func (res Result) fail(err error) error {
	peer := res.PeerName
	if peer == "" {
		peer = fmt.Sprintf("ifindex %d", res.PeerIfindex)
	}
	where := "in this network namespace"
	if res.PeerNetnsID >= 0 {
		where = fmt.Sprintf("in the peer's network namespace (netns id %d as seen from %s's namespace)", res.PeerNetnsID, res.Ifname)
	}
	return fmt.Errorf("veth %s: its peer %s cannot receive redirected frames (XDP_REDIRECT into %s would be dropped): %w; "+
		"fix: run `ethtool -K %s gro on` %s, or attach a native XDP program to %s there",
		res.Ifname, peer, res.Ifname, err, peerOr(res.PeerName, "<peer>"), where, peerOr(res.PeerName, "the peer"))
}

func peerOr(name, alt string) string {
	if name == "" {
		return alt
	}
	return name
}

func groOn(et *ethtool.Ethtool, ifname string) (bool, error) {
	features, err := et.Features(ifname)
	if err != nil {
		return false, fmt.Errorf("read features of %s: %w", ifname, err)
	}
	on, ok := features[groFeature]
	if !ok {
		return false, fmt.Errorf("%s has no %s feature", ifname, groFeature)
	}
	return on, nil
}

// withEthtool runs fn with an ethtool handle whose socket lives in ns (the
// kernel resolves interface names in the socket's namespace). ns None
// means the caller's namespace.
func withEthtool(ns netns.NsHandle, fn func(*ethtool.Ethtool) error) error {
	var (
		et  *ethtool.Ethtool
		err error
	)
	if ns.IsOpen() {
		err = inNetns(ns, func() (err error) {
			et, err = ethtool.NewEthtool()
			return err
		})
	} else {
		et, err = ethtool.NewEthtool()
	}
	if err != nil {
		return fmt.Errorf("open ethtool socket: %w", err)
	}
	defer et.Close()
	return fn(et)
}

// inNetns runs fn on a dedicated OS thread inside ns. The thread goes back
// to its namespace afterwards; if it cannot, it is left locked and dies
// with its goroutine instead of serving other goroutines in the wrong one.
func inNetns(ns netns.NsHandle, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("get current network namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter network namespace: %w", err)
			return
		}
		fnErr := fn()
		if err := netns.Set(orig); err != nil {
			errc <- errors.Join(fnErr, fmt.Errorf("return to the original network namespace: %w", err))
			return
		}
		runtime.UnlockOSThread()
		errc <- fnErr
	}()
	return <-errc
}

// findNetns opens the namespace that has netns id nsid in the caller's
// namespace. Candidates are the named namespaces (/run/netns) and those of
// running processes, each looked at once.
func findNetns(nsid int) (netns.NsHandle, error) {
	var paths []string
	named, _ := filepath.Glob("/run/netns/*")
	paths = append(paths, named...)
	procs, _ := filepath.Glob("/proc/[0-9]*/ns/net")
	paths = append(paths, procs...)

	type nsKey struct{ dev, ino uint64 }
	seen := map[nsKey]bool{}
	for _, p := range paths {
		var st unix.Stat_t
		if err := unix.Stat(p, &st); err != nil {
			continue // process gone, or not a namespace
		}
		key := nsKey{uint64(st.Dev), st.Ino}
		if seen[key] {
			continue
		}
		seen[key] = true
		h, err := netns.GetFromPath(p)
		if err != nil {
			continue
		}
		id, err := netlink.GetNetNsIdByFd(int(h))
		if err == nil && id == nsid {
			return h, nil
		}
		h.Close()
	}
	return netns.None(), fmt.Errorf("no named namespace (/run/netns) or process (/proc/*/ns/net) has it: %w", os.ErrNotExist)
}
