package e2e

import (
	"errors"
	"net"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/safchain/ethtool"
	"github.com/uplinkd/uplinkd/pkg/nldump"
	"github.com/uplinkd/uplinkd/test/bench/benchbpf"
	"github.com/uplinkd/uplinkd/test/testenv"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// testFrame is a benchmark stream frame (see benchbpf): the same format
// the XDP receiver reads.
func testFrame(dst, src net.HardwareAddr, stream uint8) []byte {
	f, err := benchbpf.Template{Dst: dst, Src: src, Size: benchbpf.MinFrameSize, Stream: stream}.Frame()
	if err != nil {
		panic(err) // the callers pass fixed, valid addresses
	}
	return f
}

func htons(v uint16) uint16 { return testenv.Htons(v) }

// packetSocket opens an AF_PACKET socket on ifname in the current thread's
// namespace.
func packetSocket(ifname string, proto uint16) (int, error) {
	link, err := netlink.LinkByName(ifname)
	if err != nil {
		return -1, err
	}
	return testenv.PacketSocket(link.Attrs().Index, proto)
}

// sender sends one stream at a fixed rate from inside a namespace.
type sender struct {
	sent   uint32 // frames sent successfully: seq 0..sent-1
	errs   int
	err    error
	stop   chan struct{}
	done   chan struct{}
	first  time.Time
	finish time.Time
}

// send starts a paced stream of rate frames/s for at most d.
func (l *lab) send(role, ifname string, dst, src net.HardwareAddr, stream uint8, rate int, d time.Duration) *sender {
	s := &sender{stop: make(chan struct{}), done: make(chan struct{})}
	ready := make(chan struct{})
	go func() {
		defer close(s.done)
		runtime.LockOSThread() // the thread dies with the goroutine: never back in use
		if err := netns.Set(l.ns[role]); err != nil {
			s.err = err
			close(ready)
			return
		}
		fd, err := packetSocket(ifname, 0)
		if err != nil {
			s.err = err
			close(ready)
			return
		}
		defer unix.Close(fd)
		close(ready)
		frame := testFrame(dst, src, stream)
		s.first = time.Now()
		deadline := s.first.Add(d)
		for {
			now := time.Now()
			if now.After(deadline) {
				break
			}
			select {
			case <-s.stop:
				s.finish = time.Now()
				return
			default:
			}
			due := uint32(now.Sub(s.first).Seconds() * float64(rate))
			// After a stall, catch up at most 64 frames at a time: one
			// burst of the whole backlog would overflow a veth's 256-frame
			// ring and measure the sender, not the switch.
			due = min(due, s.sent+64)
			for s.sent < due {
				benchbpf.SetSeq(frame, s.sent)
				if err := unix.Send(fd, frame, 0); err != nil {
					s.errs++
					if s.errs > 1000 {
						s.err = err
						return
					}
					break // retry the same sequence number on the next tick
				}
				s.sent++
			}
			time.Sleep(200 * time.Microsecond)
		}
		s.finish = time.Now()
	}()
	<-ready
	return s
}

func (s *sender) wait() { <-s.done }

// arrival is one received test frame.
type arrival struct {
	stream uint8
	seq    uint32
	at     time.Time // kernel receive timestamp
}

// receiver records every test frame and RARP that arrives at an interface.
type receiver struct {
	name string
	// each, if set, is given every frame that arrives, with its time, on
	// the receiver's goroutine.
	each func(frame []byte, at time.Time)
	mu   sync.Mutex
	got  []arrival
	rarp []time.Time
	// drops is what the socket had no room for (PACKET_STATISTICS),
	// read when the receiver stops.
	drops uint32
	err   error
	stop  chan struct{}
	done  chan struct{}
}

func (l *lab) receive(role, ifname string) *receiver { return l.receiveEach(role, ifname, nil) }

// receiveEach is receive, giving every frame that arrives to each too.
func (l *lab) receiveEach(role, ifname string, each func(frame []byte, at time.Time)) *receiver {
	r := &receiver{name: role + ":" + ifname, each: each, stop: make(chan struct{}), done: make(chan struct{})}
	ready := make(chan struct{})
	go func() {
		defer close(r.done)
		runtime.LockOSThread()
		if err := netns.Set(l.ns[role]); err != nil {
			r.err = err
			close(ready)
			return
		}
		fd, err := packetSocket(ifname, unix.ETH_P_ALL)
		if err != nil {
			r.err = err
			close(ready)
			return
		}
		defer unix.Close(fd)
		defer func() {
			if st, err := unix.GetsockoptTpacketStats(fd, unix.SOL_PACKET, unix.PACKET_STATISTICS); err == nil {
				r.drops = st.Drops
			}
		}()
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 16<<20)
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
		_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 20000})
		close(ready)
		buf := make([]byte, 2048)
		oob := make([]byte, 256)
		stopping, drain := false, 1<<20
		for {
			flags := 0
			if !stopping {
				select {
				case <-r.stop:
					// Read what is queued before returning: a reader that
					// fell behind (emulation) must not turn frames that
					// arrived into lost ones.
					stopping = true
				default:
				}
			}
			if stopping {
				flags = unix.MSG_DONTWAIT
				if drain--; drain == 0 { // bounded: a 16 MB buffer holds far fewer
					return
				}
			}
			n, oobn, _, from, err := unix.Recvmsg(fd, buf, oob, flags)
			if stopping && errors.Is(err, unix.EAGAIN) {
				return
			}
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) || errors.Is(err, unix.ENETDOWN) {
				continue
			}
			if err != nil {
				r.err = err
				return
			}
			if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
				continue
			}
			at := kernelTime(oob[:oobn])
			if r.each != nil {
				r.each(buf[:n], at)
			}
			switch kind, stream, seq := benchbpf.Parse(buf[:n]); kind {
			case benchbpf.Stream:
				r.mu.Lock()
				r.got = append(r.got, arrival{stream: stream, seq: seq, at: at})
				r.mu.Unlock()
			case benchbpf.RARP:
				r.mu.Lock()
				r.rarp = append(r.rarp, at)
				r.mu.Unlock()
			}
		}
	}()
	<-ready
	return r
}

func kernelTime(oob []byte) time.Time {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err == nil {
		for _, m := range msgs {
			if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SO_TIMESTAMPNS && len(m.Data) >= int(unsafe.Sizeof(unix.Timespec{})) {
				ts := (*unix.Timespec)(unsafe.Pointer(&m.Data[0]))
				return time.Unix(ts.Unix())
			}
		}
	}
	return time.Now()
}

func (r *receiver) close() {
	close(r.stop)
	<-r.done
}

// stream returns the arrivals of one stream in arrival order.
func (r *receiver) stream(id uint8) []arrival {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []arrival
	for _, a := range r.got {
		if a.stream == id {
			out = append(out, a)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].at.Before(out[j].at) })
	return out
}

func (r *receiver) rarps() []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Time(nil), r.rarp...)
}

// firstAfter is the first arrival at or after t; ok false if none.
func firstAfter(as []arrival, t time.Time) (arrival, bool) {
	for _, a := range as {
		if !a.at.Before(t) {
			return a, true
		}
	}
	return arrival{}, false
}

// lastBefore is the last arrival before t.
func lastBefore(as []arrival, t time.Time) (arrival, bool) {
	var out arrival
	ok := false
	for _, a := range as {
		if a.at.Before(t) {
			out, ok = a, true
		}
	}
	return out, ok
}

// missing counts sequence numbers 0..n-1 absent from all the receivers.
func missing(n uint32, stream uint8, rs ...*receiver) (lost int, dups int) {
	seen := make([]uint8, n)
	for _, r := range rs {
		for _, a := range r.stream(stream) {
			if a.seq < n {
				seen[a.seq]++
			}
		}
	}
	for _, c := range seen {
		switch {
		case c == 0:
			lost++
		case c > 1:
			dups += int(c) - 1
		}
	}
	return lost, dups
}

// testbedDrops counts the frames the testbed itself dropped: those a
// CPU's backlog had no room for when a veth handed them on
// (/proc/net/softnet_stat, the "dropped" column, summed over CPUs and so
// over every namespace), those the lab's veths in H handed on by XDP
// redirect while the peer's receive ring was full (ethtool -S:
// *xdp_xmit_errors; a receiver with XDP), and those a receiver's socket
// had no room for (PACKET_STATISTICS). On a real CPU the tests' paced
// rates fill none; under emulation (make test-kernels) a backlog or a
// receiver's thread can fall behind at a few kpps. Those losses are not
// the switch's: a check lets through as many lost frames as the testbed
// dropped, and no more. A frame sent into a device without carrier is not
// among them: that is the switch's loss.
type testbedDrops struct {
	l    *lab
	base uint64
}

func (l *lab) testbedDrops() *testbedDrops {
	d := &testbedDrops{l: l}
	d.base = d.ringsRefused()
	return d
}

func (d *testbedDrops) ringsRefused() (n uint64) {
	d.l.t.Helper()
	n = backlogDrops(d.l)
	d.l.in("H", func() {
		e, err := ethtool.NewEthtool() // in this thread's namespace
		d.l.check(err)
		defer e.Close()
		links, err := nldump.Retry(netlink.LinkList)
		d.l.check(err)
		for _, link := range links {
			if link.Type() != "veth" {
				continue
			}
			st, err := e.Stats(link.Attrs().Name)
			d.l.check(err)
			for k, v := range st {
				if strings.HasSuffix(k, "xdp_xmit_errors") {
					n += v
				}
			}
		}
	})
	return n
}

// backlogDrops sums the "dropped" column of /proc/net/softnet_stat: skbs
// a CPU's input backlog refused (netif_rx past netdev_max_backlog).
func backlogDrops(l *lab) (n uint64) {
	l.t.Helper()
	data, err := os.ReadFile("/proc/net/softnet_stat")
	l.check(err)
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, err := strconv.ParseUint(f[1], 16, 64)
		l.check(err)
		n += v
	}
	return n
}

// count is the number dropped since testbedDrops by the rings and by the
// (closed) receivers rs.
func (d *testbedDrops) count(rs ...*receiver) uint64 {
	n := d.ringsRefused() - d.base
	for _, r := range rs {
		n += uint64(r.drops)
	}
	return n
}

// unexplained is how many of lost frames the testbed's drops do not
// account for; it logs the ones they do, so no excused loss goes unseen.
func (d *testbedDrops) unexplained(lost int, rs ...*receiver) int {
	d.l.t.Helper()
	if lost == 0 {
		return 0
	}
	dropped := int(d.count(rs...))
	if dropped > 0 {
		d.l.t.Logf("%d frames lost, %d dropped by the testbed (full veth rings, receivers)", lost, dropped)
	}
	n := max(0, lost-dropped)
	if n > 0 { // where the switch dropped them, if the daemon runs
		out, err := execCtl(d.l, "stats")
		d.l.t.Logf("uplinkctl stats (%v):\n%s", err, out)
	}
	return n
}
