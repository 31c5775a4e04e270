// Package daemon is uplinkd: it ties the failover policy to the link
// watcher, the data plane and the announcer, and serves the control API.
//
// Order of every switch: write the group's active slot first (one map
// write moves every guest), then announce the guests on the new uplink.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/uplinkd/uplinkd/pkg/announce"
	"github.com/uplinkd/uplinkd/pkg/config"
	"github.com/uplinkd/uplinkd/pkg/control"
	"github.com/uplinkd/uplinkd/pkg/datapath"
	"github.com/uplinkd/uplinkd/pkg/failover"
	"github.com/uplinkd/uplinkd/pkg/limits"
	"github.com/uplinkd/uplinkd/pkg/linkwatch"
	"github.com/uplinkd/uplinkd/pkg/metrics"
	"github.com/uplinkd/uplinkd/pkg/probe"
	"github.com/uplinkd/uplinkd/pkg/version"
)

// maxRecent bounds each group's list of recent switches.
const maxRecent = 16

// Daemon is one running uplinkd.
type Daemon struct {
	cfg  *config.Config
	log  *slog.Logger
	dp   dataPlane
	host host
	kf   *datapath.KernelFailover // nil: user space only
	met  *metrics.Metrics
	arr  *datapath.Arrivals // nil: arrivals are not announced

	// ConfigPath is the file Reload reads; Level, if set, is the log
	// level Reload changes. Both are set by the caller before Run.
	ConfigPath string
	Level      *slog.LevelVar
	// OnReady, if set, runs once Run has the data plane attached, the
	// policy started, the links watched and the control socket served
	// (systemd's readiness).
	OnReady func()
	ann     *announcer
	watch   *linkwatch.Watcher
	started time.Time

	// State the event loop owns (loop.go): only its goroutine touches it.
	groups []*group
	ports  map[string]*port // every configured interface by name
	// released: interfaces a pattern matches that the operator removed
	// (remove-port), by name with their ifindex; matched again only
	// when re-created.
	released map[string]int
	timeline timeline // the failover timeline (timeline.go)

	// calls carries work from other goroutines into the event loop
	// (loop.go).
	calls *callQueue
	// view is what the loop publishes for the metrics scrape (view.go).
	view atomic.Pointer[view]

	// polled maps the polled uplinks (polledSlots) to their group and slot for
	// the poll's fast path, which runs on its own thread, outside the loop.
	polled    atomic.Pointer[map[string]polledUplink]
	fastMoves chan fastMove
	hold      *time.Timer // fires at the earliest hold-timer deadline (up/down delay)
}

type group struct {
	cfg     config.Group
	id      uint32
	policy  *failover.Group
	uplinks [limits.MaxUplinks]*port // by slot; nil: free

	guests []*port
	recent []*control.FailoverEvent // the last maxRecent switches, oldest first
	prober *probe.Prober            // nil: no path probes
	// arrived are the guests that arrived lately, announced together;
	// announced counts the frames its announcements sent.
	arrived   arrivalLog
	announced announceCounts
	// bal is a balance group's bucket table, pins and load (balance.go).
	bal balancer
	// Switches by reason since start: uplinkctl status and stats, and the
	// metrics read them.
	byReason map[string]int
}

// port is one configured interface and what the daemon knows of it.
type port struct {
	name    string
	group   *group
	role    datapath.Role
	slot    limits.Slot // uplinks
	ifindex int         // attached index; 0 when not attached
	mac     net.HardwareAddr
	mode    datapath.AttachMode
	err     error    // why it is not attached
	vlan    uint16   // guests: access VLAN (0: a trunk)
	trunk   []uint16 // guests: a trunk's VLANs (nil: all)
	// announcePriority: guests behind this port are announced first when
	// higher.
	announcePriority int
	maxMACs          int  // guests: MACs learned behind it at most (0: no bound)
	macLock          bool // guests: its MACs are not learned behind other ports
	// pattern is the guest port pattern that made this port ("" for a
	// named or added one): the port goes when its interface does.
	pattern string
	// changes is the last carrier_changes seen, to spot a flap that
	// happened between two polls.
	changes uint32
}

// New opens (or adopts) the data plane and attaches every configured port
// that exists. It does not start watching; Run does.
func New(cfg *config.Config, log *slog.Logger) (*Daemon, error) {
	dp, err := datapath.Open(cfg.PinPath, log)
	if err != nil {
		return nil, err
	}
	d := newDaemon(cfg, log, dp, netlinkHost{})
	// In-kernel failover where the kernel allows it; the daemon's own
	// path always remains.
	if kf, err := dp.OpenKernelFailover(); err != nil {
		log.Warn("in-kernel failover unavailable; failing over from user space", "err", err)
	} else {
		d.kf = kf
		for path, why := range kf.Refused() {
			log.Warn("in-kernel failover path unavailable, falling back", "path", path, "reason", why)
		}
		log.Info("failover paths", "in_use", kf.Paths())
	}
	if arr, err := dp.Arrivals(); err != nil {
		log.Warn("arrival events unavailable; new guests are announced only at failovers", "err", err)
	} else {
		d.arr = arr
	}
	if err := d.setup(); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// newDaemon is a daemon over dp and h, not set up yet.
func newDaemon(cfg *config.Config, log *slog.Logger, dp dataPlane, h host) *Daemon {
	d := &Daemon{
		cfg:       cfg,
		log:       log,
		dp:        dp,
		host:      h,
		started:   time.Now(),
		ports:     map[string]*port{},
		released:  map[string]int{},
		fastMoves: make(chan fastMove, 64),
		hold:      time.NewTimer(time.Hour),
		calls:     newCallQueue(),
	}
	d.hold.Stop() // armed by armHold when a hold timer runs
	d.met = metrics.New(d.metricsSnapshot)
	d.ann = &announcer{send: announce.New(cfg.AnnounceRateLimit, cfg.AnnounceBurst, log),
		guests: dp.Guests, met: d.met, log: log, post: d.calls.post}
	return d
}

// FailoverPaths lists the paths in use (fastest first) and the refused ones.
func (d *Daemon) FailoverPaths() ([]string, map[string]string) {
	if d.kf == nil {
		return []string{datapath.PathUserspace}, nil
	}
	return d.kf.Paths(), d.kf.Refused()
}

func (d *Daemon) setup() error {
	names := make([]string, len(d.cfg.Groups))
	for i, g := range d.cfg.Groups {
		names[i] = g.Name
	}
	ids, err := d.dp.AssignGroups(names)
	if err != nil {
		return err
	}
	for _, gc := range d.cfg.Groups {
		g := &group{cfg: gc, id: ids[gc.Name]}
		pc := failover.Config{Name: gc.Name, Failback: gc.Failback, UpDelay: gc.UpDelay, DownDelay: gc.DownDelay}
		for slot, u := range gc.Uplinks {
			state, err := failover.ParseAdminState(u.State)
			if err != nil {
				return fmt.Errorf("group %s uplink %s: %w", gc.Name, u.Name, err)
			}
			pc.Uplinks = append(pc.Uplinks, failover.UplinkConfig{Name: u.Name, Priority: u.Priority, State: state})
			p := &port{name: u.Name, group: g, role: datapath.RoleUplink, slot: limits.Slot(slot)}
			g.uplinks[slot] = p
			d.ports[u.Name] = p
		}
		for _, gp := range gc.GuestPorts {
			if gp.Match == "" {
				d.addGuest(g, gp)
			}
		}
		// Adopt the active uplink a previous daemon left, if its slot
		// still holds the interface the configuration puts there.
		initial, err := d.pinnedActive(g)
		if err != nil {
			return err
		}
		if g.policy, err = failover.New(pc, initial); err != nil {
			return err
		}
		if err := d.adoptBalance(g); err != nil {
			return err
		}
		if pc := gc.Probe; pc != nil {
			g.prober, err = probe.New(probe.Config{Targets: pc.Targets, Interval: pc.Interval, Missed: pc.Missed, Source: pc.Source},
				func(uplink string, st failover.ProbeState) { d.onProbe(g, uplink, st) }, d.log.With("group", gc.Name))
			if err != nil {
				return fmt.Errorf("group %s: %w", gc.Name, err)
			}
		}
		d.groups = append(d.groups, g)
	}
	// Interfaces a pattern matches now are ports from the start, so a
	// restarted daemon keeps them attached instead of detaching them.
	d.matchExisting()
	d.detachUnconfigured()

	for _, g := range d.groups {
		for _, p := range g.ports() {
			d.attach(p, 0)
		}
		d.syncProbes(g)
	}
	return nil
}

// addGuest makes gp a guest port of g (not attached yet).
func (d *Daemon) addGuest(g *group, gp config.GuestPort) *port {
	p := &port{name: gp.Name, group: g, role: datapath.RoleGuest, slot: limits.NoSlot, vlan: gp.VLAN, trunk: gp.Trunk,
		announcePriority: gp.AnnouncePriority, pattern: gp.Match, maxMACs: gp.MaxMACs, macLock: gp.MACLock}
	g.guests = append(g.guests, p)
	d.ports[gp.Name] = p
	return p
}

// matchGuest makes name a guest port if a profile's pattern matches it and
// it is no port yet; nil if not.
func (d *Daemon) matchGuest(name string) *port {
	if _, used := d.ports[name]; used {
		return nil
	}
	groupName, profile, ok := d.cfg.ProfileFor(name)
	if !ok {
		return nil
	}
	g, err := d.groupByName(groupName)
	if err != nil {
		return nil
	}
	if len(g.guests) >= limits.MaxGuestPorts {
		d.log.Error("interface matches a guest port pattern but the group is full; not attached",
			"port", name, "group", g.cfg.Name, "match", profile.Match, "max", limits.MaxGuestPorts)
		return nil
	}
	return d.addGuest(g, profile)
}

// matchExisting makes every existing interface a pattern matches (and
// that is no port yet) a guest port, and returns the new ports (not yet
// attached).
func (d *Daemon) matchExisting() []*port {
	links, err := d.host.LinkList()
	if err != nil {
		d.log.Warn("cannot list interfaces for the guest port patterns; they are attached as the link watcher reports them", "err", err)
		return nil
	}
	var out []*port
	for _, l := range links {
		if p := d.matchGuest(l.Attrs().Name); p != nil {
			out = append(out, p)
		}
	}
	return out
}

// uplinkPorts are g's uplinks in slot order.
func (g *group) uplinkPorts() []*port {
	var out []*port
	for _, p := range g.uplinks {
		if p != nil {
			out = append(out, p)
		}
	}
	return out
}

// ports are g's uplinks and guest ports.
func (g *group) ports() []*port { return append(g.uplinkPorts(), g.guests...) }

// syncProbes makes g's prober probe exactly its attached uplinks.
func (d *Daemon) syncProbes(g *group) {
	if g.prober == nil {
		return
	}
	var ups []probe.Uplink
	for _, p := range g.uplinkPorts() {
		if p.ifindex > 0 {
			ups = append(ups, probe.Uplink{Name: p.name, Ifindex: p.ifindex, MAC: p.mac})
		}
	}
	// Newly probed uplinks start ok (see probe.Tracker).
	now := time.Now()
	for _, name := range g.prober.Set(ups) {
		if dec, err := g.policy.SetProbe(name, failover.ProbeOK, now); err == nil {
			d.applyFrom(g, dec, now, time.Time{}, "probe")
		}
	}
}

// onProbe takes a change of an uplink's path probes to the policy. It
// runs on a prober's goroutine.
func (d *Daemon) onProbe(g *group, uplink string, st failover.ProbeState) {
	d.calls.post(func() { d.onProbeState(g, uplink, st) })
}

func (d *Daemon) onProbeState(g *group, uplink string, st failover.ProbeState) {
	now := time.Now()
	dec, err := g.policy.SetProbe(uplink, st, now)
	if err != nil {
		d.log.Error("policy", "group", g.cfg.Name, "uplink", uplink, "err", err)
		return
	}
	d.applyFrom(g, dec, now, time.Time{}, "probe")
}

// pinnedActive returns the slot of the uplink the data plane already uses
// for g, or limits.NoSlot.
func (d *Daemon) pinnedActive(g *group) (limits.Slot, error) {
	slot, err := d.dp.ActiveSlot(g.id)
	if err != nil {
		return limits.NoSlot, err
	}
	if slot == limits.NoSlot || int(slot) >= len(g.cfg.Uplinks) {
		return limits.NoSlot, nil
	}
	pinned, err := d.dp.UplinkIfindex(g.id, slot)
	if err != nil || pinned == 0 {
		return limits.NoSlot, err
	}
	l, err := d.host.LinkByName(g.cfg.Uplinks[slot].Name)
	if err != nil || l.Attrs().Index != pinned {
		return limits.NoSlot, nil
	}
	return slot, nil
}

// detachUnconfigured removes ports a previous configuration attached.
func (d *Daemon) detachUnconfigured() {
	names, err := d.dp.PinnedLinks()
	if err != nil {
		d.log.Warn("cannot list pinned links", "err", err)
		return
	}
	for _, name := range names {
		if _, ok := d.ports[name]; ok {
			continue
		}
		ifindex := 0
		if l, err := d.host.LinkByName(name); err == nil {
			ifindex = l.Attrs().Index
		}
		if err := d.dp.Detach(name, ifindex); err != nil {
			d.log.Warn("detach port no longer configured", "port", name, "err", err)
		} else {
			d.log.Info("detached port no longer configured", "port", name)
		}
	}
}

// attach (re)attaches p if it exists; ifindex 0 looks it up by name.
// Failures are kept on the port and shown in status: one broken port must
// not take the others down.
func (d *Daemon) attach(p *port, ifindex int) {
	var l netlink.Link
	var err error
	if ifindex > 0 {
		l, err = d.host.LinkByIndex(ifindex)
	} else {
		l, err = d.host.LinkByName(p.name)
	}
	if err != nil {
		p.ifindex, p.err = 0, fmt.Errorf("interface not found")
		d.log.Warn("port not attached: interface not found; will attach when it appears", "port", p.name, "group", p.group.cfg.Name)
		return
	}
	attrs := l.Attrs()
	dpPort := datapath.Port{
		Ifname:  p.name,
		Ifindex: attrs.Index,
		MAC:     attrs.HardwareAddr,
		Group:   p.group.id,
		Role:    p.role,
	}
	if p.role == datapath.RoleUplink {
		dpPort.Slot = p.slot
	} else {
		dpPort.VLAN, dpPort.Trunk = p.vlan, p.trunk
		dpPort.MaxMACs, dpPort.MACLock = uint32(p.maxMACs), p.macLock
	}
	mode, err := d.dp.Attach(dpPort)
	if err != nil {
		p.ifindex, p.err = 0, err
		d.log.Error("port not attached", "port", p.name, "group", p.group.cfg.Name, "err", err)
		return
	}
	p.ifindex, p.mac, p.mode, p.err = attrs.Index, attrs.HardwareAddr, mode, nil
	d.log.Info("port attached", "port", p.name, "role", p.role, "group", p.group.cfg.Name, "ifindex", attrs.Index, "hook", mode)
}

// Run starts the policy from the current carriers, then watches links and
// serves the control API until ctx ends. The data plane stays attached
// when Run returns.
func (d *Daemon) Run(ctx context.Context) error {
	srv, err := control.Listen(d.cfg.ControlSocket, controlAPI{d}, d.log)
	if err != nil {
		return err
	}
	if addr := d.cfg.MetricsListen; addr != "" {
		// Metrics are not worth refusing to fail over for: a busy port
		// is logged, and uplinkd runs without them.
		if ln, err := net.Listen("tcp", addr); err != nil {
			d.log.Error("metrics not served", "metrics_listen", addr, "err", err)
		} else {
			d.log.Info("serving metrics", "metrics_listen", ln.Addr().String())
			go func() {
				if err := d.met.Serve(ctx, ln); err != nil {
					d.log.Error("metrics server stopped", "err", err)
				}
			}()
		}
	}
	defer srv.Close()
	// This goroutine is the event loop from here on: the set-up below runs
	// before it takes any call. When it ends, waiting calls fail (before
	// srv.Close waits for their handlers).
	defer d.calls.stop()

	names := d.portNames()
	snap, err := linkwatch.Snapshot(names)
	if err != nil {
		return fmt.Errorf("list interfaces: %w", err)
	}
	if err := d.startGroups(snap, time.Now()); err != nil {
		return err
	}
	d.watch = linkwatch.New(names, linkwatch.Options{
		PollInterval:  d.cfg.CarrierPollInterval,
		Patterns:      d.cfg.GuestPatterns(),
		OnCarrierLost: d.onPolledCarrierLost,
	}, d.log)
	d.setPolled()
	d.tellWatcherPolled() // setPolled may have found the set unchanged
	d.publish()

	events := make(chan linkwatch.State, 256)
	watchDone := make(chan error, 1)
	go func() { watchDone <- d.watch.Run(ctx, events) }()
	kernel := make(chan datapath.KernelSwitch, 64)
	if d.kf != nil {
		go func() {
			for {
				ev, err := d.kf.Next()
				if err != nil {
					return // closed
				}
				kernel <- ev
			}
		}()
	}
	// The data plane counts each port's learned MACs for max_macs; entries
	// that age out of the LRU it does not see: recount now and then, off
	// the event loop (a full FDB is a long walk). Run waits for it to end,
	// so that Close does not close the maps under it.
	recountCtx, stopRecount := context.WithCancel(ctx)
	recountDone := make(chan struct{})
	defer func() { stopRecount(); <-recountDone }()
	go func() {
		defer close(recountDone)
		recount := time.NewTicker(5 * time.Second)
		defer recount.Stop()
		for {
			select {
			case <-recount.C:
				if err := d.dp.RecountLearned(); err != nil {
					d.log.Warn("cannot recount the learned MACs per port", "err", err)
				}
			case <-recountCtx.Done():
				return
			}
		}
	}()
	rebalanceDue := make(chan uint32, len(d.groups))
	rebalanceTicks(ctx, d.groups, rebalanceDue)
	arrived := make(chan datapath.Arrival, maxArrivalBatch)
	if d.arr != nil {
		go d.readArrivals(ctx, arrived)
	}
	// Answer only now that every group has its first active uplink and
	// its timers: a client that connected earlier waits in the backlog
	// rather than see a half-started daemon (no active uplink, set-active
	// refused), and no reload races the set-up above.
	go func() {
		if err := srv.Serve(); err != nil {
			d.log.Error("control socket", "err", err)
		}
	}()
	if d.OnReady != nil {
		d.OnReady()
	}
	d.log.Info("uplinkd running", "version", version.String(), "groups", len(d.groups), "pin_path", d.cfg.PinPath, "control_socket", d.cfg.ControlSocket)

	for {
		select {
		case now := <-d.hold.C:
			d.onHold(now)
		case <-ctx.Done():
			d.ann.send.Close()
			<-watchDone
			d.log.Info("uplinkd stopping; the data plane stays attached and keeps forwarding (uplinkd -cleanup removes it)")
			return nil
		case err := <-watchDone:
			return fmt.Errorf("link watcher: %w", err)
		case st := <-events:
			// A move the poll made comes before the state it saw, so
			// the move is recorded as the switch (at its own time).
			for len(d.fastMoves) > 0 {
				d.onFastMove(<-d.fastMoves)
			}
			d.onLink(st)
		case ev := <-kernel:
			d.onKernelSwitch(ev)
		case m := <-d.fastMoves:
			d.onFastMove(m)
		case id := <-rebalanceDue:
			d.onRebalanceTick(id)
		case a := <-arrived:
			d.ann.arrivals(d.groups, takeArrivals(a, arrived))
		case fn := <-d.calls.next:
			fn()
		}
		d.publish()
	}
}

// startGroups starts every group's policy from its uplinks' states in snap
// and carries out the first decisions.
func (d *Daemon) startGroups(snap map[string]linkwatch.State, now time.Time) error {
	for _, g := range d.groups {
		carriers := map[string]bool{}
		for _, u := range g.uplinkPorts() {
			st := snap[u.name]
			carriers[u.name] = u.ifindex > 0 && st.Exists && st.AdminUp && st.Carrier
		}
		dec, err := g.policy.Start(carriers, now)
		if err != nil {
			return err
		}
		d.apply(g, dec, now)
	}
	return nil
}

// Close releases the daemon's handles; the pinned data plane (and the
// in-kernel failover hooks) stay. Call it after Run has returned.
func (d *Daemon) Close() error {
	d.calls.stop() // a prober's report waiting for a loop that never ran
	d.ann.send.Close()
	for _, g := range d.groups {
		if g.prober != nil {
			g.prober.Close()
		}
	}
	if d.kf != nil {
		d.kf.Close()
	}
	if d.arr != nil {
		d.arr.Close()
	}
	return d.dp.Close()
}

// onKernelSwitch takes note of a switch the kernel made by itself: the
// policy records it (and corrects it if its fallback order was stale),
// the guests are announced, and the failed uplink's real carrier is read,
// since the carrier may be back already (a short flap).
func (d *Daemon) onKernelSwitch(ev datapath.KernelSwitch) {
	g := d.groupByID(ev.Group)
	if g == nil {
		return
	}
	reason := failover.ReasonCarrierHook // the carrier hook, or the switch read no carrier
	d.log.Info("kernel moved the group off a failing uplink", "group", g.cfg.Name, "path", ev.Path,
		"from", g.policy.UplinkName(ev.From), "to", g.policy.UplinkName(ev.To))
	// ev.To is NoSlot for a balance group's non-designated uplink: the
	// active slot stayed.
	dec := g.policy.DataPlaneLost(ev.From, ev.To, reason, ev.At)
	d.applyFrom(g, dec, ev.At, ev.At, "kernel/"+ev.Path)
	if ev.From.Valid() && g.uplinks[ev.From] != nil {
		from := g.uplinks[ev.From]
		if st, err := d.host.LinkState(from.name); err == nil {
			up := from.ifindex > 0 && st.Exists && st.AdminUp && st.Carrier
			if dec, err := g.policy.SetCarrier(from.name, up, time.Now()); err == nil {
				d.apply(g, dec, time.Now())
			}
		}
	}
}

func (d *Daemon) onLink(st linkwatch.State) {
	p, ok := d.ports[st.Name]
	if !ok {
		// An interface that a guest port pattern matches appeared, or
		// changed. One the operator removed stays out while it lives.
		if idx, released := d.released[st.Name]; released {
			if st.Exists && st.Index == idx {
				return
			}
			delete(d.released, st.Name)
		}
		if !st.Exists {
			return
		}
		if p = d.matchGuest(st.Name); p == nil {
			return
		}
		d.log.Info("guest port matched a pattern", "port", p.name, "group", p.group.cfg.Name, "match", p.pattern)
		d.attach(p, st.Index)
		d.rewatch()
		return
	}
	switch {
	case !st.Exists && p.pattern != "":
		// A pattern's port goes with its interface.
		d.removeGuest(p)
		d.log.Info("guest port gone with its interface", "port", p.name, "group", p.group.cfg.Name, "match", p.pattern)
		d.rewatch()
		return
	case !st.Exists:
		if p.ifindex != 0 {
			d.log.Warn("port interface removed", "port", p.name, "group", p.group.cfg.Name)
			// Forget its map entries and what was learned behind it; it
			// is attached again if it comes back.
			if err := d.dp.Detach(p.name, p.ifindex); err != nil {
				d.log.Warn("clean up removed interface", "port", p.name, "err", err)
			}
		}
		p.ifindex, p.err = 0, fmt.Errorf("interface not found")
		d.syncProbes(p.group)
	case st.Index != p.ifindex:
		// New, or deleted and re-created with a new index.
		if p.ifindex != 0 {
			if err := d.dp.Detach(p.name, p.ifindex); err != nil {
				d.log.Warn("clean up replaced interface", "port", p.name, "err", err)
			}
		}
		d.attach(p, st.Index)
		d.syncProbes(p.group)
	}
	if p.role != datapath.RoleUplink {
		return
	}
	up := p.ifindex > 0 && st.Exists && st.AdminUp && st.Carrier
	bounced := st.Exists && p.changes != 0 && st.CarrierChanges >= p.changes+2 && up
	p.changes = st.CarrierChanges
	dec, err := p.group.policy.SetCarrier(p.name, up, st.Seen)
	if err != nil {
		d.log.Error("policy", "group", p.group.cfg.Name, "uplink", p.name, "err", err)
		return
	}
	d.log.Debug("link", "state", st.String())
	d.applyFrom(p.group, dec, st.Seen, time.Time{}, st.Source)
	if bounced && !dec.Changed && slices.Contains(p.group.polledSlots(), p.slot) {
		// Down and up again between two looks: the policy has nothing to
		// do, but the upstream port may have flushed the guests' MACs.
		d.log.Warn("uplink bounced between two carrier checks; announcing its guests again",
			"group", p.group.cfg.Name, "uplink", p.name, "carrier_changes", st.CarrierChanges)
		if p.group.balanced() {
			d.ann.slot(p.group, p.slot, "bounced")
		} else {
			d.announceSwitch(p.group, p, &control.FailoverEvent{Group: p.group.cfg.Name, From: p.name, To: p.name,
				Reason: "carrier bounced", Detected: st.Seen, Switched: time.Now()})
		}
	}
}

// armHold sets the hold timer to the earliest pending deadline.
func (d *Daemon) armHold() {
	var next time.Time
	for _, g := range d.groups {
		if at, ok := g.policy.Deadline(); ok && (next.IsZero() || at.Before(next)) {
			next = at
		}
	}
	d.hold.Stop()
	if !next.IsZero() {
		d.hold.Reset(max(0, time.Until(next)))
	}
}

// onHold lets expired hold timers take effect.
func (d *Daemon) onHold(now time.Time) {
	for _, g := range d.groups {
		d.applyFrom(g, g.policy.Advance(now), now, time.Time{}, "hold timer")
	}
}

// apply carries out a policy decision: the active slot first, then the
// announcements.
func (d *Daemon) apply(g *group, dec failover.Decision, detected time.Time) {
	d.applyFrom(g, dec, detected, time.Time{}, "")
}

// applyFrom is apply for a switch that may already have happened
// (switched is when the kernel wrote the slot; zero: the daemon writes it
// now), noticed by source.
func (d *Daemon) applyFrom(g *group, dec failover.Decision, detected, switched time.Time, source string) {
	d.updateFallback(g)
	d.rebalance(g)
	d.setPolled() // a balance group polls every carrying uplink: that set changes with no switch
	d.armHold()
	if !dec.Changed {
		return
	}
	if err := d.dp.SetActive(g.id, dec.To); err != nil {
		// The policy moved on but the data plane did not: say so loudly;
		// the next event retries with a fresh decision.
		d.log.Error("cannot write the active uplink", "group", g.cfg.Name, "err", err)
		return
	}
	if switched.IsZero() {
		switched = time.Now()
	}
	ev := &control.FailoverEvent{
		Group:    g.cfg.Name,
		From:     g.policy.UplinkName(dec.From),
		To:       g.policy.UplinkName(dec.To),
		Reason:   dec.Reason.String(),
		Source:   source,
		Detected: detected,
		Switched: switched,
		Latency:  switched.Sub(detected),
	}
	g.recent = append(g.recent, ev)
	if len(g.recent) > maxRecent {
		g.recent = g.recent[len(g.recent)-maxRecent:]
	}
	d.timeline.add(ev)
	d.met.Switched(g.cfg.Name, ev.Source, detected, switched)
	if g.byReason == nil {
		g.byReason = map[string]int{}
	}
	g.byReason[ev.Reason]++
	d.log.Info("active uplink changed", "group", g.cfg.Name, "from", ev.From, "to", ev.To,
		"reason", ev.Reason, "source", ev.Source, "detect_to_switch", ev.Latency)
	if dec.To == limits.NoSlot {
		d.log.Warn("no usable uplink: guest traffic to the network is dropped until one returns", "group", g.cfg.Name)
		return
	}
	if dec.Reason == failover.ReasonInitial || dec.Reason == failover.ReasonKept || g.balanced() {
		// Nothing moved: the upstream already knows where the guests are
		// (in a balance group the active uplink is only the designated
		// one; rebalance announced the guests whose uplink changed).
		return
	}
	d.announceSwitch(g, g.uplinks[dec.To], ev)
}

// announceSwitch announces an active-backup group's learned guests out
// of up, its uplink after the switch ev, and records the outcome on ev
// when the run ends. (A balance group's guests are announced each on its
// own uplink: announcer.buckets, announcer.slot.)
func (d *Daemon) announceSwitch(g *group, up *port, ev *control.FailoverEvent) {
	d.ann.failover(g, up, ev.Switched, func(req announce.Request, res announce.Result) {
		ev.AnnounceFirst, ev.AnnounceLast = res.First, res.Last
		ev.AnnounceFrames, ev.AnnounceErrors = res.Frames, res.Errors
		d.timeline.touch(ev)
		d.log.Info("guests announced", "group", req.Group, "uplink", req.Ifname, "guests", len(req.Guests),
			"frames", res.Frames, "rounds", res.Rounds, "errors", res.Errors, "canceled", res.Canceled,
			"first_after_switch", res.First.Sub(ev.Switched))
	})
}

// updateFallback tells the in-kernel hooks and the poll's fast path where
// the group may go next.
func (d *Daemon) updateFallback(g *group) {
	if err := d.dp.SetFallback(g.id, g.policy.Fallback()); err != nil {
		d.log.Warn("cannot update the in-kernel fallback order", "group", g.cfg.Name, "err", err)
	}
}

// groupByID is the group a data-plane event names; nil if a reload has
// removed it since.
func (d *Daemon) groupByID(id uint32) *group {
	for _, g := range d.groups {
		if g.id == id {
			return g
		}
	}
	return nil
}

func (d *Daemon) groupByName(name string) (*group, error) {
	for _, g := range d.groups {
		if g.cfg.Name == name {
			return g, nil
		}
	}
	return nil, fmt.Errorf("group %q: %w", name, control.ErrNotFound)
}

// setActive is `uplinkctl set-active GROUP UPLINK`.
func (d *Daemon) setActive(g *group, uplink string) error {
	groupName := g.cfg.Name
	now := time.Now()
	dec, err := g.policy.SetManual(uplink, now)
	switch {
	case errors.Is(err, failover.ErrUnknownUplink):
		return fmt.Errorf("group %s has no uplink %q: %w", groupName, uplink, control.ErrNotFound)
	case errors.Is(err, failover.ErrNotUsable):
		return fmt.Errorf("%w: %v", control.ErrRefused, err)
	case err != nil:
		return fmt.Errorf("%w: %v", control.ErrRefused, err)
	}
	d.log.Info("manual switch", "group", groupName, "uplink", uplink)
	d.applyFrom(g, dec, now, time.Time{}, "operator")
	return nil
}

// setUplink is `uplinkctl set-priority` and `uplinkctl set-state`: the
// change applies at once, and moves traffic only if policy says so.
func (d *Daemon) setUplink(g *group, uplink string, req control.SetUplinkRequest) error {
	groupName := g.cfg.Name
	var state failover.AdminState
	var err error
	if req.State != "" {
		if state, err = failover.ParseAdminState(req.State); err != nil {
			return fmt.Errorf("%w: %v", control.ErrRefused, err)
		}
	}
	now := time.Now()
	var decs []failover.Decision
	if req.Priority != nil {
		dec, err := g.policy.SetPriority(uplink, *req.Priority, now)
		if err != nil {
			return policyError(err)
		}
		d.log.Info("uplink priority changed", "group", groupName, "uplink", uplink, "priority", *req.Priority)
		decs = append(decs, dec)
	}
	if req.State != "" {
		dec, err := g.policy.SetState(uplink, state, now)
		if err != nil {
			return policyError(err)
		}
		d.log.Info("uplink admin state changed", "group", groupName, "uplink", uplink, "state", state)
		decs = append(decs, dec)
	}
	for _, dec := range decs {
		d.applyFrom(g, dec, now, time.Time{}, "operator")
	}
	return nil
}

// policyError maps the policy's errors to the control API's.
func policyError(err error) error {
	if errors.Is(err, failover.ErrUnknownUplink) {
		return fmt.Errorf("%w: %v", control.ErrNotFound, err)
	}
	return fmt.Errorf("%w: %v", control.ErrRefused, err)
}

// clearManual is `uplinkctl set-active GROUP auto`.
func (d *Daemon) clearManual(g *group) error {
	now := time.Now()
	d.applyFrom(g, g.policy.ClearManual(now), now, time.Time{}, "operator")
	return nil
}
