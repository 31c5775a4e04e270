package e2e

// Host ports: the host's own traffic through the switch. The lab's host
// namespace H, where uplinkd runs, gets a host port with an address in
// the upstream's subnet; its own ping and TCP connections must ride out
// a failover, a failback and a kill -9 of uplinkd like a guest's.

import (
	"bytes"
	"encoding/binary"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/uplinkd/uplinkd/pkg/config"
)

// hostPortIP is the host's own address, on its host port mgmt0.
var hostPortIP = net.IP{10, 77, 0, 50}

// pinger sends ICMP echo requests from one of the lab's namespaces every
// 10 ms and notes when each reply came, from a raw socket of its own:
// the 6.1 test VM's busybox ping has no timestamps (-D).
type pinger struct {
	fd       int
	id       uint16
	mu       sync.Mutex
	at       []time.Time
	sent     chan struct{} // closed after the last request and a second for its reply
	received chan struct{} // closed when the receiver has stopped
}

func (l *lab) ping(role string, to net.IP, count int) *pinger {
	l.t.Helper()
	p := &pinger{fd: -1, id: uint16(os.Getpid()), sent: make(chan struct{}), received: make(chan struct{})}
	l.in(role, func() { // a socket stays in the namespace it was made in
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMP)
		l.check(err)
		p.fd = fd
	})
	tv := unix.NsecToTimeval(int64(20 * time.Millisecond))
	l.check(unix.SetsockoptTimeval(p.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv))
	dst := &unix.SockaddrInet4{}
	copy(dst.Addr[:], to.To4())
	go func() {
		defer close(p.received)
		buf := make([]byte, 1500)
		for {
			n, _, err := unix.Recvfrom(p.fd, buf, 0)
			now := time.Now()
			if err != nil {
				select {
				case <-p.sent:
					return
				default:
					continue // the receive timeout: look at sent again
				}
			}
			if n < 20 {
				continue
			}
			ihl := int(buf[0]&0x0f) * 4
			if n < ihl+8 || buf[ihl] != 0 /* echo reply */ || binary.BigEndian.Uint16(buf[ihl+4:]) != p.id {
				continue
			}
			p.mu.Lock()
			p.at = append(p.at, now)
			p.mu.Unlock()
		}
	}()
	go func() {
		defer close(p.sent)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for seq := 0; seq < count; seq++ {
			<-tick.C
			msg := make([]byte, 8+16)
			msg[0] = 8 // echo request
			binary.BigEndian.PutUint16(msg[4:], p.id)
			binary.BigEndian.PutUint16(msg[6:], uint16(seq))
			binary.BigEndian.PutUint16(msg[2:], icmpChecksum(msg))
			_ = unix.Sendto(p.fd, msg, 0, dst)
		}
		time.Sleep(time.Second) // the last replies
	}()
	l.t.Cleanup(func() { <-p.received; unix.Close(p.fd) })
	return p
}

// icmpChecksum is the Internet checksum of an ICMP message whose checksum
// field is zero.
func icmpChecksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// replies waits for the pinger to end and returns when each reply came.
func (p *pinger) replies(t *testing.T) []time.Time {
	t.Helper()
	<-p.received
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]time.Time(nil), p.at...)
}

// longestGap is the longest time without a reply within [from, to), and
// whether a reply came in it at all.
func longestGap(at []time.Time, from, to time.Time) (time.Duration, bool) {
	var longest time.Duration
	last, any := from, false
	for _, a := range at {
		if a.Before(from) || !a.Before(to) {
			continue
		}
		longest, last, any = max(longest, a.Sub(last)), a, true
	}
	return max(longest, to.Sub(last)), any
}

// TestHostPortAcrossFailoverAndRestart: uplinkd creates the host port
// mgmt0 (with its derived MAC) in its own namespace; the operator gives it
// an address; the host's ping and TCP streams each way to the upstream
// host go on, without reconnecting, across a failover, a failback and a
// kill -9 and restart of uplinkd, which adopts the pair it left.
func TestHostPortAcrossFailoverAndRestart(t *testing.T) {
	l := newLab(t, labOptions{failback: true, extra: "    host_ports: [{name: mgmt0}]\n"})
	l.startDaemon()
	l.waitActive("up0")
	var index int
	l.in("H", func() {
		host, err := netlink.LinkByName("mgmt0")
		l.check(err)
		sw, err := netlink.LinkByName("mgmt0-sw")
		l.check(err)
		if want := config.DeriveMAC("lab", "mgmt0"); !bytes.Equal(host.Attrs().HardwareAddr, want) {
			t.Errorf("mgmt0 has MAC %s, want the derived %s", host.Attrs().HardwareAddr, want)
		}
		if host.Attrs().RawFlags&syscall.IFF_UP == 0 || sw.Attrs().RawFlags&syscall.IFF_UP == 0 {
			t.Errorf("host port not up: mgmt0 %v, mgmt0-sw %v", host.Attrs().Flags, sw.Attrs().Flags)
		}
		index = host.Attrs().Index
		l.addr("mgmt0", hostPortIP.String()+"/24")
	})
	host := endpoint{"H", hostPortIP}
	csum := l.sockSNMPAll()
	flows := []*tcpFlow{l.startTCP(t, host, upstreamHost, 1), l.startTCP(t, upstreamHost, host, 1)}
	received := func() []int64 { return receivedBy(flows) }
	const phase = time.Second
	pings := l.ping("H", net.IP{10, 77, 0, 1}, 500) // 5 s at 10 ms: the failover and the failback
	time.Sleep(phase)
	atCut, cutAt := received(), l.cut("p0")
	l.waitActive("up1")
	time.Sleep(phase)
	atRestore, restoreAt := received(), l.restore("p0")
	l.waitActive("up0")
	time.Sleep(phase)

	atKill, killAt := received(), time.Now()
	l.stopDaemon(syscall.SIGKILL)
	l.in("H", func() {
		host, err := netlink.LinkByName("mgmt0")
		if err != nil {
			t.Errorf("after kill -9: %v", err)
		} else if host.Attrs().Index != index {
			t.Errorf("after kill -9: mgmt0 has index %d, want %d (re-created?)", host.Attrs().Index, index)
		}
	})
	time.Sleep(phase / 2)
	l.startDaemon()
	l.waitActive("up0")
	time.Sleep(phase)
	atEnd, endAt := received(), time.Now()

	replies := pings.replies(t)
	for _, span := range []struct {
		name     string
		from, to time.Time
	}{{"failover", cutAt, restoreAt}, {"failback", restoreAt, killAt}} {
		gap, any := longestGap(replies, span.from, span.to)
		t.Logf("FIGURES host port ping around the %s: longest gap %v", span.name, gap.Round(time.Millisecond))
		if !any || gap >= phase {
			t.Errorf("host's ping around the %s: longest gap %v, a reply in it %t (%d replies in all)", span.name, gap, any, len(replies))
		}
	}
	t.Logf("FIGURES host port ping: %d of 500 replies", len(replies))
	for i, f := range flows {
		n, d := f.finish(t)
		stalls := []time.Duration{f.longestStall(cutAt, restoreAt), f.longestStall(restoreAt, killAt), f.longestStall(killAt, endAt)}
		t.Logf("FIGURES host port tcp %s: %.1f MB in %v; longest stall around the failover %s, the failback %s, the restart %s",
			f.name, float64(n)/1e6, d.Round(time.Millisecond), stallText(stalls[0]), stallText(stalls[1]), stallText(stalls[2]))
		if slices.Max(stalls) >= phase {
			t.Errorf("%s: stalled %v (failover, failback, restart): as long as a phase", f.name, stalls)
		}
		for _, step := range []struct {
			name          string
			before, after int64
		}{{"the failover", atCut[i], atRestore[i]}, {"the failback", atRestore[i], atKill[i]}, {"the restart", atKill[i], atEnd[i]}} {
			if step.after == step.before {
				t.Errorf("%s: no byte arrived after %s", f.name, step.name)
			}
		}
	}
	if errs := l.csumErrorsSince(csum); len(errs) > 0 {
		t.Errorf("checksum errors: %v", errs)
	}
	logs := l.d.logs.String()
	if !strings.Contains(logs, "host port created") || !strings.Contains(logs, "host port adopted") {
		t.Errorf("want the pair created by the first daemon and adopted by the second:\n%s", logs)
	}
}
