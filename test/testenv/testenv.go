// Package testenv is what the tests that need the kernel share: the root
// check, network namespaces made and removed per test, veth pairs, running
// code inside a namespace on a locked OS thread, and frame capture with
// AF_PACKET.
//
// Only tests import it: the product's code under pkg/ and cmd/ must not
// (TestOnlyTestsImport checks).
package testenv

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"runtime"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// RequireRoot skips t unless the test runs as root; why says what needs
// it ("needs root: BPF programs, network namespaces").
func RequireRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip(why)
	}
}

// UniqueName is prefix followed by six random hex digits: names of
// namespaces and interfaces carry a test's prefix so that tests running
// at the same time, and what a crashed run left behind, never collide.
func UniqueName(prefix string) string {
	b := make([]byte, 3)
	_, _ = rand.Read(b) // never fails (crypto/rand panics instead)
	return prefix + hex.EncodeToString(b)
}

// initialNS is the namespace the test binary started in, taken during
// package init, when the main goroutine is locked to the main thread and
// no test has moved any thread yet. Veths are never made in it.
var initialNS = func() netns.NsHandle {
	ns, err := netns.Get()
	if err != nil {
		return netns.None()
	}
	return ns
}()

// Netns is a named network namespace made for one test and deleted when
// the test ends.
type Netns struct {
	Name   string
	Handle netns.NsHandle
	// Netlink acts in the namespace from any thread.
	Netlink *netlink.Handle
}

// NewNetns creates the namespace name (see UniqueName) without moving the
// calling thread into it. It is closed and deleted at cleanup.
func NewNetns(t testing.TB, name string) *Netns {
	t.Helper()
	var ns netns.NsHandle
	err := func() error {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			return fmt.Errorf("current netns: %w", err)
		}
		defer orig.Close()
		ns, err = netns.NewNamed(name) // moves this thread into it
		if err := netns.Set(orig); err != nil {
			// The thread is stuck elsewhere: it stays locked and dies
			// with the goroutine.
			return fmt.Errorf("return to the original netns: %w", err)
		}
		runtime.UnlockOSThread()
		return err
	}()
	if err != nil {
		t.Fatalf("create netns %s: %v", name, err)
	}
	return adopt(t, name, ns)
}

// EnterNetns creates the namespace name and moves the calling goroutine,
// locked to its thread, into it until the test ends. Subtests run on
// goroutines of their own, outside it: they call Enter.
func EnterNetns(t testing.TB, name string) *Netns {
	t.Helper()
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("current netns: %v", err)
	}
	ns, err := netns.NewNamed(name) // also enters it
	if err != nil {
		orig.Close()
		runtime.UnlockOSThread()
		t.Fatalf("create netns %s: %v", name, err)
	}
	t.Cleanup(func() { leave(t, orig) })
	return adopt(t, name, ns)
}

// Enter moves the calling goroutine, locked to its thread, into ns until
// the test ends.
func Enter(t testing.TB, ns netns.NsHandle) {
	t.Helper()
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("current netns: %v", err)
	}
	if err := netns.Set(ns); err != nil {
		orig.Close()
		runtime.UnlockOSThread()
		t.Fatalf("enter netns: %v", err)
	}
	t.Cleanup(func() { leave(t, orig) })
}

// leave moves the thread back to orig and unlocks it; a thread that cannot
// go back stays locked, so it dies with its goroutine.
func leave(t testing.TB, orig netns.NsHandle) {
	defer orig.Close()
	if err := netns.Set(orig); err != nil {
		t.Errorf("return to the original netns: %v", err)
		return
	}
	runtime.UnlockOSThread()
}

// adopt gives ns a netlink handle and deletes both at cleanup.
func adopt(t testing.TB, name string, ns netns.NsHandle) *Netns {
	t.Helper()
	n := &Netns{Name: name, Handle: ns}
	t.Cleanup(func() {
		if n.Netlink != nil {
			n.Netlink.Close()
		}
		ns.Close()
		if err := netns.DeleteNamed(name); err != nil {
			t.Errorf("delete netns %s: %v", name, err)
		}
	})
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		t.Fatalf("netlink handle in %s: %v", name, err)
	}
	n.Netlink = h
	return n
}

// Do runs fn on the calling goroutine's thread, locked, inside ns, and
// brings the thread back, also when fn ends the goroutine (t.FailNow).
// Sockets fn opens stay in ns whichever thread uses them later. A thread
// that cannot go back stays locked, so it dies with its goroutine.
func Do(ns netns.NsHandle, fn func() error) (err error) {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("current netns: %w", err)
	}
	defer orig.Close()
	if err := netns.Set(ns); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter netns: %w", err)
	}
	defer func() {
		if setErr := netns.Set(orig); setErr != nil {
			err = fmt.Errorf("return to the original netns: %w", setErr)
			return
		}
		runtime.UnlockOSThread()
	}()
	return fn()
}

// In is Do for a test: fn fails t itself; entering or leaving ns failing
// fails t too.
func In(t testing.TB, ns netns.NsHandle, fn func()) {
	t.Helper()
	if err := Do(ns, func() error { fn(); return nil }); err != nil {
		t.Fatal(err)
	}
}

// Go runs fn on a new goroutine whose thread is in ns and waits for it.
// The thread is never unlocked: it dies with the goroutine, so no other
// goroutine inherits the namespace.
func Go(ns netns.NsHandle, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := netns.Set(ns); err != nil {
			errc <- fmt.Errorf("enter netns: %w", err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}
