package datapath

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestKtimeToTime(t *testing.T) {
	for range 3 {
		before := time.Now()
		var ts unix.Timespec
		if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
			t.Fatal(err)
		}
		after := time.Now()
		got := KtimeToTime(uint64(ts.Nano()))
		// Both the monotonic and the wall readings must lie in the bracket.
		if got.Before(before.Add(-time.Millisecond)) || got.After(after.Add(time.Millisecond)) {
			t.Errorf("KtimeToTime(now) = %v, outside [%v, %v]", got, before, after)
		}
		if w := got.Round(0); w.Before(before.Round(0).Add(-time.Millisecond)) || w.After(after.Round(0).Add(time.Millisecond)) {
			t.Errorf("wall %v outside [%v, %v]", w, before.Round(0), after.Round(0))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
