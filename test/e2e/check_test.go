package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/uplinkd/uplinkd/test/testenv"
)

// TestCheckWarnsOfAddressesOnUplinks: a host moving from bonding often has
// its own addresses on what becomes an uplink, where they stop answering
// ARP from upstream. `uplinkd -check` still calls the file valid, but
// names the uplink, its addresses (IPv4 link-local too, not IPv6 link-
// local) and the host port to move them to.
func TestCheckWarnsOfAddressesOnUplinks(t *testing.T) {
	testenv.RequireRoot(t, "creates a namespace and veths")
	bin := binaries(t)
	ns := testenv.NewNetns(t, testenv.UniqueName("ulkchk"))
	testenv.AddVeth(t, ns, testenv.Veth{Name: "up0", Peer: "p0"})
	testenv.AddVeth(t, ns, testenv.Veth{Name: "up1", Peer: "p1"})
	testenv.AddVeth(t, ns, testenv.Veth{Name: "vnet0", Peer: "g0"})
	up0, err := ns.Netlink.LinkByName("up0")
	if err != nil {
		t.Fatal(err)
	}
	// An IPv4 link-local address (169.254/16) is the host's too: only
	// IPv6 link-local ones, which every interface has, are left out.
	for _, cidr := range []string{"192.0.2.10/24", "169.254.7.7/16"} {
		addr, err := netlink.ParseAddr(cidr)
		if err != nil {
			t.Fatal(err)
		}
		if err := ns.Netlink.AddrAdd(up0, addr); err != nil {
			t.Fatal(err)
		}
	}
	cfg := filepath.Join(t.TempDir(), "uplinkd.yaml")
	err = os.WriteFile(cfg, []byte(`groups:
  - name: lab
    guest_ports: [vnet0]
    host_ports: [{name: mgmt0}]
    uplinks: [{name: up0}, {name: up1}]
`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", ns.Name, filepath.Join(bin, "uplinkd"), "-check", "-config", cfg)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("uplinkd -check: %v\n%s%s", err, stdout.String(), stderr.String())
	}
	if !strings.Contains(stdout.String(), "configuration is valid") {
		t.Errorf("stdout %q: want the file called valid", stdout.String())
	}
	warn := stderr.String()
	t.Logf("FIGURES -check on an uplink with an address: %s", strings.TrimSpace(warn))
	for _, want := range []string{"groups[0].uplinks[0] (up0) carries", "192.0.2.10/24", "169.254.7.7/16", "host port mgmt0"} {
		if !strings.Contains(warn, want) {
			t.Errorf("stderr %q lacks %q", warn, want)
		}
	}
	if strings.Contains(warn, "up1") {
		t.Errorf("stderr %q warns of up1, which has no address", warn)
	}
}
