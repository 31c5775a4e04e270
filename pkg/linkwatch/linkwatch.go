// Package linkwatch reports the existence, admin state and carrier of a set
// of interfaces as fast as the kernel makes them known.
//
// Two sources feed one state per name:
//
//   - a netlink RTNLGRP_LINK subscription (with a full listing at start and
//     after every receive error, e.g. ENOBUFS on overflow), which owns
//     existence and ifindex;
//   - a sysfs poller for a small set of names (the daemon polls each group's
//     active uplink), because the kernel's link-watch worker may hold back a
//     carrier event of a plain NIC or tap for up to a second while
//     /sys/class/net/IF/carrier_changes is current at once.
//
// carrier_changes is the version of a device's carrier: it only grows, so a
// netlink message older than what the poller already read is recognised
// and dropped instead of reporting an old carrier as news.
//
// The watcher works in the network namespace of the thread that calls Run
// (the daemon simply runs inside its namespace). Tests and tools can point
// it at another namespace with Options.Netns plus a sysfs mounted from
// inside that namespace (what `ip netns exec` does) in Options.SysfsNetDir.
package linkwatch

import (
	"context"
	"fmt"
	"log/slog"
	"path"
	"slices"
	"sync"
	"time"

	"github.com/vishvananda/netns"
)

// Sources of a State.
const (
	SourceNetlink = "netlink" // an RTM_NEWLINK/RTM_DELLINK notification
	SourcePoll    = "poll"    // the sysfs poller
	SourceList    = "list"    // a full listing (start, re-subscription, Snapshot, SetNames)
)

// DefaultPollInterval is used when Options.PollInterval is zero: a carrier
// loss is seen within it plus ~0.15 ms, so under 1 ms. Polling one
// interface every 500 µs costs ~4.7% of one CPU on a 2-vCPU VM (2.4% at
// 1 ms; go test -v -run TestPollCost ./pkg/linkwatch), nearly all of it
// the timer wake-up; each further polled interface adds a ~2 µs read.
const DefaultPollInterval = 500 * time.Microsecond

// DefaultSysfsNetDir is the sysfs directory of the caller's namespace (as
// long as /sys was mounted from inside it).
const DefaultSysfsNetDir = "/sys/class/net"

// State is what the daemon needs to know about one interface.
type State struct {
	Name           string
	Index          int // 0 when !Exists
	Exists         bool
	AdminUp        bool // IFF_UP
	Carrier        bool // IFF_LOWER_UP: running and carrier
	CarrierChanges uint32
	Source         string // SourceNetlink, SourcePoll or SourceList
	Seen           time.Time
}

// sameAs reports whether two states agree on everything the daemon acts on.
func (s State) sameAs(o State) bool {
	return s.Exists == o.Exists && s.Index == o.Index && s.AdminUp == o.AdminUp &&
		s.Carrier == o.Carrier && s.CarrierChanges == o.CarrierChanges
}

func (s State) String() string {
	if !s.Exists {
		return fmt.Sprintf("%s: absent (%s)", s.Name, s.Source)
	}
	return fmt.Sprintf("%s[%d]: admin=%t carrier=%t changes=%d (%s)",
		s.Name, s.Index, s.AdminUp, s.Carrier, s.CarrierChanges, s.Source)
}

// Options configure a Watcher. The zero value watches the caller's
// namespace through netlink and polls nothing.
type Options struct {
	// PollInterval is the period of the sysfs poll; zero means
	// DefaultPollInterval.
	PollInterval time.Duration
	// Polled is the initial set of names to poll; see SetPolled.
	Polled []string
	// Patterns is the initial set of name patterns; see SetPatterns.
	Patterns []string
	// OnCarrierLost, if set, is called the moment the poll sees a polled
	// interface's carrier go, on the poll's own thread, and so nearly
	// always before the State is published (the runner's own slower
	// check may publish first): the daemon moves traffic off it there.
	// It must return quickly and not call the Watcher.
	OnCarrierLost func(name string)
	// DisableNetlink turns the subscription off: only polled names are
	// reported, and the poller then also tracks existence and ifindex.
	// Meant for tests and diagnosis.
	DisableNetlink bool
	// Netns is the namespace for the netlink sockets; nil means the
	// namespace of the thread running Run.
	Netns *netns.NsHandle
	// SysfsNetDir is read by the poller. It must belong to a sysfs mounted
	// from inside the watched namespace. Empty means DefaultSysfsNetDir.
	SysfsNetDir string
	// ReceiveBufferSize sets SO_RCVBUFFORCE on the subscription socket;
	// zero keeps the kernel default. A larger buffer overflows less often
	// during event storms (an overflow costs a full listing).
	ReceiveBufferSize int
}

// Watcher watches a set of interface names and name patterns. Create it
// with New, start it with Run (one Run at a time); SetNames, SetPolled and
// SetPatterns may be called at any time from any goroutine.
type Watcher struct {
	opts Options
	log  *slog.Logger

	mu       sync.Mutex
	names    []string
	polled   []string
	patterns []string
	changed  chan struct{} // capacity 1: "names or polled changed"

	// beforeReceive, if set, runs before each netlink receive (tests use
	// it to hold the reader back until the socket overflows).
	beforeReceive func()
}

// New returns a Watcher for names. A nil log means slog.Default().
func New(names []string, opts Options, log *slog.Logger) *Watcher {
	if opts.PollInterval <= 0 {
		opts.PollInterval = DefaultPollInterval
	}
	if opts.SysfsNetDir == "" {
		opts.SysfsNetDir = DefaultSysfsNetDir
	}
	if log == nil {
		log = slog.Default()
	}
	return &Watcher{
		opts:     opts,
		log:      log.With("component", "linkwatch"),
		names:    slices.Clone(names),
		polled:   slices.Clone(opts.Polled),
		patterns: slices.Clone(opts.Patterns),
		changed:  make(chan struct{}, 1),
	}
}

// SetNames replaces the watched set. Newly watched names are reported at
// once (when their state is known); dropped names are no longer reported.
func (w *Watcher) SetNames(names ...string) {
	w.mu.Lock()
	w.names = slices.Clone(names)
	w.mu.Unlock()
	w.notify()
}

// SetPolled replaces the set of names whose sysfs carrier is polled every
// PollInterval. Polled names are watched even if SetNames left them out.
func (w *Watcher) SetPolled(names ...string) {
	w.mu.Lock()
	w.polled = slices.Clone(names)
	w.mu.Unlock()
	w.notify()
}

// SetPatterns replaces the name patterns (path.Match syntax: vnet*,
// tap[0-9]*): every interface whose name matches one is watched as if
// named, so one that appears is reported at once. A matched name that
// is gone is reported absent once and then forgotten. Patterns need
// netlink: with DisableNetlink they match nothing.
func (w *Watcher) SetPatterns(patterns ...string) {
	w.mu.Lock()
	w.patterns = slices.Clone(patterns)
	w.mu.Unlock()
	w.notify()
}

func (w *Watcher) notify() {
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

func (w *Watcher) config() (watched, polled map[string]bool, patterns []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	patterns = slices.Clone(w.patterns)
	watched = make(map[string]bool, len(w.names)+len(w.polled))
	polled = make(map[string]bool, len(w.polled))
	for _, n := range w.names {
		watched[n] = true
	}
	for _, n := range w.polled {
		watched[n] = true
		polled[n] = true
	}
	return watched, polled, patterns
}

// matchesAny reports whether name matches one of patterns; a malformed
// pattern matches nothing (the daemon validates them).
func matchesAny(patterns []string, name string) bool {
	for _, p := range patterns {
		if ok, _ := path.Match(p, name); ok {
			return true
		}
	}
	return false
}

// Run watches until ctx is done and sends every change of a watched name
// to out. Sends block: a reader that falls far behind makes the netlink
// socket overflow, which Run survives with a full listing. Run returns nil
// when ctx is done.
func (w *Watcher) Run(ctx context.Context, out chan<- State) error {
	r := &runner{
		w:       w,
		ctx:     ctx,
		out:     out,
		last:    map[string]State{},
		files:   map[string]*sysfsFiles{},
		links:   map[int]linkMsg{},
		backoff: minBackoff,
	}
	r.scan = newScanner(w.opts.PollInterval, w.opts.OnCarrierLost, w.log)
	defer r.close()
	r.applyConfig()

	var resub <-chan time.Time
	if !w.opts.DisableNetlink {
		if err := r.subscribe(); err != nil {
			w.log.Warn("netlink subscription failed, retrying", "err", err, "in", r.backoff)
			resub = r.nextRetry()
		}
	}
	for {
		var events <-chan subEvent
		if r.sub != nil {
			events = r.sub.events
		}
		select {
		case <-ctx.Done():
			return nil
		case <-w.changed:
			r.applyConfig()
		case <-r.tickC():
			r.pollAll()
		case <-r.scan.moved:
			r.pollAll()
		case ev := <-events:
			if ev.err != nil {
				r.lost(ev.err)
				resub = r.nextRetry()
				continue
			}
			r.handle(ev)
		case <-resub:
			resub = nil
			if err := r.subscribe(); err != nil {
				w.log.Warn("netlink subscription failed, retrying", "err", err, "in", r.backoff)
				resub = r.nextRetry()
			}
		}
	}
}

// runner is the state owned by one Run call; only Run's goroutine uses it.
type runner struct {
	w   *Watcher
	ctx context.Context
	out chan<- State

	watched  map[string]bool
	polled   map[string]bool
	patterns []string
	last     map[string]State       // published state per watched name
	files    map[string]*sysfsFiles // open sysfs files per polled name
	scan     *scanner               // reads their carrier_changes every PollInterval
	ticker   *time.Ticker           // opens and checks the files; nil while nothing is polled

	sub      *subscription
	subSince time.Time
	links    map[int]linkMsg // netlink's view of every interface, by ifindex
	listing  bool            // a full listing is in progress on sub
	listed   bool            // a full listing completed on sub
	backoff  time.Duration
}

const (
	minBackoff = 10 * time.Millisecond
	maxBackoff = time.Second
)

func (r *runner) close() {
	r.scan.stop()
	if r.sub != nil {
		r.sub.stop()
	}
	if r.ticker != nil {
		r.ticker.Stop()
	}
	for _, f := range r.files {
		f.close()
	}
}

func (r *runner) tickC() <-chan time.Time {
	if r.ticker == nil {
		return nil
	}
	return r.ticker.C
}

// emit publishes st unless ctx is done.
func (r *runner) emit(st State) {
	select {
	case r.out <- st:
	case <-r.ctx.Done():
	}
}

// update records the new state of a watched name and publishes it if
// anything the daemon acts on changed (or always, with force).
func (r *runner) update(st State, source string, publish, force bool) {
	if !st.Exists {
		st.Index, st.AdminUp, st.Carrier, st.CarrierChanges = 0, false, false, 0
	}
	prev, known := r.last[st.Name]
	if known && prev.sameAs(st) && !force {
		return
	}
	st.Source = source
	st.Seen = time.Now()
	r.last[st.Name] = st
	if publish {
		r.emit(st)
	}
}

// watches reports whether name is reported: named, polled or matched.
func (r *runner) watches(name string) bool {
	return r.watched[name] || matchesAny(r.patterns, name)
}

// forgetGone drops a matched (not named) name once its absence is
// published: interfaces that come and go must not grow the state.
func (r *runner) forgetGone(name string) {
	if st, ok := r.last[name]; ok && !st.Exists && !r.watched[name] {
		delete(r.last, name)
	}
}

func (r *runner) applyConfig() {
	watched, polled, patterns := r.w.config()
	for name := range r.last {
		if !watched[name] && !matchesAny(patterns, name) {
			delete(r.last, name)
		}
	}
	for name, f := range r.files {
		if !polled[name] {
			f.close()
			delete(r.files, name)
		}
	}
	for name := range polled {
		if r.files[name] == nil {
			r.files[name] = &sysfsFiles{}
		}
	}
	added := []string{}
	for name := range watched {
		if !r.watches(name) {
			added = append(added, name)
		}
	}
	for _, m := range r.links {
		if matchesAny(patterns, m.name) && !watched[m.name] && !r.watches(m.name) {
			added = append(added, m.name)
		}
	}
	r.watched, r.polled, r.patterns = watched, polled, patterns

	// Names new to the watch are reported from netlink's view, if it is
	// complete; otherwise the listing in progress will report them.
	if r.listed && !r.listing {
		slices.Sort(added)
		for _, name := range added {
			r.update(r.fromLinks(name), SourceList, true, true)
		}
	}

	switch {
	case len(polled) == 0 && r.ticker != nil:
		r.ticker.Stop()
		r.ticker = nil
	case len(polled) > 0 && r.ticker == nil:
		r.ticker = time.NewTicker(r.tickInterval())
	}
	r.syncScan()
}

// maintenanceInterval is how often the runner itself checks the polled
// interfaces when netlink reports their existence: it opens the files of
// interfaces that appeared and re-reads every counter, behind the scanner.
const maintenanceInterval = 20 * time.Millisecond

// tickInterval is the runner's own poll period: without netlink the poll
// is all there is (existence included); with it, the scanner does the
// fast part.
func (r *runner) tickInterval() time.Duration {
	if r.w.opts.DisableNetlink {
		return r.w.opts.PollInterval
	}
	return max(r.w.opts.PollInterval, maintenanceInterval)
}

// fromLinks returns netlink's view of name (absent if no link has it).
func (r *runner) fromLinks(name string) State {
	for _, m := range r.links {
		if m.name == name {
			return m.state()
		}
	}
	return State{Name: name}
}

func (r *runner) nextRetry() <-chan time.Time {
	d := r.backoff
	r.backoff = min(2*r.backoff, maxBackoff)
	return time.After(d)
}
