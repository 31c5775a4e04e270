package config

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// defaults returns the Config that a file with only the given groups yields.
func defaults(groups ...Group) *Config {
	return &Config{
		PinPath:             "/sys/fs/bpf/uplinkd",
		ControlSocket:       "/run/uplinkd/uplinkd.sock",
		CarrierPollInterval: 500 * time.Microsecond,
		AnnounceRateLimit:   2000,
		AnnounceBurst:       256,
		LogLevel:            slog.LevelInfo,
		Groups:              groups,
	}
}

// group returns a group with default settings and the given uplinks at the
// default priority.
// guestPorts are trunk ports (names only).
func guestPorts(names ...string) []GuestPort {
	var out []GuestPort
	for _, n := range names {
		out = append(out, GuestPort{MaxMACs: 1024, Name: n})
	}
	return out
}

func group(name string, guests []string, uplinks ...string) Group {
	g := Group{
		Name:       name,
		Mode:       ModeActiveBackup,
		Failback:   true,
		Announce:   Announce{Count: 3, Interval: 100 * time.Millisecond},
		GuestPorts: guestPorts(guests...),
	}
	for _, u := range uplinks {
		g.Uplinks = append(g.Uplinks, Uplink{Name: u, Priority: 100, State: "usable"})
	}
	return g
}

// manyGroups renders n groups with one uplink and guestsEach guest ports.
func manyGroups(n, guestsEach int) string {
	var b strings.Builder
	b.WriteString("groups:\n")
	for i := range n {
		fmt.Fprintf(&b, "  - name: g%d\n    uplinks: [{name: up%d}]\n    guest_ports: [", i, i)
		for j := range guestsEach {
			if j > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "g%dp%d", i, j)
		}
		b.WriteString("]\n")
	}
	return b.String()
}

func TestParseGood(t *testing.T) {
	tests := []struct {
		name  string
		yaml  string
		want  *Config
		check func(t *testing.T, c *Config) // for configs too big to spell out
	}{
		{
			name: "minimal file gets every default",
			yaml: "groups:\n  - name: a\n    uplinks:\n      - name: eth1\n",
			want: defaults(group("a", nil, "eth1")),
		},
		{
			name: "everything explicit",
			yaml: `
pin_path: /sys/fs/bpf/other
control_socket: /tmp/u.sock
carrier_poll_interval: 250us
announce_rate_limit: 1000000
announce_burst: 1
log_level: debug
groups:
  - name: Tenant_A.1-x
    mode: balance
    failback: false
    up_delay: 10m
    down_delay: 200ms
    announce:
      count: 100
      interval: 60s
    guest_ports: [vnet0, vnet1]
    uplinks:
      - name: eth1
        priority: 65535
        state: standby
      - name: eth2
        priority: 20
        state: disabled
`,
			want: &Config{
				PinPath:             "/sys/fs/bpf/other",
				ControlSocket:       "/tmp/u.sock",
				CarrierPollInterval: 250 * time.Microsecond,
				AnnounceRateLimit:   1000000,
				AnnounceBurst:       1,
				LogLevel:            slog.LevelDebug,
				Groups: []Group{{
					Name:       "Tenant_A.1-x",
					Mode:       ModeBalance,
					Failback:   false,
					UpDelay:    10 * time.Minute,
					DownDelay:  200 * time.Millisecond,
					Announce:   Announce{Count: 100, Interval: time.Minute},
					GuestPorts: guestPorts("vnet0", "vnet1"),
					Uplinks:    []Uplink{{"eth1", 65535, "standby"}, {"eth2", 20, "disabled"}},
				}},
			},
		},
		{
			name: "explicit zeros are kept, not replaced by defaults",
			yaml: `
carrier_poll_interval: 0s
groups:
  - name: z
    announce: {count: 0, interval: 1ms}
    uplinks: [{name: eth1, priority: 0}]
`,
			want: func() *Config {
				c := defaults(Group{
					Name: "z", Mode: ModeActiveBackup, Failback: true,
					Announce: Announce{Count: 0, Interval: time.Millisecond},
					Uplinks:  []Uplink{{"eth1", 0, "usable"}},
				})
				c.CarrierPollInterval = 0
				return c
			}(),
		},
		{
			name: "bare 0 disables the carrier poll",
			yaml: "carrier_poll_interval: 0\ngroups: [{name: a, uplinks: [{name: e}]}]\n",
			want: func() *Config {
				c := defaults(group("a", nil, "e"))
				c.CarrierPollInterval = 0
				return c
			}(),
		},
		{
			name: "null values mean default",
			yaml: "pin_path:\nlog_level: ~\ngroups:\n  - name: a\n    failback:\n    announce:\n    uplinks: [{name: e, priority: null}]\n",
			want: defaults(group("a", nil, "e")),
		},
		{
			name: "announce with only count keeps the default interval",
			yaml: "groups: [{name: a, announce: {count: 5}, uplinks: [{name: e}]}]\n",
			want: func() *Config {
				g := group("a", nil, "e")
				g.Announce.Count = 5
				return defaults(g)
			}(),
		},
		{
			name: "probe with defaults and with everything given",
			yaml: "groups:\n  - {name: a, probe: {targets: [10.0.0.1]}, uplinks: [{name: e}]}\n" +
				"  - {name: b, probe: {targets: ['::ffff:10.0.0.2', 2001:db8::1], interval: 10s, missed: 100, source: 10.0.0.9}, uplinks: [{name: f}]}\n",
			want: func() *Config {
				a, b := group("a", nil, "e"), group("b", nil, "f")
				a.Probe = &Probe{Targets: []netip.Addr{netip.MustParseAddr("10.0.0.1")}, Interval: 100 * time.Millisecond, Missed: 3}
				b.Probe = &Probe{Targets: []netip.Addr{netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("2001:db8::1")},
					Interval: 10 * time.Second, Missed: 100, Source: netip.MustParseAddr("10.0.0.9")}
				return defaults(a, b)
			}(),
		},
		{
			name: "guest ports: trunk by name, access, trunk with a list",
			yaml: "groups:\n  - {name: a, guest_ports: [v0, {name: v1, vlan: 100, announce_priority: 65535}, {name: v2, trunk: [10, 4094]}], uplinks: [{name: e}]}\n",
			want: func() *Config {
				g := group("a", nil, "e")
				g.GuestPorts = []GuestPort{{MaxMACs: 1024, Name: "v0"}, {MaxMACs: 1024, Name: "v1", VLAN: 100, AnnouncePriority: 65535}, {MaxMACs: 1024, Name: "v2", Trunk: []uint16{10, 4094}}}
				return defaults(g)
			}(),
		},
		{
			name: "balance with rebalancing",
			yaml: "groups:\n  - {name: a, mode: balance, rebalance: {interval: 5s}, uplinks: [{name: e}, {name: f}]}\n",
			want: func() *Config {
				g := group("a", nil, "e", "f")
				g.Mode, g.Rebalance = ModeBalance, Rebalance{Interval: 5 * time.Second, MaxBuckets: 4}
				return defaults(g)
			}(),
		},
		{
			name: "guest port profiles by pattern",
			yaml: "groups:\n  - {name: a, guest_ports: [v0, {match: \"vnet*\", vlan: 10, announce_priority: 7}, {match: \"tap[0-9]*\", trunk: [20]}], uplinks: [{name: e}]}\n",
			want: func() *Config {
				g := group("a", nil, "e")
				g.GuestPorts = []GuestPort{{MaxMACs: 1024, Name: "v0"}, {MaxMACs: 1024, Match: "vnet*", VLAN: 10, AnnouncePriority: 7}, {MaxMACs: 1024, Match: "tap[0-9]*", Trunk: []uint16{20}}}
				return defaults(g)
			}(),
		},
		{
			name: "log levels",
			yaml: "log_level: warn\ngroups: [{name: a, uplinks: [{name: e}]}]\n",
			want: func() *Config {
				c := defaults(group("a", nil, "e"))
				c.LogLevel = slog.LevelWarn
				return c
			}(),
		},
		{
			name: "log level error, max poll interval",
			yaml: "log_level: error\ncarrier_poll_interval: 1s\ngroups: [{name: a, uplinks: [{name: e}]}]\n",
			want: func() *Config {
				c := defaults(group("a", nil, "e"))
				c.LogLevel = slog.LevelError
				c.CarrierPollInterval = time.Second
				return c
			}(),
		},
		{
			name: "two groups, empty guest list, interface names at the limits",
			yaml: `
groups:
  - name: abcdefghijklmnopqrstuvwxyz012345
    guest_ports: []
    uplinks: [{name: a}, {name: abcdefghijklmno}]
  - name: b
    guest_ports: [veth-é.1, "1"]
    uplinks: [{name: "x@y"}]
`,
			want: defaults(
				group("abcdefghijklmnopqrstuvwxyz012345", []string{}, "a", "abcdefghijklmno"),
				group("b", []string{"veth-é.1", "1"}, "x@y"),
			),
		},
		{
			name: "eight uplinks keep configuration order",
			yaml: "groups: [{name: a, uplinks: [{name: u0}, {name: u1}, {name: u2}, {name: u3}, {name: u4}, {name: u5}, {name: u6}, {name: u7}]}]\n",
			want: defaults(group("a", nil, "u0", "u1", "u2", "u3", "u4", "u5", "u6", "u7")),
		},
		{
			name: "64 groups and 1024 interfaces are allowed",
			yaml: manyGroups(64, 15), // 64 * (1 uplink + 15 guests) = 1024
			check: func(t *testing.T, c *Config) {
				if len(c.Groups) != 64 {
					t.Fatalf("got %d groups, want 64", len(c.Groups))
				}
				last := c.Groups[63]
				if last.Name != "g63" || last.Uplinks[0].Name != "up63" || len(last.GuestPorts) != 15 || last.GuestPorts[14].Name != "g63p14" {
					t.Errorf("last group = %+v", last)
				}
			},
		},
		{
			name: "200 guest ports in one group",
			yaml: manyGroups(1, 200),
			check: func(t *testing.T, c *Config) {
				if n := len(c.Groups[0].GuestPorts); n != 200 {
					t.Errorf("got %d guest ports, want 200", n)
				}
			},
		},
		{
			name: "anchors and aliases",
			yaml: `
groups:
  - name: a
    announce: &ann {count: 7, interval: 2s}
    uplinks: [{name: e1}]
  - name: b
    announce: *ann
    uplinks: [{name: e2}]
`,
			check: func(t *testing.T, c *Config) {
				want := Announce{Count: 7, Interval: 2 * time.Second}
				for _, g := range c.Groups {
					if g.Announce != want {
						t.Errorf("group %s announce = %+v, want %+v", g.Name, g.Announce, want)
					}
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse([]byte(tt.yaml))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if tt.check != nil {
				tt.check(t, got)
			}
			if tt.want != nil && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Parse =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func TestParseBad(t *testing.T) {
	const okGroup = "  - name: ok\n    uplinks: [{name: okup}]\n"
	tests := []struct {
		name string
		yaml string
		want []string // every string must occur in the error text
	}{
		{"empty file", "", []string{"empty"}},
		{"only comments", "# nothing\n\n", []string{"empty"}},
		{"no groups key", "log_level: info\n", []string{"groups: at least one group"}},
		{"empty groups", "groups: []\n", []string{"groups: at least one group"}},
		{"top level is a list", "- a\n", []string{"line 1", "expected a mapping"}},
		{"syntax error names its line", "groups:\n  - name: a\n    uplinks:\n      - name: e\n     priority: 3\n", []string{"invalid YAML: line 5"}},
		{"tab indentation", "groups:\n\t- name: a\n", []string{"invalid YAML: line 2"}},
		{"second document", "groups:\n" + okGroup + "---\ngroups: []\n", []string{"line 4", "only one YAML document"}},

		{"unknown top-level key", "pin-path: /x\ngroups:\n" + okGroup, []string{`line 1: unknown field "pin-path" at the top level`, "pin_path"}},
		{"unknown uplink key", "groups:\n" + okGroup + "  - name: b\n    uplinks:\n      - name: eth1\n        prio: 3\n",
			[]string{`line 7: unknown field "prio" in groups[1].uplinks[0]`, "known fields: name, priority"}},
		{"unknown group key", "groups:\n  - name: a\n    uplink: [{name: e}]\n", []string{`line 3: unknown field "uplink" in groups[0]`}},
		{"unknown announce key", "groups:\n  - name: a\n    announce: {rounds: 3}\n    uplinks: [{name: e}]\n", []string{`line 3: unknown field "rounds" in groups[0].announce`}},
		{"duplicate key", "groups:\n  - name: a\n    uplinks:\n      - name: e1\n        name: e2\n", []string{"line 5: groups[0].uplinks[0].name is given twice (first at line 4)"}},

		{"priority too big", "groups:\n  - name: a\n    uplinks: [{name: e1}, {name: e2, priority: 70000}]\n",
			[]string{"groups[0].uplinks[1].priority: must be between 0 and 65535, got 70000"}},
		{"negative priority", "groups: [{name: a, uplinks: [{name: e1, priority: -1}]}]\n", []string{"groups[0].uplinks[0].priority: must be between 0 and 65535, got -1"}},
		{"priority not a number", "groups:\n  - name: a\n    uplinks:\n      - name: e\n        priority: high\n",
			[]string{`line 5: groups[0].uplinks[0].priority: expected an integer, got "high"`}},
		{"priority is a float", "groups: [{name: a, uplinks: [{name: e, priority: 1.5}]}]\n", []string{"groups[0].uplinks[0].priority: expected an integer, got 1.5"}},
		{"priority quoted", "groups: [{name: a, uplinks: [{name: e, priority: '10'}]}]\n", []string{`groups[0].uplinks[0].priority: expected an integer, got "10"`}},
		{"priority overflows int", "groups:\n  - name: a\n    uplinks: [{name: e, priority: 123456789012345678901234}]\n", []string{"line 3: groups[0].uplinks[0].priority: expected an integer, got 1234567..."}},
		{"priority is a list", "groups: [{name: a, uplinks: [{name: e, priority: [1]}]}]\n", []string{"groups[0].uplinks[0].priority: expected an integer, got a list"}},
		{"count is a float", "groups: [{name: a, announce: {count: 2.0}, uplinks: [{name: e}]}]\n", []string{"groups[0].announce.count: expected an integer, got 2.0"}},
		{"flow style: list where a bool belongs", "groups: [{name: a, failback: [x], uplinks: [{name: e}]}]\n", []string{"line 1: groups[0].failback: expected true or false, got a list"}},
		{"flow style: mapping where the groups list belongs", "groups: {name: [1]}\n", []string{"line 1: groups: expected a list, got a mapping"}},
		{"flow style: unknown key", "groups: [{name: a, uplinks: [{name: e, weight: 1}]}]\n", []string{`line 1: unknown field "weight" in groups[0].uplinks[0]`}},
		{"failback not a bool", "groups:\n  - name: a\n    failback: maybe\n    uplinks: [{name: e}]\n", []string{`line 3: groups[0].failback: expected true or false, got "maybe"`}},
		{"guest_ports not a list", "groups:\n  - name: a\n    guest_ports: vnet0\n    uplinks: [{name: e}]\n", []string{`line 3: groups[0].guest_ports: expected a list, got "vnet0"`}},
		{"groups is a mapping", "groups:\n  name: a\n", []string{"line 2: groups: expected a list, got a mapping"}},

		{"rate limit 0", "announce_rate_limit: 0\ngroups:\n" + okGroup, []string{"announce_rate_limit: must be between 1 and 1000000, got 0"}},
		{"rate limit too big", "announce_rate_limit: 1000001\ngroups:\n" + okGroup, []string{"announce_rate_limit: must be between 1 and 1000000"}},
		{"burst 0", "announce_burst: 0\ngroups:\n" + okGroup, []string{"announce_burst: must be between 1 and 100000, got 0"}},
		{"burst too big", "announce_burst: 100001\ngroups:\n" + okGroup, []string{"announce_burst: must be between 1 and 100000, got 100001"}},
		{"bad log level", "log_level: verbose\ngroups:\n" + okGroup, []string{`log_level: must be one of debug, info, warn, error, got "verbose"`}},
		{"log level is case sensitive", "log_level: INFO\ngroups:\n" + okGroup, []string{"log_level: must be one of"}},
		{"relative pin path", "pin_path: bpf/uplinkd\ngroups:\n" + okGroup, []string{`pin_path: must be an absolute path, got "bpf/uplinkd"`}},
		{"empty control socket", "control_socket: ''\ngroups:\n" + okGroup, []string{"control_socket: must be an absolute path"}},
		{"control socket too long", "control_socket: /" + strings.Repeat("s", 107) + "\ngroups:\n" + okGroup, []string{"control_socket: must be at most 107 bytes"}},

		{"poll interval not a duration", "carrier_poll_interval: fast\ngroups:\n" + okGroup, []string{`carrier_poll_interval: "fast" is not a duration`}},
		{"poll interval without unit", "carrier_poll_interval: 5\ngroups:\n" + okGroup, []string{`carrier_poll_interval: "5" is not a duration`}},
		{"poll interval too long", "carrier_poll_interval: 2s\ngroups:\n" + okGroup, []string{"carrier_poll_interval: must be 0 (disabled) or between 100µs and 1s, got 2s"}},
		{"poll interval busy loop", "carrier_poll_interval: 1ns\ngroups:\n" + okGroup, []string{"carrier_poll_interval: must be 0 (disabled) or between"}},
		{"negative poll interval", "carrier_poll_interval: -1ms\ngroups:\n" + okGroup, []string{"carrier_poll_interval: must be 0 (disabled)"}},
		{"poll interval is a list", "carrier_poll_interval: [1ms]\ngroups:\n" + okGroup, []string{`line 1: carrier_poll_interval: expected a duration such as "100ms", got a list`}},
		{"announce interval bad", "groups:\n  - name: a\n    announce: {interval: 10 ms}\n    uplinks: [{name: e}]\n", []string{`groups[0].announce.interval: "10 ms" is not a duration`}},
		{"announce interval 0", "groups:\n  - name: a\n    announce: {interval: 0s}\n    uplinks: [{name: e}]\n", []string{"groups[0].announce.interval: must be between 1ms and 1m0s, got 0s"}},
		{"announce interval too long", "groups:\n  - name: a\n    announce: {interval: 61s}\n    uplinks: [{name: e}]\n", []string{"groups[0].announce.interval: must be between 1ms and 1m0s, got 1m1s"}},
		{"announce count too big", "groups:\n" + okGroup + "  - name: a\n    announce: {count: 101}\n    uplinks: [{name: e}]\n", []string{"groups[1].announce.count: must be between 0 and 100, got 101"}},
		{"announce count negative", "groups:\n  - name: a\n    announce: {count: -1}\n    uplinks: [{name: e}]\n", []string{"groups[0].announce.count: must be between 0 and 100, got -1"}},

		{"group without name", "groups:\n  - uplinks: [{name: e}]\n", []string{"groups[0].name: is required"}},
		{"group name too long", "groups:\n  - name: " + strings.Repeat("a", 33) + "\n    uplinks: [{name: e}]\n", []string{"groups[0].name:", "longer than 32"}},
		{"probe without targets", "groups:\n  - name: a\n    probe: {interval: 1s}\n    uplinks: [{name: e}]\n", []string{`groups[0].probe.targets: at least one IPv4 or IPv6 address is required`}},
		{"probe bad target", "groups:\n  - name: a\n    probe: {targets: [10.0.0.1, gateway, ff02::1]}\n    uplinks: [{name: e}]\n",
			[]string{`groups[0].probe.targets[1]: "gateway" is not an IP address`, `groups[0].probe.targets[2]: ff02::1: need a unicast address`}},
		{"probe bad interval and missed", "groups:\n  - name: a\n    probe: {targets: [10.0.0.1], interval: 1ms, missed: 0, source: fe80::1}\n    uplinks: [{name: e}]\n",
			[]string{`groups[0].probe.interval: must be between 10ms and 10s, got 1ms`, `groups[0].probe.missed: must be between 1 and 100, got 0`, `groups[0].probe.source: "fe80::1" is not an IPv4 address`}},
		{"guest port VLANs", "groups:\n  - name: a\n    guest_ports: [{name: v0, vlan: 4095}, {name: v1, vlan: 10, trunk: [20]}, {name: v2, trunk: []}, {name: v3, trunk: [0]}]\n    uplinks: [{name: e}]\n",
			[]string{`groups[0].guest_ports[0].vlan: must be between 1 and 4094, got 4095`, `groups[0].guest_ports[1]: give vlan (an access port) or trunk (its VLANs), not both`,
				`groups[0].guest_ports[2].trunk: lists no VLAN`, `groups[0].guest_ports[3].trunk[0]: must be between 1 and 4094, got 0`}},
		{"announce priority out of range", "groups:\n  - name: a\n    guest_ports: [{name: v0, announce_priority: -1}]\n    uplinks: [{name: e}]\n",
			[]string{`groups[0].guest_ports[0].announce_priority: must be between 0 and 65535, got -1`}},
		{"guest port shapes", "groups:\n  - name: a\n    guest_ports: [{name: v3, vlans: 3}, [v4]]\n    uplinks: [{name: e}]\n",
			[]string{`line 3: field vlans not found in type config.guestPort (name, match, vlan, trunk, announce_priority, max_macs, mac_lock)`, `expected guest port (a name, or a mapping of name, match, vlan, trunk, announce_priority, max_macs, mac_lock), got a list`}},
		{"guest port patterns", "groups:\n  - name: a\n    guest_ports: [{match: \"vnet[\"}, {name: v0, match: \"v*\"}, {match: \"tap*\"}, {match: \"tap*\", vlan: 5}, {match: \"\"}, {match: \"a b*\"}]\n    uplinks: [{name: e}]\n",
			[]string{`groups[0].guest_ports[0].match: pattern "vnet[": syntax error in pattern`, `groups[0].guest_ports[1]: give name (one interface) or match (a pattern), not both`,
				`groups[0].guest_ports[3].match: pattern "tap*" is already used at groups[0].guest_ports[2].match`, `groups[0].guest_ports[4].match: pattern is required`,
				`groups[0].guest_ports[5].match: pattern "a b*" contains ' '`}},
		{"guest port learning limit", "groups:\n  - name: a\n    guest_ports: [{name: v0, max_macs: 70000}]\n    uplinks: [{name: e}]\n",
			[]string{`groups[0].guest_ports[0].max_macs: must be between 0 and 65536, got 70000`}},
		{"guest port MAC lock", "groups:\n  - name: a\n    guest_ports: [{name: v1, mac_lock: maybe}]\n    uplinks: [{name: e}]\n",
			[]string{`groups[0].guest_ports[0].mac_lock: expected true or false, got "maybe"`}},
		{"metrics_listen", "metrics_listen: \"host:port:x\"\ngroups: [{name: a, uplinks: [{name: e}]}]\n", []string{`metrics_listen: "host:port:x" is not host:port or a port`}},
		{"metrics port", "metrics_listen: \"70000\"\ngroups: [{name: a, uplinks: [{name: e}]}]\n", []string{`metrics_listen: ":70000": port "70000" is not a number from 1 to 65535`}},
		{"rebalance", "groups:\n  - name: a\n    rebalance: {interval: 10ms, max_buckets: 0}\n    uplinks: [{name: e}]\n",
			[]string{`groups[0].rebalance: needs mode: balance`, `groups[0].rebalance.interval: must be 0 (disabled) or between 100ms and 1h0m0s, got 10ms`, `groups[0].rebalance.max_buckets: must be between 1 and 256, got 0`}},
		{"bad mode", "groups:\n  - name: a\n    mode: lacp\n    uplinks: [{name: e}]\n", []string{`groups[0].mode: "lacp" is not one of active-backup, balance`}},
		{"bad uplink state", "groups:\n  - name: a\n    uplinks: [{name: e, state: down}]\n", []string{`groups[0].uplinks[0].state: "down" is not one of usable, standby, disabled`}},
		{"hold timer too long", "groups:\n  - name: a\n    up_delay: 11m\n    uplinks: [{name: e}]\n", []string{`groups[0].up_delay: must be between 0s and 10m0s, got 11m0s`}},
		{"hold timer not a duration", "groups:\n  - name: a\n    down_delay: soon\n    uplinks: [{name: e}]\n", []string{`groups[0].down_delay: "soon" is not a duration`}},
		{"group name with space", "groups:\n  - name: tenant a\n    uplinks: [{name: e}]\n", []string{`groups[0].name: "tenant a" contains ' '`}},
		{"group name with slash", "groups:\n  - name: a/b\n    uplinks: [{name: e}]\n", []string{`groups[0].name: "a/b" contains '/'`}},
		{"duplicate group name", "groups:\n  - name: tenant-a\n    uplinks: [{name: e1}]\n  - name: tenant-a\n    uplinks: [{name: e2}]\n",
			[]string{`groups[1].name: "tenant-a" is used by groups[0] too`}},
		{"group without uplinks", "groups:\n  - name: a\n    guest_ports: [v0]\n", []string{"groups[0].uplinks: at least one uplink is required"}},
		{"nine uplinks", "groups: [{name: a, uplinks: [{name: u0}, {name: u1}, {name: u2}, {name: u3}, {name: u4}, {name: u5}, {name: u6}, {name: u7}, {name: u8}]}]\n",
			[]string{"groups[0].uplinks: at most 8 uplinks are allowed per group, got 9"}},
		{"201 guest ports", manyGroups(1, 201), []string{"groups[0].guest_ports: at most 200 guest ports are allowed per group, got 201"}},
		{"199 guest ports and 2 host ports", manyGroups(1, 199) + "    host_ports: [{name: h0}, {name: h1}]\n",
			[]string{"groups[0].host_ports: guest ports and host ports: at most 200 are allowed per group, got 201"}},
		{"65 groups", manyGroups(65, 0), []string{"groups: at most 64 groups are allowed, got 65"}},
		{"1211 interfaces", manyGroups(6, 200) + "  - name: extra\n    uplinks: [{name: e1}, {name: e2}, {name: e3}, {name: e4}, {name: e5}]\n",
			[]string{"groups: at most 1024 interfaces (guest ports, host ports and uplinks of all groups) are allowed, got 1211"}},

		{"uplink without name", "groups:\n  - name: a\n    uplinks: [{priority: 1}]\n", []string{"groups[0].uplinks[0].name: interface name is required"}},
		{"interface name too long", "groups:\n  - name: a\n    uplinks: [{name: abcdefghijklmnop}]\n", []string{`groups[0].uplinks[0].name: interface name "abcdefghijklmnop" is longer than 15 bytes`}},
		{"interface name with slash", "groups:\n  - name: a\n    guest_ports: [a/b]\n    uplinks: [{name: e}]\n", []string{`groups[0].guest_ports[0]: interface name "a/b" contains '/'`}},
		{"interface name with colon", "groups:\n  - name: a\n    uplinks: [{name: e}, {name: 'eth0:1'}]\n", []string{`groups[0].uplinks[1].name: interface name "eth0:1" contains ':'`}},
		{"interface name with space", "groups:\n  - name: a\n    guest_ports: ['vnet 0']\n    uplinks: [{name: e}]\n", []string{`groups[0].guest_ports[0]: interface name "vnet 0" contains ' '`}},
		{"interface name with tab", "groups:\n  - name: a\n    guest_ports: [\"v\\t0\"]\n    uplinks: [{name: e}]\n", []string{"groups[0].guest_ports[0]: interface name", "contains '\\t'"}},
		{"interface name dot", "groups:\n  - name: a\n    guest_ports: ['.']\n    uplinks: [{name: e}]\n", []string{`groups[0].guest_ports[0]: interface name "." is not allowed`}},
		{"interface name dotdot", "groups:\n  - name: a\n    uplinks: [{name: '..'}]\n", []string{`groups[0].uplinks[0].name: interface name ".." is not allowed`}},
		{"empty guest port", "groups:\n  - name: a\n    guest_ports: ['']\n    uplinks: [{name: e}]\n", []string{"groups[0].guest_ports[0]: interface name is required"}},

		{"uplink twice in a group", "groups:\n  - name: a\n    uplinks: [{name: eth1}, {name: eth1}]\n",
			[]string{`groups[0].uplinks[1].name: interface "eth1" is already used at groups[0].uplinks[0].name`}},
		{"guest port twice", "groups:\n  - name: a\n    guest_ports: [v0, v0]\n    uplinks: [{name: e}]\n",
			[]string{`groups[0].guest_ports[1]: interface "v0" is already used at groups[0].guest_ports[0]`}},
		{"guest port is also an uplink", "groups:\n  - name: a\n    guest_ports: [eth1]\n    uplinks: [{name: eth1}]\n",
			[]string{`groups[0].uplinks[0].name: interface "eth1" is already used at groups[0].guest_ports[0]`}},
		{"uplink shared by two groups", "groups:\n  - name: a\n    uplinks: [{name: eth1}]\n  - name: b\n    guest_ports: [v1]\n    uplinks: [{name: eth2}, {name: eth1}]\n",
			[]string{`groups[1].uplinks[1].name: interface "eth1" is already used at groups[0].uplinks[0].name`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tt.yaml))
			if err == nil {
				t.Fatalf("Parse succeeded (%+v), want an error containing %q", cfg, tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
		})
	}
}

// All problems are reported at once, each with its own path.
func TestParseReportsEveryProblem(t *testing.T) {
	_, err := Parse([]byte(`
announce_burst: 0
groups:
  - name: a
    uplinks: [{name: e1, priority: 70000}, {name: e1}]
  - name: a
`))
	if err == nil {
		t.Fatal("Parse succeeded")
	}
	for _, w := range []string{
		"announce_burst: must be",
		"groups[0].uplinks[0].priority: must be",
		"groups[0].uplinks[1].name: interface \"e1\" is already used",
		"groups[1].name: \"a\" is used by groups[0] too",
		"groups[1].uplinks: at least one uplink",
	} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q\ndoes not contain %q", err, w)
		}
	}
	if n := strings.Count(err.Error(), "\n") + 1; n != 5 {
		t.Errorf("got %d error lines, want 5:\n%v", n, err)
	}
}

func TestExample(t *testing.T) {
	cfg, err := Parse(Example)
	if err != nil {
		t.Fatalf("the embedded example does not parse: %v", err)
	}
	if len(cfg.Groups) == 0 || len(cfg.Groups[0].Uplinks) == 0 {
		t.Fatalf("example has no group with uplinks: %+v", cfg)
	}
	// The example documents every key the file may contain.
	for typ, keys := range knownFields {
		for _, k := range keys {
			if !strings.Contains(string(Example), k+":") {
				t.Errorf("example.yaml does not show %s (of %s)", k, typ)
			}
		}
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()

	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(good, Example, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(good)
	if err != nil {
		t.Fatalf("Load(example): %v", err)
	}
	want, _ := Parse(Example)
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("Load = %+v, want %+v", cfg, want)
	}

	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("groups:\n  - name: a\n    uplinks: [{name: e, prio: 1}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Load(bad)
	if err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), `unknown field "prio" in groups[0].uplinks[0]`) {
		t.Errorf("Load(bad) error = %v, want the file name and the field", err)
	}

	missing := filepath.Join(dir, "missing.yaml")
	if _, err := Load(missing); err == nil || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load(missing) error = %v, want a not-exist error", err)
	}

	huge := filepath.Join(dir, "huge.yaml")
	if err := os.WriteFile(huge, append([]byte("groups: []\n"), make([]byte, maxFileSize)...), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(huge); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("Load(huge) error = %v, want a size error", err)
	}
}

// TestProfileFor: the first matching pattern in file order wins; named
// interfaces (guest ports and uplinks of any group) are never matched.
func TestProfileFor(t *testing.T) {
	cfg, err := Parse([]byte(`groups:
  - name: a
    guest_ports: [vnet7, {match: "vnet*", vlan: 10}]
    uplinks: [{name: eth0}]
  - name: b
    guest_ports: [{match: "vnet1*", vlan: 20}, {match: "*", announce_priority: 3}]
    uplinks: [{name: eth1}]
`))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.GuestPatterns(); !slices.Equal(got, []string{"vnet*", "vnet1*", "*"}) {
		t.Errorf("GuestPatterns = %v", got)
	}
	for _, tc := range []struct {
		name  string
		ok    bool
		group string
		want  GuestPort
	}{
		{"vnet12", true, "a", GuestPort{MaxMACs: 1024, Name: "vnet12", Match: "vnet*", VLAN: 10}},
		{"tap3", true, "b", GuestPort{MaxMACs: 1024, Name: "tap3", Match: "*", AnnouncePriority: 3}},
		{"vnet7", false, "", GuestPort{}},
		{"eth0", false, "", GuestPort{}},
		{"eth1", false, "", GuestPort{}},
		{"", false, "", GuestPort{}},
		{"a/b", false, "", GuestPort{}},
	} {
		g, p, ok := cfg.ProfileFor(tc.name)
		if ok != tc.ok || g != tc.group || !reflect.DeepEqual(p, tc.want) {
			t.Errorf("ProfileFor(%q) = %q, %+v, %t; want %q, %+v, %t", tc.name, g, p, ok, tc.group, tc.want, tc.ok)
		}
	}
}

func TestMetricsListen(t *testing.T) {
	for in, want := range map[string]string{"9477": "127.0.0.1:9477", ":9477": "127.0.0.1:9477", "0.0.0.0:1": "0.0.0.0:1", "[::1]:9477": "[::1]:9477", "": ""} {
		if got, err := metricsAddr(in); err != nil || got != want {
			t.Errorf("metricsAddr(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}
