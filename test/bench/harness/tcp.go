package harness

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"

	"github.com/safchain/ethtool"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/uplinkd/uplinkd/pkg/config"
	"github.com/uplinkd/uplinkd/test/bench/peer"
	"github.com/uplinkd/uplinkd/test/bench/report"
	"github.com/uplinkd/uplinkd/test/bench/topo"
)

// The tcp scenario sends traffic from sockets: the sending guest (G) and
// the upstream host (S) get addresses from the benchmarking range
// 198.18.0.0/15 (RFC 2544), inside their own namespaces only, and their
// stacks send through each system with the veths' default offloads, so
// frames leave as CHECKSUM_PARTIAL and GSO skbs, as a VM's or a
// container's do. Nothing is filtered out: a system that breaks such
// frames shows zero throughput and checksum errors. uplinkd's testbed
// also has a host port, the host's end with an address of the same
// subnet, so the host's own stack (H) talks to the same upstream host.
const (
	tcpGuestAddr    = "198.18.0.1"
	tcpUpstreamAddr = "198.18.0.2"
	tcpHostAddr     = "198.18.0.3"
	tcpPrefixLen    = 24
	tcpHostPort     = "mgmt0" // the host's end of uplinkd's host port
	iperfPort       = 5201
	udpPort         = 5301
	streamPort      = 5401
	// tcpBondName is the bond put under the Linux bridge for its failover
	// row: the classic setup uplinkd would replace.
	tcpBondName = "bond0"
	// tcpBondMiimon is how often the bond checks its members' carrier, ms.
	tcpBondMiimon = 10
)

// socketBed is a testbed with a system running on it and addresses on the
// guest and the upstream host; no generator or receiver is attached, so
// the stacks see every frame.
type socketBed struct {
	tp      *topo.Topo
	sys     system
	setup   string // what fails over, for the failover row
	cleanup teardown
	// hostPort is the host's end of the system's host port, in the host
	// namespace; "": the system has none.
	hostPort string
}

func (b *socketBed) close() { b.cleanup.close() }

// tcpScenario measures TCP bulk, UDP at fixed rates and one TCP connection
// across a failover, for uplinkd, Open vSwitch and the Linux bridge. The
// bulk runs come in rounds, the systems taking turns, with a testbed with
// no switch at all (report.SystemDirect) as the ceiling. uplinkd's host
// port carries the host's own TCP beside the guest's: bulk in the same
// rounds, and a connection across the same cuts.
func (h *harness) tcpScenario(ctx context.Context) {
	if _, err := exec.LookPath("iperf3"); err != nil {
		h.notRun("", "tcp", fmt.Errorf("iperf3 is not installed (scripts/deps.sh installs it): %w", err))
		return
	}
	if h.res.TCP == nil {
		h.res.TCP = &report.TCPResult{}
	}
	var systems []string
	for _, name := range []string{"uplinkd", "ovs", "bridge"} {
		if h.opts.has(name) {
			systems = append(systems, name)
		}
	}
	if len(systems) == 0 {
		return
	}
	failed := map[string]bool{}
	for round := 1; round <= h.opts.SocketRounds; round++ {
		for _, name := range append(slices.Clone(systems), report.SystemDirect) {
			if failed[name] || ctx.Err() != nil {
				continue
			}
			if err := h.tcpRound(ctx, name, round); err != nil {
				failed[name] = true
				h.notRun(name, "tcp", err)
			}
		}
	}
	for _, name := range systems {
		if failed[name] || ctx.Err() != nil {
			continue
		}
		if err := h.tcpFailovers(ctx, name); err != nil {
			h.notRun(name, "tcp", err)
		}
	}
}

// tcpRound runs every iperf3 cell once for one system on a testbed of its
// own; the first round also records the offloads and runs UDP.
func (h *harness) tcpRound(ctx context.Context, name string, round int) error {
	b, err := h.newSocketBed(ctx, name, "ulkb", false)
	if err != nil {
		return err
	}
	defer b.close()
	res := h.res.TCP
	if round == 1 && name != report.SystemDirect {
		offloads, err := b.offloads()
		if err != nil {
			return err
		}
		res.Offloads = append(res.Offloads, offloads...)
		if n, ok := b.sys.(offloadNoter); ok && n.OffloadNote() != "" {
			if res.OffloadNotes == nil {
				res.OffloadNotes = map[string]string{}
			}
			res.OffloadNotes[b.sys.Name()] = n.OffloadNote()
		}
	}
	for _, dir := range []string{report.GuestToUplink, report.UplinkToGuest} {
		for _, streams := range []int{1, 4} {
			// The host port's run right after the guest's of the same
			// cell: the pair the report divides shares the machine's state.
			for _, endpoint := range b.endpoints() {
				r := b.iperf(ctx, endpoint, dir, streams, h.opts.SocketTime)
				r.Round = round
				res.Bulk = append(res.Bulk, r)
				h.opts.Log.Info("tcp bulk", "system", name, "endpoint", endpointName(endpoint), "round", round, "direction", dir,
					"streams", streams, "gbps", r.Gbps, "retransmits", r.Retransmits, "tcp_csum_errors", r.TCPInCsumErrors, "error", r.Error)
			}
		}
	}
	if round != 1 || name == report.SystemDirect {
		return nil
	}
	for _, dir := range []string{report.GuestToUplink, report.UplinkToGuest} {
		for _, mbps := range []int{100, 1000} {
			r := b.udp(ctx, dir, mbps, h.opts.SocketTime)
			res.UDP = append(res.UDP, r)
			h.opts.Log.Info("udp", "system", name, "direction", dir, "mbps", mbps, "sent", r.Sent, "received", r.Received,
				"udp_csum_errors", r.UDPInCsumErrors, "rcvbuf_errors", r.UDPRcvbufErrors, "error", r.Error)
		}
	}
	return nil
}

// tcpFailovers runs the TCP connections across a cut for one system. The
// Linux bridge has one uplink here as everywhere else (a second would
// close a loop through the upstream switch); its failover row runs where
// it sits on an active-backup bond, or, on a kernel without bonding, on
// its one uplink, which the cut takes away.
func (h *harness) tcpFailovers(ctx context.Context, name string) error {
	var bondErr error
	b, err := h.newSocketBed(ctx, name, "ulkb", name == "bridge")
	if name == "bridge" && err != nil {
		// No bonding in the kernel: the bridge's row shows what a cut
		// does to it alone.
		bondErr = err
		h.opts.Log.Warn("tcp failover: no bond under the bridge", "err", err)
		b, err = h.newSocketBed(ctx, name, "ulkb", false)
	}
	if err != nil {
		return err
	}
	trials := b.failovers(ctx, h.opts.TCPFailoverTrials, h.opts.Log)
	b.close()
	survived := 0
	for i := range trials {
		if bondErr != nil {
			trials[i].Note += "; no bond under it: " + bondErr.Error()
		}
		if trials[i].Survived {
			survived++
		}
	}
	h.res.TCP.Failover = append(h.res.TCP.Failover, trials...)
	h.opts.Log.Info("tcp failover trials", "system", name, "setup", b.setup, "trials", len(trials), "survived", survived)
	return nil
}

// startDirect is no switch: the guest's host-side end moves into the upstream
// namespace and joins its bridge, so the guest sits on the upstream
// switch itself, one hop fewer than through any switch on the host.
func startDirect(tp *topo.Topo) (system, error) {
	name := tp.Guests[0]
	up, err := netns.GetFromName(tp.NSName(topo.Upstream))
	if err != nil {
		return nil, fmt.Errorf("direct: upstream namespace: %w", err)
	}
	defer up.Close()
	err = tp.In(topo.Host, func() error {
		l, err := netlink.LinkByName(name)
		if err != nil {
			return err
		}
		return netlink.LinkSetNsFd(l, int(up))
	})
	if err != nil {
		return nil, fmt.Errorf("direct: move %s upstream: %w", name, err)
	}
	err = tp.In(topo.Upstream, func() error {
		l, err := netlink.LinkByName(name)
		if err != nil {
			return err
		}
		br, err := netlink.LinkByName("br0")
		if err != nil {
			return err
		}
		if err := netlink.LinkSetMaster(l, br); err != nil {
			return err
		}
		return netlink.LinkSetUp(l)
	})
	if err != nil {
		return nil, fmt.Errorf("direct: %s into the upstream bridge: %w", name, err)
	}
	return &bare{name: report.SystemDirect}, nil
}

// newSocketBed builds a veth testbed (prefix names its namespaces), starts
// the system and addresses the guest and the upstream host. With bond, the
// system must be the Linux bridge: it gets an active-backup bond over two
// uplinks as its one port upstream.
func (h *harness) newSocketBed(ctx context.Context, name, prefix string, bond bool) (b *socketBed, err error) {
	uplinks := 3
	switch {
	case bond:
		uplinks = 2
	case name == "bridge" || name == report.SystemDirect:
		uplinks = 1
	}
	tp, err := topo.Build(topo.Options{Prefix: prefix, Uplinks: uplinks, Kind: topo.Veth})
	if err != nil {
		return nil, err
	}
	b = &socketBed{tp: tp, setup: uplinkCount(uplinks)}
	b.cleanup = append(b.cleanup, tp.Destroy)
	defer func() {
		if err != nil {
			b.close()
			b = nil
		}
	}()
	work, err := os.MkdirTemp(h.work, name)
	if err != nil {
		return b, err
	}
	if bond {
		if b.sys, err = startBondedBridge(ctx, tp, work); err != nil {
			return b, err
		}
		b.setup = fmt.Sprintf("over %s: active-backup, miimon %d ms, primary %s, 2 uplinks", tcpBondName, tcpBondMiimon, tp.Uplinks[0])
	} else if name == "uplinkd" {
		if b.sys, err = h.startUplinkd(ctx, tp, work, "", []string{tcpHostPort}); err != nil {
			return b, err
		}
		b.hostPort = tcpHostPort
	} else if b.sys, err = h.startSystem(ctx, name, tp, work, ""); err != nil {
		return b, err
	}
	b.cleanup = append(b.cleanup, func() { _ = b.sys.Stop() })
	h.noteVersions(b.sys.Versions())
	if out, err := exec.Command("iperf3", "--version").Output(); err == nil {
		h.res.Env.Versions["iperf3"] = strings.SplitN(strings.TrimSpace(string(out)), "\n", 2)[0]
	}
	addrs := []struct{ role, ifname, addr string }{{topo.Guest, "eth0", tcpGuestAddr}, {topo.Sender, "sA", tcpUpstreamAddr}}
	if b.hostPort != "" {
		addrs = append(addrs, struct{ role, ifname, addr string }{topo.Host, b.hostPort, tcpHostAddr})
	}
	for _, a := range addrs {
		if err := tp.In(a.role, func() error { return addAddr(a.ifname, a.addr) }); err != nil {
			return b, fmt.Errorf("address %s on %s: %w", a.addr, a.ifname, err)
		}
	}
	return b, nil
}

func addAddr(ifname, addr string) error {
	l, err := netlink.LinkByName(ifname)
	if err != nil {
		return err
	}
	a, err := netlink.ParseAddr(fmt.Sprintf("%s/%d", addr, tcpPrefixLen))
	if err != nil {
		return err
	}
	return netlink.AddrAdd(l, a)
}

// bondedBridge is the Linux bridge over an active-backup bond: what users
// run for uplink failover without uplinkd. The bond sends no
// announcements for the guests behind the bridge; the upstream switch
// finds them again when they speak (or floods until then).
type bondedBridge struct {
	peer.System
	tp *topo.Topo
}

func startBondedBridge(ctx context.Context, tp *topo.Topo, work string) (system, error) {
	if ok, reason := peer.Available(peer.BridgeName); !ok {
		return nil, errors.New(reason)
	}
	ns := tp.NSName(topo.Host)
	cmds := [][]string{{"link", "add", tcpBondName, "type", "bond", "mode", "active-backup",
		"miimon", fmt.Sprint(tcpBondMiimon), "primary", tp.Uplinks[0]}}
	for _, up := range tp.Uplinks {
		cmds = append(cmds, []string{"link", "set", up, "down"}, []string{"link", "set", up, "master", tcpBondName},
			[]string{"link", "set", up, "up"})
	}
	cmds = append(cmds, []string{"link", "set", tcpBondName, "up"})
	for i, c := range cmds {
		if out, err := exec.CommandContext(ctx, "ip", append([]string{"-n", ns}, c...)...).CombinedOutput(); err != nil {
			if i == 0 {
				return nil, fmt.Errorf("the kernel cannot create a bond (no bonding driver?): ip %s: %s", strings.Join(c, " "), strings.TrimSpace(string(out)))
			}
			return nil, fmt.Errorf("ip %s: %w: %s", strings.Join(c, " "), err, strings.TrimSpace(string(out)))
		}
	}
	br := &peer.Bridge{}
	err := br.Start(ctx, peer.Topology{HostNS: ns, GuestPorts: tp.Guests, Uplinks: []string{tcpBondName}, WorkDir: work})
	if err != nil {
		_ = br.Stop()
		return nil, err
	}
	return &bondedBridge{System: br, tp: tp}, nil
}

// Active is the bond's active member.
func (b *bondedBridge) Active(context.Context) (string, error) {
	var active string
	err := b.tp.In(topo.Host, func() error {
		l, err := netlink.LinkByName(tcpBondName)
		if err != nil {
			return err
		}
		bond, ok := l.(*netlink.Bond)
		if !ok || bond.ActiveSlave <= 0 {
			return fmt.Errorf("%s has no active member", tcpBondName)
		}
		m, err := netlink.LinkByIndex(bond.ActiveSlave)
		if err != nil {
			return err
		}
		active = m.Attrs().Name
		return nil
	})
	return active, err
}

// offloads reads the offload features of every veth end of the testbed.
func (b *socketBed) offloads() ([]report.OffloadState, error) {
	tp := b.tp
	sides := []struct {
		role  string
		names []string
	}{
		{topo.Guest, []string{"eth0"}},
		{topo.Host, append(append([]string{}, tp.Guests...), tp.Uplinks...)},
		{topo.Upstream, append(append([]string{}, tp.Peers...), "sB")},
		{topo.Sender, []string{"sA"}},
		{topo.RecvOnly, []string{"eth0"}},
	}
	if b.hostPort != "" {
		sides[1].names = append(sides[1].names, b.hostPort, config.SwitchEnd(b.hostPort))
	}
	var out []report.OffloadState
	for _, e := range sides {
		err := tp.In(e.role, func() error {
			et, err := ethtool.NewEthtool()
			if err != nil {
				return err
			}
			defer et.Close()
			for _, n := range e.names {
				f, err := et.Features(n)
				if err != nil {
					return fmt.Errorf("ethtool -k %s: %w", n, err)
				}
				out = append(out, report.OffloadState{System: b.sys.Name(), Namespace: e.role, Interface: n,
					TxCsum: f["tx-checksum-ip-generic"], TSO: f["tx-tcp-segmentation"], GSO: f["tx-generic-segmentation"],
					GRO: f["rx-gro"]})
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// offloadNoter is a system with a setting of its own for frames sent
// with offloads (Open vSwitch's userspace TSO), which the report shows
// beside the offloads.
type offloadNoter interface{ OffloadNote() string }

// endpoints are who sends on the switch's side of the testbed, in turn:
// the guest, and the host through its host port where there is one.
func (b *socketBed) endpoints() []string {
	if b.hostPort == "" {
		return []string{""}
	}
	return []string{"", report.EndpointHostPort}
}

// endpointName is an endpoint for the log.
func endpointName(endpoint string) string {
	if endpoint == "" {
		return "guest"
	}
	return endpoint
}

// near is the namespace and address of an endpoint: the guest's, or the
// host's own on its host port.
func near(endpoint string) (role, addr string) {
	if endpoint == report.EndpointHostPort {
		return topo.Host, tcpHostAddr
	}
	return topo.Guest, tcpGuestAddr
}

// ends says who sends in a direction between an endpoint and the
// upstream host: the sending and the receiving namespace and the
// receiver's address.
func ends(endpoint, dir string) (sender, receiver, addr string) {
	role, roleAddr := near(endpoint)
	if dir == report.UplinkToGuest {
		return topo.Sender, role, roleAddr
	}
	return role, topo.Sender, tcpUpstreamAddr
}

// activeIndex is the position of the system's active uplink in the
// testbed's uplinks.
func (b *socketBed) activeIndex(ctx context.Context) (int, error) {
	name, err := b.sys.Active(ctx)
	if err != nil {
		return 0, fmt.Errorf("active uplink: %w", err)
	}
	i := slices.Index(b.tp.Uplinks, name)
	if i < 0 {
		return 0, fmt.Errorf("active uplink %q is not one of %v", name, b.tp.Uplinks)
	}
	return i, nil
}

// errString is err's text, "" for nil.
func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// udpAddr is addr:port for the UDP stream.
func udpAddr(addr string, port int) *net.UDPAddr {
	return &net.UDPAddr{IP: net.ParseIP(addr).To4(), Port: port}
}

func uplinkCount(n int) string {
	if n == 1 {
		return "1 uplink"
	}
	return fmt.Sprintf("%d uplinks", n)
}
