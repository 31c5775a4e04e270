// Package ctl is uplinkctl: the operator's command line over the control
// socket.
package ctl

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/uplinkd/uplinkd/pkg/config"
	"github.com/uplinkd/uplinkd/pkg/control"
	"github.com/uplinkd/uplinkd/pkg/version"
)

const usage = `usage: uplinkctl [-socket PATH] COMMAND [ARGS]

commands:
  status [--json]                 groups, uplinks (priority, carrier, active), guest ports, last failover
  fdb [--json]                    learned guests: MAC, VLAN, port, addresses
  counters [--json]               per-port packets, bytes and drops by reason
  stats [--json]                  counters, plus per group failovers by reason and announcements sent/suppressed
  events [--follow] [--json]      the failover timeline: detected, switched, announced (--follow: as it happens)
  reload                          re-read the configuration file (as SIGHUP): a bad file changes nothing
  set-active GROUP UPLINK         switch GROUP to UPLINK now and keep it there while it has carrier
  set-active GROUP auto           return GROUP to automatic selection (priority, failback)
  set-priority GROUP UPLINK N     give UPLINK priority N (0..65535, lower is preferred) now
  set-state GROUP UPLINK STATE    usable | standby (used only when no usable uplink is left) | disabled
  add-uplink GROUP IF [PRIO [STATE]]  add an uplink now (priority default 100, state usable)
  remove-uplink GROUP IF          remove an uplink now (if active, the group moves first)
  add-port GROUP IF               add a guest port now
  remove-port GROUP IF            remove a guest port now (what was learned behind it is forgotten)
  move-guest GROUP MAC[@VLAN] UPLINK  balance groups: send the guest (its bucket) through UPLINK while it is usable
  version
`

// Main runs uplinkctl with args (without the program name) and returns
// the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("uplinkctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	socket := fs.String("socket", control.DefaultSocket, "uplinkd control socket")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	cmd, rest := fs.Arg(0), fs.Args()[1:]
	asJSON, follow := false, false
	var pos []string
	for _, a := range rest {
		switch a {
		case "--json", "-json":
			asJSON = true
		case "--follow", "-follow", "-f":
			follow = true
		default:
			pos = append(pos, a)
		}
	}
	c := control.NewClient(*socket)
	var err error
	switch cmd {
	case "status":
		err = status(c, stdout, asJSON)
	case "fdb", "guests":
		err = fdb(c, stdout, asJSON)
	case "counters":
		err = counters(c, stdout, asJSON)
	case "stats":
		err = stats(c, stdout, asJSON)
	case "events":
		err = events(c, stdout, asJSON, follow)
	case "reload":
		var r control.ReloadResult
		if r, err = c.Reload(); err == nil {
			if asJSON {
				err = printJSON(stdout, r)
			} else if len(r.Changes) == 0 {
				fmt.Fprintln(stdout, "configuration reloaded: nothing changed")
			} else {
				fmt.Fprintf(stdout, "configuration reloaded:\n  %s\n", strings.Join(r.Changes, "\n  "))
			}
		}
	case "set-active":
		if len(pos) != 2 {
			fmt.Fprint(stderr, "usage: uplinkctl set-active GROUP UPLINK|auto\n")
			return 2
		}
		err = setActive(c, stdout, pos[0], pos[1])
	case "set-priority", "set-state":
		if len(pos) != 3 {
			fmt.Fprintf(stderr, "usage: uplinkctl %s GROUP UPLINK %s\n", cmd, map[string]string{"set-priority": "N", "set-state": "usable|standby|disabled"}[cmd])
			return 2
		}
		var req control.SetUplinkRequest
		if cmd == "set-state" {
			req.State = pos[2]
		} else {
			n, convErr := strconv.Atoi(pos[2])
			if convErr != nil {
				fmt.Fprintf(stderr, "uplinkctl: priority %q is not a number\n", pos[2])
				return 2
			}
			req.Priority = &n
		}
		err = setUplink(c, stdout, pos[0], pos[1], req)
	case "add-uplink":
		if len(pos) < 2 || len(pos) > 4 {
			fmt.Fprint(stderr, "usage: uplinkctl add-uplink GROUP IF [PRIORITY [STATE]]\n")
			return 2
		}
		req := control.AddUplinkRequest{Name: pos[1]}
		if len(pos) > 2 {
			n, convErr := strconv.Atoi(pos[2])
			if convErr != nil {
				fmt.Fprintf(stderr, "uplinkctl: priority %q is not a number\n", pos[2])
				return 2
			}
			req.Priority = &n
		}
		if len(pos) > 3 {
			req.State = pos[3]
		}
		err = changed(stdout, pos[0], func() (control.Status, error) { return c.AddUplink(pos[0], req) })
	case "remove-uplink", "add-port", "remove-port":
		if len(pos) != 2 {
			fmt.Fprintf(stderr, "usage: uplinkctl %s GROUP IF\n", cmd)
			return 2
		}
		call := map[string]func(string, string) (control.Status, error){
			"remove-uplink": c.RemoveUplink, "add-port": c.AddPort, "remove-port": c.RemovePort}[cmd]
		err = changed(stdout, pos[0], func() (control.Status, error) { return call(pos[0], pos[1]) })
	case "move-guest":
		if len(pos) != 3 {
			fmt.Fprint(stderr, "usage: uplinkctl move-guest GROUP MAC[@VLAN] UPLINK\n")
			return 2
		}
		req := control.MoveGuestRequest{MAC: pos[1], Uplink: pos[2]}
		if mac, vlan, ok := strings.Cut(pos[1], "@"); ok {
			n, convErr := strconv.ParseUint(vlan, 10, 16)
			if convErr != nil || n > config.MaxVLAN {
				fmt.Fprintf(stderr, "uplinkctl: VLAN %q is not a number from 0 to %d\n", vlan, config.MaxVLAN)
				return 2
			}
			req.MAC, req.VLAN = mac, uint16(n)
		}
		err = changed(stdout, pos[0], func() (control.Status, error) { return c.MoveGuest(pos[0], req) })
	case "version":
		fmt.Fprintln(stdout, "uplinkctl", version.String())
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "uplinkctl: unknown command %q\n%s", cmd, usage)
		return 2
	}
	if err != nil {
		fmt.Fprintln(stderr, "uplinkctl:", err)
		return 1
	}
	return 0
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func status(c *control.Client, w io.Writer, asJSON bool) error {
	st, err := c.Status()
	if err != nil {
		return err
	}
	if asJSON {
		return printJSON(w, st)
	}
	writeStatus(w, st, time.Now())
	return nil
}

// writeStatus renders the status for a person, bonding's
// /proc/net/bonding style: one block per group.
func writeStatus(w io.Writer, st control.Status, now time.Time) {
	fmt.Fprintf(w, "uplinkd %s, up %s, state in %s\n", st.Version, ago(now, st.Started), st.PinPath)
	if len(st.FailoverPaths) > 0 {
		fmt.Fprintf(w, "failover: %s", strings.Join(st.FailoverPaths, ", then "))
		var refused []string
		for p, why := range st.RefusedPaths {
			refused = append(refused, p+" ("+why+")")
		}
		sort.Strings(refused)
		if len(refused) > 0 {
			fmt.Fprintf(w, "; unavailable: %s", strings.Join(refused, "; "))
		}
		fmt.Fprintln(w)
	}
	for _, g := range st.Groups {
		active := g.Active
		if active == "" {
			active = "NONE (no usable uplink)"
		}
		if g.Mode == "balance" {
			fmt.Fprintf(w, "\ngroup %s (balance): designated %s", g.Name, active)
		} else {
			fmt.Fprintf(w, "\ngroup %s: active %s", g.Name, active)
		}
		if g.Manual != "" {
			fmt.Fprintf(w, " (set by hand)")
		}
		fmt.Fprintf(w, "; failback %s; failovers %d; guests learned %d", onOff(g.Failback), g.Failovers, g.LearnedGuests)
		if g.Announcing {
			fmt.Fprint(w, "; announcing")
		}
		fmt.Fprintln(w)
		if !g.LastChange.IsZero() {
			fmt.Fprintf(w, "  last change %s ago: %s\n", ago(now, g.LastChange), g.LastReason)
		}
		if f := g.LastFailover; f != nil {
			fmt.Fprintf(w, "  last failover %s -> %s (%s", orNone(f.From), orNone(f.To), f.Reason)
			if f.Source != "" {
				fmt.Fprintf(w, ", seen by %s", f.Source)
			}
			fmt.Fprintf(w, "): detected->switched %s", f.Latency)
			if f.AnnounceFrames > 0 {
				fmt.Fprintf(w, ", %d frames announced in %s", f.AnnounceFrames, f.AnnounceLast.Sub(f.Switched).Round(time.Microsecond))
			}
			fmt.Fprintln(w)
		}
		if g.UpDelay > 0 || g.DownDelay > 0 {
			fmt.Fprintf(w, "  up-delay %s, down-delay %s\n", g.UpDelay, g.DownDelay)
		}
		// Like a vNIC failover listing: one line per backing uplink.
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  UPLINK\tPRIO\tROLE\tCARRIER\tPROBE\tADMIN\tHOLD\tSINCE\tFAILOVERS\tLAST REASON\tHOOK")
		for _, u := range g.Uplinks {
			role := "standby"
			switch {
			case u.Error != "":
				role = "error: " + u.Error
			case u.Active && g.Mode == "balance":
				role = "DESIGNATED" // carries guests, and delivers broadcasts
			case u.Active:
				role = "ACTIVE"
			case !u.Usable:
				role = "unusable"
			case g.Mode == "balance" && u.Buckets > 0:
				role = "carrying"
			}
			hold := "-"
			if u.Hold > 0 {
				hold = u.Hold.Round(time.Millisecond).String()
			}
			fmt.Fprintf(tw, "  %s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", u.Name, u.Priority, role, upDown(u.Carrier),
				orDash(u.Probe, "none"), orDash(u.State, ""), hold, ago(now, u.Since), u.Failovers, orDash(u.LastReason, ""), u.Hook)
		}
		tw.Flush()
		if g.Mode == "balance" {
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "  UPLINK\tBUCKETS\tGUESTS\tTX PACKETS\tLOAD")
			for _, u := range g.Uplinks {
				load := "-" // rebalancing off
				if u.LoadBps > 0 {
					load = fmt.Sprintf("%.1f Mbit/s", float64(u.LoadBps)*8/1e6)
				}
				fmt.Fprintf(tw, "  %s\t%d\t%d\t%d\t%s\n", u.Name, u.Buckets, u.Guests, u.TxPackets, load)
			}
			tw.Flush()
		}
		var ports []string
		for _, p := range g.GuestPorts {
			s := p.Name
			switch {
			case p.VLAN != 0:
				s += fmt.Sprintf(" (vlan %d)", p.VLAN)
			case len(p.Trunk) > 0:
				s += fmt.Sprintf(" (trunk %v)", p.Trunk)
			}
			if p.Error != "" {
				s += " (error: " + p.Error + ")"
			} else if p.Hook != "" && p.Hook != "tcx" {
				s += " (" + p.Hook + ")"
			}
			ports = append(ports, s)
		}
		fmt.Fprintf(w, "  guest ports: %s\n", orNone(strings.Join(ports, ", ")))
		if len(g.GuestPatterns) > 0 {
			fmt.Fprintf(w, "  guest port patterns: %s (guests arrived: %d)\n", strings.Join(g.GuestPatterns, ", "), g.Arrivals)
		}
	}
}

func fdb(c *control.Client, w io.Writer, asJSON bool) error {
	gs, err := c.Guests()
	if err != nil {
		return err
	}
	sort.Slice(gs, func(i, j int) bool {
		a, b := gs[i], gs[j]
		if a.Group != b.Group {
			return a.Group < b.Group
		}
		if a.VLAN != b.VLAN {
			return a.VLAN < b.VLAN
		}
		return a.MAC < b.MAC
	})
	if asJSON {
		return printJSON(w, gs)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "GROUP\tVLAN\tMAC\tPORT\tAGE\tADDRESSES")
	for _, g := range gs {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", g.Group, g.VLAN, g.MAC, g.Port, g.Age.Round(time.Second), strings.Join(g.Addrs, " "))
	}
	return tw.Flush()
}

func counters(c *control.Client, w io.Writer, asJSON bool) error {
	pcs, err := c.Counters()
	if err != nil {
		return err
	}
	if asJSON {
		return printJSON(w, pcs)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "GROUP\tPORT\tROLE\tRX PKTS\tRX BYTES\tTX PKTS\tTX BYTES\tTO HOST\tNOT LEARNED\tDROPS\t")
	for _, p := range pcs {
		var total uint64
		var reasons []string
		for r, n := range p.Drops {
			total += n
			if n > 0 {
				reasons = append(reasons, fmt.Sprintf("%s=%d", r, n))
			}
		}
		sort.Strings(reasons)
		drops := fmt.Sprint(total)
		if len(reasons) > 0 {
			drops += " (" + strings.Join(reasons, " ") + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t\n", p.Group, p.Port, p.Role,
			p.RxPackets, p.RxBytes, p.TxPackets, p.TxBytes, p.HostPackets, p.LearnRefused, drops)
	}
	return tw.Flush()
}

// events prints the failover timeline; with follow it keeps printing
// changes until it is interrupted: a new event when it is logged, and its
// announcement when that ends. --json writes one event per line.
func events(c *control.Client, w io.Writer, asJSON, follow bool) error {
	var since uint64
	printed := map[uint64]bool{}
	for {
		wait := time.Duration(0)
		if follow {
			wait = 5 * time.Second
		}
		e, err := c.Events(since, wait)
		if err != nil {
			return err
		}
		for _, ev := range e.Events {
			if asJSON {
				b, err := json.Marshal(ev)
				if err != nil {
					return err
				}
				fmt.Fprintf(w, "%s\n", b)
				continue
			}
			if !printed[ev.Seq] {
				printed[ev.Seq] = true
				fmt.Fprintln(w, eventLine(ev))
			} else if ev.AnnounceFrames > 0 || ev.AnnounceErrors > 0 {
				fmt.Fprintf(w, "  #%d %s\n", ev.Seq, announceText(ev))
			}
		}
		since = max(since, e.Version)
		if !follow {
			return nil
		}
	}
}

func eventLine(ev control.FailoverEvent) string {
	s := fmt.Sprintf("#%d %s %s: %s -> %s (%s", ev.Seq, ev.Switched.UTC().Format("2006-01-02T15:04:05.000000Z"),
		ev.Group, orNone(ev.From), orNone(ev.To), ev.Reason)
	if ev.Source != "" {
		s += ", seen by " + ev.Source
	}
	s += fmt.Sprintf("): detected -> switched %s", ev.Latency)
	if ev.AnnounceFrames > 0 || ev.AnnounceErrors > 0 {
		s += "; " + announceText(ev)
	}
	return s
}

func announceText(ev control.FailoverEvent) string {
	s := fmt.Sprintf("announced %d frames", ev.AnnounceFrames)
	if !ev.AnnounceFirst.IsZero() {
		s += fmt.Sprintf(", first +%s, last +%s after the switch", ev.AnnounceFirst.Sub(ev.Switched).Round(time.Microsecond),
			ev.AnnounceLast.Sub(ev.Switched).Round(time.Microsecond))
	}
	if ev.AnnounceErrors > 0 {
		s += fmt.Sprintf(", %d errors", ev.AnnounceErrors)
	}
	return s
}

// stats is counters plus each group's event counters: what the Prometheus
// metrics show, without Prometheus.
func stats(c *control.Client, w io.Writer, asJSON bool) error {
	if asJSON {
		pcs, err := c.Counters()
		if err != nil {
			return err
		}
		st, err := c.Status()
		if err != nil {
			return err
		}
		type groupStats struct {
			Group              string         `json:"group"`
			FailoversByReason  map[string]int `json:"failovers_by_reason"`
			AnnounceFrames     uint64         `json:"announce_frames"`
			AnnounceSuppressed uint64         `json:"announce_suppressed"`
		}
		out := struct {
			Ports  []control.PortCounters `json:"ports"`
			Groups []groupStats           `json:"groups"`
		}{Ports: pcs}
		for _, g := range st.Groups {
			out.Groups = append(out.Groups, groupStats{g.Name, g.FailoversByReason, g.AnnounceFrames, g.AnnounceSuppressed})
		}
		return printJSON(w, out)
	}
	if err := counters(c, w, false); err != nil {
		return err
	}
	st, err := c.Status()
	if err != nil {
		return err
	}
	for _, g := range st.Groups {
		var reasons []string
		for r, n := range g.FailoversByReason {
			reasons = append(reasons, fmt.Sprintf("%s=%d", r, n))
		}
		sort.Strings(reasons)
		fmt.Fprintf(w, "\ngroup %s: failovers %d (%s); announcement frames sent %d, suppressed by the rate cap %d\n",
			g.Name, g.Failovers, orNone(strings.Join(reasons, ", ")), g.AnnounceFrames, g.AnnounceSuppressed)
	}
	return nil
}

func setActive(c *control.Client, w io.Writer, group, uplink string) error {
	var (
		st  control.Status
		err error
	)
	if uplink == "auto" {
		st, err = c.ClearManual(group)
	} else {
		st, err = c.SetActive(group, uplink)
	}
	if err != nil {
		return err
	}
	for _, g := range st.Groups {
		if g.Name == group {
			fmt.Fprintf(w, "group %s: active %s", g.Name, orNone(g.Active))
			if g.Manual != "" {
				fmt.Fprintf(w, " (set by hand; `uplinkctl set-active %s auto` returns to automatic)", g.Name)
			}
			fmt.Fprintln(w)
		}
	}
	return nil
}

// changed runs a change of group's ports and prints the group's ports after.
func changed(w io.Writer, group string, do func() (control.Status, error)) error {
	st, err := do()
	if err != nil {
		return err
	}
	for _, g := range st.Groups {
		if g.Name != group {
			continue
		}
		var ups, guests []string
		for _, u := range g.Uplinks {
			s := fmt.Sprintf("%s (prio %d)", u.Name, u.Priority)
			if u.Error != "" {
				s += " error: " + u.Error
			}
			ups = append(ups, s)
		}
		for _, p := range g.GuestPorts {
			s := p.Name
			if p.Error != "" {
				s += " (error: " + p.Error + ")"
			}
			guests = append(guests, s)
		}
		fmt.Fprintf(w, "group %s: active %s; uplinks %s; guest ports %s\n", g.Name, orNone(g.Active),
			orNone(strings.Join(ups, ", ")), orNone(strings.Join(guests, ", ")))
	}
	return nil
}

func setUplink(c *control.Client, w io.Writer, group, uplink string, req control.SetUplinkRequest) error {
	st, err := c.SetUplink(group, uplink, req)
	if err != nil {
		return err
	}
	for _, g := range st.Groups {
		if g.Name != group {
			continue
		}
		for _, u := range g.Uplinks {
			if u.Name == uplink {
				fmt.Fprintf(w, "group %s: uplink %s priority %d, %s; active %s\n", g.Name, u.Name, u.Priority, u.State, orNone(g.Active))
			}
		}
	}
	return nil
}

// orDash shows "-" for an empty value or the given default.
func orDash(s, dflt string) string {
	if s == "" || s == dflt {
		return "-"
	}
	return s
}

func ago(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t)
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Hour:
		return d.Round(time.Second).String()
	default:
		return d.Round(time.Minute).String()
	}
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func upDown(b bool) string {
	if b {
		return "up"
	}
	return "DOWN"
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
