package harness

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/uplinkd/uplinkd/test/bench/report"
	"github.com/uplinkd/uplinkd/test/bench/topo"
)

// dropper is the CPU baseline, no switch: a tc ingress program on the
// host end of the sending guest's link and of the uplink drops every
// frame. Up to that hook a frame costs every system the same (the
// engine's send, the veth, NAPI and GRO, the skb's arrival in the stack);
// after it each system does its own switching. tc rather than XDP_DROP:
// an XDP program on the host end would change the veth's receive path
// (the skb becomes an xdp_buff, GRO is skipped) and measure a path the
// bridge and uplinkd's tc hooks never take.
type dropper struct{ stop []func() error }

const tcActShot = 2 // TC_ACT_SHOT

func startDropper(tp *topo.Topo) (system, error) {
	d := &dropper{}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: "bench_drop", Type: ebpf.SchedCLS, License: "Dual BSD/GPL",
		Instructions: asm.Instructions{asm.LoadImm(asm.R0, tcActShot, asm.DWord), asm.Return()},
	})
	if err != nil {
		return nil, fmt.Errorf("baseline: load the drop program: %w", err)
	}
	d.stop = append(d.stop, prog.Close)
	err = tp.In(topo.Host, func() error {
		for _, name := range []string{tp.Guests[0], tp.Uplinks[0]} {
			idx, err := ifindexHere(name)
			if err != nil {
				return err
			}
			detach, err := attachTCIngress(idx, prog)
			if err != nil {
				return fmt.Errorf("baseline: drop on %s: %w", name, err)
			}
			d.stop = append(d.stop, func() error { return tp.In(topo.Host, detach) })
		}
		return nil
	})
	if err != nil {
		_ = d.Stop()
		return nil, err
	}
	return d, nil
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

func (d *dropper) Name() string                                     { return report.SystemBaseline }
func (d *dropper) Active(context.Context) (string, error)           { return "", nil }
func (d *dropper) SwitchTimes(context.Context) ([]time.Time, error) { return nil, nil }
func (d *dropper) Versions() map[string]string                      { return nil }

// Stop detaches in reverse order, the program last.
func (d *dropper) Stop() error {
	var errs []error
	for i := len(d.stop) - 1; i >= 0; i-- {
		errs = append(errs, d.stop[i]())
	}
	d.stop = nil
	return errors.Join(errs...)
}

// tcForwarder is the floor of any switch on skbs: a bare tc redirect
// between the sending guest's port and the first uplink, each way, at
// the same hook uplinkd's programs use, nothing else.
type tcForwarder struct{ dropper }

func startTCForwarder(tp *topo.Topo) (system, error) {
	f := &tcForwarder{}
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
			prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
				Name: "bench_tc_fwd", Type: ebpf.SchedCLS, License: "Dual BSD/GPL",
				Instructions: asm.Instructions{
					asm.Mov.Imm(asm.R1, int32(pair[1])),
					asm.Mov.Imm(asm.R2, 0),
					asm.FnRedirect.Call(),
					asm.Return(),
				},
			})
			if err != nil {
				return fmt.Errorf("tcfwd: load: %w", err)
			}
			f.stop = append(f.stop, prog.Close)
			detach, err := attachTCIngress(pair[0], prog)
			if err != nil {
				return fmt.Errorf("tcfwd: attach: %w", err)
			}
			f.stop = append(f.stop, func() error { return tp.In(topo.Host, detach) })
		}
		return nil
	})
	if err != nil {
		_ = f.Stop()
		return nil, err
	}
	return f, nil
}

func (f *tcForwarder) Name() string { return report.SystemTCRedirect }
