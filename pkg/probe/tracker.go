package probe

import "github.com/uplinkd/uplinkd/pkg/failover"

// Tracker turns one uplink's replies into a probe state: failed after
// Missed intervals in a row without a valid reply from any target, ok
// again at the first reply. It starts ok, so a starting daemon does not
// leave its guests without an uplink while the first answers are on their
// way. It is pure: the prober calls it.
type Tracker struct {
	Missed  int // intervals without a reply before the path counts as failed
	missed  int
	sent    bool // a round went out since the last Interval
	replied bool // a valid reply came since the last Interval
	state   failover.ProbeState
}

// NewTracker returns a tracker in the ok state.
func NewTracker(missed int) *Tracker {
	return &Tracker{Missed: max(1, missed), state: failover.ProbeOK}
}

// State is the current verdict.
func (t *Tracker) State() failover.ProbeState { return t.state }

// Reply records a valid reply; it reports whether the state changed.
func (t *Tracker) Reply() bool {
	t.replied, t.missed = true, 0
	return t.set(failover.ProbeOK)
}

// Interval closes one interval and opens the next, whose round of probes
// the caller sends now; it reports whether the state changed. The first
// call only opens an interval.
func (t *Tracker) Interval() bool {
	sent, replied := t.sent, t.replied
	t.sent, t.replied = true, false
	if !sent || replied {
		return false
	}
	t.missed++
	if t.missed >= t.Missed {
		return t.set(failover.ProbeFailed)
	}
	return false
}

func (t *Tracker) set(s failover.ProbeState) bool {
	if t.state == s {
		return false
	}
	t.state = s
	return true
}
