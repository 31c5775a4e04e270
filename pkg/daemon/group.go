package daemon

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
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
)

// A group's runtime: its policy (failover.Group), its ports, its path
// prober and balancer, and carrying the policy's decisions out: the
// fallback order and bucket table first, then the active slot, then the
// switch's record and announcement. The event loop drives it (every
// method runs on the loop); the daemon routes events to it by port name
// or group id, and keeps what spans groups: the index of ports by name,
// the link watcher, the polled uplinks and the one hold timer.

// maxRecent bounds each group's list of recent switches.
const maxRecent = 16

// groupDeps is what a group's runtime uses outside itself; the daemon
// gives every group the same.
type groupDeps struct {
	dp       dataPlane
	host     host
	log      *slog.Logger
	met      *metrics.Metrics
	ann      *announcer
	timeline *timeline
	// post runs a function on the event loop (the prober's reports).
	post func(func())
	// policyEvent runs after every policy event of the group, before its
	// decision is carried out: the daemon derives again what spans groups
	// (the polled uplinks and the hold timer's deadline).
	policyEvent func()
}

// group is one group's runtime. The event loop owns it.
type group struct {
	*groupDeps
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
	// hostEnd is the host's end of a host port's veth pair, this port
	// being its switch end ("" for any other port).
	hostEnd string
	// changes is the last carrier_changes seen, to spot a flap that
	// happened between two polls.
	changes uint32
}

// newGroup is gc's runtime with its uplinks (not attached yet; no guest
// ports), adopting the active uplink and bucket table a previous daemon
// left in the data plane.
func newGroup(gc config.Group, id uint32, deps *groupDeps) (*group, error) {
	g := &group{groupDeps: deps, cfg: gc, id: id}
	pc := failover.Config{Name: gc.Name, Failback: gc.Failback, UpDelay: gc.UpDelay, DownDelay: gc.DownDelay}
	for slot, u := range gc.Uplinks {
		state, err := failover.ParseAdminState(u.State)
		if err != nil {
			return nil, fmt.Errorf("group %s uplink %s: %w", gc.Name, u.Name, err)
		}
		pc.Uplinks = append(pc.Uplinks, failover.UplinkConfig{Name: u.Name, Priority: u.Priority, State: state})
		g.uplinks[slot] = &port{name: u.Name, group: g, role: datapath.RoleUplink, slot: limits.Slot(slot)}
	}
	// Adopt the active uplink a previous daemon left, if its slot
	// still holds the interface the configuration puts there.
	initial, err := g.pinnedActive()
	if err != nil {
		return nil, err
	}
	if g.policy, err = failover.New(pc, initial); err != nil {
		return nil, err
	}
	if err := g.adoptBalance(); err != nil {
		return nil, err
	}
	if pc := gc.Probe; pc != nil {
		g.prober, err = probe.New(probe.Config{Targets: pc.Targets, Interval: pc.Interval, Missed: pc.Missed, Source: pc.Source},
			g.onProbe, g.log.With("group", gc.Name))
		if err != nil {
			return nil, fmt.Errorf("group %s: %w", gc.Name, err)
		}
	}
	return g, nil
}

// pinnedActive returns the slot of the uplink the data plane already uses
// for g, or limits.NoSlot.
func (g *group) pinnedActive() (limits.Slot, error) {
	slot, err := g.dp.ActiveSlot(g.id)
	if err != nil {
		return limits.NoSlot, err
	}
	if slot == limits.NoSlot || int(slot) >= len(g.cfg.Uplinks) {
		return limits.NoSlot, nil
	}
	pinned, err := g.dp.UplinkIfindex(g.id, slot)
	if err != nil || pinned == 0 {
		return limits.NoSlot, err
	}
	l, err := g.host.LinkByName(g.cfg.Uplinks[slot].Name)
	if err != nil || l.Attrs().Index != pinned {
		return limits.NoSlot, nil
	}
	return slot, nil
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

// full says whether g has as many guest ports as the data plane floods
// to: a new one is refused.
func (g *group) full() bool { return len(g.guests) >= limits.MaxGuestPorts }

// port finds a port of g by name and role.
func (g *group) port(name string, role datapath.Role) (*port, error) {
	for _, p := range g.ports() {
		if p.name == name && p.role == role {
			return p, nil
		}
	}
	return nil, fmt.Errorf("group %s has no %s %q: %w", g.cfg.Name, role, name, control.ErrNotFound)
}

// start starts g's policy from its uplinks' states in snap and carries
// out the first decision.
func (g *group) start(snap map[string]linkwatch.State, now time.Time) error {
	carriers := map[string]bool{}
	for _, u := range g.uplinkPorts() {
		st := snap[u.name]
		carriers[u.name] = u.ifindex > 0 && st.Exists && st.AdminUp && st.Carrier
	}
	dec, err := g.policy.Start(carriers, now)
	if err != nil {
		return err
	}
	g.apply(dec, now)
	return nil
}

// attach (re)attaches p if it exists; ifindex 0 looks it up by name.
// Failures are kept on the port and shown in status: one broken port must
// not take the others down.
func (g *group) attach(p *port, ifindex int) {
	var l netlink.Link
	var err error
	if ifindex > 0 {
		l, err = g.host.LinkByIndex(ifindex)
	} else {
		l, err = g.host.LinkByName(p.name)
	}
	if err != nil {
		p.ifindex, p.err = 0, fmt.Errorf("interface not found")
		g.log.Warn("port not attached: interface not found; will attach when it appears", "port", p.name, "group", g.cfg.Name)
		return
	}
	attrs := l.Attrs()
	dpPort := datapath.Port{
		Ifname:  p.name,
		Ifindex: attrs.Index,
		MAC:     attrs.HardwareAddr,
		Group:   g.id,
		Role:    p.role,
	}
	if p.role == datapath.RoleUplink {
		dpPort.Slot = p.slot
	} else {
		dpPort.VLAN, dpPort.Trunk = p.vlan, p.trunk
		dpPort.MaxMACs, dpPort.MACLock = uint32(p.maxMACs), p.macLock
	}
	mode, err := g.dp.Attach(dpPort)
	if err != nil {
		p.ifindex, p.err = 0, err
		g.log.Error("port not attached", "port", p.name, "group", g.cfg.Name, "err", err)
		return
	}
	p.ifindex, p.mac, p.mode, p.err = attrs.Index, attrs.HardwareAddr, mode, nil
	g.log.Info("port attached", "port", p.name, "role", p.role, "group", g.cfg.Name, "ifindex", attrs.Index, "hook", mode)
}

// addGuest makes gp a guest port of g (not attached yet).
func (g *group) addGuest(gp config.GuestPort) *port {
	p := &port{name: gp.Name, group: g, role: datapath.RoleGuest, slot: limits.NoSlot, vlan: gp.VLAN, trunk: gp.Trunk,
		announcePriority: gp.AnnouncePriority, pattern: gp.Match, maxMACs: gp.MaxMACs, macLock: gp.MACLock}
	g.guests = append(g.guests, p)
	return p
}

// removeGuest detaches the guest port p and forgets it and what was
// learned behind it.
func (g *group) removeGuest(p *port) {
	g.guests = slices.DeleteFunc(g.guests, func(x *port) bool { return x == p })
	if err := g.dp.Detach(p.name, p.ifindex); err != nil {
		g.log.Warn("detach guest port", "group", g.cfg.Name, "port", p.name, "err", err)
	}
}

// addUplink is `uplinkctl add-uplink` for g (the daemon checked the
// name): the uplink gets the lowest free slot, is attached, and its
// carrier (as it is now) is given to the policy, which may make it active
// at once (failback on, preferred).
func (g *group) addUplink(req control.AddUplinkRequest) (*port, error) {
	uc := failover.UplinkConfig{Name: req.Name, Priority: config.DefaultPriority}
	if req.Priority != nil {
		uc.Priority = *req.Priority
	}
	var err error
	if req.State != "" {
		if uc.State, err = failover.ParseAdminState(req.State); err != nil {
			return nil, fmt.Errorf("%w: %v", control.ErrRefused, err)
		}
	}
	now := time.Now()
	slot, dec, err := g.policy.AddUplink(uc, now)
	if err != nil {
		return nil, policyError(err)
	}
	p := &port{name: req.Name, group: g, role: datapath.RoleUplink, slot: slot}
	g.uplinks[slot] = p
	g.attach(p, 0)
	g.log.Info("uplink added", "group", g.cfg.Name, "uplink", req.Name, "slot", slot, "priority", uc.Priority, "state", uc.State)
	g.applyFrom(dec, now, time.Time{}, "operator")
	st, err := g.host.LinkState(req.Name)
	up := err == nil && p.ifindex > 0 && st.Exists && st.AdminUp && st.Carrier
	if err == nil {
		p.changes = st.CarrierChanges
	}
	if dec, err := g.policy.SetCarrier(req.Name, up, now); err == nil {
		g.applyFrom(dec, now, time.Time{}, "operator")
	}
	g.syncProbes()
	return p, nil
}

// removeUplink is `uplinkctl remove-uplink` for g: if it is the active
// uplink the group moves first (to the best usable one, guests announced
// there), then the uplink is detached. It returns the removed port.
func (g *group) removeUplink(name string) (*port, error) {
	p, err := g.port(name, datapath.RoleUplink)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	dec, err := g.policy.RemoveUplink(name, now)
	if err != nil {
		return nil, policyError(err)
	}
	// Announce on the new uplink needs its port, so move before forgetting.
	g.applyFrom(dec, now, time.Time{}, "operator")
	g.uplinks[p.slot] = nil
	if err := g.dp.Detach(name, p.ifindex); err != nil {
		g.log.Warn("detach removed uplink", "group", g.cfg.Name, "uplink", name, "err", err)
	}
	g.log.Info("uplink removed", "group", g.cfg.Name, "uplink", name, "slot", p.slot)
	g.syncProbes()
	return p, nil
}

// onLink takes a state the link watcher reported for g's port p (the
// daemon handles the ports patterns make and take away): the port is
// detached when its interface goes, attached again when it comes back
// (or is re-created), and an uplink's carrier goes to the policy.
func (g *group) onLink(p *port, st linkwatch.State) {
	switch {
	case !st.Exists:
		if p.ifindex != 0 {
			g.log.Warn("port interface removed", "port", p.name, "group", g.cfg.Name)
			// Forget its map entries and what was learned behind it; it
			// is attached again if it comes back.
			if err := g.dp.Detach(p.name, p.ifindex); err != nil {
				g.log.Warn("clean up removed interface", "port", p.name, "err", err)
			}
		}
		p.ifindex, p.err = 0, fmt.Errorf("interface not found")
		g.syncProbes()
	case st.Index != p.ifindex:
		// New, or deleted and re-created with a new index.
		if p.ifindex != 0 {
			if err := g.dp.Detach(p.name, p.ifindex); err != nil {
				g.log.Warn("clean up replaced interface", "port", p.name, "err", err)
			}
		}
		g.attach(p, st.Index)
		g.syncProbes()
	}
	if p.role != datapath.RoleUplink {
		return
	}
	up := p.ifindex > 0 && st.Exists && st.AdminUp && st.Carrier
	bounced := st.Exists && p.changes != 0 && st.CarrierChanges >= p.changes+2 && up
	p.changes = st.CarrierChanges
	dec, err := g.policy.SetCarrier(p.name, up, st.Seen)
	if err != nil {
		g.log.Error("policy", "group", g.cfg.Name, "uplink", p.name, "err", err)
		return
	}
	g.log.Debug("link", "state", st.String())
	g.applyFrom(dec, st.Seen, time.Time{}, st.Source)
	if bounced && !dec.Changed && slices.Contains(g.polledSlots(), p.slot) {
		// Down and up again between two looks: the policy has nothing to
		// do, but the upstream port may have flushed the guests' MACs.
		g.log.Warn("uplink bounced between two carrier checks; announcing its guests again",
			"group", g.cfg.Name, "uplink", p.name, "carrier_changes", st.CarrierChanges)
		if g.balanced() {
			g.ann.slot(g, p.slot, "bounced")
		} else {
			g.announceSwitch(p, &control.FailoverEvent{Group: g.cfg.Name, From: p.name, To: p.name,
				Reason: "carrier bounced", Detected: st.Seen, Switched: time.Now()})
		}
	}
}

// onKernelSwitch takes note of a switch the kernel made by itself: the
// policy records it (and corrects it if its fallback order was stale),
// the guests are announced, and the failed uplink's real carrier is read,
// since the carrier may be back already (a short flap).
func (g *group) onKernelSwitch(ev datapath.KernelSwitch) {
	reason := failover.ReasonCarrierHook // the carrier hook, or the switch read no carrier
	g.log.Info("kernel moved the group off a failing uplink", "group", g.cfg.Name, "path", ev.Path,
		"from", g.policy.UplinkName(ev.From), "to", g.policy.UplinkName(ev.To))
	// ev.To is NoSlot for a balance group's non-designated uplink: the
	// active slot stayed.
	dec := g.policy.DataPlaneLost(ev.From, ev.To, reason, ev.At)
	g.applyFrom(dec, ev.At, ev.At, "kernel/"+ev.Path)
	if ev.From.Valid() && g.uplinks[ev.From] != nil {
		from := g.uplinks[ev.From]
		if st, err := g.host.LinkState(from.name); err == nil {
			up := from.ifindex > 0 && st.Exists && st.AdminUp && st.Carrier
			if dec, err := g.policy.SetCarrier(from.name, up, time.Now()); err == nil {
				g.apply(dec, time.Now())
			}
		}
	}
}

// onFastMove records a move the poll made, like a kernel switch.
func (g *group) onFastMove(m fastMove) {
	g.log.Info("poll moved the group off an uplink that lost carrier", "group", g.cfg.Name,
		"from", g.policy.UplinkName(m.from), "to", g.policy.UplinkName(m.to))
	dec := g.policy.DataPlaneLost(m.from, m.to, failover.ReasonCarrierLost, m.at)
	g.applyFrom(dec, m.at, m.at, "poll")
}

// onHold lets g's expired hold timers take effect.
func (g *group) onHold(now time.Time) {
	g.applyFrom(g.policy.Advance(now), now, time.Time{}, "hold timer")
}

// syncProbes makes g's prober probe exactly its attached uplinks.
func (g *group) syncProbes() {
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
			g.applyFrom(dec, now, time.Time{}, "probe")
		}
	}
}

// onProbe takes a change of an uplink's path probes to the policy. It
// runs on the prober's goroutine.
func (g *group) onProbe(uplink string, st failover.ProbeState) {
	g.post(func() { g.onProbeState(uplink, st) })
}

func (g *group) onProbeState(uplink string, st failover.ProbeState) {
	now := time.Now()
	dec, err := g.policy.SetProbe(uplink, st, now)
	if err != nil {
		g.log.Error("policy", "group", g.cfg.Name, "uplink", uplink, "err", err)
		return
	}
	g.applyFrom(dec, now, time.Time{}, "probe")
}

// setActive is `uplinkctl set-active GROUP UPLINK`.
func (g *group) setActive(uplink string) error {
	now := time.Now()
	dec, err := g.policy.SetManual(uplink, now)
	switch {
	case errors.Is(err, failover.ErrUnknownUplink):
		return fmt.Errorf("group %s has no uplink %q: %w", g.cfg.Name, uplink, control.ErrNotFound)
	case errors.Is(err, failover.ErrNotUsable):
		return fmt.Errorf("%w: %v", control.ErrRefused, err)
	case err != nil:
		return fmt.Errorf("%w: %v", control.ErrRefused, err)
	}
	g.log.Info("manual switch", "group", g.cfg.Name, "uplink", uplink)
	g.applyFrom(dec, now, time.Time{}, "operator")
	return nil
}

// clearManual is `uplinkctl set-active GROUP auto`.
func (g *group) clearManual() error {
	now := time.Now()
	g.applyFrom(g.policy.ClearManual(now), now, time.Time{}, "operator")
	return nil
}

// setUplink is `uplinkctl set-priority` and `uplinkctl set-state`: the
// change applies at once, and moves traffic only if policy says so.
func (g *group) setUplink(uplink string, req control.SetUplinkRequest) error {
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
		g.log.Info("uplink priority changed", "group", g.cfg.Name, "uplink", uplink, "priority", *req.Priority)
		decs = append(decs, dec)
	}
	if req.State != "" {
		dec, err := g.policy.SetState(uplink, state, now)
		if err != nil {
			return policyError(err)
		}
		g.log.Info("uplink admin state changed", "group", g.cfg.Name, "uplink", uplink, "state", state)
		decs = append(decs, dec)
	}
	for _, dec := range decs {
		g.applyFrom(dec, now, time.Time{}, "operator")
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

// apply carries out a policy decision: the active slot first, then the
// announcements.
func (g *group) apply(dec failover.Decision, detected time.Time) {
	g.applyFrom(dec, detected, time.Time{}, "")
}

// applyFrom is apply for a switch that may already have happened
// (switched is when the kernel wrote the slot; zero: the daemon writes it
// now), noticed by source.
func (g *group) applyFrom(dec failover.Decision, detected, switched time.Time, source string) {
	g.updateFallback()
	g.rebalance()
	if g.policyEvent != nil {
		// A balance group polls every carrying uplink: that set changes
		// with no switch; and the hold timer may have a new deadline.
		g.policyEvent()
	}
	if !dec.Changed {
		return
	}
	if err := g.dp.SetActive(g.id, dec.To); err != nil {
		// The policy moved on but the data plane did not: say so loudly;
		// the next event retries with a fresh decision.
		g.log.Error("cannot write the active uplink", "group", g.cfg.Name, "err", err)
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
	g.timeline.add(ev)
	g.met.Switched(g.cfg.Name, ev.Source, detected, switched)
	if g.byReason == nil {
		g.byReason = map[string]int{}
	}
	g.byReason[ev.Reason]++
	g.log.Info("active uplink changed", "group", g.cfg.Name, "from", ev.From, "to", ev.To,
		"reason", ev.Reason, "source", ev.Source, "detect_to_switch", ev.Latency)
	if dec.To == limits.NoSlot {
		g.log.Warn("no usable uplink: guest traffic to the network is dropped until one returns", "group", g.cfg.Name)
		return
	}
	if dec.Reason == failover.ReasonInitial || dec.Reason == failover.ReasonKept || g.balanced() {
		// Nothing moved: the upstream already knows where the guests are
		// (in a balance group the active uplink is only the designated
		// one; rebalance announced the guests whose uplink changed).
		return
	}
	g.announceSwitch(g.uplinks[dec.To], ev)
}

// announceSwitch announces an active-backup group's learned guests out
// of up, its uplink after the switch ev, and records the outcome on ev
// when the run ends. (A balance group's guests are announced each on its
// own uplink: announcer.buckets, announcer.slot.)
func (g *group) announceSwitch(up *port, ev *control.FailoverEvent) {
	g.ann.failover(g, up, ev.Switched, func(req announce.Request, res announce.Result) {
		ev.AnnounceFirst, ev.AnnounceLast = res.First, res.Last
		ev.AnnounceFrames, ev.AnnounceErrors = res.Frames, res.Errors
		g.timeline.touch(ev)
		g.log.Info("guests announced", "group", req.Group, "uplink", req.Ifname, "guests", len(req.Guests),
			"frames", res.Frames, "rounds", res.Rounds, "errors", res.Errors, "canceled", res.Canceled,
			"first_after_switch", res.First.Sub(ev.Switched))
	})
}

// updateFallback tells the in-kernel hooks and the poll's fast path where
// the group may go next.
func (g *group) updateFallback() {
	if err := g.dp.SetFallback(g.id, g.policy.Fallback()); err != nil {
		g.log.Warn("cannot update the in-kernel fallback order", "group", g.cfg.Name, "err", err)
	}
}
