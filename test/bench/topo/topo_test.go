package topo

import (
	"os"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/uplinkd/uplinkd/test/testenv"
)

func TestBuildAndDestroy(t *testing.T) {
	testenv.RequireRoot(t, "needs root")
	for _, kind := range []Kind{Veth, Tap} {
		tp, err := Build(Options{Prefix: "ulktp", Uplinks: 3, Kind: kind})
		if err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		if len(tp.Uplinks) != 3 || tp.MAC[Guest] == nil || tp.MAC[RecvOnly] == nil {
			t.Errorf("%s: incomplete topology %+v", kind, tp)
		}
		err = tp.In(Host, func() error {
			for _, n := range tp.Uplinks {
				l, err := netlink.LinkByName(n)
				if err != nil {
					return err
				}
				if l.Attrs().RawFlags&(1<<16) == 0 { // IFF_LOWER_UP
					t.Errorf("%s: %s has no carrier", kind, n)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		// Link counters: readable on every uplink, nothing redirected yet.
		counts, err := tp.Counts()
		if err != nil || len(counts) != 4 { // three uplinks and the guest
			t.Fatalf("%s: counts %v, %v", kind, counts, err)
		}
		for i, c := range counts {
			if c != (LinkCount{}) {
				t.Errorf("%s: uplink %d counted %+v before any traffic", kind, i, c)
			}
		}
		// Cutting an uplink takes its carrier away, restoring gives it back.
		if err := tp.Cut(1); err != nil {
			t.Fatal(err)
		}
		carrier := func() bool {
			up := false
			_ = tp.In(Host, func() error {
				l, err := netlink.LinkByName("up1")
				if err == nil {
					up = l.Attrs().RawFlags&(1<<16) != 0
				}
				return err
			})
			return up
		}
		if carrier() {
			t.Errorf("%s: up1 kept carrier after Cut", kind)
		}
		if err := tp.Restore(1); err != nil {
			t.Fatal(err)
		}
		if !carrier() {
			t.Errorf("%s: up1 has no carrier after Restore", kind)
		}
		names := []string{tp.NSName(Host), tp.NSName(Guest)}
		tp.Destroy()
		for _, n := range names {
			if _, err := os.Stat("/run/netns/" + n); !os.IsNotExist(err) {
				t.Errorf("%s: namespace %s left behind", kind, n)
			}
		}
	}
}
