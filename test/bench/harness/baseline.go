package harness

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/uplinkd/uplinkd/test/bench/report"
	"github.com/uplinkd/uplinkd/test/bench/topo"
)

const tcActShot = 2 // TC_ACT_SHOT

// startDropper is the CPU baseline, no switch: a tc ingress program on the
// host end of the sending guest's link and of the uplink drops every
// frame. Up to that hook a frame costs every system the same (the
// engine's send, the veth, NAPI and GRO, the skb's arrival in the stack);
// after it each system does its own switching. tc rather than XDP_DROP:
// an XDP program on the host end would change the veth's receive path
// (the skb becomes an xdp_buff, GRO is skipped) and measure a path the
// bridge and uplinkd's tc hooks never take.
func startDropper(tp *topo.Topo) (system, error) {
	return attachBare(tp, report.SystemBaseline, func(int) asm.Instructions {
		return asm.Instructions{asm.LoadImm(asm.R0, tcActShot, asm.DWord), asm.Return()}
	})
}

// attachTCIngress attaches prog at tcx ingress of ifindex (in the
// calling thread's namespace), or where the kernel lacks tcx (before
// 6.6), as a direct-action filter on a clsact qdisc.
func attachTCIngress(ifindex int, prog *ebpf.Program) (detach func() error, err error) {
	l, err := link.AttachTCX(link.TCXOptions{Interface: ifindex, Program: prog, Attach: ebpf.AttachTCXIngress})
	if err == nil {
		return l.Close, nil
	}
	if !errors.Is(err, ebpf.ErrNotSupported) {
		return nil, fmt.Errorf("tcx: %w", err)
	}
	qdisc := &netlink.GenericQdisc{QdiscAttrs: netlink.QdiscAttrs{LinkIndex: ifindex,
		Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_CLSACT}, QdiscType: "clsact"}
	if err := netlink.QdiscReplace(qdisc); err != nil {
		return nil, fmt.Errorf("clsact qdisc: %w", err)
	}
	filter := &netlink.BpfFilter{FilterAttrs: netlink.FilterAttrs{LinkIndex: ifindex, Parent: netlink.HANDLE_MIN_INGRESS,
		Handle: netlink.MakeHandle(0, 1), Protocol: unix.ETH_P_ALL, Priority: 1},
		Fd: prog.FD(), Name: prog.String(), DirectAction: true}
	if err := netlink.FilterReplace(filter); err != nil {
		_ = netlink.QdiscDel(qdisc)
		return nil, fmt.Errorf("clsact filter: %w", err)
	}
	return func() error { return netlink.QdiscDel(qdisc) }, nil
}

// startTCForwarder is a bare tc redirect (bpf_redirect) between the
// sending guest's port and the first uplink, each way, at the same hook
// uplinkd's programs use, nothing else: what a tc switch that redirects
// so costs at least.
func startTCForwarder(tp *topo.Topo) (system, error) {
	return attachBare(tp, report.SystemTCRedirect, func(to int) asm.Instructions {
		return asm.Instructions{asm.Mov.Imm(asm.R1, int32(to)), asm.Mov.Imm(asm.R2, 0), asm.FnRedirect.Call(), asm.Return()}
	})
}

// attachBare puts a tc program of its own at ingress of the sending
// guest's host end and of the first uplink; prog(to) is the program for
// a port, to the other one's ifindex.
func attachBare(tp *topo.Topo, name string, prog func(to int) asm.Instructions) (system, error) {
	b := &bare{name: name}
	err := tp.In(topo.Host, func() error {
		guest, err := ifindexHere(tp.Guests[0])
		if err != nil {
			return err
		}
		up, err := ifindexHere(tp.Uplinks[0])
		if err != nil {
			return err
		}
		for _, pair := range [][2]int{{guest, up}, {up, guest}} {
			p, err := ebpf.NewProgram(&ebpf.ProgramSpec{
				Name: "bench_" + name, Type: ebpf.SchedCLS, License: "Dual BSD/GPL", Instructions: prog(pair[1]),
			})
			if err != nil {
				return fmt.Errorf("%s: load: %w", name, err)
			}
			b.stop = append(b.stop, p.Close)
			detach, err := attachTCIngress(pair[0], p)
			if err != nil {
				return fmt.Errorf("%s: attach: %w", name, err)
			}
			b.stop = append(b.stop, func() error { return tp.In(topo.Host, detach) })
		}
		return nil
	})
	if err != nil {
		_ = b.Stop()
		return nil, err
	}
	return b, nil
}
