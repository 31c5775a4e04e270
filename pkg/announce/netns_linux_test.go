//go:build linux

package announce

import (
	"net"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/uplinkd/uplinkd/test/testenv"
)

// vethNetns is a fresh network namespace (name prefix "ulkann") holding one
// veth pair, both ends up: tx stands for the uplink, rx for the upstream
// switch.
type vethNetns struct {
	env     *testenv.Netns
	ns      netns.NsHandle
	handle  *netlink.Handle
	tx, rx  string
	txIndex int
	rxIndex int
}

func newVethNetns(t *testing.T) *vethNetns {
	t.Helper()
	testenv.RequireRoot(t, "needs root: creates a network namespace and raw sockets")
	n := testenv.NewNetns(t, testenv.UniqueName("ulkann"))
	v := &vethNetns{env: n, ns: n.Handle, handle: n.Netlink, tx: "ulkann-tx", rx: "ulkann-rx"}
	testenv.AddVeth(t, n, testenv.Veth{Name: v.tx, Peer: v.rx})
	v.txIndex = v.waitUp(t, v.tx)
	v.rxIndex = v.waitUp(t, v.rx)
	return v
}

// waitUp waits (bounded) for operstate UP and returns the ifindex.
func (v *vethNetns) waitUp(t *testing.T, ifname string) int {
	t.Helper()
	testenv.WaitUp(t, v.env, ifname)
	link, err := v.handle.LinkByName(ifname)
	if err != nil {
		t.Fatalf("find %s: %v", ifname, err)
	}
	return link.Attrs().Index
}

func (v *vethNetns) setTxUp(t *testing.T, up bool) {
	t.Helper()
	link, err := v.handle.LinkByName(v.tx)
	if err != nil {
		t.Fatalf("find %s: %v", v.tx, err)
	}
	set := v.handle.LinkSetDown
	if up {
		set = v.handle.LinkSetUp
	}
	if err := set(link); err != nil {
		t.Fatalf("set %s up=%v: %v", v.tx, up, err)
	}
	if up {
		v.waitUp(t, v.tx)
		v.waitUp(t, v.rx)
	}
}

// do runs fn on a thread inside the namespace. Sockets created there keep the
// namespace after the thread leaves it.
func (v *vethNetns) do(t *testing.T, fn func()) {
	t.Helper()
	testenv.In(t, v.ns, fn)
}

// capture receives frames on one interface with ETH_P_ALL, the way the
// upstream switch would see them.
type capture struct {
	*testenv.Capture
}

// openCapture must run inside the namespace (vethNetns.do).
func openCapture(t *testing.T, ifindex int) *capture {
	t.Helper()
	return &capture{testenv.OpenCapture(t, ifindex, testenv.CaptureOptions{RcvBuf: 8 << 20, Timeout: 50 * time.Millisecond})}
}

// read returns the next received (not outgoing) frame with its VLAN tag
// restored, or nil after the 50 ms read timeout.
func (c *capture) read() ([]byte, error) { return c.Next() }

// collect gathers, in arrival order, the frames whose source MAC is in
// from. It returns once it has at least want of them and quiet has passed
// without another (so extra frames are caught), or after limit.
func (c *capture) collect(t *testing.T, from []net.HardwareAddr, want int, quiet, limit time.Duration) [][]byte {
	t.Helper()
	sources := make(map[string]bool, len(from))
	for _, mac := range from {
		sources[mac.String()] = true
	}
	var got [][]byte
	start := time.Now()
	last := start
	for time.Since(start) < limit {
		frame, err := c.read()
		if err != nil {
			t.Fatalf("capture: %v", err)
		}
		if frame == nil || len(frame) < 14 || !sources[net.HardwareAddr(frame[6:12]).String()] {
			if len(got) >= want && time.Since(last) >= quiet {
				return got
			}
			continue
		}
		got = append(got, frame)
		last = time.Now()
	}
	if len(got) < want {
		t.Errorf("captured %d frames from %v within %v, want %d", len(got), from, limit, want)
	}
	return got
}
