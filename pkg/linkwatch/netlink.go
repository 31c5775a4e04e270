package linkwatch

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/uplinkd/uplinkd/pkg/nldump"
)

// The subscription is built on the netlink library's nl layer rather than
// netlink.LinkSubscribeWithOptions because LinkUpdate drops
// IFLA_CARRIER_CHANGES (needed for State.CarrierChanges and to recognise
// stale messages), hides the end of the initial listing (needed to report
// names that do not exist), and reports receive errors as strings.

// linkMsg is the part of an RTM_NEWLINK/RTM_DELLINK message we use.
type linkMsg struct {
	typ     uint16
	index   int
	name    string
	flags   uint32
	changes uint32
}

func (m linkMsg) state() State {
	return State{
		Name:           m.name,
		Index:          m.index,
		Exists:         m.typ != unix.RTM_DELLINK,
		AdminUp:        m.flags&unix.IFF_UP != 0,
		Carrier:        m.flags&unix.IFF_LOWER_UP != 0,
		CarrierChanges: m.changes,
	}
}

// parseLink decodes the payload (ifinfomsg + attributes) of a link message.
func parseLink(typ uint16, data []byte) (linkMsg, error) {
	if len(data) < unix.SizeofIfInfomsg {
		return linkMsg{}, fmt.Errorf("link message of %d bytes is too short", len(data))
	}
	ifi := nl.DeserializeIfInfomsg(data)
	m := linkMsg{typ: typ, index: int(ifi.Index), flags: ifi.Flags}
	attrs, err := nl.ParseRouteAttr(data[unix.SizeofIfInfomsg:])
	if err != nil {
		return linkMsg{}, fmt.Errorf("link message attributes: %w", err)
	}
	for _, a := range attrs {
		switch a.Attr.Type {
		case unix.IFLA_IFNAME:
			m.name = unix.ByteSliceToString(a.Value)
		case unix.IFLA_CARRIER_CHANGES:
			if len(a.Value) >= 4 {
				m.changes = nl.NativeEndian().Uint32(a.Value)
			}
		}
	}
	if m.name == "" {
		return linkMsg{}, fmt.Errorf("link message for ifindex %d has no name", m.index)
	}
	return m, nil
}

// newDumpRequest asks for every link of the namespace.
func newDumpRequest() *nl.NetlinkRequest {
	req := nl.NewNetlinkRequest(unix.RTM_GETLINK, unix.NLM_F_DUMP)
	req.AddData(nl.NewIfInfomsg(unix.AF_UNSPEC))
	return req
}

// subEvent is one receive's worth of a subscription.
type subEvent struct {
	links    []linkMsg
	listDone bool  // the full listing requested at subscription ended
	listIntr bool  // the listing may be inconsistent (changes during it still arrive as notifications)
	err      error // the subscription is dead (overflow, socket error)
}

// subscription is one RTNLGRP_LINK socket with the full listing requested
// on it, read by its own goroutine.
type subscription struct {
	sock    *nl.NetlinkSocket
	listSeq uint32
	events  chan subEvent
	done    chan struct{}
	once    sync.Once
}

func newSubscription(ns netns.NsHandle, rcvbuf int, beforeReceive func()) (*subscription, error) {
	sock, err := nl.SubscribeAt(ns, netns.None(), unix.NETLINK_ROUTE, unix.RTNLGRP_LINK)
	if err != nil {
		return nil, fmt.Errorf("subscribe to link events: %w", err)
	}
	if rcvbuf > 0 {
		if err := sock.SetReceiveBufferSize(rcvbuf, true); err != nil {
			sock.Close()
			return nil, fmt.Errorf("set receive buffer of the link subscription: %w", err)
		}
	}
	// Sent straight to the kernel: NetlinkSocket.Send would address the
	// socket's own groups and multicast the request to every listener.
	req := newDumpRequest()
	if err := unix.Sendto(sock.GetFd(), req.Serialize(), 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		sock.Close()
		return nil, fmt.Errorf("request link listing: %w", err)
	}
	s := &subscription{
		sock:    sock,
		listSeq: req.Seq,
		events:  make(chan subEvent, 16),
		done:    make(chan struct{}),
	}
	go s.read(beforeReceive)
	return s, nil
}

// stop closes the socket; the reader exits without blocking.
func (s *subscription) stop() {
	s.once.Do(func() {
		close(s.done)
		s.sock.Close()
	})
}

func (s *subscription) send(ev subEvent) bool {
	select {
	case s.events <- ev:
		return true
	case <-s.done:
		return false
	}
}

func (s *subscription) read(beforeReceive func()) {
	for {
		if beforeReceive != nil {
			beforeReceive()
		}
		msgs, from, err := s.sock.Receive()
		if err != nil {
			s.send(subEvent{err: err})
			return
		}
		if from.Pid != nl.PidKernel {
			continue // another process multicasting to the group
		}
		ev := subEvent{}
		for _, m := range msgs {
			if m.Header.Flags&unix.NLM_F_DUMP_INTR != 0 {
				ev.listIntr = true
			}
			switch m.Header.Type {
			case unix.NLMSG_DONE:
				if m.Header.Seq == s.listSeq {
					ev.listDone = true
				}
			case unix.NLMSG_ERROR:
				if len(m.Data) >= 4 && m.Header.Seq == s.listSeq {
					if errno := int32(nl.NativeEndian().Uint32(m.Data)); errno != 0 {
						ev.err = fmt.Errorf("link listing: %w", syscall.Errno(-errno))
					}
				}
			case unix.RTM_NEWLINK, unix.RTM_DELLINK:
				lm, err := parseLink(m.Header.Type, m.Data)
				if err != nil {
					continue // not something a watched name could be
				}
				ev.links = append(ev.links, lm)
			}
		}
		if !s.send(ev) || ev.err != nil {
			return
		}
	}
}

// subscribe starts a subscription with a full listing; the listing's end
// reconciles every watched name.
func (r *runner) subscribe() error {
	ns := netns.None()
	if r.w.opts.Netns != nil {
		ns = *r.w.opts.Netns
	}
	sub, err := newSubscription(ns, r.w.opts.ReceiveBufferSize, r.w.beforeReceive)
	if err != nil {
		return err
	}
	r.sub, r.subSince = sub, time.Now()
	r.links = map[int]linkMsg{}
	r.listing, r.listed = true, false
	return nil
}

// lost drops a dead subscription; Run re-subscribes after the backoff.
func (r *runner) lost(err error) {
	r.sub.stop()
	r.sub = nil
	r.listing, r.listed = false, false
	if time.Since(r.subSince) > 10*maxBackoff {
		r.backoff = minBackoff
	}
	if errors.Is(err, unix.ENOBUFS) {
		r.w.log.Warn("netlink socket overflowed, link events were lost: re-subscribing with a full listing",
			"err", err, "in", r.backoff)
		return
	}
	r.w.log.Warn("netlink subscription failed: re-subscribing with a full listing", "err", err, "in", r.backoff)
}

func (r *runner) handle(ev subEvent) {
	for _, m := range ev.links {
		r.apply(m)
	}
	if ev.listIntr {
		r.w.log.Debug("link listing interrupted by changes; notifications cover them")
	}
	if ev.listDone && r.listing {
		r.listing, r.listed = false, true
		r.reconcile()
	}
}

// apply folds one netlink message into the state. During a listing
// nothing is published: the listing's end publishes every watched name.
func (r *runner) apply(m linkMsg) {
	source, publish := SourceNetlink, true
	if r.listing {
		source, publish = SourceList, false
	}
	switch m.typ {
	case unix.RTM_DELLINK:
		delete(r.links, m.index)
		if !r.watches(m.name) {
			return
		}
		if last, ok := r.last[m.name]; ok && last.Exists && last.Index != m.index {
			return // an older incarnation of the name
		}
		r.update(State{Name: m.name}, source, publish, false)
		if publish {
			r.forgetGone(m.name)
		}
	case unix.RTM_NEWLINK:
		if prev, ok := r.links[m.index]; ok && prev.name != m.name && r.watches(prev.name) {
			// Renamed: the old name no longer exists.
			if last, ok := r.last[prev.name]; ok && last.Exists && last.Index == m.index {
				r.update(State{Name: prev.name}, source, publish, false)
				if publish {
					r.forgetGone(prev.name)
				}
			}
		}
		r.links[m.index] = m
		if !r.watches(m.name) {
			return
		}
		st := m.state()
		if last, ok := r.last[m.name]; ok && last.Exists && last.Index == st.Index &&
			st.CarrierChanges < last.CarrierChanges {
			return // older than what the poller already read
		}
		r.update(st, source, publish, false)
	}
}

// reconcile publishes every watched name after a full listing: the named
// ones, the links that match a pattern, and matched names last seen that
// are gone now.
func (r *runner) reconcile() {
	names := make([]string, 0, len(r.watched))
	for name := range r.watched {
		names = append(names, name)
	}
	for _, m := range r.links {
		if matchesAny(r.patterns, m.name) {
			names = append(names, m.name)
		}
	}
	for name := range r.last {
		if matchesAny(r.patterns, name) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range slices.Compact(names) {
		inLinks := r.fromLinks(name)
		st, ok := r.last[name]
		if !inLinks.Exists || !ok {
			st = inLinks
		}
		r.update(st, SourceList, true, true)
		r.forgetGone(name)
	}
}

// Snapshot lists the links of the caller's network namespace once and
// returns the state of each name (Exists false for missing ones), with
// Source "list".
func Snapshot(names []string) (map[string]State, error) {
	return snapshotIn(netns.None(), names)
}

func snapshotIn(ns netns.NsHandle, names []string) (map[string]State, error) {
	sock, err := nl.GetNetlinkSocketAt(ns, netns.None(), unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("open netlink socket: %w", err)
	}
	defer sock.Close()
	if err := sock.SetReceiveTimeout(&unix.Timeval{Sec: 10}); err != nil {
		return nil, fmt.Errorf("set netlink receive timeout: %w", err)
	}
	handles := map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: {Socket: sock}}

	// A listing still interrupted by concurrent changes after the retries
	// is used as is: it is a recent view.
	links, err := nldump.Retry(func() ([]linkMsg, error) {
		var links []linkMsg
		req := newDumpRequest()
		req.Sockets = handles
		err := req.ExecuteIter(unix.NETLINK_ROUTE, unix.RTM_NEWLINK, func(b []byte) bool {
			if m, err := parseLink(unix.RTM_NEWLINK, b); err == nil {
				links = append(links, m)
			}
			return true
		})
		return links, err
	})
	if err != nil && !nldump.Interrupted(err) {
		return nil, fmt.Errorf("list links: %w", err)
	}

	now := time.Now()
	res := make(map[string]State, len(names))
	for _, name := range names {
		res[name] = State{Name: name, Source: SourceList, Seen: now}
	}
	for _, m := range links {
		if _, ok := res[m.name]; ok {
			st := m.state()
			st.Source, st.Seen = SourceList, now
			res[m.name] = st
		}
	}
	return res, nil
}

// Current reads one interface's state now (one RTM_GETLINK, not a full
// listing), in the caller's namespace: existence, admin state and carrier
// (not CarrierChanges). An interface that does not exist is reported with
// Exists false.
func Current(name string) (State, error) {
	l, err := netlink.LinkByName(name)
	var notFound netlink.LinkNotFoundError
	if errors.As(err, &notFound) {
		return State{Name: name, Source: SourceList, Seen: time.Now()}, nil
	}
	if err != nil {
		return State{}, fmt.Errorf("read %s: %w", name, err)
	}
	a := l.Attrs()
	return State{
		Name: name, Index: a.Index, Exists: true,
		AdminUp: a.RawFlags&unix.IFF_UP != 0,
		Carrier: a.RawFlags&unix.IFF_LOWER_UP != 0,
		Source:  SourceList, Seen: time.Now(),
	}, nil
}
