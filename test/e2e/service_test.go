package e2e

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
)

// unitCapabilities reads the capability set the systemd unit grants.
func unitCapabilities(t *testing.T) []string {
	t.Helper()
	f, err := os.Open("../../deploy/systemd/uplinkd.service")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var bounding, ambient []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CapabilityBoundingSet="); ok {
			bounding = strings.Fields(v)
		}
		if v, ok := strings.CutPrefix(sc.Text(), "AmbientCapabilities="); ok {
			ambient = strings.Fields(v)
		}
	}
	if len(bounding) == 0 || !slices.Equal(bounding, ambient) {
		t.Fatalf("unit: bounding set %v, ambient %v: want the same, non-empty", bounding, ambient)
	}
	return bounding
}

// setprivCaps is setpriv's --bounding-set for caps (CAP_NET_RAW -> +net_raw).
func setprivCaps(caps []string) string {
	out := []string{"-all"}
	for _, c := range caps {
		out = append(out, "+"+strings.ToLower(strings.TrimPrefix(c, "CAP_")))
	}
	return strings.Join(out, ",")
}

// TestServiceCapabilities: with only the capabilities the systemd unit
// grants, uplinkd makes its host port, tells systemd it is ready once it
// serves, attaches every port, reads carrier at redirect, fails over and
// announces; without any one of them it does not.
func TestServiceCapabilities(t *testing.T) {
	caps := unitCapabilities(t)
	run := func(t *testing.T, caps []string) (works bool, why string) {
		l := newLab(t, labOptions{failback: true, extra: "    host_ports: [{name: mgmt0}]\n"})
		l.disableIPv6()
		l.d.wrap = []string{"setpriv", "--bounding-set=" + setprivCaps(caps), "--inh-caps=-all", "--"}
		notify := filepath.Join(t.TempDir(), "notify")
		ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notify, Net: "unixgram"})
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		l.d.env = []string{"NOTIFY_SOCKET=" + notify}
		if err := l.d.tryStart(); err != nil {
			return false, "did not start: " + lastLine(err.Error())
		}
		buf := make([]byte, 256)
		_ = ln.SetReadDeadline(time.Now().Add(3 * time.Second))
		n, err := ln.Read(buf)
		if err != nil || !strings.Contains(string(buf[:n]), "READY=1") {
			return false, "no READY=1"
		}
		var hostPort error
		l.in("H", func() { _, hostPort = netlink.LinkByName("mgmt0") })
		if hostPort != nil {
			return false, "no host port: " + hostPort.Error()
		}
		if !waitFor(3*time.Second, func() bool { return l.status().Active == "up0" }) {
			return false, "no active uplink"
		}
		st, err := l.client().Status()
		if err != nil || !slices.Contains(st.FailoverPaths, "carrier-at-redirect") {
			return false, "no carrier check at redirect"
		}
		l.hello("G0", guestIP(0))
		time.Sleep(400 * time.Millisecond) // the arrival's announcements end
		p1 := l.receive("U", "p1")
		l.cut("p0")
		if !waitFor(3*time.Second, func() bool { return l.status().Active == "up1" }) {
			return false, "no failover"
		}
		ok := waitFor(2*time.Second, func() bool { return len(p1.rarps()) > 0 })
		p1.close()
		if !ok {
			return false, "no announcement"
		}
		return true, ""
	}
	if ok, why := run(t, caps); !ok {
		t.Fatalf("with the unit's capabilities %v: %s", caps, why)
	}
	// What each capability is for shows in what fails without it. 6.1
	// already refuses to create a devmap without CAP_NET_ADMIN.
	needed := map[string][]string{
		"CAP_SYS_ADMIN": {"did not start"},   // the maps: map create is refused
		"CAP_NET_ADMIN": {"did not start"},   // no host port is made (nor, without tcx, a clsact filter)
		"CAP_NET_RAW":   {"no announcement"}, // no AF_PACKET socket
	}
	for _, c := range caps {
		fewer := slices.DeleteFunc(slices.Clone(caps), func(x string) bool { return x == c })
		ok, why := run(t, fewer)
		if ok || !slices.ContainsFunc(needed[c], func(want string) bool { return strings.HasPrefix(why, want) }) {
			t.Errorf("without %s: %q, want one of %q", c, why, needed[c])
		}
		t.Logf("FIGURES capabilities: without %s: %s", c, why)
	}
}

// lastLine is the last non-empty line of s (a daemon's last log line).
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// TestInstall: make install puts the binaries, the unit (pointing at
// them) and an example configuration in place (a staged DESTDIR), keeps
// an existing configuration, and make uninstall removes all but the
// configuration.
func TestInstall(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make")
	}
	dest := t.TempDir()
	mk := func(target string) string {
		t.Helper()
		cmd := exec.Command("make", "-C", "../..", target, "DESTDIR="+dest, "PREFIX=/opt/u")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("make %s: %v\n%s", target, err, out)
		}
		return string(out)
	}
	mk("install")
	for _, f := range []string{"/opt/u/sbin/uplinkd", "/opt/u/bin/uplinkctl", "/etc/systemd/system/uplinkd.service", "/etc/uplinkd/uplinkd.yaml"} {
		if _, err := os.Stat(dest + f); err != nil {
			t.Errorf("not installed: %v", err)
		}
	}
	unit, _ := os.ReadFile(dest + "/etc/systemd/system/uplinkd.service")
	if !strings.Contains(string(unit), "ExecStart=/opt/u/sbin/uplinkd -config /etc/uplinkd/uplinkd.yaml") || !strings.Contains(string(unit), "Type=notify") {
		t.Errorf("the unit does not run the installed binary:\n%s", unit)
	}
	out, err := exec.Command(dest+"/opt/u/sbin/uplinkd", "-config", dest+"/etc/uplinkd/uplinkd.yaml", "-check").CombinedOutput()
	if err != nil {
		t.Errorf("the installed example configuration does not check: %v\n%s", err, out)
	}
	if err := os.WriteFile(dest+"/etc/uplinkd/uplinkd.yaml", []byte("# mine\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := mk("install"); !strings.Contains(out, "keeping") {
		t.Errorf("a second install did not keep the configuration:\n%s", out)
	}
	mk("uninstall")
	for _, f := range []string{"/opt/u/sbin/uplinkd", "/opt/u/bin/uplinkctl", "/etc/systemd/system/uplinkd.service"} {
		if _, err := os.Stat(dest + f); err == nil {
			t.Errorf("%s left after uninstall", f)
		}
	}
	if b, _ := os.ReadFile(dest + "/etc/uplinkd/uplinkd.yaml"); string(b) != "# mine\n" {
		t.Error("uninstall touched the configuration")
	}
}

// TestNoWorldWritableFiles: nothing uplinkd creates (its pinned maps and
// links, their directories, the control socket and its directory) can be
// written by others than root.
func TestNoWorldWritableFiles(t *testing.T) {
	l := newLab(t, labOptions{failback: true})
	l.startDaemon()
	l.waitActive("up0")
	cfg, err := os.ReadFile(l.d.config)
	if err != nil {
		t.Fatal(err)
	}
	var pin string
	for _, line := range strings.Split(string(cfg), "\n") {
		if v, ok := strings.CutPrefix(line, "pin_path: "); ok {
			pin = v
		}
	}
	checked := 0
	check := func(path string, info os.FileInfo) {
		checked++
		if info.Mode().Perm()&0o022 != 0 {
			t.Errorf("%s is writable by group or others: %v", path, info.Mode())
		}
	}
	if err := filepath.Walk(pin, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		check(path, info)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{l.d.socket, filepath.Dir(l.d.socket)} {
		info, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		check(p, info)
	}
	if checked < 10 {
		t.Errorf("only %d files checked under %s", checked, pin)
	}
}
