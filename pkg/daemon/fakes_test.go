package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/uplinkd/uplinkd/pkg/announce"
	"github.com/uplinkd/uplinkd/pkg/balance"
	"github.com/uplinkd/uplinkd/pkg/config"
	"github.com/uplinkd/uplinkd/pkg/datapath"
	"github.com/uplinkd/uplinkd/pkg/hostport"
	"github.com/uplinkd/uplinkd/pkg/limits"
	"github.com/uplinkd/uplinkd/pkg/linkwatch"
)

// Stand-ins for the data plane and the host's interfaces: they keep what
// the daemon wrote, so a test can ask where each group sends its traffic
// and which ports are attached. Only the daemon's own logic is under test
// with them; the data plane is tested on the kernel in pkg/datapath and
// test/e2e.

// fakeDataPlane is a data plane of maps.
type fakeDataPlane struct {
	ids      map[string]uint32
	active   map[uint32]limits.Slot
	fallback map[uint32][]limits.Slot
	tables   map[uint32]*balance.Table
	attached map[string]datapath.Port // by name
	writes   []string                 // SetActive, Attach and Detach in order
	guests   []datapath.Guest         // what Guests returns (the learned guests)
	bytes    [limits.Buckets]uint64   // what BucketBytes returns (every group)
}

func newFakeDataPlane() *fakeDataPlane {
	return &fakeDataPlane{ids: map[string]uint32{}, active: map[uint32]limits.Slot{},
		fallback: map[uint32][]limits.Slot{}, tables: map[uint32]*balance.Table{}, attached: map[string]datapath.Port{}}
}

func (f *fakeDataPlane) AssignGroups(names []string) (map[string]uint32, error) {
	for _, n := range names {
		if _, ok := f.ids[n]; !ok {
			f.ids[n] = uint32(len(f.ids))
			f.active[f.ids[n]] = limits.NoSlot
		}
	}
	return f.ids, nil
}

func (f *fakeDataPlane) ActiveSlot(group uint32) (limits.Slot, error) { return f.active[group], nil }

func (f *fakeDataPlane) UplinkIfindex(group uint32, slot limits.Slot) (int, error) {
	for _, p := range f.attached {
		if p.Group == group && p.Role == datapath.RoleUplink && p.Slot == slot {
			return p.Ifindex, nil
		}
	}
	return 0, nil
}

func (f *fakeDataPlane) SetActive(group uint32, slot limits.Slot) error {
	f.active[group] = slot
	f.writes = append(f.writes, fmt.Sprintf("active %d %d", group, slot))
	return nil
}

func (f *fakeDataPlane) SetFallback(group uint32, slots []limits.Slot) error {
	f.fallback[group] = slices.Clone(slots)
	return nil
}

// MoveOff moves as the kernel does: to the first other slot of the
// fallback order, if the group is on from.
func (f *fakeDataPlane) MoveOff(group uint32, from limits.Slot) (limits.Slot, bool, error) {
	if f.active[group] != from {
		return limits.NoSlot, false, nil
	}
	for _, s := range f.fallback[group] {
		if s != from {
			f.active[group] = s
			return s, true, nil
		}
	}
	return limits.NoSlot, false, nil
}

func (f *fakeDataPlane) Balance(group uint32) (balance.Table, uint32, bool, error) {
	if t := f.tables[group]; t != nil {
		return *t, 0, true, nil
	}
	return balance.Table{}, 0, false, nil
}

func (f *fakeDataPlane) SetBalance(group uint32, t *balance.Table, _ [limits.MaxUplinks][]limits.Slot) error {
	if t == nil {
		delete(f.tables, group)
		return nil
	}
	c := *t
	f.tables[group] = &c
	return nil
}

func (f *fakeDataPlane) BucketBytes(uint32) (*[limits.Buckets]uint64, error) {
	c := f.bytes
	return &c, nil
}

func (f *fakeDataPlane) Attach(p datapath.Port) (datapath.AttachMode, error) {
	f.attached[p.Ifname] = p
	f.writes = append(f.writes, fmt.Sprintf("attach %s %d", p.Ifname, p.Ifindex))
	return datapath.AttachMode("fake"), nil
}

func (f *fakeDataPlane) Detach(ifname string, ifindex int) error {
	delete(f.attached, ifname)
	f.writes = append(f.writes, fmt.Sprintf("detach %s %d", ifname, ifindex))
	return nil
}

func (f *fakeDataPlane) PinnedLinks() ([]string, error)        { return nil, nil }
func (f *fakeDataPlane) FDB() ([]datapath.FDBEntry, error)     { return nil, nil }
func (f *fakeDataPlane) Guests() ([]datapath.Guest, error)     { return slices.Clone(f.guests), nil }
func (f *fakeDataPlane) RecountLearned() error                 { return nil }
func (f *fakeDataPlane) Close() error                          { return nil }
func (f *fakeDataPlane) Stats(int) (datapath.PortStats, error) { return datapath.PortStats{}, nil }

// takeWrites returns the SetActive, Attach and Detach calls since the last
// take.
func (f *fakeDataPlane) takeWrites() []string {
	w := f.writes
	f.writes = nil
	return w
}

// fakeLink is one interface of a fakeHost.
type fakeLink struct {
	index   int
	up      bool // admin up and carrier
	changes uint32
	addrs   []netip.Addr
	mac     net.HardwareAddr // nil: 02:00:00:00:00:<index>
	// readErr fails HostEnds' read of the link, addrsErr its address dump.
	readErr, addrsErr error
}

// fakeHost is a host whose interfaces are a map.
type fakeHost struct {
	links        map[string]*fakeLink
	hostEndReads int // host ends read by HostEnds
	hostEndCalls int // calls of HostEnds: address dumps
}

func (h *fakeHost) link(name string, l *fakeLink) netlink.Link {
	mac := l.mac
	if mac == nil {
		mac = net.HardwareAddr{2, 0, 0, 0, 0, byte(l.index)}
	}
	return &netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Name: name, Index: l.index, HardwareAddr: mac, MTU: 1500}}
}

func (h *fakeHost) LinkByName(name string) (netlink.Link, error) {
	if l, ok := h.links[name]; ok {
		return h.link(name, l), nil
	}
	return nil, fmt.Errorf("link %s not found", name)
}

func (h *fakeHost) LinkByIndex(index int) (netlink.Link, error) {
	for name, l := range h.links {
		if l.index == index {
			return h.link(name, l), nil
		}
	}
	return nil, fmt.Errorf("link %d not found", index)
}

func (h *fakeHost) LinkList() ([]netlink.Link, error) {
	var out []netlink.Link
	for name, l := range h.links {
		out = append(out, h.link(name, l))
	}
	return out, nil
}

func (h *fakeHost) LinkState(name string) (linkwatch.State, error) {
	return h.state(name, linkwatch.SourceList, time.Now()), nil
}

// EnsureHostPort adds the pair's two ends (up) unless the host's end
// exists; an interface named like the switch end, or a host end without
// it, is refused as hostport.Ensure refuses it.
func (h *fakeHost) EnsureHostPort(hp config.HostPort) (hostport.Result, error) {
	host, hasHost := h.links[hp.Name]
	sw, hasSwitch := h.links[hp.SwitchEnd]
	switch {
	case hasHost && hasSwitch:
		return hostport.Result{HostIndex: host.index, SwitchIndex: sw.index}, nil
	case hasHost, hasSwitch:
		return hostport.Result{}, fmt.Errorf("host port %s: not a veth pair of %s and %s", hp.Name, hp.Name, hp.SwitchEnd)
	}
	h.links[hp.Name] = &fakeLink{index: 100 + len(h.links), up: true, changes: 1}
	h.links[hp.SwitchEnd] = &fakeLink{index: 100 + len(h.links), up: true, changes: 1}
	return hostport.Result{Created: true, HostIndex: h.links[hp.Name].index, SwitchIndex: h.links[hp.SwitchEnd].index}, nil
}

// HostEnds fails as hostport.ReadEnds does: a link not read is no End;
// a failed address dump leaves an End without addresses.
func (h *fakeHost) HostEnds(names []string) ([]hostport.End, []error) {
	h.hostEndCalls++
	ends, errs := make([]hostport.End, len(names)), make([]error, len(names))
	for i, name := range names {
		h.hostEndReads++
		l, ok := h.links[name]
		switch {
		case !ok:
		case l.readErr != nil:
			errs[i] = fmt.Errorf("%s: %w", name, l.readErr)
		default:
			a := h.link(name, l).Attrs()
			ends[i] = hostport.End{Exists: true, Up: l.up, MAC: a.HardwareAddr, MTU: a.MTU, Addrs: l.addrs}
			if l.addrsErr != nil {
				ends[i].Addrs, errs[i] = nil, fmt.Errorf("%s: list addresses: %w", name, l.addrsErr)
			}
		}
	}
	return ends, errs
}

// state is name's state as a watcher reports it.
func (h *fakeHost) state(name, source string, seen time.Time) linkwatch.State {
	st := linkwatch.State{Name: name, Source: source, Seen: seen}
	if l, ok := h.links[name]; ok {
		st.Exists, st.Index, st.AdminUp, st.Carrier, st.CarrierChanges = true, l.index, l.up, l.up, l.changes
	}
	return st
}

// t0 is when a test daemon starts its groups: an hour ago, so that the
// steps of a test (seconds after t0) come before the daemon's own
// time.Now().
var t0 = time.Now().Add(-time.Hour)

// mustParse is yaml as a configuration; t fails if it is not one.
func mustParse(t *testing.T, yaml string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// hostWith is a host whose interfaces are links, all up, indexes from 10.
func hostWith(links ...string) *fakeHost {
	h := &fakeHost{links: map[string]*fakeLink{}}
	for i, name := range links {
		h.links[name] = &fakeLink{index: 10 + i, up: true, changes: 1}
	}
	return h
}

// fakeDaemon is a daemon from yaml over dp and h that sends no
// announcements, closed when t ends; not set up yet.
func fakeDaemon(t *testing.T, yaml string, dp dataPlane, h *fakeHost) *Daemon {
	t.Helper()
	d := newDaemon(mustParse(t, yaml), slog.New(slog.DiscardHandler), dp, h)
	d.ann.send = &fakeSender{}
	t.Cleanup(func() { d.Close() })
	return d
}

// testDaemon is a daemon over fakes, set up from yaml and started as Run
// starts it, with links as the host's interfaces (all up).
func testDaemon(t *testing.T, yaml string, links ...string) (*Daemon, *fakeDataPlane, *fakeHost) {
	t.Helper()
	h, dp := hostWith(links...), newFakeDataPlane()
	d := fakeDaemon(t, yaml, dp, h)
	if err := d.setup(); err != nil {
		t.Fatal(err)
	}
	snap := map[string]linkwatch.State{}
	for name := range d.ports {
		snap[name] = h.state(name, linkwatch.SourceList, t0)
	}
	if err := d.startGroups(snap, t0); err != nil {
		t.Fatal(err)
	}
	return d, dp, h
}

// switches are the switches d recorded (every group), as
// "from->to reason (source)", and forgets them.
func takeSwitches(d *Daemon) []string {
	var out []string
	for _, ev := range d.timeline.events {
		out = append(out, fmt.Sprintf("%s->%s %s (%s)", ev.From, ev.To, ev.Reason, ev.Source))
	}
	d.timeline.events = nil
	return out
}

// fakeSender is an announcement sender that sends nothing: it records the
// runs it was asked for and reports each as sent whole at once.
type fakeSender struct {
	mu   sync.Mutex
	runs []announce.Request
}

func (f *fakeSender) Announce(_ context.Context, req announce.Request) <-chan announce.Result {
	f.mu.Lock()
	f.runs = append(f.runs, req)
	f.mu.Unlock()
	out := make(chan announce.Result, 1)
	now := time.Now()
	out <- announce.Result{Group: req.Group, Ifname: req.Ifname, Frames: req.Count * len(req.Guests),
		Rounds: req.Count, First: now, Last: now}
	close(out)
	return out
}

func (f *fakeSender) InFlight() []string { return nil }
func (f *fakeSender) SetRate(int, int)   {}
func (f *fakeSender) Close()             {}

// onlyRun returns the one run asked for since the last look (the test
// stops if there were more or none) and forgets it.
func (f *fakeSender) onlyRun(t *testing.T, step string) announce.Request {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	defer func() { f.runs = nil }()
	if len(f.runs) != 1 {
		t.Fatalf("%s: %d runs, want 1", step, len(f.runs))
	}
	return f.runs[0]
}

// take returns the runs asked for since the last take, as
// "key@uplink: mac mac ..." (key "" is a failover's run; "mac!p": announce
// priority p).
func (f *fakeSender) take() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, r := range f.runs {
		var macs []string
		for _, g := range r.Guests {
			m := g.MAC.String()
			if g.Priority != 0 {
				m += fmt.Sprintf("!%d", g.Priority)
			}
			macs = append(macs, m)
		}
		out = append(out, fmt.Sprintf("%s@%s: %s", r.Key, r.Ifname, strings.Join(macs, " ")))
	}
	f.runs = nil
	return out
}
