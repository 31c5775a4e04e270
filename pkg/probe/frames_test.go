package probe

import (
	"errors"
	"net"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

var (
	ourMAC   = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x01}
	otherMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x02}
	gw4      = netip.MustParseAddr("10.0.0.1")
	gw6      = netip.MustParseAddr("2001:db8::1")
)

func arpFrame(t *testing.T, op uint16, dst net.HardwareAddr, sender netip.Addr) []byte {
	t.Helper()
	f, err := serialize(&layers.Ethernet{SrcMAC: otherMAC, DstMAC: dst, EthernetType: layers.EthernetTypeARP},
		&layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
			Operation: op, SourceHwAddress: otherMAC, SourceProtAddress: sender.AsSlice(), DstHwAddress: dst, DstProtAddress: []byte{0, 0, 0, 0}})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func naFrame(t *testing.T, dst net.HardwareAddr, hop uint8, flags uint8, target netip.Addr) []byte {
	t.Helper()
	ip6 := &layers.IPv6{Version: 6, NextHeader: layers.IPProtocolICMPv6, HopLimit: hop, SrcIP: target.AsSlice(), DstIP: LinkLocal(ourMAC).AsSlice()}
	icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeNeighborAdvertisement, 0)}
	if err := icmp.SetNetworkLayerForChecksum(ip6); err != nil {
		t.Fatal(err)
	}
	f, err := serialize(&layers.Ethernet{SrcMAC: otherMAC, DstMAC: dst, EthernetType: layers.EthernetTypeIPv6}, ip6, icmp,
		&layers.ICMPv6NeighborAdvertisement{Flags: flags, TargetAddress: target.AsSlice()})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestProbeFrames(t *testing.T) {
	req, err := ARPRequest(ourMAC, netip.IPv4Unspecified(), gw4)
	if err != nil {
		t.Fatal(err)
	}
	p := gopacket.NewPacket(req, layers.LayerTypeEthernet, gopacket.Default)
	arp, _ := p.Layer(layers.LayerTypeARP).(*layers.ARP)
	if len(req) != minFrameLen || arp == nil || arp.Operation != layers.ARPRequest || netip.AddrFrom4([4]byte(arp.DstProtAddress)) != gw4 {
		t.Errorf("ARP probe: %v", p)
	}
	ns, err := NeighborSolicitation(ourMAC, gw6)
	if err != nil {
		t.Fatal(err)
	}
	p = gopacket.NewPacket(ns, layers.LayerTypeEthernet, gopacket.Default)
	sol, _ := p.Layer(layers.LayerTypeICMPv6NeighborSolicitation).(*layers.ICMPv6NeighborSolicitation)
	ip6, _ := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
	if sol == nil || ip6 == nil || !net.IP(sol.TargetAddress).Equal(gw6.AsSlice()) ||
		ip6.DstIP.String() != "ff02::1:ff00:1" || ip6.SrcIP.String() != "fe80::ff:fe00:1" || ip6.HopLimit != 255 {
		t.Errorf("neighbour solicitation: %v", p)
	}
	if p.ErrorLayer() != nil {
		t.Errorf("solicitation does not decode: %v", p.ErrorLayer().Error())
	}
	if _, err := ARPRequest(ourMAC, netip.IPv4Unspecified(), gw6); err == nil {
		t.Error("ARP probe to an IPv6 target")
	}
	if _, err := NeighborSolicitation(ourMAC, gw4); err == nil {
		t.Error("solicitation for an IPv4 target")
	}
}

func TestParseReply(t *testing.T) {
	for _, tc := range []struct {
		name  string
		frame []byte
		want  netip.Addr // invalid: must be refused
	}{
		{"ARP reply to us", arpFrame(t, layers.ARPReply, ourMAC, gw4), gw4},
		{"ARP reply to someone else", arpFrame(t, layers.ARPReply, otherMAC, gw4), netip.Addr{}},
		{"ARP request", arpFrame(t, layers.ARPRequest, ourMAC, gw4), netip.Addr{}},
		{"solicited NA to us", naFrame(t, ourMAC, 255, 0x40, gw6), gw6},
		{"unsolicited NA", naFrame(t, ourMAC, 255, 0x20, gw6), netip.Addr{}},
		{"NA from off-link (hop limit 64)", naFrame(t, ourMAC, 64, 0x40, gw6), netip.Addr{}},
		{"truncated", arpFrame(t, layers.ARPReply, ourMAC, gw4)[:20], netip.Addr{}},
		{"empty", nil, netip.Addr{}},
	} {
		got, err := ParseReply(tc.frame, ourMAC)
		switch {
		case tc.want.IsValid() && (err != nil || got != tc.want):
			t.Errorf("%s: %v, %v; want %v", tc.name, got, err, tc.want)
		case !tc.want.IsValid() && !errors.Is(err, ErrNotAReply):
			t.Errorf("%s: accepted (%v, %v)", tc.name, got, err)
		}
	}
}
