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
// cut of the active uplink and its restoration, on the same testbed: one
// from the guest, and where the system has a host port one from the host
// at the same time, across the same cut. Before each the system is back
// on its first uplink. An endpoint that cannot connect at all stops after
// that trial: the next would only wait for the same connect timeout.
func (b *socketBed) failovers(ctx context.Context, n int, log *slog.Logger) []report.TCPFailover {
	var out []report.TCPFailover
	endpoints := b.endpoints()
	for i := 1; i <= n && len(endpoints) > 0 && ctx.Err() == nil; i++ {
		var trials []report.TCPFailover
		why := "no connection"
		if err := b.settle(ctx); err != nil {
			why = "the system did not settle"
			for _, e := range endpoints {
				f := b.newFailover(e, i, n)
				f.Error = err.Error()
				trials = append(trials, f)
			}
		} else {
			trials = b.failover(ctx, i, n, endpoints)
		}
		endpoints = endpoints[:0]
		for _, f := range trials {
			if f.Connected {
				endpoints = append(endpoints, f.Endpoint)
			} else if i < n {
				f.Note = strings.TrimPrefix(f.Note+fmt.Sprintf("; stopped after trial %d of %d: %s", i, n, why), "; ")
			}
			out = append(out, f)
			log.Info("tcp failover", "system", f.System, "endpoint", endpointName(f.Endpoint), "trial", i, "of", n,
				"connected", f.Connected, "longest_gap", time.Duration(f.LongestGapNs), "retransmits", f.Retransmits,
				"survived", f.Survived, "error", f.Error)
		}
	}
	return out
}

// newFailover is an endpoint's trial with nothing measured yet.
func (b *socketBed) newFailover(endpoint string, trial, planned int) report.TCPFailover {
	res := report.TCPFailover{System: b.sys.Name(), Endpoint: endpoint, Trial: trial, Planned: planned, Setup: b.setup,
		RateMbps: streamMbps, LongestGapNs: -1, GapAtCutNs: -1, GapAtRestoreNs: -1}
	if b.sys.Name() == "bridge" && len(b.tp.Uplinks) == 1 {
		res.Note = "a Linux bridge alone has no failover: its one uplink is cut and restored"
	}
	return res
}

// flow is one endpoint's connection of a trial: the sender's socket,
// the upstream host's, and what the receiver read.
type flow struct {
	res      *report.TCPFailover
	ln       *net.TCPListener
	conn     net.Conn // the endpoint's: it sends
	peer     *net.TCPConn
	mu       sync.Mutex
	arrivals []arrival
	recvErr  error
	recvDone chan struct{}
	sendDone chan error
}

func (f *flow) close() {
	if f.peer != nil {
		_ = f.peer.Close()
	}
	if f.conn != nil {
		_ = f.conn.Close()
	}
	if f.ln != nil {
		_ = f.ln.Close()
	}
}

// failover carries one TCP connection per endpoint across the same cut
// of the active uplink and its restoration, all at the same time.
func (b *socketBed) failover(ctx context.Context, trial, planned int, endpoints []string) []report.TCPFailover {
	out := make([]report.TCPFailover, len(endpoints))
	for i, e := range endpoints {
		out[i] = b.newFailover(e, trial, planned)
	}
	active, err := b.activeIndex(ctx)
	if err != nil {
		for i := range out {
			out[i].Error = err.Error()
		}
		return out
	}
	var flows []*flow
	defer func() {
		for _, f := range flows {
			f.close()
		}
	}()
	for i, e := range endpoints {
		f, err := b.connect(ctx, e, streamPort+i)
		if err != nil {
			out[i].Error = err.Error()
			continue
		}
		f.res = &out[i]
		f.res.Connected = true
		flows = append(flows, f)
	}
	if len(flows) == 0 {
		return out
	}
	for _, f := range flows {
		go f.receive()
	}
	start := time.Now()
	cutAt, restoreAt := start.Add(streamBeforeCut), start.Add(streamBeforeCut+streamCutFor)
	end := restoreAt.Add(streamAfterRestore)
	for _, f := range flows {
		f.sendDone = make(chan error, 1)
		go func() {
			err := paceTCP(f.conn, end)
			// Read at the end of sending, not when finish gets to this
			// flow: the flows before it may linger a second meanwhile.
			if info, err := tcpInfo(f.conn); err == nil {
				f.res.Retransmits = int64(info.Total_retrans)
			}
			f.sendDone <- err
		}()
	}

	var events error
	sleepUntil(ctx, cutAt)
	if err := b.tp.Cut(active); err != nil {
		events = fmt.Errorf("cut %s: %w", b.tp.Uplinks[active], err)
	}
	sleepUntil(ctx, restoreAt)
	if err := b.tp.Restore(active); err != nil {
		events = errors.Join(events, fmt.Errorf("restore %s: %w", b.tp.Uplinks[active], err))
	}
	for _, f := range flows {
		if err := f.finish(start, cutAt, restoreAt, end, events); err != nil {
			f.res.Error = err.Error()
		}
	}
	return out
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

// connect opens a connection from an endpoint to the upstream host's
// port; the caller closes the flow.
func (b *socketBed) connect(ctx context.Context, endpoint string, port int) (*flow, error) {
	f := &flow{recvDone: make(chan struct{})}
	connected := false
	defer func() {
		if !connected {
			f.close()
		}
	}()
	if err := b.tp.In(topo.Sender, func() error {
		var err error
		f.ln, err = net.ListenTCP("tcp4", &net.TCPAddr{IP: net.ParseIP(tcpUpstreamAddr), Port: port})
		return err
	}); err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	role, _ := near(endpoint)
	if err := b.tp.In(role, func() error {
		d := net.Dialer{Timeout: streamDialTimeout}
		var err error
		f.conn, err = d.DialContext(ctx, "tcp4", fmt.Sprintf("%s:%d", tcpUpstreamAddr, port))
		return err
	}); err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	_ = f.ln.SetDeadline(time.Now().Add(streamDialTimeout))
	var err error
	if f.peer, err = f.ln.AcceptTCP(); err != nil {
		return nil, fmt.Errorf("accept: %w", err)
	}
	connected = true
	return f, nil
}

// receive timestamps every read at the upstream host until the sender's
// FIN, an error or the deadline finish sets.
func (f *flow) receive() {
	defer close(f.recvDone)
	buf := make([]byte, 256<<10)
	for {
		n, err := f.peer.Read(buf)
		if n > 0 {
			f.mu.Lock()
			f.arrivals = append(f.arrivals, arrival{time.Now(), n})
			f.mu.Unlock()
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				f.recvErr = err
			}
			return
		}
	}
}

// finish waits for the flow's sender, ends its receiver and fills in its
// trial; events are the errors of the cut and the restore.
func (f *flow) finish(start, cutAt, restoreAt, end time.Time, events error) error {
	res := f.res
	sendErr := <-f.sendDone
	// The sender is done: a FIN ends the receiver once the rest arrived,
	// or the linger does.
	_ = f.conn.(*net.TCPConn).CloseWrite()
	_ = f.peer.SetReadDeadline(time.Now().Add(streamLinger))
	<-f.recvDone
	recvErr := f.recvErr
	if errors.Is(recvErr, os.ErrDeadlineExceeded) {
		recvErr = nil // the stream had stopped; the gaps say so
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	longest, atCut, atRestore := streamGaps(f.arrivals, start, cutAt, restoreAt, end)
	res.LongestGapNs, res.GapAtCutNs, res.GapAtRestoreNs = int64(longest), int64(atCut), int64(atRestore)
	for _, a := range f.arrivals {
		res.Bytes += uint64(a.n)
		if !a.at.Before(end.Add(-streamAtEnd)) && !a.at.After(end) {
			res.BytesAtEnd += uint64(a.n)
		}
	}
	err := errors.Join(events, sendErr, recvErr)
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
