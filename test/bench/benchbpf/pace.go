package benchbpf

import (
	"context"
	"time"
)

// A paced sender sends once at least minInterval's worth of frames is due,
// and at most maxInterval's worth at once.
const (
	minInterval = 100 * time.Microsecond
	maxInterval = time.Millisecond
)

// pace is the sending loop every Engine shares: it calls send with batches
// of frames, flat out (rate <= 0: batches of flat) or paced to rate frames
// per second, until duration (0: no limit) has passed, maxFrames (0: no
// limit) have been sent or ctx is done (not an error). send returns how
// many of the batch it sent; they count towards the rate and maxFrames.
// pace returns the frames sent and the first error of send, which ends the
// loop.
func pace(ctx context.Context, rate int, duration time.Duration, maxFrames, flat uint64, send func(batch uint64) (uint64, error)) (uint64, error) {
	var sent uint64
	begin := time.Now()
	for ctx.Err() == nil {
		elapsed := time.Since(begin)
		if duration > 0 && elapsed >= duration {
			break
		}
		if maxFrames > 0 && sent >= maxFrames {
			break
		}
		batch := flat
		if rate > 0 {
			var due uint64
			if target := uint64(float64(rate) * elapsed.Seconds()); target > sent {
				due = target - sent
			}
			least := max(uint64(float64(rate)*minInterval.Seconds()), 1)
			if due < least {
				wait := time.Duration(float64(sent+least)/float64(rate)*float64(time.Second)) - elapsed
				if duration > 0 {
					wait = min(wait, duration-elapsed)
				}
				sleep(ctx, wait)
				continue
			}
			batch = min(due, max(uint64(float64(rate)*maxInterval.Seconds()), 1))
		}
		if maxFrames > 0 {
			batch = min(batch, maxFrames-sent)
		}
		n, err := send(batch)
		sent += n
		if err != nil {
			return sent, err
		}
	}
	return sent, nil
}

func sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
