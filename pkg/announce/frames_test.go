package announce

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// frameKind names the three announcement types.
type frameKind int

const (
	kindRARP frameKind = iota
	kindGARP
	kindNA
)

func (k frameKind) String() string {
	return [...]string{"RARP", "GARP", "NA"}[k]
}

// frameSpec is what a frame must announce.
type frameSpec struct {
	kind frameKind
	mac  net.HardwareAddr
	vlan uint16
	ip   netip.Addr // zero for RARP
}

func (s frameSpec) String() string {
	return fmt.Sprintf("%v %s vlan %d %v", s.kind, s.mac, s.vlan, s.ip)
}

// build calls the builder under test for s.
func (s frameSpec) build() ([]byte, error) {
	switch s.kind {
	case kindRARP:
		return RARP(s.mac, s.vlan)
	case kindGARP:
		return GratuitousARP(s.mac, s.vlan, s.ip)
	default:
		return UnsolicitedNA(s.mac, s.vlan, s.ip)
	}
}

func mustMAC(s string) net.HardwareAddr {
	mac, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return mac
}

// checkFrame decodes frame with gopacket and returns every way it differs
// from want; nil means it is exactly the announcement described.
func checkFrame(frame []byte, want frameSpec) []error {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if len(frame) < MinFrameLen {
		fail("frame is %d bytes, below the %d-byte minimum", len(frame), MinFrameLen)
	}
	pkt := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
	eth, _ := pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	if eth == nil {
		return append(errs, fmt.Errorf("no Ethernet layer"))
	}

	wantInner := map[frameKind]layers.EthernetType{
		kindRARP: EthernetTypeRARP, kindGARP: layers.EthernetTypeARP, kindNA: layers.EthernetTypeIPv6,
	}[want.kind]
	wantDst := map[frameKind]string{
		kindRARP: "ff:ff:ff:ff:ff:ff", kindGARP: "ff:ff:ff:ff:ff:ff", kindNA: "33:33:00:00:00:01",
	}[want.kind]
	if eth.DstMAC.String() != wantDst {
		fail("Ethernet dst %s, want %s", eth.DstMAC, wantDst)
	}
	if !bytes.Equal(eth.SrcMAC, want.mac) {
		fail("Ethernet src %s, want %s", eth.SrcMAC, want.mac)
	}

	// l2Payload is what follows the Ethernet header and the tag, if any.
	l2Payload := eth.Payload
	dot1q, _ := pkt.Layer(layers.LayerTypeDot1Q).(*layers.Dot1Q)
	if want.vlan == 0 {
		if eth.EthernetType != wantInner {
			fail("EtherType %#04x, want %#04x", uint16(eth.EthernetType), uint16(wantInner))
		}
		if dot1q != nil {
			fail("untagged frame carries an 802.1Q tag (VID %d)", dot1q.VLANIdentifier)
		}
	} else {
		if eth.EthernetType != layers.EthernetTypeDot1Q {
			fail("EtherType %#04x, want 802.1Q", uint16(eth.EthernetType))
		}
		if dot1q == nil {
			return append(errs, fmt.Errorf("no 802.1Q tag"))
		}
		if dot1q.VLANIdentifier != want.vlan || dot1q.Priority != 0 || dot1q.DropEligible {
			fail("tag VID %d prio %d DEI %v, want VID %d prio 0 DEI false",
				dot1q.VLANIdentifier, dot1q.Priority, dot1q.DropEligible, want.vlan)
		}
		if dot1q.Type != wantInner {
			fail("inner EtherType %#04x, want %#04x", uint16(dot1q.Type), uint16(wantInner))
		}
		l2Payload = dot1q.Payload
	}

	switch want.kind {
	case kindRARP:
		// gopacket has no decoder registered for 0x8035: decode the body as ARP.
		var arp layers.ARP
		if err := arp.DecodeFromBytes(l2Payload, gopacket.NilDecodeFeedback); err != nil {
			return append(errs, fmt.Errorf("RARP body: %w", err))
		}
		errs = append(errs, checkARP(&arp, ARPReverseRequest, want.mac, []byte{0, 0, 0, 0}, want.mac, []byte{0, 0, 0, 0})...)
		errs = append(errs, checkZeroPadding(arp.Payload)...)
	case kindGARP:
		arp, _ := pkt.Layer(layers.LayerTypeARP).(*layers.ARP)
		if arp == nil {
			return append(errs, fmt.Errorf("no ARP layer"))
		}
		ip := want.ip.Unmap().AsSlice()
		errs = append(errs, checkARP(arp, layers.ARPRequest, want.mac, ip, make([]byte, 6), ip)...)
		errs = append(errs, checkZeroPadding(arp.Payload)...)
	case kindNA:
		errs = append(errs, checkNA(pkt, l2Payload, want)...)
	}
	return errs
}

func checkARP(arp *layers.ARP, op uint16, srcHW, srcIP, dstHW, dstIP []byte) []error {
	var errs []error
	if arp.AddrType != layers.LinkTypeEthernet || arp.Protocol != layers.EthernetTypeIPv4 ||
		arp.HwAddressSize != 6 || arp.ProtAddressSize != 4 {
		errs = append(errs, fmt.Errorf("ARP htype %d ptype %#04x hlen %d plen %d, want Ethernet/IPv4/6/4",
			arp.AddrType, uint16(arp.Protocol), arp.HwAddressSize, arp.ProtAddressSize))
	}
	if arp.Operation != op {
		errs = append(errs, fmt.Errorf("ARP opcode %d, want %d", arp.Operation, op))
	}
	for _, f := range []struct {
		name      string
		got, want []byte
	}{
		{"sender HW", arp.SourceHwAddress, srcHW},
		{"sender IP", arp.SourceProtAddress, srcIP},
		{"target HW", arp.DstHwAddress, dstHW},
		{"target IP", arp.DstProtAddress, dstIP},
	} {
		if !bytes.Equal(f.got, f.want) {
			errs = append(errs, fmt.Errorf("ARP %s % x, want % x", f.name, f.got, f.want))
		}
	}
	return errs
}

func checkZeroPadding(pad []byte) []error {
	if bytes.Count(pad, []byte{0}) != len(pad) {
		return []error{fmt.Errorf("padding not zero: % x", pad)}
	}
	return nil
}

func checkNA(pkt gopacket.Packet, l3 []byte, want frameSpec) []error {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	ip6, _ := pkt.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
	icmp, _ := pkt.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6)
	na, _ := pkt.Layer(layers.LayerTypeICMPv6NeighborAdvertisement).(*layers.ICMPv6NeighborAdvertisement)
	if ip6 == nil || icmp == nil || na == nil {
		return []error{fmt.Errorf("missing layers: IPv6 %v ICMPv6 %v NA %v", ip6 != nil, icmp != nil, na != nil)}
	}
	guest := net.IP(want.ip.WithZone("").AsSlice())
	if ip6.Version != 6 || ip6.TrafficClass != 0 || ip6.FlowLabel != 0 {
		fail("IPv6 version %d class %d flow %d", ip6.Version, ip6.TrafficClass, ip6.FlowLabel)
	}
	if !ip6.SrcIP.Equal(guest) {
		fail("IPv6 src %s, want %s", ip6.SrcIP, guest)
	}
	if !ip6.DstIP.Equal(net.ParseIP("ff02::1")) {
		fail("IPv6 dst %s, want ff02::1", ip6.DstIP)
	}
	if ip6.HopLimit != 255 {
		fail("hop limit %d, want 255", ip6.HopLimit)
	}
	if ip6.NextHeader != layers.IPProtocolICMPv6 {
		fail("next header %d, want 58", ip6.NextHeader)
	}
	// NA body 20 bytes + 8-byte option + 4-byte ICMPv6 header.
	if ip6.Length != 32 {
		fail("IPv6 payload length %d, want 32", ip6.Length)
	}
	if icmp.TypeCode.Type() != 136 || icmp.TypeCode.Code() != 0 {
		fail("ICMPv6 type %d code %d, want 136/0", icmp.TypeCode.Type(), icmp.TypeCode.Code())
	}
	if na.Router() || na.Solicited() || !na.Override() || na.Flags != 0x20 {
		fail("NA flags %#02x (R=%v S=%v O=%v), want only Override", na.Flags, na.Router(), na.Solicited(), na.Override())
	}
	if !na.TargetAddress.Equal(guest) {
		fail("NA target %s, want %s", na.TargetAddress, guest)
	}
	if len(na.Options) != 1 || na.Options[0].Type != layers.ICMPv6OptTargetAddress || !bytes.Equal(na.Options[0].Data, want.mac) {
		fail("NA options %v, want one Target Link-Layer Address %s", na.Options, want.mac)
	}
	if err := verifyICMPv6Checksum(l3); err != nil {
		errs = append(errs, err)
	}
	return errs
}

// verifyICMPv6Checksum checks the ICMPv6 checksum of the IPv6 packet at the
// start of l3 over the RFC 8200 8.1 pseudo-header, straight from the bytes,
// without gopacket.
func verifyICMPv6Checksum(l3 []byte) error {
	if len(l3) < 40 {
		return fmt.Errorf("IPv6 packet truncated: %d bytes", len(l3))
	}
	plen := int(binary.BigEndian.Uint16(l3[4:6]))
	if l3[6] != 58 || len(l3) < 40+plen {
		return fmt.Errorf("not a whole ICMPv6 packet (next header %d, payload %d of %d bytes)", l3[6], plen, len(l3)-40)
	}
	pseudo := make([]byte, 0, 40)
	pseudo = append(pseudo, l3[8:40]...) // source and destination addresses
	pseudo = binary.BigEndian.AppendUint32(pseudo, uint32(plen))
	pseudo = append(pseudo, 0, 0, 0, 58)

	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(b[i])<<8 | uint32(b[i+1])
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	add(pseudo)
	add(l3[40 : 40+plen])
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	if sum != 0xffff {
		return fmt.Errorf("ICMPv6 checksum %#04x does not verify (sum %#04x)", binary.BigEndian.Uint16(l3[42:44]), sum)
	}
	return nil
}

func TestFrames(t *testing.T) {
	mac := mustMAC("52:54:00:12:34:56")
	addrs := map[string]netip.Addr{
		"v4":           netip.MustParseAddr("192.0.2.10"),
		"v4-mapped":    netip.MustParseAddr("::ffff:192.0.2.11"),
		"v6-global":    netip.MustParseAddr("2001:db8::10"),
		"v6-linklocal": netip.MustParseAddr("fe80::5054:ff:fe12:3456"),
		"v6-zoned":     netip.MustParseAddr("fe80::1%eth0"),
	}
	var specs []frameSpec
	for _, vlan := range []uint16{0, 100, 4094} {
		specs = append(specs,
			frameSpec{kind: kindRARP, mac: mac, vlan: vlan},
			frameSpec{kind: kindGARP, mac: mac, vlan: vlan, ip: addrs["v4"]},
			frameSpec{kind: kindGARP, mac: mac, vlan: vlan, ip: addrs["v4-mapped"]},
			frameSpec{kind: kindNA, mac: mac, vlan: vlan, ip: addrs["v6-global"]},
			frameSpec{kind: kindNA, mac: mac, vlan: vlan, ip: addrs["v6-linklocal"]},
			frameSpec{kind: kindNA, mac: mac, vlan: vlan, ip: addrs["v6-zoned"]},
		)
	}
	for _, spec := range specs {
		t.Run(spec.String(), func(t *testing.T) {
			frame, err := spec.build()
			if err != nil {
				t.Fatalf("build: %v", err)
			}
			for _, err := range checkFrame(frame, spec) {
				t.Error(err)
			}
			// Short frames are padded exactly to the minimum, not beyond.
			if spec.kind != kindNA && len(frame) != MinFrameLen {
				t.Errorf("frame is %d bytes, want %d", len(frame), MinFrameLen)
			}
		})
	}
}

// TestCheckFrameRejects shows the checker can fail: each mutation of a good
// frame must be reported.
func TestCheckFrameRejects(t *testing.T) {
	mac := mustMAC("52:54:00:12:34:56")
	na := frameSpec{kind: kindNA, mac: mac, vlan: 100, ip: netip.MustParseAddr("2001:db8::10")}
	rarp := frameSpec{kind: kindRARP, mac: mac, vlan: 0}
	const naL3 = 14 + 4 // IPv6 header offset in the tagged NA
	tests := []struct {
		name   string
		spec   frameSpec
		mutate func(f []byte)
	}{
		{"NA checksum byte", na, func(f []byte) { f[naL3+42] ^= 0x01 }},
		{"NA reserved byte (only the checksum sees it)", na, func(f []byte) { f[naL3+45] ^= 0x80 }},
		{"NA source address", na, func(f []byte) { f[naL3+23] ^= 0x01 }},
		{"NA hop limit", na, func(f []byte) { f[naL3+7] = 64 }},
		{"VID", na, func(f []byte) { f[15] = 101 }},
		{"RARP opcode", rarp, func(f []byte) { f[14+7] = 1 }},
		{"RARP target HW", rarp, func(f []byte) { f[14+18] ^= 0x02 }},
		{"padding", rarp, func(f []byte) { f[59] = 1 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			frame, err := tt.spec.build()
			if err != nil {
				t.Fatal(err)
			}
			if errs := checkFrame(frame, tt.spec); errs != nil {
				t.Fatalf("good frame rejected: %v", errs)
			}
			tt.mutate(frame)
			if errs := checkFrame(frame, tt.spec); errs == nil {
				t.Error("mutated frame accepted")
			}
		})
	}
}

func TestFramesRejectBadInput(t *testing.T) {
	good := mustMAC("52:54:00:12:34:56")
	v4 := netip.MustParseAddr("192.0.2.10")
	v6 := netip.MustParseAddr("2001:db8::10")
	tests := []struct {
		name    string
		build   func() ([]byte, error)
		wantErr error
		mention string // the offending value must appear in the message
	}{
		{"RARP multicast MAC", func() ([]byte, error) { return RARP(mustMAC("01:00:5e:00:00:01"), 0) }, ErrInvalidMAC, "01:00:5e:00:00:01"},
		{"RARP broadcast MAC", func() ([]byte, error) { return RARP(mustMAC("ff:ff:ff:ff:ff:ff"), 0) }, ErrInvalidMAC, "ff:ff:ff:ff:ff:ff"},
		{"RARP zero MAC", func() ([]byte, error) { return RARP(mustMAC("00:00:00:00:00:00"), 0) }, ErrInvalidMAC, "00:00:00:00:00:00"},
		{"RARP short MAC", func() ([]byte, error) { return RARP(net.HardwareAddr{2, 0, 0, 0, 1}, 0) }, ErrInvalidMAC, "02:00:00:00:01"},
		{"RARP nil MAC", func() ([]byte, error) { return RARP(nil, 0) }, ErrInvalidMAC, "6-byte"},
		{"RARP VLAN 4095", func() ([]byte, error) { return RARP(good, 4095) }, ErrInvalidVLAN, "4095"},
		{"GARP VLAN 5000", func() ([]byte, error) { return GratuitousARP(good, 5000, v4) }, ErrInvalidVLAN, "5000"},
		{"GARP multicast MAC", func() ([]byte, error) { return GratuitousARP(mustMAC("33:33:00:00:00:01"), 0, v4) }, ErrInvalidMAC, "33:33:00:00:00:01"},
		{"GARP IPv6 address", func() ([]byte, error) { return GratuitousARP(good, 0, v6) }, ErrInvalidAddr, "2001:db8::10 is not an IPv4"},
		{"GARP unspecified", func() ([]byte, error) { return GratuitousARP(good, 0, netip.IPv4Unspecified()) }, ErrInvalidAddr, "0.0.0.0"},
		{"GARP broadcast", func() ([]byte, error) { return GratuitousARP(good, 0, netip.MustParseAddr("255.255.255.255")) }, ErrInvalidAddr, "255.255.255.255"},
		{"GARP zero Addr", func() ([]byte, error) { return GratuitousARP(good, 0, netip.Addr{}) }, ErrInvalidAddr, "no address"},
		{"NA IPv4 address", func() ([]byte, error) { return UnsolicitedNA(good, 0, v4) }, ErrInvalidAddr, "192.0.2.10 is not an IPv6"},
		{"NA IPv4-mapped", func() ([]byte, error) { return UnsolicitedNA(good, 0, netip.MustParseAddr("::ffff:192.0.2.1")) }, ErrInvalidAddr, "::ffff:192.0.2.1 is not an IPv6"},
		{"NA multicast target", func() ([]byte, error) { return UnsolicitedNA(good, 0, netip.MustParseAddr("ff02::1")) }, ErrInvalidAddr, "ff02::1"},
		{"NA VLAN 4095", func() ([]byte, error) { return UnsolicitedNA(good, 4095, v6) }, ErrInvalidVLAN, "4095"},
		{"NA multicast MAC", func() ([]byte, error) { return UnsolicitedNA(mustMAC("03:00:00:00:00:01"), 0, v6) }, ErrInvalidMAC, "03:00:00:00:00:01"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			frame, err := tt.build()
			if err == nil {
				t.Fatalf("built % x, want an error", frame)
			}
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("error %q is not %q", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.mention) {
				t.Errorf("error %q does not mention %q", err, tt.mention)
			}
		})
	}
}

// TestRARPWireFormat pins the bytes against RFC 903 written out by hand, so a
// symmetric encode/decode mistake in gopacket cannot hide.
func TestRARPWireFormat(t *testing.T) {
	mac := mustMAC("52:54:00:12:34:56")
	want := []byte{
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // dst broadcast
		0x52, 0x54, 0x00, 0x12, 0x34, 0x56, // src guest
		0x81, 0x00, 0x00, 0x64, // 802.1Q, prio 0, VID 100
		0x80, 0x35, // RARP
		0x00, 0x01, 0x08, 0x00, 0x06, 0x04, // Ethernet, IPv4, hlen 6, plen 4
		0x00, 0x03, // reverse request
		0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0, 0, 0, 0, // sender HW, IP
		0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0, 0, 0, 0, // target HW, IP
	}
	want = append(want, make([]byte, MinFrameLen-len(want))...)
	got, err := RARP(mac, 100)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("RARP frame\n got % x\nwant % x", got, want)
	}
}

// TestBuildFramesOrder: within each kind (RARP, gratuitous ARP, NA), guests
// with a higher priority come first; equal priorities keep their order.
func TestBuildFramesOrder(t *testing.T) {
	mac := func(b byte) net.HardwareAddr { return net.HardwareAddr{0x02, 0, 0, 0, 0, b} }
	ip := func(b byte) netip.Addr { return netip.AddrFrom4([4]byte{10, 0, 0, b}) }
	guests := []Guest{
		{MAC: mac(1), Priority: 0, Addrs: []netip.Addr{ip(1)}},
		{MAC: mac(2), Priority: 10, Addrs: []netip.Addr{ip(2)}},
		{MAC: mac(3), Priority: 5, Addrs: []netip.Addr{ip(3)}},
		{MAC: mac(4), Priority: 10, Addrs: []netip.Addr{ip(4)}},
	}
	frames, errs := buildFrames(guests)
	if len(errs) != 0 || len(frames) != 8 {
		t.Fatalf("%d frames, errors %v", len(frames), errs)
	}
	var order []byte
	for _, f := range frames {
		order = append(order, f[11]) // the source MAC's last byte
	}
	if want := []byte{2, 4, 3, 1, 2, 4, 3, 1}; !bytes.Equal(order, want) {
		t.Errorf("frames from guests %v, want %v (RARPs, then ARPs, each by priority)", order, want)
	}
	if guests[0].Priority != 0 || guests[1].MAC[5] != 2 {
		t.Error("buildFrames reordered the caller's slice")
	}
}
