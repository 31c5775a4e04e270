// Package ctl is uplinkctl, the operator's command line: each command
// parses its arguments and calls uplinkd through pkg/control, the local API
// (its client, server and JSON types). ctl is the command line; control is
// the wire between it and the daemon.
package ctl

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/uplinkd/uplinkd/pkg/config"
	"github.com/uplinkd/uplinkd/pkg/control"
	"github.com/uplinkd/uplinkd/pkg/version"
)

// command is one uplinkctl command. The usage text and the dispatch are
// both made from the table, so a command exists in one place.
type command struct {
	name    string
	aliases []string
	args    string // synopsis of the positional arguments
	help    string // one line for the usage text
	// minArgs and maxArgs bound the positional arguments.
	minArgs, maxArgs int
	// json and follow say which options the command takes.
	json, follow bool
	run          func(r *invocation, args []string) error
}

// invocation is what a command runs with.
type invocation struct {
	client       *control.Client
	stdout       io.Writer
	json, follow bool
}

// usageError is a mistake on the command line: exit code 2 and the
// command's usage.
type usageError string

func (e usageError) Error() string { return string(e) }

// commands is every command, in the order the usage text lists them. It is
// set in init because the help command prints the usage, which reads it.
var commands []command

func init() {
	commands = []command{
		{name: "status", json: true, run: func(r *invocation, _ []string) error { return status(r.client, r.stdout, r.json) },
			help: "groups, uplinks (priority, carrier, active), guest ports, last failover"},
		{name: "fdb", aliases: []string{"guests"}, json: true, run: func(r *invocation, _ []string) error { return fdb(r.client, r.stdout, r.json) },
			help: "learned guests: MAC, VLAN, port, addresses"},
		{name: "counters", json: true, run: func(r *invocation, _ []string) error { return counters(r.client, r.stdout, r.json) },
			help: "per-port packets, bytes and drops by reason"},
		{name: "stats", json: true, run: func(r *invocation, _ []string) error { return stats(r.client, r.stdout, r.json) },
			help: "counters, plus per group failovers by reason and announcements sent/suppressed"},
		{name: "events", json: true, follow: true, run: func(r *invocation, _ []string) error { return events(r.client, r.stdout, r.json, r.follow) },
			help: "the failover timeline: detected, switched, announced (--follow: as it happens)"},
		{name: "reload", json: true, run: reload,
			help: "re-read the configuration file (as SIGHUP): a bad file changes nothing"},
		{name: "set-active", args: "GROUP UPLINK|auto", minArgs: 2, maxArgs: 2, run: func(r *invocation, a []string) error { return setActive(r.client, r.stdout, a[0], a[1]) },
			help: "switch GROUP to UPLINK now and keep it there while it has carrier (auto: undo)"},
		{name: "set-priority", args: "GROUP UPLINK N", minArgs: 3, maxArgs: 3, run: setPriority,
			help: "give UPLINK priority N (0..65535, lower is preferred) now"},
		{name: "set-state", args: "GROUP UPLINK usable|standby|disabled", minArgs: 3, maxArgs: 3, run: setState,
			help: "set UPLINK's admin state (standby: used only when no usable uplink is left)"},
		{name: "add-uplink", args: "GROUP IF [PRIORITY [STATE]]", minArgs: 2, maxArgs: 4, run: addUplink,
			help: "add an uplink now (priority default 100, state usable)"},
		{name: "remove-uplink", args: "GROUP IF", minArgs: 2, maxArgs: 2, run: groupCall((*control.Client).RemoveUplink),
			help: "remove an uplink now (if active, the group moves first)"},
		{name: "add-port", args: "GROUP IF", minArgs: 2, maxArgs: 2, run: groupCall((*control.Client).AddPort),
			help: "add a guest port now"},
		{name: "remove-port", args: "GROUP IF", minArgs: 2, maxArgs: 2, run: groupCall((*control.Client).RemovePort),
			help: "remove a guest port now (what was learned behind it is forgotten)"},
		{name: "move-guest", args: "GROUP MAC[@VLAN] UPLINK", minArgs: 3, maxArgs: 3, run: moveGuest,
			help: "balance groups: send the guest (its bucket) through UPLINK while it is usable"},
		{name: "version", run: func(r *invocation, _ []string) error {
			_, err := fmt.Fprintln(r.stdout, "uplinkctl", version.String())
			return err
		}, help: "uplinkctl's version"},
		{name: "help", aliases: []string{"-h", "--help"}, run: func(r *invocation, _ []string) error {
			_, err := fmt.Fprint(r.stdout, usage())
			return err
		}, help: "this text"},
	}
}

// synopsis is the command with its options and arguments.
func (c *command) synopsis() string {
	s := c.name
	if c.follow {
		s += " [--follow]"
	}
	if c.json {
		s += " [--json]"
	}
	if c.args != "" {
		s += " " + c.args
	}
	return s
}

// usage is the whole usage text, one line per command.
func usage() string {
	var b strings.Builder
	b.WriteString("usage: uplinkctl [-socket PATH] COMMAND [ARGS]\n\ncommands:\n")
	for _, c := range commands {
		syn := c.synopsis()
		fmt.Fprintf(&b, "  %-*s%s\n", max(32, len(syn)+2), syn, c.help)
	}
	return b.String()
}

func lookup(name string) *command {
	for i := range commands {
		if c := &commands[i]; c.name == name || slices.Contains(c.aliases, name) {
			return c
		}
	}
	return nil
}

// parse takes the command's options out of args (anywhere among them) and
// checks the number of the rest.
func (c *command) parse(r *invocation, args []string) ([]string, error) {
	var pos []string
	for _, a := range args {
		switch a {
		case "--json", "-json":
			if !c.json {
				return nil, usageError(a + " is not an option of " + c.name)
			}
			r.json = true
		case "--follow", "-follow", "-f":
			if !c.follow {
				return nil, usageError(a + " is not an option of " + c.name)
			}
			r.follow = true
		default:
			pos = append(pos, a)
		}
	}
	if n := len(pos); n < c.minArgs || n > c.maxArgs {
		want := strconv.Itoa(c.minArgs)
		if c.maxArgs != c.minArgs {
			want += " to " + strconv.Itoa(c.maxArgs)
		}
		return nil, usageError(fmt.Sprintf("want %s arguments, got %d", want, n))
	}
	return pos, nil
}

// Main runs uplinkctl with args (without the program name) and returns
// the exit code: 0, 1 when the command failed, 2 for a usage mistake.
func Main(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("uplinkctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage()) }
	socket := fs.String("socket", control.DefaultSocket, "uplinkd control socket")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	cmd := lookup(fs.Arg(0))
	if cmd == nil {
		fmt.Fprintf(stderr, "uplinkctl: unknown command %q\n%s", fs.Arg(0), usage())
		return 2
	}
	r := &invocation{client: control.NewClient(*socket), stdout: stdout}
	pos, err := cmd.parse(r, fs.Args()[1:])
	if err == nil {
		err = cmd.run(r, pos)
	}
	var uerr usageError
	switch {
	case errors.As(err, &uerr):
		fmt.Fprintf(stderr, "uplinkctl %s: %s\nusage: uplinkctl %s\n", cmd.name, uerr, cmd.synopsis())
		return 2
	case err != nil:
		fmt.Fprintln(stderr, "uplinkctl:", err)
		return 1
	}
	return 0
}

func reload(r *invocation, _ []string) error {
	res, err := r.client.Reload()
	switch {
	case err != nil:
		return err
	case r.json:
		return printJSON(r.stdout, res)
	case len(res.Changes) == 0:
		fmt.Fprintln(r.stdout, "configuration reloaded: nothing changed")
	default:
		fmt.Fprintf(r.stdout, "configuration reloaded:\n  %s\n", strings.Join(res.Changes, "\n  "))
	}
	return nil
}

func setPriority(r *invocation, a []string) error {
	n, err := strconv.Atoi(a[2])
	if err != nil {
		return usageError(fmt.Sprintf("priority %q is not a number", a[2]))
	}
	return setUplink(r.client, r.stdout, a[0], a[1], control.SetUplinkRequest{Priority: &n})
}

func setState(r *invocation, a []string) error {
	return setUplink(r.client, r.stdout, a[0], a[1], control.SetUplinkRequest{State: a[2]})
}

func addUplink(r *invocation, a []string) error {
	req := control.AddUplinkRequest{Name: a[1]}
	if len(a) > 2 {
		n, err := strconv.Atoi(a[2])
		if err != nil {
			return usageError(fmt.Sprintf("priority %q is not a number", a[2]))
		}
		req.Priority = &n
	}
	if len(a) > 3 {
		req.State = a[3]
	}
	return changed(r.stdout, a[0], func() (control.Status, error) { return r.client.AddUplink(a[0], req) })
}

// groupCall is a command GROUP IF that makes one change to a group's ports.
func groupCall(call func(c *control.Client, group, name string) (control.Status, error)) func(*invocation, []string) error {
	return func(r *invocation, a []string) error {
		return changed(r.stdout, a[0], func() (control.Status, error) { return call(r.client, a[0], a[1]) })
	}
}

func moveGuest(r *invocation, a []string) error {
	req := control.MoveGuestRequest{MAC: a[1], Uplink: a[2]}
	if mac, vlan, ok := strings.Cut(a[1], "@"); ok {
		n, err := strconv.ParseUint(vlan, 10, 16)
		if err != nil || n > config.MaxVLAN {
			return usageError(fmt.Sprintf("VLAN %q is not a number from 0 to %d", vlan, config.MaxVLAN))
		}
		req.MAC, req.VLAN = mac, uint16(n)
	}
	return changed(r.stdout, a[0], func() (control.Status, error) { return r.client.MoveGuest(a[0], req) })
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
		writeHostPorts(w, g.HostPorts)
	}
}

// writeHostPorts lists the host's own interfaces on the switch, one line
// each, with their addresses: IPv6 link-local ones left out (every
// interface has one), so a port the operator gave no address says so.
func writeHostPorts(w io.Writer, hps []control.HostPortStatus) {
	if len(hps) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  HOST PORT\tSWITCH END\tVLAN\tMAC\tMTU\tSTATE\tADDRESSES")
	for _, hp := range hps {
		vlan := "untagged"
		if hp.VLAN != 0 {
			vlan = strconv.Itoa(int(hp.VLAN))
		}
		mtu := "-"
		if hp.MTU > 0 {
			mtu = strconv.Itoa(hp.MTU)
		}
		var addrs []string
		for _, a := range hp.Addrs {
			if ip, err := netip.ParseAddr(a); err != nil || !ip.Is6() || !ip.IsLinkLocalUnicast() {
				addrs = append(addrs, a)
			}
		}
		shown := strings.Join(addrs, ", ")
		switch {
		case hp.State != "up" && hp.State != "down", len(addrs) == 0 && hp.Error != "":
			shown = "-" // not read, or maybe not: the error line says why
		case len(addrs) == 0:
			shown = "no address: the host's traffic does not use it"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\n", hp.Name, hp.SwitchEnd, vlan, orDash(hp.MAC, ""), mtu, hp.State, shown)
	}
	tw.Flush()
	for _, hp := range hps {
		if hp.Error != "" {
			fmt.Fprintf(w, "  host port %s: error: %s\n", hp.Name, hp.Error)
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
