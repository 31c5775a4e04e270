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

// timeline is the log of switches. The event loop owns it.
type timeline struct {
	events  []*control.FailoverEvent // the last maxEvents, oldest first
	seq     uint64                   // of the newest event
	version uint64                   // raised by every append and update
	changed chan struct{}            // closed and replaced at every change
}

// add appends ev to the timeline.
func (t *timeline) add(ev *control.FailoverEvent) {
	t.seq++
	ev.Seq = t.seq
	t.events = append(t.events, ev)
	if len(t.events) > maxEvents {
		t.events = t.events[len(t.events)-maxEvents:]
	}
	t.touch(ev)
}

// touch records that ev changed and wakes the followers.
func (t *timeline) touch(ev *control.FailoverEvent) {
	t.version++
	ev.Version = t.version
	if t.changed != nil {
		close(t.changed)
	}
	t.changed = make(chan struct{})
}

// since are copies of the events that changed after version v, the
// version now, and a channel closed at the next change.
func (t *timeline) since(v uint64) ([]control.FailoverEvent, uint64, <-chan struct{}) {
	var out []control.FailoverEvent
	for _, ev := range t.events {
		if ev.Version > v {
			out = append(out, *ev)
		}
	}
	if t.changed == nil {
		t.changed = make(chan struct{})
	}
	return out, t.version, t.changed
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
		if err := d.calls.call(ctx, func() { out, version, changed = d.timeline.since(since) }); err != nil {
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
