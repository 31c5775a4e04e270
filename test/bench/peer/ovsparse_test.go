package peer

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The testdata files are real output of Open vSwitch 3.1.0 (Debian
// bookworm's openvswitch-switch) from a bond0 of up0 (primary) and up1.
func TestParseBondShow(t *testing.T) {
	// Open vSwitch before 2.16 said "slave"; this is the primary sample with
	// the old spelling substituted.
	oldSpelling := strings.NewReplacer("member", "slave").Replace(readTestdata(t, "bond-show-after-cut.txt"))
	tests := []struct {
		name, text, bond string
		want             BondStatus
		wantErr          bool
	}{
		{name: "primary active", text: readTestdata(t, "bond-show-primary.txt"), bond: "bond0",
			want: BondStatus{Name: "bond0", Mode: "active-backup", Primary: "up0", Active: "up0",
				Members: map[string]bool{"up0": true, "up1": true}}},
		{name: "after cut of up0", text: readTestdata(t, "bond-show-after-cut.txt"), bond: "bond0",
			want: BondStatus{Name: "bond0", Mode: "active-backup", Primary: "up0", Active: "up1",
				Members: map[string]bool{"up0": false, "up1": true}}},
		{name: "all members disabled", text: readTestdata(t, "bond-show-all-disabled.txt"), bond: "bond0",
			want: BondStatus{Name: "bond0", Mode: "active-backup", Primary: "up0", Active: "",
				Members: map[string]bool{"up0": false, "up1": false}}},
		{name: "second of two bonds", text: readTestdata(t, "bond-show-two-bonds.txt"), bond: "bond0",
			want: BondStatus{Name: "bond0", Mode: "active-backup", Primary: "up0", Active: "up0",
				Members: map[string]bool{"up0": true, "up1": true}}},
		{name: "first of two bonds", text: readTestdata(t, "bond-show-two-bonds.txt"), bond: "bond1",
			want: BondStatus{Name: "bond1", Mode: "active-backup", Primary: "up3", Active: "up2",
				Members: map[string]bool{"up2": true, "up3": false}}},
		{name: "any bond takes the first", text: readTestdata(t, "bond-show-two-bonds.txt"), bond: "",
			want: BondStatus{Name: "bond1", Mode: "active-backup", Primary: "up3", Active: "up2",
				Members: map[string]bool{"up2": true, "up3": false}}},
		{name: "slave spelling", text: oldSpelling, bond: "bond0",
			want: BondStatus{Name: "bond0", Mode: "active-backup", Primary: "up0", Active: "up1",
				Members: map[string]bool{"up0": false, "up1": true}}},
		{name: "no such bond", text: readTestdata(t, "bond-show-primary.txt"), bond: "bond7", wantErr: true},
		{name: "empty", text: "", bond: "bond0", wantErr: true},
		{name: "active is no member", bond: "bond0", wantErr: true,
			text: "---- bond0 ----\nactive member mac: 00:00:00:00:00:01(up9)\n\nmember up0: enabled\n"},
		{name: "MAC line and member block disagree", bond: "bond0", wantErr: true,
			text: "---- bond0 ----\nactive member mac: 00:00:00:00:00:01(up0)\n\nmember up0: enabled\n\nmember up1: enabled\n  active member\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseBondShow(tc.text, tc.bond)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("want an error, got %+v", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestParseBondLog(t *testing.T) {
	// The sample: bond0 starts on up0; p0 cut (-> up1), p1 cut (all
	// disabled), p1 back (-> up1), p0 back (-> up0, the primary); then the
	// other bond fails over and ovs-vswitchd exits with --cleanup.
	f, err := os.Open(filepath.Join("testdata", "ovs-vswitchd.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	events, err := ParseBondLog(f, "bond0")
	if err != nil {
		t.Fatal(err)
	}
	at := func(s string) time.Time {
		ts, err := time.Parse(time.RFC3339Nano, "2026-11-22T"+s+"Z")
		if err != nil {
			t.Fatal(err)
		}
		return ts
	}
	want := []BondEvent{
		{at("05:45:47.970"), "bond0", "up0"},
		{at("05:45:48.282"), "bond0", "up1"},
		{at("05:45:48.486"), "bond0", ""},
		{at("05:45:48.691"), "bond0", "up1"},
		{at("05:45:48.895"), "bond0", "up0"},
		{at("05:45:49.411"), "bond0", "up1"}, // exit --cleanup takes members away one by one
		{at("05:45:49.411"), "bond0", ""},
	}
	if !reflect.DeepEqual(events, want) {
		t.Fatalf("events:\n got %v\nwant %v", events, want)
	}
	if loc := events[0].Time.Location(); loc != time.UTC {
		t.Errorf("timestamps in %v, want UTC", loc)
	}
}

func TestSwitches(t *testing.T) {
	ev := func(ms int, member string) BondEvent {
		return BondEvent{Time: time.UnixMilli(int64(ms)).UTC(), Bond: "bond0", Member: member}
	}
	tests := []struct {
		name   string
		from   string
		events []BondEvent
		want   []BondEvent
	}{
		{name: "none", from: "up0"},
		{name: "failover and back", from: "up0",
			events: []BondEvent{ev(1, "up1"), ev(2, "up0")},
			want:   []BondEvent{ev(1, "up1"), ev(2, "up0")}},
		{name: "re-chosen member is no switch", from: "up0",
			events: []BondEvent{ev(1, "up0"), ev(2, "up1"), ev(3, "up1")},
			want:   []BondEvent{ev(2, "up1")}},
		{name: "all disabled is no switch, coming back is", from: "up0",
			events: []BondEvent{ev(1, "up1"), ev(2, ""), ev(3, "up1")},
			want:   []BondEvent{ev(1, "up1"), ev(3, "up1")}},
		{name: "from nothing", from: "",
			events: []BondEvent{ev(1, "up0")},
			want:   []BondEvent{ev(1, "up0")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Switches(tc.events, tc.from); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestParseBondLogLines(t *testing.T) {
	tests := []struct {
		name, line string
		want       []BondEvent
		wantErr    bool
	}{
		{name: "other bond", line: "2026-11-22T05:45:47.970Z|00055|bond|INFO|bond bond1: active member is now up3"},
		{name: "member line", line: "2026-11-22T05:45:48.282Z|00057|bond|INFO|member up0: disabled"},
		{name: "console format, no milliseconds", line: "2026-11-22T05:45:48Z|00058|bond|INFO|bond bond0: active member is now up1",
			want: []BondEvent{{Time: time.Date(2026, 11, 22, 5, 45, 48, 0, time.UTC), Bond: "bond0", Member: "up1"}}},
		{name: "old spelling", line: "2026-11-22T05:45:48.282Z|00058|bond|INFO|bond bond0: active slave is now up1",
			want: []BondEvent{{Time: time.Date(2026, 11, 22, 5, 45, 48, 282e6, time.UTC), Bond: "bond0", Member: "up1"}}},
		{name: "updelay skipped", line: "2026-11-22T05:45:48.282Z|00058|bond|INFO|bond bond0: active member is now up1, skipping remaining 200 ms updelay (since no member was enabled)",
			want: []BondEvent{{Time: time.Date(2026, 11, 22, 5, 45, 48, 282e6, time.UTC), Bond: "bond0", Member: "up1"}}},
		{name: "bad timestamp", line: "yesterday|00058|bond|INFO|bond bond0: active member is now up1", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseBondLog(strings.NewReader(tc.line+"\n"), "bond0")
			if (err != nil) != tc.wantErr {
				t.Fatalf("err %v, wantErr %v", err, tc.wantErr)
			}
			if !tc.wantErr && !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestParseOVSVersion(t *testing.T) {
	if got := parseOVSVersion("ovs-vswitchd (Open vSwitch) 3.1.0\n"); got != "3.1.0" {
		t.Errorf("got %q", got)
	}
	if got := parseOVSVersion(""); got != "" {
		t.Errorf("empty: got %q", got)
	}
}

func readTestdata(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
