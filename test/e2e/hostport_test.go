package e2e

// Host ports: the host's own traffic through the switch. The lab's host
// namespace H, where uplinkd runs, gets a host port with an address in
// the upstream's subnet; its own ping and TCP connections must ride out
// a failover, a failback and a kill -9 of uplinkd like a guest's.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/uplinkd/uplinkd/pkg/config"
)

// hostPortIP is the host's own address, on its host port mgmt0.
var hostPortIP = net.IP{10, 77, 0, 50}

// pinger is ping from one of the lab's namespaces, every 10 ms.
type pinger struct {
	cmd  *exec.Cmd
	out  bytes.Buffer
	done chan struct{}
}

func (l *lab) ping(role string, to net.IP, count int) *pinger {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(count)*20*time.Millisecond+10*time.Second)
	p := &pinger{done: make(chan struct{})}
	p.cmd = exec.CommandContext(ctx, "ip", "netns", "exec", l.nsName(role), "ping", "-D", "-n", "-i", "0.01", "-W", "1",
		"-c", strconv.Itoa(count), to.String())
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	l.check(p.cmd.Start())
	go func() { _ = p.cmd.Wait(); cancel(); close(p.done) }()
	l.t.Cleanup(func() { _ = p.cmd.Process.Kill(); <-p.done })
	return p
}

var pingReply = regexp.MustCompile(`^\[(\d+)\.(\d+)\] \d+ bytes from .*icmp_seq=(\d+)`)

// replies waits for ping to end and returns when each reply came.
func (p *pinger) replies(t *testing.T) []time.Time {
	t.Helper()
	<-p.done
	var at []time.Time
	sc := bufio.NewScanner(bytes.NewReader(p.out.Bytes()))
	for sc.Scan() {
		m := pingReply.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		sec, _ := strconv.ParseInt(m[1], 10, 64)
		frac, _ := strconv.ParseFloat("0."+m[2], 64)
		at = append(at, time.Unix(sec, int64(frac*1e9)))
	}
	return at
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
	flows := []*tcpFlow{l.startTCP(t, host, upstreamHost, 1), l.startTCP(t, upstreamHost, host, 1)}
	received := func() []int64 {
		var out []int64
		for _, f := range flows {
			out = append(out, f.received.Load())
		}
		return out
	}
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
			t.Errorf("host's ping around the %s: longest gap %v, a reply in it %t\n%s", span.name, gap, any, lastLines(pings.out.String(), 5))
		}
	}
	t.Logf("FIGURES host port ping: %d of 500 replies", len(replies))
	for i, f := range flows {
		n, d := f.finish(t)
		t.Logf("FIGURES host port tcp %s: %.1f MB in %v; stall around the failover %v, the failback %v, the restart %v",
			f.name, float64(n)/1e6, d.Round(time.Millisecond), f.longestStall(cutAt, restoreAt).Round(100*time.Microsecond),
			f.longestStall(restoreAt, killAt).Round(100*time.Microsecond), f.longestStall(killAt, endAt).Round(100*time.Microsecond))
		for _, step := range []struct {
			name          string
			before, after int64
		}{{"the failover", atCut[i], atRestore[i]}, {"the failback", atRestore[i], atKill[i]}, {"the restart", atKill[i], atEnd[i]}} {
			if step.after == step.before {
				t.Errorf("%s: no byte arrived after %s", f.name, step.name)
			}
		}
	}
	logs := l.d.logs.String()
	if !strings.Contains(logs, "host port created") || !strings.Contains(logs, "host port adopted") {
		t.Errorf("want the pair created by the first daemon and adopted by the second:\n%s", logs)
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n") + fmt.Sprintf(" (%d lines)", len(lines))
}
