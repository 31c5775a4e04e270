package daemon

import (
	"maps"
	"time"

	"github.com/uplinkd/uplinkd/pkg/metrics"
)

// view is what the event loop publishes after every event for the
// readers that must not wait for it: the metrics scrape. Once published it
// does not change.
type view struct {
	ports  []portRef // the attached ports, whose counters a scrape reads
	groups []metrics.Group
}

// publish makes the daemon's state as it is now the view. It runs on the
// event loop after every event; state changes nowhere else.
func (d *Daemon) publish() {
	v := &view{ports: d.attachedPorts()}
	now := time.Now()
	for _, g := range d.groups {
		mg := metrics.Group{Name: g.cfg.Name, FailoversByReason: maps.Clone(g.byReason),
			AnnounceFrames: g.announced.frames, AnnounceSuppressed: g.announced.suppressed}
		for _, u := range g.policy.Status(now).Uplinks {
			mg.Uplinks = append(mg.Uplinks, metrics.Uplink{Name: u.Name, Active: u.Active, Carrier: u.Carrier,
				Usable: u.Usable, Probe: u.Probe.String(), Admin: u.State.String()})
		}
		v.groups = append(v.groups, mg)
	}
	d.view.Store(v)
}

// metricsSnapshot is what a Prometheus scrape reads: every attached port's
// data-plane counters (read now) and every uplink's state (the view).
func (d *Daemon) metricsSnapshot() metrics.Snapshot {
	v := d.view.Load()
	if v == nil {
		return metrics.Snapshot{} // Run has not started the groups yet
	}
	// A port detached since the view was published is left out.
	ports, _ := d.readCounters(v.ports)
	return metrics.Snapshot{Ports: ports, Groups: v.groups}
}
