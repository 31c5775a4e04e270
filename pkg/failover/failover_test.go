package failover

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/pkg/limits"
)

var t0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// at is the time of step i of a scenario.
func at(i int) time.Time { return t0.Add(time.Duration(i) * time.Second) }

// uplinks builds uplink configs from "name:priority" specs.
func uplinks(specs ...string) []UplinkConfig {
	var out []UplinkConfig
	for _, s := range specs {
		var u UplinkConfig
		name, prio, _ := strings.Cut(s, ":")
		u.Name = name
		if _, err := fmt.Sscan(prio, &u.Priority); err != nil {
			panic(fmt.Sprintf("bad spec %q: %v", s, err))
		}
		out = append(out, u)
	}
	return out
}

// step is one event and what must come of it.
type step struct {
	op       string // start, up, down, manual, clear, prio, state, probe, add, remove, advance
	name     string
	carriers map[string]bool // for start
	value    int             // prio: the priority; add: the priority
	state    AdminState      // state, add
	probe    ProbeState      // probe

	active  string // expected active uplink after the step, "" = none
	changed bool
	reason  Reason
	err     string // expected error substring; the state must not change
	pinned  string // expected manual pin after the step, "" = none
}

func start(up ...string) step {
	m := map[string]bool{}
	for _, n := range up {
		m[n] = true
	}
	return step{op: "start", carriers: m}
}
func startWith(m map[string]bool) step { return step{op: "start", carriers: m} }
func up(name string) step              { return step{op: "up", name: name} }
func down(name string) step            { return step{op: "down", name: name} }
func manual(name string) step          { return step{op: "manual", name: name} }
func clear() step                      { return step{op: "clear"} }
func prio(name string, p int) step     { return step{op: "prio", name: name, value: p} }
func state(name string, st AdminState) step {
	return step{op: "state", name: name, state: st}
}
func probe(name string, p ProbeState) step { return step{op: "probe", name: name, probe: p} }
func add(name string, p int, st AdminState) step {
	return step{op: "add", name: name, value: p, state: st}
}
func remove(name string) step { return step{op: "remove", name: name} }

// advance lets the hold timers run to the step's time.
func advance() step { return step{op: "advance"} }

// to expects a switch to active (or to none for "") for reason.
func (s step) to(active string, reason Reason) step {
	s.active, s.changed, s.reason = active, true, reason
	return s
}

// stays expects no switch, active remaining as given, with reason.
func (s step) stays(active string, reason Reason) step {
	s.active, s.changed, s.reason = active, false, reason
	return s
}

func (s step) fails(active, errText string) step {
	s.active, s.err = active, errText
	return s
}

func (s step) pin(name string) step {
	s.pinned = name
	return s
}

type scenario struct {
	name               string
	uplinks            []UplinkConfig
	failback           bool
	upDelay, downDelay time.Duration // steps are 1 s apart
	initial            limits.Slot
	steps              []step
	failovers          uint64
}

func TestScenarios(t *testing.T) {
	scenarios := []scenario{
		{
			name:     "two uplinks, failback on: active fails and comes back, standby flaps",
			uplinks:  uplinks("a:10", "b:20"),
			failback: true, initial: limits.NoSlot,
			steps: []step{
				start("a", "b").to("a", ReasonInitial),
				down("a").to("b", ReasonCarrierLost),
				up("a").to("a", ReasonFailback),
				down("b").stays("a", ReasonNone),
				up("b").stays("a", ReasonNone),
			},
			failovers: 2,
		},
		{
			name:     "two uplinks, failback off: the new active stays",
			uplinks:  uplinks("a:10", "b:20"),
			failback: false, initial: limits.NoSlot,
			steps: []step{
				start("a", "b").to("a", ReasonInitial),
				down("a").to("b", ReasonCarrierLost),
				up("a").stays("b", ReasonNone),
				down("b").to("a", ReasonCarrierLost),
				up("b").stays("a", ReasonNone),
			},
			failovers: 2,
		},
		{
			name: "three uplinks, priorities not in configuration order",
			// slots: 0 = c (30), 1 = a (10), 2 = b (20)
			uplinks:  uplinks("c:30", "a:10", "b:20"),
			failback: true, initial: limits.NoSlot,
			steps: []step{
				start("a", "b", "c").to("a", ReasonInitial),
				down("a").to("b", ReasonCarrierLost),
				down("b").to("c", ReasonCarrierLost),
				up("a").to("a", ReasonFailback), // straight past b, which is still down
				up("b").stays("a", ReasonNone),
				down("c").stays("a", ReasonNone),
				down("a").to("b", ReasonCarrierLost),
				up("c").stays("b", ReasonNone),
			},
			failovers: 4,
		},
		{
			name:     "three uplinks, failback off: worse and better recoveries are ignored",
			uplinks:  uplinks("a:10", "b:20", "c:30"),
			failback: false, initial: limits.NoSlot,
			steps: []step{
				start("a", "b", "c").to("a", ReasonInitial),
				down("a").to("b", ReasonCarrierLost),
				down("b").to("c", ReasonCarrierLost),
				up("a").stays("c", ReasonNone),
				up("b").stays("c", ReasonNone),
				down("c").to("a", ReasonCarrierLost), // the best usable, not the next in line
			},
			failovers: 3,
		},
		{
			name:     "equal priorities: configuration order picks, but peers never preempt",
			uplinks:  uplinks("x:10", "y:10", "z:20"),
			failback: true, initial: limits.NoSlot,
			steps: []step{
				start("z", "y", "x").to("x", ReasonInitial),
				down("x").to("y", ReasonCarrierLost),
				up("x").stays("y", ReasonNone),
				down("y").to("x", ReasonCarrierLost),
				down("x").to("z", ReasonCarrierLost),
				up("y").to("y", ReasonFailback),
				up("x").stays("y", ReasonNone),
			},
			failovers: 4,
		},
		{
			name:     "equal priorities after a worse first slot",
			uplinks:  uplinks("p:20", "q:10", "r:10"),
			failback: true, initial: limits.NoSlot,
			steps: []step{
				start("p", "q", "r").to("q", ReasonInitial),
				down("q").to("r", ReasonCarrierLost),
				up("q").stays("r", ReasonNone),
				down("r").to("q", ReasonCarrierLost),
			},
			failovers: 2,
		},
		{
			name:     "all down, then one back, then the better one back",
			uplinks:  uplinks("a:10", "b:20"),
			failback: true, initial: limits.NoSlot,
			steps: []step{
				start("a", "b").to("a", ReasonInitial),
				down("a").to("b", ReasonCarrierLost),
				down("b").to("", ReasonAllDown),
				down("a").stays("", ReasonNone), // repeated event
				up("b").to("b", ReasonCarrierRestored),
				up("a").to("a", ReasonFailback),
			},
			failovers: 4,
		},
		{
			name:     "all down with failback off, the worse one back first keeps it",
			uplinks:  uplinks("a:10", "b:20"),
			failback: false, initial: limits.NoSlot,
			steps: []step{
				start("a").to("a", ReasonInitial),
				down("a").to("", ReasonAllDown),
				up("b").to("b", ReasonCarrierRestored),
				up("a").stays("b", ReasonNone),
			},
			failovers: 2,
		},
		{
			name:     "start with nothing up: the first selection later is not a failover",
			uplinks:  uplinks("a:10", "b:20"),
			failback: true, initial: limits.NoSlot,
			steps: []step{
				start().stays("", ReasonAllDown),
				up("b").to("b", ReasonCarrierRestored),
				up("a").to("a", ReasonFailback),
			},
			failovers: 1,
		},
		{
			name:     "repeated and redundant carrier reports change nothing",
			uplinks:  uplinks("a:10", "b:20"),
			failback: true, initial: limits.NoSlot,
			steps: []step{
				start("a", "b").to("a", ReasonInitial),
				up("a").stays("a", ReasonNone),
				up("b").stays("a", ReasonNone),
				down("b").stays("a", ReasonNone),
				down("b").stays("a", ReasonNone),
			},
			failovers: 0,
		},
		{
			name:     "manual pin holds against failback until cleared",
			uplinks:  uplinks("a:10", "b:20", "c:30"),
			failback: true, initial: limits.NoSlot,
			steps: []step{
				start("a", "b", "c").to("a", ReasonInitial),
				manual("b").to("b", ReasonManual).pin("b"),
				down("a").stays("b", ReasonNone).pin("b"),
				up("a").stays("b", ReasonNone).pin("b"),
				down("c").stays("b", ReasonNone).pin("b"),
				clear().to("a", ReasonManualCleared),
			},
			failovers: 2,
		},
		{
			name:     "manual pin fails: pin dropped, policy picks, no return to the pinned one",
			uplinks:  uplinks("a:10", "b:20", "c:30"),
			failback: true, initial: limits.NoSlot,
			steps: []step{
				start("a", "b", "c").to("a", ReasonInitial),
				manual("c").to("c", ReasonManual).pin("c"),
				down("c").to("a", ReasonCarrierLost),
				up("c").stays("a", ReasonNone),
				clear().stays("a", ReasonManualCleared),
			},
			failovers: 2,
		},
		{
			name:     "pinned uplink fails while the others are down",
			uplinks:  uplinks("a:10", "b:20"),
			failback: true, initial: limits.NoSlot,
			steps: []step{
				start("a", "b").to("a", ReasonInitial),
				manual("b").to("b", ReasonManual).pin("b"),
				down("a").stays("b", ReasonNone).pin("b"),
				down("b").to("", ReasonAllDown),
				up("b").to("b", ReasonCarrierRestored),
				up("a").to("a", ReasonFailback),
			},
			failovers: 4,
		},
		{
			name:     "manual with failback off: clearing keeps the pinned uplink active",
			uplinks:  uplinks("a:10", "b:20"),
			failback: false, initial: limits.NoSlot,
			steps: []step{
				start("a", "b").to("a", ReasonInitial),
				manual("b").to("b", ReasonManual).pin("b"),
				clear().stays("b", ReasonManualCleared),
				down("b").to("a", ReasonCarrierLost),
			},
			failovers: 2,
		},
		{
			name:     "manual on the active uplink pins without a switch; re-pinning moves the pin",
			uplinks:  uplinks("a:10", "b:20", "c:5"),
			failback: true, initial: limits.NoSlot,
			steps: []step{
				start("a", "b").to("a", ReasonInitial),
				manual("a").stays("a", ReasonManual).pin("a"),
				up("c").stays("a", ReasonNone).pin("a"), // better, but a is pinned
				manual("b").to("b", ReasonManual).pin("b"),
				manual("c").to("c", ReasonManual).pin("c"),
				clear().stays("c", ReasonManualCleared),
			},
			failovers: 2,
		},
		{
			name:     "manual refused: unknown uplink, no carrier; a refused pin keeps the old one",
			uplinks:  uplinks("a:10", "b:20"),
			failback: true, initial: limits.NoSlot,
			steps: []step{
				start("a").to("a", ReasonInitial),
				manual("nope").fails("a", `unknown uplink "nope" (uplinks: a, b)`),
				manual("b").fails("a", `cannot pin uplink "b": uplink not usable (no carrier)`),
				up("b").stays("a", ReasonNone),
				manual("b").to("b", ReasonManual).pin("b"),
				down("a").stays("b", ReasonNone).pin("b"),
				manual("a").fails("b", "no carrier").pin("b"),
			},
			failovers: 1,
		},
		{
			name:     "events before start only record carriers",
			uplinks:  uplinks("a:10", "b:20"),
			failback: true, initial: limits.NoSlot,
			steps: []step{
				up("b").stays("", ReasonNone),
				manual("b").fails("", "not started"),
				clear().stays("", ReasonManualCleared),
				start().to("b", ReasonInitial),
				up("a").to("a", ReasonFailback),
			},
			failovers: 1,
		},
		{
			name:     "unknown names and a second start are errors",
			uplinks:  uplinks("a:10", "b:20"),
			failback: true, initial: limits.NoSlot,
			steps: []step{
				startWith(map[string]bool{"a": true, "eth9": true}).fails("", `unknown uplink "eth9"`),
				start("b").to("b", ReasonInitial),
				up("eth9").fails("b", `group "g": unknown uplink "eth9" (uplinks: a, b)`),
				start("a").fails("b", "already started"),
			},
			failovers: 0,
		},

		// Restart: a previous daemon left initialActive in the data plane.
		{
			name:     "restart keeps a usable active with failback off",
			uplinks:  uplinks("a:10", "b:20"),
			failback: false, initial: 1,
			steps: []step{
				start("a", "b").stays("b", ReasonKept),
				down("b").to("a", ReasonCarrierLost),
			},
			failovers: 1,
		},
		{
			name:     "restart keeps the active that failback would pick anyway",
			uplinks:  uplinks("a:20", "b:10"),
			failback: true, initial: 1,
			steps: []step{
				start("a", "b").stays("b", ReasonKept),
			},
			failovers: 0,
		},
		{
			name:     "restart keeps an active of equal priority to a better slot",
			uplinks:  uplinks("a:10", "b:10"),
			failback: true, initial: 1,
			steps: []step{
				start("a", "b").stays("b", ReasonKept),
			},
			failovers: 0,
		},
		{
			name:     "restart with failback on moves to a better usable uplink",
			uplinks:  uplinks("a:10", "b:20"),
			failback: true, initial: 1,
			steps: []step{
				start("a", "b").to("a", ReasonFailback),
			},
			failovers: 1,
		},
		{
			name:     "restart where the kept active has no carrier",
			uplinks:  uplinks("a:10", "b:20", "c:30"),
			failback: false, initial: 0,
			steps: []step{
				startWith(map[string]bool{"a": false, "b": false, "c": true}).to("c", ReasonCarrierLost),
				up("a").stays("c", ReasonNone),
			},
			failovers: 1,
		},
		{
			name:     "restart where nothing has carrier",
			uplinks:  uplinks("a:10", "b:20"),
			failback: true, initial: 0,
			steps: []step{
				start().to("", ReasonAllDown),
				up("b").to("b", ReasonCarrierRestored),
			},
			failovers: 2,
		},
		{
			name:     "restart seeded by SetCarrier before Start keeps the active",
			uplinks:  uplinks("a:10", "b:20"),
			failback: true, initial: 0,
			steps: []step{
				up("a").stays("a", ReasonNone),
				start().stays("a", ReasonKept),
			},
			failovers: 0,
		},
		{
			name:     "four uplinks: the best remaining takes over, not the next in the list",
			uplinks:  uplinks("a:40", "b:10", "c:30", "d:20"),
			failback: false, initial: limits.NoSlot,
			steps: []step{
				start("a", "b", "c", "d").to("b", ReasonInitial),
				down("b").to("d", ReasonCarrierLost),
				down("d").to("c", ReasonCarrierLost),
				down("c").to("a", ReasonCarrierLost),
			},
			failovers: 3,
		},
		{
			name:     "failback on: a priority changed at run time moves traffic either way",
			uplinks:  uplinks("a:10", "b:20", "c:30"),
			failback: true, initial: limits.NoSlot,
			steps: []step{
				start("a", "b", "c").to("a", ReasonInitial),
				prio("c", 5).to("c", ReasonFailback),
				prio("c", 15).to("a", ReasonFailback), // the active one made worse
				prio("b", 10).stays("a", ReasonNone),  // equal: no preemption
				prio("x", 1).fails("a", "unknown uplink"),
				prio("b", 70000).fails("a", "out of range"),
			},
			failovers: 2,
		},
		{
			name:     "failback off: priorities change, the active stays until it fails",
			uplinks:  uplinks("a:10", "b:20"),
			failback: false, initial: limits.NoSlot,
			steps: []step{
				start("a", "b").to("a", ReasonInitial),
				prio("b", 1).stays("a", ReasonNone),
				down("a").to("b", ReasonCarrierLost),
				up("a").stays("b", ReasonNone),
			},
			failovers: 1,
		},
		{
			name:     "uplinks added and removed at run time",
			uplinks:  uplinks("a:10", "b:20"),
			failback: true, initial: limits.NoSlot,
			steps: []step{
				start("a", "b").to("a", ReasonInitial),
				add("c", 5, StateUsable).stays("a", ReasonNone), // carrier unknown yet
				up("c").to("c", ReasonFailback),
				add("a", 1, StateUsable).fails("c", "slots"),
				remove("c").to("a", ReasonRemoved),
				remove("b").stays("a", ReasonNone),
				remove("a").fails("a", "last uplink"),
				remove("zz").fails("a", "unknown uplink"),
			},
			failovers: 2,
		},
		{
			name:     "up-delay: a recovered uplink is used only after it stayed up",
			uplinks:  uplinks("a:10", "b:20"),
			failback: true, upDelay: 2500 * time.Millisecond, initial: limits.NoSlot,
			steps: []step{
				startWith(map[string]bool{"a": false, "b": true}).to("b", ReasonInitial), // at start no hold
				up("a").stays("b", ReasonNone),                                           // 1: hold until 3.5
				advance().stays("b", ReasonNone),                                         // 2
				down("a").stays("b", ReasonNone),                                         // 3: flapped, hold cancelled
				up("a").stays("b", ReasonNone),                                           // 4: hold until 6.5
				advance().stays("b", ReasonNone),                                         // 5
				advance().stays("b", ReasonNone),                                         // 6
				advance().to("a", ReasonFailback),                                        // 7
				down("a").to("b", ReasonCarrierLost),                                     // losses count at once
			},
			failovers: 2,
		},
		{
			name:     "down-delay: a carrier loss must last before the group moves",
			uplinks:  uplinks("a:10", "b:20"),
			failback: true, downDelay: 1500 * time.Millisecond, initial: limits.NoSlot,
			steps: []step{
				start("a", "b").to("a", ReasonInitial),
				down("a").stays("a", ReasonNone),     // 1: hold until 2.5
				up("a").stays("a", ReasonNone),       // 2: back in time
				advance().stays("a", ReasonNone),     // 3
				down("a").stays("a", ReasonNone),     // 4: hold until 5.5
				advance().stays("a", ReasonNone),     // 5
				advance().to("b", ReasonCarrierLost), // 6
				up("a").to("a", ReasonFailback),      // recoveries count at once
			},
			failovers: 2,
		},
		{
			name: "admin states: standby-only only when no usable uplink is left, disabled never",
			uplinks: []UplinkConfig{{Name: "a", Priority: 10}, {Name: "b", Priority: 20},
				{Name: "s", Priority: 1, State: StateStandby}},
			failback: false, initial: limits.NoSlot,
			steps: []step{
				start("a", "b", "s").to("a", ReasonInitial),
				down("a").to("b", ReasonCarrierLost),
				down("b").to("s", ReasonCarrierLost),
				up("b").to("b", ReasonFailback), // standby-only yields, failback off or not
				state("b", StateDisabled).to("s", ReasonDisabled),
				manual("b").fails("s", "disabled"),
				up("a").to("a", ReasonFailback),
				state("b", StateUsable).stays("a", ReasonNone),
				manual("b").to("b", ReasonManual).pin("b"),
				state("b", StateDisabled).to("a", ReasonDisabled), // the pin goes with it
				state("a", StateStandby).stays("a", ReasonNone),   // s and a are both standby-only now
				state("b", StateUsable).to("b", ReasonFailback),
			},
			failovers: 8,
		},
		{
			name:     "path probes: carrier up but the path is dead",
			uplinks:  uplinks("a:10", "b:20"),
			failback: true, initial: limits.NoSlot,
			steps: []step{
				start("a", "b").to("a", ReasonInitial),
				probe("a", ProbeOK).stays("a", ReasonNone),
				probe("a", ProbeFailed).to("b", ReasonProbeFailed),
				probe("b", ProbeFailed).to("", ReasonAllDown),
				probe("a", ProbeOK).to("a", ReasonCarrierRestored),
			},
			failovers: 3,
		},
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) { runScenario(t, sc) })
	}
}

func runScenario(t *testing.T, sc scenario) {
	t.Helper()
	g, err := New(Config{Name: "g", Uplinks: sc.uplinks, Failback: sc.failback, UpDelay: sc.upDelay, DownDelay: sc.downDelay}, sc.initial)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	slotOf := func(name string) limits.Slot {
		if name == "" {
			return limits.NoSlot
		}
		slot, ok := g.Slot(name)
		if !ok {
			t.Fatalf("scenario names unknown uplink %q", name)
		}
		return slot
	}
	for i, s := range sc.steps {
		now := at(i + 1)
		before := g.Status(now)
		var d Decision
		var err error
		switch s.op {
		case "start":
			d, err = g.Start(s.carriers, now)
		case "up", "down":
			d, err = g.SetCarrier(s.name, s.op == "up", now)
		case "manual":
			d, err = g.SetManual(s.name, now)
		case "clear":
			d = g.ClearManual(now)
		case "prio":
			d, err = g.SetPriority(s.name, s.value, now)
		case "state":
			d, err = g.SetState(s.name, s.state, now)
		case "probe":
			d, err = g.SetProbe(s.name, s.probe, now)
		case "add":
			_, d, err = g.AddUplink(UplinkConfig{Name: s.name, Priority: s.value, State: s.state}, now)
		case "remove":
			d, err = g.RemoveUplink(s.name, now)
		case "advance":
			d = g.Advance(now)
		default:
			t.Fatalf("bad op %q", s.op)
		}
		desc := fmt.Sprintf("step %d (%s %s)", i, s.op, s.name)

		if s.err != "" {
			if err == nil || !strings.Contains(err.Error(), s.err) {
				t.Fatalf("%s: error = %v, want one containing %q", desc, err, s.err)
			}
			if d.Changed || d.From != before.Active || d.To != before.Active {
				t.Errorf("%s: failed call returned %+v, want no change", desc, d)
			}
		} else if err != nil {
			t.Fatalf("%s: unexpected error %v", desc, err)
		}

		wantTo := slotOf(s.active)
		if s.err == "" {
			want := Decision{From: before.Active, To: wantTo, Reason: s.reason, Changed: s.changed}
			if d != want {
				t.Errorf("%s: decision %+v (%v), want %+v (%v)", desc, d, d.Reason, want, want.Reason)
			}
		}
		if got := g.Active(); got != wantTo {
			t.Fatalf("%s: active %q, want %q", desc, g.UplinkName(got), s.active)
		}
		st := g.Status(now)
		if st.Manual != slotOf(s.pinned) {
			t.Errorf("%s: manual pin %q, want %q", desc, g.UplinkName(st.Manual), s.pinned)
		}
		if d.Changed {
			if !st.LastChange.Equal(now) || st.LastReason != d.Reason {
				t.Errorf("%s: last change %v %v, want %v %v", desc, st.LastChange, st.LastReason, now, d.Reason)
			}
		} else if s.op != "start" && (st.LastChange != before.LastChange || st.LastReason != before.LastReason) {
			t.Errorf("%s: last change moved without a change", desc)
		}
		checkInvariants(t, desc, g, sc.failback, now)
	}
	if got := g.Status(at(0)).Failovers; got != sc.failovers {
		t.Errorf("failovers = %d, want %d", got, sc.failovers)
	}
}

// checkInvariants asserts what must hold after every event once started.
func checkInvariants(t *testing.T, desc string, g *Group, failback bool, now time.Time) {
	t.Helper()
	st := g.Status(now)
	if !g.started {
		return
	}
	bySlot := map[limits.Slot]UplinkStatus{}
	anyUsable, bestClass, bestPrio := false, 2, MaxPriority+1
	class := func(u UplinkStatus) int {
		if u.State == StateStandby {
			return 1
		}
		return 0
	}
	for _, u := range st.Uplinks {
		bySlot[u.Slot] = u
		if u.Usable != (u.State != StateDisabled && u.Probe != ProbeFailed && u.LinkUp) {
			t.Errorf("%s: uplink %s usable=%v with %+v", desc, u.Name, u.Usable, u)
		}
		if u.Usable {
			anyUsable = true
			if c := class(u); c < bestClass || c == bestClass && u.Priority < bestPrio {
				bestClass, bestPrio = c, u.Priority
			}
		}
		if u.Active != (u.Slot == st.Active) {
			t.Errorf("%s: uplink %s Active=%v but group active slot is %d", desc, u.Name, u.Active, st.Active)
		}
	}
	active, hasActive := bySlot[st.Active]
	switch {
	case st.Active == limits.NoSlot && anyUsable:
		t.Errorf("%s: no active uplink although one is usable", desc)
	case st.Active != limits.NoSlot && (!hasActive || !active.Usable):
		t.Errorf("%s: active uplink %s is not usable", desc, active.Name)
	case st.Manual != limits.NoSlot && st.Manual != st.Active:
		t.Errorf("%s: pinned %d but active %d", desc, st.Manual, st.Active)
	case st.Manual == limits.NoSlot && hasActive && class(active) > bestClass:
		t.Errorf("%s: standby-only %s active while a usable-state uplink is usable", desc, active.Name)
	case failback && st.Manual == limits.NoSlot && hasActive && active.Priority != bestPrio:
		t.Errorf("%s: failback on but active %s (prio %d) is not among the best (prio %d)",
			desc, active.Name, active.Priority, bestPrio)
	}
}

// TestRandomEvents drives groups with random event sequences (carrier,
// pins, priorities, admin states, probes, hold timers, uplinks added and
// removed) and checks the invariants and an independent count of
// failovers after every event.
func TestRandomEvents(t *testing.T) {
	for seed := range uint64(300) {
		rng := rand.New(rand.NewPCG(seed, 42))
		n := 1 + rng.IntN(limits.MaxUplinks)
		cfg := Config{Name: "r", Failback: rng.IntN(2) == 0}
		if rng.IntN(3) == 0 {
			cfg.UpDelay = time.Duration(rng.IntN(4)) * time.Second
			cfg.DownDelay = time.Duration(rng.IntN(3)) * time.Second
		}
		names := []string{}
		for i := range n {
			// Few distinct priorities so that ties are common.
			cfg.Uplinks = append(cfg.Uplinks, UplinkConfig{Name: fmt.Sprintf("u%d", i), Priority: 10 * rng.IntN(3), State: AdminState(rng.IntN(3))})
			names = append(names, cfg.Uplinks[i].Name)
		}
		initial := limits.Slot(rng.IntN(n+1) - 1)
		g, err := New(cfg, initial)
		if err != nil {
			t.Fatal(err)
		}
		carriers := map[string]bool{}
		for _, u := range cfg.Uplinks {
			carriers[u.Name] = rng.IntN(2) == 0
		}
		d, err := g.Start(carriers, at(0))
		if err != nil {
			t.Fatal(err)
		}
		desc := fmt.Sprintf("seed %d start", seed)
		checkInvariants(t, desc, g, cfg.Failback, at(0))
		if d.From != initial || d.Changed != (d.From != d.To) {
			t.Fatalf("%s: decision %+v from initial %d", desc, d, initial)
		}
		everActive := initial != limits.NoSlot
		var want uint64
		if d.Changed && everActive {
			want++
		}
		everActive = everActive || d.To != limits.NoSlot

		added := n
		for i := range 150 {
			name := names[rng.IntN(len(names))]
			prev := g.Active()
			now := at(i + 1)
			desc = fmt.Sprintf("seed %d step %d", seed, i)
			switch r := rng.IntN(20); {
			case r < 9:
				d, err = g.SetCarrier(name, rng.IntN(2) == 0, now)
			case r < 11:
				d, err = g.SetManual(name, now)
				if err != nil && !errors.Is(err, ErrNotUsable) {
					t.Fatalf("%s: SetManual: %v", desc, err)
				}
				if err == nil && g.Active() != g.bySlot[name] {
					t.Fatalf("%s: SetManual(%s) left %d active", desc, name, g.Active())
				}
				err = nil
			case r < 12:
				d = g.ClearManual(now)
			case r < 13:
				d, err = g.SetPriority(name, 10*rng.IntN(3), now)
			case r < 14:
				d, err = g.SetState(name, AdminState(rng.IntN(3)), now)
			case r < 15:
				d, err = g.SetProbe(name, ProbeState(rng.IntN(3)), now)
			case r < 16:
				var slot limits.Slot
				slot, d, err = g.AddUplink(UplinkConfig{Name: fmt.Sprintf("u%d", added), Priority: 10 * rng.IntN(3)}, now)
				if err != nil && len(names) == limits.MaxUplinks {
					err = nil // full: refused, nothing changed
				} else if err == nil {
					if g.UplinkName(slot) != fmt.Sprintf("u%d", added) {
						t.Fatalf("%s: added uplink not in slot %d", desc, slot)
					}
					names = append(names, fmt.Sprintf("u%d", added))
					added++
				}
			case r < 17:
				d, err = g.RemoveUplink(name, now)
				if err != nil && len(names) == 1 {
					err = nil // the last one stays
				} else if err == nil {
					names = slices.DeleteFunc(names, func(s string) bool { return s == name })
				}
			default:
				d = g.Advance(now)
			}
			if err != nil {
				t.Fatalf("%s: %v", desc, err)
			}
			if d.From != prev || d.To != g.Active() || d.Changed != (d.From != d.To) {
				t.Fatalf("%s: decision %+v, active before %d after %d", desc, d, prev, g.Active())
			}
			if d.Changed && everActive {
				want++
			}
			everActive = everActive || d.To != limits.NoSlot
			checkInvariants(t, desc, g, cfg.Failback, now)
		}
		if got := g.Status(at(0)).Failovers; got != want {
			t.Errorf("seed %d: failovers %d, want %d", seed, got, want)
		}
	}
}

func TestStatus(t *testing.T) {
	g, err := New(Config{Name: "tenant-a", Failback: true, Uplinks: uplinks("eth1:10", "eth2:20", "eth3:30")}, limits.NoSlot)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Start(map[string]bool{"eth1": true, "eth2": true}, at(1)); err != nil {
		t.Fatal(err)
	}
	if _, err := g.SetCarrier("eth1", false, at(2)); err != nil {
		t.Fatal(err)
	}
	if _, err := g.SetCarrier("eth2", true, at(3)); err != nil { // no change: since stays
		t.Fatal(err)
	}
	if _, err := g.SetManual("eth2", at(4)); err != nil {
		t.Fatal(err)
	}

	want := Status{
		Name: "tenant-a", Failback: true,
		Active: 1, Manual: 1, Failovers: 1,
		LastChange: at(2), LastReason: ReasonCarrierLost, // pinning the active is no change
		Uplinks: []UplinkStatus{
			{Name: "eth1", Slot: 0, Priority: 10, Carrier: false, Active: false, Since: at(2), Failovers: 1, LastReason: ReasonCarrierLost},
			{Name: "eth2", Slot: 1, Priority: 20, Carrier: true, LinkUp: true, Usable: true, Active: true, Since: at(1)},
			{Name: "eth3", Slot: 2, Priority: 30, Carrier: false, Active: false}, // never reported
		},
	}
	got := g.Status(at(0))
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Status =\n%+v\nwant\n%+v", got, want)
	}

	// The snapshot is a copy.
	got.Uplinks[0].Name = "changed"
	if g.Status(at(0)).Uplinks[0].Name != "eth1" {
		t.Error("modifying a Status changed the group")
	}

	// A kept active reports the start as its last change.
	k, err := New(Config{Name: "k", Uplinks: uplinks("a:1", "b:2")}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.Start(map[string]bool{"b": true}, at(5)); err != nil {
		t.Fatal(err)
	}
	if st := k.Status(at(0)); st.Active != 1 || !st.LastChange.Equal(at(5)) || st.LastReason != ReasonKept || st.Failovers != 0 {
		t.Errorf("kept status = %+v", st)
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		initial limits.Slot
		err     string
	}{
		{"ok", Config{Name: "g", Uplinks: uplinks("a:0", "b:65535")}, 1, ""},
		{"eight uplinks", Config{Name: "g", Uplinks: uplinks("a:1", "b:1", "c:1", "d:1", "e:1", "f:1", "g:1", "h:1")}, 7, ""},
		{"no uplinks", Config{Name: "g"}, limits.NoSlot, "need 1 to 8 uplinks, got 0"},
		{"nine uplinks", Config{Name: "g", Uplinks: uplinks("a:1", "b:1", "c:1", "d:1", "e:1", "f:1", "g:1", "h:1", "i:1")}, limits.NoSlot, "got 9"},
		{"duplicate name", Config{Name: "g", Uplinks: uplinks("a:1", "a:2")}, limits.NoSlot, `uplink "a" is in slots 0 and 1`},
		{"empty name", Config{Name: "g", Uplinks: []UplinkConfig{{Name: "", Priority: 1}}}, limits.NoSlot, "slot 0 has no name"},
		{"negative priority", Config{Name: "g", Uplinks: uplinks("a:-1")}, limits.NoSlot, "priority -1 out of range"},
		{"priority too big", Config{Name: "g", Uplinks: uplinks("a:65536")}, limits.NoSlot, "priority 65536 out of range"},
		{"initial too big", Config{Name: "g", Uplinks: uplinks("a:1", "b:2")}, 2, "initial active slot 2 out of range (-1..1)"},
		{"initial too small", Config{Name: "g", Uplinks: uplinks("a:1")}, -2, "initial active slot -2 out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := New(tt.cfg, tt.initial)
			if tt.err == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				if g.Active() != tt.initial || g.Status(at(0)).Failovers != 0 {
					t.Errorf("new group: active %d, status %+v", g.Active(), g.Status(at(0)))
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) || !strings.Contains(err.Error(), `group "g"`) {
				t.Errorf("New error = %v, want one naming the group and containing %q", err, tt.err)
			}
		})
	}
}

func TestErrorsAreMatchable(t *testing.T) {
	g, err := New(Config{Name: "g", Uplinks: uplinks("a:1", "b:2")}, limits.NoSlot)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.SetManual("a", at(0)); !errors.Is(err, ErrNotStarted) {
		t.Errorf("SetManual before Start: %v, want ErrNotStarted", err)
	}
	if _, err := g.Start(map[string]bool{"a": true}, at(1)); err != nil {
		t.Fatal(err)
	}
	if _, err := g.SetManual("x", at(2)); !errors.Is(err, ErrUnknownUplink) {
		t.Errorf("SetManual(unknown): %v, want ErrUnknownUplink", err)
	}
	if _, err := g.SetCarrier("x", true, at(2)); !errors.Is(err, ErrUnknownUplink) {
		t.Errorf("SetCarrier(unknown): %v, want ErrUnknownUplink", err)
	}
	if _, err := g.SetManual("b", at(2)); !errors.Is(err, ErrNotUsable) {
		t.Errorf("SetManual(down): %v, want ErrNotUsable", err)
	}
}

func TestReasonString(t *testing.T) {
	seen := map[string]Reason{}
	for r := ReasonNone; r <= ReasonAllDown; r++ {
		s := r.String()
		if s == "" || strings.HasPrefix(s, "Reason(") {
			t.Errorf("reason %d has no name", r)
		}
		if other, dup := seen[s]; dup {
			t.Errorf("reasons %d and %d are both %q", other, r, s)
		}
		seen[s] = r
	}
	for r, want := range map[Reason]string{
		ReasonCarrierLost: "carrier lost",
		ReasonAllDown:     "all uplinks down",
		ReasonManual:      "manual",
		Reason(200):       "Reason(200)",
	} {
		if got := r.String(); got != want {
			t.Errorf("Reason(%d).String() = %q, want %q", r, got, want)
		}
	}
}

func TestUplinkName(t *testing.T) {
	g, err := New(Config{Name: "g", Uplinks: uplinks("a:1", "b:2")}, limits.NoSlot)
	if err != nil {
		t.Fatal(err)
	}
	for slot, want := range map[limits.Slot]string{0: "a", 1: "b", limits.NoSlot: "", 2: ""} {
		if got := g.UplinkName(slot); got != want {
			t.Errorf("UplinkName(%d) = %q, want %q", slot, got, want)
		}
	}
}

func TestDataPlaneSwitched(t *testing.T) {
	t0 := time.Unix(100, 0)
	newGroup := func(failback bool) *Group {
		g, err := New(Config{Name: "g", Failback: failback, Uplinks: []UplinkConfig{
			{Name: "a", Priority: 10}, {Name: "b", Priority: 30}, {Name: "c", Priority: 20}}}, limits.NoSlot)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := g.Start(map[string]bool{"a": true, "b": true, "c": true}, t0); err != nil {
			t.Fatal(err)
		}
		return g
	}

	g := newGroup(true)
	if got := g.Fallback(); !slices.Equal(got, []limits.Slot{0, 2, 1}) {
		t.Errorf("fallback = %v, want best first [0 2 1]", got)
	}
	// The kernel moved a -> c (its fallback order): the policy agrees.
	d := g.DataPlaneSwitched(0, 2, ReasonCarrierHook, t0.Add(time.Second))
	if !d.Changed || d.From != 0 || d.To != 2 || d.Reason != ReasonCarrierHook || g.Active() != 2 {
		t.Errorf("kernel switch a->c: %+v, active %d", d, g.Active())
	}
	if st := g.Status(at(0)); st.Failovers != 1 || st.Uplinks[0].Carrier {
		t.Errorf("after the kernel switch: failovers %d, a carrier %v", st.Failovers, st.Uplinks[0].Carrier)
	}
	// The netlink event that follows confirms it: nothing more to do.
	if d, _ := g.SetCarrier("a", false, t0.Add(2*time.Second)); d.Changed {
		t.Errorf("confirmation switched again: %+v", d)
	}
	// A stale report (not from the active uplink) changes nothing.
	if d := g.DataPlaneSwitched(0, 1, ReasonCarrierHook, t0.Add(3*time.Second)); d.Changed {
		t.Errorf("stale report acted on: %+v", d)
	}
	// The carrier comes back (a short flap): with failback the better
	// uplink is taken back.
	if d, _ := g.SetCarrier("a", true, t0.Add(4*time.Second)); !d.Changed || d.To != 0 || d.Reason != ReasonFailback {
		t.Errorf("a back: %+v", d)
	}

	// A stale fallback order: the kernel picked b, the policy prefers c.
	g = newGroup(false)
	d = g.DataPlaneSwitched(0, 1, ReasonCarrierHook, t0.Add(time.Second))
	if !d.Changed || d.From != 0 || d.To != 1 {
		t.Errorf("without failback the kernel's choice stands: %+v", d)
	}
	g = newGroup(true)
	d = g.DataPlaneSwitched(0, 1, ReasonCarrierHook, t0.Add(time.Second))
	if !d.Changed || d.From != 0 || d.To != 2 {
		t.Errorf("with failback the policy corrects a stale order to c: %+v", d)
	}
}

// TestHoldDeadlineAndStatus: a running hold shows in Deadline and in the
// status (time left), and a down-delay keeps the data plane from moving
// by itself (no fallback order).
func TestHoldDeadlineAndStatus(t *testing.T) {
	g, err := New(Config{Name: "g", Uplinks: uplinks("a:10", "b:20"), Failback: true,
		UpDelay: 3 * time.Second, DownDelay: 2 * time.Second}, limits.NoSlot)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Start(map[string]bool{"a": true, "b": false}, at(0)); err != nil {
		t.Fatal(err)
	}
	if _, ok := g.Deadline(); ok {
		t.Error("a deadline with no hold running")
	}
	if fb := g.Fallback(); fb != nil {
		t.Errorf("fallback %v with a down-delay: the data plane would not wait", fb)
	}
	if _, err := g.SetCarrier("b", true, at(1)); err != nil {
		t.Fatal(err)
	}
	if _, err := g.SetCarrier("a", false, at(2)); err != nil {
		t.Fatal(err)
	}
	if dl, ok := g.Deadline(); !ok || !dl.Equal(at(4)) {
		t.Errorf("deadline %v %v, want a's down-delay ending at %v (b's up-delay ends at %v)", dl, ok, at(4), at(4))
	}
	st := g.Status(at(3))
	if st.UpDelay != 3*time.Second || st.DownDelay != 2*time.Second {
		t.Errorf("status delays %v %v", st.UpDelay, st.DownDelay)
	}
	for _, u := range st.Uplinks {
		if u.Hold != time.Second {
			t.Errorf("%s: hold left %v at %v, want 1s", u.Name, u.Hold, at(3))
		}
	}
	if d := g.Advance(at(4)); !d.Changed || g.UplinkName(d.To) != "b" || d.Reason != ReasonCarrierLost {
		t.Errorf("after both holds: %+v", d)
	}
	if _, ok := g.Deadline(); ok {
		t.Error("a deadline left after every hold expired")
	}
}

func TestParseAdminState(t *testing.T) {
	for _, s := range []AdminState{StateUsable, StateStandby, StateDisabled} {
		if got, err := ParseAdminState(s.String()); err != nil || got != s {
			t.Errorf("%v: %v, %v", s, got, err)
		}
	}
	if _, err := ParseAdminState("down"); err == nil || !strings.Contains(err.Error(), "usable, standby, disabled") {
		t.Errorf("bad state: %v", err)
	}
}

// SetTiming (a reload): failback turned on preempts at once; hold timers
// apply to the next carrier change; Carriers and DataPlaneLost for balance
// groups.
func TestSetTimingCarriersAndDataPlaneLost(t *testing.T) {
	t0 := time.Unix(100, 0)
	g, err := New(Config{Name: "g", Failback: false, Uplinks: []UplinkConfig{
		{Name: "a", Priority: 10}, {Name: "b", Priority: 20}, {Name: "s", Priority: 5, State: StateStandby}}}, limits.NoSlot)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Start(map[string]bool{"a": false, "b": true, "s": true}, t0); err != nil {
		t.Fatal(err)
	}
	if d, _ := g.SetCarrier("a", true, t0.Add(time.Second)); d.Changed {
		t.Fatalf("without failback a took over: %+v", d)
	}
	if got := g.Carriers(); !slices.Equal(got, []limits.Slot{0, 1}) {
		t.Errorf("carriers %v, want the usable-state ones best first [0 1] (not the standby)", got)
	}
	d, err := g.SetTiming(true, time.Second, 0, t0.Add(2*time.Second))
	if err != nil || !d.Changed || d.To != 0 {
		t.Errorf("failback turned on: %+v, %v; want a to take over", d, err)
	}
	if _, err := g.SetTiming(true, -1, 0, t0); err == nil {
		t.Error("a negative hold accepted")
	}
	// With up_delay 1s now, b's recovery waits.
	g.SetCarrier("b", false, t0.Add(3*time.Second))
	g.SetCarrier("b", true, t0.Add(4*time.Second))
	if got := g.Carriers(); !slices.Equal(got, []limits.Slot{0}) {
		t.Errorf("carriers during b's up-delay %v, want [0]", got)
	}
	// A balance group's non-active uplink found dead by the data plane.
	g.Advance(t0.Add(6 * time.Second))
	if got := g.Carriers(); !slices.Equal(got, []limits.Slot{0, 1}) {
		t.Fatalf("carriers after b's up-delay %v, want [0 1]", got)
	}
	if d := g.DataPlaneLost(1, limits.NoSlot, ReasonCarrierLost, t0.Add(7*time.Second)); d.Changed || g.Active() != 0 {
		t.Errorf("a non-active uplink lost: %+v, active %d", d, g.Active())
	}
	if got := g.Carriers(); !slices.Equal(got, []limits.Slot{0}) {
		t.Errorf("carriers after b was lost %v, want [0]", got)
	}
	// All usable-state uplinks gone: the standby one carries.
	if d := g.DataPlaneLost(0, 2, ReasonCarrierLost, t0.Add(8*time.Second)); !d.Changed || g.Active() != 2 {
		t.Errorf("the active uplink lost: %+v, active %d", d, g.Active())
	}
	if got := g.Carriers(); !slices.Equal(got, []limits.Slot{2}) {
		t.Errorf("carriers %v, want the standby [2]", got)
	}
	// The active uplink lost with nowhere for the data plane to go: one
	// failover for it, not two.
	if d := g.DataPlaneLost(2, limits.NoSlot, ReasonCarrierLost, t0.Add(9*time.Second)); !d.Changed || g.Active() != limits.NoSlot {
		t.Errorf("the last uplink lost: %+v, active %d", d, g.Active())
	}
	if st := g.Status(t0.Add(9 * time.Second)); st.Uplinks[2].Failovers != 1 {
		t.Errorf("the last uplink counts %d failovers, want 1", st.Uplinks[2].Failovers)
	}
}
