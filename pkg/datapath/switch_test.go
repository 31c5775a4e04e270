package datapath

import (
	"crypto/rand"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/uplinkd/uplinkd/pkg/limits"
)

var (
	macA      = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xa}
	macB      = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xb}
	macUp     = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x99} // a host upstream
	broadcast = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
)

const etherTest = layers.EthernetType(0x88b5) // IEEE local experimental

// frame builds Ethernet (+ an 802.1Q tag when vlan != 0) around payload
// layers; with none, a test ethertype and marker.
func frame(t testing.TB, dst, src net.HardwareAddr, vlan uint16, marker []byte, payload ...gopacket.SerializableLayer) []byte {
	t.Helper()
	eth := &layers.Ethernet{DstMAC: dst, SrcMAC: src, EthernetType: etherTest}
	ls := []gopacket.SerializableLayer{eth}
	if vlan != 0 {
		eth.EthernetType = layers.EthernetTypeDot1Q
		ls = append(ls, &layers.Dot1Q{VLANIdentifier: vlan, Type: etherTest})
	}
	if len(payload) > 0 {
		switch p := payload[0].(type) {
		case *layers.IPv4:
			setType(eth, ls, layers.EthernetTypeIPv4)
		case *layers.IPv6:
			setType(eth, ls, layers.EthernetTypeIPv6)
		case *layers.ARP:
			setType(eth, ls, layers.EthernetTypeARP)
		default:
			t.Fatalf("unexpected payload %T", p)
		}
		ls = append(ls, payload...)
	}
	ls = append(ls, gopacket.Payload(append(marker, make([]byte, 46)...)))
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func setType(eth *layers.Ethernet, ls []gopacket.SerializableLayer, et layers.EthernetType) {
	if q, ok := ls[len(ls)-1].(*layers.Dot1Q); ok {
		q.Type = et
		return
	}
	eth.EthernetType = et
}

func newMarker(t *testing.T) []byte {
	m := make([]byte, 8)
	if _, err := rand.Read(m); err != nil {
		t.Fatal(err)
	}
	return m
}

// topo is one group with two guest ports and two uplinks, and a second
// group with one guest port and one uplink.
type topo struct {
	*testEnv
	vnet0, vnet1, up0, up1 int
	vnet2, up2             int
}

func newTopo(t testing.TB) *topo {
	e := newTestEnv(t)
	tp := &topo{testEnv: e}
	tp.vnet0 = e.veth("vnet0", "g0")
	tp.vnet1 = e.veth("vnet1", "g1")
	tp.up0 = e.veth("up0", "u0p")
	tp.up1 = e.veth("up1", "u1p")
	tp.vnet2 = e.veth("vnet2", "g2")
	tp.up2 = e.veth("up2", "u2p")
	// Tests of standby behaviour want the switch without draining; the
	// drain has its own test.
	e.dp.DrainTime = 0
	ids, err := e.dp.AssignGroups([]string{"red", "blue"})
	if err != nil {
		t.Fatal(err)
	}
	red, blue := ids["red"], ids["blue"]
	ports := []Port{
		{Ifname: "vnet0", Ifindex: tp.vnet0, Group: red, Role: RoleGuest},
		{Ifname: "vnet1", Ifindex: tp.vnet1, Group: red, Role: RoleGuest},
		{Ifname: "up0", Ifindex: tp.up0, Group: red, Role: RoleUplink, Slot: 0, MAC: e.mac("up0")},
		{Ifname: "up1", Ifindex: tp.up1, Group: red, Role: RoleUplink, Slot: 1, MAC: e.mac("up1")},
		{Ifname: "vnet2", Ifindex: tp.vnet2, Group: blue, Role: RoleGuest},
		{Ifname: "up2", Ifindex: tp.up2, Group: blue, Role: RoleUplink, Slot: 0, MAC: e.mac("up2")},
	}
	for _, p := range ports {
		mode, err := e.dp.Attach(p)
		if err != nil {
			t.Fatal(err)
		}
		if mode != ModeTCX && mode != ModeClsact {
			t.Errorf("%s attached in %q mode, want tcx (or tc where the kernel has no tcx)", p.Ifname, mode)
		}
	}
	if err := e.dp.SetActive(red, 0); err != nil {
		t.Fatal(err)
	}
	if err := e.dp.SetActive(blue, 0); err != nil {
		t.Fatal(err)
	}
	return tp
}

func (tp *topo) stats(t testing.TB, ifindex int) PortStats {
	t.Helper()
	s, err := tp.dp.Stats(ifindex)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestGuestLearnsMACsAndAddresses(t *testing.T) {
	tp := newTopo(t)
	guest := tp.dp.objs.TcGuest
	v4 := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolUDP,
		SrcIP: net.IP{192, 0, 2, 10}, DstIP: net.IP{192, 0, 2, 1}}
	v6 := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolNoNextHeader,
		SrcIP: net.ParseIP("2001:db8::a"), DstIP: net.ParseIP("2001:db8::1")}
	arp := &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4,
		HwAddressSize: 6, ProtAddressSize: 4, Operation: layers.ARPRequest,
		SourceHwAddress: macB, SourceProtAddress: []byte{198, 51, 100, 7},
		DstHwAddress: make([]byte, 6), DstProtAddress: []byte{198, 51, 100, 1}}
	dhcp := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolUDP,
		SrcIP: net.IP{0, 0, 0, 0}, DstIP: net.IP{255, 255, 255, 255}}
	dad := &layers.IPv6{Version: 6, HopLimit: 255, NextHeader: layers.IPProtocolNoNextHeader,
		SrcIP: net.IPv6unspecified, DstIP: net.ParseIP("ff02::1:ff00:a")}

	for _, f := range [][]byte{
		frame(t, macUp, macA, 0, nil, v4),
		frame(t, macUp, macA, 0, nil, v6),
		frame(t, broadcast, macB, 100, nil, arp),
		frame(t, broadcast, macB, 100, nil, dhcp),
		frame(t, broadcast, macA, 0, nil, dad),
	} {
		run(t, guest, tp.vnet0, f)
	}

	fdb, err := tp.dp.FDB()
	if err != nil {
		t.Fatal(err)
	}
	type learned struct {
		mac     string
		vlan    uint16
		ifindex int
	}
	var got []learned
	for _, e := range fdb {
		got = append(got, learned{e.MAC.String(), e.VLAN, e.Ifindex})
		if e.Age > time.Minute {
			t.Errorf("entry %v age %v: timestamp not from the monotonic clock", e.MAC, e.Age)
		}
	}
	want := []learned{{macA.String(), 0, tp.vnet0}, {macB.String(), 100, tp.vnet0}}
	slices.SortFunc(got, func(a, b learned) int { return strings.Compare(a.mac, b.mac) })
	if !slices.Equal(got, want) {
		t.Errorf("fdb = %v, want %v", got, want)
	}

	neigh, err := tp.dp.Neighbours()
	if err != nil {
		t.Fatal(err)
	}
	gotN := map[netip.Addr]string{}
	for _, n := range neigh {
		gotN[n.Addr] = n.MAC.String() + "/" + strconv.Itoa(int(n.VLAN))
	}
	wantN := map[netip.Addr]string{
		netip.MustParseAddr("192.0.2.10"):   macA.String() + "/0",
		netip.MustParseAddr("2001:db8::a"):  macA.String() + "/0",
		netip.MustParseAddr("198.51.100.7"): macB.String() + "/100",
	}
	if len(gotN) != len(wantN) {
		t.Errorf("neighbours = %v, want %v (0.0.0.0 and :: must not be learned)", gotN, wantN)
	}
	for a, w := range wantN {
		if gotN[a] != w {
			t.Errorf("neighbour %v = %q, want %q", a, gotN[a], w)
		}
	}
}

func TestGuestDecisions(t *testing.T) {
	tp := newTopo(t)
	guest := tp.dp.objs.TcGuest
	// A lives behind vnet0.
	run(t, guest, tp.vnet0, frame(t, broadcast, macA, 0, nil))

	type guestCase struct {
		name    string
		ingress int
		frame   []byte
		active  limits.Slot
		want    uint32
		drop    DropReason // counted on ingress; -1: none
	}
	// Frames cut short: a TPID with no room for the tag, and network
	// headers shorter than they must be.
	cut := func(ethertype uint16, size int) []byte {
		f := frame(t, macUp, macB, 0, nil)[:size]
		f[12], f[13] = byte(ethertype>>8), byte(ethertype)
		return f
	}
	cases := []guestCase{
		{"to local guest", tp.vnet1, frame(t, macA, macB, 0, nil), 0, tcRedirect, -1},
		{"to upstream via active uplink", tp.vnet1, frame(t, macUp, macB, 0, nil), 0, tcRedirect, -1},
		{"to upstream, active slot empty", tp.vnet1, frame(t, macUp, macB, 0, nil), 5, tcShot, DropNoUplink},
		{"to upstream, no active uplink", tp.vnet1, frame(t, macUp, macB, 0, nil), limits.NoSlot, tcShot, DropNoUplink},
		{"to local guest, no active uplink", tp.vnet1, frame(t, macA, macB, 0, nil), limits.NoSlot, tcRedirect, -1},
		{"broadcast floods", tp.vnet1, frame(t, broadcast, macB, 0, nil), 0, tcRedirect, -1},
		{"hairpin", tp.vnet0, frame(t, macA, macB, 0, nil), 0, tcShot, DropHairpin},
		{"same MAC other VLAN is upstream", tp.vnet0, frame(t, macA, macB, 7, nil), 0, tcRedirect, -1},
		{"multicast source", tp.vnet1, frame(t, macUp, broadcast, 0, nil), 0, tcShot, DropBadSource},
		{"zero source", tp.vnet1, frame(t, macUp, make(net.HardwareAddr, 6), 0, nil), 0, tcShot, DropBadSource},
		{"link-local to host", tp.vnet1, frame(t, net.HardwareAddr{1, 0x80, 0xc2, 0, 0, 0xe}, macB, 0, nil), 0, tcOK, -1},
		{"truncated VLAN tag", tp.vnet1, cut(0x8100, 16), 0, tcShot, DropMalformed},
		{"IPv4 header cut", tp.vnet1, cut(0x0800, 14+10), 0, tcShot, DropMalformed},
		{"IPv6 header cut", tp.vnet1, cut(0x86dd, 14+30), 0, tcShot, DropMalformed},
		{"ARP body cut", tp.vnet1, cut(0x0806, 14+20), 0, tcShot, DropMalformed},
	}

	// The kernel refuses a tc test run of a frame whose IPv4 or IPv6 header
	// is cut (EINVAL): those arrive for real, and the counters tell.
	sentForReal := map[string]bool{"IPv4 header cut": true, "IPv6 header cut": true}

	for _, c := range cases {
		if err := tp.dp.SetActive(0, c.active); err != nil {
			t.Fatal(err)
		}
		before := tp.stats(t, c.ingress)
		if sentForReal[c.name] {
			tp.send(guest, c.ingress, c.frame)
		} else if got := run(t, guest, c.ingress, c.frame); got != c.want {
			t.Errorf("%s: action %d, want %d", c.name, got, c.want)
		}
		after := tp.stats(t, c.ingress)
		if c.drop >= 0 {
			if d := after.Drops[c.drop] - before.Drops[c.drop]; d != 1 {
				t.Errorf("%s: %s drops went up by %d, want 1", c.name, c.drop, d)
			}
		} else if after.TotalDrops() != before.TotalDrops() {
			t.Errorf("%s: drops counted on a forwarded frame", c.name)
		}
		if c.drop != DropMalformed {
			if after.RxPackets != before.RxPackets+1 || after.RxBytes != before.RxBytes+uint64(len(c.frame)) {
				t.Errorf("%s: rx %d/%d -> %d/%d, want +1 frame, +%d bytes", c.name,
					before.RxPackets, before.RxBytes, after.RxPackets, after.RxBytes, len(c.frame))
			}
		}
	}

	// Nothing from the bad frames was learned.
	fdb, _ := tp.dp.FDB()
	for _, e := range fdb {
		if e.MAC[0]&1 == 1 || e.MAC.String() == "00:00:00:00:00:00" {
			t.Errorf("learned invalid source %v", e.MAC)
		}
	}
}

// A flood counts each copy as sent on the port it leaves through (the
// clones and the last one alike), and none on the standby uplink.
func TestFloodCountsEveryCopy(t *testing.T) {
	tp := newTopo(t)
	f := frame(t, broadcast, macA, 0, nil)
	want := map[int]uint64{tp.vnet1: 1, tp.up0: 1, tp.up1: 0}
	before := map[int]PortStats{}
	for p := range want {
		before[p] = tp.stats(t, p)
	}
	if got := run(t, tp.dp.objs.TcGuest, tp.vnet0, f); got != tcRedirect {
		t.Fatalf("flood: action %d, want redirect", got)
	}
	for p, n := range want {
		s := tp.stats(t, p)
		if s.TxPackets-before[p].TxPackets != n || s.TxBytes-before[p].TxBytes != n*uint64(len(f)) {
			t.Errorf("ifindex %d: tx +%d/+%d bytes, want +%d/+%d", p, s.TxPackets-before[p].TxPackets, s.TxBytes-before[p].TxBytes, n, n*uint64(len(f)))
		}
	}
}

func TestUplinkDecisions(t *testing.T) {
	tp := newTopo(t)
	run(t, tp.dp.objs.TcGuest, tp.vnet0, frame(t, broadcast, macA, 0, nil))
	uplink := tp.dp.objs.TcUplink
	up0mac, up1mac := tp.mac("up0"), tp.mac("up1")
	lldp := net.HardwareAddr{1, 0x80, 0xc2, 0, 0, 0xe}

	cases := []struct {
		name    string
		ingress int
		frame   []byte
		want    uint32
		drop    DropReason
		host    bool
	}{
		{"active: to guest", tp.up0, frame(t, macA, macUp, 0, nil), tcRedirect, -1, false},
		{"active: broadcast floods to guests", tp.up0, frame(t, broadcast, macUp, 0, nil), tcRedirect, -1, false},
		{"active: unknown unicast floods", tp.up0, frame(t, macB, macUp, 0, nil), tcRedirect, -1, false},
		{"active: to the host", tp.up0, frame(t, up0mac, macUp, 0, nil), tcOK, -1, true},
		{"active: LLDP to the host", tp.up0, frame(t, lldp, macUp, 0, nil), tcOK, -1, true},
		{"standby: to guest dropped", tp.up1, frame(t, macA, macUp, 0, nil), tcShot, DropStandby, false},
		{"standby: broadcast dropped", tp.up1, frame(t, broadcast, macUp, 0, nil), tcShot, DropStandby, false},
		{"standby: to the host passes", tp.up1, frame(t, up1mac, macUp, 0, nil), tcOK, -1, true},
		{"standby: LLDP passes", tp.up1, frame(t, lldp, macUp, 0, nil), tcOK, -1, true},
		{"multicast source", tp.up0, frame(t, macA, broadcast, 0, nil), tcShot, DropBadSource, false},
	}
	for _, c := range cases {
		before := tp.stats(t, c.ingress)
		got := run(t, uplink, c.ingress, c.frame)
		after := tp.stats(t, c.ingress)
		if got != c.want {
			t.Errorf("%s: action %d, want %d", c.name, got, c.want)
		}
		if c.drop >= 0 && after.Drops[c.drop]-before.Drops[c.drop] != 1 {
			t.Errorf("%s: %s drop not counted", c.name, c.drop)
		}
		if c.host != (after.HostPackets == before.HostPackets+1) {
			t.Errorf("%s: host packets %d -> %d", c.name, before.HostPackets, after.HostPackets)
		}
	}

	// Failover is one write: up1 becomes the one that delivers.
	if err := tp.dp.SetActive(0, 1); err != nil {
		t.Fatal(err)
	}
	if got := run(t, uplink, tp.up1, frame(t, macA, macUp, 0, nil)); got != tcRedirect {
		t.Errorf("after switch, up1 to guest: action %d, want redirect", got)
	}
	if got := run(t, uplink, tp.up0, frame(t, macA, macUp, 0, nil)); got != tcShot {
		t.Errorf("after switch, up0 to guest: action %d, want drop", got)
	}
}

// delivery sends one frame for real (tp.send) and reports which captures
// received it, waiting up to half a second for the expected ones and a
// little longer than the slowest of them for any that should stay silent.
func (tp *topo) delivery(t *testing.T, prog string, ingress int, build func(marker []byte) []byte, want []string, caps ...*capture) []string {
	t.Helper()
	marker := newMarker(t)
	p := tp.dp.objs.TcGuest
	if prog == "uplink" {
		p = tp.dp.objs.TcUplink
	}
	tp.send(p, ingress, build(marker))
	copies := map[string]int{}
	deadline := time.Now().Add(500 * time.Millisecond)
	for settle := 0; settle < 3 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
		for _, c := range caps {
			copies[c.name] += len(c.drain(marker))
		}
		missing := false
		for _, w := range want {
			missing = missing || copies[w] == 0
		}
		if !missing {
			settle++
		}
	}
	var got []string
	for _, c := range caps {
		if n := copies[c.name]; n > 0 {
			got = append(got, c.name)
			if n > 1 {
				t.Errorf("%s received %d copies", c.name, n)
			}
		}
	}
	return got
}

func TestLiveForwarding(t *testing.T) {
	tp := newTopo(t)
	caps := []*capture{}
	for _, n := range []string{"g0", "g1", "u0p", "u1p", "g2", "u2p"} {
		caps = append(caps, tp.capture(n))
	}
	// Learn A behind vnet0 and B behind vnet1 (these frames also go out).
	tp.delivery(t, "guest", tp.vnet0, func(m []byte) []byte { return frame(t, broadcast, macA, 0, m) }, nil, caps...)
	tp.delivery(t, "guest", tp.vnet1, func(m []byte) []byte { return frame(t, broadcast, macB, 0, m) }, nil, caps...)

	cases := []struct {
		name    string
		prog    string
		ingress int
		build   func(m []byte) []byte
		active  limits.Slot
		want    []string
	}{
		{"guest to upstream, active slot 0", "guest", tp.vnet0,
			func(m []byte) []byte { return frame(t, macUp, macA, 0, m) }, 0, []string{"u0p"}},
		{"guest to upstream, active slot 1", "guest", tp.vnet0,
			func(m []byte) []byte { return frame(t, macUp, macA, 0, m) }, 1, []string{"u1p"}},
		{"guest to guest", "guest", tp.vnet0,
			func(m []byte) []byte { return frame(t, macB, macA, 0, m) }, 0, []string{"g1"}},
		{"guest broadcast: other guest + active uplink, not the other group", "guest", tp.vnet0,
			func(m []byte) []byte { return frame(t, broadcast, macA, 0, m) }, 0, []string{"g1", "u0p"}},
		{"guest broadcast after a switch", "guest", tp.vnet0,
			func(m []byte) []byte { return frame(t, broadcast, macA, 0, m) }, 1, []string{"g1", "u1p"}},
		{"tagged guest frame keeps its tag to upstream", "guest", tp.vnet1,
			func(m []byte) []byte { return frame(t, macUp, macB, 42, m) }, 0, []string{"u0p"}},
		{"upstream to guest", "uplink", tp.up0,
			func(m []byte) []byte { return frame(t, macB, macUp, 0, m) }, 0, []string{"g1"}},
		{"upstream broadcast to the group's guests only", "uplink", tp.up0,
			func(m []byte) []byte { return frame(t, broadcast, macUp, 0, m) }, 0, []string{"g0", "g1"}},
		{"upstream to guest on standby: nothing", "uplink", tp.up1,
			func(m []byte) []byte { return frame(t, macB, macUp, 0, m) }, 0, nil},
		{"no active uplink: guest-to-guest still works", "guest", tp.vnet1,
			func(m []byte) []byte { return frame(t, macA, macB, 0, m) }, limits.NoSlot, []string{"g0"}},
		{"no active uplink: upstream traffic dropped", "guest", tp.vnet1,
			func(m []byte) []byte { return frame(t, macUp, macB, 0, m) }, limits.NoSlot, nil},
	}
	for _, c := range cases {
		if err := tp.dp.SetActive(0, c.active); err != nil {
			t.Fatal(err)
		}
		got := tp.delivery(t, c.prog, c.ingress, c.build, c.want, caps...)
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: delivered to %v, want %v", c.name, got, c.want)
		}
	}

	// The tagged frame arrived with its tag intact.
	if err := tp.dp.SetActive(0, 0); err != nil {
		t.Fatal(err)
	}
	marker := newMarker(t)
	tp.send(tp.dp.objs.TcGuest, tp.vnet1, frame(t, macUp, macB, 42, marker))
	var fs [][]byte
	for i := 0; i < 50 && len(fs) == 0; i++ {
		time.Sleep(10 * time.Millisecond)
		fs = caps[2].drain(marker)
	}
	if len(fs) != 1 {
		t.Fatalf("tagged frame: %d copies at u0p", len(fs))
	}
	pkt := gopacket.NewPacket(fs[0], layers.LayerTypeEthernet, gopacket.Default)
	if q, ok := pkt.Layer(layers.LayerTypeDot1Q).(*layers.Dot1Q); !ok || q.VLANIdentifier != 42 {
		t.Errorf("tagged frame arrived as %v", pkt)
	}

	// tx is counted on the port a frame leaves through.
	if s := tp.stats(t, tp.up0); s.TxPackets == 0 {
		t.Error("no tx counted on up0")
	}
	if s := tp.stats(t, tp.up2); s.TxPackets != 0 || s.RxPackets != 0 {
		t.Errorf("the other group's uplink saw traffic: %+v", s)
	}
}
