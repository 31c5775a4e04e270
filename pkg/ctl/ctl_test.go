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
		FailoverPaths: []string{"xmit-error", "user-space"},
		RefusedPaths:  map[string]string{"carrier-hook": "refused by the kernel (EPERM)"},
		Groups: []control.GroupStatus{{
			Name: "tenant-a", Active: "eth2", Failback: true, Failovers: 1, LearnedGuests: 2,
			LastChange: switched, LastReason: "carrier lost",
			LastFailover: &control.FailoverEvent{From: "eth1", To: "eth2", Reason: "carrier lost", Source: "poll",
				Switched: switched, Latency: 42 * time.Microsecond, AnnounceFrames: 12,
				AnnounceFirst: switched.Add(time.Millisecond), AnnounceLast: switched.Add(200 * time.Millisecond)},
			Uplinks: []control.UplinkStatus{
				{Name: "eth1", Priority: 10, Carrier: false, Since: switched, XDPMode: "native"},
				{Name: "eth2", Priority: 20, Carrier: true, Active: true, Since: now.Add(-time.Hour), XDPMode: "native"},
			},
			GuestPorts: []control.PortStatus{{Name: "vnet0", XDPMode: "native"}, {Name: "vnet1", Error: "interface not found"}},
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
		"failover: xmit-error, then user-space; unavailable: carrier-hook (refused by the kernel (EPERM))",
		"group tenant-a: active eth2; failback on; failovers 1; guests learned 2",
		"last change 3s ago: carrier lost",
		"last failover eth1 -> eth2 (carrier lost, seen by poll): detected->switched 42µs, 12 frames announced in 200ms",
		"eth1    10    DOWN     standby",
		"eth2    20    up       ACTIVE",
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
		{[]string{"-socket", "/nonexistent/sock", "status"}, 1, "cannot reach uplinkd at /nonexistent/sock"},
	} {
		var out, errOut bytes.Buffer
		if code := Main(tc.args, &out, &errOut); code != tc.code || !strings.Contains(errOut.String(), tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tc.args, code, errOut.String(), tc.code, tc.want)
		}
	}
}
