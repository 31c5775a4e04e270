// Package probe checks the path behind every uplink, active and standby:
// ARP requests to IPv4 targets and neighbour solicitations to IPv6
// targets, sent from the uplink's own MAC at an interval. An uplink whose
// targets stop answering for a number of intervals has a dead path even
// with carrier up (a failed upstream switch, a cut further along), and
// the failover policy stops using it (failover.ProbeFailed).
//
// Replies reach the daemon on standby uplinks too: the data plane hands
// every frame addressed to an uplink's own MAC to the host stack, before
// it drops what a standby uplink would deliver to guests.
package probe

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

var broadcast = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// minFrameLen is the Ethernet minimum without the FCS.
const minFrameLen = 60

// ARPRequest asks who has target, from mac and src (the unspecified
// address makes it an ARP probe, RFC 5227, which hosts answer as well and
// which never touches their caches).
func ARPRequest(mac net.HardwareAddr, src, target netip.Addr) ([]byte, error) {
	if !target.Is4() || !src.Is4() {
		return nil, fmt.Errorf("ARP probe: need IPv4 addresses, got source %s target %s", src, target)
	}
	eth := &layers.Ethernet{SrcMAC: mac, DstMAC: broadcast, EthernetType: layers.EthernetTypeARP}
	arp := &layers.ARP{
		AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4,
		HwAddressSize: 6, ProtAddressSize: 4, Operation: layers.ARPRequest,
		SourceHwAddress: mac, SourceProtAddress: src.AsSlice(),
		DstHwAddress: make([]byte, 6), DstProtAddress: target.AsSlice(),
	}
	return serialize(eth, arp)
}

// LinkLocal is the EUI-64 link-local address of mac, the source of the
// neighbour solicitations (so the target can answer unicast).
func LinkLocal(mac net.HardwareAddr) netip.Addr {
	var a [16]byte
	a[0], a[1] = 0xfe, 0x80
	a[8], a[9], a[10] = mac[0]^0x02, mac[1], mac[2]
	a[11], a[12] = 0xff, 0xfe
	a[13], a[14], a[15] = mac[3], mac[4], mac[5]
	return netip.AddrFrom16(a)
}

// NeighborSolicitation asks target for its link-layer address, to its
// solicited-node multicast group, from mac's link-local address.
func NeighborSolicitation(mac net.HardwareAddr, target netip.Addr) ([]byte, error) {
	if !target.Is6() || target.Is4In6() {
		return nil, fmt.Errorf("neighbour solicitation: need an IPv6 target, got %s", target)
	}
	t := target.As16()
	group := netip.AddrFrom16([16]byte{0xff, 0x02, 11: 0x01, 12: 0xff, 13: t[13], 14: t[14], 15: t[15]})
	g := group.As16()
	dst := net.HardwareAddr{0x33, 0x33, g[12], g[13], g[14], g[15]}
	eth := &layers.Ethernet{SrcMAC: mac, DstMAC: dst, EthernetType: layers.EthernetTypeIPv6}
	ip6 := &layers.IPv6{Version: 6, NextHeader: layers.IPProtocolICMPv6, HopLimit: 255,
		SrcIP: LinkLocal(mac).AsSlice(), DstIP: group.AsSlice()}
	icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeNeighborSolicitation, 0)}
	if err := icmp.SetNetworkLayerForChecksum(ip6); err != nil {
		return nil, err
	}
	ns := &layers.ICMPv6NeighborSolicitation{
		TargetAddress: target.AsSlice(),
		Options:       layers.ICMPv6Options{{Type: layers.ICMPv6OptSourceAddress, Data: mac}},
	}
	return serialize(eth, ip6, icmp, ns)
}

func serialize(ls ...gopacket.SerializableLayer) ([]byte, error) {
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		return nil, fmt.Errorf("serialize probe: %w", err)
	}
	frame := buf.Bytes()
	if len(frame) < minFrameLen {
		frame = append(frame, make([]byte, minFrameLen-len(frame))...)
	}
	return frame, nil
}

// ErrNotAReply marks a frame that is not a valid answer to a probe.
var ErrNotAReply = errors.New("not a probe reply")

// ParseReply validates frame as an answer to a probe sent from mac: an ARP
// reply or a solicited neighbour advertisement, addressed to mac, whose
// sender (target) address is returned. VLAN tags are not expected: probes
// go out untagged.
func ParseReply(frame []byte, mac net.HardwareAddr) (netip.Addr, error) {
	pkt := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.DecodeOptions{Lazy: true, NoCopy: true})
	eth, ok := pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	if !ok {
		return netip.Addr{}, fmt.Errorf("%w: not Ethernet", ErrNotAReply)
	}
	if !equalMAC(eth.DstMAC, mac) {
		return netip.Addr{}, fmt.Errorf("%w: addressed to %s, not %s", ErrNotAReply, eth.DstMAC, mac)
	}
	if arp, ok := pkt.Layer(layers.LayerTypeARP).(*layers.ARP); ok {
		if arp.Operation != layers.ARPReply || !equalMAC(arp.DstHwAddress, mac) || len(arp.SourceProtAddress) != 4 {
			return netip.Addr{}, fmt.Errorf("%w: ARP operation %d to %s", ErrNotAReply, arp.Operation, net.HardwareAddr(arp.DstHwAddress))
		}
		return netip.AddrFrom4([4]byte(arp.SourceProtAddress)), nil
	}
	if na, ok := pkt.Layer(layers.LayerTypeICMPv6NeighborAdvertisement).(*layers.ICMPv6NeighborAdvertisement); ok {
		ip6, _ := pkt.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
		if ip6 == nil || ip6.HopLimit != 255 || !na.Solicited() {
			return netip.Addr{}, fmt.Errorf("%w: neighbour advertisement not solicited or not on-link", ErrNotAReply)
		}
		addr, ok := netip.AddrFromSlice(na.TargetAddress)
		if !ok {
			return netip.Addr{}, fmt.Errorf("%w: bad target address", ErrNotAReply)
		}
		return addr, nil
	}
	return netip.Addr{}, fmt.Errorf("%w: neither ARP nor a neighbour advertisement", ErrNotAReply)
}

func equalMAC(a, b net.HardwareAddr) bool {
	return len(a) == 6 && len(b) == 6 && [6]byte(a) == [6]byte(b)
}
