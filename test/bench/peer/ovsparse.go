package peer

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"
)

// BondStatus is what `ovs-appctl bond/show BOND` says about one bond.
// Open vSwitch renamed "slave" to "member" in 2.16; both spellings parse.
type BondStatus struct {
	Name    string
	Mode    string          // bond_mode, e.g. active-backup
	Primary string          // active-backup primary; "" when none is set
	Active  string          // active member; "" when every member is disabled
	Members map[string]bool // member name -> enabled
}

var (
	bondHeaderRE  = regexp.MustCompile(`^---- (\S+) ----$`)
	memberLineRE  = regexp.MustCompile(`^(?:member|slave) (\S+): (enabled|disabled)$`)
	activeMACRE   = regexp.MustCompile(`^active (?:member|slave) mac: \S+?\((\S*)\)$`)
	activeFlagRE  = regexp.MustCompile(`^\s+active (?:member|slave)$`)
	keyValueSepRE = regexp.MustCompile(`^([a-z_ -]+): (.*)$`)
)

// ParseBondShow parses bond/show output. The text may hold several bonds
// (bond/show without an argument); bond picks one, "" takes the first.
func ParseBondShow(text, bond string) (BondStatus, error) {
	var (
		st      BondStatus
		in      bool // inside the wanted bond's section
		found   bool
		member  string // member block being read
		flagged string // member whose block says "active member"
		macName string // name in "active member mac: ...(name)"
		sawMAC  bool
	)
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimRight(line, " \r")
		if m := bondHeaderRE.FindStringSubmatch(line); m != nil {
			if found {
				break // the wanted bond's section is over
			}
			in = bond == "" || m[1] == bond
			if in {
				found, st = true, BondStatus{Name: m[1], Members: map[string]bool{}}
			}
			continue
		}
		if !in {
			continue
		}
		if m := memberLineRE.FindStringSubmatch(line); m != nil {
			member = m[1]
			st.Members[member] = m[2] == "enabled"
			continue
		}
		if activeFlagRE.MatchString(line) && member != "" {
			flagged = member
			continue
		}
		if m := activeMACRE.FindStringSubmatch(line); m != nil {
			sawMAC, macName = true, m[1]
			continue
		}
		if m := keyValueSepRE.FindStringSubmatch(line); m != nil {
			switch m[1] {
			case "bond_mode":
				st.Mode = m[2]
			case "active-backup primary":
				st.Primary = m[2]
			}
		}
	}
	if !found {
		return BondStatus{}, fmt.Errorf("bond/show: no section for bond %q", bond)
	}
	switch {
	case sawMAC && macName != "none":
		st.Active = macName
	case sawMAC:
		st.Active = ""
	default:
		st.Active = flagged
	}
	if flagged != "" && st.Active != flagged {
		return st, fmt.Errorf("bond/show: active member %q by MAC line but %q by member block", st.Active, flagged)
	}
	if st.Active != "" {
		if _, ok := st.Members[st.Active]; !ok {
			return st, fmt.Errorf("bond/show: active member %q is not a member", st.Active)
		}
	}
	return st, nil
}

// BondEvent is one line of ovs-vswitchd.log about a bond's active member.
type BondEvent struct {
	Time   time.Time // UTC, millisecond precision (the log's)
	Bond   string
	Member string // "" for "all members disabled"
}

// ovs-vswitchd's file log lines look like
// 2026-11-22T05:38:34.657Z|00056|bond|INFO|bond bond0: active member is now up1
// (the default pattern: UTC wall clock with milliseconds).
var bondLogRE = regexp.MustCompile(`^(\S+)\|\d+\|bond\|[A-Z]+\|bond (\S+): (?:active (?:member|slave) is now ([^\s,]+)|all (?:members|slaves) disabled)`)

// ParseBondLog returns, in log order, every change of bond's active member
// the log records: "active member is now X" and "all members disabled".
// Other lines are skipped.
func ParseBondLog(r io.Reader, bond string) ([]BondEvent, error) {
	var events []BondEvent
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		m := bondLogRE.FindStringSubmatch(sc.Text())
		if m == nil || m[2] != bond {
			continue
		}
		ts, err := time.Parse(time.RFC3339Nano, m[1])
		if err != nil {
			return events, fmt.Errorf("ovs log: timestamp %q: %w", m[1], err)
		}
		events = append(events, BondEvent{Time: ts, Bond: m[2], Member: m[3]})
	}
	if err := sc.Err(); err != nil {
		return events, fmt.Errorf("ovs log: %w", err)
	}
	return events, nil
}

// Switches keeps the events at which traffic moved to a member other than
// the one active just before (from, to begin with; none after "all members
// disabled"): OVS also logs "active member is now X" when it re-chooses the
// member it already had, and "all members disabled" moves traffic nowhere.
func Switches(events []BondEvent, from string) []BondEvent {
	var out []BondEvent
	cur := from
	for _, e := range events {
		if e.Member != "" && e.Member != cur {
			out = append(out, e)
		}
		cur = e.Member
	}
	return out
}
