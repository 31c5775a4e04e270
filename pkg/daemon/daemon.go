// Package daemon is uplinkd: it ties the failover policy to the link
// watcher, the data plane and the announcer, and serves the control API.
//
// Order of every switch: write the group's active slot first (one map
// write moves every guest), then announce the guests on the new uplink.
package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"github.com/uplinkd/uplinkd/pkg/announce"
	"github.com/uplinkd/uplinkd/pkg/config"
	"github.com/uplinkd/uplinkd/pkg/control"
	"github.com/uplinkd/uplinkd/pkg/datapath"
	"github.com/uplinkd/uplinkd/pkg/limits"
	"github.com/uplinkd/uplinkd/pkg/linkwatch"
	"github.com/uplinkd/uplinkd/pkg/metrics"
	"github.com/uplinkd/uplinkd/pkg/version"
)

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

	// fast is the poll's fast path (fastmove.go): the polled uplinks it
	// reads on its own thread, outside the loop, and the moves it made.
	fast *pollFastPath
	hold *time.Timer // fires at the earliest hold-timer deadline (up/down delay)
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
		cfg:      cfg,
		log:      log,
		dp:       dp,
		host:     h,
		started:  time.Now(),
		ports:    map[string]*port{},
		released: map[string]int{},
		fast:     newPollFastPath(dp, log),
		hold:     time.NewTimer(time.Hour),
		calls:    newCallQueue(),
	}
	d.hold.Stop() // armed by armHold when a hold timer runs
	d.met = metrics.New(d.metricsSnapshot)
	d.ann = &announcer{send: announce.New(cfg.AnnounceRateLimit, cfg.AnnounceBurst, log),
		guests: dp.Guests, hostEnds: h.HostEnds, met: d.met, log: log, post: d.calls.post}
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
	deps := &groupDeps{dp: d.dp, host: d.host, log: d.log, met: d.met, ann: d.ann, timeline: &d.timeline,
		post: d.calls.post, policyEvent: d.policyEvent}
	for _, gc := range d.cfg.Groups {
		g, err := newGroup(gc, ids[gc.Name], deps)
		if err != nil {
			return err
		}
		for _, p := range g.uplinkPorts() {
			d.ports[p.name] = p
		}
		for _, gp := range gc.GuestPorts {
			if gp.Match == "" {
				d.addGuest(g, gp)
			}
		}
		d.groups = append(d.groups, g)
	}
	if err := d.ensureHostPorts(); err != nil {
		return err
	}
	// Interfaces a pattern matches now are ports from the start, so a
	// restarted daemon keeps them attached instead of detaching them.
	d.matchExisting()
	d.detachUnconfigured()

	for _, g := range d.groups {
		for _, p := range g.ports() {
			g.attach(p, 0)
		}
		g.syncProbes()
	}
	return nil
}

// ensureHostPorts creates or adopts every host port's veth pair and makes
// its switch end a guest port (attached with the others). An interface
// in the way is an error naming the field: uplinkd does not start with
// the host's own traffic nowhere to go.
func (d *Daemon) ensureHostPorts() error {
	for i, g := range d.groups {
		for j, hp := range g.cfg.HostPorts {
			if _, err := d.addHostPort(g, hp); err != nil {
				return fmt.Errorf("groups[%d].host_ports[%d]: %w", i, j, err)
			}
		}
	}
	return nil
}

// addHostPort creates or adopts hp's veth pair and makes its switch end a
// guest port of g (not attached yet).
func (d *Daemon) addHostPort(g *group, hp config.HostPort) (*port, error) {
	// The configuration leaves room at start (host ports come before
	// patterns); at a reload, ports patterns took since may have filled it.
	if g.full() {
		return nil, fmt.Errorf("%w: host port %s: the group has %d guest ports already, the most it switches",
			control.ErrRefused, hp.Name, len(g.guests))
	}
	res, err := d.host.EnsureHostPort(hp)
	if err != nil {
		return nil, err
	}
	how := "adopted"
	if res.Created {
		how = "created"
	}
	d.log.Info("host port "+how, "group", g.cfg.Name, "host_port", hp.Name, "switch_end", hp.SwitchEnd,
		"ifindex", res.HostIndex, "vlan", hp.VLAN)
	for _, diff := range res.Differs {
		d.log.Warn("host port adopted as it is, unlike its configuration (recreate it to apply)",
			"group", g.cfg.Name, "host_port", hp.Name, "configured", diff)
	}
	p := d.addGuest(g, config.GuestPort{Name: hp.SwitchEnd, VLAN: hp.VLAN, MaxMACs: config.DefaultMaxMACs})
	p.hostEnd = hp.Name
	return p, nil
}

// addGuest makes gp a guest port of g (not attached yet).
func (d *Daemon) addGuest(g *group, gp config.GuestPort) *port {
	p := g.addGuest(gp)
	d.ports[p.name] = p
	return p
}

// removeGuest detaches a guest port and forgets it and what was learned
// behind it.
func (d *Daemon) removeGuest(p *port) {
	p.group.removeGuest(p)
	delete(d.ports, p.name)
}

// dropGuest removes g's guest port name, if it has one.
func (d *Daemon) dropGuest(g *group, name string) {
	if p, err := g.port(name, datapath.RoleGuest); err == nil {
		d.removeGuest(p)
	}
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
	if g.full() {
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
		OnCarrierLost: d.fast.carrierLost,
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
			for len(d.fast.moves) > 0 {
				d.onFastMove(<-d.fast.moves)
			}
			d.onLink(st)
		case ev := <-kernel:
			d.onKernelSwitch(ev)
		case m := <-d.fast.moves:
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
		if err := g.start(snap, now); err != nil {
			return err
		}
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

// onKernelSwitch gives a switch the kernel made by itself to its group.
func (d *Daemon) onKernelSwitch(ev datapath.KernelSwitch) {
	if g := d.groupByID(ev.Group); g != nil {
		g.onKernelSwitch(ev)
	}
}

// onFastMove gives a move the poll made to its group.
func (d *Daemon) onFastMove(m fastMove) {
	if g := d.groupByID(m.group); g != nil {
		g.onFastMove(m)
	}
}

// onLink routes a state the link watcher reported: to the port's group,
// or, for an interface that is no port, to the guest port patterns.
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
		p.group.attach(p, st.Index)
		d.rewatch()
		return
	}
	if !st.Exists && p.pattern != "" {
		// A pattern's port goes with its interface.
		d.removeGuest(p)
		d.log.Info("guest port gone with its interface", "port", p.name, "group", p.group.cfg.Name, "match", p.pattern)
		d.rewatch()
		return
	}
	p.group.onLink(p, st)
}

// policyEvent runs after every policy event of any group: the polled
// uplinks and the hold timer's deadline span groups.
func (d *Daemon) policyEvent() {
	d.setPolled()
	d.armHold()
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
		g.onHold(now)
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
