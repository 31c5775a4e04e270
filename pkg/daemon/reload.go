package daemon

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/uplinkd/uplinkd/pkg/config"
	"github.com/uplinkd/uplinkd/pkg/control"
)

// Reload is SIGHUP and `uplinkctl reload`: the configuration file is read
// and validated whole first, so a bad file changes nothing and the error
// names the field. A good one is applied as a difference: only the
// groups, uplinks and guest ports it changes are touched, through the same
// steps as the run-time commands (a changed guest port profile re-attaches
// that port). Settings that cannot change under a running data plane are
// refused, with nothing applied: they need a restart, across which the
// data plane keeps forwarding.
func (d *Daemon) Reload() ([]string, error) {
	return d.reload(context.Background())
}

// reload reads and checks the file on the caller's goroutine, then applies
// it on the event loop. The changes made are listed, also when an error
// stopped it half way.
func (d *Daemon) reload(ctx context.Context) ([]string, error) {
	if d.ConfigPath == "" {
		return nil, fmt.Errorf("%w: uplinkd was not started from a configuration file", control.ErrRefused)
	}
	cfg, err := config.Load(d.ConfigPath)
	if err != nil {
		return nil, fmt.Errorf("%w: nothing changed: %v", control.ErrRefused, err)
	}
	var changes []string
	if cerr := d.calls.call(ctx, func() { changes, err = d.applyConfig(cfg) }); cerr != nil {
		return nil, fmt.Errorf("nothing changed: %w", cerr)
	}
	return changes, err
}

// applyConfig applies a loaded configuration as Reload describes.
func (d *Daemon) applyConfig(cfg *config.Config) ([]string, error) {
	if need := restartOnly(d.cfg, cfg); len(need) > 0 {
		return nil, fmt.Errorf("%w: nothing changed: these settings need a restart (the data plane keeps forwarding across one): %s",
			control.ErrRefused, strings.Join(need, ", "))
	}
	var changes []string
	note := func(format string, args ...any) {
		c := fmt.Sprintf(format, args...)
		changes = append(changes, c)
		d.log.Info("reload: " + c)
	}
	now := time.Now()
	// Removals first, in every group: an interface the file moves from one
	// group to another is free before it is added.
	for _, gc := range cfg.Groups {
		g, _ := d.groupByName(gc.Name) // restartOnly checked the set of groups
		if err := d.reloadRemove(g, gc, note); err != nil {
			return changes, err
		}
	}
	for _, gc := range cfg.Groups {
		g, _ := d.groupByName(gc.Name)
		old := g.cfg
		if gc.Failback != old.Failback || gc.UpDelay != old.UpDelay || gc.DownDelay != old.DownDelay {
			dec, err := g.policy.SetTiming(gc.Failback, gc.UpDelay, gc.DownDelay, now)
			if err != nil {
				return changes, err
			}
			note("group %s: failback %t, up_delay %s, down_delay %s", gc.Name, gc.Failback, gc.UpDelay, gc.DownDelay)
			g.cfg.Failback, g.cfg.UpDelay, g.cfg.DownDelay = gc.Failback, gc.UpDelay, gc.DownDelay
			g.applyFrom(dec, now, time.Time{}, "reload")
		}
		if gc.Announce != old.Announce {
			g.cfg.Announce = gc.Announce
			note("group %s: announce count %d, interval %s", gc.Name, gc.Announce.Count, gc.Announce.Interval)
		}
		if err := d.reloadAdd(g, old, gc, note); err != nil {
			return changes, err
		}
		g.cfg = gc
	}
	if cfg.LogLevel != d.cfg.LogLevel && d.Level != nil {
		d.Level.Set(cfg.LogLevel)
		note("log_level %s", cfg.LogLevel)
	}
	if cfg.AnnounceRateLimit != d.cfg.AnnounceRateLimit || cfg.AnnounceBurst != d.cfg.AnnounceBurst {
		d.ann.send.SetRate(cfg.AnnounceRateLimit, cfg.AnnounceBurst)
		note("announce_rate_limit %d, announce_burst %d", cfg.AnnounceRateLimit, cfg.AnnounceBurst)
	}
	d.cfg = cfg
	if d.watch != nil {
		d.watch.SetPatterns(cfg.GuestPatterns()...)
	}
	for _, p := range d.matchExisting() {
		p.group.attach(p, 0)
		note("group %s: guest port %s matched %s", p.group.cfg.Name, p.name, p.pattern)
	}
	d.rewatch()
	if len(changes) == 0 {
		d.log.Info("reload: the configuration is unchanged")
	}
	return changes, nil
}

// restartOnly lists what differs between a and b that a running daemon
// does not change.
func restartOnly(a, b *config.Config) []string {
	var out []string
	if a.PinPath != b.PinPath {
		out = append(out, "pin_path")
	}
	if a.ControlSocket != b.ControlSocket {
		out = append(out, "control_socket")
	}
	if a.MetricsListen != b.MetricsListen {
		out = append(out, "metrics_listen")
	}
	if a.CarrierPollInterval != b.CarrierPollInterval {
		out = append(out, "carrier_poll_interval")
	}
	names := func(c *config.Config) []string {
		var n []string
		for _, g := range c.Groups {
			n = append(n, g.Name)
		}
		slices.Sort(n)
		return n
	}
	if !slices.Equal(names(a), names(b)) {
		out = append(out, fmt.Sprintf("the set of groups (%v -> %v)", names(a), names(b)))
		return out
	}
	for _, ga := range a.Groups {
		for _, gb := range b.Groups {
			if ga.Name != gb.Name {
				continue
			}
			if ga.Mode != gb.Mode {
				out = append(out, fmt.Sprintf("group %s: mode", ga.Name))
			}
			if !reflect.DeepEqual(ga.Probe, gb.Probe) {
				out = append(out, fmt.Sprintf("group %s: probe", ga.Name))
			}
			if ga.Rebalance != gb.Rebalance {
				out = append(out, fmt.Sprintf("group %s: rebalance", ga.Name))
			}
		}
	}
	return out
}

// reloadRemove takes out of g what the new configuration cur drops or
// changes: uplinks, named guest ports whose profile changed (they come
// back in reloadAdd), and the ports patterns made when the patterns
// changed (Reload matches them again). Called before g.cfg takes cur.
func (d *Daemon) reloadRemove(g *group, cur config.Group, note func(string, ...any)) error {
	for _, u := range g.cfg.Uplinks {
		if !slices.ContainsFunc(cur.Uplinks, func(x config.Uplink) bool { return x.Name == u.Name }) {
			if err := d.removeUplink(g, u.Name); err != nil {
				return err
			}
			note("group %s: uplink %s removed", g.cfg.Name, u.Name)
		}
	}
	now := namedPorts(cur.GuestPorts)
	for name, p := range namedPorts(g.cfg.GuestPorts) {
		if q, ok := now[name]; ok && reflect.DeepEqual(p, q) {
			continue
		}
		d.dropGuest(g, name)
		if _, ok := now[name]; !ok {
			note("group %s: guest port %s removed", g.cfg.Name, name)
		}
	}
	d.reloadRemoveHostPorts(g, cur, note)
	if reflect.DeepEqual(profiles(g.cfg), profiles(cur)) {
		return nil
	}
	for _, p := range slices.Clone(g.guests) {
		if p.pattern != "" {
			d.removeGuest(p)
		}
	}
	note("group %s: guest port patterns %v", g.cfg.Name, cur.Patterns())
	return nil
}

// reloadAdd adds the uplinks, host ports and named guest ports the new
// configuration cur brings (or changed: reloadRemove took them out), and
// re-prioritises uplinks. Called after reloadRemove. Host ports come
// before guest ports: in a group patterns filled, the host's own port
// keeps the room its re-attach needs, and a guest port is refused.
func (d *Daemon) reloadAdd(g *group, old, cur config.Group, note func(string, ...any)) error {
	for _, u := range cur.Uplinks {
		i := slices.IndexFunc(old.Uplinks, func(x config.Uplink) bool { return x.Name == u.Name })
		prio := u.Priority
		switch {
		case i < 0:
			if err := d.addUplink(g, control.AddUplinkRequest{Name: u.Name, Priority: &prio, State: u.State}); err != nil {
				return err
			}
			note("group %s: uplink %s added (priority %d, %s)", g.cfg.Name, u.Name, u.Priority, u.State)
		case old.Uplinks[i] != u:
			if err := g.setUplink(u.Name, control.SetUplinkRequest{Priority: &prio, State: u.State}); err != nil {
				return err
			}
			note("group %s: uplink %s priority %d, %s", g.cfg.Name, u.Name, u.Priority, u.State)
		}
	}
	if err := d.reloadAddHostPorts(g, old, cur, note); err != nil {
		return err
	}
	was := namedPorts(old.GuestPorts)
	for name, q := range namedPorts(cur.GuestPorts) {
		p, ok := was[name]
		if ok && reflect.DeepEqual(p, q) {
			continue
		}
		if err := d.addPort(g, q); err != nil {
			return err
		}
		if ok {
			note("group %s: guest port %s re-attached with its new profile", g.cfg.Name, name)
		} else {
			note("group %s: guest port %s added", g.cfg.Name, name)
		}
	}
	return nil
}

// reloadRemoveHostPorts detaches the switch ends of the host ports cur
// drops or changes (a changed one comes back in reloadAddHostPorts). The
// veth pair of a dropped one stays, with the host's addresses on it, as
// uplinkd -cleanup leaves it: deleting the interface that may carry the
// operator's own SSH session is the operator's step (ip link del).
func (d *Daemon) reloadRemoveHostPorts(g *group, cur config.Group, note func(string, ...any)) {
	now := hostPortsByName(cur.HostPorts)
	for name, hp := range hostPortsByName(g.cfg.HostPorts) {
		if q, ok := now[name]; ok && reflect.DeepEqual(hp, q) {
			continue
		}
		d.dropGuest(g, hp.SwitchEnd)
		if _, ok := now[name]; !ok {
			note("group %s: host port %s removed; its veth pair %s/%s is left in place (ip link del %s deletes it)",
				g.cfg.Name, name, name, hp.SwitchEnd, name)
		}
	}
}

// reloadAddHostPorts creates or adopts and attaches the host ports cur
// brings or changed, and re-creates the pair of an unchanged one that was
// deleted while uplinkd ran.
func (d *Daemon) reloadAddHostPorts(g *group, old, cur config.Group, note func(string, ...any)) error {
	was := hostPortsByName(old.HostPorts)
	for _, hp := range cur.HostPorts {
		prev, had := was[hp.Name]
		if had && reflect.DeepEqual(prev, hp) {
			if _, err := d.host.LinkByName(hp.Name); err == nil {
				continue
			}
			d.dropGuest(g, hp.SwitchEnd)
			note("group %s: host port %s was deleted; re-creating it", g.cfg.Name, hp.Name)
		} else if !had {
			for _, name := range []string{hp.Name, hp.SwitchEnd} {
				if err := d.checkNewPort(name); err != nil {
					return fmt.Errorf("group %s: host port %s: %w", g.cfg.Name, hp.Name, err)
				}
			}
		}
		p, err := d.addHostPort(g, hp)
		if err != nil {
			return fmt.Errorf("group %s: %w", g.cfg.Name, err)
		}
		g.attach(p, 0)
		switch {
		case !had:
			note("group %s: host port %s added (switch end %s, vlan %d)", g.cfg.Name, hp.Name, hp.SwitchEnd, hp.VLAN)
		case !reflect.DeepEqual(prev, hp):
			note("group %s: host port %s re-attached with its new settings", g.cfg.Name, hp.Name)
		}
	}
	return nil
}

// hostPortsByName are list's host ports by name.
func hostPortsByName(list []config.HostPort) map[string]config.HostPort {
	m := make(map[string]config.HostPort, len(list))
	for _, hp := range list {
		m[hp.Name] = hp
	}
	return m
}

// namedPorts are the guest ports of list given by name.
func namedPorts(list []config.GuestPort) map[string]config.GuestPort {
	m := map[string]config.GuestPort{}
	for _, p := range list {
		if p.Name != "" {
			m[p.Name] = p
		}
	}
	return m
}

// profiles are g's port profiles: its patterns with their settings.
func profiles(g config.Group) []config.GuestPort {
	return slices.DeleteFunc(slices.Clone(g.GuestPorts), func(p config.GuestPort) bool { return p.Match == "" })
}
