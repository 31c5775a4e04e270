// Package peer configures the systems the benchmark compares uplinkd with
// (Linux bridge and Open vSwitch's userspace datapath) inside the host
// namespace of a testbed the harness has built. Each system switches the
// guest ports and the uplinks; where it can, it keeps one uplink active and
// fails over to the next when the active one loses carrier.
//
// xdpfwd and uplinkd itself are run elsewhere: New and Available know only
// the systems in this package.
package peer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Topology is what the harness hands a system: where to configure it and
// which interfaces to switch.
type Topology struct {
	HostNS     string   // namespace name (ip netns); /run/netns/HostNS exists
	GuestPorts []string // in HostNS, e.g. vnet0, vnet1
	Uplinks    []string // in HostNS, in priority order: the first is preferred
	WorkDir    string   // private directory for pid files, sockets, logs
}

// System is one switch configuration under test.
type System interface {
	Name() string
	// Start configures the system in HostNS so that guest ports and uplinks
	// are switched, with an active-backup uplink choice where the system has
	// one. It returns when forwarding works.
	Start(ctx context.Context, t Topology) error
	// Active returns the uplink currently in use, if the system can tell
	// ("" otherwise).
	Active(ctx context.Context) (string, error)
	// SwitchTimes returns the wall-clock times at which the system switched
	// uplinks since Start, if it logs them; nil if unknown.
	SwitchTimes(ctx context.Context) ([]time.Time, error)
	// Stop undoes everything Start did and kills only the processes it
	// started, by PID. It is idempotent.
	Stop() error
	Versions() map[string]string
}

// Settings is implemented by systems that have tunables worth recording
// next to the results (bond parameters, CPU pinning).
type Settings interface {
	Settings() map[string]string
}

// Names of the systems this package provides.
const (
	BridgeName = "bridge"
	OVSName    = "ovs"
)

// Names lists the systems New accepts.
func Names() []string { return []string{BridgeName, OVSName} }

// New returns a fresh, unstarted system by name, with default settings.
func New(name string) (System, error) {
	switch name {
	case BridgeName:
		return &Bridge{}, nil
	case OVSName:
		return &OVS{}, nil
	}
	return nil, fmt.Errorf("peer: unknown system %q (have %s)", name, strings.Join(Names(), ", "))
}

// Available tells whether the named system can run on this machine and,
// when not, why (for "ovs" missing programs, with the command that installs
// them).
func Available(name string) (ok bool, reason string) {
	var err error
	switch name {
	case BridgeName:
		err = probeBridge()
	case OVSName:
		err = probeOVS()
	default:
		return false, fmt.Sprintf("peer: unknown system %q (have %s)", name, strings.Join(Names(), ", "))
	}
	if err != nil {
		return false, err.Error()
	}
	return true, ""
}

// validate checks the fields every system needs.
func (t Topology) validate(needWorkDir bool) error {
	var errs []error
	if t.HostNS == "" {
		errs = append(errs, errors.New("HostNS is empty"))
	} else if _, err := os.Stat(filepath.Join("/run/netns", t.HostNS)); err != nil {
		errs = append(errs, fmt.Errorf("host namespace: %w", err))
	}
	if len(t.GuestPorts) == 0 {
		errs = append(errs, errors.New("no guest ports"))
	}
	if len(t.Uplinks) == 0 {
		errs = append(errs, errors.New("no uplinks"))
	}
	seen := map[string]bool{}
	for _, n := range append(append([]string{}, t.GuestPorts...), t.Uplinks...) {
		if n == "" || seen[n] {
			errs = append(errs, fmt.Errorf("port name %q empty or repeated", n))
		}
		seen[n] = true
	}
	if needWorkDir && !filepath.IsAbs(t.WorkDir) {
		errs = append(errs, fmt.Errorf("WorkDir %q is not an absolute path", t.WorkDir))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("peer: topology: %w", err)
	}
	return nil
}
