package daemon

import (
	"bytes"
	"context"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"time"

	"github.com/uplinkd/uplinkd/pkg/announce"
	"github.com/uplinkd/uplinkd/pkg/balance"
	"github.com/uplinkd/uplinkd/pkg/config"
	"github.com/uplinkd/uplinkd/pkg/datapath"
	"github.com/uplinkd/uplinkd/pkg/hostport"
	"github.com/uplinkd/uplinkd/pkg/limits"
	"github.com/uplinkd/uplinkd/pkg/metrics"
)

// Announcements tell the upstream switches where the guests are now: after
// a failover (every learned guest of an active-backup group, on its new
// uplink), when a balance group's buckets move (their guests, each on its
// new uplink), when an uplink bounced, and when guests arrive.
//
// The planner (planRun, planBySlot, arrivalLog) decides which guests go
// out of which uplink, how often, and under which key; it does no I/O. The
// announcer carries plans out: it reads the learned guests, starts the
// runs and brings their results back to the event loop. A run replaces the
// group's running one with the same key; a failover's run (no key) also
// ends the group's others, which send on the old uplink (announce.Request).

// outlet is an uplink as the planner sees it: where a run can be sent.
type outlet struct {
	name    string
	ifindex int // 0: not attached, nothing can be sent
}

// planRun is one run of guests out of up with the group's announce
// setting; false when there is nothing to send.
func planRun(group string, set config.Announce, up outlet, guests []announce.Guest, key string) (announce.Request, bool) {
	if set.Count == 0 || up.ifindex == 0 || len(guests) == 0 {
		return announce.Request{}, false
	}
	return announce.Request{Group: group, Key: key, Ifindex: up.ifindex, Ifname: up.name,
		Guests: guests, Count: set.Count, Interval: set.Interval}, true
}

// planBySlot sends each of a balance group's guests out of the uplink it
// leaves through (slotOf; NoSlot: not sent): one run per uplink, in slot
// order, keyed "<why>/<uplink>" so that runs for different reasons or
// uplinks do not end each other.
func planBySlot(group string, set config.Announce, uplinks [limits.MaxUplinks]outlet,
	slotOf func(announce.Guest) limits.Slot, guests []announce.Guest, why string) []announce.Request {
	bySlot := map[limits.Slot][]announce.Guest{}
	for _, gu := range guests {
		if s := slotOf(gu); s.Valid() {
			bySlot[s] = append(bySlot[s], gu)
		}
	}
	var out []announce.Request
	for _, s := range slices.Sorted(maps.Keys(bySlot)) {
		up := uplinks[s]
		if req, ok := planRun(group, set, up, bySlot[s], why+"/"+up.name); ok {
			out = append(out, req)
		}
	}
	return out
}

// announceCounts are a group's announcement counters since start.
type announceCounts struct {
	frames, suppressed uint64
}

// announcer carries out the planner's runs. It owns the sender; a group's
// recent arrivals and counters live on the group (g.arrived, g.announced),
// touched only on the event loop.
type announcer struct {
	send     announceSender
	guests   func() ([]datapath.Guest, error)                 // every learned guest (a walk of the FDB)
	hostEnds func(ifnames []string) ([]hostport.End, []error) // host ports' host ends now
	met      *metrics.Metrics
	log      *slog.Logger
	post     func(func()) // runs a function on the event loop
}

// learned are g's learned guests, with their ports' announce priorities,
// and its host ports.
func (a *announcer) learned(g *group) ([]announce.Guest, error) {
	all, err := a.guests()
	if err != nil {
		return nil, err
	}
	return withHostPorts(learnedOf(g, all), a.hostPorts(g, nil)), nil
}

// hostPorts are g's host ports that read selects (nil: all) as guests:
// the MAC the host end has now, with the addresses on it now. The host
// answers ARP and ND for those whether or not the switch has seen it use
// them, so they are announced from the start, and a host port that has
// sent nothing yet is announced too. The MAC is read too because the
// operator may set another one (systemd-networkd's MACAddress=): the old
// one must not take the host's addresses with it. Reading host ends is
// netlink requests on the event loop (one address dump for them all),
// hence read.
func (a *announcer) hostPorts(g *group, read func(*port) bool) []announce.Guest {
	var ports []*port
	var names []string
	for _, p := range g.guests {
		if p.hostEnd != "" && (read == nil || read(p)) {
			ports, names = append(ports, p), append(names, p.hostEnd)
		}
	}
	if len(names) == 0 {
		return nil
	}
	ends, errs := a.hostEnds(names)
	var out []announce.Guest
	for i, p := range ports {
		if errs[i] != nil {
			a.log.Warn("cannot read a host port in full; announcing what was read, with what the switch learned", "group", g.cfg.Name,
				"host_port", p.hostEnd, "err", errs[i])
		}
		// A host end deleted by hand has no MAC the host answers for; one
		// not read leaves what the switch learned to be announced.
		if end := ends[i]; end.Exists && len(end.MAC) == 6 {
			out = append(out, announce.Guest{MAC: end.MAC, VLAN: p.vlan, Addrs: end.Addrs, Priority: p.announcePriority})
		}
	}
	return out
}

// withHostPorts merges hosts into guests: a host port the switch learned
// gets the host's addresses added to the learned ones; one it did not
// learn is added. The host's addresses go only with its MAC: another
// entry on the same VLAN loses them (the MAC the host end had before an
// operator changed it, learned with them).
func withHostPorts(guests, hosts []announce.Guest) []announce.Guest {
	for _, h := range hosts {
		for i, gu := range guests {
			if gu.VLAN == h.VLAN && !bytes.Equal(gu.MAC, h.MAC) {
				guests[i].Addrs = slices.DeleteFunc(slices.Clone(gu.Addrs), func(a netip.Addr) bool { return slices.Contains(h.Addrs, a) })
			}
		}
		i := slices.IndexFunc(guests, func(gu announce.Guest) bool {
			return gu.VLAN == h.VLAN && bytes.Equal(gu.MAC, h.MAC)
		})
		if i < 0 {
			guests = append(guests, h)
			continue
		}
		addrs := append(slices.Clone(guests[i].Addrs), h.Addrs...)
		slices.SortFunc(addrs, netip.Addr.Compare)
		guests[i].Addrs = slices.Compact(addrs)
	}
	return guests
}

// learnedOf are the guests of g among all, with their ports' announce
// priorities.
func learnedOf(g *group, all []datapath.Guest) []announce.Guest {
	prio := map[int]int{}
	for _, p := range g.ports() {
		if p.ifindex > 0 {
			prio[p.ifindex] = p.announcePriority
		}
	}
	var out []announce.Guest
	for _, gu := range all {
		if gu.Group == g.id {
			out = append(out, announce.Guest{MAC: gu.MAC, VLAN: gu.VLAN, Addrs: gu.Addrs, Priority: prio[gu.Ifindex]})
		}
	}
	return out
}

// start starts req for g. Its result is counted (in g and the metrics;
// switched, zero for runs that follow no switch, times the first frame
// after it), then given to done, on the event loop.
func (a *announcer) start(g *group, req announce.Request, switched time.Time, done func(announce.Request, announce.Result)) {
	results := a.send.Announce(context.Background(), req)
	go func() {
		res := <-results
		a.met.Announced(req.Group, switched, res.First)
		a.post(func() {
			g.announced.frames += uint64(res.Frames)
			g.announced.suppressed += uint64(res.Suppressed)
			if done != nil {
				done(req, res)
			}
		})
	}()
}

// failover announces an active-backup group's learned guests out of up,
// its new active uplink, after the switch at switched; done gets the
// result on the loop. Every guest goes out: the run ends the arrivals'.
func (a *announcer) failover(g *group, up *port, switched time.Time, done func(announce.Request, announce.Result)) {
	if g.cfg.Announce.Count == 0 || up.ifindex == 0 {
		return
	}
	guests, err := a.learned(g)
	if err != nil {
		a.log.Error("cannot read learned guests; no announcement", "group", g.cfg.Name, "err", err)
		return
	}
	req, ok := planRun(g.cfg.Name, g.cfg.Announce, up.outlet(), guests, "")
	if !ok {
		return
	}
	g.arrived.reset()
	a.start(g, req, switched, done)
}

// where announces the learned guests of balance group g that keep
// selects, each out of the uplink it leaves through.
func (a *announcer) where(g *group, why string, keep func(announce.Guest) bool) {
	if g.cfg.Announce.Count == 0 {
		return
	}
	guests, err := a.learned(g)
	if err != nil {
		a.log.Error("cannot read learned guests; no announcement", "group", g.cfg.Name, "err", err)
		return
	}
	a.bySlot(g, slices.DeleteFunc(guests, func(gu announce.Guest) bool { return !keep(gu) }), why)
}

// buckets announces the learned guests in buckets of balance group g,
// each on its uplink.
func (a *announcer) buckets(g *group, buckets []int, why string) {
	in := map[int]bool{}
	for _, b := range buckets {
		in[b] = true
	}
	a.where(g, why, func(gu announce.Guest) bool { return in[balance.Bucket(gu.MAC, gu.VLAN)] })
}

// slot announces the learned guests of balance group g that leave
// through slot.
func (a *announcer) slot(g *group, slot limits.Slot, why string) {
	a.where(g, why, func(gu announce.Guest) bool { return g.bal.slotOf(gu.MAC, gu.VLAN) == slot })
}

// bySlot announces guests of balance group g, each out of the uplink it
// leaves through.
func (a *announcer) bySlot(g *group, guests []announce.Guest, why string) {
	slotOf := func(gu announce.Guest) limits.Slot { return g.bal.slotOf(gu.MAC, gu.VLAN) }
	for _, req := range planBySlot(g.cfg.Name, g.cfg.Announce, g.outlets(), slotOf, guests, why) {
		a.start(g, req, time.Time{}, func(req announce.Request, res announce.Result) {
			a.log.Info("guests announced on their uplink", "group", req.Group, "uplink", req.Ifname, "why", why,
				"guests", len(req.Guests), "frames", res.Frames, "errors", res.Errors, "canceled", res.Canceled)
		})
	}
}

// arrivals announces arrived guests where they leave: on their group's
// active uplink, or in a balance group each on its bucket's uplink. The
// guests that arrived within one announcement's duration are announced
// again with them: a new run replaces the running one.
func (a *announcer) arrivals(groups []*group, batch []datapath.Arrival) {
	// One walk of the FDB and the addresses for the batch.
	all, guestsErr := a.guests()
	now := time.Now()
	for _, g := range groups {
		var macs []string
		for _, ar := range batch {
			if ar.Group == g.id && len(ar.MAC) == 6 {
				g.arrived.add(ar.MAC, ar.VLAN, now)
				macs = append(macs, ar.MAC.String())
			}
		}
		if len(macs) == 0 {
			continue
		}
		set := g.cfg.Announce
		g.arrived.prune(now.Add(-(time.Duration(set.Count)*set.Interval + time.Second)), maxRecentArrivals)
		up := g.activeUplink()
		if set.Count == 0 || up == nil {
			a.log.Info("guests arrived; not announced (no active uplink, or announcements off)", "group", g.cfg.Name, "macs", firstFew(macs))
			continue
		}
		if guestsErr != nil {
			a.log.Error("cannot read learned guests; arrivals not announced", "group", g.cfg.Name, "err", guestsErr)
			continue
		}
		// A host port a recent arrival was learned on goes out with the
		// host's addresses too, and with the MAC its host end has now; the
		// other host ports are not read.
		hosts := a.hostPorts(g, func(p *port) bool {
			return slices.ContainsFunc(all, func(e datapath.Guest) bool {
				return e.Group == g.id && e.Ifindex == p.ifindex && g.arrived.has(e.MAC, e.VLAN)
			})
		})
		recent := g.arrived.among(learnedOf(g, all))
		if len(recent) == 0 {
			continue // forgotten again already (port removed)
		}
		recent = withHostPorts(recent, hosts)
		if g.balanced() {
			a.log.Info("guests arrived; announcing them on their uplinks", "group", g.cfg.Name,
				"new", len(macs), "macs", firstFew(macs), "announced", len(recent))
			a.bySlot(g, recent, arrivalsKey)
			continue
		}
		a.log.Info("guests arrived; announcing them on the active uplink", "group", g.cfg.Name, "uplink", up.name,
			"new", len(macs), "macs", firstFew(macs), "announced", len(recent))
		req, _ := planRun(g.cfg.Name, set, up.outlet(), recent, arrivalsKey)
		a.start(g, req, time.Time{}, func(req announce.Request, res announce.Result) {
			a.log.Debug("arrivals announced", "group", req.Group, "uplink", req.Ifname, "guests", len(req.Guests),
				"frames", res.Frames, "rounds", res.Rounds, "errors", res.Errors, "canceled", res.Canceled)
		})
	}
}

// outlet is p as the planner sees it.
func (p *port) outlet() outlet { return outlet{name: p.name, ifindex: p.ifindex} }

// outlets are g's uplinks by slot, as the planner sees them.
func (g *group) outlets() [limits.MaxUplinks]outlet {
	var out [limits.MaxUplinks]outlet
	for s, p := range g.uplinks {
		if p != nil {
			out[s] = p.outlet()
		}
	}
	return out
}

// activeUplink is g's attached active uplink, or nil.
func (g *group) activeUplink() *port {
	slot := g.policy.Active()
	if !slot.Valid() {
		return nil
	}
	if up := g.uplinks[slot]; up != nil && up.ifindex > 0 {
		return up
	}
	return nil
}
