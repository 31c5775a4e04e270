// Package topo builds the benchmark's testbed in network namespaces and
// removes it again:
//
//	ns G  eth0 ── vnet0 ┐                       ┌ up0 ══ p0 ┐
//	                    ns H (system under test) ├ up1 ══ p1 ├ br0 ── sB ══ sA  ns S
//	ns R  eth0 ── vnet1 ┘                       └ up2 ══ p2 ┘  ns U
//
// G is a sending guest, R a receive-only guest, U the upstream switch (a
// Linux bridge that learns from announcements) and S an upstream host.
// With tap uplinks, up0..up2 are taps whose other end is a file
// descriptor held here, and U and S are not built.
package topo

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"

	"github.com/safchain/ethtool"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Kind is what the uplinks are.
type Kind string

const (
	Veth Kind = "veth"
	Tap  Kind = "tap"
)

// Options shape the testbed.
type Options struct {
	Prefix  string // namespace name prefix; a random suffix is added
	Uplinks int    // 1..3
	Kind    Kind
}

// Topo is a built testbed.
type Topo struct {
	Prefix  string
	Kind    Kind
	Uplinks []string                    // in H: up0, up1, ...
	Peers   []string                    // in U: p0, p1, ... (veth only)
	Guests  []string                    // in H: vnet0 (sender G), vnet1 (receive-only R)
	MAC     map[string]net.HardwareAddr // "G", "R", "S" (sA), "br0"
	Taps    []*os.File                  // tap only: the fd side of up0..
	ns      map[string]netns.NsHandle
}

// Roles of the namespaces.
const (
	Host     = "H"
	Upstream = "U"
	Guest    = "G"
	RecvOnly = "R"
	Sender   = "S"
)

// Build creates the testbed; on error everything made so far is removed.
func Build(o Options) (t *Topo, err error) {
	if o.Uplinks < 1 || o.Uplinks > 3 {
		return nil, fmt.Errorf("topo: %d uplinks, want 1..3", o.Uplinks)
	}
	suffix := make([]byte, 3)
	_, _ = rand.Read(suffix)
	t = &Topo{
		Prefix: o.Prefix + hex.EncodeToString(suffix),
		Kind:   o.Kind,
		MAC:    map[string]net.HardwareAddr{},
		ns:     map[string]netns.NsHandle{},
		Guests: []string{"vnet0", "vnet1"},
	}
	defer func() {
		if err != nil {
			t.Destroy()
			t = nil
		}
	}()
	roles := []string{Host, Guest, RecvOnly}
	if o.Kind == Veth {
		roles = append(roles, Upstream, Sender)
	}
	for _, r := range roles {
		if t.ns[r], err = newNS(t.NSName(r)); err != nil {
			return t, err
		}
	}
	for _, r := range roles {
		if err = t.In(r, func() error { return quiet() }); err != nil {
			return t, err
		}
	}
	for i, g := range []string{Guest, RecvOnly} {
		if err = t.veth(Host, t.Guests[i], g, "eth0"); err != nil {
			return t, err
		}
		if err = t.In(g, func() error {
			if err := setUp("eth0"); err != nil {
				return err
			}
			t.MAC[g], err = macOf("eth0")
			return err
		}); err != nil {
			return t, err
		}
	}
	for i := range o.Uplinks {
		t.Uplinks = append(t.Uplinks, fmt.Sprintf("up%d", i))
	}
	switch o.Kind {
	case Veth:
		err = t.buildUpstream()
	case Tap:
		err = t.buildTaps()
	default:
		err = fmt.Errorf("topo: unknown uplink kind %q", o.Kind)
	}
	if err != nil {
		return t, err
	}
	if err = t.In(Host, func() error {
		for _, n := range append(append([]string{}, t.Guests...), t.Uplinks...) {
			if err := setUp(n); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return t, err
	}
	return t, t.enableGRO()
}

// enableGRO gives every veth end NAPI: a frame redirected or XDP_TX'd
// into a veth is delivered only if its peer has an XDP program or GRO
// (design.md §2), and the systems compared do not all attach XDP.
func (t *Topo) enableGRO() error {
	ends := map[string][]string{
		Host: append(append([]string{}, t.Guests...), t.Uplinks...), Guest: {"eth0"}, RecvOnly: {"eth0"},
	}
	if t.Kind == Veth {
		ends[Upstream] = append(append([]string{}, t.Peers...), "sB")
		ends[Sender] = []string{"sA"}
	} else {
		ends[Host] = t.Guests
	}
	for role, names := range ends {
		if err := t.In(role, func() error {
			e, err := ethtool.NewEthtool()
			if err != nil {
				return err
			}
			defer e.Close()
			for _, n := range names {
				if err := e.Change(n, map[string]bool{"rx-gro": true}); err != nil {
					return fmt.Errorf("enable GRO on %s: %w", n, err)
				}
			}
			return nil
		}); err != nil {
			return err
		}
	}
	return nil
}

func (t *Topo) buildUpstream() error {
	if err := t.In(Upstream, func() error {
		return netlink.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br0"}})
	}); err != nil {
		return err
	}
	for i, up := range t.Uplinks {
		p := fmt.Sprintf("p%d", i)
		t.Peers = append(t.Peers, p)
		if err := t.veth(Host, up, Upstream, p); err != nil {
			return err
		}
	}
	if err := t.veth(Sender, "sA", Upstream, "sB"); err != nil {
		return err
	}
	if err := t.In(Upstream, func() error {
		br, err := netlink.LinkByName("br0")
		if err != nil {
			return err
		}
		for _, p := range append(append([]string{}, t.Peers...), "sB") {
			l, err := netlink.LinkByName(p)
			if err != nil {
				return err
			}
			if err := netlink.LinkSetMaster(l, br); err != nil {
				return err
			}
			if err := setUp(p); err != nil {
				return err
			}
		}
		if err := setUp("br0"); err != nil {
			return err
		}
		t.MAC["br0"], err = macOf("br0")
		return err
	}); err != nil {
		return err
	}
	return t.In(Sender, func() error {
		if err := setUp("sA"); err != nil {
			return err
		}
		var err error
		t.MAC[Sender], err = macOf("sA")
		return err
	})
}

// NSName is the name of a role's namespace (ip netns exec works with it).
func (t *Topo) NSName(role string) string { return t.Prefix + strings.ToLower(role) }

// NS is a role's namespace handle.
func (t *Topo) NS(role string) netns.NsHandle { return t.ns[role] }

// In runs fn on an OS thread inside the role's namespace.
func (t *Topo) In(role string, fn func() error) error {
	ns, ok := t.ns[role]
	if !ok {
		return fmt.Errorf("topo: no namespace %q", role)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return err
	}
	defer orig.Close()
	if err := netns.Set(ns); err != nil {
		return err
	}
	defer func() { _ = netns.Set(orig) }()
	return fn()
}

// Cut takes uplink i's carrier away: the upstream end goes down (veth) or
// the tap drops carrier (TUNSETCARRIER), as a pulled cable would.
func (t *Topo) Cut(i int) error { return t.carrier(i, false) }

// Restore gives uplink i its carrier back.
func (t *Topo) Restore(i int) error { return t.carrier(i, true) }

func (t *Topo) carrier(i int, on bool) error {
	if t.Kind == Tap {
		return setTapCarrier(t.Taps[i], on)
	}
	return t.In(Upstream, func() error {
		l, err := netlink.LinkByName(t.Peers[i])
		if err != nil {
			return err
		}
		if on {
			return netlink.LinkSetUp(l)
		}
		return netlink.LinkSetDown(l)
	})
}

// Destroy removes every namespace (and with them every interface).
func (t *Topo) Destroy() {
	for _, f := range t.Taps {
		if f != nil {
			f.Close()
		}
	}
	for role, ns := range t.ns {
		ns.Close()
		_ = netns.DeleteNamed(t.NSName(role))
	}
	t.ns = map[string]netns.NsHandle{}
}

func newNS(name string) (netns.NsHandle, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return 0, err
	}
	defer orig.Close()
	ns, err := netns.NewNamed(name)
	if err != nil {
		return 0, fmt.Errorf("create namespace %s: %w", name, err)
	}
	return ns, netns.Set(orig)
}

// quiet turns off IPv6 autoconfiguration chatter: a receive-only guest
// must stay silent, and counters should count the benchmark's frames.
func quiet() error {
	for _, f := range []string{"all", "default"} {
		if err := os.WriteFile("/proc/sys/net/ipv6/conf/"+f+"/disable_ipv6", []byte("1"), 0o644); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

// veth creates a veth pair with one queue per CPU at each end: a veth
// picks the receiving queue by the sending CPU, so frames sent from two
// CPUs (the switch's redirects on one, the daemon's announcements on the
// other) land on two NAPIs instead of contending for one, as they would not
// on a NIC either.
func (t *Topo) veth(nsA, name, nsB, peer string) error {
	q := runtime.NumCPU()
	return t.In(nsA, func() error {
		return netlink.LinkAdd(&netlink.Veth{
			LinkAttrs:       netlink.LinkAttrs{Name: name, NumTxQueues: q, NumRxQueues: q},
			PeerName:        peer,
			PeerNamespace:   netlink.NsFd(int(t.ns[nsB])),
			PeerNumTxQueues: uint32(q),
			PeerNumRxQueues: uint32(q),
		})
	})
}

func setUp(name string) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return err
	}
	return netlink.LinkSetUp(l)
}

func macOf(name string) (net.HardwareAddr, error) {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return nil, err
	}
	return l.Attrs().HardwareAddr, nil
}

// Ifindex looks name up in a role's namespace.
func (t *Topo) Ifindex(role, name string) (int, error) {
	var idx int
	err := t.In(role, func() error {
		l, err := netlink.LinkByName(name)
		if err != nil {
			return err
		}
		idx = l.Attrs().Index
		return nil
	})
	return idx, err
}

// LinkCount is what an uplink's veth did with the frames XDP redirected
// into it (its ethtool counters tx_queue_N_xdp_xmit and _errors; frames
// through the stack are not in them).
type LinkCount struct {
	// Accepted: put into the peer's ring. A frame accepted but never
	// received there was lost in the link itself, as frames on a cut cable
	// are: a veth peer drops its ring when it goes down.
	Accepted uint64
	// Refused: not taken: the peer was down or its ring full.
	Refused uint64
}

// Count reads uplink i's LinkCount; zero for tap uplinks.
func (t *Topo) Count(i int) (LinkCount, error) {
	if t.Kind != Veth {
		return LinkCount{}, nil
	}
	return t.CountOf(Host, t.Uplinks[i])
}

// CountOf reads the LinkCount of the veth ifname in role's namespace, e.g.
// the sending guest's eth0, whose refusals are frames that never reached
// the switch.
func (t *Topo) CountOf(role, ifname string) (LinkCount, error) {
	var c LinkCount
	err := t.In(role, func() error {
		et, err := ethtool.NewEthtool()
		if err != nil {
			return err
		}
		defer et.Close()
		st, err := et.Stats(ifname)
		if err != nil {
			return fmt.Errorf("ethtool -S %s: %w", ifname, err)
		}
		for k, v := range st {
			if !strings.HasPrefix(k, "tx_queue_") {
				continue
			}
			switch {
			case strings.HasSuffix(k, "_xdp_xmit"):
				c.Accepted += v
			case strings.HasSuffix(k, "_xdp_xmit_errors"):
				c.Refused += v
			}
		}
		return nil
	})
	return c, err
}

// Counts reads every uplink's LinkCount and, last, the sending guest's.
func (t *Topo) Counts() ([]LinkCount, error) {
	out := make([]LinkCount, len(t.Uplinks)+1)
	for i := range t.Uplinks {
		var err error
		if out[i], err = t.Count(i); err != nil {
			return nil, err
		}
	}
	var err error
	out[len(t.Uplinks)], err = t.CountOf(Guest, "eth0")
	return out, err
}
