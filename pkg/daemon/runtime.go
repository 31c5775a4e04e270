package daemon

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/uplinkd/uplinkd/pkg/config"
	"github.com/uplinkd/uplinkd/pkg/control"
	"github.com/uplinkd/uplinkd/pkg/datapath"
	"github.com/uplinkd/uplinkd/pkg/failover"
	"github.com/uplinkd/uplinkd/pkg/limits"
)

// Run-time changes of a group's ports (uplinkctl add-uplink, remove-uplink,
// add-port, remove-port). Each touches only its own port's map entries and
// program, and the group's active slot only when policy says so. They are
// not written back to the configuration file: a restarted daemon starts
// from the file again.

// checkNewPort refuses a name that is not a valid interface name or is a
// port already.
func (d *Daemon) checkNewPort(name string) error {
	if err := config.CheckIfName(name); err != nil {
		return fmt.Errorf("%w: %v", control.ErrRefused, err)
	}
	if p, used := d.ports[name]; used {
		return fmt.Errorf("%w: %s is already a %s of group %s", control.ErrRefused, name, p.role, p.group.cfg.Name)
	}
	return nil
}

// portOf finds a port of g by name and role.
func (d *Daemon) portOf(g *group, name string, role datapath.Role) (*port, error) {
	p, ok := d.ports[name]
	if !ok || p.group != g || p.role != role {
		return nil, fmt.Errorf("group %s has no %s %q: %w", g.cfg.Name, role, name, control.ErrNotFound)
	}
	return p, nil
}

// addUplink is `uplinkctl add-uplink`: the uplink gets the lowest free
// slot, is attached, and its carrier (as it is now) is given to the policy,
// which may make it active at once (failback on, preferred).
func (d *Daemon) addUplink(g *group, req control.AddUplinkRequest) error {
	groupName := g.cfg.Name
	if err := d.checkNewPort(req.Name); err != nil {
		return err
	}
	uc := failover.UplinkConfig{Name: req.Name, Priority: config.DefaultPriority}
	if req.Priority != nil {
		uc.Priority = *req.Priority
	}
	var err error
	if req.State != "" {
		if uc.State, err = failover.ParseAdminState(req.State); err != nil {
			return fmt.Errorf("%w: %v", control.ErrRefused, err)
		}
	}
	now := time.Now()
	slot, dec, err := g.policy.AddUplink(uc, now)
	if err != nil {
		return policyError(err)
	}
	p := &port{name: req.Name, group: g, role: datapath.RoleUplink, slot: slot}
	g.uplinks[slot], d.ports[req.Name] = p, p
	d.attach(p, 0)
	d.log.Info("uplink added", "group", groupName, "uplink", req.Name, "slot", slot, "priority", uc.Priority, "state", uc.State)
	d.applyFrom(g, dec, now, time.Time{}, "operator")
	st, err := d.host.LinkState(req.Name)
	up := err == nil && p.ifindex > 0 && st.Exists && st.AdminUp && st.Carrier
	if err == nil {
		p.changes = st.CarrierChanges
	}
	if dec, err := g.policy.SetCarrier(req.Name, up, now); err == nil {
		d.applyFrom(g, dec, now, time.Time{}, "operator")
	}
	d.syncProbes(g)
	d.rewatch()
	return nil
}

// removeUplink is `uplinkctl remove-uplink`: if it is the active uplink
// the group moves first (to the best usable one, guests announced there),
// then the uplink is detached.
func (d *Daemon) removeUplink(g *group, name string) error {
	groupName := g.cfg.Name
	p, err := d.portOf(g, name, datapath.RoleUplink)
	if err != nil {
		return err
	}
	now := time.Now()
	dec, err := g.policy.RemoveUplink(name, now)
	if err != nil {
		return policyError(err)
	}
	// Announce on the new uplink needs its port, so move before forgetting.
	d.applyFrom(g, dec, now, time.Time{}, "operator")
	g.uplinks[p.slot] = nil
	delete(d.ports, name)
	if err := d.dp.Detach(name, p.ifindex); err != nil {
		d.log.Warn("detach removed uplink", "group", groupName, "uplink", name, "err", err)
	}
	d.log.Info("uplink removed", "group", groupName, "uplink", name, "slot", p.slot)
	d.syncProbes(g)
	d.rewatch()
	return nil
}

// addPort adds and attaches a named guest port: `uplinkctl add-port`
// (with the default profile) and reload.
func (d *Daemon) addPort(g *group, gp config.GuestPort) error {
	if err := d.checkNewPort(gp.Name); err != nil {
		return err
	}
	if len(g.guests) >= limits.MaxGuestPorts {
		return fmt.Errorf("%w: group %s has %d guest ports already", control.ErrRefused, g.cfg.Name, len(g.guests))
	}
	p := d.addGuest(g, gp)
	d.attach(p, 0)
	d.log.Info("guest port added", "group", g.cfg.Name, "port", gp.Name, "vlan", gp.VLAN, "trunk", gp.Trunk)
	d.rewatch()
	return nil
}

// removePort is `uplinkctl remove-port`: the port is detached and what was
// learned behind it forgotten.
func (d *Daemon) removePort(g *group, name string) error {
	groupName := g.cfg.Name
	p, err := d.portOf(g, name, datapath.RoleGuest)
	if err != nil {
		return err
	}
	d.removeGuest(p)
	if p.pattern != "" && p.ifindex > 0 {
		d.released[name] = p.ifindex
	}
	d.log.Info("guest port removed", "group", groupName, "port", name)
	d.rewatch()
	return nil
}

// removeGuest detaches a guest port and forgets it and what was learned
// behind it.
func (d *Daemon) removeGuest(p *port) {
	g := p.group
	g.guests = slices.DeleteFunc(g.guests, func(x *port) bool { return x == p })
	delete(d.ports, p.name)
	if err := d.dp.Detach(p.name, p.ifindex); err != nil {
		d.log.Warn("detach guest port", "group", g.cfg.Name, "port", p.name, "err", err)
	}
}

// portNames are the names of every port of every group.
func (d *Daemon) portNames() []string {
	return slices.Collect(maps.Keys(d.ports))
}

// rewatch gives the link watcher the current set of ports.
func (d *Daemon) rewatch() {
	if d.watch == nil {
		return
	}
	d.watch.SetNames(d.portNames()...)
	d.setPolled()
}
