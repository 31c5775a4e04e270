package harness

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/uplinkd/uplinkd/pkg/config"
	"github.com/uplinkd/uplinkd/test/bench/report"
)

// The idle scenario: uplinkd's own cost at rest. Each testbed is one
// namespace of veth pairs (both ends in it, both up, so every uplink has
// carrier); uplinkd runs on it with no traffic and its process is sampled
// from /proc over a few windows.

// idleShape is one testbed: groups of uplinks and guest ports.
type idleShape struct{ groups, uplinks, guests int } // the last two per group

func (s idleShape) String() string {
	return fmt.Sprintf("%d×(%d uplinks, %d guest ports)", s.groups, s.uplinks, s.guests)
}

// idleShapes: the demo's size, and a large hypervisor: 16 groups of 4
// uplinks and 32 guest ports (576 interfaces).
var idleShapes = []idleShape{
	{groups: 1, uplinks: 2, guests: 2},
	{groups: 16, uplinks: 4, guests: 32},
}

const (
	// idleSettle lets the start-up's work (loading, attaching, the first
	// listings) finish before the first window.
	idleSettle = 3 * time.Second
	idleWindow = 10 * time.Second
	// clockTicks is USER_HZ, the unit of utime and stime in /proc: 100 on
	// every Linux architecture the daemon supports.
	clockTicks = 100
)

// idleWindows is how many windows each testbed is measured over.
func idleWindows(profile string) int {
	if profile == "full" {
		return 6
	}
	return 3
}

func (h *harness) idleScenario(ctx context.Context) {
	for _, shape := range idleShapes {
		if ctx.Err() != nil {
			return
		}
		run, err := h.idleRun(ctx, shape)
		if err != nil {
			h.notRun("uplinkd", "idle/"+shape.String(), err)
			continue
		}
		h.res.Idle = append(h.res.Idle, run)
	}
}

func (h *harness) idleRun(ctx context.Context, shape idleShape) (report.IdleRun, error) {
	run := report.IdleRun{Groups: shape.groups, Uplinks: shape.groups * shape.uplinks, GuestPorts: shape.groups * shape.guests,
		PollIntervalNs: int64(config.DefaultCarrierPollInterval)}
	if h.opts.UplinkdPoll > 0 {
		run.PollIntervalNs = int64(h.opts.UplinkdPoll)
	}
	built := time.Now()
	// A name of its own per testbed: a namespace whose mount got hidden
	// (another program turning /run/netns into a mount point meanwhile)
	// cannot be deleted by name, and must not block the next run.
	nsName := fmt.Sprintf("ulkbidle%06x", rand.Uint32()&0xffffff)
	groups, destroy, err := buildIdleBed(nsName, shape)
	if err != nil {
		return run, err
	}
	defer func() {
		if err := destroy(); err != nil {
			h.opts.Log.Warn("idle testbed left behind", "namespace", nsName, "err", err)
		}
	}()
	pairs := run.Uplinks + run.GuestPorts
	h.opts.Log.Info("idle testbed", "groups", shape.groups, "veth_pairs", pairs, "took", time.Since(built).Round(time.Millisecond),
		"per_pair", (time.Since(built) / time.Duration(pairs)).Round(time.Microsecond))

	work, err := os.MkdirTemp(h.work, "idle")
	if err != nil {
		return run, err
	}
	u, startup, err := h.startIdleUplinkd(ctx, nsName, groups, work)
	if u != nil {
		defer func() { _ = u.Stop() }()
	}
	if err != nil {
		return run, err
	}
	run.StartupNs = int64(startup)
	// A restart over the data plane the first process left attached, as
	// an upgrade or a crash would: the links are adopted in place.
	if err := u.stopProcess(); err != nil {
		return run, fmt.Errorf("stop uplinkd for the restart: %w", err)
	}
	restart, err := u.start(ctx)
	if err != nil {
		return run, fmt.Errorf("restart: %w", err)
	}
	run.RestartNs = int64(restart)
	h.noteVersions(u.Versions())
	pid := u.cmd.Process.Pid
	// `ip netns exec` execs the command in its own process: the PID is
	// uplinkd's. Make sure before measuring it.
	if comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); err != nil || strings.TrimSpace(string(comm)) != "uplinkd" {
		return run, fmt.Errorf("process %d is %q, not uplinkd (%v)", pid, strings.TrimSpace(string(comm)), err)
	}
	if err := idleSleep(ctx, idleSettle); err != nil {
		return run, err
	}
	for i := range idleWindows(h.opts.Profile) {
		w, err := measureIdle(ctx, pid, idleWindow)
		if err != nil {
			return run, fmt.Errorf("window %d: %w", i+1, err)
		}
		select {
		case <-u.done:
			return run, fmt.Errorf("uplinkd exited while idle: %s", u.out.String())
		default:
		}
		run.Windows = append(run.Windows, w)
		h.opts.Log.Info("idle window", "groups", shape.groups, "window", i+1, "cpu_percent", fmt.Sprintf("%.2f", w.CPUPercent),
			"busiest_thread_percent", fmt.Sprintf("%.2f", w.BusiestThreadPercent), "wakeups_per_sec", int(w.WakeupsPerSec),
			"threads", w.Threads, "rss_mib", w.RSSBytes>>20, "hwm_mib", w.HWMBytes>>20, "machine_busy", fmt.Sprintf("%.2f", w.CPUBusy))
	}
	return run, nil
}

// idleGroup is one group's interfaces on the idle testbed.
type idleGroup struct {
	name            string
	uplinks, guests []string
}

// buildIdleBed creates the namespace and, in it, one veth pair per uplink
// and guest port, both ends up. destroy deletes the namespace and with it
// every interface.
func buildIdleBed(nsName string, shape idleShape) (groups []idleGroup, destroy func() error, err error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return nil, nil, err
	}
	defer orig.Close()
	ns, err := netns.NewNamed(nsName)
	if err != nil {
		return nil, nil, fmt.Errorf("create namespace %s: %w", nsName, err)
	}
	// NewNamed moved this thread into ns; the interfaces are made here.
	defer func() { _ = netns.Set(orig) }()
	destroy = func() error {
		ns.Close()
		return netns.DeleteNamed(nsName)
	}
	defer func() {
		if err != nil {
			_ = destroy()
		}
	}()
	// No IPv6 autoconfiguration chatter: at rest means no frames at all.
	for _, f := range []string{"all", "default"} {
		if err := os.WriteFile("/proc/sys/net/ipv6/conf/"+f+"/disable_ipv6", []byte("1"), 0o644); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, nil, err
		}
	}
	lo, err := netlink.LinkByName("lo")
	if err == nil {
		err = netlink.LinkSetUp(lo)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("loopback: %w", err)
	}
	pair := func(name string) error {
		peer := name + "p"
		err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name, Flags: net.FlagUp}, PeerName: peer})
		if err != nil {
			return fmt.Errorf("veth %s: %w", name, err)
		}
		l, err := netlink.LinkByName(peer)
		if err == nil {
			err = netlink.LinkSetUp(l)
		}
		if err != nil {
			return fmt.Errorf("veth %s: %w", peer, err)
		}
		return nil
	}
	for g := range shape.groups {
		grp := idleGroup{name: fmt.Sprintf("idle%d", g)}
		for i := range shape.uplinks {
			grp.uplinks = append(grp.uplinks, fmt.Sprintf("i%du%d", g, i))
		}
		for i := range shape.guests {
			grp.guests = append(grp.guests, fmt.Sprintf("i%dg%d", g, i))
		}
		for _, name := range slices.Concat(grp.uplinks, grp.guests) {
			if err := pair(name); err != nil {
				return nil, nil, err
			}
		}
		groups = append(groups, grp)
	}
	return groups, destroy, nil
}

// startIdleUplinkd writes a configuration of groups and starts uplinkd on
// it in namespace nsName; it returns once every group has an active
// uplink, and how long that took from starting the process.
func (h *harness) startIdleUplinkd(ctx context.Context, nsName string, groups []idleGroup, work string) (*uplinkdSystem, time.Duration, error) {
	u := newUplinkd(h.opts.BinDir, h.opts.UplinkdPoll)
	pin, socket, err := u.prepare(nsName, work)
	if err != nil {
		return nil, 0, err
	}
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "pin_path: %s/uplinkd\ncontrol_socket: %s\n", pin, socket)
	if u.poll > 0 {
		fmt.Fprintf(&cfg, "carrier_poll_interval: %s\n", u.poll)
	}
	cfg.WriteString("groups:\n")
	for _, g := range groups {
		fmt.Fprintf(&cfg, "  - name: %s\n    guest_ports: [%s]\n    uplinks:\n", g.name, strings.Join(g.guests, ", "))
		for i, name := range g.uplinks {
			fmt.Fprintf(&cfg, "      - {name: %s, priority: %d}\n", name, 10*(i+1))
		}
	}
	if err := u.writeConfig(cfg.String(), len(groups)); err != nil {
		return u, 0, err
	}
	took, err := u.start(ctx)
	return u, took, err
}

// idleSample is what /proc says about a process at one moment.
type idleSample struct {
	at      time.Time
	ticks   uint64                // utime+stime of the whole process
	threads map[string]idleThread // by task id
}

type idleThread struct {
	ticks    uint64 // utime+stime
	switches uint64 // context switches, voluntary and not
}

func readIdleSample(pid int) (idleSample, error) {
	s := idleSample{at: time.Now(), threads: map[string]idleThread{}}
	var err error
	if s.ticks, err = statTicks(fmt.Sprintf("/proc/%d/stat", pid)); err != nil {
		return s, err
	}
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return s, err
	}
	for _, t := range tasks {
		dir := fmt.Sprintf("/proc/%d/task/%s", pid, t.Name())
		ticks, err := statTicks(dir + "/stat")
		if err != nil {
			continue // the thread ended meanwhile
		}
		status, err := os.ReadFile(dir + "/status")
		if err != nil {
			continue
		}
		s.threads[t.Name()] = idleThread{ticks: ticks,
			switches: statusField(status, "voluntary_ctxt_switches") + statusField(status, "nonvoluntary_ctxt_switches")}
	}
	return s, nil
}

// statTicks is utime+stime from a /proc stat file. The command name may
// hold spaces and parentheses: the fields are counted after its last ')'.
func statTicks(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, fmt.Errorf("%s: no command name", path)
	}
	// After ')': state is field 3 of stat(5), utime 14, stime 15.
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("%s: %d fields", path, len(f))
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64)
	stime, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return utime + stime, nil
}

// statusField is a numeric field of a /proc status file ("VmRSS:  1234
// kB" gives 1234); 0 if absent.
func statusField(status []byte, key string) uint64 {
	for _, line := range strings.Split(string(status), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && k == key {
			f := strings.Fields(v)
			if len(f) > 0 {
				n, _ := strconv.ParseUint(f[0], 10, 64)
				return n
			}
		}
	}
	return 0
}

// measureIdle samples process pid over one window.
func measureIdle(ctx context.Context, pid int, window time.Duration) (report.IdleWindow, error) {
	var w report.IdleWindow
	cpu := readCPU()
	before, err := readIdleSample(pid)
	if err != nil {
		return w, err
	}
	if err := idleSleep(ctx, window); err != nil {
		return w, err
	}
	after, err := readIdleSample(pid)
	if err != nil {
		return w, err
	}
	w.CPUBusy = cpu.busy()
	w.Seconds = after.at.Sub(before.at).Seconds()
	percent := func(ticks uint64) float64 { return float64(ticks) / (clockTicks * w.Seconds) * 100 }
	w.CPUPercent = percent(after.ticks - before.ticks)
	// Per thread, over the threads that lived through the window (Go's
	// threads rarely come and go at rest).
	var switches uint64
	for tid, t := range after.threads {
		if b, ok := before.threads[tid]; ok {
			w.BusiestThreadPercent = max(w.BusiestThreadPercent, percent(t.ticks-b.ticks))
			switches += t.switches - b.switches
		}
	}
	w.WakeupsPerSec = float64(switches) / w.Seconds
	w.Threads = len(after.threads)
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return w, err
	}
	w.RSSBytes = statusField(status, "VmRSS") << 10
	w.HWMBytes = statusField(status, "VmHWM") << 10
	return w, nil
}

func idleSleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
