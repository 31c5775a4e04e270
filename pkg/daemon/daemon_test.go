package daemon

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/pkg/config"
	"github.com/uplinkd/uplinkd/pkg/control"
	"github.com/uplinkd/uplinkd/pkg/datapath"
	"github.com/uplinkd/uplinkd/pkg/failover"
	"github.com/uplinkd/uplinkd/pkg/limits"
)

// carrier_poll_interval: 0 turns the poll off: nothing is polled.
func TestPolledUplinks(t *testing.T) {
	pol, err := failover.New(failover.Config{Name: "g", Uplinks: []failover.UplinkConfig{{Name: "eth1"}, {Name: "eth2"}}}, limits.NoSlot)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pol.Start(map[string]bool{"eth1": true, "eth2": true}, time.Now()); err != nil {
		t.Fatal(err)
	}
	g := &group{policy: pol, uplinks: [limits.MaxUplinks]*port{{name: "eth1"}, {name: "eth2"}}}
	for _, tc := range []struct {
		interval time.Duration
		want     []string
	}{{time.Millisecond, []string{"eth1"}}, {0, nil}} {
		d := &Daemon{cfg: &config.Config{CarrierPollInterval: tc.interval}, groups: []*group{g}}
		got := slices.Sorted(maps.Keys(d.polledUplinks()))
		if len(got) != len(tc.want) || (len(got) > 0 && got[0] != tc.want[0]) {
			t.Errorf("interval %v: polled %v, want %v", tc.interval, got, tc.want)
		}
	}
}

// An arrival log's prune keeps the entries newer than the cut-off, and of
// those the newest max.
func TestArrivalLogPrune(t *testing.T) {
	t0 := time.Unix(1000, 0)
	var l arrivalLog
	for i := range 10 {
		l.add(net.HardwareAddr{2, 0, 0, 0, 0, 1}, uint16(i), t0.Add(time.Duration(i)*time.Second))
	}
	l.prune(t0.Add(2*time.Second), 5) // drops 0, 1 by age; then 2..4 by count
	if len(l.at) != 5 || l.total != 10 {
		t.Fatalf("kept %d (total %d), want 5 (10)", len(l.at), l.total)
	}
	for i := 5; i < 10; i++ {
		if _, ok := l.at[arrivalKey{vlan: uint16(i), mac: [6]byte{2, 0, 0, 0, 0, 1}}]; !ok {
			t.Errorf("newest entry %d dropped", i)
		}
	}
	l.prune(t0.Add(20*time.Second), 5)
	if len(l.at) != 0 {
		t.Errorf("kept %d entries older than the cut-off", len(l.at))
	}
}

// takeArrivals takes what is queued, bounded, and leaves the rest.
func TestTakeArrivals(t *testing.T) {
	q := make(chan datapath.Arrival, maxArrivalBatch+10)
	for i := range maxArrivalBatch + 10 {
		q <- datapath.Arrival{Ifindex: i + 1}
	}
	first := <-q
	if got := takeArrivals(first, q); len(got) != maxArrivalBatch || got[0].Ifindex != 1 || got[1].Ifindex != 2 {
		t.Errorf("took %d (first %+v), want %d in order", len(got), got[0], maxArrivalBatch)
	}
	if len(q) != 10 {
		t.Errorf("%d left queued, want 10", len(q))
	}
	if got := takeArrivals(datapath.Arrival{}, make(chan datapath.Arrival)); len(got) != 1 {
		t.Errorf("with nothing queued took %d, want 1", len(got))
	}
}

// serveCalls stands in for Run's loop, taking calls only, until the test
// ends.
func serveCalls(t *testing.T, d *Daemon) {
	t.Helper()
	if d.calls == nil {
		d.calls = newCallQueue()
	}
	serveQueue(t, d.calls)
}

// serveQueue takes q's calls and runs them until the test ends, then
// stops q.
func serveQueue(t *testing.T, q *callQueue) {
	t.Helper()
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case fn := <-q.next:
				fn()
			case <-quit:
				return
			}
		}
	}()
	t.Cleanup(func() {
		close(quit)
		<-done
		q.stop()
	})
}

// onLoop runs fn on d's loop or fails the test.
func onLoop(t *testing.T, d *Daemon, fn func()) {
	t.Helper()
	if err := d.calls.call(context.Background(), fn); err != nil {
		t.Fatal(err)
	}
}

// A call runs whole on the loop or not at all: not when its context ends
// before the loop takes it, nor once the loop has stopped, also for a call
// that was waiting then.
func TestCall(t *testing.T) {
	q := newCallQueue()
	ran := 0
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := q.call(ctx, func() { ran++ }); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a call the loop did not take: %v, want the deadline", err)
	}
	serveQueue(t, q)
	if err := q.call(context.Background(), func() { ran += 10 }); err != nil || ran != 10 {
		t.Errorf("ran %d (%v), want only the call the loop took (10)", ran, err)
	}

	stopped := newCallQueue() // a loop that never takes a call
	waiting := make(chan error, 1)
	go func() { waiting <- stopped.call(context.Background(), func() { ran++ }) }()
	time.Sleep(20 * time.Millisecond)
	stopped.stop()
	select {
	case err := <-waiting:
		if !errors.Is(err, errStopped) {
			t.Errorf("a waiting call when the loop stopped: %v, want errStopped", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a waiting call did not end when the loop stopped")
	}
	if err := stopped.call(context.Background(), func() { ran++ }); !errors.Is(err, errStopped) {
		t.Errorf("a call after the loop stopped: %v, want errStopped", err)
	}
	stopped.post(func() { ran++ }) // dropped, does not block
	stopped.stop()                 // again: no panic
	if ran != 10 {
		t.Errorf("ran %d: a call that failed ran", ran)
	}
}

// The timeline: events in order with their versions; a follower waiting
// for changes wakes at an append and at an update, and gets nothing new
// when it asks again.
func TestTimeline(t *testing.T) {
	d := &Daemon{}
	serveCalls(t, d)
	for i := range maxEvents + 5 {
		onLoop(t, d, func() { d.timeline.add(&control.FailoverEvent{Group: "g", Reason: fmt.Sprint(i)}) })
	}
	all, v, err := d.followEvents(context.Background(), 0, 0)
	if err != nil || len(all) != maxEvents || all[0].Seq != 6 || all[len(all)-1].Seq != maxEvents+5 || v != maxEvents+5 {
		t.Fatalf("%d events, seq %d..%d, version %d, err %v", len(all), all[0].Seq, all[len(all)-1].Seq, v, err)
	}
	got := make(chan []control.FailoverEvent, 1)
	go func() {
		evs, _, _ := d.followEvents(context.Background(), v, 5*time.Second)
		got <- evs
	}()
	time.Sleep(50 * time.Millisecond)
	var last *control.FailoverEvent
	onLoop(t, d, func() {
		last = d.timeline.events[len(d.timeline.events)-1]
		last.AnnounceFrames = 9
		d.timeline.touch(last) // the announcement of the last event ended
	})
	select {
	case evs := <-got:
		if len(evs) != 1 || evs[0].Seq != last.Seq || evs[0].AnnounceFrames != 9 {
			t.Errorf("after the update: %+v", evs)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the follower did not wake at the update")
	}
	start := time.Now()
	if evs, _, _ := d.followEvents(context.Background(), d.timeline.version, 100*time.Millisecond); len(evs) != 0 || time.Since(start) < 90*time.Millisecond {
		t.Errorf("nothing new: got %d events after %v", len(evs), time.Since(start))
	}
}

// restartOnly names what a reload cannot change.
func TestRestartOnly(t *testing.T) {
	base := func() *config.Config {
		return mustParse(t, "groups:\n  - {name: a, uplinks: [{name: e}]}\n  - {name: b, mode: balance, uplinks: [{name: f}]}\n")
	}
	for _, tc := range []struct {
		name   string
		change func(c *config.Config)
		want   string
	}{
		{"nothing", func(c *config.Config) {}, ""},
		{"what reload applies", func(c *config.Config) {
			c.Groups[0].Failback, c.Groups[0].Uplinks[0].Priority, c.AnnounceRateLimit = false, 1, 5
		}, ""},
		{"pin path", func(c *config.Config) { c.PinPath = "/x" }, "pin_path"},
		{"poll", func(c *config.Config) { c.CarrierPollInterval = 0 }, "carrier_poll_interval"},
		{"metrics", func(c *config.Config) { c.MetricsListen = "127.0.0.1:1" }, "metrics_listen"},
		{"a group added", func(c *config.Config) { c.Groups = append(c.Groups, config.Group{Name: "c"}) }, "the set of groups ([a b] -> [a b c])"},
		{"mode", func(c *config.Config) { c.Groups[1].Mode = config.ModeActiveBackup }, "group b: mode"},
		{"probe", func(c *config.Config) { c.Groups[0].Probe = &config.Probe{Missed: 3} }, "group a: probe"},
		{"rebalance", func(c *config.Config) { c.Groups[1].Rebalance.Interval = time.Second }, "group b: rebalance"},
		{"host ports", func(c *config.Config) { c.Groups[0].HostPorts = []config.HostPort{{Name: "m", SwitchEnd: "m-sw"}} }, ""},
	} {
		b := base()
		tc.change(b)
		if got := strings.Join(restartOnly(base(), b), ", "); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}
