package datapath

import (
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// KtimeToTime converts a bpf_ktime_get_ns value (CLOCK_MONOTONIC) to a
// time.Time. The result carries Go's monotonic clock reading, so Sub and
// Before against times from time.Now() are exact even if the wall clock
// is stepped; only the printed wall time follows the step-free calibration
// taken once per process.
func KtimeToTime(ns uint64) time.Time {
	c := clock()
	return c.wall.Add(time.Duration(ns) - c.mono)
}

type calibration struct {
	mono time.Duration // CLOCK_MONOTONIC when wall was read
	wall time.Time
}

var clock = sync.OnceValue(func() calibration {
	// Bracket time.Now between two CLOCK_MONOTONIC reads and keep the
	// tightest of a few tries: the error is half the bracket (< 1 µs).
	var best calibration
	bestWidth := time.Duration(1<<63 - 1)
	for range 5 {
		var a, b unix.Timespec
		_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &a)
		wall := time.Now()
		_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &b)
		ma, mb := time.Duration(a.Nano()), time.Duration(b.Nano())
		if w := mb - ma; w < bestWidth {
			bestWidth = w
			best = calibration{mono: ma + w/2, wall: wall}
		}
	}
	return best
})
