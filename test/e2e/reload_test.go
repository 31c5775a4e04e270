package e2e

import (
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/pkg/control"
)

// TestReload: a bad file and a file that changes a restart-only setting
// change nothing and say why; a good one is applied as a difference (an
// uplink's priority, a guest port's profile, the announcements) while the
// other guest's traffic loses nothing; SIGHUP reloads too.
func TestReload(t *testing.T) {
	l := newLab(t, labOptions{failback: true})
	l.disableIPv6()
	l.startDaemon()
	l.waitActive("up0")
	orig, err := os.ReadFile(l.d.config)
	if err != nil {
		t.Fatal(err)
	}
	write := func(cfg string) {
		t.Helper()
		if err := os.WriteFile(l.d.config, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	p0, p1 := l.receive("U", "p0"), l.receive("U", "p1")
	testbed := l.testbedDrops()
	// Sent until both reloads are done (at most 10 s).
	s := l.send("G1", "eth0", l.macs["br0"], l.macs["G1"], streamUp, 2000, 10*time.Second)

	write(strings.Replace(string(orig), "priority: 20", "priority: 70000", 1))
	if out, err := execCtl(l, "reload"); err == nil || !strings.Contains(out, "groups[0].uplinks[1].priority") || !strings.Contains(out, "nothing changed") {
		t.Errorf("reload of a bad file: %v\n%s", err, out)
	}
	write("metrics_listen: \"9478\"\n" + string(orig))
	if out, err := execCtl(l, "reload"); err == nil || !strings.Contains(out, "metrics_listen") || !strings.Contains(out, "restart") {
		t.Errorf("reload of a restart-only change: %v\n%s", err, out)
	}
	if g := l.status(); g.Active != "up0" || g.Announce.Count != 3 {
		t.Fatalf("refused reloads changed something: active %s, announce count %d", g.Active, g.Announce.Count)
	}

	good := strings.Replace(string(orig), "priority: 20", "priority: 5", 1)
	good = strings.Replace(good, "count: 3", "count: 2", 1)
	good = strings.Replace(good, "guest_ports: [vnet0, vnet1]", "guest_ports: [{name: vnet0, vlan: 100}, vnet1]", 1)
	write(good)
	out, err := execCtl(l, "reload")
	if err != nil {
		t.Fatalf("reload: %v\n%s", err, out)
	}
	for _, want := range []string{"uplink up1 priority 5", "guest port vnet0 re-attached", "announce count 2"} {
		if !strings.Contains(out, want) {
			t.Errorf("reload output lacks %q:\n%s", want, out)
		}
	}
	vlanOf := func(g control.GroupStatus, port string) int {
		if p, ok := guestPortOf(g, port); ok {
			return int(p.VLAN)
		}
		return -1
	}
	g := l.waitActive("up1")
	if g.Announce.Count != 2 || vlanOf(g, "vnet0") != 100 || vlanOf(g, "vnet1") != 0 {
		t.Errorf("after the reload: announce count %d, guest ports %+v", g.Announce.Count, g.GuestPorts)
	}
	if out, err := execCtl(l, "reload"); err != nil || !strings.Contains(out, "nothing changed") {
		t.Errorf("reloading the same file: %v\n%s", err, out)
	}

	// SIGHUP: back to the original file.
	write(string(orig))
	if err := l.d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	g = l.waitActive("up0")
	if g.Announce.Count != 3 || vlanOf(g, "vnet0") != 0 {
		t.Errorf("after SIGHUP: announce count %d, guest ports %+v", g.Announce.Count, g.GuestPorts)
	}
	time.Sleep(100 * time.Millisecond) // traffic after the second reload too
	close(s.stop)
	s.wait()
	time.Sleep(100 * time.Millisecond)
	p0.close()
	p1.close()
	lost, dups := missing(s.sent, streamUp, p0, p1)
	t.Logf("FIGURES reload: two reloads that moved the active uplink and re-attached the other guest's port, under %d pps from G1: %d of %d lost, %d duplicated", 2000, lost, s.sent, dups)
	if n := testbed.unexplained(lost, p0, p1); n != 0 || dups != 0 {
		t.Errorf("G1 lost %d in the switch, duplicated %d of %d across the reloads", n, dups, s.sent)
	}
}

// TestReloadMovesPortBetweenGroups: a guest port the file moves from one
// group to another (an earlier one in the file) is removed from the first
// before it is added to the second, so the reload applies whole.
func TestReloadMovesPortBetweenGroups(t *testing.T) {
	l := newLab(t, labOptions{failback: true, guestPorts: "[vnet0]",
		moreGroups: "  - name: blue\n    guest_ports: [vnet1]\n    uplinks: [{name: ulknone0}]\n"})
	l.disableIPv6()
	l.startDaemon()
	l.waitActive("up0")
	orig, err := os.ReadFile(l.d.config)
	if err != nil {
		t.Fatal(err)
	}
	moved := strings.Replace(string(orig), "guest_ports: [vnet0]", "guest_ports: [vnet0, vnet1]", 1)
	moved = strings.Replace(moved, "guest_ports: [vnet1]", "guest_ports: []", 1)
	if err := os.WriteFile(l.d.config, []byte(moved), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := execCtl(l, "reload"); err != nil || !strings.Contains(out, "group lab: guest port vnet1 added") {
		t.Fatalf("reload: %v\n%s", err, out)
	}
	st, err := l.client().Status()
	if err != nil {
		t.Fatal(err)
	}
	where := map[string]string{}
	for _, g := range st.Groups {
		for _, p := range g.GuestPorts {
			where[p.Name] = g.Name
		}
	}
	if where["vnet0"] != "lab" || where["vnet1"] != "lab" {
		t.Errorf("guest ports after the reload: %v, want vnet0 and vnet1 in lab", where)
	}
}
