package linkwatch

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/uplinkd/uplinkd/test/testenv"
)

// testNS is a named network namespace made for one test, with a sysfs
// mounted from inside it (what `ip netns exec` does) and a netlink handle.
type testNS struct {
	env   *testenv.Netns
	name  string
	ns    netns.NsHandle
	h     *netlink.Handle
	sysfs string // <mount>/class/net
}

const testPrefix = "ulklw"

func requireRoot(t testing.TB) {
	t.Helper()
	testenv.RequireRoot(t, "needs root (network namespaces, veth, sysfs mounts)")
}

// inNetns runs fn on an OS thread inside ns and brings the thread back.
func inNetns(ns netns.NsHandle, fn func() error) error { return testenv.Do(ns, fn) }

func newTestNS(t *testing.T) *testNS {
	t.Helper()
	requireRoot(t)
	env := testenv.NewNetns(t, testenv.UniqueName(testPrefix))
	tn := &testNS{env: env, name: env.Name, ns: env.Handle, h: env.Netlink}
	name := env.Name

	// sysfs shows the network namespace of whoever mounts it.
	mnt := t.TempDir()
	if err := inNetns(tn.ns, func() error { return unix.Mount("sysfs", mnt, "sysfs", 0, "") }); err != nil {
		t.Fatalf("mount sysfs for %s: %v", name, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(mnt, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", mnt, err)
		}
	})
	tn.sysfs = mnt + "/class/net"
	if err := tn.h.LinkSetUp(mustLink(t, tn.h, "lo")); err != nil {
		t.Fatal(err)
	}
	return tn
}

func mustLink(t *testing.T, h *netlink.Handle, name string) netlink.Link {
	t.Helper()
	l, err := h.LinkByName(name)
	if err != nil {
		t.Fatalf("link %s: %v", name, err)
	}
	return l
}

// addVeth creates a veth pair a/b (both up) and returns a's ifindex.
func (tn *testNS) addVeth(t *testing.T, a, b string) int {
	t.Helper()
	index, _ := testenv.AddVeth(t, tn.env, testenv.Veth{Name: a, Peer: b})
	return index
}

func (tn *testNS) setUp(t *testing.T, name string, up bool) {
	t.Helper()
	l := mustLink(t, tn.h, name)
	var err error
	if up {
		err = tn.h.LinkSetUp(l)
	} else {
		err = tn.h.LinkSetDown(l)
	}
	if err != nil {
		t.Fatalf("set %s up=%t: %v", name, up, err)
	}
}

func (tn *testNS) del(t *testing.T, name string) {
	t.Helper()
	if err := tn.h.LinkDel(mustLink(t, tn.h, name)); err != nil {
		t.Fatalf("delete %s: %v", name, err)
	}
}

// tap is a persistent tap device in a test namespace whose carrier the
// test switches with TUNSETCARRIER on its queue fd.
type tap struct {
	name string
	fd   int
}

func (tn *testNS) addTap(t *testing.T, name string) *tap {
	t.Helper()
	tp := &tap{name: name, fd: -1}
	// /dev/net/tun creates the device in the namespace of the opener.
	err := inNetns(tn.ns, func() error {
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open /dev/net/tun: %w", err)
		}
		ifr, err := unix.NewIfreq(name)
		if err != nil {
			unix.Close(fd)
			return err
		}
		ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI)
		if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
			unix.Close(fd)
			return fmt.Errorf("TUNSETIFF %s: %w", name, err)
		}
		tp.fd = fd
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(tp.fd) }) // non-persistent: closing deletes it
	tn.setUp(t, name, true)
	return tp
}

func (tp *tap) setCarrier(t *testing.T, on bool) {
	t.Helper()
	v := int32(0)
	if on {
		v = 1
	}
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(tp.fd), unix.TUNSETCARRIER, uintptr(unsafe.Pointer(&v))); errno != 0 {
		t.Fatalf("TUNSETCARRIER %s %t: %v", tp.name, on, errno)
	}
}

// startWatcher runs w until the test ends and returns its output.
func startWatcher(t *testing.T, w *Watcher, lockTo *netns.NsHandle) <-chan State {
	t.Helper()
	out := make(chan State, 256)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		if lockTo == nil {
			done <- w.Run(ctx, out)
			return
		}
		// The daemon's way: Run on a thread that is inside the namespace.
		done <- inNetns(*lockTo, func() error { return w.Run(ctx, out) })
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("Run did not return after cancel")
		}
	})
	return out
}

// waitFor reads states until one satisfies ok, logging everything seen.
func waitFor(t *testing.T, out <-chan State, timeout time.Duration, what string, ok func(State) bool) State {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case st := <-out:
			t.Logf("  event %v", st)
			if ok(st) {
				return st
			}
		case <-deadline:
			t.Fatalf("no event %q within %v", what, timeout)
			return State{}
		}
	}
}

// logBuffer collects slog output from several goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func testLogger(t *testing.T) (*slog.Logger, *logBuffer) {
	b := &logBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("watcher log:\n%s", b.String())
		}
	})
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}
