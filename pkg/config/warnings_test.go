package config

import (
	"strings"
	"testing"
)

func TestUplinkAddressWarnings(t *testing.T) {
	c := &Config{Groups: []Group{
		{Name: "lab", Uplinks: []Uplink{{Name: "eth0"}, {Name: "eth1"}}, HostPorts: []HostPort{{Name: "mgmt0"}}},
		{Name: "blue", Uplinks: []Uplink{{Name: "eth2"}}},
	}}
	for _, tc := range []struct {
		name  string
		addrs map[string][]string
		want  []string // substrings, one warning each, in order
	}{
		{"none", map[string][]string{"eth0": nil, "vnet0": {"10.0.0.1/24"}}, nil},
		{"uplink with a host port in its group", map[string][]string{"eth1": {"192.0.2.10/24", "2001:db8::10/64"}},
			[]string{"groups[0].uplinks[1] (eth1) carries 192.0.2.10/24, 2001:db8::10/64", "to host port mgmt0 (groups[0].host_ports[0])"}},
		{"uplink of a group without host ports", map[string][]string{"eth2": {"198.51.100.7/24"}},
			[]string{"groups[1].uplinks[0] (eth2) carries 198.51.100.7/24", "to a host port (groups[1].host_ports)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := UplinkAddressWarnings(c, tc.addrs)
			if len(tc.want) == 0 {
				if len(got) != 0 {
					t.Fatalf("got %q, want no warning", got)
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("got %d warnings %q, want 1", len(got), got)
			}
			for _, w := range tc.want {
				if !strings.Contains(got[0], w) {
					t.Errorf("warning %q lacks %q", got[0], w)
				}
			}
		})
	}
}
