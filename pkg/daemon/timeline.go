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

// logEvent appends ev to the timeline.
func (d *Daemon) logEvent(ev *control.FailoverEvent) {
	d.eventSeq++
	ev.Seq = d.eventSeq
	d.events = append(d.events, ev)
	if len(d.events) > maxEvents {
		d.events = d.events[len(d.events)-maxEvents:]
	}
	d.touchEvent(ev)
}

// touchEvent records that ev changed and wakes the followers.
func (d *Daemon) touchEvent(ev *control.FailoverEvent) {
	d.eventVersion++
	ev.Version = d.eventVersion
	if d.eventsChanged != nil {
		close(d.eventsChanged)
	}
	d.eventsChanged = make(chan struct{})
}

// followEvents is `uplinkctl events`: the events that changed after
// version since, oldest first, and the version now. With wait, it blocks
// until something changes (or wait passes, or ctx ends) when nothing has;
// it waits off the event loop.
func (d *Daemon) followEvents(ctx context.Context, since uint64, wait time.Duration) ([]control.FailoverEvent, uint64, error) {
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		var out []control.FailoverEvent
		var version uint64
		var changed <-chan struct{}
		if err := d.call(ctx, func() { out, version, changed = d.eventsSince(since) }); err != nil {
			return nil, since, err
		}
		if len(out) > 0 || wait <= 0 {
			return out, version, nil
		}
		select {
		case <-changed:
		case <-deadline.C:
			return nil, version, nil
		case <-ctx.Done():
			return nil, version, nil
		}
	}
}

// eventsSince are copies of the events that changed after version since,
// the version now, and a channel closed at the next change.
func (d *Daemon) eventsSince(since uint64) ([]control.FailoverEvent, uint64, <-chan struct{}) {
	var out []control.FailoverEvent
	for _, ev := range d.events {
		if ev.Version > since {
			out = append(out, *ev)
		}
	}
	if d.eventsChanged == nil {
		d.eventsChanged = make(chan struct{})
	}
	return out, d.eventVersion, d.eventsChanged
}
