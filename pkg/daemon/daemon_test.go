package daemon

import (
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/pkg/config"
	"github.com/uplinkd/uplinkd/pkg/failover"
)

// carrier_poll_interval: 0 turns the poll off: nothing is polled.
func TestPolledUplinks(t *testing.T) {
	pol, err := failover.New(failover.Config{Name: "g", Uplinks: []failover.UplinkConfig{{Name: "eth1"}, {Name: "eth2"}}}, failover.NoActive)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pol.Start(map[string]bool{"eth1": true, "eth2": true}, time.Now()); err != nil {
		t.Fatal(err)
	}
	g := &group{policy: pol, uplinks: [failover.MaxUplinks]*port{{name: "eth1"}, {name: "eth2"}}}
	for _, tc := range []struct {
		interval time.Duration
		want     []string
	}{{time.Millisecond, []string{"eth1"}}, {0, nil}} {
		d := &Daemon{cfg: &config.Config{CarrierPollInterval: tc.interval}, groups: []*group{g}}
		got := d.activeUplinkNames()
		if len(got) != len(tc.want) || (len(got) > 0 && got[0] != tc.want[0]) {
			t.Errorf("interval %v: polled %v, want %v", tc.interval, got, tc.want)
		}
	}
}
