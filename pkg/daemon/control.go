package daemon

import (
	"context"
	"time"

	"github.com/uplinkd/uplinkd/pkg/config"
	"github.com/uplinkd/uplinkd/pkg/control"
)

// controlAPI is the daemon as the control socket sees it (control.Backend).
// Every request runs on the event loop (call), with the request's
// context: a request the loop has not taken when its client goes away, or
// when uplinkd stops, does not run. Long reads of the data plane (the
// learned guests) are done before, and reads of the host's interfaces
// (the host ports' addresses) after, on the request's goroutine, so they
// do not hold up the loop.
type controlAPI struct{ d *Daemon }

var _ control.Backend = controlAPI{}

// onGroup runs fn on the event loop with the group named name.
func (a controlAPI) onGroup(ctx context.Context, name string, fn func(*group) error) error {
	var err error
	if cerr := a.d.calls.call(ctx, func() {
		var g *group
		if g, err = a.d.groupByName(name); err == nil {
			err = fn(g)
		}
	}); cerr != nil {
		return cerr
	}
	return err
}

func (a controlAPI) Status(ctx context.Context) (control.Status, error) {
	fdb, err := a.d.dp.FDB()
	if err != nil {
		fdb = nil // status without learned guest counts
	}
	announcing := a.d.ann.send.InFlight()
	var st control.Status
	if err := a.d.calls.call(ctx, func() { st = a.d.status(fdb, announcing) }); err != nil {
		return st, err
	}
	a.d.readHostPorts(&st)
	return st, nil
}

func (a controlAPI) Guests(ctx context.Context) ([]control.Guest, error) {
	guests, err := a.d.dp.Guests()
	if err != nil {
		return nil, err
	}
	var out []control.Guest
	err = a.d.calls.call(ctx, func() { out = a.d.guestList(guests) })
	return out, err
}

func (a controlAPI) Counters(ctx context.Context) ([]control.PortCounters, error) {
	var out []control.PortCounters
	var err error
	if cerr := a.d.calls.call(ctx, func() { out, err = a.d.readCounters(a.d.attachedPorts()) }); cerr != nil {
		return nil, cerr
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (a controlAPI) SetActive(ctx context.Context, groupName, uplink string) error {
	return a.onGroup(ctx, groupName, func(g *group) error { return g.setActive(uplink) })
}

func (a controlAPI) ClearManual(ctx context.Context, groupName string) error {
	return a.onGroup(ctx, groupName, (*group).clearManual)
}

func (a controlAPI) SetUplink(ctx context.Context, groupName, uplink string, req control.SetUplinkRequest) error {
	return a.onGroup(ctx, groupName, func(g *group) error { return g.setUplink(uplink, req) })
}

func (a controlAPI) AddUplink(ctx context.Context, groupName string, req control.AddUplinkRequest) error {
	return a.onGroup(ctx, groupName, func(g *group) error { return a.d.addUplink(g, req) })
}

func (a controlAPI) RemoveUplink(ctx context.Context, groupName, uplink string) error {
	return a.onGroup(ctx, groupName, func(g *group) error { return a.d.removeUplink(g, uplink) })
}

func (a controlAPI) AddPort(ctx context.Context, groupName, port string) error {
	return a.onGroup(ctx, groupName, func(g *group) error {
		return a.d.addPort(g, config.GuestPort{Name: port, MaxMACs: config.DefaultMaxMACs})
	})
}

func (a controlAPI) RemovePort(ctx context.Context, groupName, port string) error {
	return a.onGroup(ctx, groupName, func(g *group) error { return a.d.removePort(g, port) })
}

func (a controlAPI) MoveGuest(ctx context.Context, groupName string, req control.MoveGuestRequest) error {
	return a.onGroup(ctx, groupName, func(g *group) error { return g.moveGuest(req) })
}

func (a controlAPI) Reload(ctx context.Context) ([]string, error) {
	return a.d.reload(ctx)
}

func (a controlAPI) Events(ctx context.Context, since uint64, wait time.Duration) ([]control.FailoverEvent, uint64, error) {
	return a.d.followEvents(ctx, since, wait)
}
