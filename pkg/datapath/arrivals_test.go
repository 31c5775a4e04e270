package datapath

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"github.com/google/gopacket/layers"
)

// TestArrivalsReportNewGuests: a MAC new to its group and VLAN, or seen
// behind another port, is reported once, after the addresses of the same
// frame are learned; a known guest and a bad source are not.
func TestArrivalsReportNewGuests(t *testing.T) {
	tp := newTopo(t)
	ids, err := tp.dp.AssignGroups([]string{"red", "blue"})
	if err != nil {
		t.Fatal(err)
	}
	arr, err := tp.dp.Arrivals()
	if err != nil {
		t.Fatal(err)
	}
	defer arr.Close()
	guest := tp.dp.objs.TcGuest
	v4 := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolUDP,
		SrcIP: net.IP{192, 0, 2, 10}, DstIP: net.IP{192, 0, 2, 1}}
	mcast := net.HardwareAddr{0x03, 0, 0, 0, 0, 1}

	steps := []struct {
		name    string
		ingress int
		frame   []byte
		want    *Arrival // nil: no event
	}{
		{"new guest", tp.vnet0, frame(t, macUp, macA, 0, nil, v4), &Arrival{Group: ids["red"], MAC: macA, Ifindex: tp.vnet0}},
		{"known guest", tp.vnet0, frame(t, macUp, macA, 0, nil, v4), nil},
		{"known guest to another guest", tp.vnet0, frame(t, macB, macA, 0, nil), nil},
		{"same MAC on another VLAN", tp.vnet0, frame(t, macUp, macA, 100, nil), &Arrival{Group: ids["red"], VLAN: 100, MAC: macA, Ifindex: tp.vnet0}},
		{"moved to another port", tp.vnet1, frame(t, macUp, macA, 0, nil), &Arrival{Group: ids["red"], MAC: macA, Ifindex: tp.vnet1}},
		{"same MAC in another group", tp.vnet2, frame(t, macUp, macA, 0, nil), &Arrival{Group: ids["blue"], MAC: macA, Ifindex: tp.vnet2}},
		{"multicast source", tp.vnet0, frame(t, macUp, mcast, 0, nil), nil},
		{"upstream host on an uplink", tp.up0, frame(t, macA, macUp, 0, nil), nil},
	}
	for _, s := range steps {
		prog := guest
		if s.ingress == tp.up0 {
			prog = tp.dp.objs.TcUplink
		}
		run(t, prog, s.ingress, s.frame)
		arr.SetDeadline(time.Now().Add(50 * time.Millisecond))
		got, err := arr.Next()
		switch {
		case s.want == nil && errors.Is(err, os.ErrDeadlineExceeded):
		case s.want == nil:
			t.Errorf("%s: got %+v (%v), want no event", s.name, got, err)
		case err != nil:
			t.Errorf("%s: %v, want %+v", s.name, err, *s.want)
		case got.Group != s.want.Group || got.VLAN != s.want.VLAN || got.MAC.String() != s.want.MAC.String() || got.Ifindex != s.want.Ifindex:
			t.Errorf("%s: got %+v, want %+v", s.name, got, *s.want)
		}
		if s.name == "new guest" {
			// The daemon announces what it reads next: the address came
			// with the same frame and must be there already.
			guests, err := tp.dp.Guests()
			if err != nil {
				t.Fatal(err)
			}
			if len(guests) != 1 || len(guests[0].Addrs) != 1 || guests[0].Addrs[0].String() != "192.0.2.10" {
				t.Errorf("guests after the arrival = %+v, want %s with 192.0.2.10", guests, macA)
			}
		}
	}
}
