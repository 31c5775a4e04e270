package peer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// BridgeDevice is the Linux bridge the bridge system creates in HostNS.
const BridgeDevice = "br-bench"

// Bridge is the forwarding baseline: a Linux bridge over every guest port
// and the first uplink only. A bridge has no failover, and adding the
// second uplink would close a loop through the upstream bridge (which
// joins p0 and p1): broadcast frames would circle until STP blocked a port,
// and with STP the "failover" would take the STP timers (tens of seconds).
// So Active is always the first uplink and SwitchTimes is nil.
type Bridge struct {
	mu      sync.Mutex
	topo    Topology
	created bool     // BridgeDevice exists because Start made it
	raised  []string // ports Start set up that were down before
	uplink  string
}

// Name implements System.
func (b *Bridge) Name() string { return BridgeName }

// Start implements System.
func (b *Bridge) Start(ctx context.Context, t Topology) (err error) {
	if err := t.validate(false); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.created {
		return errors.New("bridge: already started")
	}
	b.topo, b.uplink, b.raised = t, t.Uplinks[0], nil
	h, err := nsHandle(t.HostNS)
	if err != nil {
		return fmt.Errorf("bridge: %w", err)
	}
	defer h.Close()
	if _, err := h.LinkByName(BridgeDevice); err == nil {
		return fmt.Errorf("bridge: %s already exists in %s (left over?)", BridgeDevice, t.HostNS)
	}
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: BridgeDevice}}
	if err := h.LinkAdd(br); err != nil {
		return fmt.Errorf("bridge: add %s in %s: %w", BridgeDevice, t.HostNS, err)
	}
	b.created = true
	defer func() {
		if err != nil {
			_ = b.stopLocked()
		}
	}()
	ports := append(append([]string{}, t.GuestPorts...), b.uplink)
	for _, name := range ports {
		l, err := h.LinkByName(name)
		if err != nil {
			return fmt.Errorf("bridge: port %s: %w", name, err)
		}
		if err := h.LinkSetMaster(l, br); err != nil {
			return fmt.Errorf("bridge: enslave %s: %w", name, err)
		}
		if l.Attrs().Flags&net.FlagUp == 0 {
			if err := h.LinkSetUp(l); err != nil {
				return fmt.Errorf("bridge: set %s up: %w", name, err)
			}
			b.raised = append(b.raised, name)
		}
	}
	if err := h.LinkSetUp(br); err != nil {
		return fmt.Errorf("bridge: set %s up: %w", BridgeDevice, err)
	}
	return waitFor(ctx, 10*time.Second, 20*time.Millisecond, func() (bool, error) {
		return bridgeForwarding(ctx, t.HostNS, ports)
	}, "bridge: ports of "+BridgeDevice+" forwarding")
}

// bridgeForwarding reports whether every port that has carrier is in the
// forwarding state (STP is off, so that is immediate once carrier is up).
// Ports without carrier cannot forward whatever the bridge does; waiting for
// them would only make Start hang.
func bridgeForwarding(ctx context.Context, ns string, ports []string) (bool, error) {
	out, err := run(ctx, nil, "bridge", "-n", ns, "-j", "link", "show")
	if err != nil {
		return false, err
	}
	var links []struct {
		IfName string   `json:"ifname"`
		Master string   `json:"master"`
		State  string   `json:"state"`
		Flags  []string `json:"flags"`
	}
	if err := json.Unmarshal([]byte(out), &links); err != nil {
		return false, fmt.Errorf("parse bridge -j link: %w", err)
	}
	found := 0
	for _, l := range links {
		if l.Master != BridgeDevice || !slices.Contains(ports, l.IfName) {
			continue
		}
		found++
		if slices.Contains(l.Flags, "LOWER_UP") && l.State != "forwarding" {
			return false, nil
		}
	}
	return found == len(ports), nil
}

// Active implements System: the bridge only ever has the first uplink.
func (b *Bridge) Active(context.Context) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.created {
		return "", errors.New("bridge: not started")
	}
	return b.uplink, nil
}

// SwitchTimes implements System: a bridge never switches.
func (b *Bridge) SwitchTimes(context.Context) ([]time.Time, error) { return nil, nil }

// Stop implements System.
func (b *Bridge) Stop() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.stopLocked()
}

func (b *Bridge) stopLocked() error {
	if !b.created {
		return nil
	}
	h, err := nsHandle(b.topo.HostNS)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			// The namespace is gone and the bridge with it.
			b.created, b.raised = false, nil
			return nil
		}
		return fmt.Errorf("bridge: stop: %w", err)
	}
	defer h.Close()
	var errs []error
	if l, err := h.LinkByName(BridgeDevice); err == nil {
		// Deleting the bridge releases its ports.
		if err := h.LinkDel(l); err != nil {
			errs = append(errs, fmt.Errorf("delete %s: %w", BridgeDevice, err))
		}
	}
	for _, name := range b.raised {
		if l, err := h.LinkByName(name); err == nil {
			if err := h.LinkSetDown(l); err != nil {
				errs = append(errs, fmt.Errorf("set %s down again: %w", name, err))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("bridge: stop: %w", err)
	}
	b.created, b.raised = false, nil
	return nil
}

// Versions implements System.
func (b *Bridge) Versions() map[string]string {
	v := map[string]string{"kernel": kernelRelease()}
	if out, err := run(context.Background(), nil, "bridge", "-V"); err == nil {
		v["iproute2"] = strings.TrimSpace(out)
	}
	return v
}

// probeBridge creates a bridge in a throwaway namespace: the one check that
// covers a kernel without bridge support and a missing module alike.
func probeBridge() error {
	if _, err := exec.LookPath("bridge"); err != nil {
		return fmt.Errorf("bridge: iproute2's bridge command: %w", err)
	}
	errc := make(chan error, 1)
	go func() {
		// The thread enters a new namespace and is never handed back to the
		// scheduler: returning while locked makes the runtime end it.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("bridge: new network namespace: %w", err)
			return
		}
		err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "probe"}})
		if err != nil {
			err = fmt.Errorf("bridge: kernel cannot create a bridge: %w", err)
		}
		errc <- err
	}()
	return <-errc
}

// nsHandle is a netlink handle working inside the named namespace.
func nsHandle(name string) (*netlink.Handle, error) {
	ns, err := netns.GetFromName(name)
	if err != nil {
		return nil, fmt.Errorf("namespace %s: %w", name, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink in %s: %w", name, err)
	}
	return h, nil
}

func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}
