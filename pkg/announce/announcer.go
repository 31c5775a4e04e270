//go:build linux

package announce

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Causes an announcement ends early for; Result.Canceled is then true.
var (
	ErrSuperseded = errors.New("superseded by a newer announcement for the same group")
	ErrClosed     = errors.New("announcer closed")
)

// Guest is one learned guest: its MAC, its VLAN (0 = untagged) and the
// addresses learned for it, IPv4 and IPv6 mixed. Guests with a higher
// Priority are announced first in every round, so when the rate cap
// throttles a large announcement they are the ones that are not kept
// waiting.
type Guest struct {
	MAC      net.HardwareAddr
	VLAN     uint16
	Addrs    []netip.Addr
	Priority int
}

// Request asks for the guests of one group to be announced on an uplink.
type Request struct {
	Group string
	// Ifindex is the uplink to send on; if 0 it is looked up from Ifname.
	// Both are resolved in the caller's network namespace.
	Ifindex int
	Ifname  string
	Guests  []Guest
	// Count rounds are sent, Interval apart measured from the start of one
	// round to the start of the next. Count <= 0 sends nothing.
	Count    int
	Interval time.Duration
	// Key tells announcements of one group apart: one replaces a running
	// one with the same key. The group's failover announcement has none
	// and also ends the others (arrivals): they send on the old uplink.
	Key string
}

// Result reports one finished (or canceled) announcement.
type Result struct {
	Group  string
	Ifname string
	// Frames is the number of frames sent successfully.
	Frames int
	// Suppressed counts frames dropped by the rate cap. The cap waits, so this
	// stays 0 unless the caller's context has a deadline the cap cannot meet.
	Suppressed int
	// Errors counts failures: an invalid guest or address (skipped), a socket
	// that could not be opened, each failed send.
	Errors int
	// First and Last are the times of the first and last successful send.
	First, Last time.Time
	// Rounds is the number of rounds completed.
	Rounds int
	// Canceled is true if the announcement stopped early: superseded by a
	// newer one for the same group, Close, or the caller's context.
	Canceled bool
}

// Announcer sends announcements for any number of groups under one global
// packets-per-second cap. At most one announcement per group and key runs
// at a time.
type Announcer struct {
	limiter *rate.Limiter
	log     *slog.Logger

	mu     sync.Mutex
	runs   map[runKey]*run // running announcements
	closed bool
	wg     sync.WaitGroup
}

type runKey struct{ group, key string }

type run struct {
	cancel context.CancelCauseFunc
	done   chan struct{} // closed after the last send
}

// New returns an Announcer whose sends, over all groups together, are capped
// at ratePPS frames per second with bursts of up to burst frames. ratePPS <= 0
// means no cap; burst < 1 is taken as 1. A nil log means slog.Default().
func New(ratePPS int, burst int, log *slog.Logger) *Announcer {
	if log == nil {
		log = slog.Default()
	}
	return &Announcer{
		limiter: rate.NewLimiter(limitOf(ratePPS), max(burst, 1)),
		log:     log.With("component", "announce"),
		runs:    make(map[runKey]*run),
	}
}

// Announce starts announcing req.Guests on the uplink and returns at once; the
// channel receives exactly one Result and is then closed.
//
// A running announcement for the same group is canceled (the uplink it sends
// on is no longer the right one); the new one sends its first frame only after
// the old one has stopped.
//
// The socket is opened here, in the calling thread's network namespace: call
// from a thread locked into the switch's namespace if that is not the
// process's own.
func (a *Announcer) Announce(ctx context.Context, req Request) <-chan Result {
	out := make(chan Result, 1)
	res := Result{Group: req.Group, Ifname: req.Ifname}

	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		res.Canceled = true
		out <- res
		close(out)
		return out
	}
	k := runKey{req.Group, req.Key}
	prev := a.runs[k]
	if prev != nil {
		prev.cancel(ErrSuperseded)
	}
	if req.Key == "" {
		for rk, r := range a.runs {
			if rk.group == req.Group && rk.key != "" {
				r.cancel(ErrSuperseded)
			}
		}
	}
	runCtx, cancel := context.WithCancelCause(ctx)
	r := &run{cancel: cancel, done: make(chan struct{})}
	a.runs[k] = r
	a.wg.Add(1)
	a.mu.Unlock()

	log := a.log.With("group", req.Group)
	var sock *Socket
	if req.Count > 0 && len(req.Guests) > 0 {
		var err error
		sock, err = openUplink(&req)
		res.Ifname = req.Ifname
		if err != nil {
			res.Errors++
			log.Error("cannot open uplink for announcements", "ifindex", req.Ifindex, "ifname", req.Ifname, "err", err)
		}
	}

	go func() {
		defer func() {
			if sock != nil {
				if err := sock.Close(); err != nil {
					log.Warn("closing announce socket", "err", err)
				}
			}
			a.mu.Lock()
			if a.runs[k] == r {
				delete(a.runs, k)
			}
			a.mu.Unlock()
			cancel(nil)
			close(r.done)
			a.wg.Done()
			out <- res
			close(out)
		}()
		if sock == nil {
			return // nothing to send, or the socket failed (already counted)
		}
		if prev != nil {
			select {
			case <-prev.done:
			case <-runCtx.Done():
			}
		}
		a.send(runCtx, log.With("ifname", req.Ifname), sock, req, &res)
	}()
	return out
}

// send runs the rounds of one announcement.
func (a *Announcer) send(ctx context.Context, log *slog.Logger, sock *Socket, req Request, res *Result) {
	frames, errs := buildFrames(req.Guests)
	for _, err := range errs {
		res.Errors++
		log.Warn("skipping invalid guest data", "err", err)
	}
	if len(frames) == 0 {
		return
	}

	var roundStart time.Time
	for round := range req.Count {
		if round > 0 && req.Interval > 0 {
			if !sleepUntil(ctx, roundStart.Add(req.Interval)) {
				break
			}
		}
		if ctx.Err() != nil {
			break
		}
		roundStart = time.Now()
		loggedErr := false
		for _, frame := range frames {
			if err := a.limiter.Wait(ctx); err != nil {
				if ctx.Err() != nil {
					break
				}
				// The cap cannot fit this frame before ctx's deadline.
				res.Suppressed++
				continue
			}
			if err := sock.Send(frame); err != nil {
				res.Errors++
				if !loggedErr { // one line per round, not one per frame
					log.Warn("announcement send failed", "round", round+1, "err", err)
					loggedErr = true
				}
				continue
			}
			now := time.Now()
			if res.Frames == 0 {
				res.First = now
			}
			res.Last = now
			res.Frames++
		}
		if ctx.Err() != nil {
			break
		}
		res.Rounds++
	}

	// Only a canceled context stops the rounds early.
	res.Canceled = res.Rounds < req.Count
	attrs := []any{"frames", res.Frames, "rounds", res.Rounds, "errors", res.Errors, "suppressed", res.Suppressed}
	if res.Canceled {
		log.Info("announcement stopped early", append(attrs, "cause", context.Cause(ctx))...)
		return
	}
	log.Info("announcement done", attrs...)
}

// SetRate changes the cap as New takes it (a configuration reload); runs
// under way follow it from their next frame.
func (a *Announcer) SetRate(ratePPS, burst int) {
	a.limiter.SetLimit(limitOf(ratePPS))
	a.limiter.SetBurst(max(burst, 1))
}

// limitOf is the limiter's rate for ratePPS frames/s: none when <= 0.
func limitOf(ratePPS int) rate.Limit {
	if ratePPS <= 0 {
		return rate.Inf
	}
	return rate.Limit(ratePPS)
}

// InFlight lists, sorted, the groups with an announcement still running.
func (a *Announcer) InFlight() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	groups := make([]string, 0, len(a.runs))
	for k := range a.runs {
		groups = append(groups, k.group)
	}
	slices.Sort(groups)
	groups = slices.Compact(groups)
	return groups
}

// Close cancels every running announcement and waits for them to stop.
// Announce after Close returns a canceled Result at once.
func (a *Announcer) Close() {
	a.mu.Lock()
	a.closed = true
	for _, r := range a.runs {
		r.cancel(ErrClosed)
	}
	a.mu.Unlock()
	a.wg.Wait()
}

// openUplink resolves the request's interface and opens a socket on it, in
// the calling thread's network namespace. It fills in whichever of
// Ifindex/Ifname was missing.
func openUplink(req *Request) (*Socket, error) {
	switch {
	case req.Ifindex > 0:
		if req.Ifname == "" {
			// Only for reporting; OpenSocket catches a missing device.
			if ifi, err := net.InterfaceByIndex(req.Ifindex); err == nil {
				req.Ifname = ifi.Name
			}
		}
	case req.Ifname != "":
		ifi, err := net.InterfaceByName(req.Ifname)
		if err != nil {
			return nil, fmt.Errorf("look up uplink %q: %w", req.Ifname, err)
		}
		req.Ifindex = ifi.Index
	default:
		return nil, errors.New("request names no uplink (Ifindex and Ifname empty)")
	}
	return OpenSocket(req.Ifindex)
}

// buildFrames builds one round's frames in sending order: every guest's RARP
// first (the L2 relearn matters most), then gratuitous ARPs, then neighbour
// advertisements, each kind in order of guest priority (higher first,
// stable). A guest with an invalid MAC or VLAN is skipped as a whole, an
// invalid address alone; each problem is returned.
func buildFrames(guests []Guest) (frames [][]byte, errs []error) {
	guests = slices.Clone(guests)
	slices.SortStableFunc(guests, func(a, b Guest) int { return b.Priority - a.Priority })
	var garps, nas [][]byte
	for _, g := range guests {
		rarp, err := RARP(g.MAC, g.VLAN)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		frames = append(frames, rarp)
		for _, ip := range g.Addrs {
			if ip.Unmap().Is4() {
				frame, err := GratuitousARP(g.MAC, g.VLAN, ip)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				garps = append(garps, frame)
				continue
			}
			frame, err := UnsolicitedNA(g.MAC, g.VLAN, ip)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			nas = append(nas, frame)
		}
	}
	return slices.Concat(frames, garps, nas), errs
}

// sleepUntil waits for t; false if ctx ended first.
func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}
