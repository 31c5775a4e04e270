// Package failover is the uplink selection policy of one group: a pure state
// machine fed with events and the current time. It makes no syscalls, starts
// no goroutines and never reads the clock, so every decision can be replayed
// in a table-driven test.
//
// A Group is not safe for concurrent use; the daemon serializes events.
//
// Policy:
//   - An uplink is usable when it has carrier. (Probes, admin state and
//     up/down hold timers will extend usable; everything else keeps working
//     through the one evaluate function.)
//   - Preference is by priority, lower first; equal priorities keep
//     configuration order.
//   - When the active uplink stops being usable, the most preferred usable
//     uplink takes over; when none is usable the group has NoActive.
//   - Failback on: an uplink with a strictly better (lower) priority than the
//     active one takes over as soon as it is usable. Equal priorities never
//     preempt each other, so peers of equal priority do not flap traffic (and
//     re-announce every guest) when one of them comes back.
//   - Failback off: the active uplink stays until it stops being usable.
//   - A manual pin (SetManual) overrides both while the pinned uplink is
//     usable; when it stops being usable the pin is dropped.
package failover

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

const (
	// NoSlot stands for "no uplink", e.g. no manual pin.
	NoSlot = -1
	// NoActive is the active slot of a group without a usable uplink.
	NoActive = NoSlot
	// MaxUplinks is the number of uplink slots per group in the data plane.
	MaxUplinks = 8
	// MaxPriority is the largest (least preferred) priority.
	MaxPriority = 65535
)

// UplinkConfig describes one uplink. Its index in Config.Uplinks is its slot.
type UplinkConfig struct {
	Name     string
	Priority int // 0..MaxPriority, lower is preferred
}

// Config describes one group.
type Config struct {
	Name     string // group name, used in errors and status
	Uplinks  []UplinkConfig
	Failback bool
}

// Reason says why a decision was made.
type Reason uint8

const (
	ReasonNone            Reason = iota // nothing changed
	ReasonInitial                       // first selection when the daemon starts with no known active uplink
	ReasonKept                          // a restarted daemon kept the active uplink it found
	ReasonCarrierLost                   // the active uplink lost carrier
	ReasonCarrierRestored               // an uplink came back while none was active
	ReasonFailback                      // a better uplink came back and took over
	ReasonManual                        // an operator pinned an uplink
	ReasonManualCleared                 // an operator removed the pin
	ReasonAllDown                       // no uplink is usable
	ReasonTransmitError                 // the data plane moved off an uplink whose transmit failed
	ReasonCarrierHook                   // the data plane moved off an uplink at its carrier loss
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
	ReasonTransmitError:   "transmit error (in kernel)",
	ReasonCarrierHook:     "carrier lost (in kernel)",
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
	From, To int // slots, NoActive for none
	Reason   Reason
	Changed  bool // From != To
}

// uplink is the policy's view of one uplink.
type uplink struct {
	name     string
	priority int
	carrier  bool
	since    time.Time // last carrier change; zero until the carrier is known
}

// usable is the one place that says whether an uplink may carry traffic.
func (u *uplink) usable() bool { return u.carrier }

// Group is the failover state of one group.
type Group struct {
	name     string
	failback bool
	uplinks  []uplink
	bySlot   map[string]int

	started bool
	active  int
	manual  int // pinned slot or NoSlot
	// selected is true once the group has had an active uplink (also from a
	// previous daemon): only after that is a change of the active a failover.
	selected   bool
	failovers  uint64
	lastChange time.Time
	lastReason Reason
}

// New returns a group that has made no decision yet. initialActive is the
// slot the data plane already uses (e.g. from a previous daemon's pinned
// state) or NoActive. All carriers are unknown (treated as down) until
// Start or SetCarrier reports them.
func New(cfg Config, initialActive int) (*Group, error) {
	n := len(cfg.Uplinks)
	if n == 0 || n > MaxUplinks {
		return nil, fmt.Errorf("group %q: need 1 to %d uplinks, got %d", cfg.Name, MaxUplinks, n)
	}
	if initialActive < NoActive || initialActive >= n {
		return nil, fmt.Errorf("group %q: initial active slot %d out of range (-1..%d)", cfg.Name, initialActive, n-1)
	}
	g := &Group{
		name:     cfg.Name,
		failback: cfg.Failback,
		bySlot:   make(map[string]int, n),
		active:   initialActive,
		manual:   NoSlot,
		selected: initialActive != NoActive,
	}
	for slot, u := range cfg.Uplinks {
		switch {
		case u.Name == "":
			return nil, fmt.Errorf("group %q: uplink in slot %d has no name", cfg.Name, slot)
		case u.Priority < 0 || u.Priority > MaxPriority:
			return nil, fmt.Errorf("group %q: uplink %q: priority %d out of range (0..%d)", cfg.Name, u.Name, u.Priority, MaxPriority)
		}
		if first, dup := g.bySlot[u.Name]; dup {
			return nil, fmt.Errorf("group %q: uplink %q is in slots %d and %d", cfg.Name, u.Name, first, slot)
		}
		g.bySlot[u.Name] = slot
		g.uplinks = append(g.uplinks, uplink{name: u.Name, priority: u.Priority})
	}
	return g, nil
}

// Start seeds the carriers (uplinks not in the map keep what SetCarrier
// reported, or unknown = down) and makes the first decision.
//
// A restarted daemon keeps the active uplink it found when that uplink is
// usable and is one policy would keep anyway: failback is off, or no usable
// uplink has a strictly better priority. Then nothing changes (Reason
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
		g.setCarrier(g.bySlot[name], up, now)
	}
	g.started = true
	d := g.decide(now, ReasonInitial)
	if !d.Changed {
		d.Reason = ReasonKept
		if d.To == NoActive {
			d.Reason = ReasonAllDown
		}
		g.lastChange, g.lastReason = now, d.Reason
	}
	return d, nil
}

// SetCarrier reports an uplink's carrier. Before Start it only records it.
func (g *Group) SetCarrier(name string, up bool, now time.Time) (Decision, error) {
	slot, ok := g.bySlot[name]
	if !ok {
		return g.unchanged(ReasonNone), g.unknownUplink(name)
	}
	if !g.setCarrier(slot, up, now) || !g.started {
		return g.unchanged(ReasonNone), nil
	}
	return g.decide(now, ReasonNone), nil
}

// SetManual pins the named uplink: it becomes active and stays active while
// usable, regardless of priorities and failback. It is refused for an unknown
// uplink or one that is not usable.
func (g *Group) SetManual(name string, now time.Time) (Decision, error) {
	if !g.started {
		return g.unchanged(ReasonNone), fmt.Errorf("group %q: %w", g.name, ErrNotStarted)
	}
	slot, ok := g.bySlot[name]
	if !ok {
		return g.unchanged(ReasonNone), g.unknownUplink(name)
	}
	if !g.uplinks[slot].usable() {
		return g.unchanged(ReasonNone), fmt.Errorf("group %q: cannot pin uplink %q: %w (no carrier)", g.name, name, ErrNotUsable)
	}
	g.manual = slot
	return g.decide(now, ReasonManual), nil
}

// ClearManual removes a manual pin and returns to automatic selection, which
// switches only if policy would (failback on and a better uplink usable).
func (g *Group) ClearManual(now time.Time) Decision {
	g.manual = NoSlot
	if !g.started {
		return g.unchanged(ReasonManualCleared)
	}
	return g.decide(now, ReasonManualCleared)
}

// DataPlaneSwitched records a switch the data plane made by itself: it
// moved the group from slot from to slot to because from failed (reason
// ReasonTransmitError or ReasonCarrierHook). from counts as without
// carrier until SetCarrier reports it again. The decision covers the whole
// move; its To is the policy's own choice, which differs from to only when
// the data plane's fallback order was out of date. A report that does not
// start from the current active uplink is stale (the policy has moved on)
// and changes nothing.
func (g *Group) DataPlaneSwitched(from, to int, reason Reason, now time.Time) Decision {
	valid := func(s int) bool { return s >= 0 && s < len(g.uplinks) }
	if !g.started || from != g.active || !valid(from) || !valid(to) || from == to {
		return g.unchanged(ReasonNone)
	}
	u := &g.uplinks[from]
	u.carrier, u.since = false, now
	if g.manual == from {
		g.manual = NoSlot
	}
	g.active = to
	g.selected = true
	g.failovers++
	g.lastChange, g.lastReason = now, reason
	if d := g.decide(now, ReasonNone); d.Changed {
		return Decision{From: from, To: d.To, Reason: d.Reason, Changed: true}
	}
	return Decision{From: from, To: to, Reason: reason, Changed: true}
}

// Fallback lists the usable uplinks best first: where the data plane may
// move by itself if the active one fails.
func (g *Group) Fallback() []int {
	var out []int
	for slot := range g.uplinks {
		if g.uplinks[slot].usable() {
			out = append(out, slot)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return g.uplinks[out[i]].priority < g.uplinks[out[j]].priority })
	return out
}

// Active returns the active slot or NoActive.
func (g *Group) Active() int { return g.active }

// Slot returns the slot of the named uplink.
func (g *Group) Slot(name string) (int, bool) {
	slot, ok := g.bySlot[name]
	return slot, ok
}

// UplinkName returns the name of the uplink in slot, "" for NoActive or an
// invalid slot.
func (g *Group) UplinkName(slot int) string {
	if slot < 0 || slot >= len(g.uplinks) {
		return ""
	}
	return g.uplinks[slot].name
}

// setCarrier records a carrier state and reports whether it changed.
func (g *Group) setCarrier(slot int, up bool, now time.Time) bool {
	u := &g.uplinks[slot]
	if u.carrier == up && !u.since.IsZero() {
		return false
	}
	u.since = now
	if u.carrier == up {
		return false // first report, confirming the assumed "down"
	}
	u.carrier = up
	return true
}

// decide applies policy after an event caused by cause. An unchanged
// decision carries cause as its reason; a change carries the reason for the
// change, except that an operator's action or the start is named as such.
func (g *Group) decide(now time.Time, cause Reason) Decision {
	if g.manual != NoSlot && !g.uplinks[g.manual].usable() {
		g.manual = NoSlot
	}
	from := g.active
	to, reason := g.evaluate()
	if to == from {
		return g.unchanged(cause)
	}
	switch {
	case cause == ReasonManual || cause == ReasonManualCleared:
		reason = cause
	case cause == ReasonInitial && from == NoActive:
		reason = ReasonInitial
	}
	if g.selected {
		g.failovers++
	}
	g.active = to
	if to != NoActive {
		g.selected = true
	}
	g.lastChange, g.lastReason = now, reason
	return Decision{From: from, To: to, Reason: reason, Changed: true}
}

// evaluate picks the uplink that should be active now and why. It only
// reads state.
func (g *Group) evaluate() (int, Reason) {
	if g.manual != NoSlot {
		return g.manual, ReasonManual // decide dropped an unusable pin
	}
	best := g.best()
	cur := g.active
	if cur != NoActive && g.uplinks[cur].usable() {
		if g.failback && best != NoSlot && g.uplinks[best].priority < g.uplinks[cur].priority {
			return best, ReasonFailback
		}
		return cur, ReasonNone
	}
	switch {
	case best == NoSlot:
		return NoActive, ReasonAllDown
	case cur == NoActive:
		return best, ReasonCarrierRestored
	default:
		return best, ReasonCarrierLost
	}
}

// best returns the most preferred usable uplink: lowest priority, then
// lowest slot.
func (g *Group) best() int {
	best := NoSlot
	for slot := range g.uplinks {
		u := &g.uplinks[slot]
		if u.usable() && (best == NoSlot || u.priority < g.uplinks[best].priority) {
			best = slot
		}
	}
	return best
}

func (g *Group) unchanged(reason Reason) Decision {
	return Decision{From: g.active, To: g.active, Reason: reason}
}

func (g *Group) unknownUplink(name string) error {
	names := make([]string, len(g.uplinks))
	for i, u := range g.uplinks {
		names[i] = u.name
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
