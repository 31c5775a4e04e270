package daemon

import (
	"fmt"
	"maps"
	"slices"

	"github.com/uplinkd/uplinkd/pkg/config"
	"github.com/uplinkd/uplinkd/pkg/control"
	"github.com/uplinkd/uplinkd/pkg/datapath"
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
	for _, g := range d.groups {
		for _, hp := range g.cfg.HostPorts {
			if hp.Name == name {
				return fmt.Errorf("%w: %s is the host's end of host port %s of group %s", control.ErrRefused, name, hp.Name, g.cfg.Name)
			}
		}
	}
	return nil
}

// addUplink is `uplinkctl add-uplink`: the group takes the uplink
// (group.addUplink) once the name is checked.
func (d *Daemon) addUplink(g *group, req control.AddUplinkRequest) error {
	if err := d.checkNewPort(req.Name); err != nil {
		return err
	}
	p, err := g.addUplink(req)
	if err != nil {
		return err
	}
	d.ports[p.name] = p
	d.rewatch()
	return nil
}

// removeUplink is `uplinkctl remove-uplink` (group.removeUplink).
func (d *Daemon) removeUplink(g *group, name string) error {
	p, err := g.removeUplink(name)
	if err != nil {
		return err
	}
	delete(d.ports, p.name)
	d.rewatch()
	return nil
}

// addPort adds and attaches a named guest port: `uplinkctl add-port`
// (with the default profile) and reload.
func (d *Daemon) addPort(g *group, gp config.GuestPort) error {
	if err := d.checkNewPort(gp.Name); err != nil {
		return err
	}
	if g.full() {
		return fmt.Errorf("%w: group %s has %d guest ports already, the most it switches", control.ErrRefused, g.cfg.Name, len(g.guests))
	}
	p := d.addGuest(g, gp)
	g.attach(p, 0)
	d.log.Info("guest port added", "group", g.cfg.Name, "port", gp.Name, "vlan", gp.VLAN, "trunk", gp.Trunk)
	d.rewatch()
	return nil
}

// removePort is `uplinkctl remove-port`: the port is detached and what was
// learned behind it forgotten.
func (d *Daemon) removePort(g *group, name string) error {
	p, err := g.port(name, datapath.RoleGuest)
	if err != nil {
		return err
	}
	if p.hostEnd != "" {
		return fmt.Errorf("%w: %s is the switch end of host port %s; host ports change in the configuration file", control.ErrRefused, name, p.hostEnd)
	}
	d.removeGuest(p)
	if p.pattern != "" && p.ifindex > 0 {
		d.released[name] = p.ifindex
	}
	d.log.Info("guest port removed", "group", g.cfg.Name, "port", name)
	d.rewatch()
	return nil
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
