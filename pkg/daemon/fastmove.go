package daemon

import (
	"log/slog"
	"maps"
	"slices"
	"sync/atomic"
	"time"

	"github.com/uplinkd/uplinkd/pkg/limits"
)

// The carrier poll's fast path. When the poll sees a polled uplink's
// carrier go (the active one; in a balance group, any that carries
// guests), it moves the group in the data plane right there, on the poll's
// thread, the way the kernel paths do (first other uplink of the
// fallback order), and only then tells the daemon, which records the move
// like a kernel switch. This saves the wake-ups of the watcher and of the
// daemon's loop (100-300 µs on a busy 2-vCPU host) between seeing the loss
// and acting on it: for a tap or a plain NIC with no guest frame at that
// moment, the poll is the first to know.

// polledUplink is the group and slot of a polled uplink.
type polledUplink struct {
	group uint32
	slot  limits.Slot
}

// fastMove is one move the poll made: off from, and the active slot to
// to (NoSlot: it stayed, a balance group's other uplink failed).
type fastMove struct {
	group    uint32
	from, to limits.Slot
	at       time.Time
}

// polledSlots are the uplinks of g whose carrier is polled: the active
// one, or in a balance group every one that carries guests.
func (g *group) polledSlots() []limits.Slot {
	if g.balanced() {
		return g.policy.Carriers()
	}
	if a := g.policy.Active(); a != limits.NoSlot {
		return []limits.Slot{a}
	}
	return nil
}

// pollFastPath is the fast path's state: the polled uplinks, which the
// event loop replaces whole (set) and the poll's thread reads
// (carrierLost), and the moves the poll made, which the loop takes from
// moves and records. Nothing else of the daemon is touched off the loop.
type pollFastPath struct {
	dp     dataPlane // MoveOff only
	log    *slog.Logger
	polled atomic.Pointer[map[string]polledUplink]
	moves  chan fastMove
}

// maxFastMoves bounds the moves waiting for the loop; beyond it the
// carrier event that follows a move makes the daemon catch up.
const maxFastMoves = 64

func newPollFastPath(dp dataPlane, log *slog.Logger) *pollFastPath {
	return &pollFastPath{dp: dp, log: log, moves: make(chan fastMove, maxFastMoves)}
}

// set makes m the polled uplinks (by name); false when they were already.
func (f *pollFastPath) set(m map[string]polledUplink) bool {
	if old := f.polled.Load(); old != nil && maps.Equal(*old, m) {
		return false
	}
	f.polled.Store(&m)
	return true
}

// names are the polled uplinks' names, sorted; false before the first set.
func (f *pollFastPath) names() ([]string, bool) {
	m := f.polled.Load()
	if m == nil {
		return nil, false
	}
	return slices.Sorted(maps.Keys(*m)), true
}

// carrierLost runs on the poll's thread: it must not wait for the event
// loop, nor touch the loop's state; it reads the polled uplinks, which
// the loop replaces whole.
func (f *pollFastPath) carrierLost(name string) {
	m := f.polled.Load()
	if m == nil {
		return
	}
	u, ok := (*m)[name]
	if !ok {
		return
	}
	// to is NoSlot when the active slot stayed (a balance group's other
	// uplink).
	to, moved, err := f.dp.MoveOff(u.group, u.slot)
	at := time.Now()
	if err != nil {
		f.log.Warn("poll: cannot move the group off the uplink that lost carrier; the daemon will", "uplink", name, "err", err)
		return
	}
	if !moved {
		return // a kernel path was first, or nowhere to go: the daemon decides
	}
	select {
	case f.moves <- fastMove{group: u.group, from: u.slot, to: to, at: at}:
	default: // the carrier event that follows makes the daemon catch up
	}
}

// setPolled makes polledSlots' uplinks the polled ones, for the watcher
// and for the fast path; it runs on every policy event, so an unchanged
// set wakes nobody.
func (d *Daemon) setPolled() {
	if d.fast.set(d.polledUplinks()) {
		d.tellWatcherPolled()
	}
}

// tellWatcherPolled gives the watcher the polled uplinks' names (once it
// exists: Run creates it after the groups' first decisions).
func (d *Daemon) tellWatcherPolled() {
	if names, ok := d.fast.names(); ok && d.watch != nil {
		d.watch.SetPolled(names...)
	}
}

// polledUplinks are the uplinks whose carrier is polled in /sys besides
// the netlink events, which can come a second late for plain NICs (see
// polledSlots), by name; none when polling is off.
func (d *Daemon) polledUplinks() map[string]polledUplink {
	m := map[string]polledUplink{}
	if d.cfg.CarrierPollInterval <= 0 {
		return m
	}
	for _, g := range d.groups {
		for _, s := range g.polledSlots() {
			m[g.uplinks[s].name] = polledUplink{group: g.id, slot: s}
		}
	}
	return m
}
