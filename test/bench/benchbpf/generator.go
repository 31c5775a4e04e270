package benchbpf

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// Batching of the live-frames test runs.
const (
	// flatBatch frames per test run when sending flat out: large enough to
	// amortise the per-run setup (the kernel builds a page pool per run),
	// small enough (~1-2 ms at full rate) to stop close to a deadline.
	flatBatch = 8192
	// kernelBatch is the run's internal batch (BPF_PROG_TEST_RUN
	// batch_size, at most 256): frames transmitted per flush.
	kernelBatch = 64
)

// Generator is the in-kernel packet generator (bench_gen run with
// BPF_F_TEST_XDP_LIVE_FRAMES), the "live" Engine: the fastest, where the
// kernel allows live test runs (liveframes.Available). It is not safe for concurrent
// use.
type Generator struct {
	objs   genObjects
	anchor *anchor
}

type genObjects struct {
	Prog *ebpf.Program `ebpf:"bench_gen"`
	Seq  *ebpf.Map     `ebpf:"gen_seq"`
	Cfg  *ebpf.Map     `ebpf:"gen_cfg"`
}

// NewGenerator loads the generator; sequence numbers start at 0.
func NewGenerator() (*Generator, error) {
	spec, err := loadSpec()
	if err != nil {
		return nil, err
	}
	g := &Generator{}
	if err := spec.LoadAndAssign(&g.objs, nil); err != nil {
		return nil, loadErr("generator", err)
	}
	if g.anchor, err = newAnchor(g.objs.Prog); err != nil {
		_ = g.closeObjs()
		return nil, fmt.Errorf("generator: %w", err)
	}
	return g, nil
}

// Send transmits stream frames built from t out of the device ifindex (the
// test run's ingress device; bench_gen returns XDP_TX), so they arrive at
// its peer: a guest's eth0 here enters the switch on the guest port.
//
// The calling goroutine must be locked to its OS thread inside the
// namespace where ifindex lives.
//
// rate <= 0 sends flat out; rate > 0 paces to that many frames per second,
// in bursts every 100 µs to 1 ms (~0.5 ms here, Go's timer granularity);
// the rate holds within 0.2%. Send stops after duration (0: no time limit),
// when ctx is done (not an error), or after maxFrames frames (0: no limit).
// It returns the frames sent in this call; they carry the sequence numbers
// following the previous call's (0 after NewGenerator or Reset).
//
// "Sent" means handed to the device: a full veth ring (counted in the
// sender's tx_queue_N_xdp_xmit_errors) or a peer without NAPI drops frames
// silently, which is what the receiver measures.
func (g *Generator) Send(ctx context.Context, ifindex int, t Template, rate int, duration time.Duration, maxFrames uint64) (uint64, error) {
	frame, err := t.Frame()
	if err != nil {
		return 0, err
	}
	start, err := g.next()
	if err != nil {
		return 0, err
	}
	limit := uint64(math.MaxUint64)
	if maxFrames > 0 {
		limit = start + maxFrames
	}
	cfg := bpfBenchGenConfig{Limit: limit, Sources: uint32(max(t.Sources, 1))}
	copy(cfg.Src[:], t.Src)
	if err := g.objs.Cfg.Put(uint32(0), &cfg); err != nil {
		return 0, fmt.Errorf("generator: configure: %w", err)
	}
	opts := ebpf.RunOptions{
		Data:      frame,
		Context:   xdpMd{DataEnd: uint32(len(frame)), IngressIfindex: uint32(ifindex)},
		Flags:     unix.BPF_F_TEST_XDP_LIVE_FRAMES,
		BatchSize: kernelBatch,
	}

	// pace counts the frames asked for; the kernel may run more (EINTR),
	// and the counter below says how many.
	_, runErr := pace(ctx, rate, duration, maxFrames, flatBatch, func(batch uint64) (uint64, error) {
		opts.Repeat = uint32(batch)
		if _, err := g.objs.Prog.Run(&opts); err != nil {
			return 0, fmt.Errorf("generator: test run on ifindex %d: %w", ifindex, err)
		}
		return batch, nil
	})

	// The counter is the truth: it includes restarted runs, and runs past
	// the limit (dropped, not sent) are taken back so the next call goes on
	// without a gap.
	end, err := g.next()
	if err != nil {
		return 0, err
	}
	if end > limit {
		end = limit
		if err := g.setNext(end); err != nil {
			return end - start, err
		}
	}
	return end - start, runErr
}

// Name is EngineLive.
func (g *Generator) Name() string { return EngineLive }

// Reset starts the sequence numbers at 0 again.
func (g *Generator) Reset() error {
	return g.setNext(0)
}

func (g *Generator) next() (uint64, error) {
	var v uint64
	if err := g.objs.Seq.Lookup(uint32(0), &v); err != nil {
		return 0, fmt.Errorf("generator: read sequence counter: %w", err)
	}
	return v, nil
}

func (g *Generator) setNext(v uint64) error {
	if err := g.objs.Seq.Put(uint32(0), v); err != nil {
		return fmt.Errorf("generator: set sequence counter: %w", err)
	}
	return nil
}

// Close releases the program and its maps.
func (g *Generator) Close() error {
	return errors.Join(g.anchor.close(), g.closeObjs())
}

func (g *Generator) closeObjs() error {
	return errors.Join(g.objs.Prog.Close(), g.objs.Seq.Close(), g.objs.Cfg.Close())
}
