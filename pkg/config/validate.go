package config

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"go.yaml.in/yaml/v3"
)

// The file* types mirror the YAML file. Optional values are pointers so that
// "absent" (use the default) differs from an explicit zero, which is valid for
// several fields (priority 0, announce count 0, poll interval 0).
type fileConfig struct {
	PinPath             *string       `yaml:"pin_path"`
	ControlSocket       *string       `yaml:"control_socket"`
	CarrierPollInterval *fileDuration `yaml:"carrier_poll_interval"`
	AnnounceRateLimit   *fileInt      `yaml:"announce_rate_limit"`
	AnnounceBurst       *fileInt      `yaml:"announce_burst"`
	LogLevel            *string       `yaml:"log_level"`
	Groups              []fileGroup   `yaml:"groups"`
}

type fileGroup struct {
	Name       string        `yaml:"name"`
	Failback   *bool         `yaml:"failback"`
	Announce   *fileAnnounce `yaml:"announce"`
	GuestPorts []string      `yaml:"guest_ports"`
	Uplinks    []fileUplink  `yaml:"uplinks"`
}

type fileAnnounce struct {
	Count    *fileInt      `yaml:"count"`
	Interval *fileDuration `yaml:"interval"`
}

type fileUplink struct {
	Name     string   `yaml:"name"`
	Priority *fileInt `yaml:"priority"`
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
		if zeroOK {
			v.errorf(path, "must be 0 (disabled) or between %v and %v, got %v", lo, hi, val)
		} else {
			v.errorf(path, "must be between %v and %v, got %v", lo, hi, val)
		}
	}
	return val
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
		PinPath:       v.absPath("pin_path", raw.PinPath, DefaultPinPath, 0),
		ControlSocket: v.absPath("control_socket", raw.ControlSocket, DefaultControlSocket, maxUnixPath),
		CarrierPollInterval: v.duration("carrier_poll_interval", raw.CarrierPollInterval,
			DefaultCarrierPollInterval, MinCarrierPollInterval, MaxCarrierPollInterval, true),
		AnnounceRateLimit: v.intRange("announce_rate_limit", raw.AnnounceRateLimit,
			DefaultAnnounceRateLimit, 1, MaxAnnounceRateLimit),
		AnnounceBurst: v.intRange("announce_burst", raw.AnnounceBurst,
			DefaultAnnounceBurst, 1, MaxAnnounceBurst),
		LogLevel: DefaultLogLevel,
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
	case n > MaxGroups:
		v.errorf("groups", "at most %d groups are allowed, got %d", MaxGroups, n)
	}

	groupNames := map[string]string{} // group name -> path
	interfaces := map[string]string{} // interface name -> path of its first use
	useInterface := func(path, name string) {
		if err := checkIfName(name); err != nil {
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
		if rg.Failback != nil {
			g.Failback = *rg.Failback
		}
		if a := rg.Announce; a != nil {
			g.Announce.Count = v.intRange(gp+".announce.count", a.Count, DefaultAnnounceCount, 0, MaxAnnounceCount)
			g.Announce.Interval = v.duration(gp+".announce.interval", a.Interval,
				DefaultAnnounceInterval, MinAnnounceInterval, MaxAnnounceInterval, false)
		}

		if n := len(rg.GuestPorts); n > MaxGuestPorts {
			v.errorf(gp+".guest_ports", "at most %d guest ports are allowed per group, got %d", MaxGuestPorts, n)
		}
		for j, name := range rg.GuestPorts {
			useInterface(fmt.Sprintf("%s.guest_ports[%d]", gp, j), name)
		}
		g.GuestPorts = rg.GuestPorts

		switch n := len(rg.Uplinks); {
		case n == 0:
			v.errorf(gp+".uplinks", "at least one uplink is required")
		case n > MaxUplinks:
			v.errorf(gp+".uplinks", "at most %d uplinks are allowed per group, got %d", MaxUplinks, n)
		}
		for j, ru := range rg.Uplinks {
			up := fmt.Sprintf("%s.uplinks[%d]", gp, j)
			useInterface(up+".name", ru.Name)
			g.Uplinks = append(g.Uplinks, Uplink{
				Name:     ru.Name,
				Priority: v.intRange(up+".priority", ru.Priority, DefaultPriority, 0, MaxPriority),
			})
		}
		total += len(rg.GuestPorts) + len(rg.Uplinks)
		cfg.Groups = append(cfg.Groups, g)
	}
	if total > MaxInterfaces {
		v.errorf("groups", "at most %d interfaces (guest ports and uplinks of all groups) are allowed, got %d", MaxInterfaces, total)
	}

	if len(v.errs) > 0 {
		return nil, errors.Join(v.errs...)
	}
	return cfg, nil
}

func checkGroupName(name string) error {
	if name == "" {
		return errors.New("is required")
	}
	if len(name) > MaxGroupNameLen {
		return fmt.Errorf("%q is longer than %d characters", name, MaxGroupNameLen)
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

// checkIfName applies the kernel's rules for interface names (dev_valid_name:
// shorter than IFNAMSIZ, not "." or "..", no '/', ':' or whitespace) and
// also refuses control characters, which cannot be a real NIC's name and
// would garble logs.
func checkIfName(name string) error {
	switch {
	case name == "":
		return errors.New("interface name is required")
	case len(name) > MaxIfNameLen:
		return fmt.Errorf("interface name %q is longer than %d bytes", name, MaxIfNameLen)
	case name == "." || name == "..":
		return fmt.Errorf("interface name %q is not allowed", name)
	}
	// Bytes, not runes: the kernel checks bytes (its isspace also matches
	// 0xa0, Latin-1 no-break space).
	for i := 0; i < len(name); i++ {
		if c := name[i]; c == '/' || c == ':' || c <= ' ' || c == 0x7f || c == 0xa0 {
			return fmt.Errorf("interface name %q contains %q; '/', ':', whitespace and control characters are not allowed", name, c)
		}
	}
	return nil
}
