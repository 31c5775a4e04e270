package daemon

import (
	"errors"
	"maps"
	"strings"
	"time"

	"github.com/uplinkd/uplinkd/pkg/control"
	"github.com/uplinkd/uplinkd/pkg/datapath"
	"github.com/uplinkd/uplinkd/pkg/hostport"
	"github.com/uplinkd/uplinkd/pkg/limits"
	"github.com/uplinkd/uplinkd/pkg/version"
)

// status is `uplinkctl status`, from the learned guests (read off the
// loop: a long walk) and the groups announcing now.
func (d *Daemon) status(fdb []datapath.FDBEntry, announcing []string) control.Status {
	learned := map[uint32]int{}
	for _, e := range fdb {
		learned[e.Group]++
	}
	inFlight := map[string]bool{}
	for _, name := range announcing {
		inFlight[name] = true
	}
	st := control.Status{Version: version.String(), Started: d.started, PinPath: d.cfg.PinPath}
	st.FailoverPaths, st.RefusedPaths = d.FailoverPaths()
	now := time.Now()
	for _, g := range d.groups {
		ps := g.policy.Status(now)
		// Balance groups: learned guests per uplink slot.
		guestsOn := map[limits.Slot]int{}
		if g.balanced() {
			for _, e := range fdb {
				if e.Group == g.id {
					guestsOn[g.bal.slotOf(e.MAC, e.VLAN)]++
				}
			}
		}
		gs := control.GroupStatus{
			Name:               g.cfg.Name,
			ID:                 g.id,
			Mode:               g.cfg.Mode,
			Active:             g.policy.UplinkName(ps.Active),
			Failback:           ps.Failback,
			UpDelay:            ps.UpDelay,
			DownDelay:          ps.DownDelay,
			Failovers:          int(ps.Failovers),
			LastChange:         ps.LastChange,
			LastReason:         ps.LastReason.String(),
			Announce:           control.AnnounceSetting{Count: g.cfg.Announce.Count, Interval: g.cfg.Announce.Interval},
			LearnedGuests:      learned[g.id],
			Announcing:         inFlight[g.cfg.Name],
			Arrivals:           g.arrived.total,
			Rebalances:         g.bal.rebalances,
			FailoversByReason:  maps.Clone(g.byReason),
			AnnounceFrames:     g.announced.frames,
			AnnounceSuppressed: g.announced.suppressed,
		}
		gs.GuestPatterns = g.cfg.Patterns()
		if ps.Manual != limits.NoSlot {
			gs.Manual = g.policy.UplinkName(ps.Manual)
		}
		for _, ev := range g.recent {
			gs.Recent = append(gs.Recent, *ev)
		}
		if n := len(gs.Recent); n > 0 {
			gs.LastFailover = &gs.Recent[n-1]
		}
		for _, u := range ps.Uplinks {
			p := g.uplinks[u.Slot]
			us := control.UplinkStatus{
				Name: u.Name, Ifindex: p.ifindex, Slot: int(u.Slot), Priority: u.Priority,
				State: u.State.String(), Probe: u.Probe.String(), Carrier: u.Carrier, Usable: u.Usable,
				Active: u.Active, Since: u.Since, Hold: u.Hold, Failovers: int(u.Failovers),
				Hook: string(p.mode), Error: errString(p.err),
			}
			if u.Failovers > 0 {
				us.LastReason = u.LastReason.String()
			}
			if g.balanced() && g.bal.table != nil {
				us.Buckets, us.Guests, us.LoadBps = g.bal.table.Count()[u.Slot], guestsOn[u.Slot], g.bal.load[u.Slot]
				if c, err := d.dp.Stats(p.ifindex); p.ifindex > 0 && err == nil {
					us.TxPackets = c.TxPackets
				}
			}
			gs.Uplinks = append(gs.Uplinks, us)
		}
		for _, p := range g.guests {
			gs.GuestPorts = append(gs.GuestPorts, control.PortStatus{
				Name: p.name, Ifindex: p.ifindex, VLAN: p.vlan, Trunk: p.trunk, AnnouncePriority: p.announcePriority, Match: p.pattern, Hook: string(p.mode), Error: errString(p.err),
			})
		}
		gs.HostPorts = g.hostPortStatus()
		st.Groups = append(st.Groups, gs)
	}
	return st
}

// hostPortStatus is g's host ports as configured, with their switch
// ends' attach errors; readHostPorts adds what the host says of them.
func (g *group) hostPortStatus() []control.HostPortStatus {
	var out []control.HostPortStatus
	for _, hp := range g.cfg.HostPorts {
		hs := control.HostPortStatus{Name: hp.Name, SwitchEnd: hp.SwitchEnd, VLAN: hp.VLAN, MAC: hp.MAC.String(), MTU: hp.MTU}
		if p, err := g.port(hp.SwitchEnd, datapath.RoleGuest); err == nil {
			hs.Error = errString(p.err)
		} else {
			hs.Error = "its switch end " + hp.SwitchEnd + " is no port of the switch"
		}
		out = append(out, hs)
	}
	return out
}

// readHostPorts fills in the host ports of st from the host's
// interfaces: each host end's state, MAC, MTU and addresses. These are
// netlink reads, so the control API makes them off the event loop, after
// status.
func (d *Daemon) readHostPorts(st *control.Status) {
	var hps []*control.HostPortStatus
	var names []string
	for gi := range st.Groups {
		for hi := range st.Groups[gi].HostPorts {
			hs := &st.Groups[gi].HostPorts[hi]
			hps, names = append(hps, hs), append(names, hs.Name)
		}
	}
	if len(names) == 0 {
		return
	}
	ends, errs := d.host.HostEnds(names)
	for i, hs := range hps {
		fillHostPort(hs, ends[i], errs[i])
	}
}

// fillHostPort adds end, read with err, to hs.
func fillHostPort(hs *control.HostPortStatus, end hostport.End, err error) {
	switch {
	case !end.Exists && err != nil:
		hs.State = "unknown"
	case !end.Exists:
		hs.State = "missing"
	case end.Up:
		hs.State = "up"
	default:
		hs.State = "down"
	}
	if err != nil {
		hs.Error = strings.TrimPrefix(hs.Error+"; "+err.Error(), "; ")
	}
	if !end.Exists {
		return // the configured MAC and MTU stay
	}
	if len(end.MAC) > 0 { // none on an interface without one (tun, wireguard) under the name
		hs.MAC = end.MAC.String()
	}
	if end.MTU > 0 {
		hs.MTU = end.MTU
	}
	for _, a := range end.Addrs {
		hs.Addrs = append(hs.Addrs, a.String())
	}
}

// guestList is `uplinkctl fdb`: the learned guests (read off the loop)
// with their groups' and ports' names.
func (d *Daemon) guestList(guests []datapath.Guest) []control.Guest {
	groupName := map[uint32]string{}
	portName := map[int]string{}
	for _, g := range d.groups {
		groupName[g.id] = g.cfg.Name
		for _, p := range g.guests {
			if p.ifindex > 0 {
				portName[p.ifindex] = p.name
			}
		}
	}
	out := make([]control.Guest, 0, len(guests))
	for _, e := range guests {
		g := control.Guest{Group: groupName[e.Group], VLAN: e.VLAN, MAC: e.MAC.String(), Port: portName[e.Ifindex], Age: e.Age}
		for _, a := range e.Addrs {
			g.Addrs = append(g.Addrs, a.String())
		}
		out = append(out, g)
	}
	return out
}

// portRef names an attached port, for its counters.
type portRef struct {
	group, name string
	role        datapath.Role
	ifindex     int
}

// attachedPorts are every group's attached ports, uplinks first.
func (d *Daemon) attachedPorts() []portRef {
	var out []portRef
	for _, g := range d.groups {
		for _, p := range g.ports() {
			if p.ifindex != 0 {
				out = append(out, portRef{group: g.cfg.Name, name: p.name, role: p.role, ifindex: p.ifindex})
			}
		}
	}
	return out
}

// readCounters reads ports' counters from the data plane. A port it
// cannot read is left out, and its error returned.
func (d *Daemon) readCounters(ports []portRef) ([]control.PortCounters, error) {
	var out []control.PortCounters
	var errs []error
	for _, p := range ports {
		s, err := d.dp.Stats(p.ifindex)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		pc := control.PortCounters{
			Group: p.group, Port: p.name, Role: p.role.String(),
			RxPackets: s.RxPackets, RxBytes: s.RxBytes, TxPackets: s.TxPackets, TxBytes: s.TxBytes,
			HostPackets: s.HostPackets, LearnRefused: s.LearnRefused, Drops: map[string]uint64{},
		}
		for _, r := range datapath.DropReasons() {
			pc.Drops[r.String()] = s.Drops[r]
		}
		out = append(out, pc)
	}
	return out, errors.Join(errs...)
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
