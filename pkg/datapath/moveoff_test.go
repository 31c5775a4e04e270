package datapath

import (
	"testing"

	"github.com/uplinkd/uplinkd/pkg/limits"
)

// TestMoveOff: the poll's fast move takes the first other slot of the
// fallback order, only while the failed slot is still active, and stays
// put when the order offers nothing else.
func TestMoveOff(t *testing.T) {
	tp := newTopo(t)
	ids, err := tp.dp.AssignGroups([]string{"red", "blue"})
	if err != nil {
		t.Fatal(err)
	}
	red := ids["red"]
	steps := []struct {
		name      string
		active    limits.Slot
		fallback  []limits.Slot
		from      limits.Slot
		wantTo    limits.Slot
		wantMoved bool
		after     limits.Slot // the active slot then
	}{
		{"active fails: first other slot", 0, []limits.Slot{0, 1}, 0, 1, true, 1},
		{"order best first, the failed one skipped", 0, []limits.Slot{1, 0}, 0, 1, true, 1},
		{"a standby fails: nothing moves", 1, []limits.Slot{0, 1}, 0, limits.NoSlot, false, 1},
		{"nowhere to go", 1, []limits.Slot{1}, 1, limits.NoSlot, false, 1},
		{"no order (down-delay): the daemon decides", 0, nil, 0, limits.NoSlot, false, 0},
	}
	for _, s := range steps {
		if err := tp.dp.SetActive(red, s.active); err != nil {
			t.Fatal(err)
		}
		if err := tp.dp.SetFallback(red, s.fallback); err != nil {
			t.Fatal(err)
		}
		to, moved, err := tp.dp.MoveOff(red, s.from)
		if err != nil || to != s.wantTo || moved != s.wantMoved {
			t.Errorf("%s: MoveOff = %d, %t, %v; want %d, %t", s.name, to, moved, err, s.wantTo, s.wantMoved)
		}
		if got, err := tp.dp.ActiveSlot(red); err != nil || got != s.after {
			t.Errorf("%s: active slot %d (%v), want %d", s.name, got, err, s.after)
		}
	}
}
