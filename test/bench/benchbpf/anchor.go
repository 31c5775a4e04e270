package benchbpf

import (
	"errors"
	"fmt"
	"runtime"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// anchor keeps a program attached to an interface nobody sends to: the
// loopback device of a private, empty network namespace (generic XDP).
//
// Why: a test run with repeat > 1 adds the program to the kernel's XDP
// dispatcher before and removes it after, and each change rebuilds the
// dispatcher and waits for an RCU grace period: ~25 ms per run here,
// whatever the repeat count, which caps a paced sender at a few dozen runs
// a second. A program attached to a device stays in the dispatcher, so
// the test run only takes a reference: ~17 µs per run.
type anchor struct {
	ns   netns.NsHandle // keeps the namespace (and so lo) alive
	link link.Link
}

func newAnchor(prog *ebpf.Program) (*anchor, error) {
	type result struct {
		a   *anchor
		err error
	}
	done := make(chan result, 1)
	go func() {
		// Never unlocked: the thread leaves the process with this
		// goroutine instead of going back to the pool in another namespace.
		runtime.LockOSThread()
		a, err := anchorHere(prog)
		done <- result{a, err}
	}()
	r := <-done
	return r.a, r.err
}

// anchorHere moves the calling thread into a new namespace.
func anchorHere(prog *ebpf.Program) (*anchor, error) {
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		return nil, fmt.Errorf("anchor: private network namespace: %w", err)
	}
	ns, err := netns.Get()
	if err != nil {
		return nil, fmt.Errorf("anchor: open namespace: %w", err)
	}
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		ns.Close()
		return nil, fmt.Errorf("anchor: %w", err)
	}
	l, err := link.AttachXDP(link.XDPOptions{Program: prog, Interface: lo.Attrs().Index, Flags: link.XDPGenericMode})
	if err != nil {
		ns.Close()
		return nil, fmt.Errorf("anchor: attach to a private lo: %w", err)
	}
	return &anchor{ns: ns, link: l}, nil
}

func (a *anchor) close() error {
	return errors.Join(a.link.Close(), a.ns.Close())
}
