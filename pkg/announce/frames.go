// Package announce tells the upstream network where guests live after a
// failover: for every learned guest it sends a RARP (what Open vSwitch and
// VMware send; relearns the MAC), a gratuitous ARP per IPv4 address and an
// unsolicited neighbour advertisement per IPv6 address, out of the newly
// active uplink, tagged with the guest's VLAN.
//
// Frames go out through a pure-Go AF_PACKET socket. The switch's programs
// run at the ports' ingress and do not see them, so they leave the host
// directly (an uplink's tc egress program only moves frames off an uplink
// that has lost its carrier).
//
// Network namespaces: the AF_PACKET socket (and any interface name lookup) is
// made in the network namespace of the calling OS thread, inside
// [Announcer.Announce] or [OpenSocket]. A caller that manages a switch in
// another namespace must call them from a goroutine locked to a thread that
// is in that namespace (runtime.LockOSThread + netns.Set). The socket keeps
// that namespace for its whole life, so the sending goroutine may run anywhere.
package announce

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// EthernetTypeRARP is the EtherType of reverse ARP (RFC 903). layers has no
// constant for it.
const EthernetTypeRARP layers.EthernetType = 0x8035

const (
	// ARPReverseRequest is the RARP "reverse request" opcode (RFC 903).
	ARPReverseRequest = 3

	// MinFrameLen is the Ethernet minimum frame length without the FCS.
	MinFrameLen = 60

	// MaxVLAN is the highest usable 802.1Q VID (4095 is reserved).
	MaxVLAN = 4094

	// naFlagOverride is the O bit of a neighbour advertisement (RFC 4861 4.4);
	// R and S stay clear because the advertisement is unsolicited and the
	// guest is not known to be a router.
	naFlagOverride = 0x20

	hopLimitND = 255 // RFC 4861: receivers drop ND messages with any other hop limit
)

// Errors returned (wrapped) by the frame builders; test with errors.Is.
var (
	ErrInvalidMAC  = errors.New("invalid guest MAC")
	ErrInvalidVLAN = errors.New("invalid VLAN")
	ErrInvalidAddr = errors.New("invalid guest address")
)

var (
	broadcastMAC = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	zeroMAC      = net.HardwareAddr{0, 0, 0, 0, 0, 0}
	// allNodesMAC is the Ethernet mapping (RFC 2464) of ff02::1.
	allNodesMAC  = net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1}
	allNodesAddr = netip.MustParseAddr("ff02::1")
	zeroIPv4     = []byte{0, 0, 0, 0}
)

// RARP builds a reverse ARP request announcing mac, as Open vSwitch and
// VMware do after moving a guest: broadcast, sender = target = mac, IPs zero.
// vlan 0 means untagged.
func RARP(mac net.HardwareAddr, vlan uint16) ([]byte, error) {
	if err := checkL2(mac, vlan); err != nil {
		return nil, fmt.Errorf("RARP: %w", err)
	}
	arp := &layers.ARP{
		AddrType:          layers.LinkTypeEthernet,
		Protocol:          layers.EthernetTypeIPv4,
		HwAddressSize:     6,
		ProtAddressSize:   4,
		Operation:         ARPReverseRequest,
		SourceHwAddress:   mac,
		SourceProtAddress: zeroIPv4,
		DstHwAddress:      mac,
		DstProtAddress:    zeroIPv4,
	}
	frame, err := serialize(mac, broadcastMAC, vlan, EthernetTypeRARP, arp)
	if err != nil {
		return nil, fmt.Errorf("RARP for %s: %w", mac, err)
	}
	return frame, nil
}

// GratuitousARP builds a gratuitous ARP request for ip (sender IP = target
// IP = ip, target MAC zero, broadcast). An IPv4-mapped IPv6 address is
// accepted as its IPv4 form.
func GratuitousARP(mac net.HardwareAddr, vlan uint16, ip netip.Addr) ([]byte, error) {
	if err := checkL2(mac, vlan); err != nil {
		return nil, fmt.Errorf("gratuitous ARP: %w", err)
	}
	ip4 := ip.Unmap()
	if err := checkIPv4(ip4); err != nil {
		return nil, fmt.Errorf("gratuitous ARP for %s: %w", mac, err)
	}
	addr := ip4.AsSlice()
	arp := &layers.ARP{
		AddrType:          layers.LinkTypeEthernet,
		Protocol:          layers.EthernetTypeIPv4,
		HwAddressSize:     6,
		ProtAddressSize:   4,
		Operation:         layers.ARPRequest,
		SourceHwAddress:   mac,
		SourceProtAddress: addr,
		DstHwAddress:      zeroMAC,
		DstProtAddress:    addr,
	}
	frame, err := serialize(mac, broadcastMAC, vlan, layers.EthernetTypeARP, arp)
	if err != nil {
		return nil, fmt.Errorf("gratuitous ARP for %s %s: %w", mac, ip4, err)
	}
	return frame, nil
}

// UnsolicitedNA builds an unsolicited neighbour advertisement (RFC 4861
// 7.2.6) for ip: to ff02::1, hop limit 255, Override set, Solicited and
// Router clear, with a Target Link-Layer Address option carrying mac. Any
// zone on ip is ignored.
func UnsolicitedNA(mac net.HardwareAddr, vlan uint16, ip netip.Addr) ([]byte, error) {
	if err := checkL2(mac, vlan); err != nil {
		return nil, fmt.Errorf("neighbour advertisement: %w", err)
	}
	if err := checkIPv6(ip); err != nil {
		return nil, fmt.Errorf("neighbour advertisement for %s: %w", mac, err)
	}
	addr := net.IP(ip.WithZone("").AsSlice())
	ip6 := &layers.IPv6{
		Version:    6,
		NextHeader: layers.IPProtocolICMPv6,
		HopLimit:   hopLimitND,
		SrcIP:      addr,
		DstIP:      net.IP(allNodesAddr.AsSlice()),
	}
	icmp := &layers.ICMPv6{
		TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeNeighborAdvertisement, 0),
	}
	// The ICMPv6 checksum covers the IPv6 pseudo-header.
	if err := icmp.SetNetworkLayerForChecksum(ip6); err != nil {
		return nil, fmt.Errorf("neighbour advertisement for %s %s: %w", mac, ip, err)
	}
	na := &layers.ICMPv6NeighborAdvertisement{
		Flags:         naFlagOverride,
		TargetAddress: addr,
		Options: layers.ICMPv6Options{
			{Type: layers.ICMPv6OptTargetAddress, Data: mac},
		},
	}
	frame, err := serialize(mac, allNodesMAC, vlan, layers.EthernetTypeIPv6, ip6, icmp, na)
	if err != nil {
		return nil, fmt.Errorf("neighbour advertisement for %s %s: %w", mac, ip, err)
	}
	return frame, nil
}

// serialize prepends Ethernet and, for vlan != 0, an 802.1Q tag (priority 0)
// to the given layers and pads the result to MinFrameLen.
func serialize(src, dst net.HardwareAddr, vlan uint16, inner layers.EthernetType, upper ...gopacket.SerializableLayer) ([]byte, error) {
	eth := &layers.Ethernet{SrcMAC: src, DstMAC: dst, EthernetType: inner}
	all := []gopacket.SerializableLayer{eth}
	if vlan != 0 {
		eth.EthernetType = layers.EthernetTypeDot1Q
		all = append(all, &layers.Dot1Q{VLANIdentifier: vlan, Type: inner})
	}
	all = append(all, upper...)

	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, all...); err != nil {
		return nil, fmt.Errorf("serialize: %w", err)
	}
	frame := buf.Bytes()
	// layers.Ethernet pads already; do not depend on that detail.
	if len(frame) < MinFrameLen {
		frame = append(frame, make([]byte, MinFrameLen-len(frame))...)
	}
	return frame, nil
}

// checkL2 validates what every announcement needs: a unicast guest MAC and a
// VID that can go on the wire.
func checkL2(mac net.HardwareAddr, vlan uint16) error {
	switch {
	case len(mac) != 6:
		return fmt.Errorf("%w: %q is not a 6-byte Ethernet address", ErrInvalidMAC, mac.String())
	case mac[0]&0x01 != 0:
		return fmt.Errorf("%w: %s is a multicast/broadcast address, not a guest's unicast MAC", ErrInvalidMAC, mac)
	case [6]byte(mac) == [6]byte{}:
		return fmt.Errorf("%w: %s is all zeros", ErrInvalidMAC, mac)
	}
	if vlan > MaxVLAN {
		return fmt.Errorf("%w: VID %d out of range (0 = untagged, 1..%d)", ErrInvalidVLAN, vlan, MaxVLAN)
	}
	return nil
}

func checkIPv4(ip netip.Addr) error {
	switch {
	case !ip.IsValid():
		return fmt.Errorf("%w: no address given", ErrInvalidAddr)
	case !ip.Is4():
		return fmt.Errorf("%w: %s is not an IPv4 address", ErrInvalidAddr, ip)
	case ip.IsUnspecified(), ip.IsMulticast(), ip.IsLoopback(), ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return fmt.Errorf("%w: %s is not a unicast guest address", ErrInvalidAddr, ip)
	}
	return nil
}

func checkIPv6(ip netip.Addr) error {
	switch {
	case !ip.IsValid():
		return fmt.Errorf("%w: no address given", ErrInvalidAddr)
	case !ip.Is6() || ip.Is4In6():
		return fmt.Errorf("%w: %s is not an IPv6 address", ErrInvalidAddr, ip)
	case ip.IsUnspecified(), ip.IsMulticast(), ip.IsLoopback():
		// RFC 4861: the target of an advertisement must not be multicast.
		return fmt.Errorf("%w: %s is not a unicast guest address", ErrInvalidAddr, ip)
	}
	return nil
}
