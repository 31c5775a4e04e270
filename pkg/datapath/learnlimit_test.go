package datapath

import (
	"encoding/binary"
	"math/rand/v2"
	"net"
	"testing"

	"github.com/google/gopacket/layers"
)

// TestLearningLimitAndMACLock: a guest port learns at most max_macs MACs
// (the rest are counted as refused), so a guest spraying 100,000 source
// MACs evicts no other guest's entry; a MAC learned behind a locked port
// is not learned behind another one; the daemon's recount follows the FDB.
func TestLearningLimitAndMACLock(t *testing.T) {
	tp := newTopo(t)
	for _, p := range []Port{
		{Ifname: "vnet0", Ifindex: tp.vnet0, Group: 0, Role: RoleGuest, MaxMACs: 3},
		{Ifname: "vnet1", Ifindex: tp.vnet1, Group: 0, Role: RoleGuest, MACLock: true},
	} {
		if _, err := tp.dp.Attach(p); err != nil {
			t.Fatal(err)
		}
	}
	guest := tp.dp.objs.TcGuest
	behind := func(mac net.HardwareAddr) int {
		var e bpfSwitchFdbEntry
		key := bpfSwitchFdbKey{Group: 0, Mac: [6]byte(mac)}
		if err := tp.dp.objs.Fdb.Lookup(key, &e); err != nil {
			return 0
		}
		return int(e.Ifindex)
	}
	run(t, guest, tp.vnet1, frame(t, macUp, macB, 0, nil))
	if behind(macB) != tp.vnet1 {
		t.Fatal("B not learned behind vnet1")
	}
	mac := func(i int) net.HardwareAddr {
		m := net.HardwareAddr{0x02, 0xaa, 0, 0, 0, 0}
		binary.BigEndian.PutUint32(m[2:], uint32(i))
		return m
	}
	for i := range 5 {
		run(t, guest, tp.vnet0, frame(t, macUp, mac(i), 0, nil))
	}
	learned := 0
	for i := range 5 {
		if behind(mac(i)) == tp.vnet0 {
			learned++
		}
	}
	if st := tp.stats(t, tp.vnet0); learned != 3 || st.LearnRefused != 2 {
		t.Errorf("vnet0 (max 3): %d of 5 MACs learned, %d refused", learned, st.LearnRefused)
	}
	// Spoofing B from vnet0, with an address: B stays behind the locked
	// vnet1, and the address is not bound to B (it would be announced as
	// B's); nor is one from a MAC over vnet0's limit.
	spoofed := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolUDP,
		SrcIP: net.IP{192, 0, 2, 66}, DstIP: net.IP{192, 0, 2, 1}}
	run(t, guest, tp.vnet0, frame(t, macUp, macB, 0, nil, spoofed))
	overLimit := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolUDP,
		SrcIP: net.IP{192, 0, 2, 67}, DstIP: net.IP{192, 0, 2, 1}}
	run(t, guest, tp.vnet0, frame(t, macUp, mac(7), 0, nil, overLimit))
	if behind(macB) != tp.vnet1 || tp.stats(t, tp.vnet0).LearnRefused != 4 {
		t.Errorf("B spoofed from vnet0: now behind %d, refused %d", behind(macB), tp.stats(t, tp.vnet0).LearnRefused)
	}
	neigh, err := tp.dp.Neighbours()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range neigh {
		if a := n.Addr.String(); a == "192.0.2.66" || a == "192.0.2.67" {
			t.Errorf("refused MAC %s taught address %s", n.MAC, a)
		}
	}

	// A guest spraying 100,000 source MACs under a limit of 1,024.
	if _, err := tp.dp.Attach(Port{Ifname: "vnet0", Ifindex: tp.vnet0, Group: 0, Role: RoleGuest, MaxMACs: 1024}); err != nil {
		t.Fatal(err)
	}
	base := frame(t, macUp, macA, 0, nil)
	for range 100_000 {
		f := append([]byte(nil), base...)
		binary.BigEndian.PutUint32(f[8:12], rand.Uint32())
		f[6], f[7] = 0x02, 0xbb
		run(t, guest, tp.vnet0, f)
	}
	fdb, err := tp.dp.FDB()
	if err != nil {
		t.Fatal(err)
	}
	perPort := map[int]int{}
	for _, e := range fdb {
		perPort[e.Ifindex]++
	}
	t.Logf("after 100,000 sprayed MACs: %d entries behind vnet0, %d refused; B behind vnet1: %t",
		perPort[tp.vnet0], tp.stats(t, tp.vnet0).LearnRefused, behind(macB) == tp.vnet1)
	if perPort[tp.vnet0] > 1024 || behind(macB) != tp.vnet1 {
		t.Errorf("the spraying guest holds %d entries (max 1,024); B behind %d", perPort[tp.vnet0], behind(macB))
	}

	// The recount follows the FDB: forgetting vnet0's entries frees its
	// quota.
	if err := tp.dp.forgetPort(uint32(tp.vnet0)); err != nil {
		t.Fatal(err)
	}
	if err := tp.dp.RecountLearned(); err != nil {
		t.Fatal(err)
	}
	run(t, guest, tp.vnet0, frame(t, macUp, mac(99), 0, nil))
	if behind(mac(99)) != tp.vnet0 {
		t.Error("after the recount vnet0 still learns nothing")
	}
}
