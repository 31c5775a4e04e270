package failover

import "time"

// Status is a group's state for display.
type Status struct {
	Name       string
	Failback   bool
	Active     int // slot, NoActive for none
	Manual     int // pinned slot, NoSlot for none
	Failovers  uint64
	LastChange time.Time // last change of the active uplink (Start time if kept)
	LastReason Reason
	Uplinks    []UplinkStatus // in slot order
}

// UplinkStatus is one uplink's state for display.
type UplinkStatus struct {
	Name     string
	Slot     int
	Priority int
	Carrier  bool
	Active   bool
	Since    time.Time // last carrier change; zero until the carrier is known
}

// Status returns a snapshot; the caller may keep and modify it.
func (g *Group) Status() Status {
	s := Status{
		Name:       g.name,
		Failback:   g.failback,
		Active:     g.active,
		Manual:     g.manual,
		Failovers:  g.failovers,
		LastChange: g.lastChange,
		LastReason: g.lastReason,
		Uplinks:    make([]UplinkStatus, len(g.uplinks)),
	}
	for slot, u := range g.uplinks {
		s.Uplinks[slot] = UplinkStatus{
			Name:     u.name,
			Slot:     slot,
			Priority: u.priority,
			Carrier:  u.carrier,
			Active:   slot == g.active,
			Since:    u.since,
		}
	}
	return s
}
