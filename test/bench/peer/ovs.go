package peer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Names OVS gives things in HostNS and in its database.
const (
	OVSBridge = "br0"   // datapath_type=netdev; its internal port is a tap in HostNS
	OVSBond   = "bond0" // the uplinks, active-backup
)

// ovsDirName is the directory under WorkDir that holds everything the OVS
// system creates: database, sockets, pid files, logs. Stop removes it.
const ovsDirName = "ovs"

// OVS is Open vSwitch with the userspace (netdev) datapath, run from a
// private ovsdb-server and ovs-vswitchd that this package starts and stops;
// nothing touches the system's /var/run/openvswitch or its database. The
// uplinks form an active-backup bond (lacp=off) that detects failure by
// carrier (bond-detect-mode=carrier), with the first uplink as primary
// (bond-primary, so OVS fails back to it) and no down delay; the up delay
// is UpDelay, 0 by default. OVS announces a switch with one RARP per MAC it
// learned on other ports, sent on the new member. Userspace TSO is enabled
// (other_config:userspace-tso-enable=true), as OVS documents for this
// datapath, so frames sent with checksum offload cross it intact.
//
// Without DPDK or AF_XDP ports the netdev datapath has no PMD threads: the
// main ovs-vswitchd thread polls the ports and forwards (pmd-cpu-mask and
// dpdk-lcore-mask do not apply). So the whole process is pinned to one CPU,
// chosen by CPUs/NoPin; the harness should keep its generator off that CPU.
type OVS struct {
	// CPUs pins ovs-vswitchd (all its threads). nil picks the last CPU this
	// process may run on when it may run on two or more, and leaves OVS
	// unpinned otherwise.
	CPUs []int
	// NoPin leaves ovs-vswitchd on every CPU.
	NoPin bool
	// UpDelay is bond_updelay: how long a returning member must keep
	// carrier before the bond uses it again (failing back to the primary).
	// Zero, the default, re-enables it at once. Failover to a backup is not
	// delayed by it. Millisecond granularity.
	UpDelay time.Duration

	mu        sync.Mutex
	topo      Topology
	dir       string // WorkDir/ovs; "" when not started
	tools     map[string]string
	db        *child
	vswitchd  *child
	bond      bool     // false with a single uplink (no bond, no failover)
	pinned    []int    // what ovs-vswitchd was pinned to
	pinNote   string   // why it was not, when it was not
	promiscOn []string // ports that were not promiscuous before Start
	logOffset int64    // end of ovs-vswitchd.log when Start returned
	initial   string   // active member when Start returned
	tso       bool     // ovs-vswitchd logged that it enabled userspace TSO
}

// ovsUserspaceTSO is the Open_vSwitch other_config key Start sets to
// true, and ovsTSOEnabledLog what ovs-vswitchd logs when it takes it.
//
// Without it the netdev datapath reads the veths through AF_PACKET with
// no virtio-net header, so a frame the sending stack left for checksum
// offload (CHECKSUM_PARTIAL, as every veth sends by default) goes out
// with its TCP or UDP checksum unfinished, and the receiver drops it: no
// TCP connection through OVS at all. With it, netdev-linux exchanges
// virtio-net headers with the kernel on its AF_PACKET and tap ports, so a
// frame leaves OVS with its offload state (checksum still to do, TSO) and
// the kernel finishes it as it would a local sender's.
// This is OVS's documented setting for its userspace datapath
// (Documentation/topics/userspace-tso.rst, "experimental" in 3.1); the
// alternative, tx checksum offload turned off on every interface whose
// frames OVS forwards, would change the guests, not the switch.
const (
	ovsUserspaceTSO  = "userspace-tso-enable"
	ovsTSOEnabledLog = "Userspace TCP Segmentation Offloading support enabled"
)

// Name implements System.
func (o *OVS) Name() string { return OVSName }

func (o *OVS) path(name string) string { return filepath.Join(o.dir, name) }

// env points every OVS default directory into the private one, so a program
// that falls back on a default still stays out of /var/run/openvswitch.
func (o *OVS) env() []string {
	return []string{"OVS_RUNDIR=" + o.dir, "OVS_DBDIR=" + o.dir, "OVS_LOGDIR=" + o.dir, "OVS_SYSCONFDIR=" + o.dir}
}

// Start implements System.
func (o *OVS) Start(ctx context.Context, t Topology) (err error) {
	if err := t.validate(true); err != nil {
		return err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.dir != "" {
		return errors.New("ovs: already started")
	}
	tools, err := findOVS()
	if err != nil {
		return err
	}
	dir := filepath.Join(t.WorkDir, ovsDirName)
	// sun_path holds 108 bytes; OVS would otherwise fail obscurely.
	if longest := filepath.Join(dir, "ovs-vswitchd.ctl"); len(longest) > 100 {
		return fmt.Errorf("ovs: WorkDir too long for unix socket paths (%s)", longest)
	}
	if err := os.MkdirAll(t.WorkDir, 0o755); err != nil {
		return fmt.Errorf("ovs: %w", err)
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		return fmt.Errorf("ovs: private directory (left over from an earlier run?): %w", err)
	}
	o.topo, o.dir, o.tools, o.bond = t, dir, tools, len(t.Uplinks) > 1
	defer func() {
		if err != nil {
			if serr := o.stopLocked(); serr != nil {
				err = errors.Join(err, serr)
			}
		}
	}()
	if o.promiscOn, err = notPromiscuous(t); err != nil {
		return err
	}
	if err := o.startDB(ctx); err != nil {
		return err
	}
	// ovs-vswitchd reads userspace-tso-enable once, when it starts.
	if _, err := o.vsctl(ctx, "--no-wait", "set", "Open_vSwitch", ".", "other_config:"+ovsUserspaceTSO+"=true"); err != nil {
		return fmt.Errorf("ovs: %s: %w", ovsUserspaceTSO, err)
	}
	if err := o.startVswitchd(ctx); err != nil {
		return err
	}
	if err := o.configure(ctx); err != nil {
		return err
	}
	// configure returned once ovs-vswitchd applied the database, so it
	// has logged whether it took the setting.
	if o.tso, err = o.logHas(ovsTSOEnabledLog); err != nil {
		return err
	}
	return o.waitReady(ctx)
}

func (o *OVS) startDB(ctx context.Context) error {
	if _, err := run(ctx, o.env(), o.tools["ovsdb-tool"], "create", o.path("conf.db"), ovsSchema); err != nil {
		return fmt.Errorf("ovs: create database: %w", err)
	}
	out, err := os.Create(o.path("ovsdb-server.out"))
	if err != nil {
		return fmt.Errorf("ovs: %w", err)
	}
	defer out.Close() // the child has its own copy
	o.db, err = startChild("ovsdb-server", []string{
		o.tools["ovsdb-server"], o.path("conf.db"),
		"--remote=punix:" + o.path("db.sock"),
		"--unixctl=" + o.path("ovsdb-server.ctl"),
		"--pidfile=" + o.path("ovsdb-server.pid"),
		"--log-file=" + o.path("ovsdb-server.log"),
		"--no-chdir", "-vconsole:off",
	}, o.env(), out, nil)
	if err != nil {
		return fmt.Errorf("ovs: %w", err)
	}
	// The first transaction doubles as the readiness check.
	return o.waitChild(ctx, o.db, "ovsdb-server.out", func() error {
		_, err := o.vsctl(ctx, "--no-wait", "--timeout=2", "init")
		return err
	})
}

func (o *OVS) startVswitchd(ctx context.Context) error {
	o.pinned, o.pinNote = o.pinCPUs()
	out, err := os.Create(o.path("ovs-vswitchd.out"))
	if err != nil {
		return fmt.Errorf("ovs: %w", err)
	}
	defer out.Close()
	// ip netns exec execs ovs-vswitchd in place, so the child's PID is
	// ovs-vswitchd's and the affinity set for the fork carries over.
	o.vswitchd, err = startChild("ovs-vswitchd", []string{
		"ip", "netns", "exec", o.topo.HostNS,
		o.tools["ovs-vswitchd"], "unix:" + o.path("db.sock"),
		"--pidfile=" + o.path("ovs-vswitchd.pid"),
		"--unixctl=" + o.path("ovs-vswitchd.ctl"),
		"--log-file=" + o.path("ovs-vswitchd.log"),
		"--no-chdir", "-vconsole:off",
		// Userspace datapath only: do not probe for the kernel module.
		"--disable-system",
	}, o.env(), out, o.pinned)
	if err != nil {
		return fmt.Errorf("ovs: %w", err)
	}
	if err := o.waitChild(ctx, o.vswitchd, "ovs-vswitchd.out", func() error {
		_, err := o.appctl(ctx, "version")
		return err
	}); err != nil {
		return err
	}
	// bond.c rate-limits "active member is now" to 20 lines, then 5 a
	// minute; SwitchTimes needs every one of them.
	if _, err := o.appctl(ctx, "vlog/disable-rate-limit", "bond"); err != nil {
		return fmt.Errorf("ovs: %w", err)
	}
	return nil
}

// waitChild polls ready until it succeeds, failing early (with the child's
// own words) if the child exits.
func (o *OVS) waitChild(ctx context.Context, c *child, outName string, ready func() error) error {
	err := waitFor(ctx, 15*time.Second, 20*time.Millisecond, func() (bool, error) {
		if c.exited() {
			return false, permanent{fmt.Errorf("%s exited: %v", c.name, c.err)}
		}
		err := ready()
		return err == nil, err
	}, c.name+" to answer")
	if err != nil {
		out, _ := os.ReadFile(o.path(outName))
		return fmt.Errorf("ovs: %w (its output: %s)", err, lastLines(string(out), 5))
	}
	return nil
}

// bondSettings are the bond's columns as Start sets them.
func (o *OVS) bondSettings(primary string) []string {
	return []string{
		"bond_mode=active-backup",
		"lacp=off",
		fmt.Sprintf("bond_updelay=%d", o.UpDelay.Milliseconds()),
		"bond_downdelay=0",
		"other_config:bond-detect-mode=carrier",
		"other_config:bond-primary=" + primary,
	}
}

func (o *OVS) configure(ctx context.Context) error {
	t := o.topo
	args := []string{"--timeout=20",
		"--", "add-br", OVSBridge,
		"--", "set", "Bridge", OVSBridge, "datapath_type=netdev",
	}
	for _, g := range t.GuestPorts {
		args = append(args, "--", "add-port", OVSBridge, g)
	}
	if o.bond {
		args = append(append(append(args, "--", "add-bond", OVSBridge, OVSBond), t.Uplinks...), o.bondSettings(t.Uplinks[0])...)
	} else {
		args = append(args, "--", "add-port", OVSBridge, t.Uplinks[0])
	}
	// Without --no-wait, ovs-vsctl returns once ovs-vswitchd has applied it.
	if _, err := o.vsctl(ctx, args...); err != nil {
		return fmt.Errorf("ovs: configure: %w", err)
	}
	var get []string
	ports := append(append([]string{}, t.GuestPorts...), t.Uplinks...)
	for _, p := range ports {
		get = append(get, "--", "get", "Interface", p, "ofport", "error")
	}
	out, err := o.vsctl(ctx, get...)
	if err != nil {
		return fmt.Errorf("ovs: read interfaces back: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2*len(ports) {
		return fmt.Errorf("ovs: read interfaces back: want %d lines, got %q", 2*len(ports), out)
	}
	for i, p := range ports {
		ofport, ierr := lines[2*i], lines[2*i+1]
		if n, err := strconv.Atoi(ofport); err != nil || n <= 0 || ierr != "[]" {
			return fmt.Errorf("ovs: interface %s not added (ofport %s, error %s)", p, ofport, ierr)
		}
	}
	return nil
}

// waitReady waits until the bond has chosen a member — the primary when it
// has carrier — and notes where the log stands, so that SwitchTimes counts
// only later switches.
func (o *OVS) waitReady(ctx context.Context) error {
	if !o.bond {
		o.initial = o.topo.Uplinks[0]
		return o.markLog()
	}
	primary := o.topo.Uplinks[0]
	primaryUp := linkHasCarrier(o.topo.HostNS, primary)
	err := waitFor(ctx, 10*time.Second, 10*time.Millisecond, func() (bool, error) {
		st, err := o.bondStatus(ctx)
		if err != nil {
			return false, err
		}
		o.initial = st.Active
		return st.Active != "" && (st.Active == primary || !primaryUp), nil
	}, "the bond to choose an active member")
	if err != nil {
		return fmt.Errorf("ovs: %w", err)
	}
	return o.markLog()
}

// logHas reports whether ovs-vswitchd's log so far has a line containing
// text.
func (o *OVS) logHas(text string) (bool, error) {
	b, err := os.ReadFile(o.path("ovs-vswitchd.log"))
	if err != nil {
		return false, fmt.Errorf("ovs: %w", err)
	}
	return strings.Contains(string(b), text), nil
}

func (o *OVS) markLog() error {
	st, err := os.Stat(o.path("ovs-vswitchd.log"))
	if err != nil {
		return fmt.Errorf("ovs: %w", err)
	}
	o.logOffset = st.Size()
	return nil
}

// Active implements System.
func (o *OVS) Active(ctx context.Context) (string, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.dir == "" {
		return "", errors.New("ovs: not started")
	}
	if !o.bond {
		return o.topo.Uplinks[0], nil
	}
	st, err := o.bondStatus(ctx)
	if err != nil {
		return "", err
	}
	return st.Active, nil
}

func (o *OVS) bondStatus(ctx context.Context) (BondStatus, error) {
	out, err := o.appctl(ctx, "bond/show", OVSBond)
	if err != nil {
		return BondStatus{}, fmt.Errorf("ovs: %w", err)
	}
	return ParseBondShow(out, OVSBond)
}

// SwitchTimes implements System: the times ovs-vswitchd logged a new active
// member since Start. The log's timestamps are UTC wall-clock time with
// millisecond precision.
func (o *OVS) SwitchTimes(ctx context.Context) ([]time.Time, error) {
	events, err := o.SwitchEvents(ctx)
	if err != nil {
		return nil, err
	}
	// Empty, not nil, when there was none: the log is known.
	times := make([]time.Time, len(events))
	for i, e := range events {
		times[i] = e.Time
	}
	return times, nil
}

// SwitchEvents is SwitchTimes with the member switched to.
func (o *OVS) SwitchEvents(context.Context) ([]BondEvent, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.dir == "" {
		return nil, errors.New("ovs: not started")
	}
	if !o.bond {
		return nil, nil
	}
	f, err := os.Open(o.path("ovs-vswitchd.log"))
	if err != nil {
		return nil, fmt.Errorf("ovs: %w", err)
	}
	defer f.Close()
	if _, err := f.Seek(o.logOffset, io.SeekStart); err != nil {
		return nil, fmt.Errorf("ovs: %w", err)
	}
	events, err := ParseBondLog(f, OVSBond)
	if err != nil {
		return nil, err
	}
	return Switches(events, o.initial), nil
}

// Stop implements System.
func (o *OVS) Stop() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.stopLocked()
}

func (o *OVS) stopLocked() error {
	if o.dir == "" {
		return nil
	}
	var errs []error
	if c := o.vswitchd; c != nil && !c.exited() {
		// exit --cleanup removes the datapath: its tap ports (br0,
		// ovs-netdev) go and the ports it made promiscuous are released.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := o.appctl(ctx, "exit", "--cleanup")
		cancel()
		if err != nil || !c.waitExit(5*time.Second) {
			if err := c.terminate(3 * time.Second); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if c := o.db; c != nil {
		if err := c.terminate(3 * time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("ovs: stop: %w", err)
	}
	// Only after a kill do these matter: promiscuity is a device flag, and
	// the datapath's taps are persistent; exit --cleanup handles both.
	if err := restorePromisc(o.topo.HostNS, o.promiscOn); err != nil {
		errs = append(errs, err)
	}
	if err := deleteTaps(o.topo.HostNS, OVSBridge, "ovs-netdev"); err != nil {
		errs = append(errs, err)
	}
	if err := os.RemoveAll(o.dir); err != nil {
		errs = append(errs, err)
	}
	o.dir, o.db, o.vswitchd, o.promiscOn, o.tso = "", nil, nil, nil, false
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("ovs: stop: %w", err)
	}
	return nil
}

// PIDs are the processes Start started (ovsdb-server, ovs-vswitchd) that
// are still running.
func (o *OVS) PIDs() []int {
	o.mu.Lock()
	defer o.mu.Unlock()
	var pids []int
	for _, c := range []*child{o.db, o.vswitchd} {
		if c != nil && !c.exited() {
			pids = append(pids, c.pid())
		}
	}
	return pids
}

// PinnedCPUs are the CPUs ovs-vswitchd runs on; nil when not pinned.
func (o *OVS) PinnedCPUs() []int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.pinned)
}

// LogPath is ovs-vswitchd's log file while the system runs.
func (o *OVS) LogPath() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.dir == "" {
		return ""
	}
	return o.path("ovs-vswitchd.log")
}

func (o *OVS) pinCPUs() ([]int, string) {
	if o.NoPin {
		return nil, "not pinned (NoPin)"
	}
	if o.CPUs != nil {
		return slices.Clone(o.CPUs), ""
	}
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil, "not pinned: " + err.Error()
	}
	var allowed []int
	for cpu := range 1024 {
		if set.IsSet(cpu) {
			allowed = append(allowed, cpu)
		}
	}
	if len(allowed) < 2 {
		return nil, fmt.Sprintf("not pinned: only %d CPU allowed", len(allowed))
	}
	return []int{allowed[len(allowed)-1]}, ""
}

// Settings implements Settings.
func (o *OVS) Settings() map[string]string {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := map[string]string{
		"datapath_type":     "netdev (userspace; no DPDK, so no PMD threads)",
		"forwarding thread": "ovs-vswitchd main thread",
		"log":               "ovs-vswitchd.log, UTC wall clock, ms precision; rate limit of module bond disabled",
		ovsUserspaceTSO:     "true (other_config; read when ovs-vswitchd starts)",
	}
	primary := "<first uplink>"
	if len(o.topo.Uplinks) > 0 {
		primary = o.topo.Uplinks[0]
	}
	if len(o.topo.Uplinks) == 1 {
		s["bond"] = "none: one uplink, added as a plain port"
	} else {
		s["bond"] = OVSBond + ": " + strings.Join(o.bondSettings(primary), " ")
	}
	switch {
	case len(o.pinned) > 0:
		s["ovs-vswitchd cpus"] = joinInts(o.pinned)
	case o.pinNote != "":
		s["ovs-vswitchd cpus"] = o.pinNote
	default:
		cpus, note := o.pinCPUs()
		if note == "" {
			s["ovs-vswitchd cpus"] = joinInts(cpus) + " (at Start)"
		} else {
			s["ovs-vswitchd cpus"] = note
		}
	}
	return s
}

// UserspaceTSO reports whether the running ovs-vswitchd enabled userspace
// TSO (see ovsUserspaceTSO); false when not started.
func (o *OVS) UserspaceTSO() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.tso
}

// OffloadNote says how this OVS treats frames that a sending stack left
// for checksum offload or segmentation, for the socket traffic report;
// "" when not started.
func (o *OVS) OffloadNote() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	switch {
	case o.dir == "":
		return ""
	case o.tso:
		return "userspace datapath with other_config:" + ovsUserspaceTSO + "=true (OVS's documented setting for it): " +
			"virtio-net headers on its AF_PACKET ports keep frames' checksum offload and TSO state, so the kernel " +
			"finishes them; the guests' offloads untouched"
	default:
		return "userspace datapath: other_config:" + ovsUserspaceTSO + "=true set, but ovs-vswitchd did not log " +
			"enabling it; checksums offloaded by the sender are not completed"
	}
}

// Versions implements System.
func (o *OVS) Versions() map[string]string {
	v := map[string]string{}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	paths, err := findOVS()
	if err != nil {
		v["openvswitch"] = "not installed"
		return v
	}
	if out, err := run(ctx, nil, paths["ovs-vswitchd"], "--version"); err == nil {
		v["openvswitch"] = parseOVSVersion(out)
	}
	if out, err := run(ctx, nil, "dpkg-query", "-W", "-f=${Version}", OVSPackage); err == nil {
		v[OVSPackage+" (deb)"] = strings.TrimSpace(out)
	}
	return v
}

// parseOVSVersion takes "ovs-vswitchd (Open vSwitch) 3.1.0" (first line).
func parseOVSVersion(out string) string {
	first, _, _ := strings.Cut(out, "\n")
	fields := strings.Fields(first)
	if len(fields) == 0 {
		return ""
	}
	return fields[len(fields)-1]
}

func (o *OVS) vsctl(ctx context.Context, args ...string) (string, error) {
	return run(ctx, o.env(), o.tools["ovs-vsctl"], append([]string{"--db=unix:" + o.path("db.sock")}, args...)...)
}

func (o *OVS) appctl(ctx context.Context, args ...string) (string, error) {
	return run(ctx, o.env(), o.tools["ovs-appctl"], append([]string{"-t", o.path("ovs-vswitchd.ctl"), "--timeout=5"}, args...)...)
}

func joinInts(xs []int) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ",")
}

// linkHasCarrier reports whether a link in ns has carrier; false when it
// cannot tell.
func linkHasCarrier(ns, name string) bool {
	h, err := nsHandle(ns)
	if err != nil {
		return false
	}
	defer h.Close()
	l, err := h.LinkByName(name)
	if err != nil {
		return false
	}
	return l.Attrs().RawFlags&unix.IFF_LOWER_UP != 0
}

// notPromiscuous lists the topology's ports that exist and are not
// promiscuous now.
func notPromiscuous(t Topology) ([]string, error) {
	h, err := nsHandle(t.HostNS)
	if err != nil {
		return nil, fmt.Errorf("ovs: %w", err)
	}
	defer h.Close()
	var out []string
	for _, p := range append(append([]string{}, t.GuestPorts...), t.Uplinks...) {
		l, err := h.LinkByName(p)
		if err != nil {
			continue // OVS reports it as an interface error
		}
		// IFF_PROMISC as reported is the flag set by request (OVS sets it),
		// not the count that packet sockets raise.
		if l.Attrs().RawFlags&unix.IFF_PROMISC == 0 {
			out = append(out, p)
		}
	}
	return out, nil
}

// restorePromisc turns promiscuity off again on ports that did not have it
// before Start, if OVS left it on.
func restorePromisc(ns string, ports []string) error {
	if len(ports) == 0 {
		return nil
	}
	h, err := nsHandle(ns)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil // namespace gone, ports with it
		}
		return fmt.Errorf("ovs: %w", err)
	}
	defer h.Close()
	var errs []error
	for _, p := range ports {
		l, err := h.LinkByName(p)
		if err != nil {
			continue // gone
		}
		if l.Attrs().RawFlags&unix.IFF_PROMISC != 0 {
			if err := h.SetPromiscOff(l); err != nil {
				errs = append(errs, fmt.Errorf("promiscuity off on %s: %w", p, err))
			}
		}
	}
	return errors.Join(errs...)
}

// deleteTaps removes the named tap devices from ns if they exist; other
// kinds of device by those names are left alone.
func deleteTaps(ns string, names ...string) error {
	h, err := nsHandle(ns)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return fmt.Errorf("ovs: %w", err)
	}
	defer h.Close()
	var errs []error
	for _, n := range names {
		l, err := h.LinkByName(n)
		if err != nil || l.Type() != "tuntap" {
			continue
		}
		if err := h.LinkDel(l); err != nil {
			errs = append(errs, fmt.Errorf("delete tap %s left by ovs-vswitchd: %w", n, err))
		}
	}
	return errors.Join(errs...)
}

// SetActive is a planned switch: the bond's active member becomes uplink
// (ovs-appctl bond/set-active-member).
func (o *OVS) SetActive(ctx context.Context, uplink string) error {
	_, err := o.appctl(ctx, "bond/set-active-member", OVSBond, uplink)
	return err
}
