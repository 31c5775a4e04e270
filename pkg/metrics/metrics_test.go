package metrics

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/pkg/control"
)

func TestScrape(t *testing.T) {
	m := New(func() Snapshot {
		return Snapshot{
			Ports: []control.PortCounters{{Port: "vnet0", Group: "lab", Role: "guest", RxPackets: 7, RxBytes: 420, Drops: map[string]uint64{"vlan": 2}}},
			Groups: []Group{{Name: "lab", Uplinks: []Uplink{
				{Name: "up0", Active: true, Carrier: true, Usable: true, Probe: "ok", Admin: "usable"},
				{Name: "up1", Probe: "failed", Admin: "standby"},
			}, FailoversByReason: map[string]int{"carrier lost": 1}, AnnounceFrames: 9, AnnounceSuppressed: 1}},
		}
	})
	t0 := time.Unix(100, 0)
	m.Switched("lab", "kernel/carrier-at-redirect", t0, t0.Add(30*time.Microsecond))
	m.Announced("lab", t0, t0.Add(2*time.Millisecond))
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`uplinkd_port_rx_packets_total{group="lab",port="vnet0",role="guest"} 7`,
		`uplinkd_port_rx_bytes_total{group="lab",port="vnet0",role="guest"} 420`,
		`uplinkd_port_drops_total{group="lab",port="vnet0",reason="vlan",role="guest"} 2`,
		`uplinkd_group_active_uplink{group="lab",uplink="up0"} 1`,
		`uplinkd_group_active_uplink{group="lab",uplink="up1"} 0`,
		`uplinkd_uplink_carrier{group="lab",uplink="up1"} 0`,
		`uplinkd_uplink_probe_state{group="lab",state="failed",uplink="up1"} 1`,
		`uplinkd_uplink_admin_state{group="lab",state="standby",uplink="up1"} 1`,
		`uplinkd_failovers_total{group="lab",reason="carrier lost"} 1`,
		`uplinkd_failover_detect_to_switch_seconds_bucket{group="lab",source="kernel/carrier-at-redirect",le="4e-05"} 1`,
		`uplinkd_failover_switch_to_announce_seconds_count{group="lab"} 1`,
		`uplinkd_announcements_sent_total{group="lab"} 9`,
		`uplinkd_announcements_suppressed_total{group="lab"} 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("scrape lacks %s", want)
		}
	}
	if t.Failed() {
		t.Logf("scrape:\n%s", body)
	}
}
