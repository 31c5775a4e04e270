package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/uplinkd/uplinkd/test/bench/report"
	"github.com/uplinkd/uplinkd/test/bench/topo"
)

// The failover stream: a paced TCP connection from the guest to the
// upstream host, its active uplink cut after streamBeforeCut and restored
// streamCutFor later; it runs streamAfterRestore more (a failback
// included). The harness's own sender and receiver rather than iperf3:
// the receiver timestamps every read, which resolves a gap to well under
// a millisecond where iperf3 reports 100 ms intervals. A trial is short
// so that many fit: a stall is about one RTO (200 ms) at most when the
// failover works, and a second of cut is five of those.
const (
	streamBeforeCut    = 500 * time.Millisecond
	streamCutFor       = time.Second
	streamAfterRestore = time.Second
	streamDialTimeout  = 3 * time.Second
	// streamSettleMax bounds the wait, between trials, for the system to
	// be back on its first uplink and done announcing.
	streamSettleMax = 10 * time.Second
	// streamChunk every millisecond: 100 Mbit/s, enough to see every
	// millisecond of a gap, little enough to leave the CPUs to the switch.
	streamChunk  = 12_500
	streamMbps   = streamChunk * 8 * 1000 / 1e6
	streamAtEnd  = 500 * time.Millisecond // "still flowing": bytes in the last this
	streamLinger = time.Second            // the receiver's wait for the rest after the sender stops
)

// arrival is one read that returned data.
type arrival struct {
	at time.Time
	n  int
}

// streamGaps computes, over the arrivals between start and end, the
// longest time without data, the longest one that ends after the cut and
// begins before the restore, and the longest that ends after the restore.
// The time from start to the first arrival and from the last to end count
// as gaps too: a stream that never resumes has its gap up to the end.
func streamGaps(arr []arrival, start, cut, restore, end time.Time) (longest, atCut, atRestore time.Duration) {
	prev := start
	consider := func(t time.Time) {
		g := t.Sub(prev)
		longest = max(longest, g)
		if t.After(cut) && prev.Before(restore) {
			atCut = max(atCut, g)
		}
		if t.After(restore) {
			atRestore = max(atRestore, g)
		}
		prev = t
	}
	for _, a := range arr {
		if a.at.After(end) {
			break
		}
		consider(a.at)
	}
	if end.After(prev) {
		consider(end)
	}
	return longest, atCut, atRestore
}

// failovers runs up to n trials, each a fresh TCP connection across a
// cut of the active uplink and its restoration, on the same testbed.
// Before each the system is back on its first uplink. A system that
// cannot connect at all stops after that trial: the next would only
// wait for the same connect timeout.
func (b *socketBed) failovers(ctx context.Context, n int, log *slog.Logger) []report.TCPFailover {
	var out []report.TCPFailover
	for i := 1; i <= n && ctx.Err() == nil; i++ {
		f, why := b.newFailover(i, n), "no connection"
		if err := b.settle(ctx); err != nil {
			f.Error, why = err.Error(), "the system did not settle"
		} else {
			f = b.failover(ctx, i, n)
		}
		stop := !f.Connected
		if stop && i < n {
			f.Note = strings.TrimPrefix(f.Note+fmt.Sprintf("; stopped after trial %d of %d: %s", i, n, why), "; ")
		}
		out = append(out, f)
		log.Info("tcp failover", "system", f.System, "trial", i, "of", n, "connected", f.Connected,
			"longest_gap", time.Duration(f.LongestGapNs), "retransmits", f.Retransmits, "survived", f.Survived, "error", f.Error)
		if stop {
			break
		}
	}
	return out
}

func (b *socketBed) newFailover(trial, planned int) report.TCPFailover {
	res := report.TCPFailover{System: b.sys.Name(), Trial: trial, Planned: planned, Setup: b.setup, RateMbps: streamMbps,
		LongestGapNs: -1, GapAtCutNs: -1, GapAtRestoreNs: -1}
	if b.sys.Name() == "bridge" && len(b.tp.Uplinks) == 1 {
		res.Note = "a Linux bridge alone has no failover: its one uplink is cut and restored"
	}
	return res
}

// failover carries one TCP connection across a cut of the active uplink
// and its restoration.
func (b *socketBed) failover(ctx context.Context, trial, planned int) report.TCPFailover {
	res := b.newFailover(trial, planned)
	if err := b.streamOnce(ctx, &res); err != nil {
		res.Error = err.Error()
	}
	return res
}

// settle restores every uplink and waits until the system uses the first
// one again and is done announcing, so every trial starts alike.
func (b *socketBed) settle(ctx context.Context) error {
	for i := range b.tp.Uplinks {
		if err := b.tp.Restore(i); err != nil {
			return fmt.Errorf("restore %s: %w", b.tp.Uplinks[i], err)
		}
	}
	deadline := time.Now().Add(streamSettleMax)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if a, err := b.sys.Active(ctx); err == nil && a == b.tp.Uplinks[0] && quiet(ctx, b.sys) {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return fmt.Errorf("%s did not return to %s within %s", b.sys.Name(), b.tp.Uplinks[0], streamSettleMax)
}

func (b *socketBed) streamOnce(ctx context.Context, res *report.TCPFailover) error {
	active, err := b.activeIndex(ctx)
	if err != nil {
		return err
	}
	var ln *net.TCPListener
	if err := b.tp.In(topo.Sender, func() error {
		var err error
		ln, err = net.ListenTCP("tcp4", &net.TCPAddr{IP: net.ParseIP(tcpUpstreamAddr), Port: streamPort})
		return err
	}); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	defer ln.Close()
	var conn net.Conn
	if err := b.tp.In(topo.Guest, func() error {
		d := net.Dialer{Timeout: streamDialTimeout}
		var err error
		conn, err = d.DialContext(ctx, "tcp4", fmt.Sprintf("%s:%d", tcpUpstreamAddr, streamPort))
		return err
	}); err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close()
	_ = ln.SetDeadline(time.Now().Add(streamDialTimeout))
	peer, err := ln.AcceptTCP()
	if err != nil {
		return fmt.Errorf("accept: %w", err)
	}
	defer peer.Close()
	res.Connected = true

	var (
		mu       sync.Mutex
		arrivals []arrival
		recvErr  error
		recvDone = make(chan struct{})
	)
	go func() {
		defer close(recvDone)
		buf := make([]byte, 256<<10)
		for {
			n, err := peer.Read(buf)
			if n > 0 {
				mu.Lock()
				arrivals = append(arrivals, arrival{time.Now(), n})
				mu.Unlock()
			}
			if err != nil {
				if !errors.Is(err, io.EOF) {
					recvErr = err
				}
				return
			}
		}
	}()

	start := time.Now()
	cutAt, restoreAt := start.Add(streamBeforeCut), start.Add(streamBeforeCut+streamCutFor)
	end := restoreAt.Add(streamAfterRestore)
	sendDone := make(chan error, 1)
	go func() { sendDone <- paceTCP(conn, end) }()

	var events error
	sleepUntil(ctx, cutAt)
	if err := b.tp.Cut(active); err != nil {
		events = fmt.Errorf("cut %s: %w", b.tp.Uplinks[active], err)
	}
	sleepUntil(ctx, restoreAt)
	if err := b.tp.Restore(active); err != nil {
		events = errors.Join(events, fmt.Errorf("restore %s: %w", b.tp.Uplinks[active], err))
	}
	sendErr := <-sendDone
	if info, err := tcpInfo(conn); err == nil {
		res.Retransmits = int64(info.Total_retrans)
	}
	// The sender is done: a FIN ends the receiver once the rest arrived,
	// or the linger does.
	_ = conn.(*net.TCPConn).CloseWrite()
	_ = peer.SetReadDeadline(time.Now().Add(streamLinger))
	<-recvDone
	if errors.Is(recvErr, os.ErrDeadlineExceeded) {
		recvErr = nil // the stream had stopped; the gaps say so
	}

	mu.Lock()
	defer mu.Unlock()
	longest, atCut, atRestore := streamGaps(arrivals, start, cutAt, restoreAt, end)
	res.LongestGapNs, res.GapAtCutNs, res.GapAtRestoreNs = int64(longest), int64(atCut), int64(atRestore)
	for _, a := range arrivals {
		res.Bytes += uint64(a.n)
		if !a.at.Before(end.Add(-streamAtEnd)) && !a.at.After(end) {
			res.BytesAtEnd += uint64(a.n)
		}
	}
	err = errors.Join(events, sendErr, recvErr)
	res.Survived = err == nil && res.BytesAtEnd > 0
	if err == nil && res.BytesAtEnd == 0 {
		return errors.New("no bytes arrived in the last 500 ms")
	}
	return err
}

// paceTCP writes streamChunk every millisecond until end. A write that
// blocks (the path is down, the window full) holds the pace back, as an
// application's would; only a failed write is an error.
func paceTCP(conn net.Conn, end time.Time) error {
	chunk := make([]byte, streamChunk)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	_ = conn.SetWriteDeadline(end)
	for time.Now().Before(end) {
		if _, err := conn.Write(chunk); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return nil
			}
			return fmt.Errorf("send: %w", err)
		}
		<-tick.C
	}
	return nil
}

// tcpInfo reads TCP_INFO of a connection.
func tcpInfo(conn net.Conn) (*unix.TCPInfo, error) {
	tc, ok := conn.(*net.TCPConn)
	if !ok {
		return nil, fmt.Errorf("not a TCP connection")
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return nil, err
	}
	var info *unix.TCPInfo
	var serr error
	if err := raw.Control(func(fd uintptr) {
		info, serr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
	}); err != nil {
		return nil, err
	}
	return info, serr
}

// sleepUntil sleeps until t or until ctx ends.
func sleepUntil(ctx context.Context, t time.Time) {
	select {
	case <-ctx.Done():
	case <-time.After(time.Until(t)):
	}
}
