// Package failover is the uplink selection policy of one group: a pure state
// machine fed with events and the current time. It makes no syscalls, starts
// no goroutines and never reads the clock, so every decision can be replayed
// in a table-driven test.
//
// A Group is not safe for concurrent use; the daemon serializes events.
//
// Policy:
//   - An uplink is usable when it is not disabled, its carrier is up as the
//     hold timers see it (up-delay: a recovered carrier counts only after
//     it stayed up that long; down-delay: a lost carrier counts only after
//     it stayed down that long), and its path probes (if any) succeed.
//   - Preference: uplinks in the usable admin state before standby-only
//     ones (used only when no usable-state uplink is left), then by
//     priority, lower first; equal priorities keep configuration order
//     (uplinks added at run time come after).
//   - When the active uplink stops being usable, the most preferred usable
//     uplink takes over; when none is usable the group has limits.NoSlot.
//   - Failback on: an uplink strictly preferred to the active one takes
//     over as soon as it is usable, whatever made it preferred (recovery, a
//     priority changed at run time, an uplink added). Equal priorities
//     never preempt each other, so peers of equal priority do not flap
//     traffic (and re-announce every guest) when one of them comes back.
//   - Failback off: the active uplink stays until it stops being usable,
//     except that a standby-only uplink always yields to a usable-state one.
//   - A manual pin (SetManual) overrides both while the pinned uplink is
//     usable; when it stops being usable the pin is dropped.
package failover

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/uplinkd/uplinkd/pkg/limits"
)

// Slots are limits.Slot: limits.NoSlot is the active slot of a group
// without a usable uplink, and the manual pin of a group without one.
const (
	// MaxPriority is the largest (least preferred) priority.
	MaxPriority = 65535
)

// AdminState is what an operator allows an uplink to do.
type AdminState uint8

const (
	StateUsable   AdminState = iota // may be active
	StateStandby                    // only while no usable-state uplink is usable
	StateDisabled                   // never active
)

var stateNames = [...]string{StateUsable: "usable", StateStandby: "standby", StateDisabled: "disabled"}

func (s AdminState) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("AdminState(%d)", uint8(s))
}

// ParseAdminState reads "usable", "standby" or "disabled".
func ParseAdminState(s string) (AdminState, error) {
	for i, n := range stateNames {
		if n == s {
			return AdminState(i), nil
		}
	}
	return 0, fmt.Errorf("admin state %q: want %s", s, strings.Join(stateNames[:], ", "))
}

// ProbeState is what an uplink's path probes say.
type ProbeState uint8

const (
	ProbeNone   ProbeState = iota // no probes configured: the path counts as good
	ProbeOK                       // replies arrive
	ProbeFailed                   // too many replies missed
)

var probeNames = [...]string{ProbeNone: "none", ProbeOK: "ok", ProbeFailed: "failed"}

func (p ProbeState) String() string {
	if int(p) < len(probeNames) {
		return probeNames[p]
	}
	return fmt.Sprintf("ProbeState(%d)", uint8(p))
}

// UplinkConfig describes one uplink. Its index in Config.Uplinks is its slot.
type UplinkConfig struct {
	Name     string
	Priority int // 0..MaxPriority, lower is preferred
	State    AdminState
}

// Config describes one group.
type Config struct {
	Name     string // group name, used in errors and status
	Uplinks  []UplinkConfig
	Failback bool
	// UpDelay: a recovered carrier counts after it stayed up this long.
	// DownDelay: a lost carrier counts after it stayed down this long.
	UpDelay, DownDelay time.Duration
}

// Reason says why a decision was made.
type Reason uint8

const (
	ReasonNone            Reason = iota // nothing changed
	ReasonInitial                       // first selection when the daemon starts with no known active uplink
	ReasonKept                          // a restarted daemon kept the active uplink it found
	ReasonCarrierLost                   // the active uplink lost carrier
	ReasonCarrierRestored               // an uplink came back while none was active
	ReasonFailback                      // a preferred uplink became usable and took over
	ReasonManual                        // an operator pinned an uplink
	ReasonManualCleared                 // an operator removed the pin
	ReasonAllDown                       // no uplink is usable
	ReasonCarrierHook                   // the data plane moved off an uplink at its carrier loss
	ReasonProbeFailed                   // the active uplink's path probes failed
	ReasonDisabled                      // an operator disabled the active uplink or made it standby-only
	ReasonRemoved                       // an operator removed the active uplink
)

var reasonNames = [...]string{
	ReasonNone:            "no change",
	ReasonInitial:         "initial",
	ReasonKept:            "kept from previous run",
	ReasonCarrierLost:     "carrier lost",
	ReasonCarrierRestored: "carrier restored",
	ReasonFailback:        "failback",
	ReasonManual:          "manual",
	ReasonManualCleared:   "manual cleared",
	ReasonAllDown:         "all uplinks down",
	ReasonCarrierHook:     "carrier lost (in kernel)",
	ReasonProbeFailed:     "path probes failed",
	ReasonDisabled:        "admin state",
	ReasonRemoved:         "uplink removed",
}

func (r Reason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return fmt.Sprintf("Reason(%d)", uint8(r))
}

// Decision is the outcome of one event. When Changed, the caller writes To
// into the data plane's active slot and announces the guests on it.
type Decision struct {
	From, To limits.Slot // limits.NoSlot for none
	Reason   Reason
	Changed  bool // From != To
}

// uplink is the policy's view of one uplink.
type uplink struct {
	name     string
	priority int
	order    int // configuration order; uplinks added later come after
	state    AdminState
	probe    ProbeState

	carrier bool      // as last reported
	since   time.Time // last carrier report that changed it; zero until known
	// linkUp is the carrier as the hold timers let the policy see it; a
	// pending hold (holdUntil non-zero) makes it follow carrier then.
	linkUp    bool
	holdUntil time.Time

	failovers  uint64 // times the group left this uplink because it stopped being usable
	lastReason Reason // why, the last time
}

// usable is the one place that says whether an uplink may carry traffic.
func (u *uplink) usable() bool {
	return u.state != StateDisabled && u.linkUp && u.probe != ProbeFailed
}

// class orders admin states: usable-state uplinks before standby-only ones.
func (u *uplink) class() int {
	if u.state == StateStandby {
		return 1
	}
	return 0
}

// preferred reports whether a is preferred to b.
// lostInDataPlane marks u without carrier from now, as the data plane
// found it, until SetCarrier reports it again.
func (u *uplink) lostInDataPlane(now time.Time) {
	u.carrier, u.since, u.linkUp, u.holdUntil = false, now, false, time.Time{}
}

func preferred(a, b *uplink) bool {
	if a.class() != b.class() {
		return a.class() < b.class()
	}
	if a.priority != b.priority {
		return a.priority < b.priority
	}
	return a.order < b.order
}

// Group is the failover state of one group.
type Group struct {
	name               string
	failback           bool
	upDelay, downDelay time.Duration
	uplinks            [limits.MaxUplinks]*uplink // by slot; nil: free
	bySlot             map[string]limits.Slot
	nextOrder          int

	started bool
	active  limits.Slot
	manual  limits.Slot // pinned slot or limits.NoSlot
	// selected is true once the group has had an active uplink (also from a
	// previous daemon): only after that is a change of the active a failover.
	selected   bool
	failovers  uint64
	lastChange time.Time
	lastReason Reason
}

// New returns a group that has made no decision yet. initialActive is the
// slot the data plane already uses (e.g. from a previous daemon's pinned
// state) or limits.NoSlot. All carriers are unknown (treated as down) until
// Start or SetCarrier reports them.
func New(cfg Config, initialActive limits.Slot) (*Group, error) {
	n := len(cfg.Uplinks)
	if n == 0 || n > limits.MaxUplinks {
		return nil, fmt.Errorf("group %q: need 1 to %d uplinks, got %d", cfg.Name, limits.MaxUplinks, n)
	}
	if initialActive < limits.NoSlot || int(initialActive) >= n {
		return nil, fmt.Errorf("group %q: initial active slot %d out of range (-1..%d)", cfg.Name, initialActive, n-1)
	}
	if cfg.UpDelay < 0 || cfg.DownDelay < 0 {
		return nil, fmt.Errorf("group %q: hold timers must not be negative", cfg.Name)
	}
	g := &Group{
		name:      cfg.Name,
		failback:  cfg.Failback,
		upDelay:   cfg.UpDelay,
		downDelay: cfg.DownDelay,
		bySlot:    make(map[string]limits.Slot, n),
		active:    initialActive,
		manual:    limits.NoSlot,
		selected:  initialActive != limits.NoSlot,
	}
	for slot, u := range cfg.Uplinks {
		if err := g.place(limits.Slot(slot), u); err != nil {
			return nil, err
		}
	}
	return g, nil
}

// place puts a new uplink into a free slot.
func (g *Group) place(slot limits.Slot, u UplinkConfig) error {
	switch {
	case u.Name == "":
		return fmt.Errorf("group %q: uplink in slot %d has no name", g.name, slot)
	case u.Priority < 0 || u.Priority > MaxPriority:
		return fmt.Errorf("group %q: uplink %q: priority %d out of range (0..%d)", g.name, u.Name, u.Priority, MaxPriority)
	case u.State > StateDisabled:
		return fmt.Errorf("group %q: uplink %q: %v", g.name, u.Name, u.State)
	}
	if first, dup := g.bySlot[u.Name]; dup {
		return fmt.Errorf("group %q: uplink %q is in slots %d and %d", g.name, u.Name, first, slot)
	}
	g.bySlot[u.Name] = slot
	g.uplinks[slot] = &uplink{name: u.Name, priority: u.Priority, state: u.State, order: g.nextOrder}
	g.nextOrder++
	return nil
}

// Start seeds the carriers (uplinks not in the map keep what SetCarrier
// reported, or unknown = down) and makes the first decision. Hold timers
// do not apply to what is known at start: a restarted daemon must not
// leave its guests without an uplink for an up-delay.
//
// A restarted daemon keeps the active uplink it found when that uplink is
// usable and is one policy would keep anyway. Then nothing changes (Reason
// ReasonKept) and nothing is re-announced. Otherwise the usual rules apply
// and the change counts as a failover. A first selection with no previous
// active (ReasonInitial) is not a failover. Manual pins do not survive a
// restart.
func (g *Group) Start(carriers map[string]bool, now time.Time) (Decision, error) {
	if g.started {
		return g.unchanged(ReasonNone), fmt.Errorf("group %q: already started", g.name)
	}
	for name := range carriers {
		if _, ok := g.bySlot[name]; !ok {
			return g.unchanged(ReasonNone), g.unknownUplink(name)
		}
	}
	for name, up := range carriers {
		u := g.uplinks[g.bySlot[name]]
		u.carrier, u.since, u.linkUp, u.holdUntil = up, now, up, time.Time{}
	}
	g.started = true
	d := g.decide(now, ReasonInitial)
	if !d.Changed {
		d.Reason = ReasonKept
		if d.To == limits.NoSlot {
			d.Reason = ReasonAllDown
		}
		g.lastChange, g.lastReason = now, d.Reason
	}
	return d, nil
}

// SetCarrier reports an uplink's carrier. Before Start it only records it
// (with no hold: Start takes carriers as they are).
func (g *Group) SetCarrier(name string, up bool, now time.Time) (Decision, error) {
	u, err := g.lookup(name)
	if err != nil {
		return g.unchanged(ReasonNone), err
	}
	first := u.since.IsZero()
	if u.carrier == up && !first {
		return g.unchanged(ReasonNone), nil
	}
	u.carrier, u.since = up, now
	switch {
	case !g.started || first:
		u.linkUp, u.holdUntil = up, time.Time{}
	case up == u.linkUp:
		u.holdUntil = time.Time{} // back before the hold expired: nothing happened
	case up && g.upDelay > 0:
		u.holdUntil = now.Add(g.upDelay)
	case !up && g.downDelay > 0:
		u.holdUntil = now.Add(g.downDelay)
	default:
		u.linkUp, u.holdUntil = up, time.Time{}
	}
	if !g.started {
		return g.unchanged(ReasonNone), nil
	}
	return g.decide(now, ReasonNone), nil
}

// SetProbe reports what an uplink's path probes say.
func (g *Group) SetProbe(name string, p ProbeState, now time.Time) (Decision, error) {
	u, err := g.lookup(name)
	if err != nil {
		return g.unchanged(ReasonNone), err
	}
	if u.probe == p {
		return g.unchanged(ReasonNone), nil
	}
	u.probe = p
	if !g.started {
		return g.unchanged(ReasonNone), nil
	}
	return g.decide(now, ReasonNone), nil
}

// SetPriority changes an uplink's priority at run time.
func (g *Group) SetPriority(name string, priority int, now time.Time) (Decision, error) {
	u, err := g.lookup(name)
	if err != nil {
		return g.unchanged(ReasonNone), err
	}
	if priority < 0 || priority > MaxPriority {
		return g.unchanged(ReasonNone), fmt.Errorf("group %q: uplink %q: priority %d out of range (0..%d)", g.name, name, priority, MaxPriority)
	}
	u.priority = priority
	return g.decideIfStarted(now)
}

// SetTiming changes the group's failback and hold timers at run time (a
// configuration reload). Holds already running keep the deadline they
// were given; a new failback rule applies at once (turned on, a better
// usable uplink takes over now).
func (g *Group) SetTiming(failback bool, upDelay, downDelay time.Duration, now time.Time) (Decision, error) {
	if upDelay < 0 || downDelay < 0 {
		return g.unchanged(ReasonNone), fmt.Errorf("group %q: negative hold timer", g.name)
	}
	g.failback, g.upDelay, g.downDelay = failback, upDelay, downDelay
	return g.decideIfStarted(now)
}

// SetState changes an uplink's admin state at run time. Disabling the
// pinned uplink drops the pin.
func (g *Group) SetState(name string, s AdminState, now time.Time) (Decision, error) {
	u, err := g.lookup(name)
	if err != nil {
		return g.unchanged(ReasonNone), err
	}
	if s > StateDisabled {
		return g.unchanged(ReasonNone), fmt.Errorf("group %q: uplink %q: %v", g.name, name, s)
	}
	u.state = s
	return g.decideIfStarted(now)
}

// AddUplink adds an uplink at run time in the lowest free slot, which it
// returns. Its carrier is unknown (down) until SetCarrier reports it; that
// first report is taken without hold.
func (g *Group) AddUplink(cfg UplinkConfig, now time.Time) (limits.Slot, Decision, error) {
	slot := limits.NoSlot
	for s := range limits.Slot(limits.MaxUplinks) {
		if g.uplinks[s] == nil {
			slot = s
			break
		}
	}
	if slot == limits.NoSlot {
		return limits.NoSlot, g.unchanged(ReasonNone), fmt.Errorf("group %q: all %d uplink slots are in use", g.name, limits.MaxUplinks)
	}
	if err := g.place(slot, cfg); err != nil {
		return limits.NoSlot, g.unchanged(ReasonNone), err
	}
	d, err := g.decideIfStarted(now)
	return slot, d, err
}

// RemoveUplink removes an uplink; its slot becomes free. The last uplink
// of a group cannot be removed.
func (g *Group) RemoveUplink(name string, now time.Time) (Decision, error) {
	slot, ok := g.bySlot[name]
	if !ok {
		return g.unchanged(ReasonNone), g.unknownUplink(name)
	}
	if len(g.bySlot) == 1 {
		return g.unchanged(ReasonNone), fmt.Errorf("group %q: cannot remove %q, its last uplink", g.name, name)
	}
	delete(g.bySlot, name)
	g.uplinks[slot] = nil
	if g.manual == slot {
		g.manual = limits.NoSlot
	}
	if g.active != slot || !g.started {
		if g.active == slot {
			g.active = limits.NoSlot
		}
		return g.decideIfStarted(now)
	}
	// The active uplink is gone: pick the next as after a failure.
	to, _ := g.evaluate()
	g.active = to
	if g.selected {
		g.failovers++
	}
	reason := ReasonRemoved
	if to == limits.NoSlot {
		reason = ReasonAllDown
	}
	g.lastChange, g.lastReason = now, reason
	return Decision{From: slot, To: to, Reason: reason, Changed: true}, nil
}

// Deadline is when the next hold timer expires; the caller calls Advance
// then. ok is false while no hold is pending.
func (g *Group) Deadline() (at time.Time, ok bool) {
	for _, u := range g.uplinks {
		if u != nil && !u.holdUntil.IsZero() && (!ok || u.holdUntil.Before(at)) {
			at, ok = u.holdUntil, true
		}
	}
	return at, ok
}

// Advance lets the hold timers that expired by now take effect.
func (g *Group) Advance(now time.Time) Decision {
	moved := false
	for _, u := range g.uplinks {
		if u != nil && !u.holdUntil.IsZero() && !now.Before(u.holdUntil) {
			u.linkUp, u.holdUntil = u.carrier, time.Time{}
			moved = true
		}
	}
	if !moved || !g.started {
		return g.unchanged(ReasonNone)
	}
	return g.decide(now, ReasonNone)
}

// SetManual pins the named uplink: it becomes active and stays active while
// usable, regardless of priorities and failback. It is refused for an unknown
// uplink or one that is not usable.
func (g *Group) SetManual(name string, now time.Time) (Decision, error) {
	if !g.started {
		return g.unchanged(ReasonNone), fmt.Errorf("group %q: %w", g.name, ErrNotStarted)
	}
	u, err := g.lookup(name)
	if err != nil {
		return g.unchanged(ReasonNone), err
	}
	if !u.usable() {
		return g.unchanged(ReasonNone), fmt.Errorf("group %q: cannot pin uplink %q: %w (%s)", g.name, name, ErrNotUsable, u.why())
	}
	g.manual = g.bySlot[name]
	return g.decide(now, ReasonManual), nil
}

// ClearManual removes a manual pin and returns to automatic selection, which
// switches only if policy would (failback on and a better uplink usable).
func (g *Group) ClearManual(now time.Time) Decision {
	g.manual = limits.NoSlot
	if !g.started {
		return g.unchanged(ReasonManualCleared)
	}
	return g.decide(now, ReasonManualCleared)
}

// DataPlaneSwitched records a switch the data plane made by itself: it
// moved the group from slot from to slot to because from failed (reason
// ReasonCarrierHook). from counts as without
// carrier (no hold: the data plane already acted) until SetCarrier reports
// it again. The decision covers the whole move; its To is the policy's own
// choice, which differs from to only when the data plane's fallback order
// was out of date. A report that does not start from the current active
// uplink is stale (the policy has moved on) and changes nothing.
func (g *Group) DataPlaneSwitched(from, to limits.Slot, reason Reason, now time.Time) Decision {
	valid := func(s limits.Slot) bool { return s.Valid() && g.uplinks[s] != nil }
	if !g.started || from != g.active || !valid(from) || !valid(to) || from == to {
		return g.unchanged(ReasonNone)
	}
	u := g.uplinks[from]
	u.lostInDataPlane(now)
	if g.manual == from {
		g.manual = limits.NoSlot
	}
	u.failovers++
	u.lastReason = reason
	g.active = to
	g.selected = true
	g.failovers++
	g.lastChange, g.lastReason = now, reason
	if d := g.decide(now, ReasonNone); d.Changed {
		return Decision{From: from, To: d.To, Reason: d.Reason, Changed: true}
	}
	return Decision{From: from, To: to, Reason: reason, Changed: true}
}

// Fallback lists the uplinks the data plane may move to by itself when the
// active one fails, best first. With a down-delay there are none: the data
// plane would move at once, and the operator asked to wait.
func (g *Group) Fallback() []limits.Slot {
	if g.downDelay > 0 {
		return nil
	}
	return g.usableBestFirst()
}

// usableBestFirst lists the usable uplinks, best first.
func (g *Group) usableBestFirst() []limits.Slot {
	var out []limits.Slot
	for slot, u := range g.uplinks {
		if u != nil && u.usable() {
			out = append(out, limits.Slot(slot))
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return preferred(g.uplinks[out[i]], g.uplinks[out[j]]) })
	return out
}

// Carriers are the uplinks a balance group spreads its guests over, best
// first: the usable ones of the best admin class (standby-only uplinks
// only when no usable-state one works). Unlike Fallback it ignores the
// down-delay: it says where traffic goes, not where the kernel may move it.
func (g *Group) Carriers() []limits.Slot {
	out := g.usableBestFirst()
	if len(out) > 0 {
		best := g.uplinks[out[0]].class()
		out = slices.DeleteFunc(out, func(s limits.Slot) bool { return g.uplinks[s].class() != best })
	}
	return out
}

// DataPlaneLost records that the data plane found slot dead (a balance
// group's uplink, which need not be the active one): like
// DataPlaneSwitched, slot counts as without carrier until SetCarrier
// reports it again; to is where the data plane moved the active slot, or
// limits.NoSlot when it did not (slot was not active).
func (g *Group) DataPlaneLost(slot, to limits.Slot, reason Reason, now time.Time) Decision {
	if slot == g.active && to != limits.NoSlot {
		return g.DataPlaneSwitched(slot, to, reason, now)
	}
	if !g.started || !slot.Valid() || g.uplinks[slot] == nil {
		return g.unchanged(ReasonNone)
	}
	u := g.uplinks[slot]
	if u.usable() && slot != g.active { // decide counts the active one
		u.failovers++
		u.lastReason = reason
	}
	u.lostInDataPlane(now)
	return g.decide(now, reason)
}

// Active returns the active slot or limits.NoSlot.
func (g *Group) Active() limits.Slot { return g.active }

// Slot returns the slot of the named uplink.
func (g *Group) Slot(name string) (limits.Slot, bool) {
	slot, ok := g.bySlot[name]
	return slot, ok
}

// UplinkName returns the name of the uplink in slot, "" for limits.NoSlot or an
// invalid or free slot.
func (g *Group) UplinkName(slot limits.Slot) string {
	if !slot.Valid() || g.uplinks[slot] == nil {
		return ""
	}
	return g.uplinks[slot].name
}

func (g *Group) lookup(name string) (*uplink, error) {
	slot, ok := g.bySlot[name]
	if !ok {
		return nil, g.unknownUplink(name)
	}
	return g.uplinks[slot], nil
}

func (g *Group) decideIfStarted(now time.Time) (Decision, error) {
	if !g.started {
		return g.unchanged(ReasonNone), nil
	}
	return g.decide(now, ReasonNone), nil
}

// decide applies policy after an event caused by cause. An unchanged
// decision carries cause as its reason; a change carries the reason for the
// change, except that an operator's pin or the start is named as such.
func (g *Group) decide(now time.Time, cause Reason) Decision {
	if g.manual != limits.NoSlot && !g.uplinks[g.manual].usable() {
		g.manual = limits.NoSlot
	}
	from := g.active
	to, reason := g.evaluate()
	if to == from {
		return g.unchanged(cause)
	}
	switch {
	case cause == ReasonManual || cause == ReasonManualCleared:
		reason = cause
	case cause == ReasonInitial && from == limits.NoSlot:
		reason = ReasonInitial
	}
	if from != limits.NoSlot && !g.uplinks[from].usable() {
		g.uplinks[from].failovers++
		g.uplinks[from].lastReason = reason
	}
	if g.selected {
		g.failovers++
	}
	g.active = to
	if to != limits.NoSlot {
		g.selected = true
	}
	g.lastChange, g.lastReason = now, reason
	return Decision{From: from, To: to, Reason: reason, Changed: true}
}

// evaluate picks the uplink that should be active now and why. It only
// reads state.
func (g *Group) evaluate() (limits.Slot, Reason) {
	if g.manual != limits.NoSlot {
		return g.manual, ReasonManual // decide dropped an unusable pin
	}
	best := g.best()
	cur := g.active
	if cur != limits.NoSlot && g.uplinks[cur] != nil && g.uplinks[cur].usable() {
		c := g.uplinks[cur]
		if best == limits.NoSlot || best == cur {
			return cur, ReasonNone
		}
		b := g.uplinks[best]
		switch {
		case b.class() < c.class():
			return best, ReasonFailback // standby-only always yields
		case g.failback && b.class() == c.class() && b.priority < c.priority:
			return best, ReasonFailback
		}
		return cur, ReasonNone
	}
	switch {
	case best == limits.NoSlot:
		return limits.NoSlot, ReasonAllDown
	case cur == limits.NoSlot || g.uplinks[cur] == nil:
		return best, ReasonCarrierRestored
	default:
		return best, g.uplinks[cur].whyNot()
	}
}

// whyNot says why a formerly usable uplink is not usable now.
func (u *uplink) whyNot() Reason {
	switch {
	case u.state == StateDisabled:
		return ReasonDisabled
	case u.probe == ProbeFailed:
		return ReasonProbeFailed
	}
	return ReasonCarrierLost
}

// why is whyNot for people.
func (u *uplink) why() string {
	switch {
	case u.state == StateDisabled:
		return "disabled"
	case u.probe == ProbeFailed:
		return "path probes failed"
	case !u.linkUp && u.carrier:
		return "carrier up, up-delay running"
	}
	return "no carrier"
}

// best returns the most preferred usable uplink, or limits.NoSlot.
func (g *Group) best() limits.Slot {
	best := limits.NoSlot
	for slot, u := range g.uplinks {
		if u != nil && u.usable() && (best == limits.NoSlot || preferred(u, g.uplinks[best])) {
			best = limits.Slot(slot)
		}
	}
	return best
}

func (g *Group) unchanged(reason Reason) Decision {
	return Decision{From: g.active, To: g.active, Reason: reason}
}

func (g *Group) unknownUplink(name string) error {
	var names []string
	for _, u := range g.uplinks {
		if u != nil {
			names = append(names, u.name)
		}
	}
	return fmt.Errorf("group %q: %w %q (uplinks: %s)", g.name, ErrUnknownUplink, name, strings.Join(names, ", "))
}

// Errors wrapped by the Group's methods, for callers (the control API) that
// map them to their own answers.
var (
	ErrUnknownUplink = errors.New("unknown uplink")
	ErrNotUsable     = errors.New("uplink not usable")
	ErrNotStarted    = errors.New("not started")
)
