// Package e2e runs the real uplinkd binary over a topology in network
// namespaces the tests create and delete:
//
//	ns G0: eth0 ─┐                       ┌─ up0 ══ p0 ─┐
//	             vnet0   ns H (uplinkd)              br0 (ns U, gateway)
//	ns G1: eth0 ─┘vnet1                  └─ up1 ══ p1 ─┘
//	                                       (up2 ══ p2 ... with more priorities)
package e2e

import (
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/uplinkd/uplinkd/pkg/control"
	"github.com/uplinkd/uplinkd/pkg/nldump"
	"github.com/uplinkd/uplinkd/test/testenv"
)

var (
	binOnce sync.Once
	binDir  string
	binErr  error
)

// binaries returns a directory holding uplinkd and uplinkctl: $UPLINKD_BIN
// (make test-e2e builds them) or a fresh build.
func binaries(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("UPLINKD_BIN"); d != "" {
		return d
	}
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "uplinkd-e2e-bin")
		if binErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", binDir+"/", "../../cmd/uplinkd", "../../cmd/uplinkctl")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		out, err := cmd.CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binDir
}

// lab is one topology; every name in it carries a unique prefix.
type lab struct {
	t      *testing.T
	prefix string
	ns     map[string]netns.NsHandle // "H", "U", "G0", "G1"
	env    map[string]*testenv.Netns // the same namespaces
	d      *daemon
	macs   map[string]net.HardwareAddr // "G0", "G1", "br0"
}

func requireRoot(t *testing.T) {
	t.Helper()
	testenv.RequireRoot(t, "end-to-end tests need root (namespaces, BPF)")
}

type labOptions struct {
	failback bool
	count    int // announce rounds
	// priorities of up0, up1, ...; default 10, 20.
	priorities []int
	// extra YAML keys for the group (indented four spaces), e.g. up_delay.
	extra string
	// guestPorts replaces the group's guest_ports (YAML flow), e.g. to
	// give vnet0 a VLAN.
	guestPorts string
	// moreGroups is YAML for further groups (list items at two spaces).
	moreGroups string
	// guests is the number of guests G0, G1, ... behind vnet0, vnet1, ...
	// (default 2).
	guests int
}

// guestRole is the namespace of guest i.
func guestRole(i int) string { return fmt.Sprintf("G%d", i) }

// guestIP is guest i's address.
func guestIP(i int) net.IP { return net.IP{10, 77, 0, byte(10 + i)} }

func newLab(t *testing.T, opts labOptions) *lab {
	t.Helper()
	requireRoot(t)
	suffix := make([]byte, 3)
	_, _ = rand.Read(suffix)
	l := &lab{
		t:      t,
		prefix: "ulke" + hex.EncodeToString(suffix),
		ns:     map[string]netns.NsHandle{},
		env:    map[string]*testenv.Netns{},
		macs:   map[string]net.HardwareAddr{},
	}
	nGuests := max(opts.guests, 2)
	roles := []string{"H", "U"}
	var vnets []string
	for i := range nGuests {
		roles = append(roles, guestRole(i))
		vnets = append(vnets, fmt.Sprintf("vnet%d", i))
	}
	for _, role := range roles {
		l.ns[role] = l.newNS(role)
	}
	// Guests: eth0 in G0, G1, ..., vnetN in H.
	for i := range nGuests {
		g := guestRole(i)
		l.veth(vnets[i], "H", "eth0", g)
		l.in(g, func() {
			l.setUp("eth0")
			l.macs[g] = l.mac("eth0")
			l.addr("eth0", guestIP(i).String()+"/24")
		})
	}
	// Uplinks: upN in H, pN in U on the bridge with the gateway address.
	l.in("U", func() {
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br0"}}
		l.check(netlink.LinkAdd(br))
	})
	prios := opts.priorities
	if len(prios) == 0 {
		prios = []int{10, 20}
	}
	var ups []string
	for i := range prios {
		ups = append(ups, fmt.Sprintf("up%d", i))
		l.uplinkPair(ups[i], fmt.Sprintf("p%d", i))
	}
	l.in("U", func() {
		l.setUp("br0")
		l.addr("br0", "10.77.0.1/24")
		l.macs["br0"] = l.mac("br0")
	})
	l.in("H", func() {
		for _, n := range append(slices.Clone(vnets), ups...) {
			l.setUp(n)
		}
	})

	count := opts.count
	if count == 0 {
		count = 3
	}
	var uplinks strings.Builder
	for i, p := range prios {
		fmt.Fprintf(&uplinks, "      - {name: %s, priority: %d}\n", ups[i], p)
	}
	l.d = newDaemon(t, l.nsName("H"), fmt.Sprintf(`  - name: lab
    failback: %t
    announce: {count: %d, interval: 50ms}
%s    guest_ports: %s
    uplinks:
%s%s`, opts.failback, count, opts.extra, cmp.Or(opts.guestPorts, "["+strings.Join(vnets, ", ")+"]"), uplinks.String(), opts.moreGroups))
	return l
}

func (l *lab) check(err error) {
	l.t.Helper()
	if err != nil {
		l.t.Fatal(err)
	}
}

func (l *lab) nsName(role string) string { return l.prefix + strings.ToLower(role) }

// newNS creates the role's namespace, deleted when the test ends.
func (l *lab) newNS(role string) netns.NsHandle {
	l.t.Helper()
	n := testenv.NewNetns(l.t, l.nsName(role))
	l.env[role] = n
	return n.Handle
}

// in runs fn on a thread inside the role's namespace.
func (l *lab) in(role string, fn func()) {
	l.t.Helper()
	testenv.In(l.t, l.ns[role], fn)
}

// veth creates a pair with one end in each namespace, both left down.
func (l *lab) veth(name, nsA, peer, nsB string) {
	l.t.Helper()
	testenv.AddVeth(l.t, l.env[nsA], testenv.Veth{Name: name, Peer: peer, PeerNS: l.env[nsB], Down: true})
}

// uplinkPair creates uplink up in H (left down) and its peer in U, up on
// the upstream bridge.
func (l *lab) uplinkPair(up, peer string) {
	l.t.Helper()
	l.veth(up, "H", peer, "U")
	l.bridged(peer, true)
}

// bridged puts U's port on the upstream bridge br0 (and sets it up), or
// takes it off: the port keeps its carrier but reaches nothing.
func (l *lab) bridged(port string, on bool) {
	l.t.Helper()
	l.in("U", func() {
		p, err := netlink.LinkByName(port)
		l.check(err)
		if !on {
			l.check(netlink.LinkSetNoMaster(p))
			return
		}
		br, err := netlink.LinkByName("br0")
		l.check(err)
		l.check(netlink.LinkSetMaster(p, br))
		l.check(netlink.LinkSetUp(p))
	})
}

func (l *lab) setUp(name string) {
	l.t.Helper()
	link, err := netlink.LinkByName(name)
	l.check(err)
	l.check(netlink.LinkSetUp(link))
}

func (l *lab) setDown(name string) {
	l.t.Helper()
	link, err := netlink.LinkByName(name)
	l.check(err)
	l.check(netlink.LinkSetDown(link))
}

func (l *lab) addr(name, cidr string) {
	l.t.Helper()
	link, err := netlink.LinkByName(name)
	l.check(err)
	a, err := netlink.ParseAddr(cidr)
	l.check(err)
	l.check(netlink.AddrAdd(link, a))
}

func (l *lab) mac(name string) net.HardwareAddr {
	l.t.Helper()
	link, err := netlink.LinkByName(name)
	l.check(err)
	return link.Attrs().HardwareAddr
}

// macOf is mac of name inside role's namespace.
func (l *lab) macOf(role, name string) (mac net.HardwareAddr) {
	l.in(role, func() { mac = l.mac(name) })
	return mac
}

func (l *lab) startDaemon()                  { l.d.start() }
func (l *lab) stopDaemon(sig syscall.Signal) { l.d.stop(sig) }
func (l *lab) client() *control.Client       { return l.d.client }
func (l *lab) status() control.GroupStatus   { return l.d.group() }

// waitFor polls cond every 5 ms for at most d.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(5 * time.Millisecond)
	}
	return cond()
}

// bridgeFDB maps MAC -> bridge port in U's bridge, learned entries only.
func (l *lab) bridgeFDB() map[string]string {
	l.t.Helper()
	out := map[string]string{}
	l.in("U", func() {
		br, err := netlink.LinkByName("br0")
		l.check(err)
		neighs, err := nldump.Retry(func() ([]netlink.Neigh, error) { return netlink.NeighList(0, unix.AF_BRIDGE) })
		l.check(err)
		names := map[int]string{}
		for _, n := range neighs {
			if n.MasterIndex != br.Attrs().Index || n.Flags&netlink.NTF_SELF != 0 || n.State&netlink.NUD_PERMANENT != 0 {
				continue
			}
			if _, ok := names[n.LinkIndex]; !ok {
				if pl, err := netlink.LinkByIndex(n.LinkIndex); err == nil {
					names[n.LinkIndex] = pl.Attrs().Name
				}
			}
			out[n.HardwareAddr.String()] = names[n.LinkIndex]
		}
	})
	return out
}
