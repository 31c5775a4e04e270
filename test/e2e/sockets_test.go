package e2e

// Socket traffic: what guests really send. A local stack sends TCP and
// UDP through a veth as CHECKSUM_PARTIAL skbs, TCP mostly as GSO frames
// larger than the MTU; the switch must carry both with the veths' default
// offloads. Raw AF_PACKET frames (traffic_test.go) carry full checksums
// and never show a data plane that loses either.

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/safchain/ethtool"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/uplinkd/uplinkd/pkg/nldump"
	"github.com/uplinkd/uplinkd/test/testenv"
)

const (
	dialTimeout = 2 * time.Second // a switch that drops SYNs fails here
	ioTimeout   = 3 * time.Second // longest a read or write may block
	bulkLength  = 2 * time.Second // each TCP bulk case
)

// endpoint is a socket address in one of the lab's namespaces.
type endpoint struct {
	role string
	ip   net.IP
}

func (e endpoint) String() string { return e.role }

var upstreamHost = endpoint{"U", net.IP{10, 77, 0, 1}} // br0 in U

func guestHost(i int) endpoint { return endpoint{guestRole(i), guestIP(i)} }

// streamPattern is what every TCP stream and UDP datagram carries: byte i
// of a stream is streamPattern[i%patternPeriod]. The period is prime, so
// no write or read size lines up with it: a segment delivered twice, out
// of order or corrupted shows as a mismatch. The slice holds two periods
// so that any window up to one period long is contiguous.
const patternPeriod = 1048573

var streamPattern = func() []byte {
	p := make([]byte, 2*patternPeriod)
	_, _ = rand.Read(p[:patternPeriod])
	copy(p[patternPeriod:], p[:patternPeriod])
	return p
}()

func patternAt(offset int64, n int) []byte {
	o := int(offset % patternPeriod)
	return streamPattern[o : o+n]
}

// goIn runs fn on a new goroutine whose OS thread is in ns; the thread is
// never unlocked, so it dies with the goroutine and no other goroutine
// inherits the namespace. Sockets fn opens stay in ns whichever goroutine
// uses them later.
func goIn(ns netns.NsHandle, fn func() error) error { return testenv.Go(ns, fn) }

// --- offloads --------------------------------------------------------------

// offloadFeatures are the ethtool features (ETH_SS_FEATURES names) that
// `ethtool -k` shows as tx-checksumming (on a veth and a bridge: the
// generic one), tcp-segmentation-offload, generic-segmentation-offload
// and generic-receive-offload.
var offloadFeatures = []string{"tx-checksum-ip-generic", "tx-tcp-segmentation", "tx-generic-segmentation", "rx-gro"}

// onByDefault are the offloads a veth and a bridge have on when created;
// GRO is off on a veth by default, so it is only required to stay as it
// was.
var onByDefault = []string{"tx-checksum-ip-generic", "tx-tcp-segmentation", "tx-generic-segmentation"}

// offloadPoints are the senders' and receivers' interfaces: each guest's
// eth0 and the upstream host's br0 (and its ports toward the uplinks).
func (l *lab) offloadPoints() map[string][]string {
	pts := map[string][]string{"U": {"br0"}}
	for role := range l.ns {
		if strings.HasPrefix(role, "G") {
			pts[role] = []string{"eth0"}
		}
	}
	l.in("U", func() {
		links, err := nldump.Retry(netlink.LinkList)
		l.check(err)
		for _, link := range links {
			if n := link.Attrs().Name; strings.HasPrefix(n, "p") && link.Type() == "veth" {
				pts["U"] = append(pts["U"], n)
			}
		}
	})
	return pts
}

// offloads reads the offloadFeatures of every offload point, keyed
// "role:ifname feature".
func (l *lab) offloads() map[string]bool {
	l.t.Helper()
	out := map[string]bool{}
	for role, names := range l.offloadPoints() {
		l.in(role, func() {
			e, err := ethtool.NewEthtool() // its socket lives in this namespace
			l.check(err)
			defer e.Close()
			for _, n := range names {
				fs, err := e.Features(n)
				if err != nil {
					l.t.Fatalf("ethtool -k %s in %s: %v", n, role, err)
				}
				for _, f := range offloadFeatures {
					out[role+":"+n+" "+f] = fs[f]
				}
			}
		})
	}
	return out
}

// requireDefaultOffloads fails unless checksum offload, TSO and GSO are on
// at every offload point: the tests must run with what users have.
func (l *lab) requireDefaultOffloads() map[string]bool {
	l.t.Helper()
	before := l.offloads()
	var off []string
	for k, on := range before {
		if !on && slices.Contains(onByDefault, k[strings.IndexByte(k, ' ')+1:]) {
			off = append(off, k)
		}
	}
	if len(off) > 0 {
		slices.Sort(off)
		l.t.Fatalf("offloads off before the switch attached (not the defaults): %v", off)
	}
	return before
}

// checkOffloadsKept reports every offload the switch turned off since
// before (turning GRO on, e.g. to give a veth NAPI, is allowed).
func (l *lab) checkOffloadsKept(before map[string]bool) {
	l.t.Helper()
	var off []string
	for k, on := range l.offloads() {
		if before[k] && !on {
			off = append(off, k)
		}
	}
	slices.Sort(off)
	if len(off) > 0 {
		l.t.Errorf("offloads turned off after the switch attached (ethtool -k): %v", off)
	}
}

// --- checksum counters -------------------------------------------------------

// sockSNMP reads /proc/net/snmp of role's namespace (from a thread inside it:
// /proc/net follows the process's main thread, thread-self this thread).
func (l *lab) sockSNMP(role string) map[string]int64 {
	l.t.Helper()
	var text []byte
	l.in(role, func() {
		var err error
		text, err = os.ReadFile("/proc/thread-self/net/snmp")
		l.check(err)
	})
	out := map[string]int64{}
	var header []string
	sc := bufio.NewScanner(bytes.NewReader(text))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		if header == nil || header[0] != fields[0] {
			header = fields
			continue
		}
		for i := 1; i < len(fields) && i < len(header); i++ {
			v, err := strconv.ParseInt(fields[i], 10, 64)
			if err == nil {
				out[strings.TrimSuffix(header[0], ":")+header[i]] = v
			}
		}
		header = nil
	}
	return out
}

// sockSNMPAll is sockSNMP of every namespace of the lab, by role.
func (l *lab) sockSNMPAll() map[string]map[string]int64 {
	out := map[string]map[string]int64{}
	for role := range l.ns {
		out[role] = l.sockSNMP(role)
	}
	return out
}

// csumErrorsSince lists the checksum errors counted in any namespace
// since before, e.g. "U: UdpInCsumErrors +100"; empty if none.
func (l *lab) csumErrorsSince(before map[string]map[string]int64) []string {
	var out []string
	for role, now := range l.sockSNMPAll() {
		for _, k := range []string{"TcpInCsumErrors", "UdpInCsumErrors"} {
			if d := now[k] - before[role][k]; d != 0 {
				out = append(out, fmt.Sprintf("%s: %s %+d", role, k, d))
			}
		}
	}
	slices.Sort(out)
	return out
}

// --- frame sizes on the switch's ports ---------------------------------------

// frameSizes records the largest frame an AF_PACKET socket sees on each
// interface of a namespace, per direction: an skb sent or received as GSO
// shows at its full length.
type frameSizes struct {
	mu      sync.Mutex
	largest map[string]int // "vnet0 in", "up0 out"
	names   map[int]string
	stop    chan struct{}
	done    chan struct{}
}

func (l *lab) watchFrameSizes(role string) *frameSizes {
	l.t.Helper()
	fs := &frameSizes{largest: map[string]int{}, names: map[int]string{}, stop: make(chan struct{}), done: make(chan struct{})}
	ready := make(chan error, 1)
	go func() {
		defer close(fs.done)
		runtime.LockOSThread()
		if err := netns.Set(l.ns[role]); err != nil {
			ready <- err
			return
		}
		links, err := nldump.Retry(netlink.LinkList)
		if err != nil {
			ready <- err
			return
		}
		for _, link := range links {
			fs.names[link.Attrs().Index] = link.Attrs().Name
		}
		// Bound to no interface: every device of the namespace.
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			ready <- err
			return
		}
		defer unix.Close(fd)
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 4<<20)
		_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 20000})
		ready <- nil
		buf := make([]byte, 64) // MSG_TRUNC returns the whole length
		for {
			select {
			case <-fs.stop:
				return
			default:
			}
			n, _, _, from, err := unix.Recvmsg(fd, buf, nil, unix.MSG_TRUNC)
			if err != nil {
				continue
			}
			ll, ok := from.(*unix.SockaddrLinklayer)
			if !ok {
				continue
			}
			key := fs.names[ll.Ifindex] + " in"
			if ll.Pkttype == unix.PACKET_OUTGOING {
				key = fs.names[ll.Ifindex] + " out"
			}
			fs.mu.Lock()
			fs.largest[key] = max(fs.largest[key], n)
			fs.mu.Unlock()
		}
	}()
	if err := <-ready; err != nil {
		l.t.Fatalf("frame size watch in %s: %v", role, err)
	}
	return fs
}

// largestIn is the largest frame received on any interface.
func largestIn(sizes map[string]int) int {
	n := 0
	for k, v := range sizes {
		if strings.HasSuffix(k, " in") {
			n = max(n, v)
		}
	}
	return n
}

// close stops the watch and returns the largest frame per "port dir".
func (fs *frameSizes) close() map[string]int {
	select {
	case <-fs.stop:
	default:
		close(fs.stop)
	}
	<-fs.done
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.largest
}

// --- TCP -----------------------------------------------------------------------

// tcpFlow is one or more TCP streams carrying streamPattern from one
// endpoint to another as fast as they go.
type tcpFlow struct {
	name     string
	start    time.Time
	received atomic.Int64
	stop     chan struct{}
	stopOnce sync.Once
	writers  sync.WaitGroup
	readers  sync.WaitGroup
	conns    []net.Conn

	mu      sync.Mutex
	errs    []error
	longest time.Duration // longest time between two reads of a stream
	stalls  []stall       // read gaps above stallFloor, the first maxStalls
	end     time.Time
}

// stall is a time no byte of a stream arrived.
type stall struct{ from, to time.Time }

const stallFloor, maxStalls = 10 * time.Millisecond, 10000

// longestStall is the longest stall that overlaps [from, to).
func (f *tcpFlow) longestStall(from, to time.Time) time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	var longest time.Duration
	for _, s := range f.stalls {
		if s.to.After(from) && s.from.Before(to) {
			longest = max(longest, s.to.Sub(s.from))
		}
	}
	return longest
}

// stallText is a longest stall for the figures: stalls shorter than
// stallFloor are not recorded, so none reads "under 10ms", not "0s".
func stallText(d time.Duration) string {
	if d == 0 {
		return "under " + stallFloor.String()
	}
	return d.Round(100 * time.Microsecond).String()
}

// receivedBy is how many bytes each flow has received so far.
func receivedBy(flows []*tcpFlow) []int64 {
	out := make([]int64, len(flows))
	for i, f := range flows {
		out[i] = f.received.Load()
	}
	return out
}

// failoverMarks are what flows had received, and when, at each step of
// failoverAndBack. switchedAt is when the data plane moved to up1 as the
// daemon recorded it, and switchedBy what saw the cut: the kernel's time
// where its event came first, else when the daemon wrote the slot; never
// earlier than the switch, possibly later.
type failoverMarks struct {
	cutAt, switchedAt, restoreAt, endAt time.Time
	switchedBy                          string
	atCut, atRestore, atEnd             []int64
}

// failoverAndBack waits a phase, cuts p0 and waits a phase after up1
// took over, restores p0 and waits a phase after up0 is back (failback),
// noting received() at each step.
func (l *lab) failoverAndBack(phase time.Duration, received func() []int64) failoverMarks {
	l.t.Helper()
	var m failoverMarks
	time.Sleep(phase)
	m.atCut, m.cutAt = received(), l.cut("p0")
	m.switchedAt = m.cutAt
	if ev := l.waitActive("up1").LastFailover; ev != nil && ev.Switched.After(m.cutAt) {
		m.switchedAt, m.switchedBy = ev.Switched, ev.Source
	}
	time.Sleep(phase)
	m.atRestore, m.restoreAt = received(), l.restore("p0")
	l.waitActive("up0")
	time.Sleep(phase)
	m.atEnd, m.endAt = received(), time.Now()
	return m
}

// span is a stretch of a test between two events.
type span struct {
	name     string
	from, to time.Time
}

// checkTCPAcross fails the test if a flow stalled a phase or more in any
// span, or received nothing in one, and logs its figures.
func checkTCPAcross(t *testing.T, label string, flows []*tcpFlow, spans []span, at [][]int64, phase time.Duration) {
	t.Helper()
	for i, f := range flows {
		n, d := f.finish(t)
		var stalls []string
		for j, s := range spans {
			stall := f.longestStall(s.from, s.to)
			stalls = append(stalls, fmt.Sprintf("the %s %s", s.name, stallText(stall)))
			if stall >= phase {
				t.Errorf("%s: stalled %v around the %s: as long as a phase", f.name, stall, s.name)
			}
			if at[j+1][i] == at[j][i] {
				t.Errorf("%s: no byte arrived after the %s", f.name, s.name)
			}
		}
		t.Logf("FIGURES %s tcp %s: %.1f MB in %v (%.2f Gbit/s); longest stall around %s", label, f.name, float64(n)/1e6, d.Round(time.Millisecond), gbps(n, d), strings.Join(stalls, ", "))
	}
}

// halt stops the writers once; they end their streams.
func (f *tcpFlow) halt() { f.stopOnce.Do(func() { close(f.stop) }) }

func (f *tcpFlow) fail(err error) {
	f.mu.Lock()
	f.errs = append(f.errs, err)
	f.mu.Unlock()
}

// startTCP connects streams TCP connections from -> to and starts sending;
// it fails the test (with the checksum errors seen meanwhile) if one does
// not connect within dialTimeout.
func (l *lab) startTCP(t *testing.T, from, to endpoint, streams int) *tcpFlow {
	t.Helper()
	f := &tcpFlow{name: fmt.Sprintf("%s→%s ×%d", from, to, streams), stop: make(chan struct{})}
	csum := l.sockSNMPAll()
	var ln *net.TCPListener
	l.in(to.role, func() {
		var err error
		ln, err = net.ListenTCP("tcp4", &net.TCPAddr{IP: to.ip})
		l.check(err)
	})
	defer ln.Close()
	accepted := make(chan net.Conn, streams)
	go func() {
		for range streams {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	var dialed []net.Conn
	err := goIn(l.ns[from.role], func() error {
		for range streams {
			c, err := net.DialTimeout("tcp4", ln.Addr().String(), dialTimeout)
			if err != nil {
				return err
			}
			dialed = append(dialed, c)
		}
		return nil
	})
	if err != nil {
		for _, c := range dialed {
			c.Close()
		}
		t.Fatalf("%s: connect: %v; checksum errors meanwhile: %v", f.name, err, l.csumErrorsSince(csum))
	}
	f.start = time.Now()
	t.Cleanup(func() { // a test that ends early leaves no stream behind
		f.halt()
		for _, c := range f.conns {
			c.Close()
		}
	})
	for i, c := range dialed {
		var rc net.Conn
		select {
		case rc = <-accepted:
		case <-time.After(dialTimeout):
			t.Fatalf("%s: stream %d connected but never accepted", f.name, i)
		}
		f.conns = append(f.conns, c, rc)
		f.writers.Add(1)
		go f.write(c.(*net.TCPConn))
		f.readers.Add(1)
		go f.read(rc)
	}
	return f
}

func (f *tcpFlow) write(c *net.TCPConn) {
	defer f.writers.Done()
	const chunk = 128 << 10
	var off int64
	for {
		select {
		case <-f.stop:
			if err := c.CloseWrite(); err != nil {
				f.fail(fmt.Errorf("close write: %w", err))
			}
			return
		default:
		}
		_ = c.SetWriteDeadline(time.Now().Add(ioTimeout))
		n, err := c.Write(patternAt(off, chunk))
		off += int64(n)
		if err != nil {
			f.fail(fmt.Errorf("write after %d bytes: %w", off, err))
			return
		}
	}
}

func (f *tcpFlow) read(c net.Conn) {
	defer f.readers.Done()
	buf := make([]byte, 256<<10)
	var off int64
	last := time.Now()
	for {
		_ = c.SetReadDeadline(time.Now().Add(ioTimeout))
		n, err := c.Read(buf)
		now := time.Now()
		if n > 0 {
			if !bytes.Equal(buf[:n], patternAt(off, n)) {
				f.fail(fmt.Errorf("stream corrupted in bytes %d..%d", off, off+int64(n)))
				return
			}
			off += int64(n)
			f.received.Add(int64(n))
			f.mu.Lock()
			gap := now.Sub(last)
			f.longest = max(f.longest, gap)
			if gap > stallFloor && len(f.stalls) < maxStalls {
				f.stalls = append(f.stalls, stall{last, now})
			}
			f.mu.Unlock()
			last = now
		}
		if errors.Is(err, io.EOF) {
			f.mu.Lock()
			if now.After(f.end) {
				f.end = now
			}
			f.mu.Unlock()
			return
		}
		if err != nil {
			f.fail(fmt.Errorf("read after %d bytes: %w", off, err))
			return
		}
	}
}

// finish stops the writers, waits (bounded) for every byte to arrive and
// returns the bytes received and over what time; errors (resets, stalls,
// corruption) fail the test.
func (f *tcpFlow) finish(t *testing.T) (int64, time.Duration) {
	t.Helper()
	f.halt()
	done := make(chan struct{})
	go func() { f.writers.Wait(); f.readers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2*ioTimeout + time.Second):
		t.Errorf("%s: streams did not end in %v", f.name, 2*ioTimeout+time.Second)
	}
	for _, c := range f.conns {
		c.Close()
	}
	<-done // closed connections end every blocked call
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, err := range f.errs {
		t.Errorf("%s: %v", f.name, err)
	}
	elapsed := f.end.Sub(f.start)
	if f.end.IsZero() {
		elapsed = time.Since(f.start)
	}
	return f.received.Load(), elapsed
}

func gbps(n int64, d time.Duration) float64 { return float64(n) * 8 / d.Seconds() / 1e9 }

// tcpBulk runs a bulk flow for bulkLength and checks that bytes arrived
// intact, with no checksum error anywhere, and with frames larger than
// the MTU where they enter the switch (inPort, if given) and where the
// receiver gets them: GSO kept end to end. It returns the largest frame
// seen on each interface of H ("vnet0 in", "up0 out"), for a receiver in
// H to check the interface it listens on.
func (l *lab) tcpBulk(t *testing.T, from, to endpoint, streams int, inPort string, mtu int) map[string]int {
	t.Helper()
	csum := l.sockSNMPAll()
	inH, atReceiver := l.watchFrameSizes("H"), l.watchFrameSizes(to.role)
	defer inH.close() // also when startTCP fails the test
	defer atReceiver.close()
	f := l.startTCP(t, from, to, streams)
	retrans := l.sockSNMP(from.role)["TcpRetransSegs"]
	time.Sleep(bulkLength)
	n, d := f.finish(t)
	largestH, largestRx := inH.close(), largestIn(atReceiver.close())
	retrans = l.sockSNMP(from.role)["TcpRetransSegs"] - retrans
	t.Logf("FIGURES tcp %s: %.1f MB in %v = %.2f Gbit/s, %d retransmitted segments, longest read gap %v; largest frames in H %v, received in %s %d",
		f.name, float64(n)/1e6, d.Round(time.Millisecond), gbps(n, d), retrans, f.longest.Round(time.Millisecond), largestH, to.role, largestRx)
	if n == 0 {
		t.Errorf("%s: no byte arrived", f.name)
	}
	if errs := l.csumErrorsSince(csum); len(errs) > 0 {
		t.Errorf("%s: checksum errors: %v", f.name, errs)
	}
	if inPort != "" && largestH[inPort+" in"] <= mtu+14 {
		t.Errorf("%s: largest frame into the switch on %s: %d bytes, none above the MTU (%d + 14): GSO lost on the way in", f.name, inPort, largestH[inPort+" in"], mtu)
	}
	if n > 0 && largestRx <= mtu+14 {
		t.Errorf("%s: largest frame received in %s: %d bytes, none above the MTU (%d + 14): GSO lost on the way", f.name, to.role, largestRx, mtu)
	}
	return largestH
}

// shortConnections opens n connections from -> to, each a 100-byte
// request and a 2,000-byte answer; it stops early after 3 failures.
func (l *lab) shortConnections(t *testing.T, from, to endpoint, n int) {
	t.Helper()
	csum := l.sockSNMPAll()
	var ln *net.TCPListener
	l.in(to.role, func() {
		var err error
		ln, err = net.ListenTCP("tcp4", &net.TCPAddr{IP: to.ip})
		l.check(err)
	})
	defer ln.Close()
	const reqSize, respSize = 100, 2000
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(ioTimeout))
				req := make([]byte, reqSize)
				if _, err := io.ReadFull(c, req); err != nil || !bytes.Equal(req, patternAt(0, reqSize)) {
					return
				}
				_, _ = c.Write(patternAt(reqSize, respSize))
			}()
		}
	}()
	start := time.Now()
	var failures []string
	ok := 0
	_ = goIn(l.ns[from.role], func() error {
		resp := make([]byte, respSize)
		for i := 0; i < n && len(failures) < 3; i++ {
			err := func() error {
				c, err := net.DialTimeout("tcp4", ln.Addr().String(), dialTimeout)
				if err != nil {
					return err
				}
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(ioTimeout))
				if _, err := c.Write(patternAt(0, reqSize)); err != nil {
					return err
				}
				if _, err := io.ReadFull(c, resp); err != nil {
					return err
				}
				if !bytes.Equal(resp, patternAt(reqSize, respSize)) {
					return errors.New("answer corrupted")
				}
				return nil
			}()
			if err != nil {
				failures = append(failures, fmt.Sprintf("#%d: %v", i, err))
				continue
			}
			ok++
		}
		return nil
	})
	d := time.Since(start)
	t.Logf("FIGURES tcp short connections %s→%s: %d of %d in %v (%.0f/s)", from, to, ok, n, d.Round(time.Millisecond), float64(ok)/d.Seconds())
	if ok != n {
		t.Errorf("short connections %s→%s: %d of %d answered; failures: %v; checksum errors: %v", from, to, ok, n, failures, l.csumErrorsSince(csum))
	} else if errs := l.csumErrorsSince(csum); len(errs) > 0 {
		t.Errorf("short connections %s→%s: checksum errors: %v", from, to, errs)
	}
}

// --- UDP -----------------------------------------------------------------------

// udpBurst sends n datagrams of size bytes from -> to (a sequence number
// and streamPattern) and requires at least 99% of them intact and no
// checksum error anywhere.
func (l *lab) udpBurst(t *testing.T, from, to endpoint, n, size int) {
	t.Helper()
	csum := l.sockSNMPAll()
	var rx, tx *net.UDPConn
	l.in(to.role, func() {
		var err error
		rx, err = net.ListenUDP("udp4", &net.UDPAddr{IP: to.ip})
		l.check(err)
	})
	defer rx.Close()
	if raw, err := rx.SyscallConn(); err == nil {
		_ = raw.Control(func(fd uintptr) { _ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20) })
	}
	l.in(from.role, func() {
		var err error
		tx, err = net.DialUDP("udp4", &net.UDPAddr{IP: from.ip}, rx.LocalAddr().(*net.UDPAddr))
		l.check(err)
	})
	defer tx.Close()

	got := make([]bool, n)
	var intact, corrupted int
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, size+1)
		for intact+corrupted < n {
			_ = rx.SetReadDeadline(time.Now().Add(time.Second)) // 1 s without a datagram: the rest is lost
			m, err := rx.Read(buf)
			if err != nil {
				return
			}
			seq := int(uint32(buf[0])<<24 | uint32(buf[1])<<16 | uint32(buf[2])<<8 | uint32(buf[3]))
			if m != size || seq >= n || !bytes.Equal(buf[4:m], patternAt(int64(seq), size-4)) {
				corrupted++
				continue
			}
			if !got[seq] {
				got[seq] = true
				intact++
			}
		}
	}()
	msg := make([]byte, size)
	sendErrs := 0
	for seq := range n {
		msg[0], msg[1], msg[2], msg[3] = byte(seq>>24), byte(seq>>16), byte(seq>>8), byte(seq)
		copy(msg[4:], patternAt(int64(seq), size-4))
		if _, err := tx.Write(msg); err != nil {
			sendErrs++ // e.g. ECONNREFUSED from an earlier ICMP; counted as lost
		}
		if seq%50 == 49 {
			time.Sleep(time.Millisecond) // paced: the receiver's buffer, not the switch, would drop a burst
		}
	}
	<-done
	snmp := l.sockSNMP(to.role)
	t.Logf("FIGURES udp %s→%s: %d of %d datagrams of %d bytes intact, %d corrupted, %d send errors; receiver Udp RcvbufErrors %d",
		from, to, intact, n, size, corrupted, sendErrs, snmp["UdpRcvbufErrors"]-csum[to.role]["UdpRcvbufErrors"])
	if errs := l.csumErrorsSince(csum); len(errs) > 0 {
		t.Errorf("udp %s→%s: checksum errors: %v", from, to, errs)
	}
	if intact < n-n/100 || corrupted > 0 {
		t.Errorf("udp %s→%s: %d of %d datagrams intact (want ≥ 99%%), %d corrupted", from, to, intact, n, corrupted)
	}
}

// --- the suite -----------------------------------------------------------------

// socketSuite is the traffic of TestSocketTraffic: TCP bulk with 1 and 4
// streams both ways between G0 and upstream and from G0 to G1, 200 short
// connections, UDP both ways. The caller has set up the switch.
func (l *lab) socketSuite(t *testing.T) {
	g0, g1 := guestHost(0), guestHost(1)
	cases := []struct {
		from, to endpoint
		inPort   string // the switch's port where the sender's frames enter
	}{
		{g0, upstreamHost, "vnet0"},
		{upstreamHost, g0, ""}, // enters through the active uplink: checked where known
		{g0, g1, "vnet0"},
	}
	for _, streams := range []int{1, 4} {
		for _, c := range cases {
			t.Run(fmt.Sprintf("tcp-%s-%s-x%d", c.from, c.to, streams), func(t *testing.T) {
				in := c.inPort
				if c.from.role == upstreamHost.role {
					in = l.activeUplinkPort()
				}
				l.tcpBulk(t, c.from, c.to, streams, in, 1500)
			})
		}
	}
	t.Run("tcp-short-connections", func(t *testing.T) { l.shortConnections(t, g0, upstreamHost, 200) })
	for _, c := range [][2]endpoint{{g0, upstreamHost}, {upstreamHost, g0}, {g0, g1}, {g1, g0}} {
		t.Run(fmt.Sprintf("udp-%s-%s", c[0], c[1]), func(t *testing.T) { l.udpBurst(t, c[0], c[1], 1000, 1400) })
	}
}

// activeUplinkPort is where upstream traffic enters H: uplinkd's active
// uplink, or up0 when a Linux bridge stands in for uplinkd.
func (l *lab) activeUplinkPort() string {
	if l.d.cmd == nil {
		return "up0"
	}
	return l.status().Active
}

// TestSocketTraffic: TCP and UDP from sockets, with the veths' default
// offloads, through uplinkd between guests and the upstream host and
// between two guests; uplinkd turns no offload off.
func TestSocketTraffic(t *testing.T) {
	l := newLab(t, labOptions{failback: true})
	before := l.requireDefaultOffloads()
	l.startDaemon()
	l.waitActive("up0")
	l.checkOffloadsKept(before)
	l.socketSuite(t)
	l.checkOffloadsKept(before)
}

// bridgeInsteadOfUplinkd puts the guest ports and up0 on a Linux bridge in
// H, in place of uplinkd: the control that shows the traffic tests pass
// where the switch is known to carry sockets.
func (l *lab) bridgeInsteadOfUplinkd() {
	l.t.Helper()
	l.in("H", func() {
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "brh"}}
		l.check(netlink.LinkAdd(br))
		links, err := nldump.Retry(netlink.LinkList)
		l.check(err)
		for _, link := range links {
			if n := link.Attrs().Name; n == "up0" || strings.HasPrefix(n, "vnet") {
				l.check(netlink.LinkSetMaster(link, br))
			}
		}
		l.setUp("brh")
	})
	// A bridge made this moment may not forward the first frames yet:
	// the suite starts once a guest reaches the upstream host through it.
	ready := waitFor(10*time.Second, func() bool {
		return exec.Command("ip", "netns", "exec", l.nsName(guestRole(0)),
			"ping", "-c", "1", "-W", "1", upstreamHost.ip.String()).Run() == nil
	})
	if !ready {
		l.t.Fatal("the control bridge does not carry a ping from G0 to the upstream host within 10 s")
	}
}

// TestSocketTrafficThroughBridgeControl runs socketSuite through a Linux
// bridge in place of uplinkd. It is the tests' own control: a failure
// here is in the test or the machine, not in uplinkd.
func TestSocketTrafficThroughBridgeControl(t *testing.T) {
	l := newLab(t, labOptions{})
	before := l.requireDefaultOffloads()
	l.bridgeInsteadOfUplinkd()
	l.checkOffloadsKept(before)
	l.socketSuite(t)
	l.checkOffloadsKept(before)
}

// setMTU sets the MTU of the named interfaces in role's namespace.
func (l *lab) setMTU(role string, mtu int, names ...string) {
	l.t.Helper()
	l.in(role, func() {
		for _, n := range names {
			link, err := netlink.LinkByName(n)
			l.check(err)
			if err := netlink.LinkSetMTU(link, mtu); err != nil {
				l.t.Fatalf("set MTU %d on %s in %s: %v", mtu, n, role, err)
			}
		}
	})
}

func (l *lab) mtuOf(role, name string) (mtu int) {
	l.in(role, func() {
		link, err := netlink.LinkByName(name)
		l.check(err)
		mtu = link.Attrs().MTU
	})
	return mtu
}

// TestSocketTrafficJumbo: a guest with MTU 9000 (its eth0, its port and
// the path upstream) carries TCP and 8,000-byte UDP datagrams (sent
// unfragmented) both ways, with GSO frames above 9,000 bytes.
func TestSocketTrafficJumbo(t *testing.T) {
	const mtu = 9000
	l := newLab(t, labOptions{failback: true})
	l.setMTU("G0", mtu, "eth0")
	l.setMTU("H", mtu, "vnet0", "up0", "up1")
	l.setMTU("U", mtu, "p0", "p1", "br0")
	before := l.requireDefaultOffloads()
	l.startDaemon()
	l.waitActive("up0")
	l.checkOffloadsKept(before)
	for _, p := range [][2]string{{"G0", "eth0"}, {"H", "vnet0"}, {"H", "up0"}, {"U", "br0"}} {
		if got := l.mtuOf(p[0], p[1]); got != mtu {
			t.Errorf("MTU of %s in %s is %d after uplinkd attached, want %d", p[1], p[0], got, mtu)
		}
	}
	g0 := guestHost(0)
	t.Run("tcp-G0-U", func(t *testing.T) { l.tcpBulk(t, g0, upstreamHost, 1, "vnet0", mtu) })
	t.Run("tcp-U-G0", func(t *testing.T) { l.tcpBulk(t, upstreamHost, g0, 1, l.activeUplinkPort(), mtu) })
	frags := func() int64 { return l.sockSNMP("G0")["IpFragCreates"] + l.sockSNMP("U")["IpFragCreates"] }
	before8000 := frags()
	t.Run("udp-G0-U", func(t *testing.T) { l.udpBurst(t, g0, upstreamHost, 200, 8000) })
	t.Run("udp-U-G0", func(t *testing.T) { l.udpBurst(t, upstreamHost, g0, 200, 8000) })
	if n := frags() - before8000; n != 0 {
		t.Errorf("the 8,000-byte datagrams left in %d fragments: the path is not 9000 bytes", n)
	}
}

// TestSocketTrafficBalance: in balance mode every guest's TCP and UDP
// reach the upstream host and back through whichever uplink carries it.
func TestSocketTrafficBalance(t *testing.T) {
	const guests = 4
	l := newLab(t, labOptions{failback: true, guests: guests, extra: "    mode: balance\n"})
	before := l.requireDefaultOffloads()
	l.startDaemon()
	l.waitActive("up0")
	l.checkOffloadsKept(before)
	for i := range guests {
		g := guestHost(i)
		t.Run(fmt.Sprintf("tcp-%s-U", g), func(t *testing.T) { l.tcpBulk(t, g, upstreamHost, 1, fmt.Sprintf("vnet%d", i), 1500) })
		t.Run(fmt.Sprintf("tcp-U-%s", g), func(t *testing.T) { l.tcpBulk(t, upstreamHost, g, 1, "", 1500) })
		t.Run(fmt.Sprintf("udp-%s-U", g), func(t *testing.T) { l.udpBurst(t, g, upstreamHost, 1000, 1400) })
		t.Run(fmt.Sprintf("udp-U-%s", g), func(t *testing.T) { l.udpBurst(t, upstreamHost, g, 1000, 1400) })
	}
	t.Run("tcp-short-connections", func(t *testing.T) { l.shortConnections(t, guestHost(1), upstreamHost, 200) })
	l.checkOffloadsKept(before)
}
