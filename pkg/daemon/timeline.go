package daemon

import (
	"context"
	"time"

	"github.com/uplinkd/uplinkd/pkg/control"
)

// The failover timeline: every switch, with its timestamps, in a bounded
// log that uplinkctl events reads and follows. An event changes after it
// is logged (its announcement ends later), so the log has a version that
// every append and every update raises, and each event carries the
// version of its last change: a follower asks for what changed since the
// version it saw.

// maxEvents bounds the timeline (all groups).
const maxEvents = 1024

// logEvent appends ev to the timeline. Called with d.mu held.
func (d *Daemon) logEvent(ev *control.FailoverEvent) {
	d.eventSeq++
	ev.Seq = d.eventSeq
	d.events = append(d.events, ev)
	if len(d.events) > maxEvents {
		d.events = d.events[len(d.events)-maxEvents:]
	}
	d.touchEvent(ev)
}

// touchEvent records that ev changed and wakes the followers. Called with
// d.mu held.
func (d *Daemon) touchEvent(ev *control.FailoverEvent) {
	d.eventVersion++
	ev.Version = d.eventVersion
	if d.eventsChanged != nil {
		close(d.eventsChanged)
	}
	d.eventsChanged = make(chan struct{})
}

// Events is `uplinkctl events`: the events that changed after version
// since, oldest first, and the version now. With wait, it blocks until
// something changes (or wait passes, or ctx ends) when nothing has.
func (d *Daemon) Events(ctx context.Context, since uint64, wait time.Duration) ([]control.FailoverEvent, uint64) {
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		d.mu.Lock()
		var out []control.FailoverEvent
		for _, ev := range d.events {
			if ev.Version > since {
				out = append(out, *ev)
			}
		}
		version, changed := d.eventVersion, d.eventsChanged
		if changed == nil {
			changed = make(chan struct{})
			d.eventsChanged = changed
		}
		d.mu.Unlock()
		if len(out) > 0 || wait <= 0 {
			return out, version
		}
		select {
		case <-changed:
		case <-deadline.C:
			return nil, version
		case <-ctx.Done():
			return nil, version
		}
	}
}
