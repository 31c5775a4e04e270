// Package config loads the uplinkd YAML configuration.
//
// Decoding is strict: unknown keys, duplicate keys, values of the wrong type
// and values out of range are all errors, and every error names the field by
// its path (e.g. "groups[0].uplinks[1].priority") so a typo is found at once
// instead of silently falling back to a default.
package config

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/uplinkd/uplinkd/pkg/limits"
)

// DefaultPath is where uplinkd looks for its configuration file.
const DefaultPath = "/etc/uplinkd/uplinkd.yaml"

// Example is a commented example configuration; Parse accepts it.
//
//go:embed example.yaml
var Example []byte

// Defaults and limits. Exported so that help texts and other packages quote
// the same numbers the validator enforces. The data plane's own limits
// (groups, uplinks, ports, name length) and the default pin path are
// pkg/limits'.
const (
	DefaultControlSocket       = "/run/uplinkd/uplinkd.sock"
	DefaultCarrierPollInterval = 500 * time.Microsecond
	DefaultAnnounceRateLimit   = 2000
	DefaultAnnounceBurst       = 256
	DefaultLogLevel            = slog.LevelInfo
	DefaultFailback            = true
	DefaultAnnounceCount       = 3
	DefaultAnnounceInterval    = 100 * time.Millisecond
	DefaultPriority            = 100
	DefaultUplinkState         = "usable"
	// MaxHoldDelay bounds up_delay and down_delay (default 0: none).
	MaxHoldDelay = 10 * time.Minute

	DefaultProbeInterval = 100 * time.Millisecond
	DefaultProbeMissed   = 3
	MinProbeInterval     = 10 * time.Millisecond
	MaxProbeInterval     = 10 * time.Second
	MaxProbeMissed       = 100
	MaxProbeTargets      = 16

	// MinCarrierPollInterval keeps a non-zero poll interval from turning
	// the backstop poll into a busy loop.
	MinCarrierPollInterval = 100 * time.Microsecond
	MaxCarrierPollInterval = time.Second
	MaxAnnounceRateLimit   = 1_000_000
	MaxAnnounceBurst       = 100_000
	MaxAnnounceCount       = 100
	MinAnnounceInterval    = time.Millisecond
	MaxAnnounceInterval    = 60 * time.Second
	MaxPriority            = 65535
	MaxVLAN                = 4094
	MaxIfNameLen           = 15 // IFNAMSIZ - 1
	// A host port's MTU: IPv4's minimum up to a veth's largest.
	MinMTU = 68
	MaxMTU = 65535

	// maxFileSize bounds what Load reads; a real config is a few KiB.
	maxFileSize = 1 << 20
	// maxUnixPath is sizeof(sockaddr_un.sun_path) minus the terminating NUL.
	maxUnixPath = 107
)

// Rebalance is a balance group's periodic rebalancing.
type Rebalance struct {
	Interval   time.Duration
	MaxBuckets int
}

// Guest port learning limit: the default and the largest (the FDB's size).
const (
	DefaultMaxMACs = 1024
	MaxMaxMACs     = limits.FDBEntries
)

// Rebalancing limits and default.
const (
	MinRebalanceInterval    = 100 * time.Millisecond
	MaxRebalanceInterval    = time.Hour
	DefaultRebalanceBuckets = 4
)

// Group modes: every guest through the active uplink, or each guest
// through the uplink of its bucket (all usable uplinks carry traffic).
const (
	ModeActiveBackup = "active-backup"
	ModeBalance      = "balance"
)

// Modes are the group modes.
var Modes = []string{ModeActiveBackup, ModeBalance}

// UplinkStates are the admin states an uplink may be given: usable,
// standby (used only when no usable uplink is left) and disabled (never).
var UplinkStates = []string{"usable", "standby", "disabled"}

// Config is a validated configuration with all defaults applied.
type Config struct {
	PinPath       string // bpffs directory for pinned maps and links
	ControlSocket string // unix socket of the control API
	// MetricsListen is where Prometheus metrics are served (host:port);
	// "" (the default): not at all.
	MetricsListen string
	// CarrierPollInterval is the period of the backstop poll of the active
	// uplink's carrier in /sys; 0 disables the poll.
	CarrierPollInterval time.Duration
	AnnounceRateLimit   int // frames per second over all groups
	AnnounceBurst       int // token bucket burst
	LogLevel            slog.Level
	Groups              []Group
}

// Group is one virtual switch: guest ports plus an ordered set of uplinks.
type Group struct {
	Name string
	// Mode is ModeActiveBackup or ModeBalance. In balance mode each guest
	// (source MAC and VLAN) is pinned to one usable uplink through a
	// bucket; only a failed uplink's guests move; the active uplink is
	// the designated one that delivers broadcasts from upstream.
	Mode string
	// Rebalance, in balance mode: every Interval (0: never, the default)
	// move up to MaxBuckets buckets from the busiest uplink to the least
	// busy, by the guests' traffic over the interval.
	Rebalance Rebalance
	// Failback makes a recovered uplink with a better (lower) priority
	// take over again from the active one.
	Failback bool
	// UpDelay: a recovered uplink is used only after its carrier stayed up
	// this long. DownDelay: a carrier loss must last this long before the
	// group fails over (the in-kernel failover paths then stand aside).
	UpDelay, DownDelay time.Duration
	Announce           Announce
	// Probe checks the path behind every uplink; nil: carrier only.
	Probe      *Probe
	GuestPorts []GuestPort
	// HostPorts are the host's own interfaces on the switch.
	HostPorts []HostPort
	// Uplinks are in configuration order; an uplink's index is its slot.
	Uplinks []Uplink
}

// Probe is a group's path probing: ARP requests (IPv4 targets) and
// neighbour solicitations (IPv6 targets) from every uplink each Interval;
// an uplink with no valid reply from any target for Missed intervals in a
// row is not used even with carrier.
type Probe struct {
	Targets  []netip.Addr
	Interval time.Duration
	Missed   int
	Source   netip.Addr // IPv4 source of ARP requests; zero value: 0.0.0.0 (an ARP probe)
}

// Announce controls the guest announcements sent after a failover.
type Announce struct {
	Count    int // rounds per failover; 0 = never announce
	Interval time.Duration
}

// GuestPort is one guest interface. With VLAN set it is an access port:
// its frames are untagged at the guest and carry VLAN on the uplinks.
// Otherwise it is a trunk: tags pass; with Trunk set only those VLANs
// (and untagged frames).
//
// AnnouncePriority orders announcements: the guests behind a port with a
// higher one are announced first in every round, so when the rate cap
// throttles a large announcement they do not wait.
//
// With Match set (and Name empty) the entry is a port profile: every
// interface whose name matches the pattern (path.Match: vnet*, tap[0-9]*)
// becomes a guest port with these settings when it appears, and stops
// being one when it goes. Named ports and uplinks are never taken by a
// pattern; of the patterns, the first in file order (groups in order)
// wins.
type GuestPort struct {
	Name  string
	Match string
	// MaxMACs bounds the guest MACs learned behind the port (0: none), so
	// a guest spraying source MACs cannot evict the others' FDB entries;
	// MACLock keeps the MACs learned behind it from being learned behind
	// another port (a guest spoofing another's MAC).
	MaxMACs          int
	MACLock          bool
	VLAN             uint16
	Trunk            []uint16
	AnnouncePriority int
}

// ProfileFor finds the guest port profile whose pattern matches ifname,
// and its group's name. Interfaces named anywhere in the file are never
// matched, nor names that are not valid interface names.
func (c *Config) ProfileFor(ifname string) (group string, profile GuestPort, ok bool) {
	if CheckIfName(ifname) != nil {
		return "", GuestPort{}, false
	}
	for _, g := range c.Groups {
		for _, u := range g.Uplinks {
			if u.Name == ifname {
				return "", GuestPort{}, false
			}
		}
		for _, p := range g.GuestPorts {
			if p.Name == ifname {
				return "", GuestPort{}, false
			}
		}
		for _, p := range g.HostPorts {
			if p.Name == ifname || p.SwitchEnd == ifname {
				return "", GuestPort{}, false
			}
		}
	}
	for _, g := range c.Groups {
		for _, p := range g.GuestPorts {
			if ok, _ := path.Match(p.Match, ifname); p.Match != "" && ok {
				p.Name = ifname
				return g.Name, p, true
			}
		}
	}
	return "", GuestPort{}, false
}

// GuestPatterns are the guest port patterns of every group.
func (c *Config) GuestPatterns() []string {
	var out []string
	for _, g := range c.Groups {
		out = append(out, g.Patterns()...)
	}
	return out
}

// Patterns are the group's guest port patterns, in file order.
func (g Group) Patterns() []string {
	var out []string
	for _, p := range g.GuestPorts {
		if p.Match != "" {
			out = append(out, p.Match)
		}
	}
	return out
}

// HostPort is an interface of the host's own network stack on the
// switch: a veth pair whose end Name the host uses (the operator gives it
// its addresses) and whose end SwitchEnd is a port of the switch, like a
// guest port (an access port when VLAN is set, else untagged and tagged
// frames pass). uplinkd creates the pair when it is missing, with MAC and
// MTU (0: the kernel's default), and never deletes it.
type HostPort struct {
	Name      string
	SwitchEnd string // SwitchEnd(Name)
	VLAN      uint16
	// MAC is the configured address, or DeriveMAC's: stable across
	// restarts and reboots, so DHCP leases and upstream tables stay valid.
	MAC net.HardwareAddr
	MTU int
}

// SwitchEnd names the switch's end of host port name's veth pair:
// name + "-sw" when that fits an interface name (name up to 12 bytes),
// else the first 8 bytes of name, "-" and 6 hex digits of a hash of the
// whole name (15 bytes), so two long names that share a start differ.
func SwitchEnd(name string) string {
	if len(name)+3 <= MaxIfNameLen {
		return name + "-sw"
	}
	sum := sha256.Sum256([]byte(name))
	return name[:8] + "-" + hex.EncodeToString(sum[:3])
}

// DeriveMAC is a host port's MAC when none is configured: from a hash of
// the group's and the port's names, locally administered and unicast.
func DeriveMAC(group, name string) net.HardwareAddr {
	sum := sha256.Sum256([]byte("uplinkd host port\x00" + group + "\x00" + name))
	mac := net.HardwareAddr(sum[:6:6])
	mac[0] = mac[0]&^0x01 | 0x02
	return mac
}

// parseHostMAC accepts a unicast Ethernet address other than zero.
func parseHostMAC(s string) (net.HardwareAddr, error) {
	mac, err := net.ParseMAC(s)
	switch {
	case err != nil || len(mac) != 6:
		return nil, fmt.Errorf("%q is not an Ethernet address (aa:bb:cc:dd:ee:ff)", s)
	case mac[0]&1 != 0:
		return nil, fmt.Errorf("%s is a multicast address; a port needs a unicast one", mac)
	case bytes.Equal(mac, make([]byte, 6)):
		return nil, fmt.Errorf("%s is the zero address", mac)
	}
	return mac, nil
}

// Uplink is one uplink interface of a group.
type Uplink struct {
	Name     string
	Priority int    // 0..65535, lower is preferred
	State    string // one of UplinkStates
}

// Load reads and parses the configuration file at path.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("load config %s: %w", path, err)
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("load config %s: file is larger than %d bytes", path, maxFileSize)
	}
	cfg, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// Parse decodes a YAML configuration, applies defaults and validates it.
// All problems found are reported together (joined with errors.Join).
func Parse(data []byte) (*Config, error) {
	var raw fileConfig
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	switch err := dec.Decode(&raw); {
	case errors.Is(err, io.EOF):
		return nil, errors.New("config is empty: at least one group is required")
	case err != nil:
		return nil, explainYAMLError(err, data)
	}
	// A second document would be ignored silently; refuse it instead.
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, explainYAMLError(err, data)
	default:
		return nil, fmt.Errorf("line %d: only one YAML document is allowed", extra.Line)
	}
	return raw.validate()
}
