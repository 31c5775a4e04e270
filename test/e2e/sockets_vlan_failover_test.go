package e2e

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// tagVLAN makes ifname in role's namespace a host on VLAN vid without an
// 802.1Q device (this kernel has none): a tcx program pushes the tag on
// every frame it sends, another pops it from every frame it receives
// (clsact filters where the kernel has no tcx).
// The tag travels as skb metadata, as a VLAN device's would, so offloads
// stay on.
func (l *lab) tagVLAN(role, ifname string, vid uint16) error {
	l.t.Helper()
	push, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: "ulkh5_vlan_push", Type: ebpf.SchedCLS, License: "Dual BSD/GPL",
		Instructions: asm.Instructions{
			// r1 is the skb already.
			asm.Mov.Imm(asm.R2, int32(htons(unix.ETH_P_8021Q))), // __be16
			asm.Mov.Imm(asm.R3, int32(vid)),
			asm.FnSkbVlanPush.Call(),
			asm.Mov.Imm(asm.R0, 0), // TCX_PASS
			asm.Return(),
		},
	})
	if err != nil {
		return fmt.Errorf("load VLAN push program: %w", err)
	}
	pop, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: "ulkh5_vlan_pop", Type: ebpf.SchedCLS, License: "Dual BSD/GPL",
		Instructions: asm.Instructions{
			asm.FnSkbVlanPop.Call(), // no tag: nothing to do
			asm.Mov.Imm(asm.R0, 0),
			asm.Return(),
		},
	})
	if err != nil {
		push.Close()
		return fmt.Errorf("load VLAN pop program: %w", err)
	}
	l.t.Cleanup(func() { push.Close(); pop.Close() })
	var attachErr error
	l.in(role, func() { // tcx and netlink resolve the ifindex in this thread's namespace
		nl, err := netlink.LinkByName(ifname)
		l.check(err)
		index := nl.Attrs().Index
		var links []link.Link
		var tcxErr error
		for _, a := range []struct {
			prog *ebpf.Program
			at   ebpf.AttachType
		}{{push, ebpf.AttachTCXEgress}, {pop, ebpf.AttachTCXIngress}} {
			lk, err := link.AttachTCX(link.TCXOptions{Interface: index, Program: a.prog, Attach: a.at})
			if err != nil {
				tcxErr = err
				break
			}
			links = append(links, lk)
		}
		if len(links) == 2 {
			l.t.Cleanup(func() { links[0].Close(); links[1].Close() })
			return
		}
		for _, lk := range links {
			lk.Close()
		}
		// No tcx (before 6.6): the same programs as clsact filters. Both
		// return 0, which is TCX_PASS and TC_ACT_OK alike.
		if err := attachClsact(index, push, pop); err != nil {
			attachErr = fmt.Errorf("attach VLAN tagger to %s in %s: tcx: %v; clsact: %w", ifname, role, tcxErr, err)
		}
	})
	return attachErr
}

// attachClsact adds a clsact qdisc to the interface with egress as its
// egress filter and ingress as its ingress filter (direct action). The
// namespace's removal takes them away.
func attachClsact(ifindex int, egress, ingress *ebpf.Program) error {
	qdisc := &netlink.GenericQdisc{
		QdiscAttrs: netlink.QdiscAttrs{LinkIndex: ifindex, Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_CLSACT},
		QdiscType:  "clsact",
	}
	if err := netlink.QdiscReplace(qdisc); err != nil {
		return fmt.Errorf("add clsact qdisc: %w", err)
	}
	for _, f := range []struct {
		prog   *ebpf.Program
		parent uint32
	}{{egress, netlink.HANDLE_MIN_EGRESS}, {ingress, netlink.HANDLE_MIN_INGRESS}} {
		filter := &netlink.BpfFilter{
			FilterAttrs: netlink.FilterAttrs{LinkIndex: ifindex, Parent: f.parent, Handle: 1, Priority: 1, Protocol: unix.ETH_P_ALL},
			Fd:          f.prog.FD(), Name: "ulke-vlan-tagger", DirectAction: true,
		}
		if err := netlink.FilterReplace(filter); err != nil {
			return fmt.Errorf("add BPF filter: %w", err)
		}
	}
	return nil
}

// TestSocketTrafficVLAN: TCP and UDP on VLAN 100 with default offloads, G1
// untagged behind an access port (vnet1, vlan 100) and G0 sending tagged
// frames into a trunk port (vnet0, trunk [100]); the upstream host is on
// VLAN 100 too. Both guests reach it and each other, and their frames
// leave the uplink tagged 100.
func TestSocketTrafficVLAN(t *testing.T) {
	const vlan = 100
	l := newLab(t, labOptions{failback: true, guestPorts: fmt.Sprintf("[{name: vnet0, trunk: [%d]}, {name: vnet1, vlan: %d}]", vlan, vlan)})
	before := l.requireDefaultOffloads()
	if err := l.tagVLAN("U", "br0", vlan); err != nil {
		t.Fatal(err)
	}
	if err := l.tagVLAN("G0", "eth0", vlan); err != nil {
		t.Fatal(err)
	}
	l.startDaemon()
	l.waitActive("up0")
	l.checkOffloadsKept(before)
	tags := l.watchTags("p0")
	g0, g1 := guestHost(0), guestHost(1)
	for _, c := range []struct {
		from, to endpoint
		in       string
	}{
		{g1, upstreamHost, "vnet1"}, // access port
		{upstreamHost, g1, "up0"},
		{g0, upstreamHost, "vnet0"}, // trunk port, tagged guest
		{upstreamHost, g0, "up0"},
		{g0, g1, "vnet0"}, // trunk -> access
		{g1, g0, "vnet1"}, // access -> trunk
	} {
		t.Run(fmt.Sprintf("tcp-%s-%s", c.from, c.to), func(t *testing.T) { l.tcpBulk(t, c.from, c.to, 1, c.in, 1500) })
		t.Run(fmt.Sprintf("udp-%s-%s", c.from, c.to), func(t *testing.T) { l.udpBurst(t, c.from, c.to, 1000, 1400) })
	}
	t.Run("tcp-G0-U-x4", func(t *testing.T) { l.tcpBulk(t, g0, upstreamHost, 4, "vnet0", 1500) })
	for _, g := range []string{"G0", "G1"} {
		got := tags.vlans(l.macs[g].String())
		if len(got) == 0 || slices.ContainsFunc(got, func(v uint16) bool { return v != vlan }) {
			t.Errorf("%s's frames reached p0 on VLANs %v (first of %d), want only %d", g, got[:min(len(got), 10)], len(got), vlan)
		}
	}
	l.checkOffloadsKept(before)
}

// TestSocketsAcrossFailover: a TCP stream each way between G0 and the
// upstream host, at full speed with default offloads, and UDP datagrams
// each way, survive a cut of the active uplink and the failback when it
// returns: no reset, bytes and datagrams keep arriving after each switch;
// the longest stall and the datagrams lost are logged.
func TestSocketsAcrossFailover(t *testing.T) {
	l := newLab(t, labOptions{failback: true})
	before := l.requireDefaultOffloads()
	l.startDaemon()
	l.waitActive("up0")
	l.checkOffloadsKept(before)
	csum := l.sockSNMPAll()
	g0 := guestHost(0)
	flows := []*tcpFlow{l.startTCP(t, g0, upstreamHost, 1), l.startTCP(t, upstreamHost, g0, 1)}
	udp := []*probes{l.udpProbes(g0, upstreamHost), l.udpProbes(upstreamHost, g0)}
	const phase = time.Second
	m := l.failoverAndBack(phase, func() []int64 { return receivedBy(flows) })
	for _, p := range udp {
		p.finish()
	}
	spans := []span{{"failover", m.cutAt, m.restoreAt}, {"failback", m.restoreAt, m.endAt}}
	checkTCPAcross(t, "guest", flows, spans, [][]int64{m.atCut, m.atRestore, m.atEnd}, phase)
	for _, p := range udp {
		for _, s := range spans {
			f := p.lossIn(s.from, s.to)
			t.Logf("FIGURES %s around the %s: %v", p.name, s.name, f)
			// What is in flight at the cut is lost; an outage beyond a
			// quarter of a phase is a switch that did not happen.
			if !f.answers || f.gap >= phase || f.outage >= phase/4 {
				t.Errorf("%s around the %s: %v, a datagram in it %t", p.name, s.name, f, f.answers)
			}
		}
		if p.bad > 0 {
			t.Errorf("%s: %d datagrams not matching what was sent", p.name, p.bad)
		}
	}
	if errs := l.csumErrorsSince(csum); len(errs) > 0 {
		t.Errorf("checksum errors: %v", errs)
	}
}
