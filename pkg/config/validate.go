package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/uplinkd/uplinkd/pkg/limits"
)

// The file* types mirror the YAML file. Optional values are pointers so that
// "absent" (use the default) differs from an explicit zero, which is valid for
// several fields (priority 0, announce count 0, poll interval 0).
type fileConfig struct {
	PinPath             *string       `yaml:"pin_path"`
	ControlSocket       *string       `yaml:"control_socket"`
	MetricsListen       *string       `yaml:"metrics_listen"`
	CarrierPollInterval *fileDuration `yaml:"carrier_poll_interval"`
	AnnounceRateLimit   *fileInt      `yaml:"announce_rate_limit"`
	AnnounceBurst       *fileInt      `yaml:"announce_burst"`
	LogLevel            *string       `yaml:"log_level"`
	Groups              []fileGroup   `yaml:"groups"`
}

type fileGroup struct {
	Name       string          `yaml:"name"`
	Mode       *string         `yaml:"mode"`
	Rebalance  *fileRebalance  `yaml:"rebalance"`
	Failback   *bool           `yaml:"failback"`
	UpDelay    *fileDuration   `yaml:"up_delay"`
	DownDelay  *fileDuration   `yaml:"down_delay"`
	Announce   *fileAnnounce   `yaml:"announce"`
	Probe      *fileProbe      `yaml:"probe"`
	GuestPorts []fileGuestPort `yaml:"guest_ports"`
	HostPorts  []fileHostPort  `yaml:"host_ports"`
	Uplinks    []fileUplink    `yaml:"uplinks"`
}

type fileHostPort struct {
	Name string   `yaml:"name"`
	VLAN *fileInt `yaml:"vlan"`
	MAC  *string  `yaml:"mac"`
	MTU  *fileInt `yaml:"mtu"`
}

// fileGuestPort is a name (a trunk: tags pass) or {name, vlan} (an access
// port) or {name, trunk: [VLANs]} (a trunk carrying only those); with
// match instead of name, a profile for every interface the pattern
// matches.
type fileGuestPort struct {
	Name             string
	Match            *string
	VLAN             *fileInt
	Trunk            []fileInt
	AnnouncePriority *fileInt
	MaxMACs          *fileInt
	MACLock          *bool
}

func (g *fileGuestPort) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		g.Name = n.Value
		return nil
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if k := n.Content[i]; !slices.Contains(guestPortFields, k.Value) {
				return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: field %s not found in type config.guestPort (%s)", k.Line, k.Value, strings.Join(guestPortFields, ", "))}}
			}
		}
		var aux struct {
			Name             string    `yaml:"name"`
			Match            *string   `yaml:"match"`
			VLAN             *fileInt  `yaml:"vlan"`
			Trunk            []fileInt `yaml:"trunk"`
			AnnouncePriority *fileInt  `yaml:"announce_priority"`
			MaxMACs          *fileInt  `yaml:"max_macs"`
			MACLock          *bool     `yaml:"mac_lock"`
		}
		if err := n.Decode(&aux); err != nil {
			return err
		}
		g.Name, g.Match, g.VLAN, g.Trunk, g.AnnouncePriority = aux.Name, aux.Match, aux.VLAN, aux.Trunk, aux.AnnouncePriority
		g.MaxMACs, g.MACLock = aux.MaxMACs, aux.MACLock
		return nil
	}
	return typeMismatch(n, "guest port (a name, or a mapping of "+strings.Join(guestPortFields, ", ")+")")
}

// guestPortFields are the keys of a guest port's mapping form.
var guestPortFields = []string{"name", "match", "vlan", "trunk", "announce_priority", "max_macs", "mac_lock"}

type fileProbe struct {
	Targets  []string      `yaml:"targets"`
	Interval *fileDuration `yaml:"interval"`
	Missed   *fileInt      `yaml:"missed"`
	Source   *string       `yaml:"source"`
}

type fileRebalance struct {
	Interval   *fileDuration `yaml:"interval"`
	MaxBuckets *fileInt      `yaml:"max_buckets"`
}

type fileAnnounce struct {
	Count    *fileInt      `yaml:"count"`
	Interval *fileDuration `yaml:"interval"`
}

type fileUplink struct {
	Name     string   `yaml:"name"`
	Priority *fileInt `yaml:"priority"`
	State    *string  `yaml:"state"`
}

// fileDuration keeps a duration's text until validation, which knows the
// field's path and so can name it in the error.
type fileDuration struct {
	text string
}

func (d *fileDuration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return typeMismatch(n, "duration")
	}
	d.text = n.Value
	return nil
}

// fileInt accepts only YAML integers: the yaml package would silently
// truncate 1.5 to 1 in a plain int.
type fileInt int

func (i *fileInt) UnmarshalYAML(n *yaml.Node) error {
	var v int
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&v) != nil {
		return typeMismatch(n, "int")
	}
	*i = fileInt(v)
	return nil
}

// typeMismatch reports a value of the wrong type in the yaml package's own
// words, so that explainYAMLError rewrites it like the package's errors.
func typeMismatch(n *yaml.Node, into string) error {
	value := ""
	if n.Kind == yaml.ScalarNode {
		value = n.Value
		if len(value) > 10 {
			value = value[:7] + "..."
		}
		value = " `" + value + "`"
	}
	return &yaml.TypeError{Errors: []string{
		fmt.Sprintf("line %d: cannot unmarshal %s%s into %s", n.Line, n.ShortTag(), value, into),
	}}
}

// validator collects every problem instead of stopping at the first.
type validator struct {
	errs []error
}

func (v *validator) errorf(path, format string, args ...any) {
	v.errs = append(v.errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
}

func (v *validator) intRange(path string, p *fileInt, def, lo, hi int) int {
	if p == nil {
		return def
	}
	val := int(*p)
	if val < lo || val > hi {
		v.errorf(path, "must be between %d and %d, got %d", lo, hi, val)
	}
	return val
}

// duration parses a Go duration string. zeroOK admits 0 below lo (used for
// "0 disables").
func (v *validator) duration(path string, d *fileDuration, def, lo, hi time.Duration, zeroOK bool) time.Duration {
	if d == nil {
		return def
	}
	val, err := time.ParseDuration(d.text)
	if err != nil {
		v.errorf(path, "%q is not a duration (use e.g. \"100ms\", \"1s\")", d.text)
		return def
	}
	if zeroOK && val == 0 {
		return 0
	}
	if val < lo || val > hi {
		if zeroOK && lo > 0 {
			v.errorf(path, "must be 0 (disabled) or between %v and %v, got %v", lo, hi, val)
		} else {
			v.errorf(path, "must be between %v and %v, got %v", lo, hi, val)
		}
	}
	return val
}

func (v *validator) oneOf(path string, p *string, def string, allowed []string) string {
	if p == nil {
		return def
	}
	if !slices.Contains(allowed, *p) {
		v.errorf(path, "%q is not one of %s", *p, strings.Join(allowed, ", "))
		return def
	}
	return *p
}

func (v *validator) absPath(path string, p *string, def string, maxLen int) string {
	if p == nil {
		return def
	}
	switch {
	case !filepath.IsAbs(*p):
		v.errorf(path, "must be an absolute path, got %q", *p)
	case maxLen > 0 && len(*p) > maxLen:
		v.errorf(path, "must be at most %d bytes long (unix socket path), got %d", maxLen, len(*p))
	}
	return *p
}

var logLevels = map[string]slog.Level{
	"debug": slog.LevelDebug,
	"info":  slog.LevelInfo,
	"warn":  slog.LevelWarn,
	"error": slog.LevelError,
}

func (raw *fileConfig) validate() (*Config, error) {
	var v validator
	cfg := &Config{
		PinPath:       v.absPath("pin_path", raw.PinPath, limits.DefaultPinPath, 0),
		ControlSocket: v.absPath("control_socket", raw.ControlSocket, DefaultControlSocket, maxUnixPath),
		CarrierPollInterval: v.duration("carrier_poll_interval", raw.CarrierPollInterval,
			DefaultCarrierPollInterval, MinCarrierPollInterval, MaxCarrierPollInterval, true),
		AnnounceRateLimit: v.intRange("announce_rate_limit", raw.AnnounceRateLimit,
			DefaultAnnounceRateLimit, 1, MaxAnnounceRateLimit),
		AnnounceBurst: v.intRange("announce_burst", raw.AnnounceBurst,
			DefaultAnnounceBurst, 1, MaxAnnounceBurst),
		LogLevel: DefaultLogLevel,
	}
	if raw.MetricsListen != nil {
		addr, err := metricsAddr(*raw.MetricsListen)
		if err != nil {
			v.errorf("metrics_listen", "%v", err)
		}
		cfg.MetricsListen = addr
	}
	if raw.LogLevel != nil {
		if lvl, ok := logLevels[*raw.LogLevel]; ok {
			cfg.LogLevel = lvl
		} else {
			v.errorf("log_level", "must be one of debug, info, warn, error, got %q", *raw.LogLevel)
		}
	}

	switch n := len(raw.Groups); {
	case n == 0:
		v.errorf("groups", "at least one group is required")
	case n > limits.MaxGroups:
		v.errorf("groups", "at most %d groups are allowed, got %d", limits.MaxGroups, n)
	}

	groupNames := map[string]string{} // group name -> path
	interfaces := map[string]string{} // interface name -> path of its first use
	patterns := map[string]string{}   // guest port pattern -> path
	useInterface := func(path, name string) {
		if err := CheckIfName(name); err != nil {
			v.errorf(path, "%v", err)
			return
		}
		if first, dup := interfaces[name]; dup {
			v.errorf(path, "interface %q is already used at %s; an interface may appear only once in the file", name, first)
			return
		}
		interfaces[name] = path
	}
	total := 0
	for i, rg := range raw.Groups {
		gp := fmt.Sprintf("groups[%d]", i)
		g := Group{
			Name:     rg.Name,
			Failback: DefaultFailback,
			Announce: Announce{Count: DefaultAnnounceCount, Interval: DefaultAnnounceInterval},
		}
		if err := checkGroupName(rg.Name); err != nil {
			v.errorf(gp+".name", "%v", err)
		} else if first, dup := groupNames[rg.Name]; dup {
			v.errorf(gp+".name", "%q is used by %s too", rg.Name, first)
		} else {
			groupNames[rg.Name] = gp
		}
		g.Mode = v.oneOf(gp+".mode", rg.Mode, ModeActiveBackup, Modes)
		if r := rg.Rebalance; r != nil {
			if g.Mode != ModeBalance {
				v.errorf(gp+".rebalance", "needs mode: balance")
			}
			g.Rebalance = Rebalance{
				Interval:   v.duration(gp+".rebalance.interval", r.Interval, 0, MinRebalanceInterval, MaxRebalanceInterval, true),
				MaxBuckets: v.intRange(gp+".rebalance.max_buckets", r.MaxBuckets, DefaultRebalanceBuckets, 1, limits.Buckets),
			}
		}
		if rg.Failback != nil {
			g.Failback = *rg.Failback
		}
		g.UpDelay = v.duration(gp+".up_delay", rg.UpDelay, 0, 0, MaxHoldDelay, true)
		g.DownDelay = v.duration(gp+".down_delay", rg.DownDelay, 0, 0, MaxHoldDelay, true)
		if a := rg.Announce; a != nil {
			g.Announce.Count = v.intRange(gp+".announce.count", a.Count, DefaultAnnounceCount, 0, MaxAnnounceCount)
			g.Announce.Interval = v.duration(gp+".announce.interval", a.Interval,
				DefaultAnnounceInterval, MinAnnounceInterval, MaxAnnounceInterval, false)
		}

		if rp := rg.Probe; rp != nil {
			pp := gp + ".probe"
			pr := &Probe{
				Interval: v.duration(pp+".interval", rp.Interval, DefaultProbeInterval, MinProbeInterval, MaxProbeInterval, false),
				Missed:   v.intRange(pp+".missed", rp.Missed, DefaultProbeMissed, 1, MaxProbeMissed),
			}
			switch n := len(rp.Targets); {
			case n == 0:
				v.errorf(pp+".targets", "at least one IPv4 or IPv6 address is required")
			case n > MaxProbeTargets:
				v.errorf(pp+".targets", "at most %d targets are allowed, got %d", MaxProbeTargets, n)
			}
			for k, t := range rp.Targets {
				a, err := netip.ParseAddr(t)
				switch {
				case err != nil:
					v.errorf(fmt.Sprintf("%s.targets[%d]", pp, k), "%q is not an IP address", t)
				case a.IsUnspecified() || a.IsMulticast() || a.Zone() != "":
					v.errorf(fmt.Sprintf("%s.targets[%d]", pp, k), "%s: need a unicast address without zone", t)
				default:
					pr.Targets = append(pr.Targets, a.Unmap())
				}
			}
			if rp.Source != nil {
				a, err := netip.ParseAddr(*rp.Source)
				if err != nil || !a.Unmap().Is4() {
					v.errorf(pp+".source", "%q is not an IPv4 address", *rp.Source)
				} else {
					pr.Source = a.Unmap()
				}
			}
			g.Probe = pr
		}

		if n := len(rg.GuestPorts); n > limits.MaxGuestPorts {
			v.errorf(gp+".guest_ports", "at most %d guest ports are allowed per group, got %d", limits.MaxGuestPorts, n)
		}
		for j, rp := range rg.GuestPorts {
			pp := fmt.Sprintf("%s.guest_ports[%d]", gp, j)
			var match string
			switch {
			case rp.Match != nil && rp.Name != "":
				v.errorf(pp, "give name (one interface) or match (a pattern), not both")
			case rp.Match != nil:
				match = *rp.Match
				if err := checkPattern(match); err != nil {
					v.errorf(pp+".match", "%v", err)
				} else if first, dup := patterns[match]; dup {
					v.errorf(pp+".match", "pattern %q is already used at %s", match, first)
				} else {
					patterns[match] = pp + ".match"
				}
			default:
				useInterface(pp, rp.Name)
			}
			port := GuestPort{Name: rp.Name, Match: match, AnnouncePriority: v.intRange(pp+".announce_priority", rp.AnnouncePriority, 0, 0, MaxPriority)}
			if rp.VLAN != nil {
				port.VLAN = uint16(v.intRange(pp+".vlan", rp.VLAN, 0, 1, MaxVLAN))
			}
			port.MaxMACs = v.intRange(pp+".max_macs", rp.MaxMACs, DefaultMaxMACs, 0, MaxMaxMACs)
			if rp.MACLock != nil {
				port.MACLock = *rp.MACLock
			}
			if rp.VLAN != nil && rp.Trunk != nil {
				v.errorf(pp, "give vlan (an access port) or trunk (its VLANs), not both")
			}
			for k, id := range rp.Trunk {
				port.Trunk = append(port.Trunk, uint16(v.intRange(fmt.Sprintf("%s.trunk[%d]", pp, k), &id, 0, 1, MaxVLAN)))
			}
			if rp.Trunk != nil && len(rp.Trunk) == 0 {
				v.errorf(pp+".trunk", "lists no VLAN; leave it out to carry every VLAN")
			}
			g.GuestPorts = append(g.GuestPorts, port)
		}

		for j, rh := range rg.HostPorts {
			hp := fmt.Sprintf("%s.host_ports[%d]", gp, j)
			port := HostPort{Name: rh.Name}
			if err := CheckIfName(rh.Name); err != nil {
				v.errorf(hp+".name", "%v", err)
			} else {
				useInterface(hp+".name", rh.Name)
				port.SwitchEnd = SwitchEnd(rh.Name)
				useInterface(hp+".name (its switch end)", port.SwitchEnd)
			}
			if rh.VLAN != nil {
				port.VLAN = uint16(v.intRange(hp+".vlan", rh.VLAN, 0, 1, MaxVLAN))
			}
			if rh.MTU != nil {
				port.MTU = v.intRange(hp+".mtu", rh.MTU, 0, MinMTU, MaxMTU)
			}
			if rh.MAC != nil {
				mac, err := parseHostMAC(*rh.MAC)
				if err != nil {
					v.errorf(hp+".mac", "%v", err)
				}
				port.MAC = mac
			} else {
				port.MAC = DeriveMAC(rg.Name, rh.Name)
			}
			g.HostPorts = append(g.HostPorts, port)
		}
		if n := len(rg.GuestPorts) + len(rg.HostPorts); n > limits.MaxGuestPorts && len(rg.GuestPorts) <= limits.MaxGuestPorts {
			v.errorf(gp+".host_ports", "guest ports and host ports: at most %d are allowed per group, got %d", limits.MaxGuestPorts, n)
		}

		switch n := len(rg.Uplinks); {
		case n == 0:
			v.errorf(gp+".uplinks", "at least one uplink is required")
		case n > limits.MaxUplinks:
			v.errorf(gp+".uplinks", "at most %d uplinks are allowed per group, got %d", limits.MaxUplinks, n)
		}
		for j, ru := range rg.Uplinks {
			up := fmt.Sprintf("%s.uplinks[%d]", gp, j)
			useInterface(up+".name", ru.Name)
			g.Uplinks = append(g.Uplinks, Uplink{
				Name:     ru.Name,
				Priority: v.intRange(up+".priority", ru.Priority, DefaultPriority, 0, MaxPriority),
				State:    v.oneOf(up+".state", ru.State, DefaultUplinkState, UplinkStates),
			})
		}
		total += len(rg.GuestPorts) + len(rg.HostPorts) + len(rg.Uplinks)
		cfg.Groups = append(cfg.Groups, g)
	}
	if total > limits.MaxPorts {
		v.errorf("groups", "at most %d interfaces (guest ports, host ports and uplinks of all groups) are allowed, got %d", limits.MaxPorts, total)
	}

	if len(v.errs) > 0 {
		return nil, errors.Join(v.errs...)
	}
	return cfg, nil
}

// metricsAddr turns metrics_listen into a listen address: a port alone
// ("9477" or ":9477") listens on localhost only, since the metrics show
// the host's guests; a host must be given to listen elsewhere.
func metricsAddr(s string) (string, error) {
	if s == "" {
		return "", nil // off
	}
	if !strings.Contains(s, ":") {
		s = ":" + s
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", fmt.Errorf("%q is not host:port or a port: %v", s, err)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("%q: port %q is not a number from 1 to 65535", s, port)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), nil
}

// checkPattern accepts a path.Match pattern that could match an interface
// name: the characters CheckIfName allows, plus the pattern's own.
func checkPattern(p string) error {
	if p == "" {
		return errors.New("pattern is required")
	}
	if len(p) > 64 {
		return fmt.Errorf("pattern %q is longer than 64 bytes", p)
	}
	if _, err := path.Match(p, ""); err != nil {
		return fmt.Errorf("pattern %q: %v (use *, ? and [a-z] as in shell globs)", p, err)
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; badIfNameByte(c) {
			return fmt.Errorf("pattern %q contains %q, which no interface name has", p, c)
		}
	}
	return nil
}

func checkGroupName(name string) error {
	if name == "" {
		return errors.New("is required")
	}
	if len(name) > limits.MaxGroupNameLen {
		return fmt.Errorf("%q is longer than %d characters", name, limits.MaxGroupNameLen)
	}
	for _, c := range name {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '_' || c == '.' || c == '-'
		if !ok {
			return fmt.Errorf("%q contains %q; allowed are letters, digits, '_', '.' and '-'", name, c)
		}
	}
	return nil
}

// CheckIfName applies the kernel's rules for interface names (dev_valid_name:
// shorter than IFNAMSIZ, not "." or "..", no '/', ':' or whitespace) and
// also refuses control characters, which cannot be a real NIC's name and
// would garble logs.
func CheckIfName(name string) error {
	switch {
	case name == "":
		return errors.New("interface name is required")
	case len(name) > MaxIfNameLen:
		return fmt.Errorf("interface name %q is longer than %d bytes", name, MaxIfNameLen)
	case name == "." || name == "..":
		return fmt.Errorf("interface name %q is not allowed", name)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; badIfNameByte(c) {
			return fmt.Errorf("interface name %q contains %q; '/', ':', whitespace and control characters are not allowed", name, c)
		}
	}
	return nil
}

// badIfNameByte is a byte no interface name has. Bytes, not runes: the
// kernel checks bytes (its isspace also matches 0xa0, Latin-1 no-break
// space).
func badIfNameByte(c byte) bool {
	return c == '/' || c == ':' || c <= ' ' || c == 0x7f || c == 0xa0
}
