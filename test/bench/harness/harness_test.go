package harness

import (
	"encoding/binary"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/test/bench/benchbpf"
	"github.com/uplinkd/uplinkd/test/bench/stats"
)

func TestOptionsDefaultsAndErrors(t *testing.T) {
	o, err := Options{}.withDefaults()
	if err != nil || o.Profile != "quick" || o.Trials != 3 || len(o.Guests) != 3 || o.RatePPS != 50_000 {
		t.Errorf("defaults: %+v, %v", o, err)
	}
	full, _ := Options{Profile: "full", Trials: 7}.withDefaults()
	if full.Trials != 7 || full.RoundTime != 2*time.Second {
		t.Errorf("explicit values must win over the profile: %+v", full)
	}
	if o.CPURatePPS != 200_000 || o.CPURounds != 3 || o.CPURoundTime != 2*time.Second || len(o.CPUFrameSizes) != 1 {
		t.Errorf("quick CPU-per-frame defaults: %d pps, %d rounds of %v, sizes %v", o.CPURatePPS, o.CPURounds, o.CPURoundTime, o.CPUFrameSizes)
	}
	if off, _ := (Options{CPURatePPS: -1}).withDefaults(); off.CPURatePPS >= 0 {
		t.Errorf("a negative CPU rate (skip) became %d", off.CPURatePPS)
	}
	for _, tc := range []struct {
		o    Options
		want string
	}{
		{Options{Profile: "huge"}, `unknown profile "huge"`},
		{Options{Systems: []string{"bonding"}}, `unknown system "bonding"`},
		{Options{Scenarios: []string{"soak"}}, `unknown scenario "soak"`},
		{Options{Uplinks: []string{"macvlan"}}, `unknown uplink kind "macvlan"`},
		{Options{FrameSizes: []int{32}}, "frame size 32"},
		{Options{CPUFrameSizes: []int{2000}}, "frame size 2000"},
	} {
		if _, err := tc.o.withDefaults(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.o, err, tc.want)
		}
	}
}

func streamFrame(t *testing.T, seq uint32, vlan bool) []byte {
	t.Helper()
	f, err := benchbpf.Template{Dst: net.HardwareAddr{2, 0, 0, 0, 0, 1}, Src: net.HardwareAddr{2, 0, 0, 0, 0, 2}, Size: 60, Stream: 1}.Frame()
	if err != nil {
		t.Fatal(err)
	}
	benchbpf.SetSeq(f, seq)
	if vlan {
		f = append(append(append([]byte{}, f[:12]...), 0x81, 0x00, 0x00, 100), f[12:]...)
	}
	return f
}

func TestTapRecorderAccounting(t *testing.T) {
	r := &tapRecorder{slots: make([]tapSlot, 2)}
	for i := range r.slots {
		r.slots[i].words = make([]uint64, stats.WordsFor(maxTapSeq))
	}
	t0 := time.Unix(1000, 0)
	for i, seq := range []uint32{0, 1, 2, 2, 5} { // 3,4 lost, 2 twice
		r.record(0, streamFrame(t, seq, i == 4), t0.Add(time.Duration(i)*time.Millisecond))
	}
	rarp := make([]byte, 60)
	binary.BigEndian.PutUint16(rarp[12:], 0x8035)
	r.record(1, rarp, t0.Add(9*time.Millisecond))
	r.record(1, streamFrame(t, 6, false), t0.Add(10*time.Millisecond))
	r.record(1, []byte{1, 2, 3}, t0) // runt: ignored

	s0, _ := r.stats(0)
	if s0.Count != 5 || s0.Dups != 1 || !s0.First.Equal(t0) || !s0.Last.Equal(t0.Add(4*time.Millisecond)) {
		t.Errorf("slot 0: %+v", s0)
	}
	s1, _ := r.stats(1)
	if s1.RARPs != 1 || !s1.FirstRARP.Equal(t0.Add(9*time.Millisecond)) || s1.Count != 1 {
		t.Errorf("slot 1: %+v", s1)
	}
	w0, _ := r.seen(0, 7)
	w1, _ := r.seen(1, 7)
	if lost := stats.Missing(stats.Union(w0, w1), 7); lost != 2 {
		t.Errorf("lost = %d, want 2 (seq 3 and 4)", lost)
	}
	if err := r.reset(); err != nil {
		t.Fatal(err)
	}
	if s, _ := r.stats(0); s.Count != 0 {
		t.Errorf("reset left %+v", s)
	}
}

func TestLostBetween(t *testing.T) {
	words := make([]uint64, stats.WordsFor(200))
	for seq := uint64(0); seq < 200; seq++ {
		if seq < 50 || seq > 59 && seq != 120 { // 50..59 and 120 missing
			stats.Set(words, seq)
		}
	}
	for _, c := range []struct{ from, to, want uint64 }{
		{0, 200, 11}, {0, 55, 5}, {55, 121, 6}, {121, 200, 0}, {120, 121, 1}, {0, 1000, 11},
	} {
		if got := lostBetween(words, 200, c.from, c.to); got != c.want {
			t.Errorf("lost in [%d, %d) = %d, want %d", c.from, c.to, got, c.want)
		}
	}
	s := &stream{started: time.Unix(100, 0)}
	if got := seqAt(s, 1000, time.Unix(101, 500_000_000)); got != 1500 {
		t.Errorf("seqAt = %d, want 1500", got)
	}
	if got := seqAt(s, 1000, time.Unix(99, 0)); got != 0 {
		t.Errorf("seqAt before the start = %d, want 0", got)
	}
}

func TestParseCPUTicks(t *testing.T) {
	before, err := parseCPUTicks("cpu  100 2 300 4000 5 6 70 8 9 10")
	if err != nil {
		t.Fatal(err)
	}
	after, err := parseCPUTicks("cpu  150 2 330 4100 5 7 90 8 0 0")
	if err != nil {
		t.Fatal(err)
	}
	d := after.since(before)
	if d.User != 50 || d.System != 30 || d.Idle != 100 || d.IRQ != 1 || d.SoftIRQ != 20 || d.Nice != 0 || d.Kernel() != 51 {
		t.Errorf("since = %+v, want user 50, system 30, idle 100, irq 1, softirq 20 (kernel 51)", d)
	}
	if d := before.since(after); d.User != 0 || d.System != 0 {
		t.Errorf("a counter going backwards must count 0: %+v", d)
	}
	for _, line := range []string{"cpu0 1 2 3 4 5 6 7 8", "cpu 1 2 3", "cpu 1 2 x 4 5 6 7 8"} {
		if _, err := parseCPUTicks(line); err == nil {
			t.Errorf("parseCPUTicks(%q) accepted it", line)
		}
	}
}
