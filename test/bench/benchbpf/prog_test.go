package benchbpf

import (
	"bytes"
	"encoding/binary"
	"github.com/cilium/ebpf"
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

var (
	testDst = net.HardwareAddr{0x02, 0xbb, 0, 0, 0, 0x01}
	testSrc = net.HardwareAddr{0x02, 0xaa, 0, 0, 0, 0x01}
)

// streamFrame is a 60-byte stream frame, with one VLAN tag of tpid if not 0.
func streamFrame(seq uint32, tpid uint16) []byte {
	f, err := Template{Dst: testDst, Src: testSrc, Size: MinFrameSize, Stream: 7}.Frame()
	if err != nil {
		panic(err)
	}
	binary.BigEndian.PutUint32(f[SeqOffset:], seq)
	return tagged(f, tpid)
}

func tagged(f []byte, tpid uint16) []byte {
	if tpid == 0 {
		return f
	}
	tag := binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, tpid), 100)
	return append(append(append([]byte(nil), f[:12]...), tag...), f[12:]...)
}

func etherFrame(proto uint16, size int) []byte {
	f := make([]byte, size)
	copy(f, net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	copy(f[6:], testSrc)
	binary.BigEndian.PutUint16(f[12:], proto)
	return f
}

func TestTemplateFrame(t *testing.T) {
	tests := []struct {
		name    string
		tmpl    Template
		wantErr bool
	}{
		{"minimum", Template{Dst: testDst, Src: testSrc, Size: 60, Stream: 3}, false},
		{"maximum", Template{Dst: testDst, Src: testSrc, Size: 1514, Sources: 1 << 24}, false},
		{"too short", Template{Dst: testDst, Src: testSrc, Size: 59}, true},
		{"too long", Template{Dst: testDst, Src: testSrc, Size: 1515}, true},
		{"no source MAC", Template{Dst: testDst, Size: 60}, true},
		{"too many sources", Template{Dst: testDst, Src: testSrc, Size: 60, Sources: 1<<24 + 1}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := tt.tmpl.Frame()
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if len(f) != tt.tmpl.Size {
				t.Errorf("len = %d, want %d", len(f), tt.tmpl.Size)
			}
			if !bytes.Equal(f[:6], testDst) || !bytes.Equal(f[6:12], testSrc) ||
				binary.BigEndian.Uint16(f[12:]) != EtherType || binary.BigEndian.Uint32(f[14:]) != Magic ||
				f[18] != tt.tmpl.Stream || !bytes.Equal(f[19:], make([]byte, len(f)-19)) {
				t.Errorf("frame % x", f)
			}
		})
	}
}

func TestReceiverProgram(t *testing.T) {
	testReceiver(t, func(r *Receiver) *ebpf.Program { return r.objs.Prog })
}

// TestReceiverProgramTC: the same receiver at tc ingress, where frames a
// switch delivers with bpf_redirect_peer arrive.
func TestReceiverProgramTC(t *testing.T) {
	testReceiver(t, func(r *Receiver) *ebpf.Program { return r.objs.TC })
}

func testReceiver(t *testing.T, pick func(*Receiver) *ebpf.Program) {
	enterNewNS(t)
	other, _ := veth(t, "ulkbbo0", "ulkbbo1")
	lo := loIndex(t)
	const slot = 2
	r, err := NewReceiverSize(128) // two words per slot: seq >= 128 is beyond
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	if r.SeqsPerSlot() != 128 {
		t.Fatalf("SeqsPerSlot = %d, want 128", r.SeqsPerSlot())
	}
	if _, err := r.Attach(lo, Slots); err == nil {
		t.Error("Attach to slot 8 succeeded")
	}
	if _, err := r.Stats(-1); err == nil {
		t.Error("Stats(-1) succeeded")
	}
	// No Attach: lo cannot run native XDP, and a test run needs none.
	if err := r.objs.Slots.Put(uint32(lo), uint32(slot)); err != nil {
		t.Fatal(err)
	}

	before := time.Now()
	steps := []struct {
		name    string
		ifindex int
		frame   []byte
		want    uint32
	}{
		{"stream 5", lo, streamFrame(5, 0), xdpDrop},
		{"stream 70 behind 802.1Q", lo, streamFrame(70, unix.ETH_P_8021Q), xdpDrop},
		{"stream 71 behind 802.1ad", lo, streamFrame(71, unix.ETH_P_8021AD), xdpDrop},
		{"stream 5 again", lo, streamFrame(5, 0), xdpDrop},
		{"stream 200 beyond the bitmap", lo, streamFrame(200, 0), xdpDrop},
		{"RARP", lo, etherFrame(unix.ETH_P_RARP, 60), xdpPass},
		{"RARP behind 802.1Q", lo, tagged(etherFrame(unix.ETH_P_RARP, 60), unix.ETH_P_8021Q), xdpPass},
		{"IPv4", lo, etherFrame(unix.ETH_P_IP, 60), xdpPass},
		{"wrong magic", lo, func() []byte { f := streamFrame(9, 0); f[14] ^= 0xff; return f }(), xdpPass},
		{"truncated stream header", lo, streamFrame(9, 0)[:22], xdpPass},
		{"stream on an interface without a slot", other, streamFrame(11, 0), xdpPass},
		{"RARP on an interface without a slot", other, etherFrame(unix.ETH_P_RARP, 60), xdpPass},
	}
	for _, s := range steps {
		if got, _ := runOnce(t, pick(r), s.ifindex, s.frame); got != s.want {
			t.Errorf("%s: action %d, want %d", s.name, got, s.want)
		}
	}
	after := time.Now()

	st, err := r.Stats(slot)
	if err != nil {
		t.Fatal(err)
	}
	want := SlotStats{Count: 5, Dups: 1, Beyond: 1, MaxSeq: 200, RARPs: 2}
	if st.Count != want.Count || st.Dups != want.Dups || st.Beyond != want.Beyond || st.MaxSeq != want.MaxSeq || st.RARPs != want.RARPs {
		t.Errorf("stats = %+v, want counters of %+v", st, want)
	}
	for name, ts := range map[string]time.Time{"First": st.First, "Last": st.Last, "FirstRARP": st.FirstRARP} {
		if ts.Before(before.Add(-time.Millisecond)) || ts.After(after.Add(time.Millisecond)) {
			t.Errorf("%s = %v, outside the run [%v, %v]", name, ts, before, after)
		}
	}
	if !st.First.Before(st.FirstRARP) || st.Last.Before(st.First) {
		t.Errorf("order: First %v, Last %v, FirstRARP %v", st.First, st.Last, st.FirstRARP)
	}

	words, err := r.Seen(slot, 1000) // capped at the bitmap
	if err != nil {
		t.Fatal(err)
	}
	if wantWords := []uint64{1 << 5, 1<<(70-64) | 1<<(71-64)}; len(words) != 2 || words[0] != wantWords[0] || words[1] != wantWords[1] {
		t.Errorf("Seen = %#x, want %#x", words, wantWords)
	}
	for s := range Slots {
		if s == slot {
			continue
		}
		st, err := r.Stats(s)
		if err != nil {
			t.Fatal(err)
		}
		words, err := r.Seen(s, 128)
		if err != nil {
			t.Fatal(err)
		}
		if st != (SlotStats{}) || received(words, 128) != 0 {
			t.Errorf("slot %d touched: %+v, bitmap %#x", s, st, words)
		}
	}

	if err := r.Reset(); err != nil {
		t.Fatal(err)
	}
	if st, err := r.Stats(slot); err != nil || st != (SlotStats{}) {
		t.Errorf("after Reset: %+v, %v", st, err)
	}
	if words, err := r.Seen(slot, 128); err != nil || received(words, 128) != 0 {
		t.Errorf("after Reset: bitmap %#x, %v", words, err)
	}
	// The bitmap works again after a Reset: 5 is new, not a duplicate.
	runOnce(t, r.objs.Prog, lo, streamFrame(5, 0))
	if st, _ := r.Stats(slot); st.Count != 1 || st.Dups != 0 {
		t.Errorf("after Reset and one frame: %+v", st)
	}
}

func TestGeneratorProgram(t *testing.T) {
	ns := enterNewNS(t)
	lo := loIndex(t)
	tests := []struct {
		name    string
		src     string
		sources uint32
		limit   uint64
		runs    int
		wantSrc []string // per run; the last one repeats
		wantAct []uint32 // per run; the last one repeats
	}{
		{"one source", "02:aa:00:00:00:01", 1, 1 << 40, 4,
			[]string{"02:aa:00:00:00:01"}, []uint32{xdpTx}},
		{"three sources", "02:aa:00:00:00:01", 3, 1 << 40, 5,
			[]string{"02:aa:00:00:00:01", "02:aa:00:00:00:02", "02:aa:00:00:00:03", "02:aa:00:00:00:01", "02:aa:00:00:00:02"}, []uint32{xdpTx}},
		{"low 24 bits wrap", "02:aa:00:ff:ff:fe", 4, 1 << 40, 4,
			[]string{"02:aa:00:ff:ff:fe", "02:aa:00:ff:ff:ff", "02:aa:00:00:00:00", "02:aa:00:00:00:01"}, []uint32{xdpTx}},
		{"limit", "02:aa:00:00:00:01", 1, 2, 4,
			[]string{"02:aa:00:00:00:01"}, []uint32{xdpTx, xdpTx, xdpDrop}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enter(t, ns)
			g, err := NewGenerator()
			if err != nil {
				t.Fatal(err)
			}
			defer g.Close()
			src := mustMAC(t, tt.src)
			cfg := bpfBenchGenConfig{Limit: tt.limit, Sources: tt.sources}
			copy(cfg.Src[:], src)
			if err := g.objs.Cfg.Put(uint32(0), &cfg); err != nil {
				t.Fatal(err)
			}
			// The frame carries a different source: bench_gen must take the
			// base from its configuration (live frames are not reset).
			in, err := Template{Dst: testDst, Src: testSrc, Size: 64, Stream: 9}.Frame()
			if err != nil {
				t.Fatal(err)
			}
			for i := range tt.runs {
				act, out := runOnce(t, g.objs.Prog, lo, in)
				if want := tt.wantAct[min(i, len(tt.wantAct)-1)]; act != want {
					t.Fatalf("run %d: action %d, want %d", i, act, want)
				}
				if act != xdpTx {
					continue
				}
				if seq := binary.BigEndian.Uint32(out[SeqOffset:]); seq != uint32(i) {
					t.Errorf("run %d: seq %d", i, seq)
				}
				wantSrc := testSrc
				if tt.sources > 1 {
					wantSrc = mustMAC(t, tt.wantSrc[min(i, len(tt.wantSrc)-1)])
				}
				if !bytes.Equal(out[6:12], wantSrc) {
					t.Errorf("run %d: source %s, want %s", i, net.HardwareAddr(out[6:12]), wantSrc)
				}
				// Everything else is the template.
				rest := append([]byte(nil), out...)
				copy(rest[6:12], testSrc)
				copy(rest[SeqOffset:], []byte{0, 0, 0, 0})
				if !bytes.Equal(rest, in) {
					t.Errorf("run %d: frame % x, template % x", i, out, in)
				}
			}
			next, err := g.next()
			if err != nil {
				t.Fatal(err)
			}
			if next != uint64(tt.runs) {
				t.Errorf("counter %d after %d runs", next, tt.runs)
			}
			if err := g.Reset(); err != nil {
				t.Fatal(err)
			}
			if _, out := runOnce(t, g.objs.Prog, lo, in); binary.BigEndian.Uint32(out[SeqOffset:]) != 0 {
				t.Errorf("after Reset: seq %d", binary.BigEndian.Uint32(out[SeqOffset:]))
			}
		})
	}
}
