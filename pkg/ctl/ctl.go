// Package ctl is uplinkctl: the operator's command line over the control
// socket.
package ctl

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/uplinkd/uplinkd/pkg/control"
	"github.com/uplinkd/uplinkd/pkg/version"
)

const usage = `usage: uplinkctl [-socket PATH] COMMAND [ARGS]

commands:
  status [--json]                 groups, uplinks (priority, carrier, active), guest ports, last failover
  fdb [--json]                    learned guests: MAC, VLAN, port, addresses
  counters [--json]               per-port packets, bytes and drops by reason
  set-active GROUP UPLINK         switch GROUP to UPLINK now and keep it there while it has carrier
  set-active GROUP auto           return GROUP to automatic selection (priority, failback)
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
	asJSON := false
	var pos []string
	for _, a := range rest {
		if a == "--json" || a == "-json" {
			asJSON = true
		} else {
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
	case "counters", "stats":
		err = counters(c, stdout, asJSON)
	case "set-active":
		if len(pos) != 2 {
			fmt.Fprint(stderr, "usage: uplinkctl set-active GROUP UPLINK|auto\n")
			return 2
		}
		err = setActive(c, stdout, pos[0], pos[1])
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
		fmt.Fprintf(w, "\ngroup %s: active %s", g.Name, active)
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
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  UPLINK\tPRIO\tCARRIER\tSTATE\tSINCE\tXDP")
		for _, u := range g.Uplinks {
			state := "standby"
			if u.Active {
				state = "ACTIVE"
			}
			if u.Error != "" {
				state = "error: " + u.Error
			}
			fmt.Fprintf(tw, "  %s\t%d\t%s\t%s\t%s\t%s\n", u.Name, u.Priority, upDown(u.Carrier), state, ago(now, u.Since), u.XDPMode)
		}
		tw.Flush()
		var ports []string
		for _, p := range g.GuestPorts {
			s := p.Name
			if p.Error != "" {
				s += " (error: " + p.Error + ")"
			} else if p.XDPMode != "" && p.XDPMode != "native" {
				s += " (" + p.XDPMode + ")"
			}
			ports = append(ports, s)
		}
		fmt.Fprintf(w, "  guest ports: %s\n", orNone(strings.Join(ports, ", ")))
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
	fmt.Fprintln(tw, "GROUP\tPORT\tROLE\tRX PKTS\tRX BYTES\tTX PKTS\tTX BYTES\tTO HOST\tDROPS\t")
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
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\t\n", p.Group, p.Port, p.Role,
			p.RxPackets, p.RxBytes, p.TxPackets, p.TxBytes, p.HostPackets, drops)
	}
	return tw.Flush()
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
