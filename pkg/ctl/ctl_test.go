package ctl

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/pkg/control"
	"github.com/uplinkd/uplinkd/pkg/version"
	"github.com/uplinkd/uplinkd/test/testenv"
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

// TestWriteHostPorts: a host port's line has its ends, VLAN, MAC, MTU,
// state and addresses (IPv6 link-local left out); one with no other
// address says plainly that the host does not use it, unless its state
// or addresses could not be read; errors follow.
func TestWriteHostPorts(t *testing.T) {
	st := control.Status{Version: "v1", Groups: []control.GroupStatus{{
		Name: "a", Active: "eth1",
		HostPorts: []control.HostPortStatus{
			{Name: "mgmt0", SwitchEnd: "mgmt0-sw", VLAN: 10, MAC: "02:00:00:00:00:01", MTU: 1500, State: "up",
				Addrs: []string{"192.0.2.7", "2001:db8::7", "fe80::1"}},
			{Name: "stor0", SwitchEnd: "stor0-sw", MAC: "02:00:00:00:00:02", MTU: 9000, State: "down", Addrs: []string{"fe80::2"}},
			{Name: "bk0", SwitchEnd: "bk0-sw", MAC: "02:00:00:00:00:03", State: "missing", Error: "its switch end bk0-sw is no port of the switch"},
			{Name: "mig0", SwitchEnd: "mig0-sw", MAC: "02:00:00:00:00:04", State: "unknown", Error: "mig0: permission denied"},
			{Name: "san0", SwitchEnd: "san0-sw", MAC: "02:00:00:00:00:05", State: "up", Error: "san0: list addresses: no buffer space"},
		},
	}}}
	var buf bytes.Buffer
	writeStatus(&buf, st, time.Now())
	out := buf.String()
	for _, want := range []string{
		"  HOST PORT  SWITCH END  VLAN      MAC                MTU   STATE    ADDRESSES\n",
		"  mgmt0      mgmt0-sw    10        02:00:00:00:00:01  1500  up       192.0.2.7, 2001:db8::7\n",
		"  stor0      stor0-sw    untagged  02:00:00:00:00:02  9000  down     no address: the host's traffic does not use it\n",
		"  bk0        bk0-sw      untagged  02:00:00:00:00:03  -     missing  -\n",
		"  mig0       mig0-sw     untagged  02:00:00:00:00:04  -     unknown  -\n",
		"  san0       san0-sw     untagged  02:00:00:00:00:05  -     up       -\n",
		"  host port bk0: error: its switch end bk0-sw is no port of the switch\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "fe80::") {
		t.Errorf("status shows IPv6 link-local addresses:\n%s", out)
	}
	st.Groups[0].HostPorts = nil
	buf.Reset()
	writeStatus(&buf, st, time.Now())
	if strings.Contains(buf.String(), "HOST PORT") {
		t.Errorf("a group without host ports has a host port table:\n%s", buf.String())
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

// backend stands in for the daemon behind a real control server: the
// commands' parsing, requests and output are under test here; the daemon's
// answers are tested end to end under test/.
type backend struct {
	mu    sync.Mutex
	group control.GroupStatus
	calls []string // the changes asked for, in order
}

func newBackend() *backend {
	return &backend{group: control.GroupStatus{Name: "red", Active: "eth1", Uplinks: []control.UplinkStatus{
		{Name: "eth1", Priority: 10, State: "usable", Carrier: true, Usable: true, Active: true},
		{Name: "eth2", Priority: 20, State: "usable", Carrier: true, Usable: true},
	}, GuestPorts: []control.PortStatus{{Name: "vnet0"}}, FailoversByReason: map[string]int{"carrier lost": 1}, Failovers: 1}}
}

func (b *backend) change(format string, args ...any) {
	b.calls = append(b.calls, fmt.Sprintf(format, args...))
}

func (b *backend) Status(ctx context.Context) (control.Status, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	g := b.group
	g.Uplinks = slices.Clone(g.Uplinks)
	return control.Status{Version: "test", Groups: []control.GroupStatus{g}}, nil
}

func (b *backend) Guests(ctx context.Context) ([]control.Guest, error) {
	return []control.Guest{{Group: "red", VLAN: 10, MAC: "02:00:00:00:00:0a", Port: "vnet0", Addrs: []string{"192.0.2.10"}}}, nil
}

func (b *backend) Counters(ctx context.Context) ([]control.PortCounters, error) {
	return []control.PortCounters{{Group: "red", Port: "vnet0", Role: "guest", RxPackets: 7, Drops: map[string]uint64{"hairpin": 2}}}, nil
}

func (b *backend) uplink(group, name string) (*control.UplinkStatus, error) {
	if group != "red" {
		return nil, fmt.Errorf("group %q: %w", group, control.ErrNotFound)
	}
	for i := range b.group.Uplinks {
		if b.group.Uplinks[i].Name == name {
			return &b.group.Uplinks[i], nil
		}
	}
	return nil, fmt.Errorf("uplink %q: %w", name, control.ErrNotFound)
}

func (b *backend) SetActive(ctx context.Context, group, uplink string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, err := b.uplink(group, uplink); err != nil {
		return err
	}
	b.group.Active, b.group.Manual = uplink, uplink
	b.change("set-active %s %s", group, uplink)
	return nil
}

func (b *backend) ClearManual(ctx context.Context, group string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.group.Manual = ""
	b.change("clear-manual %s", group)
	return nil
}

func (b *backend) SetUplink(ctx context.Context, group, uplink string, req control.SetUplinkRequest) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	u, err := b.uplink(group, uplink)
	if err != nil {
		return err
	}
	if req.Priority != nil {
		u.Priority = *req.Priority
		b.change("set-priority %s %s %d", group, uplink, *req.Priority)
	}
	if req.State != "" {
		u.State = req.State
		b.change("set-state %s %s %s", group, uplink, req.State)
	}
	return nil
}

func (b *backend) AddUplink(ctx context.Context, group string, req control.AddUplinkRequest) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	prio := -1
	if req.Priority != nil {
		prio = *req.Priority
	}
	b.group.Uplinks = append(b.group.Uplinks, control.UplinkStatus{Name: req.Name, Priority: prio, State: req.State})
	b.change("add-uplink %s %s %d %q", group, req.Name, prio, req.State)
	return nil
}

func (b *backend) RemoveUplink(ctx context.Context, group, uplink string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.change("remove-uplink %s %s", group, uplink)
	return nil
}

func (b *backend) AddPort(ctx context.Context, group, port string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.group.GuestPorts = append(b.group.GuestPorts, control.PortStatus{Name: port})
	b.change("add-port %s %s", group, port)
	return nil
}

func (b *backend) RemovePort(ctx context.Context, group, port string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.change("remove-port %s %s", group, port)
	return nil
}

func (b *backend) MoveGuest(ctx context.Context, group string, req control.MoveGuestRequest) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.change("move-guest %s %s@%d %s", group, req.MAC, req.VLAN, req.Uplink)
	return nil
}

func (b *backend) Reload(ctx context.Context) ([]string, error) {
	return []string{"group red: uplink eth3 added"}, nil
}

func (b *backend) Events(ctx context.Context, since uint64, wait time.Duration) ([]control.FailoverEvent, uint64, error) {
	if since >= 1 {
		return nil, 1, nil
	}
	sw := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	return []control.FailoverEvent{{Seq: 1, Version: 1, Group: "red", From: "eth1", To: "eth2", Reason: "carrier lost",
		Switched: sw, Latency: 42 * time.Microsecond, AnnounceFrames: 3, AnnounceFirst: sw.Add(time.Millisecond), AnnounceLast: sw.Add(2 * time.Millisecond)}}, 1, nil
}

// serve runs a control server for b on a socket in a temporary directory.
func serve(t *testing.T, b control.Backend) string {
	t.Helper()
	testenv.RequireRoot(t, "the control socket admits root only")
	path := filepath.Join(t.TempDir(), "uplinkd.sock")
	s, err := control.Listen(path, b, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve() }()
	t.Cleanup(func() { s.Close() })
	return path
}

// TestCommands runs every command of the table against a control server:
// what it prints, what it asked the daemon to change, its exit code.
// A command without a case here fails the test.
func TestCommands(t *testing.T) {
	cases := []struct {
		command string
		args    []string
		code    int
		out     []string // substrings of stdout (stderr when the exit code is not 0)
		calls   []string // the changes the backend saw
	}{
		{"status", nil, 0, []string{"uplinkd test", "group red: active eth1; failback off; failovers 1", "eth2    20    standby"}, nil},
		{"status", []string{"--json"}, 0, []string{`"name": "red"`, `"active": "eth1"`}, nil},
		{"fdb", nil, 0, []string{"GROUP  VLAN  MAC", "red    10    02:00:00:00:00:0a  vnet0  0s   192.0.2.10"}, nil},
		{"fdb", []string{"-json"}, 0, []string{`"mac": "02:00:00:00:00:0a"`}, nil},
		{"counters", nil, 0, []string{"RX PKTS", "vnet0", "2 (hairpin=2)"}, nil},
		{"counters", []string{"--json"}, 0, []string{`"port": "vnet0"`}, nil},
		{"stats", nil, 0, []string{"2 (hairpin=2)", "group red: failovers 1 (carrier lost=1); announcement frames sent 0"}, nil},
		{"stats", []string{"--json"}, 0, []string{`"failovers_by_reason": {`, `"ports": [`}, nil},
		{"events", nil, 0, []string{"#1 2026-11-22T12:00:00.000000Z red: eth1 -> eth2 (carrier lost): detected -> switched 42µs; announced 3 frames, first +1ms, last +2ms"}, nil},
		{"events", []string{"--json"}, 0, []string{`"seq":1,`, `"group":"red"`}, nil},
		{"reload", nil, 0, []string{"configuration reloaded:\n  group red: uplink eth3 added\n"}, nil},
		{"reload", []string{"--json"}, 0, []string{`"changes": [`}, nil},
		{"set-active", []string{"red", "eth2"}, 0, []string{"group red: active eth2 (set by hand; `uplinkctl set-active red auto` returns to automatic)"}, []string{"set-active red eth2"}},
		{"set-active", []string{"red", "auto"}, 0, []string{"group red: active eth1\n"}, []string{"clear-manual red"}},
		{"set-active", []string{"blue", "eth2"}, 1, []string{`uplinkctl: group "blue": not found`}, nil},
		{"set-priority", []string{"red", "eth2", "5"}, 0, []string{"group red: uplink eth2 priority 5, usable; active eth1"}, []string{"set-priority red eth2 5"}},
		{"set-state", []string{"red", "eth2", "standby"}, 0, []string{"group red: uplink eth2 priority 20, standby; active eth1"}, []string{"set-state red eth2 standby"}},
		{"add-uplink", []string{"red", "eth3", "15", "standby"}, 0, []string{"uplinks eth1 (prio 10), eth2 (prio 20), eth3 (prio 15)"}, []string{`add-uplink red eth3 15 "standby"`}},
		{"add-uplink", []string{"red", "eth3"}, 0, []string{"eth3 (prio -1)"}, []string{`add-uplink red eth3 -1 ""`}},
		{"remove-uplink", []string{"red", "eth2"}, 0, []string{"group red: active eth1; uplinks"}, []string{"remove-uplink red eth2"}},
		{"add-port", []string{"red", "vnet7"}, 0, []string{"guest ports vnet0, vnet7"}, []string{"add-port red vnet7"}},
		{"remove-port", []string{"red", "vnet0"}, 0, []string{"group red:"}, []string{"remove-port red vnet0"}},
		{"move-guest", []string{"red", "02:00:00:00:00:01@10", "eth2"}, 0, []string{"group red:"}, []string{"move-guest red 02:00:00:00:00:01@10 eth2"}},
		{"move-guest", []string{"red", "02:00:00:00:00:01", "eth2"}, 0, []string{"group red:"}, []string{"move-guest red 02:00:00:00:00:01@0 eth2"}},
		{"version", nil, 0, []string{"uplinkctl " + version.String() + "\n"}, nil},
		{"help", nil, 0, []string{"usage: uplinkctl [-socket PATH] COMMAND [ARGS]", "  move-guest GROUP MAC[@VLAN] UPLINK  balance groups"}, nil},
		{"guests", nil, 0, []string{"02:00:00:00:00:0a"}, nil},
	}
	tested := map[string]bool{}
	for _, tc := range cases {
		t.Run(strings.Join(append([]string{tc.command}, tc.args...), " "), func(t *testing.T) {
			b := newBackend()
			path := serve(t, b)
			var out, errOut bytes.Buffer
			code := Main(append([]string{"-socket", path, tc.command}, tc.args...), &out, &errOut)
			got := out.String()
			if tc.code != 0 {
				got = errOut.String()
			}
			if code != tc.code {
				t.Errorf("exit %d, want %d; stdout %q, stderr %q", code, tc.code, out.String(), errOut.String())
			}
			for _, want := range tc.out {
				if !strings.Contains(got, want) {
					t.Errorf("output lacks %q:\n%s", want, got)
				}
			}
			if tc.code == 0 && errOut.Len() > 0 {
				t.Errorf("stderr %q", errOut.String())
			}
			if !slices.Equal(b.calls, tc.calls) {
				t.Errorf("backend saw %q, want %q", b.calls, tc.calls)
			}
		})
		if c := lookup(tc.command); c != nil {
			tested[c.name] = true
		}
	}
	for _, c := range commands {
		if !tested[c.name] {
			t.Errorf("command %s has no case in TestCommands", c.name)
		}
	}
}

// TestUsage: the usage text has one line per command, made from the table,
// and a command's usage mistake names the command and its synopsis.
func TestUsage(t *testing.T) {
	text := usage()
	for _, c := range commands {
		if n := strings.Count(text, "\n  "+c.synopsis()+" "); n != 1 {
			t.Errorf("usage lists %q %d times:\n%s", c.synopsis(), n, text)
		}
		if c.help == "" {
			t.Errorf("command %s has no help line", c.name)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"set-active", "g"}, "uplinkctl set-active: want 2 arguments, got 1\nusage: uplinkctl set-active GROUP UPLINK|auto\n"},
		{[]string{"add-uplink", "g", "a", "b", "c", "d"}, "uplinkctl add-uplink: want 2 to 4 arguments, got 5\n"},
		{[]string{"status", "extra"}, "uplinkctl status: want 0 arguments, got 1\nusage: uplinkctl status [--json]\n"},
		{[]string{"set-active", "g", "eth1", "--json"}, "uplinkctl set-active: --json is not an option of set-active\n"},
		{[]string{"status", "--follow"}, "uplinkctl status: --follow is not an option of status\n"},
		{[]string{"--help"}, "usage: uplinkctl [-socket PATH] COMMAND [ARGS]\n"}, // the flag package's -h: on stderr
	} {
		var out, errOut bytes.Buffer
		if code := Main(tc.args, &out, &errOut); code != 2 || errOut.String() != tc.want && !strings.HasPrefix(errOut.String(), tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", tc.args, code, errOut.String(), tc.want)
		}
	}
}
