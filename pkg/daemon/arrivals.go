package daemon

import (
	"context"
	"errors"
	"net"
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

// arrivalLog is a group's guests that arrived lately, announced again
// with the next arrivals (a new run replaces the running one), and how many
// arrived since start.
type arrivalLog struct {
	at    map[arrivalKey]time.Time
	total uint64
}

// add notes that the guest mac on vlan arrived at now.
func (l *arrivalLog) add(mac net.HardwareAddr, vlan uint16, now time.Time) {
	if l.at == nil {
		l.at = map[arrivalKey]time.Time{}
	}
	l.at[arrivalKey{vlan, [6]byte(mac)}] = now
	l.total++
}

// reset forgets the recent arrivals: a failover's run announces every
// guest and ends the arrivals' run.
func (l *arrivalLog) reset() { clear(l.at) }

// has says whether the guest mac on vlan arrived lately.
func (l *arrivalLog) has(mac net.HardwareAddr, vlan uint16) bool {
	if len(mac) != 6 {
		return false
	}
	_, ok := l.at[arrivalKey{vlan, [6]byte(mac)}]
	return ok
}

// among are the guests of all that arrived lately.
func (l *arrivalLog) among(all []announce.Guest) []announce.Guest {
	var out []announce.Guest
	for _, gu := range all {
		if l.has(gu.MAC, gu.VLAN) {
			out = append(out, gu)
		}
	}
	return out
}

// prune drops arrivals older than before, then the oldest beyond max.
func (l *arrivalLog) prune(before time.Time, max int) {
	m := l.at
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

// firstFew keeps log lines short in a burst.
func firstFew(s []string) []string {
	if len(s) > 8 {
		return append(s[:8:8], "...")
	}
	return s
}
