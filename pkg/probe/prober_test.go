package probe

import (
	"fmt"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/uplinkd/uplinkd/pkg/failover"
	"github.com/uplinkd/uplinkd/test/testenv"
)

// inFreshNetns locks the test to its thread inside a new namespace (name
// prefix "ulkprb"), deleted when the test ends. Everything that touches
// interfaces must run on this goroutine (no t.Run).
func inFreshNetns(t *testing.T) {
	t.Helper()
	testenv.RequireRoot(t, "needs root: creates a network namespace and raw sockets")
	testenv.EnterNetns(t, testenv.UniqueName("ulkprb"))
}

// TestProberFollowsThePath: a target that answers keeps the uplink ok;
// when it stops (its address removed, the carrier untouched) the uplink
// fails after the missed intervals; when it answers again it is ok at
// once. Once over ARP, once over neighbour discovery, by the real kernel.
func TestProberFollowsThePath(t *testing.T) {
	inFreshNetns(t)
	testenv.AddVeth(t, nil, testenv.Veth{Name: "ulkup", Peer: "ulkgw"})
	testenv.WaitUp(t, nil, "ulkup") // both ends up: carrier within a few ms
	up, err := netlink.LinkByName("ulkup")
	if err != nil {
		t.Fatal(err)
	}
	gw, err := netlink.LinkByName("ulkgw")
	if err != nil {
		t.Fatal(err)
	}
	// No subtests: they run on other threads, outside this namespace.
	for _, target := range []string{"10.99.0.1", "2001:db8::1"} {
		func() {
			bits := 24
			if netip.MustParseAddr(target).Is6() {
				bits = 64
			}
			addr, _ := netlink.ParseAddr(fmt.Sprintf("%s/%d", target, bits))
			addr.Flags = 0x02 // IFA_F_NODAD: usable at once
			if err := netlink.AddrAdd(gw, addr); err != nil {
				t.Fatal(err)
			}
			changes := make(chan failover.ProbeState, 16)
			const interval, missed = 20 * time.Millisecond, 3
			p, err := New(Config{Targets: []netip.Addr{netip.MustParseAddr(target)}, Interval: interval, Missed: missed},
				func(name string, st failover.ProbeState) {
					if name == "ulkup" {
						changes <- st
					}
				}, testLog(t))
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			p.Set([]Uplink{{Name: "ulkup", Ifindex: up.Attrs().Index, MAC: up.Attrs().HardwareAddr}})

			select {
			case st := <-changes:
				t.Fatalf("answered target: state went %v", st)
			case <-time.After(10 * interval):
			}
			removed := time.Now()
			if err := netlink.AddrDel(gw, addr); err != nil {
				t.Fatal(err)
			}
			select {
			case st := <-changes:
				took := time.Since(removed)
				if st != failover.ProbeFailed || took < (missed-1)*interval {
					t.Errorf("after the target went: %v after %v", st, took)
				}
				t.Logf("path failure seen %v after the target went (%d x %v)", took, missed, interval)
			case <-time.After(50 * interval):
				t.Fatal("a silent target was never noticed")
			}
			if err := netlink.AddrAdd(gw, addr); err != nil {
				t.Fatal(err)
			}
			select {
			case st := <-changes:
				if st != failover.ProbeOK {
					t.Errorf("after the target came back: %v", st)
				}
			case <-time.After(50 * interval):
				t.Fatal("the target's return was never noticed")
			}
			_ = netlink.AddrDel(gw, addr)
		}()
	}
}

func TestNewRefusesNothingToProbe(t *testing.T) {
	if _, err := New(Config{Interval: time.Second}, nil, testLog(t)); err == nil {
		t.Error("a prober without targets")
	}
}

func testLog(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) { w.t.Log(string(b)); return len(b), nil }
