package e2e

import (
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/pkg/control"
	"github.com/uplinkd/uplinkd/test/bench/topo"
)

// TestTapCarrierLossWithoutNetlink: a tap (like a physical NIC) gets no
// urgent link-watch handling, so netlink reports its carrier loss up to a
// second late. The daemon's carrier poll must act at once. The kernel's
// link-watch is first armed by another tap's flap, so the netlink event
// for the cut surely comes late.
func TestTapCarrierLossWithoutNetlink(t *testing.T) {
	requireRoot(t)
	tp, err := topo.Build(topo.Options{Prefix: "ulkt", Uplinks: 3, Kind: topo.Tap})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tp.Destroy)
	// up2 is not an uplink of the group: it only arms link-watch.
	d := newDaemon(t, tp.NSName(topo.Host), `  - name: tap
    guest_ports: [vnet0]
    uplinks: [{name: up0, priority: 10}, {name: up1, priority: 20}]
`)
	d.start()
	c := d.client
	if g := d.group(); g.Active != "up0" {
		t.Fatalf("active at start %q, want up0:\n%s", g.Active, d.logs)
	}

	for round := range 3 {
		// Arm link-watch: a non-urgent event now delays the next ones.
		if err := tp.Cut(2); err != nil {
			t.Fatal(err)
		}
		if err := tp.Restore(2); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
		cutAt := time.Now()
		if err := tp.Cut(0); err != nil {
			t.Fatal(err)
		}
		var ev *control.FailoverEvent
		waitFor(2*time.Second, func() bool {
			st, err := c.Status()
			if err == nil && st.Groups[0].Active == "up1" && st.Groups[0].LastFailover != nil {
				ev = st.Groups[0].LastFailover
			}
			return ev != nil
		})
		if ev == nil {
			t.Fatalf("round %d: no switch to up1 after the tap lost carrier:\n%s", round, d.logs)
		}
		t.Logf("FIGURES tap carrier loss, round %d: cut -> seen %s -> switched %s, seen by %s", round, ms(ev.Detected.Sub(cutAt)), ms(ev.Switched.Sub(cutAt)), ev.Source)
		if d := ev.Switched.Sub(cutAt); d > 200*time.Millisecond || ev.Source == "netlink" {
			t.Errorf("round %d: switched %v after the cut, seen by %q: want the poll (netlink is late for taps)", round, d, ev.Source)
		}
		if err := tp.Restore(0); err != nil {
			t.Fatal(err)
		}
		if !waitFor(3*time.Second, func() bool { st, err := c.Status(); return err == nil && st.Groups[0].Active == "up0" }) {
			t.Fatalf("round %d: no failback to up0", round)
		}
	}
}
