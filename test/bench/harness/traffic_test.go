package harness

import (
	"testing"
	"time"
)

// An engine slower than the rate asked for: send times come from the rate
// it kept, not the one asked for.
func TestStreamAchieved(t *testing.T) {
	start := time.Unix(100, 0)
	for _, tc := range []struct {
		sent uint64
		want float64
	}{
		{2000, 1000}, // kept the rate
		{1990, 1000}, // within 2%: the rate
		{1000, 500},  // half: the engine's
		{0, 1000},    // nothing sent: nothing to go by
	} {
		s := &stream{sent: tc.sent, started: start, finished: start.Add(2 * time.Second)}
		if got := s.achieved(1000); got != tc.want {
			t.Errorf("sent %d in 2s at 1000 pps: achieved %v, want %v", tc.sent, got, tc.want)
		}
		if got, want := seqAt(s, 1000, start.Add(time.Second)), uint64(tc.want); got != want {
			t.Errorf("sent %d in 2s at 1000 pps: seqAt 1s = %d, want %d", tc.sent, got, want)
		}
	}
}
