package daemon

import (
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/pkg/limits"
)

// The poll's fast path on its own: it moves a group only for an uplink
// the loop told it to poll, only when the data plane moved (MoveOff), and
// never waits for the loop.
func TestPollFastPath(t *testing.T) {
	dp := newFakeDataPlane()
	dp.active[3], dp.fallback[3] = 0, []limits.Slot{0, 1}
	f := newPollFastPath(dp, slog.New(slog.DiscardHandler))

	f.carrierLost("up1") // before the loop set anything
	if _, ok := f.names(); ok || dp.active[3] != 0 || len(f.moves) != 0 {
		t.Fatalf("before set: active %d, %d moves; want nothing done", dp.active[3], len(f.moves))
	}
	polled := map[string]polledUplink{"up1": {group: 3, slot: 0}, "up3": {group: 3, slot: 2}}
	if !f.set(polled) || f.set(map[string]polledUplink{"up1": {3, 0}, "up3": {3, 2}}) {
		t.Error("set: want true for a new set, false for the same again")
	}
	if names, ok := f.names(); !ok || !slices.Equal(names, []string{"up1", "up3"}) {
		t.Errorf("names %v %t, want [up1 up3]", names, ok)
	}

	f.carrierLost("up2") // not polled
	f.carrierLost("up3") // polled, but not where the group is: MoveOff does nothing
	if dp.active[3] != 0 || len(f.moves) != 0 {
		t.Fatalf("unpolled or inactive uplink: active %d, %d moves; want nothing done", dp.active[3], len(f.moves))
	}
	f.carrierLost("up1")
	if dp.active[3] != 1 || len(f.moves) != 1 {
		t.Fatalf("active uplink lost: data plane on %d, %d moves; want 1, 1", dp.active[3], len(f.moves))
	}
	if m := <-f.moves; m.group != 3 || m.from != 0 || m.to != 1 || m.at.IsZero() {
		t.Errorf("move %+v, want group 3 from 0 to 1", m)
	}

	// A full queue: the move is made, its report dropped, nothing waits.
	for range maxFastMoves {
		f.moves <- fastMove{}
	}
	dp.active[3] = 0
	done := make(chan struct{})
	go func() { f.carrierLost("up1"); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("carrierLost waited on a full queue")
	}
	if dp.active[3] != 1 || len(f.moves) != maxFastMoves {
		t.Errorf("full queue: data plane on %d, %d moves queued; want 1, %d", dp.active[3], len(f.moves), maxFastMoves)
	}
}
