package harness

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/uplinkd/uplinkd/pkg/version"
	"github.com/uplinkd/uplinkd/test/bench/benchbpf"
	"github.com/uplinkd/uplinkd/test/bench/peer"
	"github.com/uplinkd/uplinkd/test/bench/report"
	"github.com/uplinkd/uplinkd/test/bench/topo"
)

// system is a switch under test, started on a testbed.
type system interface {
	Name() string
	Active(ctx context.Context) (string, error)
	SwitchTimes(ctx context.Context) ([]time.Time, error)
	Stop() error
	Versions() map[string]string
}

type harness struct {
	opts   Options
	res    *report.Result
	work   string
	engine string // benchbpf engine name, resolved from opts.Engine
}

// Run measures what opts ask for and returns the result; a system or
// scenario that cannot run is listed in NotRun with the reason.
func Run(ctx context.Context, opts Options) (*report.Result, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("the benchmark needs root (namespaces, XDP)")
	}
	work, err := os.MkdirTemp("", "uplinkbench")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	h := &harness{opts: o, work: work, res: &report.Result{
		Version: version.String(), Profile: o.Profile, Command: strings.Join(os.Args, " "),
		Started: time.Now(), Env: environment(),
	}}
	engine, reason, err := benchbpf.ChooseEngine(o.Engine)
	if err != nil {
		return nil, err
	}
	h.engine = engine
	h.res.Engine = &report.Engine{Name: engine, Reason: reason}
	o.Log.Info("traffic engine", "engine", engine, "reason", reason)
	if h.res.Engine.Ceiling, err = h.engineCeiling(ctx); err != nil {
		// The figures are still worth having; the report lacks the mark.
		o.Log.Warn("engine ceiling not measured", "engine", engine, "err", err)
		h.notRun(engine, "engine ceiling", err)
	}
	if o.wants("failover") {
		h.failover(ctx)
	}
	if o.wants("forward") {
		h.forward(ctx)
	}
	if o.wants("balance") && o.has("uplinkd") {
		h.balanceScenario(ctx)
	}
	if o.wants("upgrade") && o.has("uplinkd") {
		h.upgradeScenario(ctx)
	}
	if o.wants("tcp") {
		h.tcpScenario(ctx)
	}
	if o.wants("idle") && o.has("uplinkd") {
		h.idleScenario(ctx)
	}
	h.res.Finished = time.Now()
	return h.res, ctx.Err()
}

func (h *harness) notRun(system, scenario string, err error) {
	h.opts.Log.Warn("not run", "system", system, "scenario", scenario, "reason", err)
	h.res.NotRun = append(h.res.NotRun, report.NotRun{System: system, Scenario: scenario, Reason: err.Error()})
}

func (h *harness) failover(ctx context.Context) {
	o := h.opts
	for _, name := range []string{"uplinkd", "ovs"} {
		if !o.has(name) {
			continue
		}
		for _, kind := range o.Uplinks {
			if ctx.Err() != nil {
				return
			}
			scenario := "failover/" + kind
			if name == "ovs" && kind == "tap" {
				h.notRun(name, scenario, errors.New("the tap testbed has no upstream switch for an OVS bond's frames to reach a receiver in; OVS is compared on veth"))
				continue
			}
			b, err := h.newBed(ctx, name, topo.Kind(kind))
			if err != nil {
				h.notRun(name, scenario, err)
				continue
			}
			err = h.failoverSeries(ctx, b, kind)
			b.close()
			if err != nil {
				h.notRun(name, scenario, err)
			}
		}
	}
}

func (h *harness) failoverSeries(ctx context.Context, b *bed, kind string) error {
	o := h.opts
	run := func(guests, rate int, second bool) error {
		for trial := 1; trial <= o.Trials; trial++ {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			t, err := h.failoverTrial(ctx, b, kind, guests, rate, trial, second)
			if err != nil {
				return fmt.Errorf("%d guests, %d pps, trial %d: %w", guests, rate, trial, err)
			}
			h.res.Failover = append(h.res.Failover, t)
			h.opts.Log.Info("failover trial", "system", t.System, "uplink", kind, "guests", guests, "pps", rate,
				"second", second, "trial", trial, "lost", t.Lost, "near_cut", t.LostNearCut, "in_links", t.LostInLinks, "full_ring", t.LostAtFullRing, "sent", t.Sent,
				"interruption", time.Duration(t.InterruptionNs), "cut_to_switch", time.Duration(t.CutToSwitchNs), "cut_call", time.Duration(t.CutCallNs), "by", t.SwitchedBy)
		}
		return nil
	}
	for _, g := range o.Guests {
		if err := run(g, o.RatePPS, false); err != nil {
			return err
		}
	}
	if len(b.tp.Uplinks) >= 3 {
		if err := run(64, o.RatePPS, true); err != nil {
			return err
		}
	}
	if b.sys.Name() == "uplinkd" && kind == "veth" && o.HighRatePPS > 0 {
		if err := run(1, o.HighRatePPS, false); err != nil {
			return err
		}
	}
	if kind == "veth" {
		// Planned switches: uplinkd at its high rate, everyone at the
		// common one.
		rates := []int{o.RatePPS}
		if b.sys.Name() == "uplinkd" && o.HighRatePPS > 0 {
			rates = append(rates, o.HighRatePPS)
		}
		for _, rate := range rates {
			for trial := 1; trial <= o.Trials; trial++ {
				t, err := h.plannedTrial(ctx, b, rate, trial)
				if err != nil {
					return fmt.Errorf("planned switch, %d pps, trial %d: %w", rate, trial, err)
				}
				h.res.Failover = append(h.res.Failover, t)
				h.opts.Log.Info("planned switch trial", "system", t.System, "pps", rate, "trial", trial,
					"lost", t.Lost, "sent", t.Sent, "note", t.Note)
			}
		}
	}
	return nil
}

func (h *harness) forward(ctx context.Context) {
	measured := false
	for _, name := range []string{"uplinkd", "ovs", "bridge", "tcfwd", "xdpfwd"} {
		if !h.opts.has(name) || ctx.Err() != nil {
			continue
		}
		b, err := h.newBed(ctx, name, topo.Veth)
		if err != nil {
			h.notRun(name, "forward", err)
			continue
		}
		rounds, err := h.forwardRounds(ctx, b)
		if err != nil {
			b.close()
			h.notRun(name, "forward", err)
			continue
		}
		h.res.Forwarding = append(h.res.Forwarding, rounds...)
		if h.opts.CPURatePPS > 0 {
			cpu, err := h.cpuRounds(ctx, b)
			h.res.CPUCost = append(h.res.CPUCost, cpu...)
			if err != nil {
				h.notRun(name, "forward/cpu", err)
			}
			measured = measured || len(cpu) > 0
		}
		b.close()
	}
	if !measured || ctx.Err() != nil {
		return
	}
	// The baseline, no switch, at the same rate: what the engine and the
	// links cost every system.
	b, err := h.newBed(ctx, report.SystemBaseline, topo.Veth)
	if err != nil {
		h.notRun(report.SystemBaseline, "forward/cpu", err)
		return
	}
	defer b.close()
	cpu, err := h.cpuRounds(ctx, b)
	h.res.CPUCost = append(h.res.CPUCost, cpu...)
	if err != nil {
		h.notRun(report.SystemBaseline, "forward/cpu", err)
	}
}

// newBed builds a testbed, starts the system on it and attaches the
// generator and receivers.
func (h *harness) newBed(ctx context.Context, name string, kind topo.Kind) (b *bed, err error) {
	uplinks := 3
	if name == "bridge" || name == "xdpfwd" || name == "tcfwd" || name == report.SystemBaseline {
		uplinks = 1 // no failover: one uplink, or the upstream bridge would loop
	}
	return h.newBedWith(ctx, name, kind, uplinks, "")
}

// noteVersions records the versions a system reports in the
// results' environment.
func (h *harness) noteVersions(versions map[string]string) {
	if h.res.Env.Versions == nil { // a harness a test made without environment()
		h.res.Env.Versions = map[string]string{}
	}
	maps.Copy(h.res.Env.Versions, versions)
}

// teardown is what a testbed undoes when it closes, last step first.
type teardown []func()

func (td teardown) close() {
	for i := len(td) - 1; i >= 0; i-- {
		td[i]()
	}
}

// newBedWith is newBed with the number of uplinks and, for uplinkd, the
// group mode ("": its default).
func (h *harness) newBedWith(ctx context.Context, name string, kind topo.Kind, uplinks int, mode string) (b *bed, err error) {
	tp, err := topo.Build(topo.Options{Prefix: "ulkb", Uplinks: uplinks, Kind: kind})
	if err != nil {
		return nil, err
	}
	b = &bed{tp: tp, recvSlot: -1}
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
	if b.sys, err = h.startSystem(ctx, name, tp, work, mode); err != nil {
		return b, err
	}
	b.cleanup = append(b.cleanup, func() { _ = b.sys.Stop() })
	h.noteVersions(b.sys.Versions())

	if b.gen, err = benchbpf.NewEngine(h.engine); err != nil {
		return b, err
	}
	b.cleanup = append(b.cleanup, func() { b.gen.Close() })
	if kind == topo.Tap {
		tr := newTapRecorder(tp.Taps)
		b.rec = tr
		b.cleanup = append(b.cleanup, tr.close)
		return b, nil
	}
	if b.down, err = benchbpf.NewEngine(h.engine); err != nil {
		return b, err
	}
	b.cleanup = append(b.cleanup, func() { b.down.Close() })
	xr := &xdpRecorder{slots: map[int]rxSlot{}}
	b.rec = xr
	// attach puts a receiver on the interfaces of one namespace.
	attach := func(role string, ifnames []string, firstSlot int) error {
		rx, err := benchbpf.NewReceiver()
		if err != nil {
			return err
		}
		xr.all = append(xr.all, rx)
		b.cleanup = append(b.cleanup, func() { rx.Close() })
		return tp.In(role, func() error {
			for i, ifname := range ifnames {
				idx, err := ifindexHere(ifname)
				if err != nil {
					return err
				}
				detach, err := rx.Attach(idx, i)
				if err != nil {
					return fmt.Errorf("receiver on %s: %w", ifname, err)
				}
				xr.slots[firstSlot+i] = rxSlot{rx: rx, slot: i}
				b.cleanup = append(b.cleanup, func() { _ = tp.In(role, func() error { return detach() }) })
			}
			return nil
		})
	}
	if err := attach(topo.Upstream, tp.Peers, 0); err != nil {
		return b, err
	}
	if err := attach(topo.RecvOnly, []string{"eth0"}, slotRecvOnly); err != nil {
		return b, err
	}
	if err := attach(topo.Guest, []string{"eth0"}, slotGuest); err != nil {
		return b, err
	}
	b.recvSlot = slotRecvOnly
	return b, nil
}

func (h *harness) startSystem(ctx context.Context, name string, tp *topo.Topo, work, mode string) (system, error) {
	switch name {
	case "uplinkd":
		return h.startUplinkd(ctx, tp, work, mode, nil)
	case "xdpfwd":
		return startXDPForwarder(tp)
	case report.SystemBaseline:
		return startDropper(tp)
	case report.SystemTCRedirect:
		return startTCForwarder(tp)
	case report.SystemDirect:
		return startDirect(tp)
	default:
		if ok, reason := peer.Available(name); !ok {
			return nil, errors.New(reason)
		}
		s, err := peer.New(name)
		if err != nil {
			return nil, err
		}
		if err := s.Start(ctx, peer.Topology{HostNS: tp.NSName(topo.Host), GuestPorts: tp.Guests, Uplinks: tp.Uplinks, WorkDir: work}); err != nil {
			_ = s.Stop()
			return nil, err
		}
		return s, nil
	}
}

// startUplinkd starts uplinkd on the testbed; hostPorts name the host
// ports its group gets (none elsewhere than the tcp scenario).
func (h *harness) startUplinkd(ctx context.Context, tp *topo.Topo, work, mode string, hostPorts []string) (*uplinkdSystem, error) {
	u := newUplinkd(h.opts.BinDir, h.opts.UplinkdPoll)
	u.mode, u.hostPorts = mode, hostPorts
	if err := u.Start(ctx, tp.NSName(topo.Host), tp.Guests, tp.Uplinks, work); err != nil {
		_ = u.Stop()
		return nil, err
	}
	return u, nil
}

// startXDPForwarder is the upper bound: a bare devmap redirect between
// the sending guest's port and the first uplink, nothing else.
func startXDPForwarder(tp *topo.Topo) (system, error) {
	x := &bare{name: report.SystemXDPRedirect}
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
			f, err := benchbpf.NewForwarder()
			if err != nil {
				return err
			}
			detach, err := f.Attach(pair[0], pair[1])
			if err != nil {
				f.Close()
				return err
			}
			x.stop = append(x.stop, f.Close, detach) // undone in reverse: detach first
		}
		return nil
	})
	if err != nil {
		_ = x.Stop()
		return nil, err
	}
	return x, nil
}

// bare is a system the harness makes of programs it attaches itself: the
// upper bounds and the no-switch baseline. Nothing fails over; Stop
// undoes each step in reverse.
type bare struct {
	name string
	stop []func() error
}

func (b *bare) Name() string                                     { return b.name }
func (b *bare) Active(context.Context) (string, error)           { return "", nil }
func (b *bare) SwitchTimes(context.Context) ([]time.Time, error) { return nil, nil }
func (b *bare) Versions() map[string]string                      { return nil }
func (b *bare) Stop() error {
	var errs []error
	for i := len(b.stop) - 1; i >= 0; i-- {
		errs = append(errs, b.stop[i]())
	}
	b.stop = nil
	return errors.Join(errs...)
}

func ifindexHere(name string) (int, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return 0, err
	}
	return ifi.Index, nil
}

// cpuSample measures how busy the whole machine was over an interval.
type cpuSample struct{ used, total uint64 }

func readCPU() cpuSample {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return cpuSample{}
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		return cpuSample{}
	}
	fields := strings.Fields(sc.Text())
	var s cpuSample
	for i, v := range fields[1:] {
		n, _ := strconv.ParseUint(v, 10, 64)
		s.total += n
		if i != 3 && i != 4 { // idle, iowait
			s.used += n
		}
	}
	return s
}

func (s cpuSample) busy() float64 {
	e := readCPU()
	if e.total <= s.total {
		return 0
	}
	return float64(e.used-s.used) / float64(e.total-s.total)
}

func environment() report.Env {
	var u unix.Utsname
	_ = unix.Uname(&u)
	env := report.Env{
		Kernel:    unix.ByteSliceToString(u.Release[:]),
		GoVersion: runtime.Version(),
		CPUs:      runtime.NumCPU(),
		Versions:  map[string]string{},
	}
	env.Hostname, _ = os.Hostname()
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				env.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	var si unix.Sysinfo_t
	if unix.Sysinfo(&si) == nil {
		env.MemoryBytes = si.Totalram * uint64(si.Unit)
	}
	if out, err := exec.Command("ip", "-V").Output(); err == nil {
		env.Versions["iproute2"] = strings.TrimSpace(string(out))
	}
	return env
}
