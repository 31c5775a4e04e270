package failover

import (
	"time"

	"github.com/uplinkd/uplinkd/pkg/limits"
)

// Status is a group's state for display.
type Status struct {
	Name               string
	Failback           bool
	UpDelay, DownDelay time.Duration
	Active             limits.Slot // NoSlot for none
	Manual             limits.Slot // pinned slot, NoSlot for none
	Failovers          uint64
	LastChange         time.Time // last change of the active uplink (Start time if kept)
	LastReason         Reason
	Uplinks            []UplinkStatus // in slot order, free slots left out
}

// UplinkStatus is one uplink's state for display.
type UplinkStatus struct {
	Name     string
	Slot     limits.Slot
	Priority int
	State    AdminState
	Probe    ProbeState
	Carrier  bool // as last reported
	LinkUp   bool // the carrier as the hold timers let the policy see it
	Usable   bool
	Active   bool
	Since    time.Time // last carrier change; zero until the carrier is known
	// Hold is what is left of a running up- or down-delay (0: none):
	// Carrier is what the policy will see when it expires.
	Hold       time.Duration
	Failovers  uint64 // times the group left this uplink because it stopped being usable
	LastReason Reason // why, the last time
}

// Status returns a snapshot at now; the caller may keep and modify it.
func (g *Group) Status(now time.Time) Status {
	s := Status{
		Name:       g.name,
		Failback:   g.failback,
		UpDelay:    g.upDelay,
		DownDelay:  g.downDelay,
		Active:     g.active,
		Manual:     g.manual,
		Failovers:  g.failovers,
		LastChange: g.lastChange,
		LastReason: g.lastReason,
	}
	for slot, u := range g.uplinks {
		if u == nil {
			continue
		}
		us := UplinkStatus{
			Name:       u.name,
			Slot:       limits.Slot(slot),
			Priority:   u.priority,
			State:      u.state,
			Probe:      u.probe,
			Carrier:    u.carrier,
			LinkUp:     u.linkUp,
			Usable:     u.usable(),
			Active:     limits.Slot(slot) == g.active,
			Since:      u.since,
			Failovers:  u.failovers,
			LastReason: u.lastReason,
		}
		if !u.holdUntil.IsZero() {
			us.Hold = max(0, u.holdUntil.Sub(now))
		}
		s.Uplinks = append(s.Uplinks, us)
	}
	return s
}
