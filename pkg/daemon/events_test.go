package daemon

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/pkg/control"
	"github.com/uplinkd/uplinkd/pkg/datapath"
	"github.com/uplinkd/uplinkd/pkg/limits"
	"github.com/uplinkd/uplinkd/pkg/linkwatch"
)

// groupYAML is one active-backup group: up1 preferred over up2, a guest
// port vm1, and no announcements (the tests look at the data plane).
func groupYAML(timing string) string {
	return `groups:
  - name: g
    ` + timing + `
    announce: {count: 0}
    uplinks: [{name: up1, priority: 10}, {name: up2, priority: 20}, {name: up3, priority: 30, state: disabled}]
    guest_ports: [{name: vm1}]
`
}

// linkStep is one thing that happens to a test daemon, at t0+at: a link
// change the watcher reports (link), or the hold timer firing (hold).
type linkStep struct {
	at   time.Duration
	link string
	up   bool
	gone bool // the interface was deleted
	// index, if set, is the interface's new index (deleted and re-created)
	index int
	hold  bool
	// What the daemon did: the active uplink in the data plane ("" for
	// none), the switches it recorded, and its SetActive, Attach and
	// Detach calls.
	active   string
	switches []string
	writes   []string
	// fallback, if set, is the in-kernel fallback order the data plane
	// holds after the step (it always holds the policy's).
	fallback []string
}

func (s linkStep) String() string {
	switch {
	case s.hold:
		return fmt.Sprintf("hold timer at %v", s.at)
	case s.gone:
		return fmt.Sprintf("%s deleted at %v", s.link, s.at)
	}
	return fmt.Sprintf("%s up=%t index=%d at %v", s.link, s.up, s.index, s.at)
}

// runSteps plays steps on a daemon over fakes and checks each outcome.
func runSteps(t *testing.T, d *Daemon, dp *fakeDataPlane, h *fakeHost, steps []linkStep) {
	t.Helper()
	g := d.groups[0]
	for i, s := range steps {
		now := t0.Add(s.at)
		if s.hold {
			d.onHold(now)
		} else {
			l := h.links[s.link]
			switch {
			case s.gone:
				delete(h.links, s.link)
			case l == nil:
				l = &fakeLink{index: s.index}
				h.links[s.link] = l
			case s.index != 0:
				l.index = s.index
			}
			if l != nil && !s.gone && l.up != s.up {
				l.up = s.up
				l.changes++
			}
			d.onLink(h.state(s.link, linkwatch.SourceNetlink, now))
		}
		if got := g.policy.UplinkName(dp.active[g.id]); got != s.active {
			t.Errorf("step %d (%v): data plane active %q, want %q", i, s, got, s.active)
		}
		if got := takeSwitches(d); !slices.Equal(got, s.switches) {
			t.Errorf("step %d (%v): switches %q, want %q", i, s, got, s.switches)
		}
		if got := dp.takeWrites(); !slices.Equal(got, s.writes) {
			t.Errorf("step %d (%v): data plane writes %q, want %q", i, s, got, s.writes)
		}
		var fallback []string
		for _, slot := range dp.fallback[g.id] {
			fallback = append(fallback, g.policy.UplinkName(slot))
		}
		if !slices.Equal(dp.fallback[g.id], g.policy.Fallback()) || (s.fallback != nil && !slices.Equal(fallback, s.fallback)) {
			t.Errorf("step %d (%v): data plane fallback %q, policy's %v, want %q", i, s, fallback, g.policy.Fallback(), s.fallback)
		}
	}
}

// onLink: carrier changes, interfaces that go and come back, with and
// without hold timers, as the link watcher reports them.
func TestOnLink(t *testing.T) {
	const (
		lost     = "up1->up2 carrier lost (netlink)"
		failback = "up2->up1 failback (netlink)"
	)
	for _, tc := range []struct {
		name   string
		timing string
		steps  []linkStep
	}{
		{"the active uplink loses carrier, and fails back", "failback: true", []linkStep{
			{at: time.Second, link: "up1", up: false, active: "up2", switches: []string{lost}, writes: []string{"active 0 1"}, fallback: []string{"up2"}},
			{at: 2 * time.Second, link: "up1", up: true, active: "up1", switches: []string{failback}, writes: []string{"active 0 0"}, fallback: []string{"up1", "up2"}},
		}},
		{"the backup loses carrier: nothing moves", "failback: true", []linkStep{
			{at: time.Second, link: "up2", up: false, active: "up1"},
			{at: 2 * time.Second, link: "up1", up: false, active: "", switches: []string{"up1-> all uplinks down (netlink)"}, writes: []string{fmt.Sprintf("active 0 %d", limits.NoSlot)}},
			{at: 3 * time.Second, link: "up2", up: true, active: "up2", switches: []string{"->up2 carrier restored (netlink)"}, writes: []string{"active 0 1"}},
		}},
		{"failback off: the group stays on the backup", "failback: false", []linkStep{
			{at: time.Second, link: "up1", up: false, active: "up2", switches: []string{lost}, writes: []string{"active 0 1"}},
			{at: 2 * time.Second, link: "up1", up: true, active: "up2"},
		}},
		{"down_delay: a flap shorter than it moves nothing", "down_delay: 500ms", []linkStep{
			// No fallback: the kernel must not move before the delay.
			{at: time.Second, link: "up1", up: false, active: "up1", fallback: []string{}},
			{at: 1200 * time.Millisecond, link: "up1", up: true, active: "up1"},
			{at: 1600 * time.Millisecond, hold: true, active: "up1"},
		}},
		{"down_delay: a loss that lasts moves at its end", "down_delay: 500ms", []linkStep{
			{at: time.Second, link: "up1", up: false, active: "up1"},
			{at: 1400 * time.Millisecond, hold: true, active: "up1"},
			{at: 1500 * time.Millisecond, hold: true, active: "up2", switches: []string{"up1->up2 carrier lost (hold timer)"}, writes: []string{"active 0 1"}},
		}},
		{"up_delay: failback waits for it", "up_delay: 2s", []linkStep{
			{at: time.Second, link: "up1", up: false, active: "up2", switches: []string{lost}, writes: []string{"active 0 1"}},
			{at: 2 * time.Second, link: "up1", up: true, active: "up2"},
			{at: 3 * time.Second, hold: true, active: "up2"},
			{at: 4 * time.Second, hold: true, active: "up1", switches: []string{"up2->up1 failback (hold timer)"}, writes: []string{"active 0 0"}},
		}},
		{"the active uplink's interface is deleted, then re-created", "failback: true", []linkStep{
			{at: time.Second, link: "up1", gone: true, active: "up2", switches: []string{lost}, writes: []string{"detach up1 10", "active 0 1"}},
			{at: 2 * time.Second, link: "up1", up: true, index: 20, active: "up1", switches: []string{failback}, writes: []string{"attach up1 20", "active 0 0"}},
		}},
		{"a guest port re-created with a new index is attached again", "failback: true", []linkStep{
			{at: time.Second, link: "vm1", up: true, index: 30, active: "up1", writes: []string{"detach vm1 13", "attach vm1 30"}},
		}},
		{"an interface that is no port is ignored", "failback: true", []linkStep{
			{at: time.Second, link: "eth9", up: true, index: 40, active: "up1"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, dp, h := testDaemon(t, groupYAML(tc.timing), "up1", "up2", "up3", "vm1")
			if got := takeSwitches(d); !slices.Equal(got, []string{"->up1 initial ()"}) {
				t.Fatalf("start: switches %q", got)
			}
			if got := dp.takeWrites(); !slices.Equal(got, []string{"attach up1 10", "attach up2 11", "attach up3 12", "attach vm1 13", "active 0 0"}) {
				t.Fatalf("start: writes %q", got)
			}
			runSteps(t, d, dp, h, tc.steps)
		})
	}
}

// A guest port pattern: an interface that matches is attached as it
// appears and forgotten as it goes; one the operator removed stays out
// while it lives.
func TestOnLinkPattern(t *testing.T) {
	d, dp, h := testDaemon(t, `groups:
  - name: g
    announce: {count: 0}
    uplinks: [{name: up1}]
    guest_ports: [{match: "vm*"}]
`, "up1")
	takeSwitches(d)
	dp.takeWrites()
	runSteps(t, d, dp, h, []linkStep{
		{at: time.Second, link: "vm7", up: true, index: 70, active: "up1", writes: []string{"attach vm7 70"}},
		{at: 2 * time.Second, link: "vm7", gone: true, active: "up1", writes: []string{"detach vm7 70"}},
		{at: 3 * time.Second, link: "vm7", up: true, index: 71, active: "up1", writes: []string{"attach vm7 71"}},
	})
	if p := d.ports["vm7"]; p == nil || p.ifindex != 71 || p.pattern != "vm*" {
		t.Fatalf("vm7 is not a guest port of the pattern: %+v", p)
	}
	if err := d.removePort(d.groups[0], "vm7"); err != nil {
		t.Fatal(err)
	}
	runSteps(t, d, dp, h, []linkStep{
		{at: 4 * time.Second, link: "vm7", up: false, active: "up1", writes: []string{"detach vm7 71"}},
		{at: 5 * time.Second, link: "vm7", up: true, index: 72, active: "up1", writes: []string{"attach vm7 72"}},
	})
}

// A switch the kernel made by itself: the daemon records it with the
// kernel's time, corrects a choice made from an out-of-date fallback
// order, ignores reports that are stale, and reads the failed uplink's
// carrier again (a flap may be over already).
func TestOnKernelSwitch(t *testing.T) {
	const hook = datapath.PathCarrierHook
	for _, tc := range []struct {
		name     string
		timing   string
		up1Up    bool // up1's carrier when the daemon reads it
		ev       datapath.KernelSwitch
		active   string
		switches []string
		writes   []string
	}{
		{"off the failed active uplink", "failback: true", false,
			datapath.KernelSwitch{From: 0, To: 1, Path: hook},
			"up2", []string{"up1->up2 carrier lost (in kernel) (kernel/carrier-hook)"}, []string{"active 0 1"}},
		{"a flap that is over when the daemon looks: back at once", "failback: true", true,
			datapath.KernelSwitch{From: 0, To: 1, Path: hook},
			"up1", []string{"up1->up2 carrier lost (in kernel) (kernel/carrier-hook)", "up2->up1 failback ()"}, []string{"active 0 1", "active 0 0"}},
		{"a flap that is over, failback off: stays", "failback: false", true,
			datapath.KernelSwitch{From: 0, To: 1, Path: datapath.PathCarrierAtRedirect},
			"up2", []string{"up1->up2 carrier lost (in kernel) (kernel/carrier-at-redirect)"}, []string{"active 0 1"}},
		{"to a disabled uplink (an out-of-date fallback order): corrected", "failback: true", false,
			datapath.KernelSwitch{From: 0, To: 2, Path: hook},
			// One switch, up1 to up2: the policy's reason is why up3 would not do.
			"up2", []string{"up1->up2 admin state (kernel/carrier-hook)"}, []string{"active 0 1"}},
		{"off an uplink that is not active: stale, nothing moves", "failback: true", true,
			datapath.KernelSwitch{From: 1, To: 0, Path: hook},
			"up1", nil, nil},
		{"a group a reload removed", "failback: true", false,
			datapath.KernelSwitch{Group: 7, From: 0, To: 1, Path: hook},
			"up1", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, dp, h := testDaemon(t, groupYAML(tc.timing), "up1", "up2", "up3", "vm1")
			takeSwitches(d)
			dp.takeWrites()
			h.links["up1"].up = tc.up1Up
			tc.ev.At = t0.Add(time.Second)
			if tc.ev.Group == 0 {
				dp.active[0] = tc.ev.To // the kernel's own write
			}
			d.onKernelSwitch(tc.ev)
			g := d.groups[0]
			if got := g.policy.UplinkName(dp.active[g.id]); got != tc.active {
				t.Errorf("data plane active %q, want %q", got, tc.active)
			}
			if got := g.policy.UplinkName(g.policy.Active()); got != tc.active {
				t.Errorf("policy active %q, want %q", got, tc.active)
			}
			if len(tc.switches) > 0 {
				if ev := d.timeline.events[0]; !ev.Switched.Equal(tc.ev.At) || !ev.Detected.Equal(tc.ev.At) {
					t.Errorf("recorded detected %v, switched %v; want both at the kernel's time %v", ev.Detected, ev.Switched, tc.ev.At)
				}
			}
			if got := takeSwitches(d); !slices.Equal(got, tc.switches) {
				t.Errorf("switches %q, want %q", got, tc.switches)
			}
			if got := dp.takeWrites(); !slices.Equal(got, tc.writes) {
				t.Errorf("data plane writes %q, want %q", got, tc.writes)
			}
		})
	}
}

// Control requests run on the event loop: a manual switch reaches the data
// plane, errors keep their kind for the HTTP status, the status answer is
// the loop's state, and a request whose client has gone does not run.
func TestControlAPI(t *testing.T) {
	d, dp, _ := testDaemon(t, groupYAML("failback: true"), "up1", "up2", "up3", "vm1")
	serveCalls(t, d)
	api, ctx := controlAPI{d}, context.Background()
	active := func() string { return d.groups[0].policy.UplinkName(dp.active[0]) }

	if err := api.SetActive(ctx, "g", "up2"); err != nil || active() != "up2" {
		t.Fatalf("set-active up2: %v; data plane on %q", err, active())
	}
	st, err := api.Status(ctx)
	if err != nil || st.Groups[0].Active != "up2" || st.Groups[0].Manual != "up2" || len(st.Groups[0].Recent) != 2 {
		t.Errorf("status after set-active: %+v, %v", st, err)
	}
	if err := api.SetActive(ctx, "red", "up2"); !errors.Is(err, control.ErrNotFound) {
		t.Errorf("unknown group: %v, want ErrNotFound", err)
	}
	if err := api.SetActive(ctx, "g", "up3"); !errors.Is(err, control.ErrRefused) {
		t.Errorf("disabled uplink: %v, want ErrRefused", err)
	}
	gone, cancel := context.WithCancel(ctx)
	cancel()
	if err := api.ClearManual(gone, "g"); !errors.Is(err, context.Canceled) || active() != "up2" {
		t.Errorf("a request whose client went away: %v, data plane on %q; want it not run", err, active())
	}
	if err := api.ClearManual(ctx, "g"); err != nil || active() != "up1" {
		t.Errorf("set-active auto: %v; data plane on %q, want up1 (failback)", err, active())
	}
	if err := api.RemovePort(ctx, "g", "vm1"); err != nil || dp.attached["vm1"].Ifname != "" {
		t.Errorf("remove-port vm1: %v; attached %v", err, dp.attached)
	}
	counters, err := api.Counters(ctx)
	if err != nil || len(counters) != 3 {
		t.Errorf("counters: %d ports, %v; want the 3 uplinks", len(counters), err)
	}
}
