package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/pkg/control"
)

// scrape reads uplinkd's metrics from inside the host namespace (the
// connection is made on a thread in it) into name{labels} -> value.
func (l *lab) scrape(addr string) map[string]float64 {
	l.t.Helper()
	out := map[string]float64{}
	l.in("H", func() {
		conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
		l.check(err)
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		_, err = conn.Write([]byte("GET /metrics HTTP/1.0\r\nHost: uplinkd\r\n\r\n"))
		l.check(err)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		l.check(err)
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			l.t.Fatalf("GET /metrics: %s", resp.Status)
		}
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			line := sc.Text()
			if line == "" || line[0] == '#' {
				continue
			}
			i := strings.LastIndexByte(line, ' ')
			if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
				out[line[:i]] = v
			}
		}
	})
	return out
}

// TestMetricsMatchTraffic: the Prometheus endpoint reports the frames the guest sent and the
// uplink carried as counted at the receiver, the active uplink, and a
// failover with its reason, latency and announcements; uplinkctl stats
// shows the same counters.
func TestMetricsMatchTraffic(t *testing.T) {
	l := newLab(t, labOptions{failback: true})
	l.disableIPv6()
	cfg, err := os.ReadFile(l.d.config)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(l.d.config, append([]byte("metrics_listen: \"9477\"\n"), cfg...), 0o600); err != nil {
		t.Fatal(err)
	}
	l.in("H", func() { l.setUp("lo") }) // a new namespace's loopback is down
	l.startDaemon()
	l.waitActive("up0")
	const addr = "127.0.0.1:9477"
	tx := `uplinkd_port_tx_packets_total{group="lab",port="up0",role="uplink"}`
	rx := `uplinkd_port_rx_packets_total{group="lab",port="vnet0",role="guest"}`
	before := l.scrape(addr)
	if before[`uplinkd_group_active_uplink{group="lab",uplink="up0"}`] != 1 || before[`uplinkd_uplink_carrier{group="lab",uplink="up1"}`] != 1 {
		t.Errorf("states: active up0 %v, carrier up1 %v", before[`uplinkd_group_active_uplink{group="lab",uplink="up0"}`], before[`uplinkd_uplink_carrier{group="lab",uplink="up1"}`])
	}
	p0 := l.receive("U", "p0")
	testbed := l.testbedDrops()
	s := l.send("G0", "eth0", l.macs["br0"], l.macs["G0"], streamUp, 5000, 400*time.Millisecond)
	s.wait()
	time.Sleep(100 * time.Millisecond)
	p0.close()
	got := uint32(len(p0.stream(streamUp)))
	after := l.scrape(addr)
	dRx, dTx := after[rx]-before[rx], after[tx]-before[tx]
	t.Logf("FIGURES metrics: guest sent %d, receiver behind up0 counted %d; metrics: vnet0 rx +%.0f, up0 tx +%.0f", s.sent, got, dRx, dTx)
	// The guest's own stack may add a frame or two (ARP) besides the
	// stream; up0 counts what it handed on, full testbed rings included.
	lost := int(s.sent) - int(got)
	if lost < 0 || testbed.unexplained(lost, p0) != 0 || dRx < float64(s.sent) || dRx > float64(s.sent)+3 || dTx < float64(got) || dTx > float64(got)+float64(lost)+3 {
		t.Errorf("metrics do not match the traffic: sent %d, received %d, vnet0 rx +%.0f, up0 tx +%.0f", s.sent, got, dRx, dTx)
	}

	// Follow the timeline across the failover.
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	follow := exec.CommandContext(ctx, l.d.bin+"/uplinkctl", "-socket", l.d.socket, "events", "--follow")
	followed := &lockedBuffer{}
	follow.Stdout, follow.Stderr = followed, followed
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	l.cut("p0")
	l.waitActive("up1")
	var m map[string]float64
	ok := waitFor(3*time.Second, func() bool {
		m = l.scrape(addr)
		return m[`uplinkd_failovers_total{group="lab",reason="carrier lost (in kernel)"}`]+m[`uplinkd_failovers_total{group="lab",reason="carrier lost"}`] >= 1 &&
			m[`uplinkd_announcements_sent_total{group="lab"}`] > 0 && m[`uplinkd_failover_switch_to_announce_seconds_count{group="lab"}`] >= 1
	})
	if !ok {
		var lines []string
		for k, v := range m {
			if strings.HasPrefix(k, "uplinkd_failover") || strings.HasPrefix(k, "uplinkd_announce") {
				lines = append(lines, k+" "+strconv.FormatFloat(v, 'g', -1, 64))
			}
		}
		t.Errorf("no failover, latency or announcements in the metrics:\n%s", strings.Join(lines, "\n"))
	}
	if m[`uplinkd_group_active_uplink{group="lab",uplink="up1"}`] != 1 {
		t.Error("the active uplink gauge did not follow the failover")
	}
	// The follower printed the switch at once and its announcement when
	// it ended; the JSON timeline has every timestamp.
	if !waitFor(3*time.Second, func() bool { return strings.Contains(followed.String(), "announced") }) {
		t.Errorf("uplinkctl events --follow printed:\n%s", followed.String())
	}
	cancel()
	_ = follow.Wait()
	if !strings.Contains(followed.String(), "lab: up0 -> up1 (carrier lost") {
		t.Errorf("no switch line from --follow:\n%s", followed.String())
	}
	out, err := execCtl(l, "events", "--json")
	if err != nil {
		t.Fatalf("events --json: %v\n%s", err, out)
	}
	var ev control.FailoverEvent
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var e control.FailoverEvent
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("events --json line %q: %v", line, err)
		}
		if e.From == "up0" && e.To == "up1" {
			ev = e
		}
	}
	if ev.Seq == 0 || ev.Detected.IsZero() || ev.Switched.Before(ev.Detected) || ev.AnnounceFirst.Before(ev.Switched) || ev.AnnounceLast.Before(ev.AnnounceFirst) || ev.AnnounceFrames == 0 {
		t.Errorf("the failover's event lacks timestamps: %+v", ev)
	}
	if out, err := execCtl(l, "stats"); err != nil || !strings.Contains(out, "failovers 1 (carrier lost") || !strings.Contains(out, "announcement frames sent") {
		t.Errorf("uplinkctl stats (%v):\n%s", err, out)
	}
}

// lockedBuffer collects a child's output while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
