package benchbpf

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/test/testenv"
)

// genOutput is what bench_gen makes of t's frame for sequence numbers
// from, from+1, ... (n of them), run without live frames (allowed on every
// kernel) with t's sources, as Generator.Send configures it.
func genOutput(t *testing.T, lo int, tmpl Template, from uint64, n int) [][]byte {
	t.Helper()
	g, err := NewGenerator()
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	cfg := bpfBenchGenConfig{Limit: 1 << 62, Sources: uint32(max(tmpl.Sources, 1))}
	copy(cfg.Src[:], tmpl.Src)
	if err := g.objs.Cfg.Put(uint32(0), &cfg); err != nil {
		t.Fatal(err)
	}
	if err := g.setNext(from); err != nil {
		t.Fatal(err)
	}
	in, err := tmpl.Frame()
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for range n {
		act, f := runOnce(t, g.objs.Prog, lo, in)
		if act != xdpTx {
			t.Fatalf("bench_gen: action %d", act)
		}
		out = append(out, f)
	}
	return out
}

// TestStamperIsBenchGen: the frames afpacket builds in user space are
// bench_gen's, byte for byte: sequence numbers (also where they pass 2^32
// and only the low 32 bits go on the wire) and source MACs cycling (also
// where the low 24 bits wrap).
func TestStamperIsBenchGen(t *testing.T) {
	enterNewNS(t)
	lo := loIndex(t)
	for _, tc := range []struct {
		name string
		tmpl Template
		from uint64
	}{
		{"one source", Template{Dst: testDst, Src: testSrc, Size: 60, Stream: 3}, 0},
		{"three sources", Template{Dst: testDst, Src: testSrc, Size: 64, Sources: 3, Stream: 9}, 0},
		{"low 24 bits wrap", Template{Dst: testDst, Src: mustMAC(t, "02:aa:00:ff:ff:fe"), Size: 1514, Sources: 5}, 1000},
		{"seq past 2^32", Template{Dst: testDst, Src: testSrc, Size: 60, Sources: 7}, 1<<32 - 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const n = 20
			want := genOutput(t, lo, tc.tmpl, tc.from, n)
			frame, err := tc.tmpl.Frame()
			if err != nil {
				t.Fatal(err)
			}
			st := newStamper(tc.tmpl)
			for i := range n {
				st.stamp(frame, tc.from+uint64(i))
				if !bytes.Equal(frame, want[i]) {
					t.Fatalf("seq %d:\nafpacket  % x\nbench_gen % x", tc.from+uint64(i), frame, want[i])
				}
			}
		})
	}
}

// capture reads the frames arriving at ifindex (an AF_PACKET socket on
// it; no XDP there, so they go up the stack) until want have come or a
// second passes without one.
type capture struct{ *testenv.Capture }

func newCapture(t *testing.T, ifindex int) *capture {
	t.Helper()
	return &capture{testenv.OpenCapture(t, ifindex, testenv.CaptureOptions{Proto: EtherType, Timeout: time.Second, RcvBuf: 8 << 20})}
}

func (c *capture) read(t *testing.T, want int) [][]byte {
	t.Helper()
	var out [][]byte
	for len(out) < want {
		f, err := c.Next()
		if err != nil {
			t.Fatal(err)
		}
		if f == nil {
			break
		}
		out = append(out, f)
	}
	return out
}

// TestPacketSenderFrames: what afpacket puts on the wire, read at the
// veth's far end, is what bench_gen makes, and a second Send carries on
// with the next sequence numbers.
func TestPacketSenderFrames(t *testing.T) {
	enterNewNS(t)
	lo := loIndex(t)
	a, b := vethQueues(t, "ulkh2fa", "ulkh2fb", 2)
	waitUp(t, "ulkh2fa", "ulkh2fb")
	c := newCapture(t, b)
	tmpl := Template{Dst: testDst, Src: mustMAC(t, "02:aa:00:ff:ff:fd"), Size: 98, Sources: 5, Stream: 6}
	p := NewPacketSender()
	var got [][]byte
	for _, n := range []uint64{300, 200} { // flat out (every CPU sends), then paced
		rate := 0
		if n == 200 {
			rate = 20_000
		}
		sent, err := p.Send(context.Background(), a, tmpl, rate, 10*time.Second, n)
		if err != nil || sent != n {
			t.Fatalf("Send %d: %d, %v", n, sent, err)
		}
		got = append(got, c.read(t, int(n))...)
	}
	if len(got) != 500 {
		t.Fatalf("captured %d frames, want 500", len(got))
	}
	// Threads interleave on the wire: order by sequence number.
	slices.SortFunc(got, func(x, y []byte) int {
		return int(binary.BigEndian.Uint32(x[SeqOffset:])) - int(binary.BigEndian.Uint32(y[SeqOffset:]))
	})
	want := genOutput(t, lo, tmpl, 0, 500)
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("frame %d:\nafpacket  % x\nbench_gen % x", i, got[i], want[i])
		}
	}
}

// TestPacketSenderStops: maxFrames is exact however many threads send,
// duration and ctx end a Send on time, and the sequence numbers go on
// without a gap or a repeat across all of them.
func TestPacketSenderStops(t *testing.T) {
	enterNewNS(t)
	a, r := engineBed(t, 1)
	p := NewPacketSender()
	tmpl := Template{Dst: testDst, Src: testSrc, Size: 60}
	var total uint64
	for _, tc := range []struct {
		name     string
		rate     int
		duration time.Duration
		ctxAfter time.Duration
		max      uint64
	}{
		{"maxFrames flat out", 0, 10 * time.Second, time.Minute, 100_003},
		{"maxFrames paced", 100_000, 10 * time.Second, time.Minute, 20_001},
		{"duration flat out", 0, 200 * time.Millisecond, time.Minute, 0},
		{"duration paced fast", 400_000, 200 * time.Millisecond, time.Minute, 0},
		{"context paced", 100_000, 10 * time.Second, 200 * time.Millisecond, 0},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), tc.ctxAfter)
		begin := time.Now()
		sent, err := p.Send(ctx, a, tmpl, tc.rate, tc.duration, tc.max)
		elapsed := time.Since(begin)
		cancel()
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		total += sent
		t.Logf("%s: %d frames in %v", tc.name, sent, elapsed.Round(time.Millisecond))
		switch {
		case tc.max > 0 && sent != tc.max:
			t.Errorf("%s: sent %d, want exactly %d", tc.name, sent, tc.max)
		case tc.max == 0 && (elapsed < 190*time.Millisecond || elapsed > 2*time.Second):
			t.Errorf("%s: took %v, want ~200ms", tc.name, elapsed)
		case tc.max == 0 && sent == 0:
			t.Errorf("%s: sent nothing", tc.name)
		}
	}
	// Every sequence number 0..total-1 arrived once: none skipped between
	// calls, none sent twice. afpacket sends again what a full ring
	// refused, so nothing is lost.
	checkStream(t, r, 1, total, nil)
}

// TestPacketSenderPacing: paced rates hold, from one thread and from
// several. The bounds hold on a busy 2-vCPU VM: never more than 2% too
// fast (the last burst), and not far too slow.
func TestPacketSenderPacing(t *testing.T) {
	enterNewNS(t)
	a, r := engineBed(t, 2)
	p := NewPacketSender()
	for _, tc := range []struct {
		rate    int
		slowest float64 // share of the rate a loaded machine still reaches
	}{
		{10_000, 0.9},
		{100_000, 0.8},
		{400_000, 0.5}, // several threads; near what a loaded VM can send
	} {
		if err := errors.Join(p.Reset(), r.Reset()); err != nil {
			t.Fatal(err)
		}
		const d = 500 * time.Millisecond
		sent, err := p.Send(context.Background(), a, Template{Dst: testDst, Src: testSrc, Size: 60}, tc.rate, d, 0)
		if err != nil {
			t.Fatal(err)
		}
		st := checkStream(t, r, 2, sent, nil)
		want := float64(tc.rate) * d.Seconds()
		span := st.Last.Sub(st.First)
		t.Logf("%d pps for %v: sent %d (%.1f%%), arrivals over %v", tc.rate, d, sent, 100*float64(sent)/want, span.Round(time.Millisecond))
		if float64(sent) > want*1.02+1 || float64(sent) < want*tc.slowest {
			t.Errorf("%d pps for %v: sent %d, want %.0f (-%.0f%%..+2%%)", tc.rate, d, sent, want, 100*(1-tc.slowest))
		}
		// Paced, not sent in one burst: the arrivals span the run.
		if span < d/2 {
			t.Errorf("%d pps: arrivals span only %v of %v", tc.rate, span, d)
		}
	}
}
