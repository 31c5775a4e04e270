package probe

import (
	"testing"

	"github.com/uplinkd/uplinkd/pkg/failover"
)

func TestTracker(t *testing.T) {
	type step struct {
		op      string // "i" interval, "r" reply
		changed bool
		want    failover.ProbeState
	}
	ok, failed := failover.ProbeOK, failover.ProbeFailed
	for _, tc := range []struct {
		name   string
		missed int
		steps  []step
	}{
		{"starts ok; the first interval counts nothing", 2, []step{{"i", false, ok}, {"i", false, ok}, {"i", true, failed}}},
		{"a reply in every interval keeps it ok", 1, []step{{"i", false, ok}, {"r", false, ok}, {"i", false, ok}, {"r", false, ok}, {"i", false, ok}}},
		{"missed in a row, not in total", 3, []step{
			{"i", false, ok}, {"i", false, ok}, {"i", false, ok}, {"r", false, ok},
			{"i", false, ok}, {"i", false, ok}, {"i", false, ok}, {"i", true, failed}}},
		{"the first reply makes it ok again", 1, []step{{"i", false, ok}, {"i", true, failed}, {"i", false, failed}, {"r", true, ok}}},
		{"threshold below 1 means 1", 0, []step{{"i", false, ok}, {"i", true, failed}}},
	} {
		tr := NewTracker(tc.missed)
		for i, s := range tc.steps {
			var changed bool
			if s.op == "r" {
				changed = tr.Reply()
			} else {
				changed = tr.Interval()
			}
			if changed != s.changed || tr.State() != s.want {
				t.Errorf("%s: step %d (%s): changed %v state %v, want %v %v", tc.name, i, s.op, changed, tr.State(), s.changed, s.want)
			}
		}
	}
}
