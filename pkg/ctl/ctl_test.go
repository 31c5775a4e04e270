package ctl

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/pkg/control"
)

func TestWriteStatus(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	switched := now.Add(-3 * time.Second)
	st := control.Status{
		Version: "v1", Started: now.Add(-time.Hour), PinPath: "/sys/fs/bpf/uplinkd",
		FailoverPaths: []string{"carrier-at-redirect", "user-space"},
		RefusedPaths:  map[string]string{"carrier-hook": "refused by the kernel (EPERM)"},
		Groups: []control.GroupStatus{{
			Name: "tenant-a", Active: "eth2", Failback: true, Failovers: 1, LearnedGuests: 2, UpDelay: 2 * time.Second,
			LastChange: switched, LastReason: "carrier lost",
			LastFailover: &control.FailoverEvent{From: "eth1", To: "eth2", Reason: "carrier lost", Source: "poll",
				Switched: switched, Latency: 42 * time.Microsecond, AnnounceFrames: 12,
				AnnounceFirst: switched.Add(time.Millisecond), AnnounceLast: switched.Add(200 * time.Millisecond)},
			Uplinks: []control.UplinkStatus{
				{Name: "eth1", Priority: 10, State: "usable", Probe: "failed", Carrier: true, Since: switched, Hook: "tcx",
					Failovers: 1, LastReason: "path probes failed"},
				{Name: "eth2", Priority: 20, State: "usable", Probe: "ok", Carrier: true, Usable: true, Active: true, Since: now.Add(-time.Hour), Hook: "tcx"},
				{Name: "eth5", Priority: 5, State: "standby", Probe: "none", Carrier: true, Usable: false, Hold: 1500 * time.Millisecond, Hook: "tcx"},
			},
			GuestPorts: []control.PortStatus{{Name: "vnet0", Hook: "tcx"}, {Name: "vnet1", Error: "interface not found"}},
		}, {
			Name: "tenant-b", Manual: "eth3", Active: "",
			Uplinks: []control.UplinkStatus{{Name: "eth3", Priority: 100, Error: "interface not found"}},
		}},
	}
	var buf bytes.Buffer
	writeStatus(&buf, st, now)
	out := buf.String()
	for _, want := range []string{
		"uplinkd v1, up 1h0m0s",
		"failover: carrier-at-redirect, then user-space; unavailable: carrier-hook (refused by the kernel (EPERM))",
		"group tenant-a: active eth2; failback on; failovers 1; guests learned 2",
		"last change 3s ago: carrier lost",
		"last failover eth1 -> eth2 (carrier lost, seen by poll): detected->switched 42µs, 12 frames announced in 200ms",
		"up-delay 2s, down-delay 0s",
		"UPLINK  PRIO  ROLE",
		"eth1    10    unusable  up       failed  usable   -     3s      1          path probes failed  tcx",
		"eth2    20    ACTIVE    up       ok      usable   -     1h0m0s  0          -                   tcx",
		"eth5    5     unusable  up       -       standby  1.5s  -       0",
		"guest ports: vnet0, vnet1 (error: interface not found)",
		"group tenant-b: active NONE (no usable uplink) (set by hand)",
		"error: interface not found",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "usage: uplinkctl"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"set-active", "g"}, 2, "usage: uplinkctl set-active GROUP UPLINK|auto"},
		{[]string{"set-priority", "g", "eth1"}, 2, "usage: uplinkctl set-priority GROUP UPLINK N"},
		{[]string{"set-priority", "g", "eth1", "high"}, 2, `priority "high" is not a number`},
		{[]string{"add-uplink", "g"}, 2, "usage: uplinkctl add-uplink GROUP IF [PRIORITY [STATE]]"},
		{[]string{"add-uplink", "g", "eth3", "x"}, 2, `priority "x" is not a number`},
		{[]string{"remove-port", "g"}, 2, "usage: uplinkctl remove-port GROUP IF"},
		{[]string{"move-guest", "g", "02:00:00:00:00:01"}, 2, "usage: uplinkctl move-guest GROUP MAC[@VLAN] UPLINK"},
		{[]string{"move-guest", "g", "02:00:00:00:00:01@x", "eth1"}, 2, `VLAN "x" is not a number`},
		{[]string{"set-state", "g"}, 2, "usage: uplinkctl set-state GROUP UPLINK usable|standby|disabled"},
		{[]string{"-socket", "/nonexistent/sock", "status"}, 1, "cannot reach uplinkd at /nonexistent/sock"},
	} {
		var out, errOut bytes.Buffer
		if code := Main(tc.args, &out, &errOut); code != tc.code || !strings.Contains(errOut.String(), tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tc.args, code, errOut.String(), tc.code, tc.want)
		}
	}
}
