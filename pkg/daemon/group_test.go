package daemon

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/pkg/control"
	"github.com/uplinkd/uplinkd/pkg/datapath"
	"github.com/uplinkd/uplinkd/pkg/failover"
	"github.com/uplinkd/uplinkd/pkg/limits"
	"github.com/uplinkd/uplinkd/pkg/linkwatch"
	"github.com/uplinkd/uplinkd/pkg/metrics"
)

// A group's runtime on its own, without a daemon: the deps are fakes, and
// the daemon's policy-event hook records, in the data plane's log of
// writes, the fallback order the data plane holds when it runs.

// failingActive is a data plane that refuses to write the active slot.
type failingActive struct{ *fakeDataPlane }

func (failingActive) SetActive(uint32, limits.Slot) error { return errors.New("map full") }

// testGroup is the first group of yaml as a runtime over fakes, with
// links as the host's interfaces (all up), its ports attached and its
// policy started; what it did at start is forgotten.
func testGroup(t *testing.T, yaml string, links ...string) (*group, *fakeDataPlane, *fakeHost) {
	t.Helper()
	cfg := mustParse(t, yaml)
	h, dp := hostWith(links...), newFakeDataPlane()
	log := slog.New(slog.DiscardHandler)
	met := metrics.New(func() metrics.Snapshot { return metrics.Snapshot{} })
	now := func(fn func()) { fn() } // the test is the event loop
	deps := &groupDeps{dp: dp, host: h, log: log, met: met, timeline: &timeline{}, post: now,
		ann: &announcer{send: &fakeSender{}, guests: dp.Guests, hostEnds: h.HostEnds, met: met, log: log, post: now},
		policyEvent: func() {
			dp.writes = append(dp.writes, fmt.Sprintf("policy event, fallback %v", dp.fallback[0]))
		}}
	gc := cfg.Groups[0]
	ids, _ := dp.AssignGroups([]string{gc.Name})
	g, err := newGroup(gc, ids[gc.Name], deps)
	if err != nil {
		t.Fatal(err)
	}
	for _, gp := range gc.GuestPorts {
		g.addGuest(gp)
	}
	snap := map[string]linkwatch.State{}
	for _, p := range g.ports() {
		g.attach(p, 0)
		snap[p.name] = h.state(p.name, linkwatch.SourceList, t0)
	}
	if err := g.start(snap, t0); err != nil {
		t.Fatal(err)
	}
	dp.takeWrites()
	g.timeline.events, g.recent, g.byReason = nil, nil, nil
	return g, dp, h
}

// A decision is carried out in order: the fallback order first, then the
// daemon's hook (polled uplinks, hold timer), then the active slot, then
// the switch's record; a decision that changes nothing writes no slot.
func TestGroupApplyOrder(t *testing.T) {
	g, dp, h := testGroup(t, groupYAML("failback: true"), "up1", "up2", "up3", "vm1")
	h.links["up1"].up = false
	g.onLink(g.uplinks[0], h.state("up1", linkwatch.SourceNetlink, t0.Add(time.Second)))
	want := []string{"policy event, fallback [1]", "active 0 1"}
	if got := dp.takeWrites(); !slices.Equal(got, want) {
		t.Errorf("up1 lost: writes %q, want %q", got, want)
	}
	if len(g.recent) != 1 || g.recent[0].To != "up2" || g.byReason["carrier lost"] != 1 || len(g.timeline.events) != 1 {
		t.Errorf("up1 lost: recent %v, by reason %v, timeline %d; want the one switch recorded", g.recent, g.byReason, len(g.timeline.events))
	}
	g.onLink(g.uplinks[2], h.state("up3", linkwatch.SourceNetlink, t0.Add(2*time.Second)))
	if got := dp.takeWrites(); !slices.Equal(got, []string{"policy event, fallback [1]"}) {
		t.Errorf("a disabled uplink seen up: writes %q, want the hook only", got)
	}
}

// The group keeps its last maxRecent switches; the timeline keeps them all.
func TestGroupRecentBounded(t *testing.T) {
	g, _, _ := testGroup(t, groupYAML("failback: false"), "up1", "up2", "up3", "vm1")
	for i := range maxRecent + 3 {
		if err := g.setActive([]string{"up2", "up1"}[i%2]); err != nil {
			t.Fatal(err)
		}
	}
	if len(g.recent) != maxRecent || len(g.timeline.events) != maxRecent+3 || g.byReason["manual"] != maxRecent+3 {
		t.Errorf("recent %d (want %d), timeline %d (want %d), by reason %v", len(g.recent), maxRecent,
			len(g.timeline.events), maxRecent+3, g.byReason)
	}
	if last := g.recent[maxRecent-1]; last != g.timeline.events[maxRecent+2] {
		t.Errorf("the last recent switch %+v is not the timeline's last", last)
	}
}

// When the data plane refuses the slot, the policy has moved on but no
// switch is recorded (the next event retries).
func TestGroupSetActiveFails(t *testing.T) {
	g, dp, _ := testGroup(t, groupYAML("failback: true"), "up1", "up2", "up3", "vm1")
	g.dp = failingActive{dp}
	if err := g.setActive("up2"); err != nil {
		t.Fatal(err)
	}
	if len(g.recent) != 0 || len(g.timeline.events) != 0 || dp.active[g.id] != 0 {
		t.Errorf("recorded %d switches, data plane on %d; want none, still slot 0", len(g.recent), dp.active[g.id])
	}
}

// Ports at run time: an added uplink takes the lowest free slot and, with
// failback, the traffic; removing the active uplink moves the group before
// the port is detached; a port is found by name and role only.
func TestGroupUplinksAtRunTime(t *testing.T) {
	g, dp, h := testGroup(t, groupYAML("failback: true"), "up1", "up2", "up3", "vm1")
	if _, err := g.port("vm1", datapath.RoleUplink); !errors.Is(err, control.ErrNotFound) {
		t.Errorf("vm1 as an uplink: %v, want not found", err)
	}
	p, err := g.removeUplink("up1")
	if err != nil || p.slot != 0 || g.uplinks[0] != nil {
		t.Fatalf("remove up1: %v, %+v", err, p)
	}
	want := []string{"policy event, fallback [1]", "active 0 1", "detach up1 10"}
	if got := dp.takeWrites(); !slices.Equal(got, want) {
		t.Errorf("remove up1: writes %q, want %q", got, want)
	}
	h.links["up0"] = &fakeLink{index: 20, up: true, changes: 1}
	prio := 1
	p, err = g.addUplink(control.AddUplinkRequest{Name: "up0", Priority: &prio})
	if err != nil || p.slot != 0 || p.ifindex != 20 {
		t.Fatalf("add up0: %v, %+v; want slot 0, attached", err, p)
	}
	if got := g.policy.UplinkName(dp.active[g.id]); got != "up0" {
		t.Errorf("add up0 (preferred, failback on): data plane on %q", got)
	}
	if _, err := g.addUplink(control.AddUplinkRequest{Name: "up9", State: "sideways"}); !errors.Is(err, control.ErrRefused) {
		t.Errorf("a bad admin state: %v, want refused", err)
	}
	if _, err := g.removeUplink("up1"); !errors.Is(err, control.ErrNotFound) {
		t.Errorf("remove up1 again: %v, want not found", err)
	}
}

// The hold timer: the group's deadline is the policy's, and onHold makes
// the expired hold take effect, recorded as the hold timer's.
func TestGroupOnHold(t *testing.T) {
	g, dp, h := testGroup(t, groupYAML("down_delay: 500ms"), "up1", "up2", "up3", "vm1")
	h.links["up1"].up = false
	g.onLink(g.uplinks[0], h.state("up1", linkwatch.SourceNetlink, t0.Add(time.Second)))
	if at, ok := g.policy.Deadline(); !ok || !at.Equal(t0.Add(1500*time.Millisecond)) {
		t.Fatalf("deadline %v %t, want t0+1.5s", at, ok)
	}
	g.onHold(t0.Add(1500 * time.Millisecond))
	if got := dp.takeWrites(); !slices.Contains(got, "active 0 1") {
		t.Errorf("after the hold: writes %q, want up2 active", got)
	}
	if len(g.recent) != 1 || g.recent[0].Source != "hold timer" || g.recent[0].Reason != failover.ReasonCarrierLost.String() {
		t.Errorf("after the hold: %+v", g.recent)
	}
}
