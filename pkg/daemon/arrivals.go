package daemon

import (
	"context"
	"errors"
	"os"
	"slices"
	"time"

	"github.com/uplinkd/uplinkd/pkg/announce"
	"github.com/uplinkd/uplinkd/pkg/datapath"
)

// A guest that arrives (a VM started, or migrated in, on a port) is
// announced on its group's active uplink at once, as a hypervisor does
// after a live migration: the upstream switch learns the new place before
// the first reply is due, instead of flooding or sending to the old host.

// arrivalsKey keeps arrival announcements apart from a group's failover
// announcement, which ends them (they would send on the old uplink).
const arrivalsKey = "arrivals"

// maxRecentArrivals bounds the guests announced together: a burst of
// arrivals (many VMs starting, or a guest spraying source MACs) is
// announced as one run of at most this many guests, the newest.
const maxRecentArrivals = 256

// maxArrivalBatch bounds how many queued events one announcement takes.
const maxArrivalBatch = 1024

type arrivalKey struct {
	vlan uint16
	mac  [6]byte
}

// readArrivals feeds the switch's arrival events into out until the reader
// is closed or ctx ends.
func (d *Daemon) readArrivals(ctx context.Context, out chan<- datapath.Arrival) {
	for {
		a, err := d.arr.Next()
		if err != nil {
			if !errors.Is(err, os.ErrClosed) {
				d.log.Error("arrival events stopped; new guests are announced only at failovers", "err", err)
			}
			return
		}
		select {
		case out <- a:
		case <-ctx.Done():
			return
		}
	}
}

// takeArrivals is first plus what else is queued (bounded).
func takeArrivals(first datapath.Arrival, more <-chan datapath.Arrival) []datapath.Arrival {
	batch := []datapath.Arrival{first}
	for len(batch) < maxArrivalBatch {
		select {
		case a := <-more:
			batch = append(batch, a)
		default:
			return batch
		}
	}
	return batch
}

// onArrivals announces arrived guests where they leave: on the group's
// active uplink, or in a balance group each on its bucket's uplink. The
// guests that arrived within one announcement's duration are announced
// again with them: a new run replaces the running one.
func (d *Daemon) onArrivals(batch []datapath.Arrival) {
	// One walk of the FDB and the addresses for the batch.
	all, guestsErr := d.dp.Guests()
	now := time.Now()
	for _, g := range d.groups {
		var macs []string
		for _, a := range batch {
			if a.Group != g.id || len(a.MAC) != 6 {
				continue
			}
			if g.arrived == nil {
				g.arrived = map[arrivalKey]time.Time{}
			}
			g.arrived[arrivalKey{a.VLAN, [6]byte(a.MAC)}] = now
			g.arrivals++
			macs = append(macs, a.MAC.String())
		}
		if len(macs) == 0 {
			continue
		}
		pruneArrivals(g.arrived, now.Add(-(time.Duration(g.cfg.Announce.Count)*g.cfg.Announce.Interval + time.Second)), maxRecentArrivals)
		up := d.activeUplink(g)
		if g.cfg.Announce.Count == 0 || up == nil {
			d.log.Info("guests arrived; not announced (no active uplink, or announcements off)", "group", g.cfg.Name, "macs", firstFew(macs))
			continue
		}
		if guestsErr != nil {
			d.log.Error("cannot read learned guests; arrivals not announced", "group", g.cfg.Name, "err", guestsErr)
			continue
		}
		var recent []announce.Guest
		for _, gu := range d.announceable(all, g.id) {
			if len(gu.MAC) == 6 {
				if _, ok := g.arrived[arrivalKey{gu.VLAN, [6]byte(gu.MAC)}]; ok {
					recent = append(recent, gu)
				}
			}
		}
		if len(recent) == 0 {
			continue // forgotten again already (port removed)
		}
		if g.balanced() {
			d.log.Info("guests arrived; announcing them on their uplinks", "group", g.cfg.Name,
				"new", len(macs), "macs", firstFew(macs), "announced", len(recent))
			d.announceBySlot(g, recent, arrivalsKey)
			continue
		}
		d.log.Info("guests arrived; announcing them on the active uplink", "group", g.cfg.Name, "uplink", up.name,
			"new", len(macs), "macs", firstFew(macs), "announced", len(recent))
		results := d.announceOn(g, up, recent, arrivalsKey, time.Time{})
		name := g.cfg.Name // a reload may rewrite g.cfg meanwhile
		go func() {
			res := <-results
			d.log.Debug("arrivals announced", "group", name, "uplink", up.name, "guests", len(recent),
				"frames", res.Frames, "rounds", res.Rounds, "errors", res.Errors, "canceled", res.Canceled)
		}()
	}
}

// pruneArrivals drops entries older than before, then the oldest beyond
// max.
func pruneArrivals(m map[arrivalKey]time.Time, before time.Time, max int) {
	for k, t := range m {
		if t.Before(before) {
			delete(m, k)
		}
	}
	if len(m) <= max {
		return
	}
	type entry struct {
		k  arrivalKey
		at time.Time
	}
	all := make([]entry, 0, len(m))
	for k, t := range m {
		all = append(all, entry{k, t})
	}
	slices.SortFunc(all, func(a, b entry) int { return a.at.Compare(b.at) })
	for _, e := range all[:len(all)-max] {
		delete(m, e.k)
	}
}

// activeUplink is g's attached active uplink, or nil.
func (d *Daemon) activeUplink(g *group) *port {
	slot := g.policy.Active()
	if !slot.Valid() {
		return nil
	}
	if up := g.uplinks[slot]; up != nil && up.ifindex > 0 {
		return up
	}
	return nil
}

// firstFew keeps log lines short in a burst.
func firstFew(s []string) []string {
	if len(s) > 8 {
		return append(s[:8:8], "...")
	}
	return s
}
