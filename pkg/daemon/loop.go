package daemon

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// The event loop (Run) owns the daemon's state: the groups, their policy,
// ports and counters, the timeline. Only the loop's goroutine touches it,
// so it needs no lock. Work from elsewhere (control requests, the
// probers' reports, announcements that ended) enters the loop through
// a callQueue; readers that must not wait for the loop (the metrics
// scrape) read what the loop publishes (view.go). The carrier poll's fast
// path is the exception: it acts without the loop (fastmove.go).

// errStopped: the event loop has stopped (uplinkd is stopping), or never ran.
var errStopped = errors.New("uplinkd is stopping")

// callQueue carries functions from other goroutines into the event loop,
// which takes them from next.
type callQueue struct {
	next     chan func() // unbuffered: a call is taken whole or not at all
	stopped  chan struct{}
	stopOnce sync.Once
}

func newCallQueue() *callQueue {
	return &callQueue{next: make(chan func()), stopped: make(chan struct{})}
}

// call runs fn on the event loop and returns once fn has returned. If ctx
// ends, or the loop stops, before the loop takes fn, fn does not run and
// call says why: a request runs whole or not at all. Never call it from
// the loop itself (it would wait for itself).
func (q *callQueue) call(ctx context.Context, fn func()) error {
	if err := ctx.Err(); err != nil { // select would pick at random
		return fmt.Errorf("uplinkd is busy: %w", context.Cause(ctx))
	}
	ran := make(chan struct{})
	select {
	case q.next <- func() { defer close(ran); fn() }:
	case <-ctx.Done():
		return fmt.Errorf("uplinkd is busy: %w", context.Cause(ctx))
	case <-q.stopped:
		return errStopped
	}
	// The loop took fn (the channel is unbuffered) and runs it now.
	<-ran
	return nil
}

// post runs fn on the event loop, for goroutines of the daemon's own that
// report something (a probe state, an announcement's result); it is
// dropped when the loop has stopped.
func (q *callQueue) post(fn func()) {
	_ = q.call(context.Background(), fn)
}

// stop makes every waiting and later call fail with errStopped. Run
// calls it when its loop ends, Close in case Run never ran.
func (q *callQueue) stop() {
	q.stopOnce.Do(func() { close(q.stopped) })
}
