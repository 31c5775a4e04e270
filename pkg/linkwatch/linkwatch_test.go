package linkwatch

import (
	"context"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

const (
	ifA = testPrefix + "-a" // the watched end
	ifB = testPrefix + "-b" // its peer, which the tests switch
	ifC = testPrefix + "-c"
	ifD = testPrefix + "-d"

	// Upper bounds that only catch a broken path; latencies are logged.
	eventBound = 2 * time.Second
)

func isCarrier(want bool) func(State) bool {
	return func(s State) bool { return s.Name == ifA && s.Exists && s.Carrier == want }
}

// TestWatchVeth walks a veth end through peer down/up, its own admin down,
// deletion and re-creation, once per way of running the watcher.
func TestWatchVeth(t *testing.T) {
	cases := []struct {
		name     string
		opts     Options
		inThread bool   // Run on a thread inside the namespace, Netns nil (the daemon's way)
		source   string // required source of carrier events; "" = any
	}{
		{name: "netlink", opts: Options{}, source: SourceNetlink},
		{name: "netlink-caller-namespace", opts: Options{}, inThread: true, source: SourceNetlink},
		{name: "netlink+poll", opts: Options{Polled: []string{ifA}}},
		{name: "poll-only", opts: Options{Polled: []string{ifA}, DisableNetlink: true}, source: SourcePoll},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tn := newTestNS(t)
			index := tn.addVeth(t, ifA, ifB)

			opts := tc.opts
			opts.SysfsNetDir = tn.sysfs
			var lockTo *netns.NsHandle
			if tc.inThread {
				lockTo = &tn.ns
			} else {
				opts.Netns = &tn.ns
			}
			log, _ := testLogger(t)
			out := startWatcher(t, New([]string{ifA}, opts, log), lockTo)

			first := waitFor(t, out, eventBound, "initial state", func(s State) bool { return s.Name == ifA && s.Exists })
			if first.Index != index || !first.AdminUp {
				t.Fatalf("initial state %v, want index %d admin up", first, index)
			}
			if !first.Carrier {
				waitFor(t, out, eventBound, "carrier up", isCarrier(true))
			}

			checkSource := func(s State) {
				t.Helper()
				if tc.source != "" && s.Source != tc.source {
					t.Errorf("source of %v = %q, want %q", s, s.Source, tc.source)
				}
			}
			step := func(what string, act func(), ok func(State) bool) State {
				t.Helper()
				start := time.Now()
				act()
				s := waitFor(t, out, eventBound, what, ok)
				t.Logf("%s: %v after %v", what, s, time.Since(start))
				checkSource(s)
				return s
			}

			down := step("peer down -> carrier off", func() { tn.setUp(t, ifB, false) }, isCarrier(false))
			if !down.AdminUp {
				t.Errorf("peer down made the watched end admin down: %v", down)
			}
			up := step("peer up -> carrier on", func() { tn.setUp(t, ifB, true) }, isCarrier(true))
			if up.CarrierChanges <= down.CarrierChanges {
				t.Errorf("carrier_changes did not grow: %d then %d", down.CarrierChanges, up.CarrierChanges)
			}
			// A down interface answers EINVAL for sysfs carrier: that is carrier off.
			step("own admin down", func() { tn.setUp(t, ifA, false) }, func(s State) bool {
				return s.Name == ifA && s.Exists && !s.AdminUp && !s.Carrier
			})
			step("own admin up", func() { tn.setUp(t, ifA, true) }, isCarrier(true))

			gone := step("delete", func() { tn.del(t, ifA) }, func(s State) bool { return s.Name == ifA && !s.Exists })
			if gone.Index != 0 {
				t.Errorf("absent state has index %d", gone.Index)
			}
			var newIndex int
			again := step("re-create", func() { newIndex = tn.addVeth(t, ifA, ifB) }, func(s State) bool {
				return s.Name == ifA && s.Exists && s.Carrier
			})
			if again.Index != newIndex || newIndex == index {
				t.Errorf("re-created %s has index %d in the event, %d in the kernel, %d before", ifA, again.Index, newIndex, index)
			}
			// The poller must follow the new incarnation.
			step("peer down after re-create", func() { tn.setUp(t, ifB, false) }, isCarrier(false))
		})
	}
}

// TestPollFlap: a down+up of the peer between two polls shows only as a
// carrier_changes jump of 2 with the carrier unchanged.
func TestPollFlap(t *testing.T) {
	tn := newTestNS(t)
	tn.addVeth(t, ifA, ifB)
	log, _ := testLogger(t)
	const interval = 400 * time.Millisecond
	out := startWatcher(t, New(nil, Options{
		Polled: []string{ifA}, DisableNetlink: true, PollInterval: interval,
		Netns: &tn.ns, SysfsNetDir: tn.sysfs,
	}, log), nil)

	before := waitFor(t, out, eventBound, "initial state", isCarrier(true))
	// A poll just happened; the next one is ~interval away.
	start := time.Now()
	tn.setUp(t, ifB, false)
	tn.setUp(t, ifB, true)
	if d := time.Since(start); d > interval/4 {
		t.Skipf("flap took %v, too slow to fall between two polls", d)
	}
	s := waitFor(t, out, 3*interval, "flap", func(s State) bool { return s.Name == ifA })
	if !s.Carrier || s.CarrierChanges != before.CarrierChanges+2 || s.Source != SourcePoll {
		t.Fatalf("flap reported as %v, want carrier on, changes %d, source poll", s, before.CarrierChanges+2)
	}
}

// TestTapPollBeatsLinkWatch measures carrier-off latency of a tap (not an
// urgent link-watch event) through netlink alone and through the poller.
func TestTapPollBeatsLinkWatch(t *testing.T) {
	tn := newTestNS(t)
	const tapName = testPrefix + "-tap"
	tp := tn.addTap(t, tapName)
	isTap := func(carrier bool) func(State) bool {
		return func(s State) bool { return s.Name == tapName && s.Exists && s.Carrier == carrier }
	}
	const rounds = 3

	// An independent subscriber timestamps the kernel's netlink messages
	// for the tap's carrier loss, to show when netlink itself knew.
	offSeen := make(chan time.Time, 64)
	updates := make(chan netlink.LinkUpdate, 64)
	done := make(chan struct{})
	if err := netlink.LinkSubscribeWithOptions(updates, done, netlink.LinkSubscribeOptions{Namespace: &tn.ns}); err != nil {
		t.Fatalf("observer subscription: %v", err)
	}
	t.Cleanup(func() {
		close(done)
		for range updates { // the library's reader exits once drained
		}
	})
	go func() {
		for u := range updates {
			if u.Attrs().Name == tapName && u.Flags&unix.IFF_LOWER_UP == 0 && u.Flags&unix.IFF_UP != 0 {
				select {
				case offSeen <- time.Now():
				default:
				}
			}
		}
	}()

	type result struct{ watcher, netlink []time.Duration }
	measure := func(t *testing.T, opts Options) result {
		opts.Netns, opts.SysfsNetDir = &tn.ns, tn.sysfs
		log, _ := testLogger(t)
		ctxOut := startWatcher(t, New([]string{tapName}, opts, log), nil)
		tp.setCarrier(t, true)
		waitFor(t, ctxOut, 3*time.Second, "tap carrier on", isTap(true))
		var res result
		for range rounds {
			// Carrier on shortly before off: the link-watch worker just ran,
			// so it holds the next non-urgent event back for up to a second.
			tp.setCarrier(t, true)
			time.Sleep(50 * time.Millisecond)
			for len(offSeen) > 0 {
				<-offSeen
			}
			start := time.Now()
			tp.setCarrier(t, false)
			s := waitFor(t, ctxOut, 3*time.Second, "tap carrier off", isTap(false))
			res.watcher = append(res.watcher, time.Since(start))
			select {
			case at := <-offSeen:
				res.netlink = append(res.netlink, at.Sub(start))
			case <-time.After(3 * time.Second):
				t.Fatalf("no netlink message for the carrier loss")
			}
			t.Logf("carrier off: watcher %v via %s, netlink message %v",
				res.watcher[len(res.watcher)-1], s.Source, res.netlink[len(res.netlink)-1])
			tp.setCarrier(t, true)
			waitFor(t, ctxOut, 3*time.Second, "tap carrier on", isTap(true))
		}
		return res
	}
	// The poller reads carrier only when carrier_changes moves, relying on
	// admin changes not being held back by link-watch: check that on the
	// tap, right after a carrier event, with netlink alone.
	t.Run("admin-down-is-prompt", func(t *testing.T) {
		opts := Options{Netns: &tn.ns, SysfsNetDir: tn.sysfs}
		log, _ := testLogger(t)
		out := startWatcher(t, New([]string{tapName}, opts, log), nil)
		waitFor(t, out, 3*time.Second, "tap carrier on", isTap(true))
		tp.setCarrier(t, false)
		waitFor(t, out, 3*time.Second, "tap carrier off", isTap(false))
		tp.setCarrier(t, true)
		time.Sleep(50 * time.Millisecond)
		start := time.Now()
		tn.setUp(t, tapName, false)
		s := waitFor(t, out, 3*time.Second, "tap admin down", func(s State) bool { return s.Name == tapName && !s.AdminUp })
		d := time.Since(start)
		t.Logf("tap admin down seen after %v via %s", d, s.Source)
		if d > 500*time.Millisecond {
			t.Errorf("admin down took %v: held back like a carrier event", d)
		}
		tn.setUp(t, tapName, true)
		waitFor(t, out, 3*time.Second, "tap admin up", func(s State) bool { return s.Name == tapName && s.AdminUp && s.Carrier })
	})

	netlinkOnly := measure(t, Options{})
	polled := measure(t, Options{Polled: []string{tapName}, PollInterval: time.Millisecond})
	t.Logf("tap carrier-off latency, netlink only: watcher %v (netlink messages %v)", netlinkOnly.watcher, netlinkOnly.netlink)
	t.Logf("tap carrier-off latency, 1 ms poll:    watcher %v (netlink messages %v)", polled.watcher, polled.netlink)
	for _, d := range polled.watcher {
		if d > 500*time.Millisecond {
			t.Errorf("poll path took %v (> 500 ms): the poller is not working", d)
		}
	}
}

// TestPollCost measures the CPU the watcher uses to poll one interface
// every millisecond and every half millisecond (getrusage of the whole
// test process over 5 s each).
func TestPollCost(t *testing.T) {
	if testing.Short() {
		t.Skip("takes 15 s")
	}
	tn := newTestNS(t)
	tn.addVeth(t, ifA, ifB)
	const span = 5 * time.Second

	cpu := func(polled []string, interval time.Duration) time.Duration {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		out := make(chan State, 16)
		w := New([]string{ifA}, Options{Polled: polled, PollInterval: interval, Netns: &tn.ns, SysfsNetDir: tn.sysfs}, nil)
		done := make(chan struct{})
		go func() {
			defer close(done)
			w.Run(ctx, out)
		}()
		waitFor(t, out, eventBound, "initial", isCarrier(true))
		before := rusage(t)
		time.Sleep(span)
		used := rusage(t) - before
		cancel()
		<-done
		return used
	}
	idle := cpu(nil, time.Millisecond)
	t.Logf("CPU over %v: netlink only %v (%.2f%%)", span, idle, 100*idle.Seconds()/span.Seconds())
	for _, interval := range []time.Duration{time.Millisecond, 500 * time.Microsecond} {
		polling := cpu([]string{ifA}, interval)
		perTick := (polling - idle) / time.Duration(span/interval)
		t.Logf("polling 1 iface every %v: %v (%.2f%% of one CPU, ~%v per poll)",
			interval, polling, 100*polling.Seconds()/span.Seconds(), perTick)
		if polling > span/4 {
			t.Errorf("polling one interface every %v used %v of %v CPU", interval, polling, span)
		}
	}
}

func rusage(t *testing.T) time.Duration {
	t.Helper()
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkSysfsRead compares one pread of each polled attribute: carrier
// takes the RTNL lock in the kernel, carrier_changes does not.
func BenchmarkSysfsRead(b *testing.B) {
	requireRoot(b)
	name := "lo"
	f := &sysfsFiles{}
	if err := f.openAt(DefaultSysfsNetDir, name); err != nil {
		b.Fatal(err)
	}
	defer f.close()
	b.Run("carrier_changes", func(b *testing.B) {
		for b.Loop() {
			if _, err := f.readChanges(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("carrier", func(b *testing.B) {
		for b.Loop() {
			if _, _, err := f.readCarrier(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestOverflowResubscribes holds the reader back until the socket
// overflows, then expects a logged overflow and a full reconciliation.
func TestOverflowResubscribes(t *testing.T) {
	tn := newTestNS(t)
	tn.addVeth(t, ifA, ifB)
	tn.addVeth(t, ifC, ifD)

	log, logs := testLogger(t)
	w := New([]string{ifA, ifC, "missing0"}, Options{Netns: &tn.ns, SysfsNetDir: tn.sysfs, ReceiveBufferSize: 4096}, log)
	gate := make(chan struct{})
	var armed atomic.Bool
	w.beforeReceive = func() {
		if armed.Load() {
			<-gate
		}
	}
	out := startWatcher(t, w, nil)
	initial := map[string]bool{}
	for len(initial) < 3 {
		s := waitFor(t, out, eventBound, "initial listing", func(s State) bool { return s.Source == SourceList })
		initial[s.Name] = true
	}

	// The reader finishes the receive it is in, then waits at the gate
	// while the flaps pile up in the small socket buffer.
	armed.Store(true)
	for range 100 {
		tn.setUp(t, ifB, false)
		tn.setUp(t, ifB, true)
	}
	tn.setUp(t, ifB, false)
	close(gate)

	got := map[string]State{}
	for len(got) < 3 {
		s := waitFor(t, out, eventBound, "reconciliation", func(s State) bool { return s.Source == SourceList })
		got[s.Name] = s
	}
	if s := got[ifA]; !s.Exists || s.Carrier {
		t.Errorf("after overflow %s is %v, want present, carrier off", ifA, s)
	}
	if s := got[ifC]; !s.Exists || !s.Carrier {
		t.Errorf("after overflow %s is %v, want present, carrier on", ifC, s)
	}
	if s := got["missing0"]; s.Exists {
		t.Errorf("after overflow missing0 is %v", s)
	}
	if !strings.Contains(logs.String(), "overflowed") {
		t.Errorf("overflow not logged:\n%s", logs.String())
	}
	// And the new subscription delivers events again.
	tn.setUp(t, ifB, true)
	waitFor(t, out, eventBound, "carrier on after re-subscription", isCarrier(true))
}

// TestSetNamesAndRename changes the watched set at run time and renames a
// watched interface away and back.
func TestSetNamesAndRename(t *testing.T) {
	tn := newTestNS(t)
	tn.addVeth(t, ifA, ifB)
	cIndex := tn.addVeth(t, ifC, ifD)
	log, _ := testLogger(t)
	w := New([]string{ifA}, Options{Netns: &tn.ns, SysfsNetDir: tn.sysfs}, log)
	out := startWatcher(t, w, nil)
	waitFor(t, out, eventBound, "initial", isCarrier(true))

	w.SetNames(ifA, ifC)
	s := waitFor(t, out, eventBound, "added name", func(s State) bool { return s.Name == ifC })
	if !s.Exists || s.Index != cIndex || s.Source != SourceList {
		t.Fatalf("added name reported as %v", s)
	}
	// Dropping ifA and adding ifD at once: ifD's report shows the change is in.
	w.SetNames(ifC, ifD)
	waitFor(t, out, eventBound, "added name", func(s State) bool { return s.Name == ifD })

	notA := func(what string, ok func(State) bool) State {
		t.Helper()
		return waitFor(t, out, eventBound, what, func(s State) bool {
			if s.Name == ifA {
				t.Errorf("event for a dropped name: %v", s)
			}
			return ok(s)
		})
	}
	tn.setUp(t, ifB, false) // changes only ifA
	tn.setUp(t, ifC, false) // interfaces are renamed while down
	notA("ifC admin down", func(s State) bool { return s.Name == ifC && s.Exists && !s.AdminUp })

	const renamed = testPrefix + "-x"
	if err := tn.h.LinkSetName(mustLink(t, tn.h, ifC), renamed); err != nil {
		t.Fatalf("rename: %v", err)
	}
	notA("renamed away", func(s State) bool { return s.Name == ifC && !s.Exists })
	if err := tn.h.LinkSetName(mustLink(t, tn.h, renamed), ifC); err != nil {
		t.Fatalf("rename back: %v", err)
	}
	s = notA("renamed back", func(s State) bool { return s.Name == ifC && s.Exists })
	if s.Index != cIndex || s.AdminUp {
		t.Fatalf("rename back reported as %v, want index %d admin down", s, cIndex)
	}
	drain := time.After(100 * time.Millisecond)
	for {
		select {
		case s := <-out:
			if s.Name == ifA {
				t.Errorf("event for a dropped name: %v", s)
			}
		case <-drain:
			return
		}
	}
}

// TestSnapshot lists the namespace from a thread inside it.
func TestSnapshot(t *testing.T) {
	tn := newTestNS(t)
	index := tn.addVeth(t, ifA, ifB)
	tn.setUp(t, ifB, false)
	tn.setUp(t, ifB, true)
	tn.setUp(t, ifB, false)
	raw, err := os.ReadFile(tn.sysfs + "/" + ifA + "/carrier_changes")
	if err != nil {
		t.Fatal(err)
	}
	changes, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatal(err)
	}

	var got map[string]State
	if err := inNetns(tn.ns, func() (err error) {
		got, err = Snapshot([]string{ifA, "missing0"})
		return err
	}); err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	want := State{Name: ifA, Index: index, Exists: true, AdminUp: true, Carrier: false, CarrierChanges: uint32(changes)}
	if s := got[ifA]; !s.sameAs(want) || s.Source != SourceList {
		t.Errorf("Snapshot %s = %v, want %v", ifA, s, want)
	}
	if s, ok := got["missing0"]; !ok || s.Exists {
		t.Errorf("Snapshot missing0 = %v (present in map: %t)", s, ok)
	}
}

// TestApply checks how netlink messages are folded into the state,
// including messages older than what the poller already read.
func TestApply(t *testing.T) {
	const up = unix.IFF_UP | unix.IFF_LOWER_UP
	known := State{Name: ifA, Exists: true, Index: 7, AdminUp: true, Carrier: true, CarrierChanges: 6}
	cases := []struct {
		name    string
		links   map[int]linkMsg
		msg     linkMsg
		want    map[string]State // nil entry = no state
		publish []string         // names published, in order
	}{
		{
			name: "newer carrier off",
			msg:  linkMsg{typ: unix.RTM_NEWLINK, index: 7, name: ifA, flags: unix.IFF_UP, changes: 7},
			want: map[string]State{ifA: {Name: ifA, Exists: true, Index: 7, AdminUp: true, CarrierChanges: 7}}, publish: []string{ifA},
		},
		{
			name: "stale message older than the poll",
			msg:  linkMsg{typ: unix.RTM_NEWLINK, index: 7, name: ifA, flags: unix.IFF_UP, changes: 5},
			want: map[string]State{ifA: known},
		},
		{
			name: "same message again",
			msg:  linkMsg{typ: unix.RTM_NEWLINK, index: 7, name: ifA, flags: up, changes: 6},
			want: map[string]State{ifA: known},
		},
		{
			name: "admin down without carrier change",
			msg:  linkMsg{typ: unix.RTM_NEWLINK, index: 7, name: ifA, flags: 0, changes: 6},
			want: map[string]State{ifA: {Name: ifA, Exists: true, Index: 7, CarrierChanges: 6}}, publish: []string{ifA},
		},
		{
			name: "new incarnation with fewer changes",
			msg:  linkMsg{typ: unix.RTM_NEWLINK, index: 9, name: ifA, flags: up, changes: 1},
			want: map[string]State{ifA: {Name: ifA, Exists: true, Index: 9, AdminUp: true, Carrier: true, CarrierChanges: 1}}, publish: []string{ifA},
		},
		{
			name: "delete of an older incarnation",
			msg:  linkMsg{typ: unix.RTM_DELLINK, index: 3, name: ifA, flags: 0, changes: 2},
			want: map[string]State{ifA: known},
		},
		{
			name: "delete",
			msg:  linkMsg{typ: unix.RTM_DELLINK, index: 7, name: ifA, flags: up, changes: 6},
			want: map[string]State{ifA: {Name: ifA}}, publish: []string{ifA},
		},
		{
			name:  "renamed away",
			links: map[int]linkMsg{7: {typ: unix.RTM_NEWLINK, index: 7, name: ifA, flags: up, changes: 6}},
			msg:   linkMsg{typ: unix.RTM_NEWLINK, index: 7, name: "other", flags: up, changes: 6},
			want:  map[string]State{ifA: {Name: ifA}}, publish: []string{ifA},
		},
		{
			name: "unwatched name",
			msg:  linkMsg{typ: unix.RTM_NEWLINK, index: 8, name: "other", flags: up, changes: 1},
			want: map[string]State{ifA: known, "other": {}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := make(chan State, 8)
			w := New([]string{ifA}, Options{}, nil)
			r := &runner{w: w, ctx: t.Context(), out: out, last: map[string]State{ifA: known}, links: tc.links}
			if r.links == nil {
				r.links = map[int]linkMsg{}
			}
			r.watched, r.polled, r.patterns = w.config()
			r.apply(tc.msg)
			close(out)
			var published []string
			for s := range out {
				published = append(published, s.Name)
				if s.Source != SourceNetlink {
					t.Errorf("published %v with source %q", s, s.Source)
				}
			}
			if strings.Join(published, ",") != strings.Join(tc.publish, ",") {
				t.Errorf("published %v, want %v", published, tc.publish)
			}
			for name, want := range tc.want {
				got, ok := r.last[name]
				if want.Name == "" {
					if ok {
						t.Errorf("state for %s: %v, want none", name, got)
					}
					continue
				}
				if !got.sameAs(want) {
					t.Errorf("state %v, want %v", got, want)
				}
			}
		})
	}
}

func TestCurrent(t *testing.T) {
	tn := newTestNS(t)
	tn.addVeth(t, ifA, ifB)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = netns.Set(orig); orig.Close() }()
	if err := netns.Set(tn.ns); err != nil {
		t.Fatal(err)
	}
	if st, err := Current(ifA); err != nil || !st.Exists || !st.AdminUp || !st.Carrier || st.Index == 0 {
		t.Errorf("Current(%s) with its peer up = %+v, %v", ifA, st, err)
	}
	tn.setUp(t, ifB, false)
	if st, err := Current(ifA); err != nil || !st.Exists || !st.AdminUp || st.Carrier {
		t.Errorf("Current(%s) with its peer down = %+v, %v: want no carrier", ifA, st, err)
	}
	if st, err := Current("ulknothere"); err != nil || st.Exists {
		t.Errorf("Current of a missing interface = %+v, %v", st, err)
	}
}

// TestPatterns: an interface whose name matches a pattern is reported when
// it appears (or was there before the pattern) and when it goes, a rename
// into or out of a pattern counts as appearing and going, and names that
// match nothing stay silent.
func TestPatterns(t *testing.T) {
	tn := newTestNS(t)
	before := testPrefix + "-p0"
	tn.addVeth(t, before, testPrefix+"-q0")
	log, _ := testLogger(t)
	w := New(nil, Options{Netns: &tn.ns, SysfsNetDir: tn.sysfs, Patterns: []string{testPrefix + "-p*"}}, log)
	out := startWatcher(t, w, nil)
	onlyP := func(what string, ok func(State) bool) State {
		t.Helper()
		return waitFor(t, out, eventBound, what, func(s State) bool {
			if !strings.HasPrefix(s.Name, testPrefix+"-p") {
				t.Errorf("event for a name no pattern matches: %v", s)
			}
			return ok(s)
		})
	}
	onlyP("present at start", func(s State) bool { return s.Name == before && s.Exists })

	later := testPrefix + "-p1"
	idx := tn.addVeth(t, later, testPrefix+"-q1")
	if s := onlyP("appeared", func(s State) bool { return s.Name == later && s.Exists }); s.Index != idx {
		t.Errorf("appeared as %v, want index %d", s, idx)
	}
	tn.del(t, later)
	onlyP("gone", func(s State) bool { return s.Name == later && !s.Exists })

	tn.setUp(t, before, false)
	renamed := testPrefix + "-r0"
	if err := tn.h.LinkSetName(mustLink(t, tn.h, before), renamed); err != nil {
		t.Fatalf("rename: %v", err)
	}
	onlyP("renamed out of the pattern", func(s State) bool { return s.Name == before && !s.Exists })
	if err := tn.h.LinkSetName(mustLink(t, tn.h, renamed), testPrefix+"-p2"); err != nil {
		t.Fatalf("rename: %v", err)
	}
	onlyP("renamed into the pattern", func(s State) bool { return s.Name == testPrefix+"-p2" && s.Exists })

	// A new pattern reports what matches it at once; dropping patterns
	// silences their names.
	w.SetPatterns(testPrefix + "-q*")
	waitFor(t, out, eventBound, "new pattern", func(s State) bool { return s.Name == testPrefix+"-q0" && s.Exists })
	w.SetPatterns()
	// A barrier instead of a sleep: the runner reports a newly watched
	// name from the same read of the settings that dropped the patterns.
	barrier := testPrefix + "-zz"
	w.SetNames(barrier)
	waitFor(t, out, eventBound, "barrier", func(s State) bool { return s.Name == barrier && !s.Exists })
	tn.del(t, testPrefix+"-p2")
	drain := time.After(500 * time.Millisecond)
	for {
		select {
		case s := <-out:
			t.Errorf("event after the patterns were dropped: %v", s)
		case <-drain:
			return
		}
	}
}

// TestOnCarrierLost: the poll calls OnCarrierLost for a polled interface
// whose carrier went; not when the carrier comes back, nor for a flap (off
// and on) between two polls.
func TestOnCarrierLost(t *testing.T) {
	tn := newTestNS(t)
	const tapName = testPrefix + "-tl"
	tp := tn.addTap(t, tapName)
	tp.setCarrier(t, true)
	type call struct {
		name string
		at   time.Time
	}
	calls := make(chan call, 16)
	log, _ := testLogger(t)
	w := New([]string{tapName}, Options{Netns: &tn.ns, SysfsNetDir: tn.sysfs, Polled: []string{tapName},
		PollInterval:  50 * time.Millisecond,
		OnCarrierLost: func(name string) { calls <- call{name, time.Now()} }}, log)
	out := startWatcher(t, w, nil)
	isTap := func(carrier bool) func(State) bool {
		return func(s State) bool { return s.Name == tapName && s.Exists && s.Carrier == carrier }
	}
	waitFor(t, out, 3*time.Second, "tap carrier on", isTap(true))

	// A loss: reported. The runner hands the file to the scanner at a
	// tick after the first event, and a loss before that is only the
	// watcher's: lose the carrier until the scanner reports it (bounded),
	// rather than guess that moment with a sleep.
	var c call
	for try := 0; ; try++ {
		tp.setCarrier(t, false)
		select {
		case c = <-calls:
		case <-time.After(500 * time.Millisecond):
		}
		if c.name != "" || try == 10 {
			break
		}
		waitFor(t, out, 3*time.Second, "tap carrier off", isTap(false))
		tp.setCarrier(t, true)
		waitFor(t, out, 3*time.Second, "tap carrier on", isTap(true))
	}
	if c.name == "" {
		t.Fatal("OnCarrierLost not called for 10 carrier losses")
	}
	waitFor(t, out, 3*time.Second, "tap carrier off", isTap(false))
	if c.name != tapName {
		t.Errorf("OnCarrierLost(%q), want %q", c.name, tapName)
	}

	// The carrier back: not a loss.
	tp.setCarrier(t, true)
	waitFor(t, out, 3*time.Second, "tap carrier on", isTap(true))
	time.Sleep(150 * time.Millisecond)
	if len(calls) != 0 {
		t.Fatalf("OnCarrierLost called when the carrier came back: %v", <-calls)
	}

	// A flap within one poll interval: an even step, the carrier is back.
	// (The two ioctls take microseconds; a poll between them, which
	// would rightly report a loss, is that unlikely against 50 ms.)
	tp.setCarrier(t, false)
	tp.setCarrier(t, true)
	time.Sleep(150 * time.Millisecond)
	if len(calls) != 0 {
		t.Errorf("OnCarrierLost called for a flap: %v", <-calls)
	}
}
