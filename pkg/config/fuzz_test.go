package config

import (
	"reflect"
	"strings"
	"testing"

	"github.com/uplinkd/uplinkd/pkg/limits"
)

// FuzzParse: the decoder never panics, rejects with an error that is not
// empty, what it accepts keeps its own rules (the limits the data plane
// relies on), and a second parse gives the same configuration.
func FuzzParse(f *testing.F) {
	f.Add(Example)
	for _, s := range []string{
		"groups: [{name: a, uplinks: [{name: e}]}]\n",
		"groups:\n  - name: a\n    mode: balance\n    rebalance: {interval: 1s}\n    guest_ports: [v0, {match: \"vm*\", vlan: 10}, {name: t, trunk: [1, 4094]}]\n    uplinks: [{name: e, priority: 0, state: standby}, {name: f}]\n",
		"metrics_listen: 9477\ncarrier_poll_interval: 1ms\ngroups: [{name: a, probe: {targets: [10.0.0.1, 'fe80::1']}, uplinks: [{name: e}]}]\n",
		"groups: [{name: a, uplinks: [{name: e}], guest_ports: [{name: e}]}]\n",
		"groups: {a: b}\n",
		"\x00\xff: [",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data)
		if err != nil {
			if strings.TrimSpace(err.Error()) == "" {
				t.Errorf("empty error for %q", data)
			}
			return
		}
		if len(cfg.Groups) == 0 {
			t.Fatalf("accepted a configuration without groups: %q", data)
		}
		names := map[string]bool{}
		for _, g := range cfg.Groups {
			if names[g.Name] || checkGroupName(g.Name) != nil {
				t.Errorf("group name %q accepted twice or invalid", g.Name)
			}
			names[g.Name] = true
			if n := len(g.Uplinks); n < 1 || n > limits.MaxUplinks {
				t.Errorf("group %s: %d uplinks accepted", g.Name, n)
			}
			for _, u := range g.Uplinks {
				if CheckIfName(u.Name) != nil || u.Priority < 0 || u.Priority > MaxPriority {
					t.Errorf("uplink %+v accepted", u)
				}
			}
			for _, p := range g.GuestPorts {
				if (p.Name == "") == (p.Match == "") || p.VLAN > MaxVLAN || (p.VLAN != 0 && len(p.Trunk) > 0) {
					t.Errorf("guest port %+v accepted", p)
				}
			}
			if g.Mode != ModeActiveBackup && g.Mode != ModeBalance {
				t.Errorf("mode %q accepted", g.Mode)
			}
		}
		again, err := Parse(data)
		if err != nil || !reflect.DeepEqual(again, cfg) {
			t.Errorf("a second parse of the same input differs: %v", err)
		}
	})
}
