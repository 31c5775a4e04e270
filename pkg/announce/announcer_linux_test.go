//go:build linux

package announce

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const resultTimeout = 15 * time.Second

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// announce calls Announce from inside the namespace, as the daemon would from
// a thread locked into the switch's namespace.
func (v *vethNetns) announce(t *testing.T, a *Announcer, ctx context.Context, req Request) <-chan Result {
	t.Helper()
	var ch <-chan Result
	v.do(t, func() { ch = a.Announce(ctx, req) })
	return ch
}

func awaitResult(t *testing.T, ch <-chan Result) Result {
	t.Helper()
	select {
	case res, ok := <-ch:
		if !ok {
			t.Fatal("result channel closed without a result")
		}
		if _, more := <-ch; more {
			t.Error("result channel delivered a second result")
		}
		return res
	case <-time.After(resultTimeout):
		t.Fatalf("no result within %v", resultTimeout)
		return Result{}
	}
}

func guestMAC(i int) net.HardwareAddr {
	return net.HardwareAddr{0x02, 0x00, 0x5e, 0x00, byte(i >> 8), byte(i)}
}

// macOnlyGuests returns n untagged guests without addresses, MACs from first.
func macOnlyGuests(first, n int) ([]Guest, []net.HardwareAddr) {
	guests := make([]Guest, n)
	macs := make([]net.HardwareAddr, n)
	for i := range n {
		macs[i] = guestMAC(first + i)
		guests[i] = Guest{MAC: macs[i]}
	}
	return guests, macs
}

func countFrom(frames [][]byte, mac net.HardwareAddr) int {
	n := 0
	for _, f := range frames {
		if bytes.Equal(f[6:12], mac) {
			n++
		}
	}
	return n
}

// TestAnnounceOnTheWire sends real frames over a veth pair and checks that
// exactly the expected frames arrive, in order, with the right contents.
func TestAnnounceOnTheWire(t *testing.T) {
	v := newVethNetns(t)
	var rx *capture
	v.do(t, func() { rx = openCapture(t, v.rxIndex) })

	dual := Guest{MAC: guestMAC(1), Addrs: []netip.Addr{
		// v6 listed first on purpose: ARPs still go before NAs.
		netip.MustParseAddr("2001:db8::1"),
		netip.MustParseAddr("192.0.2.1"),
		netip.MustParseAddr("fe80::1"),
	}}
	tagged := Guest{MAC: guestMAC(2), VLAN: 100, Addrs: []netip.Addr{
		netip.MustParseAddr("198.51.100.2"),
		netip.MustParseAddr("2001:db8:100::2"),
	}}
	macOnly := Guest{MAC: guestMAC(3)}
	round := []frameSpec{
		{kind: kindRARP, mac: dual.MAC},
		{kind: kindRARP, mac: tagged.MAC, vlan: 100},
		{kind: kindRARP, mac: macOnly.MAC},
		{kind: kindGARP, mac: dual.MAC, ip: dual.Addrs[1]},
		{kind: kindGARP, mac: tagged.MAC, vlan: 100, ip: tagged.Addrs[0]},
		{kind: kindNA, mac: dual.MAC, ip: dual.Addrs[0]},
		{kind: kindNA, mac: dual.MAC, ip: dual.Addrs[2]},
		{kind: kindNA, mac: tagged.MAC, vlan: 100, ip: tagged.Addrs[1]},
	}
	const count = 2
	want := slices.Concat(round, round)

	a := New(0, 1, testLogger(t))
	t.Cleanup(a.Close)
	req := Request{
		Group:    "g1",
		Ifindex:  v.txIndex, // Ifname left empty: the announcer fills it in
		Guests:   []Guest{dual, tagged, macOnly},
		Count:    count,
		Interval: 20 * time.Millisecond,
	}
	begin := time.Now()
	res := awaitResult(t, v.announce(t, a, t.Context(), req))
	got := rx.collect(t, []net.HardwareAddr{dual.MAC, tagged.MAC, macOnly.MAC}, len(want), 300*time.Millisecond, 5*time.Second)

	wantRes := Result{Group: "g1", Ifname: v.tx, Frames: len(want), Rounds: count}
	if res.Group != wantRes.Group || res.Ifname != wantRes.Ifname || res.Frames != wantRes.Frames ||
		res.Rounds != wantRes.Rounds || res.Errors != 0 || res.Suppressed != 0 || res.Canceled {
		t.Errorf("result %+v, want %+v", res, wantRes)
	}
	// Round 2 starts one interval after round 1 started, which is after
	// the call (lower bound only; the first send may itself be slow).
	if d := res.Last.Sub(begin); d < req.Interval {
		t.Errorf("call to last frame took %v, want at least the %v interval", d, req.Interval)
	}

	if len(got) != len(want) {
		t.Errorf("received %d frames, want exactly %d", len(got), len(want))
	}
	for i := range min(len(got), len(want)) {
		for _, err := range checkFrame(got[i], want[i]) {
			t.Errorf("frame %d (want %v): %v", i, want[i], err)
		}
		built, err := want[i].build()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got[i], built) {
			t.Errorf("frame %d (want %v) differs on the wire:\n got % x\nwant % x", i, want[i], got[i], built)
		}
	}
	if g := a.InFlight(); len(g) != 0 {
		t.Errorf("InFlight after the result = %v, want none", g)
	}
}

// TestAnnounceOutcomes covers requests that send nothing or only part.
func TestAnnounceOutcomes(t *testing.T) {
	v := newVethNetns(t)
	var rx *capture
	v.do(t, func() { rx = openCapture(t, v.rxIndex) })

	good := Guest{MAC: guestMAC(10), Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.10")}}
	tests := []struct {
		name       string
		req        func() Request
		txDown     bool
		wantFrames int // also the number that must arrive
		wantErrors int
		wantRounds int
		wantIfname string
	}{
		{
			name:       "count 0 sends nothing",
			req:        func() Request { return Request{Ifindex: v.txIndex, Guests: []Guest{good}, Count: 0} },
			wantIfname: "",
		},
		{
			name:       "uplink by name",
			req:        func() Request { return Request{Ifname: v.tx, Guests: []Guest{good}, Count: 1} },
			wantFrames: 2, wantRounds: 1, wantIfname: v.tx,
		},
		{
			name: "invalid guest and address skipped, rest sent",
			req: func() Request {
				return Request{Ifindex: v.txIndex, Count: 2, Guests: []Guest{
					{MAC: mustMAC("01:00:5e:00:00:01")},
					{MAC: guestMAC(11), VLAN: 4095},
					{MAC: good.MAC, Addrs: []netip.Addr{good.Addrs[0], netip.MustParseAddr("ff02::2")}},
				}}
			},
			wantFrames: 4, wantErrors: 3, wantRounds: 2, wantIfname: v.tx,
		},
		{
			name:       "unknown ifindex",
			req:        func() Request { return Request{Ifindex: 99999, Guests: []Guest{good}, Count: 1} },
			wantErrors: 1,
		},
		{
			name:       "unknown ifname",
			req:        func() Request { return Request{Ifname: "ulkann-nope", Guests: []Guest{good}, Count: 1} },
			wantErrors: 1, wantIfname: "ulkann-nope",
		},
		{
			name:       "no uplink named",
			req:        func() Request { return Request{Guests: []Guest{good}, Count: 1} },
			wantErrors: 1,
		},
		{
			name:       "uplink down: every send fails, rounds go on",
			req:        func() Request { return Request{Ifindex: v.txIndex, Guests: []Guest{good}, Count: 3} },
			txDown:     true,
			wantErrors: 6, wantRounds: 3, wantIfname: v.tx,
		},
	}
	a := New(0, 1, testLogger(t))
	t.Cleanup(a.Close)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.txDown {
				v.setTxUp(t, false)
				defer v.setTxUp(t, true)
			}
			req := tt.req()
			req.Group = fmt.Sprintf("case%d", i)
			res := awaitResult(t, v.announce(t, a, t.Context(), req))
			if res.Frames != tt.wantFrames || res.Errors != tt.wantErrors || res.Rounds != tt.wantRounds ||
				res.Ifname != tt.wantIfname || res.Canceled || res.Suppressed != 0 {
				t.Errorf("result %+v, want Frames %d Errors %d Rounds %d Ifname %q, not canceled",
					res, tt.wantFrames, tt.wantErrors, tt.wantRounds, tt.wantIfname)
			}
			if (res.Frames == 0) != res.First.IsZero() || (res.Frames == 0) != res.Last.IsZero() {
				t.Errorf("First %v / Last %v do not match %d frames sent", res.First, res.Last, res.Frames)
			}
			var sources []net.HardwareAddr
			for _, g := range req.Guests {
				sources = append(sources, g.MAC)
			}
			got := rx.collect(t, sources, tt.wantFrames, 150*time.Millisecond, 3*time.Second)
			if len(got) != tt.wantFrames {
				t.Errorf("received %d frames, want %d", len(got), tt.wantFrames)
			}
		})
	}
}

// TestAnnounceRateCap checks the global cap waits instead of dropping, also
// when several groups share it.
func TestAnnounceRateCap(t *testing.T) {
	v := newVethNetns(t)
	var rx *capture
	v.do(t, func() { rx = openCapture(t, v.rxIndex) })

	const (
		ratePPS = 1000
		burst   = 10
		total   = 200
		// 190 frames beyond the burst need 190 ms at 1000 pps; leave slack.
		atLeast = 150 * time.Millisecond
	)
	tests := []struct {
		name   string
		groups int
	}{
		{"one group", 1},
		{"two groups share the cap", 2},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := New(ratePPS, burst, testLogger(t))
			defer a.Close()
			per := total / tt.groups
			var chans []<-chan Result
			var allMACs []net.HardwareAddr
			for g := range tt.groups {
				guests, macs := macOnlyGuests(1000*(i+1)+per*g, per)
				allMACs = append(allMACs, macs...)
				chans = append(chans, v.announce(t, a, t.Context(), Request{
					Group: fmt.Sprintf("rate%d", g), Ifindex: v.txIndex, Guests: guests, Count: 1,
				}))
			}
			var first, last time.Time
			for _, ch := range chans {
				res := awaitResult(t, ch)
				if res.Frames != per || res.Suppressed != 0 || res.Errors != 0 || res.Canceled {
					t.Errorf("result %+v, want %d frames, none suppressed", res, per)
				}
				if first.IsZero() || res.First.Before(first) {
					first = res.First
				}
				if res.Last.After(last) {
					last = res.Last
				}
			}
			if d := last.Sub(first); d < atLeast {
				t.Errorf("%d frames at %d pps (burst %d) took %v, want at least %v", total, ratePPS, burst, d, atLeast)
			}
			got := rx.collect(t, allMACs, total, 150*time.Millisecond, 5*time.Second)
			if len(got) != total {
				t.Errorf("received %d frames, want all %d", len(got), total)
			}
		})
	}
}

// TestAnnounceOrderUnderTheCap: when the cap throttles, the guests with a
// higher announce priority reach the wire first, whatever their place in
// the request.
func TestAnnounceOrderUnderTheCap(t *testing.T) {
	v := newVethNetns(t)
	var rx *capture
	v.do(t, func() { rx = openCapture(t, v.rxIndex) })
	a := New(500, 1, testLogger(t))
	t.Cleanup(a.Close)
	guests, macs := macOnlyGuests(5000, 20)
	// The last three listed matter most, the tenth a little.
	for i, p := range map[int]int{17: 10, 18: 10, 19: 20, 9: 5} {
		guests[i].Priority = p
	}
	res := awaitResult(t, v.announce(t, a, t.Context(), Request{Group: "order", Ifindex: v.txIndex, Guests: guests, Count: 1}))
	if res.Frames != 20 {
		t.Fatalf("result %+v, want 20 frames", res)
	}
	got := rx.collect(t, macs, 20, 100*time.Millisecond, 5*time.Second)
	var order []byte
	for _, f := range got {
		order = append(order, f[11]) // the guest's number: its MAC's last byte
	}
	last := func(i int) byte { return macs[i][5] }
	want := []byte{last(19), last(17), last(18), last(9), last(0)}
	if len(order) < len(want) || !bytes.Equal(order[:len(want)], want) {
		t.Errorf("wire order of the guests (MACs' last bytes) % x, want it to begin % x", order, want)
	}
}

// TestAnnounceCapWithManyGuests: however many guests are learned, the
// announcements stay under the cap: 2,000 guests at 1,000 frames/s with a
// burst of 50 take about two seconds, and no half second carries more
// than its share plus the burst.
func TestAnnounceCapWithManyGuests(t *testing.T) {
	if testing.Short() {
		t.Skip("two seconds of announcements")
	}
	v := newVethNetns(t)
	var rx *capture
	v.do(t, func() { rx = openCapture(t, v.rxIndex) })
	const (
		guests = 2000
		rate   = 1000
		burst  = 50
	)
	a := New(rate, burst, testLogger(t))
	t.Cleanup(a.Close)
	gs, macs := macOnlyGuests(20_000, guests)
	start := time.Now()
	ch := v.announce(t, a, t.Context(), Request{Group: "many", Ifindex: v.txIndex, Guests: gs, Count: 1})
	var first [][]byte
	for time.Since(start) < 500*time.Millisecond {
		first = append(first, rx.collect(t, macs, 0, 0, 100*time.Millisecond)...)
	}
	window := time.Since(start) // the frames so far were sent within it
	res := awaitResult(t, ch)
	took := res.Last.Sub(start)
	t.Logf("%d guests: %d frames in %v; %d in the first %v", guests, res.Frames, took.Round(time.Millisecond), len(first), window.Round(time.Millisecond))
	if res.Frames != guests || took < time.Duration(float64(guests-burst)/rate*float64(time.Second))*95/100 {
		t.Errorf("%d frames in %v: faster than %d/s", res.Frames, took, rate)
	}
	if max := int(window.Seconds()*rate) + burst + 5; len(first) > max {
		t.Errorf("%d frames in the first %v, over the cap (%d/s, burst %d: at most %d)", len(first), window, rate, burst, max)
	}
}

// TestAnnounceSupersede checks a second Announce for a group cancels the
// first, leaves other groups alone, and starts only once the first stopped.
func TestAnnounceSupersede(t *testing.T) {
	v := newVethNetns(t)
	var rx *capture
	v.do(t, func() { rx = openCapture(t, v.rxIndex) })

	a := New(0, 1, testLogger(t))
	t.Cleanup(a.Close)
	old, next, other := guestMAC(20), guestMAC(21), guestMAC(22)
	const longCount = 1000 // 10 s if never canceled

	oldCh := v.announce(t, a, t.Context(), Request{
		Group: "g", Ifindex: v.txIndex, Guests: []Guest{{MAC: old}}, Count: longCount, Interval: 10 * time.Millisecond,
	})
	otherCh := v.announce(t, a, t.Context(), Request{
		Group: "h", Ifindex: v.txIndex, Guests: []Guest{{MAC: other}}, Count: 10, Interval: 10 * time.Millisecond,
	})
	// The old announcement is really under way before it is superseded.
	var got [][]byte
	for try := 0; try < 10 && countFrom(got, old) == 0; try++ {
		got = append(got, rx.collect(t, []net.HardwareAddr{old, other}, 1, 0, time.Second)...)
	}
	if countFrom(got, old) == 0 {
		t.Fatal("the first announcement never sent a frame")
	}
	if g := a.InFlight(); !slices.Contains(g, "g") {
		t.Fatalf("InFlight = %v, want it to include g", g)
	}

	nextCh := v.announce(t, a, t.Context(), Request{
		Group: "g", Ifindex: v.txIndex, Guests: []Guest{{MAC: next}}, Count: 2, Interval: 10 * time.Millisecond,
	})
	oldRes := awaitResult(t, oldCh)
	nextRes := awaitResult(t, nextCh)
	otherRes := awaitResult(t, otherCh)

	if !oldRes.Canceled || oldRes.Rounds >= longCount || oldRes.Frames == 0 {
		t.Errorf("superseded result %+v, want canceled after some frames", oldRes)
	}
	if nextRes.Canceled || nextRes.Frames != 2 || nextRes.Rounds != 2 {
		t.Errorf("superseding result %+v, want 2 frames in 2 rounds, not canceled", nextRes)
	}
	if otherRes.Canceled || otherRes.Frames != 10 {
		t.Errorf("other group's result %+v, want 10 frames, not canceled", otherRes)
	}
	if !oldRes.Last.Before(nextRes.First) {
		t.Errorf("superseding run sent at %v, before the old one's last frame at %v", nextRes.First, oldRes.Last)
	}

	got = append(got, rx.collect(t, []net.HardwareAddr{old, next, other}, 2, 200*time.Millisecond, 5*time.Second)...)
	if n := countFrom(got, old); n != oldRes.Frames {
		t.Errorf("received %d frames of the superseded run, it reports %d", n, oldRes.Frames)
	}
	if n := countFrom(got, next); n != 2 {
		t.Errorf("received %d frames of the superseding run, want 2", n)
	}
	if n := countFrom(got, other); n != 10 {
		t.Errorf("received %d frames of the other group, want 10", n)
	}
	// On the wire too: nothing from the old run after the new one began.
	firstNext := slices.IndexFunc(got, func(f []byte) bool { return bytes.Equal(f[6:12], next) })
	for i := firstNext + 1; firstNext >= 0 && i < len(got); i++ {
		if bytes.Equal(got[i][6:12], old) {
			t.Errorf("frame %d from the superseded run arrived after the superseding run started", i)
			break
		}
	}
	if g := a.InFlight(); len(g) != 0 {
		t.Errorf("InFlight after all results = %v, want none", g)
	}
}

// TestAnnounceKeys: an announcement with a key (arrivals) runs beside the
// group's failover announcement without ending it; the next failover
// announcement ends both.
func TestAnnounceKeys(t *testing.T) {
	v := newVethNetns(t)
	var rx *capture
	v.do(t, func() { rx = openCapture(t, v.rxIndex) })
	a := New(0, 1, testLogger(t))
	t.Cleanup(a.Close)
	failed, arrived, next := guestMAC(30), guestMAC(31), guestMAC(32)
	const longCount = 1000

	failCh := v.announce(t, a, t.Context(), Request{
		Group: "g", Ifindex: v.txIndex, Guests: []Guest{{MAC: failed}}, Count: longCount, Interval: 10 * time.Millisecond,
	})
	arriveCh := v.announce(t, a, t.Context(), Request{
		Group: "g", Key: "arrivals", Ifindex: v.txIndex, Guests: []Guest{{MAC: arrived}}, Count: longCount, Interval: 10 * time.Millisecond,
	})
	var got [][]byte
	for try := 0; try < 20 && (countFrom(got, failed) < 2 || countFrom(got, arrived) < 2); try++ {
		got = append(got, rx.collect(t, []net.HardwareAddr{failed, arrived}, 1, 0, time.Second)...)
	}
	if countFrom(got, failed) < 2 || countFrom(got, arrived) < 2 {
		t.Fatalf("both runs should send side by side: %d failover frames, %d arrival frames", countFrom(got, failed), countFrom(got, arrived))
	}
	select {
	case r := <-failCh:
		t.Fatalf("the keyed run ended the failover run: %+v", r)
	default:
	}
	nextCh := v.announce(t, a, t.Context(), Request{
		Group: "g", Ifindex: v.txIndex, Guests: []Guest{{MAC: next}}, Count: 1,
	})
	failRes, arriveRes, nextRes := awaitResult(t, failCh), awaitResult(t, arriveCh), awaitResult(t, nextCh)
	if !failRes.Canceled || !arriveRes.Canceled {
		t.Errorf("the next failover announcement must end both: failover %+v, arrivals %+v", failRes, arriveRes)
	}
	if nextRes.Canceled || nextRes.Frames != 1 {
		t.Errorf("next failover announcement %+v, want 1 frame", nextRes)
	}
}

// TestAnnounceClose checks Close cancels what runs and refuses new work.
func TestAnnounceClose(t *testing.T) {
	v := newVethNetns(t)
	var rx *capture
	v.do(t, func() { rx = openCapture(t, v.rxIndex) })

	a := New(0, 1, testLogger(t))
	mac := guestMAC(30)
	ch := v.announce(t, a, t.Context(), Request{
		Group: "g", Ifindex: v.txIndex, Guests: []Guest{{MAC: mac}}, Count: 1000, Interval: 10 * time.Millisecond,
	})
	rx.collect(t, []net.HardwareAddr{mac}, 1, 0, 3*time.Second)

	a.Close()
	if g := a.InFlight(); len(g) != 0 {
		t.Errorf("InFlight after Close = %v, want none", g)
	}
	res := awaitResult(t, ch)
	if !res.Canceled || res.Rounds >= 1000 {
		t.Errorf("result %+v, want canceled early", res)
	}
	after := awaitResult(t, v.announce(t, a, t.Context(), Request{
		Group: "g2", Ifindex: v.txIndex, Guests: []Guest{{MAC: mac}}, Count: 1,
	}))
	if !after.Canceled || after.Frames != 0 {
		t.Errorf("Announce after Close: %+v, want canceled with nothing sent", after)
	}
	// Frames may still be in flight from before Close; none may follow.
	rx.collect(t, []net.HardwareAddr{mac}, 0, 100*time.Millisecond, time.Second)
	if got := rx.collect(t, []net.HardwareAddr{mac}, 0, 200*time.Millisecond, time.Second); len(got) != 0 {
		t.Errorf("%d frames arrived after Close returned", len(got))
	}
	a.Close() // idempotent
}

// TestAnnounceCallerContext checks the caller's context stops a run too.
func TestAnnounceCallerContext(t *testing.T) {
	v := newVethNetns(t)
	a := New(0, 1, testLogger(t))
	t.Cleanup(a.Close)
	ctx, cancel := context.WithCancelCause(t.Context())
	ch := v.announce(t, a, ctx, Request{
		Group: "g", Ifindex: v.txIndex, Guests: []Guest{{MAC: guestMAC(40)}}, Count: 1000, Interval: 10 * time.Millisecond,
	})
	time.Sleep(30 * time.Millisecond)
	cancel(errors.New("test done"))
	if res := awaitResult(t, ch); !res.Canceled || res.Rounds >= 1000 {
		t.Errorf("result %+v, want canceled early", res)
	}
}

// TestSocketSend checks the raw sender alone: a frame goes out unchanged and
// the socket, opened with protocol 0, queues nothing it receives.
func TestSocketSend(t *testing.T) {
	v := newVethNetns(t)
	var rx, txCapture *capture
	var tx, back *Socket
	v.do(t, func() {
		rx = openCapture(t, v.rxIndex)
		txCapture = openCapture(t, v.txIndex)
		var err error
		if tx, err = OpenSocket(v.txIndex); err != nil {
			t.Fatalf("OpenSocket: %v", err)
		}
		if back, err = OpenSocket(v.rxIndex); err != nil {
			t.Fatalf("OpenSocket: %v", err)
		}
	})
	defer tx.Close()
	defer back.Close()

	// Traffic arriving on tx reaches an ETH_P_ALL socket but not the sender.
	incoming, err := RARP(guestMAC(51), 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := back.Send(incoming); err != nil {
		t.Fatalf("Send towards tx: %v", err)
	}
	if got := txCapture.collect(t, []net.HardwareAddr{guestMAC(51)}, 1, 50*time.Millisecond, 3*time.Second); len(got) != 1 {
		t.Fatalf("control capture on tx got %d frames, want 1", len(got))
	}
	var recvErr error
	if err := tx.raw.Control(func(fd uintptr) {
		_, _, recvErr = unix.Recvfrom(int(fd), make([]byte, 2048), unix.MSG_DONTWAIT)
	}); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(recvErr, unix.EAGAIN) {
		t.Errorf("recv on the send socket: %v, want EAGAIN (nothing queued)", recvErr)
	}
	if tx.Ifindex() != v.txIndex {
		t.Errorf("Ifindex %d, want %d", tx.Ifindex(), v.txIndex)
	}
	frame, err := UnsolicitedNA(guestMAC(50), 7, netip.MustParseAddr("2001:db8::50"))
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Send(frame); err != nil {
		t.Fatalf("Send: %v", err)
	}
	got := rx.collect(t, []net.HardwareAddr{guestMAC(50)}, 1, 100*time.Millisecond, 3*time.Second)
	if len(got) != 1 || !bytes.Equal(got[0], frame) {
		t.Errorf("received %d frames (% x), want exactly the one sent", len(got), got)
	}
	if err := tx.Send(frame[:10]); err == nil {
		t.Error("Send of a 10-byte frame succeeded, want an error")
	}
	if _, err := OpenSocket(0); err == nil {
		t.Error("OpenSocket(0) succeeded, want an error")
	}
	if err := tx.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := tx.Send(frame); err == nil {
		t.Error("Send after Close succeeded, want an error")
	}
}
