package config

import (
	"bytes"
	"net"
	"reflect"
	"strings"
	"testing"
)

func TestHostPortsGood(t *testing.T) {
	mac := func(s string) net.HardwareAddr { m, _ := net.ParseMAC(s); return m }
	tests := []struct {
		name string
		yaml string
		want []HostPort
	}{
		{"name only: MAC derived, no VLAN, kernel MTU",
			"host_ports: [{name: mgmt0}]",
			[]HostPort{{Name: "mgmt0", SwitchEnd: "mgmt0-sw", MAC: DeriveMAC("a", "mgmt0")}}},
		{"everything given",
			"host_ports: [{name: storage, vlan: 4094, mac: '02:00:00:00:00:01', mtu: 9000}]",
			[]HostPort{{Name: "storage", SwitchEnd: "storage-sw", VLAN: 4094, MAC: mac("02:00:00:00:00:01"), MTU: 9000}}},
		{"a 15-byte name gets a hashed switch end",
			"host_ports: [{name: migration-net-0, mtu: 68}, {name: migration-net-1, mtu: 65535}]",
			[]HostPort{
				{Name: "migration-net-0", SwitchEnd: SwitchEnd("migration-net-0"), MAC: DeriveMAC("a", "migration-net-0"), MTU: 68},
				{Name: "migration-net-1", SwitchEnd: SwitchEnd("migration-net-1"), MAC: DeriveMAC("a", "migration-net-1"), MTU: 65535},
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte("groups:\n  - name: a\n    uplinks: [{name: eth1}]\n    " + tc.yaml + "\n"))
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.Groups[0].HostPorts; !reflect.DeepEqual(got, tc.want) {
				t.Errorf("host ports = %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestHostPortsBad(t *testing.T) {
	const head = "groups:\n  - name: a\n    uplinks: [{name: eth1}]\n    guest_ports: [vnet0, mgmt1-sw]\n"
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"no name", "    host_ports: [{vlan: 3}]\n", []string{"groups[0].host_ports[0].name: interface name is required"}},
		{"name too long", "    host_ports: [{name: a-very-long-name0}]\n", []string{"groups[0].host_ports[0].name: interface name \"a-very-long-name0\" is longer than 15 bytes"}},
		{"bad character", "    host_ports: [{name: 'mg/mt'}]\n", []string{"groups[0].host_ports[0].name: interface name \"mg/mt\" contains '/'"}},
		{"name used by a guest port", "    host_ports: [{name: vnet0}]\n", []string{`groups[0].host_ports[0].name: interface "vnet0" is already used at groups[0].guest_ports[0]`}},
		{"name used by an uplink", "    host_ports: [{name: eth1}]\n", []string{`groups[0].uplinks[0].name: interface "eth1" is already used at groups[0].host_ports[0].name`}},
		{"switch end used by a guest port", "    host_ports: [{name: mgmt1}]\n", []string{`groups[0].host_ports[0].name (its switch end): interface "mgmt1-sw" is already used at groups[0].guest_ports[1]`}},
		{"twice in one group", "    host_ports: [{name: m}, {name: m}]\n", []string{`groups[0].host_ports[1].name: interface "m" is already used at groups[0].host_ports[0].name`}},
		{"in two groups", "    host_ports: [{name: m}]\n  - name: b\n    uplinks: [{name: eth2}]\n    host_ports: [{name: m}]\n",
			[]string{`groups[1].host_ports[0].name: interface "m" is already used at groups[0].host_ports[0].name`}},
		{"another's switch end", "    host_ports: [{name: m}, {name: m-sw}]\n", []string{`groups[0].host_ports[1].name: interface "m-sw" is already used at groups[0].host_ports[0].name (its switch end)`}},
		{"an uplink named like a switch end", "    host_ports: [{name: m}]\n  - name: b\n    uplinks: [{name: m-sw}]\n",
			[]string{`groups[1].uplinks[0].name: interface "m-sw" is already used at groups[0].host_ports[0].name (its switch end)`}},
		{"VLAN 0", "    host_ports: [{name: m, vlan: 0}]\n", []string{"groups[0].host_ports[0].vlan: must be between 1 and 4094, got 0"}},
		{"VLAN too big", "    host_ports: [{name: m, vlan: 4095}]\n", []string{"groups[0].host_ports[0].vlan: must be between 1 and 4094, got 4095"}},
		{"MTU too small", "    host_ports: [{name: m, mtu: 67}]\n", []string{"groups[0].host_ports[0].mtu: must be between 68 and 65535, got 67"}},
		{"MTU too big", "    host_ports: [{name: m, mtu: 65536}]\n", []string{"groups[0].host_ports[0].mtu: must be between 68 and 65535, got 65536"}},
		{"MTU a string", "    host_ports: [{name: m, mtu: big}]\n", []string{`groups[0].host_ports[0].mtu: expected an integer, got "big"`}},
		{"MAC not a MAC", "    host_ports: [{name: m, mac: nope}]\n", []string{`groups[0].host_ports[0].mac: "nope" is not an Ethernet address`}},
		{"MAC too long", "    host_ports: [{name: m, mac: '02:00:00:00:00:00:00:01'}]\n", []string{"groups[0].host_ports[0].mac:", "is not an Ethernet address"}},
		{"MAC multicast", "    host_ports: [{name: m, mac: '01:00:5e:00:00:01'}]\n", []string{"groups[0].host_ports[0].mac: 01:00:5e:00:00:01 is a multicast address"}},
		{"MAC zero", "    host_ports: [{name: m, mac: '00:00:00:00:00:00'}]\n", []string{"groups[0].host_ports[0].mac: 00:00:00:00:00:00 is the zero address"}},
		{"unknown key", "    host_ports: [{name: m, ip: 10.0.0.1/24}]\n", []string{`unknown field "ip" in groups[0].host_ports[0]`, "known fields: name, vlan, mac, mtu"}},
		{"a bare name", "    host_ports: [m]\n", []string{"groups[0].host_ports[0]"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(head + tc.yaml))
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
		})
	}
}

func TestSwitchEnd(t *testing.T) {
	for name, want := range map[string]string{
		"m":               "m-sw",
		"mgmt0":           "mgmt0-sw",
		"twelve-bytes":    "twelve-bytes-sw",
		"thirteen-bytes":  SwitchEnd("thirteen-bytes"),
		"migration-net-0": SwitchEnd("migration-net-0"),
	} {
		got := SwitchEnd(name)
		if got != want || CheckIfName(got) != nil || got == name {
			t.Errorf("SwitchEnd(%q) = %q (%v), want %q, a valid name", name, got, CheckIfName(got), want)
		}
	}
	long := SwitchEnd("thirteen-bytes")
	if len(long) != MaxIfNameLen || !strings.HasPrefix(long, "thirteen-") {
		t.Errorf("SwitchEnd(thirteen-bytes) = %q, want 15 bytes starting with thirteen-", long)
	}
	if a, b := SwitchEnd("migration-net-0"), SwitchEnd("migration-net-1"); a == b {
		t.Errorf("two long names with one start share switch end %q", a)
	}
}

func TestDeriveMAC(t *testing.T) {
	a := DeriveMAC("g", "mgmt0")
	if len(a) != 6 || a[0]&1 != 0 || a[0]&2 == 0 {
		t.Errorf("DeriveMAC = %s: want a locally administered unicast address", a)
	}
	if !bytes.Equal(a, DeriveMAC("g", "mgmt0")) {
		t.Error("DeriveMAC is not stable")
	}
	for _, other := range []net.HardwareAddr{DeriveMAC("h", "mgmt0"), DeriveMAC("g", "mgmt1"), DeriveMAC("gm", "gmt0")} {
		if bytes.Equal(a, other) {
			t.Errorf("DeriveMAC gives %s to another group or port", a)
		}
	}
	// The address must not change between versions: leases depend on it.
	if got := DeriveMAC("lab", "mgmt0").String(); got != derivedLabMgmt0 {
		t.Errorf("DeriveMAC(lab, mgmt0) = %s, was %s: a host's MAC would change on upgrade", got, derivedLabMgmt0)
	}
}

// derivedLabMgmt0 is DeriveMAC("lab", "mgmt0") as first released.
const derivedLabMgmt0 = "8a:e5:0a:84:7b:21"

func TestHostPortsNotMatchedByPatterns(t *testing.T) {
	cfg, err := Parse([]byte("groups:\n  - name: a\n    uplinks: [{name: eth1}]\n    guest_ports: [{match: '*'}]\n    host_ports: [{name: mgmt0}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"mgmt0", "mgmt0-sw"} {
		if _, _, ok := cfg.ProfileFor(name); ok {
			t.Errorf("pattern * took host port interface %s", name)
		}
	}
	if _, _, ok := cfg.ProfileFor("vnet9"); !ok {
		t.Error("pattern * does not match vnet9")
	}
}
